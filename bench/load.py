"""Load on the chat UI: concurrent users asking while the index is updated through the UI.

    python -m bench.load --users 16 --seconds 60 --url http://127.0.0.1:7860
    python -m bench.load --users 4 --seconds 15 --index-dir /tmp/scratch-index   # starts its own `rag serve`

N users (gradio_client) ask a mix of seed questions through the public `ask` API for a bounded
time (and at most `--max-requests` each). One more user, a browser session speaking Gradio's
queue protocol, does what a person on the Documents tab does: it uploads a document before the
users start, and a third of the way in uploads another and removes the first through the upload
and remove handlers (the UI's own path: staging, `build_index`, `remove_documents`, reload).

Every answer is checked against the `rag ask --json` contract; answers to questions asked after
the update finished must reflect it: the question only the added document answers is answered
from it, the one only the removed document answered abstains. The report (throughput,
p50/p95/p99 latency, errors, checks) goes to bench/results/load-<users>u-<seconds>s.json; the
exit code is 0 only with no error and every check passed. Only a loopback URL is accepted:
this tool floods a server and uploads files to it.

With `--sign-in` (and `--index-dir`), the run is of a shared deployment: a collection "private"
is added to the index folder holding one document, `rag serve` runs with `--users` (a users file
of the run: one user per client, granted the default collection, none granted "private"), every
client and the browser session sign in, and every eighth request of each user names the
collection "private" and must be refused. No answer may cite, quote or come from "private".
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.common import rag_command
from rag.types import ANSWER_JSON_KEYS

CITATION_KEYS = {"n", "source", "start", "end", "page", "quote", "passage", "score"}
# (question, a string the answer must contain, or None to only check the contract)
SEED_QUESTIONS: list[tuple[str, str | None]] = [
    ("How many North Korean soldiers have arrived in Kursk?", "8,000"),
    ("What did Blinken warn?", None),
    ("Who met Chinese diplomats at Ambassador Shi Feng's residence?", "Shi Feng"),
    ("How many North Korean troops are believed to have entered Russia?", None),
    ("What is the boiling point of liquid nitrogen in Kelvin?", None),
    ("Who won the 1998 football world cup?", None),
]
ADDED_FACT = "The Quenby Marsh heron colony counted {n:,} nesting pairs in the spring survey of the wetlands."
ADDED_QUESTION = "How many nesting pairs did the Quenby Marsh heron colony count?"
REMOVED_FACT = "The Tollerton clockworks repaired {n:,} tower clocks for the cathedral towns that winter."
REMOVED_QUESTION = "How many tower clocks did the Tollerton clockworks repair?"
PRIVATE = "private"  # the collection no load user is granted (--sign-in)
PRIVATE_SOURCE = "bench-private-ledger.txt"
PRIVATE_FACT = "The Halloran ledger vault opens with the phrase amber-otter-{n}."
PRIVATE_QUESTION = "What phrase opens the Halloran ledger vault?"


class NotLoopback(ValueError):
    pass


def check_loopback(url: str) -> str:
    """`url` without a trailing slash, or NotLoopback unless every address of its host is loopback.

    Example:
        >>> check_loopback("http://127.0.0.1:7860/")
        'http://127.0.0.1:7860'
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise NotLoopback(f"--url must be http://HOST:PORT, got {url!r}")
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise NotLoopback(f"cannot resolve {parsed.hostname!r}: {exc}") from None
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise NotLoopback(
            f"refusing {url}: {parsed.hostname} is not a loopback address "
            f"({', '.join(sorted(addresses))}); this tool floods a server and uploads to it, "
            "so it only runs against this machine"
        )
    return url.rstrip("/")


