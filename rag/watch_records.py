"""What a folder watch reports: each change an update applied (`Change`), one applied update
(`SyncReport`), and the watch's state as the UI shows it (`SyncStatus`).

Plain frozen records, made by `rag.watch.FolderWatch` and read by `rag index --watch` (which prints
`Change.line()`) and the UI (which shows a `SyncStatus`).

Example:
    >>> report = SyncReport(0.0, (Change(ADDED, "a.md", "1 chunk"), Change(SKIPPED, "b.exe", "unsupported")))
    >>> report.changed_anything, [c.line() for c in report.changes]
    (True, ['+ a.md (1 chunk)', '! b.exe skipped: unsupported'])
"""

from __future__ import annotations

from dataclasses import dataclass

ADDED, CHANGED, REMOVED, SKIPPED = "added", "changed", "removed", "skipped"
_MARKS = {ADDED: "+", CHANGED: "~", REMOVED: "-", SKIPPED: "!"}


@dataclass(frozen=True)
class Change:
    """One change an update applied, or a file it skipped: `detail` is the chunk count of an added
    or changed document, the reason of a skipped file."""

    kind: str  # ADDED, CHANGED, REMOVED or SKIPPED
    source: str
    detail: str = ""

    def line(self) -> str:
        """The line `rag index --watch` prints.

        Example:
            >>> Change(ADDED, "notes/a.txt", "3 chunks").line(), Change(REMOVED, "c.md").line()
            ('+ notes/a.txt (3 chunks)', '- c.md')
            >>> Change(SKIPPED, "x.exe", "unsupported file type").line()
            '! x.exe skipped: unsupported file type'
        """
        name = _printable(self.source)
        if self.kind == SKIPPED:
            return f"! {name} skipped: {self.detail}"
        return f"{_MARKS[self.kind]} {name}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class SyncReport:
    """One applied update: when it finished (`time.time()`), what it changed and skipped, and the
    index after it."""

    finished_at: float
    changes: tuple[Change, ...]
    n_chunks: int = 0
    generation: int = 0

    @property
    def changed_anything(self) -> bool:
        return any(c.kind != SKIPPED for c in self.changes)


@dataclass(frozen=True)
class SyncStatus:
    """What the UI shows of a watch: the watched paths, the last update that changed the index,
    the files skipped now (source -> reason), and what it waits for ("" when nothing).
    `version` grows with every change of the status."""

    paths: tuple[str, ...]
    version: int
    last: SyncReport | None
    skipped: tuple[tuple[str, str], ...]
    waiting: str = ""


def _printable(text: str) -> str:
    """A file name on one line: control characters (a newline in a name) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
