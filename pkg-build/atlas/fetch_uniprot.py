"""A sample of reviewed UniProt entries with their annotations, as one UniProt REST JSON file.

    python3 fetch_uniprot.py URL N OUT.json

URL is a UniProt REST search (format=json, size ≤ 500); its pages are followed through their
`Link: <…>; rel="next"` headers until N entries are in. A local file served over HTTP (one page,
no Link header) works the same, which is how the tests run it.
"""
import json
import re
import sys
import urllib.request

url, wanted, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
results = []
while url and len(results) < wanted:
    with urllib.request.urlopen(url, timeout=120) as response:
        page = json.load(response)
        link = response.headers.get("Link") or ""
    results.extend(page.get("results", []))
    match = re.search(r'<([^>]+)>;\s*rel="next"', link)
    url = match.group(1) if match else None
    print(f"{len(results)} entries", file=sys.stderr)
with open(out, "w") as f:
    json.dump({"results": results[:wanted]}, f)
