"""Asking within some documents: a `Scope` says which indexed documents a question is searched in.

A scope filters documents by their source path (globs), folder, file type and modification date.
Filters of one kind are alternatives (`--type pdf --type docx`: either), filters of different kinds
must all hold (`--folder reports --type pdf`: PDFs under reports/). An empty scope is everything.
Retrieval applies a scope inside the search (`rag.retrieve.scope_sources`, the stores' `sources`
argument), so a scoped question still gets its k best hits from the documents in scope.

Dates are the files' modification dates (`Document.modified`), in this machine's time zone, both
bounds included: `after=2024-01-01, before=2024-01-31` is January. Documents indexed before dates
were recorded have none: a scope with `after` or `before` leaves them out (`rag index --rebuild`
records their dates).

Example:
    >>> scope = parse_scope(source=["reports/*.pdf"], after="2024-01-01")
    >>> scope.matches("reports/q1.pdf", modified=1_720_000_000.0)  # 2024-07-03
    True
    >>> scope.matches("reports/2023/q1.pdf", modified=1_720_000_000.0)  # `*` stays within a folder
    False
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any, Protocol

FIELDS = ("source", "folder", "type", "after", "before")  # the names a scope is given by (CLI flags, JSON keys)
MAX_VALUES = 10_000  # values one field may hold (the chat's picker sends one per chosen document)
MAX_CHARS = 4_096  # characters of one value
_TYPE = re.compile(r"[a-z0-9]{1,16}")
_WILDCARD = re.compile(r"[*?\[]")


class BadScope(ValueError):
    """A scope value that cannot be used; the message names the field and the value."""


class Described(Protocol):
    """What a scope reads of a document (`rag.store.manifest.DocumentInfo` has both)."""

    @property
    def source(self) -> str: ...

    @property
    def modified(self) -> float | None: ...


@dataclass(frozen=True)
class Scope:
    """Which documents a question is searched in; build it with `parse_scope` or `Scope.from_json`.

    `sources` are globs over the whole source path, relative to the indexed folder (`*` and `?`
    within one folder level, `**/` any folder levels, `[...]` a character class: `*.pdf` is the
    PDFs at the top, `**/*.pdf` every PDF); `folders` are folders relative to the indexed root (`reports` holds
    `reports/a.pdf` and `reports/2024/b.pdf`); `types` are file suffixes with their dot (".pdf");
    `after` and `before` are modification dates, both included.
    """

    sources: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    after: dt.date | None = None
    before: dt.date | None = None

    @property
    def everything(self) -> bool:
        """True for the empty scope, which every document is in."""
        return not (self.sources or self.folders or self.types or self.after or self.before)

    @cached_property
    def _names(self) -> frozenset[str]:
        """The source patterns without wildcards: names, looked up (a picker sends thousands)."""
        return frozenset(g for g in self.sources if not _WILDCARD.search(g))

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        """The source patterns with wildcards, as one regular expression (None: there are none)."""
        globs = [g for g in self.sources if _WILDCARD.search(g)]
        return re.compile("|".join(f"(?:{glob_regex(g)})" for g in globs)) if globs else None

    def matches(self, source: str, *, modified: float | None = None) -> bool:
        """Whether the document `source`, last modified at `modified` (epoch seconds, None when
        unknown), is in this scope."""
        if self.sources and source not in self._names and not (self._pattern and self._pattern.fullmatch(source)):
            return False
        if self.folders and not any(source.startswith(f + "/") for f in self.folders):
            return False
        if self.types and PurePosixPath(source).suffix.lower() not in self.types:
            return False
        if self.after is None and self.before is None:
            return True
        if modified is None:
            return False  # no recorded date: a date filter cannot vouch for it
        day = dt.datetime.fromtimestamp(modified).date()
        return (self.after is None or day >= self.after) and (self.before is None or day <= self.before)

    def select(self, documents: Iterable[Described]) -> list[str]:
        """The sources of the `documents` in this scope, in their order."""
        if self.sources and not (self.folders or self.types or self.after or self.before or self._pattern):
            names = self._names  # only names (the chat's picker): a lookup per document
            return [d.source for d in documents if d.source in names]
        return [d.source for d in documents if self.matches(d.source, modified=d.modified)]

    def to_json(self) -> dict[str, Any]:
        """The fields that are set, by the names `from_json` and the CLI flags use.

        Example:
            >>> parse_scope(type=["PDF"], before="2024-02-29").to_json()
            {'type': ['pdf'], 'before': '2024-02-29'}
        """
        out: dict[str, Any] = {}
        if self.sources:
            out["source"] = list(self.sources)
        if self.folders:
            out["folder"] = list(self.folders)
        if self.types:
            out["type"] = [t.lstrip(".") for t in self.types]
        if self.after:
            out["after"] = self.after.isoformat()
        if self.before:
            out["before"] = self.before.isoformat()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, *, prefix: str = "") -> Scope:
        """A scope from a JSON object with the keys of `FIELDS` (each optional; `source`, `folder`
        and `type` a string or a list of strings, `after` and `before` a YYYY-MM-DD string).
        Raises BadScope naming an unknown key or a bad value (`prefix` goes before field names).

        Example:
            >>> Scope.from_json({"folder": "reports", "type": ["pdf", "docx"]}).types
            ('.pdf', '.docx')
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise BadScope(f"{prefix or 'scope'}: not an object with keys {', '.join(FIELDS)}: {data!r:.80}")
        unknown = sorted(str(k) for k in data if k not in FIELDS)
        if unknown:
            raise BadScope(f"{prefix}{unknown[0]}: not a scope field (the fields: {', '.join(FIELDS)})")
        return parse_scope(**{k: data.get(k) for k in FIELDS}, prefix=prefix)

    def describe(self) -> str:
        """The scope in words, for messages.

        Example:
            >>> parse_scope(folder=["reports"], type=["pdf"], after="2024-01-01").describe()
            'folder reports, type pdf, modified on or after 2024-01-01'
        """
        parts = []
        if self.sources:
            parts.append(f"source {' or '.join(self.sources[:5])}" + (" or …" if len(self.sources) > 5 else ""))
        if self.folders:
            parts.append(f"folder {' or '.join(self.folders)}")
        if self.types:
            parts.append(f"type {' or '.join(t.lstrip('.') for t in self.types)}")
        if self.after and self.before:
            parts.append(f"modified from {self.after} to {self.before}")
        elif self.after:
            parts.append(f"modified on or after {self.after}")
        elif self.before:
            parts.append(f"modified on or before {self.before}")
        return ", ".join(parts) or "all documents"


