"""Web pages as people save them: main content only, laid out as a browser shows it, tables as row
sentences, headings as the context of their sections. The pages are written here, modelled on the
HTML manuals Debian installs (a Sphinx page, a DocBook page with source line breaks inside its
sentences), and answered end to end with the real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.chunk import split_sentences
from rag.load import load_document
from rag.load.html import html_document
from rag.pipeline import RAG, build_index
from rag.types import Answer, Document

# Sphinx's classic theme: breadcrumbs above and below ("related"), a sidebar with the table of
# contents, previous/next topics and a search box, a footer, and "¶" permalinks on headings. The
# breadcrumb and the sidebar name the policy and its versions, the words a question uses.
SPHINX_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <title>Harbour Ferry Policy &#8212; Harbour Ferry Policy 2.4.0 documentation</title>
  <link rel="stylesheet" type="text/css" href="_static/classic.css" />
  <script src="_static/doctools.js"></script>
</head><body>
    <div class="related" role="navigation" aria-label="related navigation">
      <h3>Navigation</h3>
      <ul>
        <li class="right" style="margin-right: 10px">
          <a href="genindex.html" title="General Index" accesskey="I">index</a></li>
        <li class="nav-item nav-item-0"><a href="#">Harbour Ferry Policy 2.4.0 documentation</a> &#187;</li>
        <li class="nav-item nav-item-this"><a href="">Harbour Ferry Policy</a></li>
      </ul>
    </div>
  <div class="document">
    <div class="documentwrapper">
      <div class="bodywrapper">
          <div class="body" role="main">
  <section id="harbour-ferry-policy">
<h1>Harbour Ferry Policy<a class="headerlink" href="#harbour-ferry-policy" title="Permalink to this heading">¶</a></h1>
<section id="engines">
<h2><span class="section-number">1. </span>Engines<a class="headerlink" href="#engines">¶</a></h2>
<p>Every ferry on the Quillmark route must run an engine of
version 3.9 or newer, and the harbour board inspects each engine
every spring.</p>
<p>Older engines are retired at the end of their season.</p>
</section>
<section id="crews">
<h2><span class="section-number">2. </span>Crews<a class="headerlink" href="#crews">¶</a></h2>
<p>A crew of five sails on each crossing.</p>
</section>
</section>
          </div>
      </div>
    </div>
      <div class="sphinxsidebar" role="navigation" aria-label="main navigation">
        <div class="sphinxsidebarwrapper">
  <h3><a href="#">Table of Contents</a></h3>
  <ul>
<li><a class="reference internal" href="#">Harbour Ferry Policy</a><ul>
<li><a class="reference internal" href="#engines">1. Engines</a></li>
<li><a class="reference internal" href="#crews">2. Crews</a></li>
</ul></li>
</ul>
  <h4>Previous topic</h4>
  <p class="topless"><a href="minimum.html" title="previous chapter">Minimum engine versions of 2019</a></p>
  <h4>Next topic</h4>
  <p class="topless"><a href="fares.html" title="next chapter">Ferry fares</a></p>
<div id="searchbox" style="display: none" role="search">
  <h3 id="searchlabel">Quick search</h3>
    <form class="search" action="search.html" method="get"><input type="text" name="q" /></form>
</div>
        </div>
      </div>
      <div class="clearer"></div>
    </div>
    <div class="related" role="navigation" aria-label="related navigation">
      <h3>Navigation</h3>
      <ul>
        <li class="nav-item nav-item-0"><a href="#">Harbour Ferry Policy 2.4.0 documentation</a> &#187;</li>
      </ul>
    </div>
    <div class="footer" role="contentinfo">
        &#169; Copyright 2024, Harbour Board.
      Created using <a href="https://www.sphinx-doc.org/">Sphinx</a> 7.2.6.
    </div>
  </body>
</html>
"""
SPHINX_FURNITURE = (
    "2.4.0 documentation",
    "»",
    "index",
    "Navigation",
    "Table of Contents",
    "Previous topic",
    "Minimum engine versions of 2019",
    "Next topic",
    "Ferry fares",
    "Quick search",
    "Copyright",
    "Sphinx",
    "¶",
)

