"""What the benchmarks' Python drivers share (peers.py on the CPU, gpu.py on a GPU): the inputs
plmscope builds too, plmscope's CLI as a timing server, and engines taking turns run by run.
The standard library is enough (numpy for `inputs`), so that gpu.py's smoke run goes on where
neither numpy nor torch is installed."""

import json
import os
import subprocess
import sys
import tempfile
import time

# ESM-2's hub configs by size: (hidden, layers, heads, ffn), as EsmConfig::esm2.
SIZES = {"8M": (320, 6, 20, 1280), "35M": (480, 12, 20, 1920), "150M": (640, 30, 20, 2560), "650M": (1280, 33, 20, 5120)}


def inputs(batch, residues):
    """<cls> residues <eos>, residue i of sequence b = amino acid (7i + 13b + i // 3) mod 20: the
    same formula as src/bench.rs."""
    import numpy as np

    i = np.arange(residues)
    ids = np.stack([4 + (7 * i + 13 * b + i // 3) % 20 for b in range(batch)]).astype(np.int64)  # tokens 4..23
    ids = np.concatenate([np.zeros((batch, 1), np.int64), ids, np.full((batch, 1), 2, np.int64)], axis=1)
    return ids, np.ones_like(ids)


def emit(engine, threads, case, shape, ms, **extra):
    print(json.dumps({"engine": engine, "threads": threads, "case": case, "shape": f"{shape[0]}x{shape[1]}", "ms": round(ms, 2), **extra}), flush=True)


def clocked(run):
    """`run` as a function that runs it once and returns its milliseconds."""
    def once():
        t = time.perf_counter()
        run()
        return (time.perf_counter() - t) * 1e3
    return once


class Plmscope:
    """plmscope's CLI as a server (`bench-cases --serve`) on `threads` rayon threads; it times each
    run itself, so the pipe is outside the clock."""

    def __init__(self, binary, threads, reference=None, options=()):
        """`options`: the CLI's own (`--backend=wgpu`, `--precision=f16`), then bench-cases' (`--size=650M`)."""
        env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
        front = [o for o in options if o.startswith(("--backend", "--precision"))]
        args = [binary, *front, "bench-cases", "--serve", *[o for o in options if o not in front]]
        if reference:
            args += ["--reference", reference]
        # Its words go to a file, to say why where it ends early (a backend the build lacks).
        self.stderr = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        self.check = reference and self.answer()  # its logits of 1×100 against transformers'

    def answer(self):
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            self.stderr.seek(0)
            words = self.stderr.read().strip().splitlines()
            sys.exit(f"plmscope bench-cases --serve ended with exit code {code}" + (f": {words[-1]}" if words else ""))
        return json.loads(line)

    def ask(self, request):
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it has ended: answer() says how
        return self.answer()

    def prepare(self, case, shape):
        """(a function that runs the case once and returns its ms, the case's GFLOP), or None."""
        if case == "intervene" and shape[0] != 1:
            return None  # plmscope's intervention is on one sequence, from its cache
        gflop = self.ask({"case": case, "shape": f"{shape[0]}x{shape[1]}"})["gflop"]
        return lambda: self.ask({"run": True})["ms"], gflop

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def take_turns(runs, rounds):
    """Median ms of each of `runs` (name → function returning ms): a warm-up run each, then
    `rounds` rounds of one run each, the order reversed every other round, with a pause before each
    run for threads still spinning from the previous engine's run to go to sleep. So every engine
    sees the same spells of this machine's noise."""
    names = list(runs)
    for n in names:
        runs[n]()
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else reversed(names):
            time.sleep(0.025)
            times[n].append(runs[n]())
    return {n: sorted(t)[len(t) // 2] for n, t in times.items()}


