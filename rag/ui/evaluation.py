"""The Evaluation tab: the latest report `rag eval` wrote (latest.md and latest.png).

Example:
    >>> text, image = eval_report(REPORTS_DIR)  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

# Where `rag eval` copies its latest report (eval/report.py's LATEST_DIR): eval/reports beside the
# `rag` package, in a checkout as in an installed wheel. Named here, not imported: rag never imports eval.
REPORTS_DIR = Path(__file__).resolve().parents[2] / "eval" / "reports"


def eval_report(reports_dir: Path) -> tuple[str, Any]:
    """The report's markdown and its plot (a PIL image, or None), or a note saying how to make one."""
    md, png = reports_dir / "latest.md", reports_dir / "latest.png"
    if not md.is_file():
        return ("**No evaluation report yet.** Run `rag eval` to write one to "
                f"`{reports_dir}/latest.md`, then reload."), None
    image = None
    if png.is_file():
        from PIL import Image

        with Image.open(png) as img:
            image = img.copy()
    return md.read_text(encoding="utf-8", errors="replace"), image