def check_answer(data: Any, question: str) -> str | None:
    """Why `data` breaks the `rag ask --json` contract, or None when it keeps it."""
    if not isinstance(data, dict) or set(data) != ANSWER_JSON_KEYS:
        return f"keys {sorted(data) if isinstance(data, dict) else type(data).__name__}"
    if data["question"] != question.replace("\x00", " ").strip():
        return f"question echoed as {data['question']!r}"
    if not isinstance(data["answer"], str) or not data["answer"] or not isinstance(data["abstained"], bool):
        return "answer or abstained of the wrong type"
    if not 0.0 <= data["confidence"] <= 1.0:
        return f"confidence {data['confidence']}"
    if not isinstance(data["tentative"], bool) or (data["tentative"] and not data["abstained"]):
        return "tentative of the wrong type, or tentative without abstaining"
    # A "not sure" answer abstains but cites the closest passage (one citation).
    if data["abstained"] != (not data["citations"] or (data["tentative"] and len(data["citations"]) == 1)):
        return "an abstention with citations, or an answer without"
    for n, c in enumerate(data["citations"], start=1):
        if not isinstance(c, dict) or set(c) != CITATION_KEYS or c["n"] != n:
            return f"citation {n} malformed"
        if c["quote"] not in c["passage"] or c["end"] - c["start"] != len(c["quote"]) or f"[{n}]" not in data["answer"]:
            return f"citation {n} does not match its quote"
    return None


# ----------------------------------------------------------------------------------------------
# The Documents tab, spoken the way the browser speaks it


