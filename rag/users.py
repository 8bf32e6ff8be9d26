"""Who may sign in to `rag serve`, and which collections each may read or write.

The users file is TOML (default `users.toml`), one table per user: an argon2id hash of the
password (salted, argon2-cffi's `PasswordHasher` defaults) and the grants, collection -> level::

    [users.alice]
    password = "$argon2id$v=19$m=65536,t=3,p=4$...$..."

    [users.alice.grants]
    team-a = "write"
    default = "read"

    [users."bob@example.com"]
    password = "$argon2id$v=19$..."

"write" implies "read"; a user without a `grants` table may sign in but read nothing. No other
keys are allowed (a typo such as `pasword` is refused, not ignored). The file never holds a
password, only its hash; `rag user ...` rewrites it atomically (temporary file, fsync, rename,
mode 0600) under the lock file `users.toml.lock` beside it, keeping the other users as they were.

A missing file is a file with no users. A broken file (not TOML, a user without a hash, a bad
name or level) is a `UsersError` naming the file and the line or user when `Users` opens it, so a
server does not start on it. A running `Users` re-reads the file whenever it changed on disk (one
stat per call); if that rewrite is broken it keeps the last good view and logs a warning once per
change, rather than locking everybody out, until the file is fixed.

Example:
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = Path(folder.name) / "users.toml"
    >>> users = Users(path)
    >>> users.add("alice", "correct horse")
    >>> users.grant("alice", "team-a", WRITE)
    >>> users.verify("alice", "correct horse"), users.verify("alice", "wrong horse")
    (True, False)
    >>> alice = users.user("alice")
    >>> alice.can_write("team-a"), alice.readable(["default", "team-a"])
    (True, ['team-a'])
    >>> folder.cleanup()
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

DEFAULT_USERS_FILE = "users.toml"
READ, WRITE = "read", "write"
LEVELS = (READ, WRITE)
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # longer ones are refused before hashing: a sign-in form never needs more

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# An argon2 encoded hash: base64 fields between `$`, so it is written into TOML as it is.
_HASH = re.compile(r"\$argon2(id|i|d)\$[A-Za-z0-9+/=,$]+")
_HASHER = PasswordHasher()


class UsersError(ValueError):
    """A bad users file, name, level or password: a one-line message naming the bad value."""


def check_user_name(name: str) -> str:
    """`name` if it is a user name (a letter or digit, then up to 63 of those or `_.@-`); else UsersError."""
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise UsersError(f"not a user name (a letter or digit, then up to 63 of those or _ . @ -): {name!r}")
    return name


def check_collection_name(name: str) -> str:
    """`name` if it is a collection name (a letter or digit, then up to 63 of those or `_-`); else UsersError."""
    if not isinstance(name, str) or not _COLLECTION_NAME.fullmatch(name):
        raise UsersError(f"not a collection name (a letter or digit, then up to 63 of those or _ -): {name!r}")
    return name


def check_level(level: str) -> str:
    """`level` if it is READ or WRITE; else UsersError."""
    if level not in LEVELS:
        raise UsersError(f"not a grant level (read or write): {level!r}")
    return level


def _check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise UsersError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UsersError(f"the password must have at most {MAX_PASSWORD} characters")
    return password


@dataclass(frozen=True)
class User:
    """A user as the users file has it now (no password hash here): the collections it may use."""

    name: str
    grants: Mapping[str, str] = field(hash=False)  # collection -> READ | WRITE

    def can_read(self, collection: str) -> bool:
        return self.grants.get(collection) in LEVELS

    def can_write(self, collection: str) -> bool:
        return self.grants.get(collection) == WRITE

    def readable(self, collections: Iterable[str]) -> list[str]:
        """The collections of `collections` this user may read, in their order."""
        return [c for c in collections if self.can_read(c)]


class SignInLimiter:
    """Wrong passwords are rate-limited: after `max_failures` failures for one user name within
    `window_s`, every attempt for that name is refused (even a right password) for `lockout_s`,
    doubling on each further lockout up to `max_lockout_s`; a success resets the name. A global
    cap (`max_failures_total` failures per `window_s` over all names) protects the CPU from
    argon2 floods: while it is reached every name is refused. Clock injectable (`clock=time.monotonic`).
    Thread-safe.

    A name's doubling is forgotten once it has had no failure for `max_lockout_s` and is not locked.
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_s: float = 300.0,
        lockout_s: float = 30.0,
        max_lockout_s: float = 900.0,
        max_failures_total: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or max_failures_total < 1:
            raise ValueError(f"failure limits must be >= 1, got {max_failures} and {max_failures_total}")
        self.max_failures, self.window_s = max_failures, window_s
        self.lockout_s, self.max_lockout_s = lockout_s, max_lockout_s
        self.max_failures_total = max_failures_total
        self._clock = clock
        self._lock = threading.Lock()
        self._names: dict[str, _NameState] = {}
        self._all: deque[float] = deque()  # failure times over all names, oldest first

    def locked_for(self, name: str) -> float:
        """Seconds until `name` may try again; 0.0 if it may now."""
        with self._lock:
            now = self._clock()
            state = self._names.get(name)
            own = state.locked_until - now if state else 0.0
            return max(own, self._global_wait(now), 0.0)

    def failed(self, name: str) -> None:
        """Record a wrong password (or an unknown name) for `name`; may lock it."""
        with self._lock:
            now = self._clock()
            self._all.append(now)
            self._prune(now)
            state = self._names.setdefault(name, _NameState())
            state.failures.append(now)
            state.last_failure = now
            while state.failures and state.failures[0] <= now - self.window_s:
                state.failures.popleft()
            if len(state.failures) >= self.max_failures:
                state.locked_until = now + min(self.lockout_s * 2**state.lockouts, self.max_lockout_s)
                state.lockouts += 1
                state.failures.clear()

    def succeeded(self, name: str) -> None:
        """A right password for `name`: forget its failures and lockouts."""
        with self._lock:
            self._names.pop(name, None)

    def _global_wait(self, now: float) -> float:
        while self._all and self._all[0] <= now - self.window_s:
            self._all.popleft()
        if len(self._all) < self.max_failures_total:
            return 0.0
        # Refused until enough of the oldest failures leave the window to fall below the cap.
        return self._all[len(self._all) - self.max_failures_total] + self.window_s - now

    def _prune(self, now: float) -> None:
        """Forget quiet names, so a flood of made-up names cannot grow the table without bound."""
        if len(self._names) <= self.max_failures_total:
            return
        quiet = now - max(self.window_s, self.max_lockout_s)
        for name in [n for n, s in self._names.items() if s.locked_until <= now and s.last_failure <= quiet]:
            del self._names[name]


