"""Starting a real `rag serve` on a free loopback port for tests (shared by the UI, API and load tests)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import pytest

RAG = str(Path(sys.executable).with_name("rag"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_seed_index(root: Path, seeds: Path, *, env: Mapping[str, str] = ENV) -> Path:
    """Copy the seed folder under `root` and index it with `rag index`; returns the index folder."""
    import shutil

    shutil.copytree(seeds, root / "seeds")
    subprocess.run([RAG, "index", str(root / "seeds"), "--index-dir", str(root / "index")], env=dict(env),
                   check=True, capture_output=True, timeout=300)
    return root / "index"


@contextmanager
def serving(index_dir: Path, *, env: Mapping[str, str] = ENV, timeout: float = 180) -> Iterator[tuple[str, int]]:
    """Run `rag serve` on the index until the block ends; yields (url, port). Fails the test with the
    server's log when it exits early or does not answer within `timeout` seconds."""
    port = free_port()
    log_path = index_dir.parent / f"serve-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([RAG, "serve", "--index-dir", str(index_dir), "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=dict(env))
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"rag serve exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"rag serve did not answer within {timeout:.0f} s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
