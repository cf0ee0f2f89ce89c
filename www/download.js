// Saves a Blob as a file the visitor downloads (exports, probes, graphs, generated sequences, SAEs).

export function download(name, blob) {
  const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(blob), download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
