"""A shared deployment over real HTTP: `rag serve --users` as a subprocess on loopback, three
collections, users with different grants, gradio_client and raw HTTP as the users' clients.

What must hold: nothing without signing in; a user never sees, retrieves or is cited a document
of a collection they may not read, however they ask (the API, the page's own events, crafted
file routes, collection names with `..`, guessed sources); wrong passwords are rate-limited; a
revoked grant or a removed user takes effect on the next request.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import ENV, RAG

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = {"alice": "alice-password-1", "bob": "bob-password-22", "dave": "dave-password-333", "erin": "erin-pw-4444"}

DOCS = {
    "default": {
        "harbour.txt": "The Wexley harbour master is Tomas Brenn. The harbour opened a new pier in 2019.\n",
    },
    "alpha": {
        "lighthouse.txt": "The Skerry Point lighthouse was kept by Ingrid Holm for thirty years. "
        "She repaired the great lens in 1987.\n",
    },
    "beta": {
        "payroll.txt": "The vault combination of the Marlow payroll office is 7341-ZEBRA. "
        "Only the treasurer Odile Fenwick may open the vault.\n",
    },
}
SECRET_QUESTION = "What is the vault combination of the Marlow payroll office?"
SECRET = "7341-ZEBRA"


def _rag(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RAG, *args], env=ENV, input=stdin, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three collections built by `rag index` and a users file written by `rag user`."""
    root = tmp_path_factory.mktemp("sign_in")
    index = root / "index"
    for name, files in DOCS.items():
        folder = root / "docs" / name
        folder.mkdir(parents=True)
        for filename, text in files.items():
            (folder / filename).write_text(text)
        extra = [] if name == "default" else ["--collection", name]
        done = _rag("index", str(folder), "--index-dir", str(index), *extra)
        assert done.returncode == 0, done.stderr
    users = root / "etc" / "users.toml"
    users.parent.mkdir()
    for name, password in PASSWORD.items():
        done = _rag("user", "add", name, "--password-stdin", "--users", str(users), stdin=password + "\n")
        assert done.returncode == 0, done.stderr
    for name, collection, level in [
        ("alice", "alpha", "--read"),
        ("bob", "beta", "--write"),
        ("bob", "default", "--read"),
        ("dave", "alpha", "--read"),
        ("erin", "alpha", "--read"),
    ]:
        done = _rag("user", "grant", name, collection, level, "--users", str(users))
        assert done.returncode == 0, done.stderr
    return {"root": root, "index": index, "users": users}


@pytest.fixture(scope="module")
def url(deployment: dict[str, Path]) -> Iterator[str]:
    from bench.load import rag_server

    with rag_server(deployment["index"], args=["--users", str(deployment["users"])]) as running:
        yield running.url


def _client(url: str, name: str):
    from gradio_client import Client

    return Client(url + "/", auth=(name, PASSWORD[name]), verbose=False, download_files=False)


def _http(url: str, name: str | None = None):
    import httpx

    http = httpx.Client(base_url=url, timeout=120)
    if name is not None:
        http.post("/login", data={"username": name, "password": PASSWORD[name]}).raise_for_status()
    return http


def _ask(client, question: str, collection: str | None = None, **scope) -> dict:
    keys = ("source", "folder", "type", "after", "before")
    return client.predict(question, None, None, None, None, *(scope.get(k) for k in keys), collection, api_name="/ask")


# --- signing in --------------------------------------------------------------------------------


def test_nothing_is_served_without_signing_in(url: str, deployment: dict[str, Path]) -> None:
    http = _http(url)
    try:
        page = http.get("/")
        assert page.status_code == 200 and "payroll" not in page.text and "lighthouse" not in page.text
        assert http.get("/config").status_code == 401
        assert http.get("/gradio_api/info").status_code == 401
        call = http.post("/gradio_api/call/ask", json={"data": [SECRET_QUESTION]})
        assert call.status_code == 401
        join = http.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"})
        assert join.status_code == 401
        secret_file = deployment["root"] / "docs" / "beta" / "payroll.txt"
        assert http.get(f"/gradio_api/file={secret_file}").status_code in (401, 403)
        wrong = http.post("/login", data={"username": "alice", "password": "not-her-password"})
        assert wrong.status_code == 400
        assert http.get("/config").status_code == 401
    finally:
        http.close()