class BrowserSession:
    """One browser tab: calls the UI's event handlers (which are not part of the public API) by
    their function index over Gradio's queue protocol, with this tab's session state.

    Example:
        >>> tab = BrowserSession("http://127.0.0.1:7860")  # doctest: +SKIP
        >>> tab.upload_documents([Path("notes.txt")])  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 300.0,
        auth: tuple[str, str] | None = None,
        collection: str | None = None,
    ) -> None:
        import httpx

        self.url = check_loopback(url)
        self.http = httpx.Client(base_url=self.url, timeout=timeout)
        self.session_hash = uuid.uuid4().hex
        self.collection = collection  # the tab's collection picker (None: the first the user may read)
        if auth is not None:  # signs in as the page's sign-in form does; the session cookie is kept
            self.http.post("/login", data={"username": auth[0], "password": auth[1]}).raise_for_status()
        self.config = self.http.get("/config").raise_for_status().json()
        self._ids = {
            c["props"]["elem_id"]: c["id"] for c in self.config["components"] if c.get("props", {}).get("elem_id")
        }

    def close(self) -> None:
        self.http.close()

    def component(self, elem_id: str) -> dict:
        return next(c for c in self.config["components"] if c["id"] == self._ids[elem_id])

    def handler(self, elem_id: str | int, event: str) -> tuple[int, int]:
        """(function index, trigger id) of the handler listening to `event` on the component with
        this elem_id (or this component id: 0 is the page itself, for "load")."""
        target = elem_id if isinstance(elem_id, int) else self._ids[elem_id]
        for dep in self.config["dependencies"]:
            if [target, event] in [list(t) for t in dep["targets"]]:
                return dep["id"], target
        raise LookupError(f"no handler for {event} on {elem_id!r}")

    def call(
        self, elem_id: str | int, event: str, data: list[Any], *, event_data: Any = None
    ) -> tuple[list[Any], list[str]]:
        """Run a handler to completion: (its final outputs, every raw server message on the way)."""
        fn_index, trigger = self.handler(elem_id, event)
        joined = (
            self.http.post(
                "/gradio_api/queue/join",
                json={
                    "data": data,
                    "fn_index": fn_index,
                    "trigger_id": trigger,
                    "session_hash": self.session_hash,
                    "event_data": event_data,
                },
            )
            .raise_for_status()
            .json()
        )
        raw: list[str] = []
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                raw.append(line[5:])
                message = json.loads(line[5:])
                if message.get("event_id") != joined["event_id"] or message.get("msg") != "process_completed":
                    continue
                if not message.get("success", True):
                    raise RuntimeError(f"{elem_id} {event} failed: {message.get('output', {}).get('error')}")
                return message["output"]["data"], raw
        raise RuntimeError(f"{elem_id} {event}: the stream ended before the handler completed")

    def upload_documents(self, paths: Sequence[Path]) -> str:
        """Upload files as the Documents tab does; the status markdown it shows."""
        files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths]
        stored = self.http.post("/gradio_api/upload", files=files).raise_for_status().json()
        payload = [
            {
                "path": s,
                "orig_name": p.name,
                "size": p.stat().st_size,
                "mime_type": "text/plain",
                "meta": {"_type": "gradio.FileData"},
            }
            for s, p in zip(stored, paths)
        ]
        outputs, _ = self.call("upload", "upload", [payload, self.collection])
        return outputs[1]

    def remove_document(self, source: str) -> str:
        """Pick `source` in the remove list and press Remove; the status markdown it shows."""
        outputs, _ = self.call("remove", "click", [source, self.collection])
        return outputs[0]


# ----------------------------------------------------------------------------------------------
# The run


@dataclass
class Record:
    question: str
    started: float
    seconds: float
    error: str | None = None
    data: dict | None = None
    probe: bool = False  # asked naming a collection the user may not read (--sign-in)


@dataclass
class Update:
    added: str = ""
    removed: str = ""
    done_at: float | None = None
    seconds: float = 0.0
    statuses: list[str] = field(default_factory=list)
    error: str | None = None


def run_load(
    url: str,
    *,
    users: int,
    seconds: float,
    max_requests: int = 10_000,
    update: bool = True,
    seed: int = 0,
    accounts: Sequence[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Drive the server at `url`; the report as a dict (see the module docstring). `accounts`:
    (name, password) of each user, signed in (the first also signs in the browser session); the
    collection "private" is then probed and checked for leaks."""
    from gradio_client import Client

    url = check_loopback(url)
    work = Path(tempfile.mkdtemp(prefix="rag-load-"))
    added, removed, added_figure, removed_figure = _update_documents(work, seed)
    questions = [*SEED_QUESTIONS, (ADDED_QUESTION, None), (REMOVED_QUESTION, None)]
    if accounts:
        questions.append((PRIVATE_QUESTION, None))

    def auth(k: int) -> tuple[str, str] | None:
        return tuple(accounts[k % len(accounts)]) if accounts else None  # type: ignore[return-value]

    tab = BrowserSession(url, auth=auth(0))
    documents_before = _documents(tab)
    upd = Update(added=added.name, removed=removed.name)
    if update:
        upd.statuses.append(tab.upload_documents([removed]))  # the document the update will remove
    clients = [Client(url + "/", auth=auth(k), verbose=False, download_files=False) for k in range(users)]
    t0 = time.monotonic()
    asking = _Users(
        questions, t0=t0, deadline=t0 + seconds, max_requests=max_requests, probe=PRIVATE if accounts else None
    )
    threads = [threading.Thread(target=asking.ask, args=(clients[k], seed + 1 + k), daemon=True) for k in range(users)]
    if update:
        threads.append(
            threading.Thread(
                target=_update_midway,
                args=(tab, upd, added, removed.name),
                kwargs={"seconds": seconds, "t0": t0},
                daemon=True,
            )
        )
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, asking.deadline + 300 - time.monotonic()))
    elapsed = time.monotonic() - t0
    hung = sum(t.is_alive() for t in threads)  # a request still waiting 5 minutes after the end

    records = asking.records
    checks = (
        _update_checks(records, upd, clients[0], added.name, removed.name, added_figure, removed_figure)
        if update
        else {}
    )
    if update:  # leave the index holding what it held
        with contextlib.suppress(Exception):
            upd.statuses.append(tab.remove_document(added.name))
    checks["documents_before"], checks["documents_after"] = documents_before, _documents(tab)
    _close_all(tab, clients, work)
    if accounts:
        checks["private_leaks"] = _leaks(records)
    return _report(
        records,
        upd if update else None,
        checks,
        users=users,
        seconds=seconds,
        elapsed=elapsed,
        wrong=_wrong_answers(records, questions),
        hung=hung,
    )


def _update_documents(work: Path, seed: int) -> tuple[Path, Path, str, str]:
    """The document the update adds and the one it removes, written into `work` under names of this
    run (each states a figure drawn with `seed`), and the two figures."""
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(seed)
    added = work / f"bench-added-{run_id}.txt"
    removed = work / f"bench-removed-{run_id}.txt"
    added.write_text(ADDED_FACT.format(n=rng.randint(2000, 9000)) + "\n", encoding="utf-8")
    removed.write_text(REMOVED_FACT.format(n=rng.randint(2000, 9000)) + "\n", encoding="utf-8")
    added_figure = added.read_text().split(" counted ")[1].split(" ")[0]
    removed_figure = removed.read_text().split(" repaired ")[1].split(" ")[0]
    return added, removed, added_figure, removed_figure


