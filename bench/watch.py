"""The folder watch (`rag index PATHS --watch`): its CPU while nothing changes, and how long a change
takes from the moment its file is written to the moment its update is committed.

    python -m bench.watch
    python -m bench.watch --files 1000 --idle-seconds 60 --trials 5 --store milvus

The watched folder holds `--files` small text files (one sentence each), indexed first by the same
`rag index --watch` process, run as a user would start it (the installed script). Idle CPU is the
process's user + system time (all its threads, from /proc/PID/stat) over `--idle-seconds` of a
folder where nothing changes, after a settling pause. Latency: a new file is written, then the time
until the process prints its `+ NAME` line (printed after the commit); the same for a changed file
and for a burst of 100 files copied at once (the time to the last line; one update). The latency
includes the watch's quiet period (rag.watch.QUIET_SECONDS: a burst is over when no event came for
that long) and the embedding. Results: bench/results/watch.json.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import percentiles, print_table, rag_command, write_result

SETTLE_S = 10.0  # after the index run: let the model's threads and the page cache go quiet
LINE_TIMEOUT_S = 600.0


class Watching:
    """A `rag index DIR --watch` process and the lines it prints, each with when it came."""

    def __init__(self, folder: Path, store: str) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [*rag_command(), "index", str(folder), "--store", store, "--watch"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.perf_counter(), line.rstrip("\n")))

    def wait_line(self, wanted: str, *, prefix: bool = False) -> float:
        """When the line `wanted` (or a line starting with it) was printed."""
        deadline = time.monotonic() + LINE_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                at, line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"rag index --watch exited with {self.proc.returncode}") from None
                continue
            if line == wanted or (prefix and line.startswith(wanted)):
                return at
        raise RuntimeError(f"no line {wanted!r} within {LINE_TIMEOUT_S:.0f} s")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process so far (all threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def note(i: int, tag: str = "note") -> str:
    return f"{tag.capitalize()} {i}: the crate numbered {i} in row {i % 37} holds {i * 7 % 1000} brass lanterns.\n"


def measure(folder: Path, store: str, *, files: int, idle_seconds: float, trials: int) -> dict[str, Any]:
    docs = folder / "docs"
    docs.mkdir()
    for i in range(files):
        (docs / f"note-{i:05d}.txt").write_text(note(i))
    started = time.perf_counter()
    watching = Watching(docs, store)
    try:
        watching.wait_line("watching ", prefix=True)
        index_s = time.perf_counter() - started
        time.sleep(SETTLE_S)
        before = watching.cpu_seconds()
        time.sleep(idle_seconds)
        idle_cpu = watching.cpu_seconds() - before
        added, changed = [], []
        for t in range(trials):
            path = docs / f"new-{t}.txt"
            path.write_text(note(t, "new"))
            written = time.perf_counter()
            added.append(watching.wait_line(f"+ new-{t}.txt (1 chunk)") - written)
            path.write_text(note(t + 1000, "changed"))
            written = time.perf_counter()
            changed.append(watching.wait_line(f"~ new-{t}.txt (1 chunk)") - written)
        burst = folder / "burst"
        burst.mkdir()
        for i in range(100):
            (burst / f"b-{i:03d}.txt").write_text(note(i, "burst"))
        copied = time.perf_counter()
        shutil.copytree(burst, docs / "burst")
        copied_done = time.perf_counter()
        last = max(watching.wait_line(f"+ burst/b-{i:03d}.txt (1 chunk)") for i in range(100))
        exit_code = watching.stop()
    finally:
        if watching.proc.poll() is None:
            watching.proc.kill()
    return {
        "store": store.split(":", 1)[0],
        "files": files,
        "index_run_s": round(index_s, 1),
        "idle_seconds": idle_seconds,
        "idle_cpu_s": round(idle_cpu, 3),
        "idle_cpu_percent": round(100 * idle_cpu / idle_seconds, 3),
        "added_latency_s": {**percentiles(added, ps=(50, 100)), "runs": len(added)},
        "changed_latency_s": {**percentiles(changed, ps=(50, 100)), "runs": len(changed)},
        "burst_100_copy_s": round(copied_done - copied, 3),
        "burst_100_latency_s": round(last - copied_done, 2),
        "exit_code_on_sigterm": exit_code,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.watch", description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=1000, help="files in the watched folder (default: %(default)s)")
    p.add_argument("--idle-seconds", type=float, default=60.0, help="idle CPU window (default: %(default)s)")
    p.add_argument("--trials", type=int, default=5, help="files added and changed one at a time (default: %(default)s)")
    p.add_argument("--store", choices=["faiss", "milvus"], default="faiss")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rag-bench-watch-") as tmp:
        folder = Path(tmp)
        store = f"faiss:{folder / 'index'}" if args.store == "faiss" else f"milvus:{folder / 'watch.db'}"
        result = measure(folder, store, files=args.files, idle_seconds=args.idle_seconds, trials=args.trials)
    print_table(
        [
            "store",
            "files",
            "idle CPU s / window",
            "idle CPU %",
            "added p50 / max s",
            "changed p50 / max s",
            "100-file burst s",
        ],
        [
            [
                result["store"],
                result["files"],
                f"{result['idle_cpu_s']} / {result['idle_seconds']:.0f}",
                result["idle_cpu_percent"],
                f"{result['added_latency_s']['p50']:.2f} / {result['added_latency_s']['p100']:.2f}",
                f"{result['changed_latency_s']['p50']:.2f} / {result['changed_latency_s']['p100']:.2f}",
                result["burst_100_latency_s"],
            ]
        ],
    )
    write_result(f"watch-{args.store}", {"args": vars(args), **result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
