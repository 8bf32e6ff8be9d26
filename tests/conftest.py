"""Shared fixtures: the real embedding model (loaded once per session) and file makers.

The environment is set before anything imports transformers or gradio, so no test can reach the
network or send analytics.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from bench.common import rag_command
from eval.datasets import SHARED_DATASETS

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds" / "000_a8b8e53ddfe7d5e4.txt"
SHARED = SHARED_DATASETS
# The keys of an answer in `rag ask --json` and the `ask` API: the contract, written out once here
# (not read from the code), so a change to it fails the tests that check it.
ANSWER_KEYS = frozenset(
    {
        "question",
        "answer",
        "abstained",
        "tentative",
        "confidence",
        "citations",
        "timings_ms",
        "generator",
        "sentences",
        "scope",
        "collection",
    }
)


# The environment of the processes the crash-safety tests kill (tests/test_crash_safety.py,
# tests/test_milvus_store.py).
KILL_ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # A killed child only has to reach its kill point; one thread each keeps several of them
    # from fighting over the cores while they load the model together.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# Screenshots and logs a person may want to look at after a run: outside the checkout (the suite
# writes nothing into it), in RAG_TEST_ARTIFACTS when set (CI can keep that folder).
ARTIFACTS = Path(os.environ.get("RAG_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "rag-test-artifacts")


def skip_or_fail(reason: str, *, module: bool = False) -> NoReturn:
    """Skip a test (or, with `module`, a whole test module) whose outside requirement is missing on
    this machine; under CI=true (where the Makefile and the machine provide everything) fail
    instead, so nothing is silently left out."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason, allow_module_level=module)


def need_shared() -> Path:
    """The shared datasets folder; skips the test where it is missing, except under CI (fails)."""
    if not SHARED.exists():
        skip_or_fail(f"{SHARED} not found: the shared datasets live beside the project checkout")
    return SHARED


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 model, loaded once for the whole session."""
    from rag.embed import Embedder

    return Embedder.load()


@pytest.fixture(scope="session")
def seed_path() -> Path:
    assert SEED.is_file(), SEED
    return SEED


@pytest.fixture(scope="session")
def seed_rag(tmp_path_factory, embedder, seed_path: Path):
    """The seed article indexed once per session and opened (read-only use: do not update it)."""
    from rag.pipeline import RAG, build_index

    base = tmp_path_factory.mktemp("seed-rag")
    corpus = base / "corpus"
    corpus.mkdir()
    shutil.copy(seed_path, corpus / seed_path.name)
    build_index([corpus], index_dir=base / "index", embedder=embedder)
    opened = RAG.open(base / "index", embedder=embedder)
    yield opened
    opened.index.close()


def write_pdf(path: Path, pages: Sequence[str]) -> Path:
    """A real PDF with one page per string (fpdf2, core Helvetica font: Latin-1 text only)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def write_docx(path: Path, paragraphs: Sequence[str]) -> Path:
    """A real .docx with one paragraph per string (python-docx)."""
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


@pytest.fixture(scope="session")
def make_pdf() -> Callable[[Path, Sequence[str]], Path]:
    return write_pdf


@pytest.fixture(scope="session")
def make_docx() -> Callable[[Path, Sequence[str]], Path]:
    return write_docx


def run_rag(args: Sequence[str], *, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would: a subprocess in `cwd`, with this process's environment."""
    return subprocess.run(
        [*rag_command(), *args], cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def rag_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_rag


@pytest.fixture(scope="session")
def copy_seed(seed_path: Path) -> Callable[[Path], Path]:
    """Copy the seed article into a folder (created if missing); returns the copy's path."""

    def copy(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(seed_path, folder / seed_path.name))

    return copy