def parse_scope(
    *,
    source: Iterable[str] | str | None = None,
    folder: Iterable[str] | str | None = None,
    type: Iterable[str] | str | None = None,  # the name users give it: --type, "type"
    after: str | None = None,
    before: str | None = None,
    prefix: str = "",
) -> Scope:
    """A `Scope` from strings as a user gives them (CLI flags, JSON values, the chat's picker).

    Each bad value raises BadScope in one line naming the field (`prefix` + its name: pass "--" for
    CLI flags) and the value: `--after: not a date (YYYY-MM-DD): '2024-13-01'`.

    Example:
        >>> parse_scope(after="2024-13-01", prefix="--")
        Traceback (most recent call last):
        ...
        rag.scope.BadScope: --after: not a date (YYYY-MM-DD): '2024-13-01'
    """
    sources = tuple(_source_glob(v, prefix + "source") for v in _values(source, prefix + "source"))
    folders = tuple(_folder(v, prefix + "folder") for v in _values(folder, prefix + "folder"))
    types = tuple(dict.fromkeys(_file_type(v, prefix + "type") for v in _values(type, prefix + "type")))
    start, end = _date(after, prefix + "after"), _date(before, prefix + "before")
    if start and end and start > end:
        raise BadScope(f"{prefix}after {start} is later than {prefix}before {end}: no date is in both")
    return Scope(sources, folders, types, start, end)


def escape_glob(name: str) -> str:
    """A glob matching exactly the file `name` (its `*`, `?` and `[` taken literally).

    Example:
        >>> escape_glob("report[1]*.pdf")
        'report[[]1][*].pdf'
        >>> parse_scope(source=[escape_glob("report[1].pdf")]).matches("report1.pdf")
        False
    """
    return re.sub(r"([*?\[])", r"[\1]", name)


def glob_regex(glob: str) -> str:
    """The regular expression of a source glob: `**` any characters, `*` any but "/", `?` one but
    "/", `[...]` (`[!...]` negated) a class; everything else literal.

    Example:
        >>> bool(re.fullmatch(glob_regex("a/**/*.md"), "a/b/c/d.md"))
        True
    """
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")  # zero or more folder levels
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (close := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : close]
            negated = body.startswith("!")
            body = body[1:] if negated else body
            members = re.escape(body).replace("\\-", "-")  # ranges (a-z) stay ranges
            out.append(f"[{'^' if negated else ''}{members}]")
            i = close + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _values(value: Iterable[str] | str | None, name: str) -> list[str]:
    """A field's values as a list of strings (one string is one value)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise BadScope(f"{name}: not a string or a list of strings: {value!r:.80}")
    values = list(value)
    if len(values) > MAX_VALUES:
        raise BadScope(f"{name}: {len(values)} values, over the limit of {MAX_VALUES}")
    for v in values:
        if not isinstance(v, str):
            raise BadScope(f"{name}: not a string: {v!r:.80}")
        if len(v) > MAX_CHARS:
            raise BadScope(f"{name}: a value of {len(v)} characters, over the limit of {MAX_CHARS}: {v[:40]!r}…")
    return values


def _source_glob(value: str, name: str) -> str:
    glob = value.strip().removeprefix("./")
    if not glob or "\x00" in glob:
        raise BadScope(f"{name}: not a file name or glob: {value!r}")
    return glob


def _folder(value: str, name: str) -> str:
    """A folder as sources start with it: no "./" before it, no "/" around it."""
    folder = value.strip().removeprefix("./").strip("/")
    if not folder or folder == "." or "\x00" in folder or ".." in folder.split("/"):
        raise BadScope(f"{name}: not a folder inside the indexed folders: {value!r}")
    return folder


def _file_type(value: str, name: str) -> str:
    suffix = value.strip().lower().removeprefix("*").removeprefix(".")
    if not _TYPE.fullmatch(suffix):
        raise BadScope(f"{name}: not a file type (letters and digits, like pdf): {value!r}")
    return "." + suffix


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BadScope(f"{name}: not a date (YYYY-MM-DD): {value!r:.80}")
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise ValueError
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise BadScope(f"{name}: not a date (YYYY-MM-DD): {value!r}") from None
