#!/usr/bin/env bash
# The page's JavaScript: its own modules and its npm dependencies (Cytoscape; 3Dmol.js in a chunk
# of its own, loaded when a structure is first shown) bundled into www/dist, nothing from a CDN;
# then www/dist/shell.js, the app shell that sw.js keeps for offline visits: this build's version
# (a hash of every file it serves) and the files to keep at install. Run by build.sh; run it alone
# after a change to www/ only.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf www/dist
NODE_PATH=pkg-build/node_modules pkg-build/node_modules/.bin/esbuild www/app.js --bundle --format=esm --splitting \
  --minify --sourcemap --outdir=www/dist --chunk-names='chunk-[hash]'
# The wasm packages are kept when first fetched (only the one that runs), not at install.
files=$( { echo index.html; echo www/style.css; ls www/*.js www/dist/*.js; } | sort)
version=$( { cat $files; find www/pkg -path 'www/pkg/bench-*' -prune -o -type f -print 2>/dev/null | sort | xargs -r cat; } | sha256sum | cut -c1-16)
{
  echo "// Written by pkg-build/bundle.sh: this build's version and its app shell, for sw.js."
  printf 'self.PLMSCOPE_SHELL = { version: "%s", files: [' "$version"
  printf '"%s",' $files | sed 's/,$//'
  echo '] };'
} > www/dist/shell.js
echo "www/dist: app shell $version"