@dataclass
class _Users:
    """What the user threads share: the questions, the clock, and the records they all append to."""

    questions: list[tuple[str, str | None]]
    t0: float
    deadline: float
    max_requests: int
    probe: str | None = None  # a collection the users may not read: every eighth request names it
    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, client: Any, seed: int) -> None:
        """One user: the questions in an order shuffled with `seed`, round and round, until the
        deadline or `max_requests`; each answer checked (`check_answer`) and recorded."""
        order = list(range(len(self.questions)))
        random.Random(seed).shuffle(order)
        for i in range(self.max_requests):
            if time.monotonic() >= self.deadline:
                return
            question = self.questions[order[i % len(order)]][0]
            started = time.monotonic()
            if self.probe is not None and i % 8 == 7:
                record = self._probe(client, question, started)
            else:
                record = self._ask(client, question, started)
            with self.lock:
                self.records.append(record)

    def _ask(self, client: Any, question: str, started: float) -> Record:
        try:
            data = client.predict(question, api_name="/ask")
            problem = check_answer(data, question)
            return Record(question, started - self.t0, time.monotonic() - started, problem, data)
        except Exception as exc:
            return Record(
                question,
                started - self.t0,
                time.monotonic() - started,
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
            )

    def _probe(self, client: Any, question: str, started: float) -> Record:
        """Ask naming the collection not granted: refused is right, an answer is a leak."""
        try:
            data = client.predict(question, collection=self.probe, api_name="/ask")
            problem: str | None = f"answered from collection {self.probe!r}, which this user may not read"
        except Exception as exc:
            data, problem = None, None if "No collection" in str(exc) else f"{type(exc).__name__}: {exc}"[:300]
        return Record(question, started - self.t0, time.monotonic() - started, problem, data, probe=True)


def _update_midway(tab: BrowserSession, upd: Update, added: Path, removed: str, *, seconds: float, t0: float) -> None:
    """A third of the way in (at most 20 s), upload `added` and remove `removed` through the
    Documents tab, noting in `upd` when it finished, how long it took, and any error."""
    time.sleep(min(seconds / 3, 20))  # a third of the way in: users are asking at full tilt
    started = time.monotonic()
    try:
        upd.statuses.append(tab.upload_documents([added]))
        upd.statuses.append(tab.remove_document(removed))
        upd.done_at = time.monotonic() - t0
    except Exception as exc:
        upd.error = f"{type(exc).__name__}: {exc}"
    upd.seconds = time.monotonic() - started


def _close_all(tab: BrowserSession, clients: list[Any], work: Path) -> None:
    """Close the browser session and the clients, and delete the run's documents."""
    tab.close()
    for c in clients:
        with contextlib.suppress(Exception):
            c.close()
    shutil.rmtree(work, ignore_errors=True)


def _documents(tab: BrowserSession) -> list[str]:
    """The sources the Documents tab lists (what the page load shows)."""
    (table, *_), _ = tab.call("reload-report", "click", [None])
    return sorted(row[0] for row in table["data"])


def _wrong_answers(records: list[Record], questions: list[tuple[str, str | None]]) -> list[str]:
    expected = dict(questions)
    return [
        f"{r.question!r}: {r.data['answer'][:120]!r}"
        for r in records
        if r.error is None and r.data and expected.get(r.question) and expected[r.question] not in r.data["answer"]
    ]


