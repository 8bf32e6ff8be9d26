"""Main-content extraction from saved web pages: the loader's walk against extractor libraries.

    python -m bench.html_extract                     # the default pages (HTML manuals Debian installs)
    python -m bench.html_extract PAGE.html ...       # other saved pages (Sphinx, Texinfo or DocBook)

The default pages come from `apt-get install python3-doc debian-policy base-passwd libffi8`; pages
that are not on the machine are skipped. Each page's content is told apart from its furniture by
the structure its generator gives it, written down here per generator (`gold_content`): Sphinx's
`role=main` body without heading permalinks; Texinfo's body without its navigation panel and
section menus; DocBook's body without its navigation header, footer and table of contents. The
page's <title> counts as neither content nor furniture (the walk keeps it as a heading: the
context of the first section, never quoted).

Per extractor and page, on word counts (multisets of lower-cased words):
- content kept: share of the content's words found in the output;
- furniture kept: share of the furniture's words (page words that are not content) in the output;
- whole paragraphs: share of the content's <p> paragraphs that come out on one line (a source
  line break inside a paragraph must not split it into two sentences);
- ms: mean time per page (parse included, best of 3), and on the hostile page of 10,000 nested
  <div>s (with whether its one sentence came out).

Extractors: `today` (the walk before main-content extraction, kept here as the baseline),
`walk` (rag.load.html, structural cues), `trafilatura` (precision and recall settings) and
`resiliparse` (main_content=True), each skipped when its package is not installed.
Results: bench/results/html_extract.json.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PAGES = (
    "/usr/share/doc/python3/python-policy.html",
    "/usr/share/doc/python3/html/tutorial/classes.html",
    "/usr/share/doc/python3/html/library/json.html",
    "/usr/share/doc/debian-policy/policy.html/ch-docs.html",
    "/usr/share/doc/debian-policy/policy.html/ch-files.html",
    "/usr/share/doc/base-passwd/users-and-groups.html",
    "/usr/share/doc/libffi8/html/The-Basics.html",
    "/usr/share/doc/libffi8/html/Simple-Example.html",
    "/usr/share/doc/libffi8/html/Types.html",
)
RESULTS = Path(__file__).resolve().parent / "results" / "html_extract.json"
HOSTILE = (
    "<html><body>" + "<div>" * 10_000 + "The nested vault holds 77 brass keys." + "</div>" * 10_000 + "</body></html>"
)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Gold:
    """A page's words split into content and furniture, and its content paragraphs."""

    content: Counter[str]
    furniture: Counter[str]
    paragraphs: list[str]
    title: Counter[str]