# DocBook's HTML stylesheet (as users-and-groups.html of base-passwd): upper-case tags closed on
# the next line, so the source breaks lines inside a sentence, before a <TT>.
DOCBOOK_PAGE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN">
<HTML
><HEAD
><TITLE
>Users and Groups in the Debian System</TITLE
><META
NAME="GENERATOR"
CONTENT="Modular DocBook HTML Stylesheet Version 1.79"></HEAD
><BODY
CLASS="BOOK"
><DIV
CLASS="BOOK"
><DIV
CLASS="TOC"
><DL
><DT
><B
>Table of Contents</B
></DT
><DT
>1. <A
HREF="#INTRO"
>Introduction</A
></DT
><DT
>2. <A
HREF="#USERS"
>Users and Groups</A
></DT
></DL
></DIV
><DIV
CLASS="CHAPTER"
><HR><H1
><A
NAME="INTRO"
></A
>Chapter 1. Introduction</H1
><P
>      The Debian base-passwd package contains the master versions of
      <TT
CLASS="FILENAME"
>/etc/passwd</TT
> and <TT
CLASS="FILENAME"
>/etc/group</TT
>. The update-passwd tool keeps the entries in these master files in sync on
      all Debian systems.</P
></DIV
></DIV
></BODY
></HTML
>
"""
PASSWD_SENTENCE = "The Debian base-passwd package contains the master versions of /etc/passwd and /etc/group."

TABLE_PAGE = """<html><head><title>Ferry fleet</title></head><body><main>
<p>The harbour runs three ferries.</p>
<table>
  <thead><tr><th>Ferry</th><th>Route</th><th>Cars carried</th></tr></thead>
  <tbody>
    <tr><td>Osprey</td><td>Quillmark to Dunmore</td><td>88</td></tr>
    <tr><td>Gannet</td><td>Dunmore to <em>Fenwick</em></td><td>54</td></tr>
    <tr><td>Puffin</td><td>Fenwick to Quillmark</td><td>120</td></tr>
  </tbody>
