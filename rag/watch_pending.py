"""Debouncing a folder watch's file events: the changed paths are held (`Pending`) until their
burst is over (no event for `quiet` seconds) and each file's size and modification time held still,
so that a copy of a thousand files, or a file still being written, becomes one update.

Example:
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name) / "a.md"
    >>> _ = path.write_text("hello")
    >>> pending = Pending(quiet=1.0)
    >>> pending.add(path, new_folder=False, now=10.0)
    >>> pending.take_settled(10.5)  # the burst may go on
    {}
    >>> pending.take_settled(11.0) == {path: False}, pending.paths
    (True, {})
    >>> tmp.cleanup()
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

QUIET_SECONDS = 1.0  # no event for this long: the burst is over, and a file whose size and mtime held still is settled
MAX_HOLD_SECONDS = 30.0  # a file still being written holds back the settled ones no longer than this

Signature = tuple[int, int] | None  # (size, mtime_ns) of a regular file; None for anything else


def file_signature(path: Path) -> Signature:
    """(size, mtime_ns) of the regular file at `path`, not following a symbolic link; None for
    anything else (gone, a folder, a link)."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


@dataclass
class _Path:
    signature: Signature
    new_folder: bool  # a folder appeared here (created or moved in): what is under it is scanned
    since: float  # the first event of this path not yet applied


@dataclass
class Pending:
    """Changed paths not yet applied, gathered until the burst is over and each file has settled.

    A burst is over when no event came for `quiet` seconds; a file is settled when its size and
    modification time did not move across that wait. A file still moving is waited for, holding
    the others with it, for at most `max_hold` seconds from their first event.
    """

    quiet: float = QUIET_SECONDS
    max_hold: float = MAX_HOLD_SECONDS
    paths: dict[Path, _Path] = field(default_factory=dict)
    last_event: float = 0.0

    def add(self, path: Path, *, new_folder: bool, now: float) -> None:
        held = self.paths.get(path)
        self.paths[path] = _Path(
            file_signature(path), new_folder or bool(held and held.new_folder), held.since if held else now
        )
        self.last_event = now

    def take_settled(self, now: float) -> dict[Path, bool]:
        """The settled paths (path -> whether a folder appeared there), removed from the pending
        ones; {} while the burst goes on or a file is still moving."""
        if not self.paths or now - self.last_event < self.quiet:
            return {}
        moving = set()
        for path, held in self.paths.items():
            signature = file_signature(path)
            if signature != held.signature:
                held.signature = signature
                moving.add(path)
        if moving:
            self.last_event = now  # look again one quiet period later
            if all(now - self.paths[p].since < self.max_hold for p in self.paths):
                return {}
        settled = {p: held.new_folder for p, held in self.paths.items() if p not in moving}
        for path in settled:
            del self.paths[path]
        return settled

    def put_back(self, paths: dict[Path, bool], now: float) -> None:
        """Paths whose update could not be applied (the index was busy): pending again."""
        for path, new_folder in paths.items():
            self.add(path, new_folder=new_folder, now=now)
