#!/usr/bin/env bash
# Sets up, builds and serves the site at http://127.0.0.1:${PORT:-8080}/ (a static server: the
# page needs nothing else). Online, the page loads facebook/esm2_t6_8M_UR50D from the Hugging Face
# hub; offline it says so and runs the same architecture with random weights.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg-build/setup.sh
pkg-build/build.sh
# The seed explorer's circuit graphs, served beside the page in the local demo (never committed).
if [ -d ../shared/reference/explorer ]; then
  rm -rf www/explorer-data && cp -r ../shared/reference/explorer www/explorer-data
fi
port="${PORT:-8080}"
echo "serving http://127.0.0.1:$port/"
exec python3 -m http.server "$port" --bind 127.0.0.1
