"""Where a path under a folder watch belongs: which watched file or folder holds it and under which
`source`, named as `rag index` names it (`rag.load.find_files`: the path relative to the watched
folder; hidden files and folders, and whatever is reached through a symbolic link, are left out).

Example:
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = Path(tmp.name)
    >>> _ = (folder / "notes").mkdir(), (folder / "notes" / "a.md").write_text("hello")
    >>> watched = WatchedPaths([folder])
    >>> watched.source_of(folder / "notes" / "a.md")[1], watched.source_of(folder / ".git" / "HEAD")
    ('notes/a.md', None)
    >>> watched.locate("notes/a.md") == folder / "notes" / "a.md", watched.locate("gone.md")
    (True, None)
    >>> tmp.cleanup()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rag.load import Skipped, find_files


class WatchedPaths:
    """The files and folders given to `rag index`, mapping paths to sources and back as
    `rag.load.find_files` names them (the first path holding a source wins)."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.roots = [Path(os.path.abspath(p)) for p in paths]
        for given, root in zip(paths, self.roots):
            if not root.exists():
                raise FileNotFoundError(f"path does not exist: {given}")
        self.folders = {root for root in self.roots if root.is_dir()}  # the others are watched files

    def source_of(self, path: Path) -> tuple[Path, str] | None:
        """(root, source) for a path under a watched folder, or the watched file itself; None for
        a path outside them, hidden, or reached through a symbolic link to a folder."""
        for root in self.roots:
            if root == path and root not in self.folders:
                return root, root.name
            if not path.is_relative_to(root) or path == root or root not in self.folders:
                continue
            parts = path.relative_to(root).parts
            if any(p.startswith(".") for p in parts):
                return None
            if any((root.joinpath(*parts[:k])).is_symlink() for k in range(1, len(parts))):
                return None  # the folder link itself was reported when it appeared
            return root, "/".join(parts)
        return None

    def locate(self, source: str) -> Path | Skipped | None:
        """Where `source` is now: the first watched path holding it as a regular file, a Skipped
        for a symbolic link, or None when no watched path holds it."""
        for root in self.roots:
            if root not in self.folders:
                if root.name == source and root.is_file():
                    return root
                continue
            path = root.joinpath(*source.split("/"))
            if self.source_of(path) is None:
                continue
            if path.is_symlink():
                return Skipped(source, "symbolic link: not followed")
            if path.is_file():
                return path
            if path.exists() and not path.is_dir():
                return path  # a pipe or device: reading it is refused with its reason
        return None

    @staticmethod
    def expand(folder: Path, prefix: str) -> tuple[list[str], list[Skipped]]:
        """The sources under a folder that appeared (created, moved in), as `find_files` finds them."""
        try:
            found, skipped = find_files([folder])
        except FileNotFoundError:
            return [], []
        sources = [f"{prefix}/{source}" for _, source in found]
        return sources, [Skipped(f"{prefix}/{s.source}", s.reason) for s in skipped]
