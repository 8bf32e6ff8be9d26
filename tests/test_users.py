"""The users file of `rag serve`: real files in tmp_path, real argon2 hashes, real `rag user` processes."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import rag_command

from rag.users import READ, WRITE, SignInLimiter, User, Users, UsersError, check_collection_name, check_user_name

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "users.toml"


@pytest.fixture
def alice(path: Path) -> Users:
    users = Users(path)
    users.add("alice", PASSWORD)
    return users


def _run(args: list[str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*rag_command(), "user", *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120
    )


def _assert_cli_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag user"), result.stderr
    assert ": error: " in lines[0] and needle in lines[0], lines[0]


# --- passwords ---------------------------------------------------------------------------------


def test_the_right_password_signs_in_and_a_wrong_one_does_not(alice: Users) -> None:
    assert alice.verify("alice", PASSWORD)
    assert not alice.verify("alice", PASSWORD + "!")
    assert not alice.verify("alice", "")
    assert alice.names() == ["alice"]


def test_the_file_holds_a_salted_hash_not_the_password_and_only_its_owner_may_read_it(path: Path, alice: Users) -> None:
    alice.add("bob", PASSWORD)  # the same password: a different salt, a different hash
    text = path.read_text()
    assert PASSWORD not in text and "battery" not in text
    assert text.count("$argon2id$") == 2
    hashes = [line for line in text.splitlines() if line.startswith("password")]
    assert hashes[0] != hashes[1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary left


def test_an_unknown_user_or_a_bad_name_is_refused_without_raising(alice: Users) -> None:
    assert not alice.verify("mallory", PASSWORD)
    assert not alice.verify("../alice", PASSWORD)
    assert not alice.verify("", PASSWORD)
    assert not alice.verify("alice", "x" * 5000)
    assert alice.user("mallory") is None
    assert alice.user("../etc") is None


def test_a_changed_password_replaces_the_old_one_and_keeps_the_grants(alice: Users) -> None:
    alice.grant("alice", "team-a", WRITE)
    alice.set_password("alice", "another password")
    assert alice.verify("alice", "another password")
    assert not alice.verify("alice", PASSWORD)
    assert alice.user("alice") == User("alice", {"team-a": WRITE})


@pytest.mark.parametrize("password", ["", "short77"])
def test_a_short_password_is_refused(alice: Users, password: str) -> None:
    with pytest.raises(UsersError, match="at least 8 characters"):
        alice.add("bob", password)
    assert alice.names() == ["alice"]


def test_adding_a_user_twice_is_refused_and_keeps_the_first(alice: Users) -> None:
    with pytest.raises(UsersError, match="already exists: 'alice'"):
        alice.add("alice", "another password")
    assert alice.verify("alice", PASSWORD)


# --- grants, and another writer ------------------------------------------------------------------


def test_grants_give_read_or_write_and_write_implies_read(alice: Users) -> None:
    alice.grant("alice", "team-a", WRITE)
    alice.grant("alice", "default", READ)
    user = alice.user("alice")
    assert user is not None
    assert user.can_read("team-a") and user.can_write("team-a")
    assert user.can_read("default") and not user.can_write("default")
    assert not user.can_read("team-b")
    assert user.readable(["team-b", "team-a", "default"]) == ["team-a", "default"]
    alice.grant("alice", "team-a", READ)  # a grant replaces the one before
    assert not alice.user("alice").can_write("team-a")


def test_changes_written_by_another_users_object_are_seen_on_the_next_call(path: Path, alice: Users) -> None:
    server = Users(path)  # opened before the changes, as a running server
    assert server.user("alice") == User("alice", {})
    other = Users(path)  # another process's view
    other.grant("alice", "team-a", WRITE)
    other.add("bob", PASSWORD)
    other.grant("bob", "default", READ)
    assert server.user("alice").can_write("team-a")
    assert server.names() == ["alice", "bob"]
    other.revoke("alice", "team-a")
    assert not server.user("alice").can_read("team-a")
    other.remove("alice")
    assert server.user("alice") is None
    assert not server.verify("alice", PASSWORD)
    assert server.user("bob") == User("bob", {"default": READ})  # the other user kept intact
    assert server.verify("bob", PASSWORD)


def test_writers_at_once_lose_no_change(path: Path, alice: Users) -> None:
    """Each writer reads, changes and rewrites the whole file under the lock file: none overwrites another."""
    collections = [f"c{i}" for i in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda c: Users(path).grant("alice", c, READ), collections))
    assert sorted(Users(path).user("alice").grants) == sorted(collections)


def test_a_grant_from_a_rag_user_process_reaches_a_running_server(path: Path, alice: Users) -> None:
    server = Users(path)
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "user", "grant", "alice", "team-a", "--write", "--users", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "alice may now write team-a"
    assert server.user("alice").can_write("team-a")


@pytest.mark.parametrize("bad", ["..", "a/b", "", "x" * 65, ".hidden", "a b", "tab\t"])
def test_bad_collection_names_are_refused_naming_them(alice: Users, bad: str) -> None:
    with pytest.raises(UsersError) as exc:
        alice.grant("alice", bad, READ)
    assert repr(bad) in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(UsersError, match="not a collection name"):
        check_collection_name(bad)
    assert alice.user("alice") == User("alice", {})


@pytest.mark.parametrize("bad", ["..", "a/b", "", "x" * 65, "-alice", 'quo"te', "alice\n"])
def test_bad_user_names_are_refused_naming_them(path: Path, bad: str) -> None:
    with pytest.raises(UsersError) as exc:
        Users(path).add(bad, PASSWORD)
    assert repr(bad) in str(exc.value)
    with pytest.raises(UsersError, match="not a user name"):
        check_user_name(bad)
    assert not path.exists()


def test_longest_names_and_mail_addresses_are_accepted_and_read_back(path: Path) -> None:
    users = Users(path)
    name = "bob.smith@example.com"
    users.add(name, PASSWORD)
    users.grant(name, "c" * 64, WRITE)
    users.add("u" * 64, PASSWORD)
    assert Users(path).user(name) == User(name, {"c" * 64: WRITE})
    assert Users(path).verify("u" * 64, PASSWORD)


def test_a_bad_level_unknown_user_or_missing_grant_is_refused_naming_it(alice: Users) -> None:
    with pytest.raises(UsersError, match="not a grant level.*'admin'"):
        alice.grant("alice", "team-a", "admin")
    with pytest.raises(UsersError, match="no such user: 'bob'"):
        alice.grant("bob", "team-a", READ)
    with pytest.raises(UsersError, match="no such user: 'bob'"):
        alice.remove("bob")
    with pytest.raises(UsersError, match="no grant on collection 'team-a'"):
        alice.revoke("alice", "team-a")


# --- broken files -------------------------------------------------------------------------------


def test_a_file_that_is_not_toml_is_refused_naming_the_file_and_line(path: Path) -> None:
    path.write_text('[users.alice]\npassword = "$argon2id$x"\ngrants = {team-a = write}\n')
    with pytest.raises(UsersError) as exc:
        Users(path)
    assert str(path) in str(exc.value) and "not valid TOML" in str(exc.value) and "line 3" in str(exc.value)


def test_a_user_without_a_hash_is_refused_naming_the_user(path: Path) -> None:
    path.write_text("[users.alice.grants]\nteam-a = 'read'\n")
    with pytest.raises(UsersError, match="user 'alice': no argon2 password hash"):
        Users(path)


def test_a_plain_password_in_the_file_is_refused(path: Path) -> None:
    path.write_text("[users.alice]\npassword = 'hunter22'\n")
    with pytest.raises(UsersError, match="user 'alice': no argon2 password hash"):
        Users(path)


def test_a_bad_level_or_key_in_the_file_is_refused(path: Path, alice: Users) -> None:
    good = path.read_text()
    path.write_text(good + "\n[users.alice.grants]\nteam-a = 'admin'\n")
    with pytest.raises(UsersError, match="user 'alice': not a grant level"):
        Users(path)
    path.write_text(good.replace("password =", "pasword ="))
    with pytest.raises(UsersError, match="unknown key 'pasword'"):
        Users(path)


def test_a_broken_rewrite_keeps_the_last_good_view_and_a_writer_leaves_it_alone(
    path: Path, alice: Users, caplog: pytest.LogCaptureFixture
) -> None:
    alice.grant("alice", "team-a", READ)
    server = Users(path)
    good = path.read_text()
    path.write_text(good + "[oops\n")
    with caplog.at_level(logging.WARNING, logger="rag.users"):
        assert server.verify("alice", PASSWORD)
        assert server.user("alice") == User("alice", {"team-a": READ})
    assert [r.getMessage() for r in caplog.records if "keeping the 1 users read before" in r.getMessage()]
    with pytest.raises(UsersError, match="not valid TOML"):
        server.add("bob", PASSWORD)  # rewriting would lose what could not be read
    assert path.read_text() == good + "[oops\n"
    path.write_text(good.replace('team-a = "read"', 'team-a = "write"'))
    assert server.user("alice").can_write("team-a")


def test_a_missing_file_has_no_users(path: Path) -> None:
    users = Users(path)
    assert users.names() == [] and users.user("alice") is None
    assert not users.verify("alice", PASSWORD)


# --- the sign-in limiter ------------------------------------------------------------------------


def test_five_failures_lock_a_name_even_for_the_right_password_until_the_lockout_ends(path: Path) -> None:
    clock = FakeClock()
    users = Users(path, limiter=SignInLimiter(clock=clock))
    users.add("alice", PASSWORD)
    users.add("bob", PASSWORD)
    for _ in range(5):
        assert users.locked_for("alice") == 0.0
        assert not users.verify("alice", "wrong password")
    assert users.locked_for("alice") == 30.0
    assert not users.verify("alice", PASSWORD)
    assert users.verify("bob", PASSWORD)  # other names are not locked
    clock.now += 29.0
    assert users.locked_for("alice") == pytest.approx(1.0)
    assert not users.verify("alice", PASSWORD)
    clock.now += 1.0
    assert users.verify("alice", PASSWORD)


def test_parallel_guesses_for_one_name_all_meet_the_lockout(path: Path) -> None:
    clock = FakeClock()
    users = Users(path, limiter=SignInLimiter(clock=clock))
    users.add("alice", PASSWORD)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: users.verify("alice", "wrong password"), range(16)))
    assert not any(results)
    # Had more than five wrong guesses been hashed, a second (doubled) lockout would have begun.
    assert users.locked_for("alice") == 30.0


def test_each_further_lockout_doubles_up_to_the_cap_and_a_success_resets_it() -> None:
    clock = FakeClock()
    limiter = SignInLimiter(max_failures=2, lockout_s=30.0, max_lockout_s=100.0, clock=clock)
    for expected in (30.0, 60.0, 100.0, 100.0):
        limiter.failed("alice")
        assert limiter.locked_for("alice") == 0.0
        limiter.failed("alice")
        assert limiter.locked_for("alice") == expected
        clock.now += expected
        assert limiter.locked_for("alice") == 0.0
    limiter.succeeded("alice")
    limiter.failed("alice")
    limiter.failed("alice")
    assert limiter.locked_for("alice") == 30.0


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = FakeClock()
    limiter = SignInLimiter(max_failures=3, window_s=60.0, clock=clock)
    limiter.failed("alice")
    limiter.failed("alice")
    clock.now += 61.0
    limiter.failed("alice")
    limiter.failed("alice")
    assert limiter.locked_for("alice") == 0.0
    limiter.failed("alice")
    assert limiter.locked_for("alice") > 0.0


def test_the_global_cap_refuses_every_name_during_a_flood(path: Path) -> None:
    clock = FakeClock()
    limiter = SignInLimiter(max_failures_total=4, window_s=60.0, clock=clock)
    users = Users(path, limiter=limiter)
    users.add("alice", PASSWORD)
    for name in ("m1", "m2", "m3", "m4"):
        clock.now += 1.0
        assert not users.verify(name, "guess guess")
    assert limiter.locked_for("someone-else") == pytest.approx(57.0)
    assert not users.verify("alice", PASSWORD)  # refused without hashing while the cap holds
    clock.now += 57.0  # the first failure leaves the window
    assert users.verify("alice", PASSWORD)


def test_a_flood_of_made_up_names_does_not_grow_the_limiter_without_bound() -> None:
    clock = FakeClock()
    limiter = SignInLimiter(max_failures_total=10, window_s=1.0, max_lockout_s=1.0, clock=clock)
    for i in range(1000):
        clock.now += 0.5
        limiter.failed(f"m{i}")
    assert len(limiter._names) <= 11


# --- `rag user` --------------------------------------------------------------------------------


def test_cli_add_grant_list_revoke_remove(tmp_path: Path) -> None:
    result = _run(["add", "alice", "--password-stdin"], tmp_path, PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("added user alice to users.toml")
    assert Users(tmp_path / "users.toml").verify("alice", PASSWORD)  # the newline is not part of it
    assert _run(["grant", "alice", "team-a", "--write"], tmp_path).stdout == "alice may now write team-a\n"
    assert _run(["grant", "alice", "default", "--read"], tmp_path).returncode == 0
    listed = _run(["list"], tmp_path)
    assert listed.stdout == "alice  default (read), team-a (write)\n"
    assert "argon2" not in listed.stdout + listed.stderr
    assert _run(["revoke", "alice", "team-a"], tmp_path).stdout == "alice may no longer use team-a\n"
    assert _run(["remove", "alice"], tmp_path).stdout == "removed user alice\n"
    assert _run(["list"], tmp_path).stdout == "no users in users.toml\n"


def test_cli_passwd_and_a_users_file_elsewhere(tmp_path: Path) -> None:
    users_file = tmp_path / "conf" / "people.toml"
    users_file.parent.mkdir()
    assert _run(["add", "bob", "--password-stdin", "--users", str(users_file)], tmp_path, PASSWORD).returncode == 0
    result = _run(["passwd", "bob", "--password-stdin", "--users", str(users_file)], tmp_path, "new password 2\r\n")
    assert result.stdout == "changed the password of bob\n"
    assert Users(users_file).verify("bob", "new password 2")
    assert not (tmp_path / "users.toml").exists()


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    _assert_cli_error(_run(["add", "a/b", "--password-stdin"], tmp_path, PASSWORD), "'a/b'")
    _assert_cli_error(_run(["add", "alice", "--password-stdin"], tmp_path, "short\n"), "at least 8 characters")
    _assert_cli_error(_run(["grant", "nobody", "team-a", "--read"], tmp_path), "no such user: 'nobody'")
    usage = _run(["grant", "nobody", "team-a"], tmp_path)  # argparse's usage line, then the error
    assert usage.returncode == 2 and usage.stderr.splitlines()[-1].startswith("rag user grant: error: one of")
    assert _run(["add", "alice", "--password-stdin"], tmp_path, PASSWORD).returncode == 0
    _assert_cli_error(_run(["grant", "alice", "..", "--read"], tmp_path), "'..'")
    _assert_cli_error(_run(["add", "alice", "--password-stdin"], tmp_path, PASSWORD), "already exists: 'alice'")
    (tmp_path / "users.toml").write_text("[users\n")
    _assert_cli_error(_run(["list"], tmp_path), "users.toml: not valid TOML")


def test_cli_asks_twice_and_refuses_different_passwords(tmp_path: Path) -> None:
    # Without a terminal getpass reads stdin (and warns on stderr); the two lines differ.
    result = _run(["add", "alice"], tmp_path, "first password\nsecond password\n")
    assert result.returncode == 2
    assert "rag user: error: the two passwords differ" in result.stderr
    assert not (tmp_path / "users.toml").exists()
    assert os.listdir(tmp_path) in ([], ["users.toml.lock"])
