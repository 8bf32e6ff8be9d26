"""Signing in and keeping a conversation, in a real browser: Playwright driving Debian's Chromium
against `rag serve --users` over the seed index and a second collection.

A person signs in on Gradio's sign-in page, picks a collection, asks, downloads the conversation
as Markdown, and after the server is restarted signs in again and opens the saved conversation.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ARTIFACTS, skip_or_fail
from serving import ENV, RAG, browser_missing, build_seed_index, chromium, serving

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 30_000
KURSK = "How many North Korean soldiers have arrived in Kursk?"
PASSWORD = "reader-password-1"

if (_reason := browser_missing()) is not None:
    skip_or_fail(f"{_reason}; the Makefile installs it", module=True)
from playwright.sync_api import Browser, Page, expect  # noqa: E402


def _rag(*args: str, stdin: str | None = None) -> None:
    done = subprocess.run([RAG, *args], env=ENV, input=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sign_in_browser")
    index = build_seed_index(root, ROOT / "seeds")
    notes = root / "notes"
    notes.mkdir()
    (notes / "lighthouse.txt").write_text("The Skerry Point lighthouse was kept by Ingrid Holm for thirty years.\n")
    _rag("index", str(notes), "--index-dir", str(index), "--collection", "alpha")
    users = root / "users.toml"
    _rag("user", "add", "reader", "--password-stdin", "--users", str(users), stdin=PASSWORD + "\n")
    _rag("user", "grant", "reader", "default", "--read", "--users", str(users))
    _rag("user", "grant", "reader", "alpha", "--read", "--users", str(users))
    return index, users


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def _sign_in(browser: Browser, url: str, password: str = PASSWORD) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url, wait_until="domcontentloaded")
    page.locator("input[type=password]").wait_for()
    page.locator("input:not([type=password])").first.fill("reader")
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name=re.compile("login", re.I)).click()
    return page


def _ask(page: Page, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(
        """(q) => document.querySelector('#sources .rag-query')
                && document.querySelector('#sources .rag-query').innerText.includes(q)""",
        arg=question[:30],
    )


def test_sign_in_ask_download_and_reopen_after_a_restart(
    browser: Browser, deployment: tuple[Path, Path], tmp_path: Path
) -> None:
    index, users = deployment
    with serving(index, args=["--users", str(users)]) as (url, _):
        wrong = _sign_in(browser, url, password="not-the-password")
        expect(wrong.get_by_text(re.compile("incorrect credentials", re.I))).to_be_visible()
        expect(wrong.locator("#question")).to_have_count(0)
        wrong.context.close()

        page = _sign_in(browser, url)
        page.locator("#question textarea").wait_for()
        expect(page.locator("#collection")).to_be_visible()  # two collections granted: a choice
        _ask(page, KURSK)
        expect(page.locator("#chat")).to_contain_text("8,000")
        page.locator("#conversations").click()
        with page.expect_download() as download:
            page.locator("#download-md").click()
        saved = tmp_path / "conversation.md"
        download.value.save_as(saved)
        markdown = saved.read_text(encoding="utf-8")
        assert KURSK in markdown and "8,000" in markdown and "000_" in markdown
        page.screenshot(path=str(ARTIFACTS / "sign-in-chat.png"))
        page.context.close()

    with serving(index, args=["--users", str(users)]) as (url, _):  # a restart
        page = _sign_in(browser, url)
        page.locator("#question textarea").wait_for()
        page.locator("#conversations").click()
        page.locator("#saved-conversations input").click()
        page.get_by_role("option", name=re.compile("How many North Korean")).click()
        page.locator("#open-conversation").click()
        expect(page.locator("#chat")).to_contain_text("8,000")
        expect(page.locator("#chat")).to_contain_text(KURSK)
        page.context.close()
