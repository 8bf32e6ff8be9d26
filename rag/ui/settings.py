"""The chat's Settings and the `ask` API's arguments: which choices the server offers, and the
config a question is asked with. Bad values are BadInput naming the value, before anything is asked.

Example:
    >>> generator_choices(RagConfig(generator="ollama", llm_model="qwen3:0.6b"))
    ['extractive', 'local', 'ollama']
    >>> check_answer_scorer(" Reader")
    'reader'
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from rag.config import ANSWER_SCORERS, GENERATORS, RagConfig
from rag.pipeline import BadInput
from rag.scope import BadScope, Scope, escape_glob, parse_scope

LOCAL_GENERATORS = ("extractive", "local")  # always offered; "openai"/"ollama" only when `rag serve` set one up


def generator_choices(defaults: RagConfig) -> list[str]:
    """The generators the UI offers: extractive and local always, plus the server's own when
    `rag serve --generator openai/ollama` configured one (it needs its URL and model)."""
    extra = [defaults.generator] if defaults.generator not in LOCAL_GENERATORS else []
    return [*LOCAL_GENERATORS, *extra]


def check_generator(value: object, allowed: list[str]) -> str:
    """`value` if it is one of the `allowed` generators, else BadInput naming them."""
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    hint = "" if value not in GENERATORS else " (this server was not started with it: see `rag serve --generator`)"
    raise BadInput(f"generator must be one of {', '.join(allowed)}, got {value!r}{hint}")


def check_answer_scorer(value: object) -> str:
    """`value` if it names an answer scorer (any case, spaces around), else BadInput naming them."""
    if isinstance(value, str) and value.strip().lower() in ANSWER_SCORERS:
        return value.strip().lower()
    raise BadInput(f"answer_scorer must be one of {', '.join(ANSWER_SCORERS)}, got {value!r}")


def scorer_threshold(defaults: RagConfig, scorer: str) -> float:
    """The threshold the Settings slider shows for `scorer`: the server's configured one for it
    (`RagConfig().thresholds()[0]` unless `rag serve` changed it); the defaults' for an unknown name."""
    try:
        return defaults.replace(answer_scorer=check_answer_scorer(scorer)).thresholds()[0]
    except BadInput:
        return defaults.thresholds()[0]


def generator_info(defaults: RagConfig, allowed: list[str]) -> str:
    """The help line under the Settings' generator choice: what each offered generator does."""
    parts = [
        "extractive: quotes sentences from the documents, no language model",
        "local: SmolLM2-135M writes the answer on this machine, and every sentence is verified against "
        "the passage it cites (unsupported sentences are removed and marked)",
    ]
    for name in allowed:
        if name not in LOCAL_GENERATORS:
            parts.append(
                f"{name}: {defaults.llm_model} at {defaults.llm_base_url or 'the default URL'}, verified the same way"
            )
    return " · ".join(parts)


def chat_config(
    defaults: RagConfig,
    allowed: list[str],
    *,
    mode: str,
    top_k: float,
    threshold: float,
    generator: str | None,
    answer_scorer: str | None,
) -> RagConfig:
    """The config a chat question is asked with: the Settings panel's values over the server's.
    The slider sets the chosen scorer's threshold, and its "not sure" band below it. Raises
    BadInput (or ValueError from RagConfig) for a value it does not take."""
    return defaults.replace(
        mode=mode,
        top_k=int(top_k),
        generator=check_generator(generator or defaults.generator, allowed),
        answer_scorer=check_answer_scorer(answer_scorer or defaults.answer_scorer),
    ).with_threshold(float(threshold))


def api_config(
    defaults: RagConfig,
    allowed: list[str],
    *,
    top_k: object = None,
    mode: str | None = None,
    generator: str | None = None,
    answer_scorer: str | None = None,
) -> RagConfig:
    """The config an `ask` API call is answered with: the arguments given over the server's
    defaults (an answer scorer with its own threshold). Raises BadInput, ValueError or TypeError."""
    changes: dict[str, Any] = {}
    if top_k is not None:
        changes["top_k"] = whole_number(top_k, "top_k")
    if mode:
        changes["mode"] = mode
    if generator:
        changes["generator"] = check_generator(generator, allowed)
    if answer_scorer:
        changes["answer_scorer"] = check_answer_scorer(answer_scorer)
    return defaults.replace(**changes)


def whole_number(value: object, name: str) -> int:
    """An API argument as an int: 7, 7.0 and "7" pass; "many", 2.5, NaN and Infinity (which raw JSON
    can carry) are BadInput naming the argument, not an OverflowError from the server."""
    try:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number != int(number):
            raise ValueError(value)
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise BadInput(f"{name} must be a whole number, got {value!r}") from None


def chat_scope(documents: object, types: object) -> Scope:
    """The scope the chat's "Search in" picker sets: the chosen documents (exactly those names)
    and file types; none chosen is every document. Raises BadInput for a value the picker would
    never send (a hand-made request).

    Example:
        >>> chat_scope(["reports/q[1].pdf"], ["pdf"]).matches("reports/q1.pdf")
        False
    """
    try:
        names = [escape_glob(d) for d in _strings(documents, "Search in")]
        return parse_scope(source=names, type=_strings(types, "File type"))
    except BadScope as exc:
        raise BadInput(str(exc)) from None


def file_types(sources: Iterable[str]) -> list[str]:
    """The file types the "File type" picker offers: the suffixes of the indexed documents.

    Example:
        >>> file_types(["a/b.PDF", "c.md", "d.pdf", "README"])
        ['md', 'pdf']
    """
    return sorted({PurePosixPath(s).suffix.lower().lstrip(".") for s in sources} - {""})


def api_scope(source: object, folder: object, type_: object, after: object, before: object) -> Scope:
    """The scope of an `ask` API call from its `source`, `folder`, `type`, `after` and `before`
    arguments (as `rag ask`'s flags: each a string or a list of strings, dates YYYY-MM-DD). Raises
    BadInput naming the argument and the value."""
    try:
        return Scope.from_json({"source": source, "folder": folder, "type": type_, "after": after, "before": before})
    except BadScope as exc:
        raise BadInput(str(exc)) from None


def _strings(values: object, name: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise BadInput(f"{name}: not a list of names: {values!r:.80}")
    return list(values)