def test_a_signed_in_user_reads_the_page_and_asks_their_collection(url: str) -> None:
    client = _client(url, "alice")
    data = _ask(client, "Who kept the Skerry Point lighthouse?")
    assert data["collection"] == "alpha" and not data["abstained"]
    assert "Ingrid Holm" in data["answer"]
    assert {c["source"] for c in data["citations"]} == {"lighthouse.txt"}


# --- what a user may read ----------------------------------------------------------------------


@pytest.mark.parametrize("collection", ["beta", "default", "../beta", "alpha/../beta", "..", "BETA", "beta\x00"])
def test_a_collection_not_granted_is_refused_whatever_its_name(url: str, collection: str) -> None:
    from gradio_client.exceptions import AppError

    client = _client(url, "alice")
    with pytest.raises(AppError, match="No collection") as refused:
        _ask(client, SECRET_QUESTION, collection)
    assert SECRET not in str(refused.value) and "payroll" not in str(refused.value)


def test_no_question_or_scope_reaches_another_collections_documents(url: str) -> None:
    client = _client(url, "alice")
    answers = [
        _ask(client, SECRET_QUESTION),
        _ask(client, "Who may open the vault?"),
        _ask(client, "payroll vault combination treasurer Odile Fenwick 7341-ZEBRA"),
        _ask(client, "Who is the harbour master of Wexley?"),
    ]
    for data in answers:
        assert data["collection"] == "alpha"
        shown = str({k: v for k, v in data.items() if k != "question"})  # the question echoes what was typed
        assert SECRET not in shown and "Odile" not in shown and "Tomas Brenn" not in shown
        assert all(c["source"] == "lighthouse.txt" for c in data["citations"])
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError):  # a guessed source of another collection is no document here
        _ask(client, SECRET_QUESTION, source="payroll.txt")


def test_the_pages_own_events_stay_within_the_users_collections(url: str) -> None:
    from bench.load import BrowserSession

    alice = BrowserSession(url, auth=("alice", PASSWORD["alice"]))
    try:
        (picker,), _ = alice.call(0, "load", [])
        assert picker["choices"] == [["alpha", "alpha"]] or [c[0] for c in picker["choices"]] == ["alpha"]
        (table, *_), _ = alice.call("reload-report", "click", [None])
        assert [row[0] for row in table["data"]] == ["lighthouse.txt"]
        (table, *_), _ = alice.call("reload-report", "click", ["beta"])  # a crafted picker value
        assert table["data"] in ([], [[]]) or all(row[0] != "payroll.txt" for row in table["data"])
        alice.collection = "beta"
        status = alice.remove_document("payroll.txt")
        assert "No collection" in status
        settings = ["hybrid", 5, 0.0, "extractive", "heuristic", [], [], "beta"]
        outputs, raw = alice.call("question", "submit", [SECRET_QUESTION, [], None, *settings])
        sent = "".join(raw).replace(SECRET_QUESTION, "")  # the question box keeps what was typed
        assert 'No collection \\"beta\\" that you may read' in sent
        assert SECRET not in sent and "payroll" not in sent and "Odile" not in sent
    finally:
        alice.close()
    bob = _client(url, "bob")
    data = _ask(bob, SECRET_QUESTION, "beta")  # still there: alice's removal was refused
    assert SECRET in data["answer"] and data["collection"] == "beta"


def test_crafted_file_routes_are_refused(url: str, deployment: dict[str, Path]) -> None:
    http = _http(url, "alice")
    try:
        beta = deployment["index"] / "collections" / "beta"
        for path in [
            deployment["root"] / "docs" / "beta" / "payroll.txt",
            beta / "chunks.sqlite",
            beta / "manifest.json",
            deployment["users"],
            "../../../../etc/passwd",
            "%2e%2e/%2e%2e/etc/passwd",
        ]:
            response = http.get(f"/gradio_api/file={path}")
            assert response.status_code in (403, 404), (path, response.status_code)
            assert SECRET not in response.text and "argon2" not in response.text
    finally:
        http.close()