@dataclass
class _NameState:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0
    last_failure: float = 0.0


_Stamp = tuple[int, int, int]


def _stamp(st: os.stat_result) -> _Stamp:
    """What changes when the file is rewritten: a rename gives a new inode, an edit in place a new mtime or size."""
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class _Record:
    password: str  # the argon2 hash
    grants: Mapping[str, str]


class Users:
    """The users file (TOML), re-read whenever it changed on disk (a stat per call), so
    `rag user grant/revoke/remove` in another process takes effect on the server's next request.

    Opening a broken file raises UsersError; a missing one has no users."""

    def __init__(self, path: str | os.PathLike[str], *, limiter: SignInLimiter | None = None) -> None:
        self.path = Path(path)
        self._limiter = limiter if limiter is not None else SignInLimiter()
        self._lock = threading.Lock()
        # Attempts for one name run one after another, so parallel guesses all meet the lockout.
        self._name_locks = [threading.Lock() for _ in range(64)]
        self._bad_stamp: _Stamp | None = None
        self._view: tuple[_Stamp | None, dict[str, _Record]] = self._read_strict()  # one object: swapped whole

    # --- reading -----------------------------------------------------------------------------

    def user(self, name: str) -> User | None:
        """The user `name` as the file has it now; None if there is none (or the name is not valid)."""
        record = self._current().get(name)
        return User(name, record.grants) if record else None

    def names(self) -> list[str]:
        return sorted(self._current())

    def locked_for(self, name: str) -> float:
        """Seconds until `name` may try to sign in again (0.0 if it may now)."""
        return self._limiter.locked_for(name)

    def verify(self, name: str, password: str) -> bool:
        """True if `password` is `name`'s. Never raises: a bad or unknown name, a wrong password, a
        locked name are all False. An unknown name costs a hash as a known one does (no timing oracle)."""
        if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
            return False  # the rule is public: refusing it early tells nothing
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return False
        with self._name_locks[hash(name) % len(self._name_locks)]:
            if self._limiter.locked_for(name) > 0:
                return False
            record = self._current().get(name)
            ok = _verify_hash(record.password if record else _dummy_hash(), password) and record is not None
            (self._limiter.succeeded if ok else self._limiter.failed)(name)
            return ok

    def _current(self) -> dict[str, _Record]:
        """The users as the file has them now; the last good view if a rewrite is broken."""
        try:
            stamp: _Stamp | None = _stamp(os.stat(self.path))
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            log.warning("%s: cannot stat the users file (%s); keeping the users read before", self.path, exc)
            return self._view[1]
        with self._lock:
            if stamp == self._view[0] or stamp == self._bad_stamp:
                return self._view[1]
            try:
                self._view = self._read_strict()
                self._bad_stamp = None
            except UsersError as exc:
                self._bad_stamp = stamp
                log.warning("%s; keeping the %d users read before", exc, len(self._view[1]))
            return self._view[1]

    def _read_strict(self) -> tuple[_Stamp | None, dict[str, _Record]]:
        """(stamp, users) of the file now; UsersError naming the file if it is broken."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            return None, {}
        except OSError as exc:
            raise UsersError(f"{self.path}: cannot read the users file: {exc.strerror or exc}") from None
        return _stamp(st), _parse(data, self.path)

    # --- writing -----------------------------------------------------------------------------

    def add(self, name: str, password: str) -> None:
        """Add `name` with `password` (at least 8 characters) and no grants; UsersError if it exists."""
        check_user_name(name)
        hashed = _HASHER.hash(_check_password(password))
        with self._edit() as records:
            if name in records:
                raise UsersError(f"user already exists: {name!r}")
            records[name] = _Record(hashed, {})

    def set_password(self, name: str, password: str) -> None:
        hashed = _HASHER.hash(_check_password(password))
        with self._edit() as records:
            records[name] = _Record(hashed, _existing(records, name).grants)

    def remove(self, name: str) -> None:
        with self._edit() as records:
            _existing(records, name)
            del records[name]

    def grant(self, name: str, collection: str, level: str) -> None:
        """Let `name` read (READ) or read and write (WRITE) `collection`, replacing its grant there."""
        check_collection_name(collection)
        check_level(level)
        with self._edit() as records:
            record = _existing(records, name)
            records[name] = _Record(record.password, {**record.grants, collection: level})

    def revoke(self, name: str, collection: str) -> None:
        """Take `collection` from `name`; UsersError if it had no grant there."""
        check_collection_name(collection)
        with self._edit() as records:
            record = _existing(records, name)
            if collection not in record.grants:
                raise UsersError(f"user {name!r} has no grant on collection {collection!r}")
            records[name] = _Record(record.password, {c: v for c, v in record.grants.items() if c != collection})

    @contextmanager
    def _edit(self) -> Iterator[dict[str, _Record]]:
        """The users as the file has them, under the lock file; written back atomically if no error.
        A broken file is refused here (rewriting it would drop what could not be read)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsersError(f"{lock_path}: cannot open the lock file: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            records = dict(self._read_strict()[1])
            yield records
            text = _render(records)
            _parse(text.encode("utf-8"), self.path)  # what is written reads back (names and hashes need no escapes)
            _write_atomic(self.path, text)
        finally:
            os.close(fd)  # releases the lock


def _existing(records: Mapping[str, _Record], name: str) -> _Record:
    check_user_name(name)
    if name not in records:
        raise UsersError(f"no such user: {name!r}")
    return records[name]


def _verify_hash(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, verified against when the name is unknown (same cost as a real one)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def _parse(data: bytes, path: Path) -> dict[str, _Record]:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsersError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsersError(f"{path}: not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"users"})
    if extra:
        raise UsersError(f"{path}: unknown top-level key {extra[0]!r} (only [users.NAME] tables)")
    users = doc.get("users", {})
    if not isinstance(users, dict):
        raise UsersError(f"{path}: 'users' must be a table of [users.NAME] tables")
    return {name: _parse_user(name, entry, path) for name, entry in users.items()}


def _parse_user(name: str, entry: Any, path: Path) -> _Record:
    where = f"{path}: user {name!r}"
    try:
        check_user_name(name)
    except UsersError as exc:
        raise UsersError(f"{path}: {exc}") from None
    if not isinstance(entry, dict):
        raise UsersError(f"{where}: must be a table")
    extra = sorted(set(entry) - {"password", "grants"})
    if extra:
        raise UsersError(f"{where}: unknown key {extra[0]!r} (only password and grants)")
    hashed = entry.get("password")
    if not isinstance(hashed, str) or not _HASH.fullmatch(hashed):
        raise UsersError(f"{where}: no argon2 password hash (set one with `rag user passwd {name}`)")
    grants = entry.get("grants", {})
    if not isinstance(grants, dict):
        raise UsersError(f'{where}: grants must be a table of collection = "read" | "write"')
    try:
        for collection, level in grants.items():
            check_collection_name(collection)
            check_level(level)
    except UsersError as exc:
        raise UsersError(f"{where}: {exc}") from None
    return _Record(hashed, MappingProxyType(dict(grants)))


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else f'"{name}"'  # names never hold quotes or backslashes


def _render(records: Mapping[str, _Record]) -> str:
    lines = ["# Users of `rag serve` (rag/users.py): argon2id password hashes and grants. Edit with `rag user`."]
    for name in sorted(records):
        record = records[name]
        lines += ["", f"[users.{_key(name)}]", f'password = "{record.password}"']
        if record.grants:
            lines += ["", f"[users.{_key(name)}.grants]"]
            lines += [f'{c} = "{record.grants[c]}"' for c in sorted(record.grants)]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` beside it (mkstemp: mode 0600), fsync, rename, fsync the folder."""
    folder = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsersError(f"{path}: cannot write the users file: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