def gold_content(html: str) -> Gold:
    """The content and furniture words of a Sphinx, Texinfo or DocBook page (see the module doc)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = words(soup.title.get_text(" ")) if soup.title else Counter()
    for tag in soup(["script", "style", "head", "noscript"]):
        tag.decompose()
    everything = words(soup.get_text(" "))
    main = soup.select_one("[role=main]")
    if main is None:  # Texinfo, DocBook: the body less its navigation
        main = soup.body or soup
        furniture = ["div.header", "div.nav-panel", "ul.section-toc", "ul.mini-toc", "table.menu"]
        furniture += ["div.NAVHEADER", "div.NAVFOOTER", "div.TOC"]
        for selector in furniture:
            for tag in main.select(selector):
                tag.decompose()
    for tag in main.select("a.headerlink"):
        tag.decompose()
    content = words(main.get_text(" "))
    paragraphs = [" ".join(p.get_text().split()) for p in main.find_all("p")]
    return Gold(content, everything - content, [p for p in paragraphs if len(p.split()) >= 6], title)


def words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in _WORD.findall(text))


def today_walk(html: str) -> str:
    """The loader's walk before main-content extraction (commit d8a1682), for comparison."""
    from bs4 import BeautifulSoup
    from bs4.element import CData, NavigableString, Tag

    dropped = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}
    blocks = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section"}
    blocks |= {"article", "header", "footer", "blockquote", "pre", "title", "dd", "dt"}
    soup = BeautifulSoup(html, "html.parser")
    parts: list[str] = []
    stack: list[Any] = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):
            parts.append(node[0])
        elif isinstance(node, Tag):
            if node.name in dropped:
                title = node.find("title") if node.name == "head" else None
                if title and title.get_text(" ", strip=True):
                    parts.append(title.get_text(" ", strip=True) + "\n\n")
                continue
            if node.name in blocks:
                parts.append("\n\n")
                stack.append(("\n\n",))
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):
            parts.append(str(node))
    lines = [" ".join(line.split()) for line in "".join(parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def extractors() -> dict[str, Callable[[str], str]]:
    from rag.load.html import html_text

    found: dict[str, Callable[[str], str]] = {"today": today_walk, "walk": html_text}
    try:
        import trafilatura

        found["trafilatura"] = lambda h: trafilatura.extract(h, include_tables=True) or ""
        found["trafilatura-recall"] = lambda h: trafilatura.extract(h, include_tables=True, favor_recall=True) or ""
    except ImportError:
        pass
    try:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        found["resiliparse"] = lambda h: extract_plain_text(HTMLTree.parse(h), main_content=True)
    except ImportError:
        pass
    return found


def score(output: str, gold: Gold) -> dict[str, float | None]:
    """The page's scores; `whole_paragraphs` is None for a page without content paragraphs."""
    got = words(output)
    kept_content = sum((got & gold.content).values()) / max(sum(gold.content.values()), 1)
    # The <title> counts as neither: the walk keeps it as a heading (context, never quoted).
    kept_furniture = sum(((got - gold.content - gold.title) & gold.furniture).values()) / max(
        sum(gold.furniture.values()), 1
    )
    lines = {" ".join(line.split()) for line in output.split("\n")}
    whole = (
        sum(any(p in line for line in lines) for p in gold.paragraphs) / len(gold.paragraphs)
        if gold.paragraphs
        else None
    )
    return {"content_kept": kept_content, "furniture_kept": kept_furniture, "whole_paragraphs": whole}


def timed(extract: Callable[[str], str], html: str, repeats: int = 3) -> tuple[str, float]:
    best, output = float("inf"), ""
    for _ in range(repeats):
        started = time.perf_counter()
        output = extract(html)
        best = min(best, time.perf_counter() - started)
    return output, best * 1000


def run(pages: Sequence[str]) -> dict[str, Any]:
    found = [Path(p) for p in pages if Path(p).is_file()]
    if not found:
        raise SystemExit("no pages found: apt-get install python3-doc debian-policy, or give saved pages")
    golds = {p: gold_content(p.read_text(encoding="utf-8", errors="replace")) for p in found}
    report: dict[str, Any] = {"pages": [str(p) for p in found], "extractors": {}}
    for name, extract in extractors().items():
        extract(HOSTILE if name != "resiliparse" else "<p>warm up</p>")  # imports and caches out of the timings
        per_page, ms = {}, []
        for path in found:
            output, took = timed(extract, path.read_text(encoding="utf-8", errors="replace"))
            per_page[path.name] = {k: v if v is None else round(v, 3) for k, v in score(output, golds[path]).items()}
            ms.append(took)
        try:
            hostile, hostile_ms = timed(extract, HOSTILE, repeats=1)
            hostile_ok: bool | str = "77 brass keys" in hostile
        except Exception as exc:  # an extractor that fails on it is part of the result
            hostile_ms, hostile_ok = float("nan"), f"{type(exc).__name__}: {exc}"[:120]
        means = {k: _mean([p[k] for p in per_page.values()]) for k in next(iter(per_page.values()))}
        report["extractors"][name] = {
            **means,
            "ms_per_page": round(sum(ms) / len(ms), 1),
            "hostile_ms": round(hostile_ms, 1),
            "hostile_text_found": hostile_ok,
            "per_page": per_page,
        }
    return report


def _mean(values: Sequence[float | None]) -> float:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 3) if present else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", default=list(DEFAULT_PAGES))
    args = parser.parse_args(argv)
    report = run(args.pages)
    print(
        f"{'extractor':<20}{'content kept':>14}{'furniture kept':>16}{'whole paras':>13}"
        f"{'ms/page':>9}{'hostile ms':>12}"
    )
    for name, r in report["extractors"].items():
        print(
            f"{name:<20}{r['content_kept']:>14.3f}{r['furniture_kept']:>16.3f}{r['whole_paragraphs']:>13.3f}"
            f"{r['ms_per_page']:>9.1f}{r['hostile_ms']:>12.1f}  {r['hostile_text_found']}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