def _update_checks(
    records: list[Record], upd: Update, client: Any, added: str, removed: str, added_figure: str, removed_figure: str
) -> dict[str, Any]:
    """After the update finished: the added document answers, the removed one is gone."""
    if upd.done_at is None:
        return {"update_finished": False}
    after = [r for r in records if r.error is None and not r.probe and r.started > upd.done_at]
    stale = []
    for r in after:
        sources = {c["source"] for c in r.data["citations"]}  # type: ignore[index]
        if r.question == ADDED_QUESTION and (r.data["abstained"] or added not in sources):  # type: ignore[index]
            stale.append(f"added question not answered from {added}: {r.data['answer'][:100]!r}")  # type: ignore[index]
        if r.question == REMOVED_QUESTION and (not r.data["abstained"] or removed in sources):  # type: ignore[index]
            stale.append(f"removed question still answered: {r.data['answer'][:100]!r}")  # type: ignore[index]
    final_added = client.predict(ADDED_QUESTION, api_name="/ask")
    final_removed = client.predict(REMOVED_QUESTION, api_name="/ask")
    return {
        "update_finished": True,
        "asked_after_update": len(after),
        "added_or_removed_question_asked_after_update": sum(
            r.question in (ADDED_QUESTION, REMOVED_QUESTION) for r in after
        ),
        "stale_answers_after_update": stale[:20],
        "added_question_answered": (
            not final_added["abstained"]
            and added_figure in final_added["answer"]
            and added in {c["source"] for c in final_added["citations"]}
        ),
        "removed_question_abstains": bool(final_removed["abstained"]) and removed_figure not in final_removed["answer"],
    }


def _leaks(records: list[Record]) -> list[str]:
    """Answers that came from, cite or quote the collection no load user may read."""
    found = []
    for r in records:
        if r.data is None:
            continue
        sources = {c["source"] for c in r.data.get("citations") or []}
        if (
            r.data.get("collection") not in (None, "default")
            or PRIVATE_SOURCE in sources
            or "amber-otter" in str(r.data)
        ):
            found.append(f"{r.question!r}: collection {r.data.get('collection')!r}, sources {sorted(sources)}")
    return found