# --- passwords and grants that change ----------------------------------------------------------


def test_wrong_passwords_are_rate_limited(url: str) -> None:
    http = _http(url)
    try:
        codes = [http.post("/login", data={"username": "dave", "password": f"guess-{k}"}).status_code for k in range(5)]
        assert codes == [400] * 5
        locked = http.post("/login", data={"username": "dave", "password": PASSWORD["dave"]})
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
        assert "try again" in locked.text
        assert http.get("/config").status_code == 401  # the right password did not sign in
    finally:
        http.close()
    client = _client(url, "alice")  # another name is not locked
    assert _ask(client, "Who kept the Skerry Point lighthouse?")["collection"] == "alpha"


def test_a_revoked_grant_and_a_removed_user_take_effect_on_the_next_request(
    url: str, deployment: dict[str, Path]
) -> None:
    from gradio_client.exceptions import AppError

    users = str(deployment["users"])
    client = _client(url, "erin")
    assert _ask(client, "Who kept the Skerry Point lighthouse?")["collection"] == "alpha"
    assert _rag("user", "revoke", "erin", "alpha", "--users", users).returncode == 0
    with pytest.raises(AppError, match="any collection|No collection"):
        _ask(client, "Who kept the Skerry Point lighthouse?")
    http = _http(url, "erin")
    try:
        assert http.get("/config").status_code == 200
        assert _rag("user", "remove", "erin", "--users", users).returncode == 0
        assert http.get("/config").status_code == 401  # signed out everywhere
        assert http.get("/gradio_api/info").status_code == 401
    finally:
        http.close()


def test_a_writer_uploads_to_their_collection_and_only_its_readers_see_it(url: str, tmp_path: Path) -> None:
    from bench.load import BrowserSession

    memo = tmp_path / "memo.txt"
    memo.write_text("The Marlow payroll office moves to Carden Street in March.\n")
    bob = BrowserSession(url, auth=("bob", PASSWORD["bob"]), collection="beta")
    try:
        assert "memo\\.txt** added" in bob.upload_documents([memo])
    finally:
        bob.close()
    data = _ask(_client(url, "bob"), "Where does the Marlow payroll office move to?", "beta")
    assert "Carden Street" in data["answer"]
    assert {c["source"] for c in data["citations"]} == {"memo.txt"}
    other = _ask(_client(url, "alice"), "Where does the Marlow payroll office move to?")
    assert "Carden" not in str(other)
    alice = BrowserSession(url, auth=("alice", PASSWORD["alice"]), collection="alpha")
    try:
        assert "No collection" in alice.upload_documents([memo])  # alice may only read alpha
    finally:
        alice.close()


# --- starting the server -----------------------------------------------------------------------


def test_serve_refuses_a_public_address_without_sign_in(deployment: dict[str, Path]) -> None:
    done = _rag("serve", "--index-dir", str(deployment["index"]), "--host", "0.0.0.0", "--port", "7999")
    assert done.returncode == 2
    assert "needs sign-in: --users FILE" in done.stderr and "--no-auth" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_serve_refuses_a_missing_or_empty_users_file(deployment: dict[str, Path], tmp_path: Path) -> None:
    missing = _rag("serve", "--index-dir", str(deployment["index"]), "--users", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "--users file not found" in missing.stderr
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    done = _rag("serve", "--index-dir", str(deployment["index"]), "--users", str(empty))
    assert done.returncode == 2 and "no users in" in done.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('[users.alice]\npassword = "correct horse"\n')  # a password pasted in, not a hash
    done = _rag("serve", "--index-dir", str(deployment["index"]), "--users", str(broken))
    assert done.returncode == 2 and "broken.toml" in done.stderr and "correct horse" not in done.stderr
    both = _rag("serve", "--index-dir", str(deployment["index"]), "--users", str(broken), "--no-auth")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
