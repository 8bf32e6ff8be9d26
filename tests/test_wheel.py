"""The installed package serves the UI: a wheel built from this checkout, installed in a fresh
virtual environment outside it, runs `rag index` and `rag serve`, and answers over HTTP with a
citation. The wheel holds rag/ and eval/ only (no app.py), so this fails if the UI or its assets
are not in the package.

Offline and quick: the wheel is built without build isolation, from a copy of the sources (so no
build/ or *.egg-info lands in the checkout), and the fresh environment sees this environment's
dependencies through a .pth file instead of installing them. A .pth file inside a folder added
that way is not processed, so this checkout's editable install does not leak in.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import ENV

from bench.load import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "How many walruses did the Brindle Island census count?"
DOCUMENT = (
    "Brindle Island lies in the cold northern sea. The Brindle Island census of 2031 counted 4,812 "
    "walruses on its beaches. Fishing boats visit the harbour in summer.\n"
)


# Nothing that would put this checkout or its environment on the fresh environment's path.
CLEAN_ENV = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _run(command: list[str], *, cwd: Path, timeout: float = 600) -> str:
    result = subprocess.run(command, cwd=cwd, env=CLEAN_ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def _build_wheel(tmp: Path) -> Path:
    """A wheel built from a copy of the package sources (the build writes beside the sources)."""
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "reports")
    for package in ("rag", "eval"):
        shutil.copytree(ROOT / package, source / package, ignore=skip)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "--wheel-dir",
            str(tmp / "dist"),
            str(source),
        ],
        cwd=tmp,
    )
    [wheel] = (tmp / "dist").glob("rag-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed; this environment's packages visible
    through a .pth file, written after the install so pip sees no `rag` there already."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=tmp,
    )
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip())
    (site / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return venv


@contextlib.contextmanager
def _serving(venv: Path, index_dir: Path, *, cwd: Path, timeout: float = 240) -> Iterator[str]:
    """`rag serve` from `venv` on a free loopback port until the block ends; yields its URL."""
    port = free_port()
    log = cwd / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                str(venv / "bin" / "rag"),
                "serve",
                "--index-dir",
                str(index_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=cwd,
            env=CLEAN_ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"rag serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() - started > timeout:
                pytest.fail(f"rag serve did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_an_installed_wheel_serves_the_ui_and_answers_with_a_citation(tmp_path: Path) -> None:
    status = _git_status()
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "app.py" not in names and "rag/ui/blocks.py" in names and "rag/cli.py" in names
    for model in ("reader", "checker"):  # the trained models ship inside the package
        assert {f"rag/models/{model}/reader.int8.onnx", f"rag/models/{model}/README.md"} <= set(names), model
    assert {"rag/ui/static/style.css", "rag/ui/static/sources.js", "rag/ui/static/viewer.js"} <= set(names)

    venv = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "work"  # not the checkout: nothing of it on the path
    work.mkdir()
    where = _run([str(venv / "bin" / "python"), "-c", "import rag, rag.ui.blocks; print(rag.__file__)"], cwd=work)
    assert Path(where.strip()).is_relative_to(venv), where
    (work / "docs").mkdir()
    (work / "docs" / "walrus.txt").write_text(DOCUMENT, encoding="utf-8")
    _run([str(venv / "bin" / "rag"), "index", "docs", "--index-dir", "index"], cwd=work)

    with _serving(venv, work / "index", cwd=work) as url:
        from gradio_client import Client

        data = Client(url, verbose=False, download_files=False).predict(QUESTION, api_name="/ask")
    assert not data["abstained"] and "4,812" in data["answer"], data
    assert data["citations"] and all(c["source"] == "walrus.txt" for c in data["citations"]), data
    assert any("4,812 walruses" in c["quote"] for c in data["citations"]), data
    assert _git_status() == status  # no build/, *.egg-info or other file written into the checkout