</table>
</main></body></html>
"""
GANNET_ROW = "Ferry: Gannet; Route: Dunmore to Fenwick; Cars carried: 54"

# Two sections that say what "she" and "he" do every evening: only their headings say who is who.
GUIDE_PAGE = """<html><head><title>Quillmark harbour guide</title></head><body>
<h1>Quillmark harbour guide</h1>
<h2>Lighthouse keeper</h2>
<p>She climbs the 212 steps of the tower every evening.</p>
<p>Her logbook records each passing ship.</p>
<h2>Harbour master</h2>
<p>He walks the length of the quay every evening.</p>
<p>His ledger records each tide.</p>
<h2>Fish market</h2>
<p>It opens at dawn on weekdays.</p>
</body></html>
"""
GUIDE_HEADINGS = ["Quillmark harbour guide", "Lighthouse keeper", "Harbour master", "Fish market"]


def _headings(text: str, spans: tuple[tuple[int, int], ...]) -> list[str]:
    return [text[a:b] for a, b in spans]


# --- reading a page --------------------------------------------------------------------------


def test_a_sphinx_page_keeps_its_content_and_drops_breadcrumbs_sidebar_and_footer() -> None:
    text, headings = html_document(SPHINX_PAGE)

    assert "Every ferry on the Quillmark route must run an engine of version 3.9 or newer," in text
    assert "A crew of five sails on each crossing." in text
    for furniture in SPHINX_FURNITURE:
        assert furniture not in text
    # The <title> adds the site's name ("2.4.0 documentation") to the page's own <h1>: left out.
    assert _headings(text, headings) == ["Harbour Ferry Policy", "1. Engines", "2. Crews"]


def test_a_source_line_break_inside_a_paragraph_is_a_space_so_the_sentence_stays_whole() -> None:
    text, headings = html_document(DOCBOOK_PAGE)

    sentences = [text[a:b] for a, b in split_sentences(text)]
    assert PASSWD_SENTENCE in sentences
    assert "The update-passwd tool keeps the entries in these master files in sync on all Debian systems." in sentences
    assert text.startswith("Chapter 1. Introduction\n\n")  # the DocBook table of contents is navigation
    assert _headings(text, headings) == ["Chapter 1. Introduction"]


def test_line_breaks_blocks_and_preformatted_text_are_laid_out_as_a_browser_does() -> None:
    text, _ = html_document(
        "<p>The first   line<br>the second line</p><div>A block</div><span>inline</span><b>joined</b>"
        "<pre>\nif ready:\n    sail()\n\n\nreturn</pre><ul><li>Pier one</li><li>Pier two</li></ul>"
    )

    assert text == (
        "The first line\nthe second line\n\nA block\n\ninlinejoined\n\nif ready:\n    sail()\n\nreturn"
        "\n\nPier one\n\nPier two"
    )


def test_a_data_table_becomes_one_sentence_per_row_in_place_and_a_layout_table_stays_blocks() -> None:
    text, _ = html_document(
        TABLE_PAGE.replace(
            "</main>",
            "<table><tr><td>Name</td><td>Age</td></tr><tr><td>Ada</td><td>36</td></tr></table>"
            "<table><tr><td colspan=2>Year</td></tr><tr><td>2023</td><td>2024</td></tr></table>"
            "<table><tr><td><p>Left column text.</p></td><td><p>Right column text.</p></td></tr></table>"
            "<p>After the tables.</p></main>",
        )
    )

    assert text.split("\n\n") == [
        "Ferry fleet",
        "The harbour runs three ferries.",
        "Ferry: Osprey; Route: Quillmark to Dunmore; Cars carried: 88",
        GANNET_ROW,
        "Ferry: Puffin; Route: Fenwick to Quillmark; Cars carried: 120",
        "Name: Ada; Age: 36",  # no <th>: the first row names the columns
        "Year: 2023; Year: 2024",  # a spanning header names every column under it
        "Left column text.",  # a table holding paragraphs lays out the page, it holds no data
        "Right column text.",
        "After the tables.",
    ]


def test_hidden_elements_site_header_and_link_lists_are_left_out_but_an_articles_header_is_kept() -> None:
    text, headings = html_document(
        "<body><header><a href='/'>Home</a> <a href='/blog'>Blog</a></header>"
        "<article><header><h1>Tide tables</h1><p>By the harbour board</p></header>"
        "<p>High tide is at 06:40 today.</p><p hidden>Draft note.</p><p style='display: none'>Old note.</p>"
        "<ul><li><a href='a'>Tides in May</a></li><li><a href='b'>Tides in June</a></li>"
        "<li><a href='c'>Tides in July</a></li></ul>"
        "<aside class='footnote'><p>Times are local.</p></aside></article>"
        "<aside><p>Subscribe to our newsletter.</p></aside><footer>All rights reserved.</footer></body>"
    )

    assert text == "Tide tables\n\nBy the harbour board\n\nHigh tide is at 06:40 today.\n\nTimes are local."
    assert _headings(text, headings) == ["Tide tables"]


def test_a_page_that_is_all_links_is_read_with_its_links_rather_than_dropped() -> None:
    text, _ = html_document(
        "<h1>Harbour links</h1><ul><li><a href='a'>Tide tables</a></li><li><a href='b'>Ferry times</a></li>"
        "<li><a href='c'>Harbour webcam</a></li></ul>"
    )

    assert text == "Harbour links\n\nTide tables\n\nFerry times\n\nHarbour webcam"


@pytest.mark.parametrize("tag", ["div", "a href='x'", "header", "table><tr><td>x</td><td", "h2", "pre", "aside"])
def test_ten_thousand_nested_tags_are_walked_without_recursion(tag: str) -> None:
    name = tag.split()[0].split(">")[0]
    close = "</td></tr></table>" if name == "table" else f"</{name}>"
    page = f"<html><body><p>Before.</p>{f'<{tag}>' * 10_000}The vault holds 77 keys.{close * 10_000}</body></html>"

    text, _ = html_document(page)  # deeper than the interpreter's recursion limit: no recursion allowed

    assert "Before." in text
    if name not in ("header", "aside"):  # furniture: the nested sentence goes with it
        assert "The vault holds 77 keys." in text


def test_html_and_markdown_files_carry_their_headings_and_text_files_none(tmp_path: Path) -> None:
    (tmp_path / "guide.html").write_text(GUIDE_PAGE, encoding="utf-8")
    (tmp_path / "guide.md").write_text(
        "# Quillmark guide\n\nThe tower has 212 steps.\n\n```\n# a comment, not a heading\n```\n\nTides\n=====\n\n"
        "High tide is at noon.\n",
        encoding="utf-8",
    )
    (tmp_path / "guide.txt").write_text("# Not a heading in a text file\n\nPlain text.\n", encoding="utf-8")

    html = load_document(tmp_path / "guide.html", "guide.html")
    markdown = load_document(tmp_path / "guide.md", "guide.md")
    plain = load_document(tmp_path / "guide.txt", "guide.txt")

    assert _headings(html.text, html.headings) == GUIDE_HEADINGS
    assert _headings(markdown.text, markdown.headings) == ["# Quillmark guide", "Tides\n====="]
    assert plain.headings == ()


# --- answering from pages, with the real model -------------------------------------------------


@pytest.fixture(scope="module")
def pages_rag(tmp_path_factory, embedder) -> RAG:
    base = tmp_path_factory.mktemp("html-pages")
    corpus = base / "corpus"
    corpus.mkdir()
    for name, page in (
        ("policy.html", SPHINX_PAGE),
        ("users-and-groups.html", DOCBOOK_PAGE),
        ("fleet.html", TABLE_PAGE),
        ("guide.html", GUIDE_PAGE),
    ):
        (corpus / name).write_text(page, encoding="utf-8")
    report = build_index([corpus], index_dir=base / "index", embedder=embedder)
    assert not report.skipped
    opened = RAG.open(base / "index", embedder=embedder)
    yield opened
    opened.index.close()


def _quotes(rag: RAG, answer: Answer) -> list[str]:
    """The answer's quotes, each checked to be the exact span of its document it claims to be."""
    assert not answer.abstained and answer.citations, answer.text
    for c in answer.citations:
        document = rag.index.document(c.source)
        assert document is not None and document.text[c.start : c.end] == c.quote
    return [c.quote for c in answer.citations]


