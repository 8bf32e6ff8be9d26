"""Starting a real `rag serve` on a free loopback port for tests (the UI, API and load tests share it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ is a folder of scripts beside the package, not installed

from bench.load import rag_server  # noqa: E402

RAG = str(Path(sys.executable).with_name("rag"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
# Debian's Chromium, driven by Playwright (its own browser download needs the internet), with
# everything that would reach the network switched off.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found: install it with `apt-get install -y chromium`"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: pip install playwright"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright (headless, the network features off) for the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def build_seed_index(root: Path, seeds: Path, *, env: Mapping[str, str] = ENV) -> Path:
    """Copy the seed folder under `root` and index it with `rag index`; returns the index folder."""
    import shutil

    shutil.copytree(seeds, root / "seeds")
    subprocess.run(
        [RAG, "index", str(root / "seeds"), "--index-dir", str(root / "index")],
        env=dict(env),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return root / "index"


@contextmanager
def serving(
    index_dir: Path, *, env: Mapping[str, str] = ENV, timeout: float = 180, args: Sequence[str] = ()
) -> Iterator[tuple[str, int]]:
    """Run `rag serve` on the index (with more flags `args`) until the block ends; yields (url,
    port). Fails the test with the server's log when it exits early or does not answer within
    `timeout` seconds."""
    try:
        server_cm = rag_server(index_dir, timeout=timeout, env=env, args=args)
        server = server_cm.__enter__()
    except RuntimeError as exc:  # it exited or never answered: the message carries its log
        pytest.fail(str(exc))
    try:
        yield server.url + "/", urlparse(server.url).port
    finally:
        server_cm.__exit__(None, None, None)
