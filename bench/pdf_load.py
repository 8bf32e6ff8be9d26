"""What table detection costs when reading PDFs: CPU seconds per page, three ways, on a prose PDF and
on a PDF whose every page holds a ruled table.

    python -m bench.pdf_load
    python -m bench.pdf_load --pages 40 --repeats 5

- "text layer": pypdf's text extraction alone (what the reader did before tables were found);
- "rag": `rag.load.pdf.pdf_text`, which counts each page's ruling operators and hands only ruled
  pages to pdfplumber's table finder;
- "find everywhere": pypdf's text plus pdfplumber's `find_tables` on every page.

CPU time (`time.process_time`, best of `--repeats`) rather than wall time: the machine is shared.
The figures to read are the ratios to "text layer". Results: bench/results/pdf_load.json.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import Any

from bench.common import print_table, write_result

PROSE = (
    "The harbour master oversees all moorings, pilots and dredging work along the quays. In 2023 the "
    "harbour handled 4,217 cargo ships, and the busiest month was August, when the new container crane "
    "entered service. Dredging of the main channel was finished in November, two weeks ahead of schedule. "
)


def make_pdf(pages: int, *, tables: bool) -> bytes:
    """`pages` pages of prose (fpdf2), each with a ruled 6 x 4 table in the middle when `tables`."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for page in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 6, PROSE * 3, new_x="LMARGIN", new_y="NEXT")
        if tables:
            with pdf.table() as table:
                for r in range(6):
                    row = table.row()
                    for c in range(4):
                        row.cell(f"Header {c}" if r == 0 else f"cell {page}.{r}.{c}")
        pdf.multi_cell(0, 6, PROSE * 3, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def text_layer(data: bytes) -> Any:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def rag_reader(data: bytes) -> Any:
    from rag.load.pdf import pdf_text

    return pdf_text(data)


def find_everywhere(data: bytes) -> Any:
    import pdfplumber

    texts = text_layer(data)
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return texts, [page.find_tables() for page in pdf.pages]


def cpu_seconds(read: Callable[[bytes], Any], data: bytes, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        read(data)
        best = min(best, time.process_time() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    ways = {"text layer": text_layer, "rag": rag_reader, "find everywhere": find_everywhere}
    rows, results = [], []
    for name, has_tables in (("prose", False), ("tables", True)):
        data = make_pdf(args.pages, tables=has_tables)
        seconds = {way: cpu_seconds(read, data, args.repeats) / args.pages for way, read in ways.items()}
        base = seconds["text layer"]
        results.append({"pdf": name, "pages": args.pages, "cpu_s_per_page": seconds})
        rows.append([name, *(f"{s * 1000:.1f} ms ({s / base:.1f}x)" for s in seconds.values())])
    print_table(["pdf", *ways], rows)
    write_result("pdf_load", {"results": results, "args": vars(args)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