def sign_in_setup(index_dir: Path, work: Path, users: int, *, seed: int = 0) -> tuple[Path, list[tuple[str, str]]]:
    """For `--sign-in`: the collection "private" (one document) built beside the index's default
    collection, and a users file in `work` with one user per client, each granted the default
    collection (write: the browser session uploads) and none "private". (users file, accounts)."""
    from rag.users import Users

    private = work / "private"
    private.mkdir(parents=True, exist_ok=True)
    fact = PRIVATE_FACT.format(n=random.Random(seed).randint(100, 999))
    (private / PRIVATE_SOURCE).write_text(fact + "\n", encoding="utf-8")
    subprocess.run(
        [*rag_command(), "index", str(private), "--index-dir", str(index_dir), "--collection", PRIVATE],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    file = work / "users.toml"
    accounts = []
    registry = Users(file)
    for k in range(users):
        name, password = f"load-{k}", uuid.uuid4().hex
        registry.add(name, password)
        registry.grant(name, "default", "write")
        accounts.append((name, password))
    registry.add("keeper", uuid.uuid4().hex)
    registry.grant("keeper", PRIVATE, "read")
    return file, accounts


def _report(
    records: list[Record],
    upd: Update | None,
    checks: dict[str, Any],
    *,
    users: int,
    seconds: float,
    elapsed: float,
    wrong: list[str],
    hung: int,
) -> dict[str, Any]:
    import numpy as np

    ok = [r for r in records if r.error is None and not r.probe]
    errors = [r for r in records if r.error is not None]
    probes = [r for r in records if r.probe]
    leaks = checks.pop("private_leaks", [])
    latencies = np.array([r.seconds * 1000 for r in ok]) if ok else np.array([float("nan")])
    update_ok = upd is None or (
        upd.error is None
        and checks.get("update_finished")
        and not checks.get("stale_answers_after_update")
        and checks.get("added_question_answered")
        and checks.get("removed_question_abstains")
        and checks["documents_before"] == checks["documents_after"]
    )
    return {
        "users": users,
        "seconds": seconds,
        "elapsed_s": round(elapsed, 2),
        "requests": len(records) + hung,
        "answered": len(ok),
        "errors": len(errors) + hung,
        "hung": hung,
        "throughput_rps": round(len(ok) / elapsed, 2) if elapsed else 0.0,
        "latency_ms": {f"p{p}": round(float(np.percentile(latencies, p)), 1) for p in (50, 95, 99)}
        | {"max": round(float(latencies.max()), 1)},
        "abstained": sum(bool(r.data and r.data["abstained"]) for r in ok),
        "probes_refused": sum(r.error is None for r in probes),
        "probes": len(probes),
        "private_leaks": leaks[:20],
        "n_private_leaks": len(leaks),
        "wrong_answers": wrong[:20],
        "n_wrong_answers": len(wrong),
        "error_samples": sorted({r.error for r in errors if r.error})[:20],
        "documents_before": checks.pop("documents_before"),
        "documents_after": checks.pop("documents_after"),
        "update": None
        if upd is None
        else {
            "added": upd.added,
            "removed": upd.removed,
            "done_at_s": upd.done_at,
            "seconds": round(upd.seconds, 2),
            "error": upd.error,
            "statuses": upd.statuses,
            **checks,
        },
        "passed": bool(not errors and not hung and not wrong and update_ok and not leaks),
    }


# ----------------------------------------------------------------------------------------------
# A server to run against


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def peak_rss_mb(self) -> float | None:
        """The server process's peak resident memory so far (Linux VmHWM), in MiB."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        line = next((ln for ln in status.splitlines() if ln.startswith("VmHWM:")), None)
        return round(int(line.split()[1]) / 1024, 1) if line else None


@contextlib.contextmanager
def rag_server(
    index_dir: str | os.PathLike[str],
    *,
    log: Path | None = None,
    timeout: float = 240,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[Server]:
    """`rag serve` on `index_dir` at a free loopback port for the duration (`env`: extra variables,
    `args`: more `rag serve` flags)."""
    port = free_port()
    command = rag_command()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    log = log or Path(index_dir).parent / f"serve-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*command, "serve", "--index-dir", str(index_dir), "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rag serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/", timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"rag serve did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running `rag serve` on this machine, e.g. http://127.0.0.1:7860")
    target.add_argument(
        "--index-dir",
        help="start `rag serve` on this index folder for the run (use a copy: the run adds and removes documents)",
    )
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--max-requests", type=int, default=10_000, help="per user (default: %(default)s)")
    p.add_argument("--no-update", action="store_true", help="only ask; do not upload or remove documents")
    p.add_argument("--out", help="report path (default: bench/results/load-<users>u-<seconds>s.json)")
    p.add_argument(
        "--sign-in",
        action="store_true",
        help="with --index-dir: serve with --users, sign every client in, and check that the collection "
        "no user is granted never answers (it adds a collection 'private' to the index folder)",
    )
    args = p.parse_args(argv)
    if not 1 <= args.users <= 256 or not 0 < args.seconds <= 3600 or args.max_requests < 1:
        print("bench.load: error: --users must be 1-256, --seconds 0-3600, --max-requests >= 1", file=sys.stderr)
        return 2
    if args.sign_in and not args.index_dir:
        print("bench.load: error: --sign-in needs --index-dir (it starts its own server)", file=sys.stderr)
        return 2
    accounts: list[tuple[str, str]] | None = None
    serve_args: list[str] = []
    if args.sign_in:
        work = Path(tempfile.mkdtemp(prefix="rag-load-users-"))
        users_file, accounts = sign_in_setup(Path(args.index_dir), work, args.users)
        serve_args = ["--users", str(users_file)]
    try:
        if args.url:
            check_loopback(args.url)
        with contextlib.nullcontext(None) if args.url else rag_server(args.index_dir, args=serve_args) as server:
            url = args.url or (server.url if server is not None else "")
            report = run_load(
                url,
                users=args.users,
                seconds=args.seconds,
                max_requests=args.max_requests,
                update=not args.no_update,
                accounts=accounts,
            )
            if server is not None:
                report["server_peak_rss_mb"] = server.peak_rss_mb()
    except NotLoopback as exc:
        print(f"bench.load: error: {exc}", file=sys.stderr)
        return 2
    name = f"load-{args.users}u-{args.seconds:g}s" + ("-sign-in" if args.sign_in else "")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        from bench.common import write_result

        write_result(name, report)
    lat = report["latency_ms"]
    print(
        f"{report['users']} users, {report['elapsed_s']:.0f} s: {report['answered']} answered, "
        f"{report['errors']} errors, "
        f"{report['probes_refused']}/{report['probes']} probes of a collection not granted refused, "
        f"{report['n_private_leaks']} leaks, "
        f"{report['throughput_rps']} req/s, p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms; "
        f"update {'ok' if report['update'] is None or report['passed'] else report['update']}; "
        f"{'PASSED' if report['passed'] else 'FAILED'}"
    )
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