def _all_headings(tmp_path: Path) -> set[str]:
    headings: set[str] = set()
    for name, page in (
        ("a.html", SPHINX_PAGE),
        ("b.html", DOCBOOK_PAGE),
        ("c.html", TABLE_PAGE),
        ("d.html", GUIDE_PAGE),
    ):
        (tmp_path / name).write_text(page, encoding="utf-8")
        document: Document = load_document(tmp_path / name, name)
        headings.update(_headings(document.text, document.headings))
    return headings


def test_a_question_in_the_breadcrumbs_words_is_answered_from_the_content(pages_rag: RAG) -> None:
    answer = pages_rag.ask("What is the minimum engine version required by the Harbour Ferry Policy?")

    quotes = _quotes(pages_rag, answer)
    assert answer.citations[0].source == "policy.html"
    assert "version 3.9 or newer" in quotes[0]
    assert not any(furniture in quote for quote in quotes for furniture in SPHINX_FURNITURE)


def test_a_sentence_broken_across_source_lines_is_quoted_whole(pages_rag: RAG) -> None:
    answer = pages_rag.ask("Which Debian package contains the master versions of /etc/passwd and /etc/group?")

    assert _quotes(pages_rag, answer)[0] == PASSWD_SENTENCE


def test_a_table_cell_is_answered_and_cited_to_its_row(pages_rag: RAG) -> None:
    answer = pages_rag.ask("How many cars does the Gannet ferry carry?")

    assert _quotes(pages_rag, answer)[0] == GANNET_ROW
    assert answer.citations[0].source == "fleet.html"


def test_a_heading_leads_to_its_section_and_its_sentence(pages_rag: RAG) -> None:
    answer = pages_rag.ask("What does the lighthouse keeper do every evening?")

    # Both sections answer "every evening"; only the heading says which is the lighthouse keeper's.
    assert answer.hits[0].chunk.text.startswith("Quillmark harbour guide\n\nLighthouse keeper\n\n")
    assert answer.candidate.startswith("She climbs the 212 steps of the tower every evening. [1]")

    answer = pages_rag.ask("How many steps does the lighthouse keeper climb?")
    assert _quotes(pages_rag, answer)[0] == "She climbs the 212 steps of the tower every evening."


@pytest.mark.parametrize(
    "question",
    ["Harbour master", "What is the Quillmark harbour guide?", "Fish market", "Chapter 1. Introduction", "Ferry fleet"],
)
def test_a_heading_is_never_quoted(pages_rag: RAG, tmp_path: Path, question: str) -> None:
    answer = pages_rag.ask(question)

    assert not {c.quote for c in answer.citations} & _all_headings(tmp_path)
