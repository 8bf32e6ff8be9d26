"""app.py, the entry script Gradio users expect: `python app.py` is `rag serve`, and `gradio app.py`
finds a module-level `demo` that it rebuilds on each reload without loading the model again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"


def _run_app(namespace: dict) -> int | str | None:
    """Execute app.py as a script in `namespace`, as `python app.py` and Gradio's reloader do."""
    try:
        exec(compile(APP.read_text(encoding="utf-8"), str(APP), "exec"), namespace)
    except SystemExit as exited:
        return exited.code
    return None


def test_app_py_builds_the_demo_gradio_looks_for_and_rebuilds_it_on_reload(seed_rag, monkeypatch) -> None:
    import gradio as gr

    import rag.cli

    opened: list[list[str]] = []
    launched: list[tuple] = []

    def open_served(argv):
        opened.append(list(argv))
        return seed_rag, SimpleNamespace(port=7999)

    monkeypatch.setattr(rag.cli, "open_served", open_served)
    monkeypatch.setattr(rag.cli, "launch_served", lambda demo, rag, args: launched.append((demo, rag, args)) or 0)
    monkeypatch.setattr(sys, "argv", ["app.py", "--port", "7999"])
    namespace = {"__name__": "__main__", "__file__": str(APP)}
    assert _run_app(namespace) == 0
    assert opened == [["--port", "7999"]]
    [(demo, served, args)] = launched
    assert namespace["demo"] is demo and isinstance(demo, gr.Blocks) and served is seed_rag and args.port == 7999

    gr.NO_RELOAD.set(False)  # what Gradio's reloader sets before running the file again after an edit
    try:
        assert _run_app(namespace) is None
    finally:
        gr.NO_RELOAD.set(True)
    assert len(opened) == 1 and len(launched) == 1  # the model and index were not loaded again
    assert isinstance(namespace["demo"], gr.Blocks) and namespace["demo"] is not demo


def test_importing_app_py_loads_nothing() -> None:
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('app', sys.argv[1]); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "print(hasattr(module, 'demo'), hasattr(module, 'rag'))"
    )  # no app built, no index opened
    result = subprocess.run([sys.executable, "-c", code, str(APP)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_python_app_py_is_rag_serve(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        [sys.executable, str(APP), "--index-dir", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip() == (
        f"rag serve: error: no index at {missing}: build one first with `rag index --store {missing}`"
    )
