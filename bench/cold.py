"""Cold start: a fresh `rag ask` process on the seed index, and `rag --help`.

    python -m bench.cold
    python -m bench.cold --runs 5 --backends torch onnx-int8

`rag ask` runs as a user would start it (the installed script, a new process each time), on an
index of the seed article built into .cache/bench/seed if missing. Peak RSS is the child's own
(`os.wait4` rusage: RUSAGE_CHILDREN of that one process). The first run may also pay for reading
files from disk; the median is over all runs. `rag --help` is checked to import none of torch,
gradio, faiss, transformers, sentence_transformers or numpy (`python -X importtime` lists the
slowest imports of each command). With --backends, the same question is also asked in a fresh
`python -c` process that opens the index with `Embedder.load(backend=...)`, one row per backend
(the ONNX backends import neither torch nor transformers). Results: bench/results/cold.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import ROOT, SEED_DIR, percentiles, print_table, rag_command, write_result

HEAVY = ("torch", "gradio", "faiss", "transformers", "sentence_transformers", "numpy")
QUESTION = "How many North Korean soldiers have arrived in Kursk?"
TARGETS = {"ask_s": 3.0, "help_s": 0.3}


def timed_run(args: Sequence[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, proc.returncode


def backend_ask(backend: str, index_dir: Path) -> list[str]:
    code = (
        "from rag.embed import Embedder; from rag.pipeline import RAG; "
        f"print(RAG.open({str(index_dir)!r}, embedder=Embedder.load(backend={backend!r})).ask({QUESTION!r}).text)"
    )
    return [sys.executable, "-c", code]


def slowest_imports(args: Sequence[str], n: int = 6) -> list[tuple[str, float]]:
    """The `n` top-level imports with the largest cumulative time (ms) when running `args` in Python."""
    code = f"import sys; from rag.cli import main; sys.exit(main({list(args)!r}))"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True)
    rows = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (p.strip() for p in line.removeprefix("import time:").split("|"))
            if cumulative.isdigit() and not name.startswith(" "):
                rows.append((name.strip(), int(cumulative) / 1000))
    top = [r for r in rows if "." not in r[0]]
    return sorted(top, key=lambda r: -r[1])[:n]


def heavy_modules(args: Sequence[str]) -> list[str]:
    """Which of HEAVY a `rag ARGS` process has imported by the time it exits."""
    code = (
        f"import json, sys\nfrom rag.cli import main\n"
        f"try:\n    main({list(args)!r})\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cold", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="processes started per command (default: %(default)s)")
    p.add_argument("--backends", nargs="*", default=[], help="also time RAG.open + ask with each embed backend")
    args = p.parse_args(argv)
    index_dir = ROOT / ".cache" / "bench" / "seed"
    if not (index_dir / "manifest.json").exists():
        subprocess.run(
            [*rag_command(), "index", str(SEED_DIR), "--index-dir", str(index_dir)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    ask = [*rag_command(), "ask", QUESTION, "--index-dir", str(index_dir)]
    helps = [*rag_command(), "--help"]
    results: dict[str, Any] = {}
    rows = []
    commands = [("rag --help", helps), ("rag ask (seed index)", ask)]
    commands += [(f"RAG.open + ask, {b} (python -c)", backend_ask(b, index_dir)) for b in args.backends]
    for name, cmd in commands:
        runs = [timed_run(cmd) for _ in range(args.runs)]
        if any(code != 0 for _, _, code in runs):
            raise SystemExit(f"{name} failed: exit codes {[c for _, _, c in runs]}")
        seconds = [s for s, _, _ in runs]
        rss = max(r for _, r, _ in runs)
        results[name] = {
            "seconds": [round(s, 3) for s in seconds],
            **percentiles(seconds, ps=(50,)),
            "first_s": round(seconds[0], 3),
            "min_s": round(min(seconds), 3),
            "peak_rss_mb": round(rss),
        }
        target = TARGETS["help_s" if "help" in name else "ask_s"]
        rows.append(
            [
                name,
                f"{results[name]['p50']:.2f}",
                f"{min(seconds):.2f}",
                f"{seconds[0]:.2f}",
                f"<= {target}",
                round(rss),
            ]
        )
    results["help_imports_heavy"] = heavy_modules(["--help"])
    results["help_slowest_imports_ms"] = slowest_imports(["--help"])
    results["ask_slowest_imports_ms"] = slowest_imports(["ask", QUESTION, "--index-dir", str(index_dir)])
    print_table(["command", "median s", "min s", "first s", "target s", "peak RSS MiB"], rows)
    print(f"heavy modules imported by rag --help: {results['help_imports_heavy'] or 'none'}")
    print(
        "slowest imports of rag ask (cumulative ms): "
        + ", ".join(f"{n} {ms:.0f}" for n, ms in results["ask_slowest_imports_ms"])
    )
    write_result("cold", {"runs": args.runs, "targets": TARGETS, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
