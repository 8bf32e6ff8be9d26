"""The Evaluation tab: the latest report `rag eval` wrote (latest.md and latest.png), or before
any, the committed report of the demo questions (seed.md and seed.png), so a fresh checkout shows
measured numbers too.

Example:
    >>> text, image = eval_report(REPORTS_DIR)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Where `rag eval` copies its latest report (eval/report.py's LATEST_DIR): eval/reports beside the
# `rag` package, in a checkout as in an installed wheel. Named here, not imported: rag never imports eval.
REPORTS_DIR = Path(__file__).resolve().parents[2] / "eval" / "reports"


# The reports shown, the first that exists: the last `rag eval` run, then the demo questions' report.
SHOWN = ("latest", "seed")


def eval_report(reports_dir: Path) -> tuple[str, Any]:
    """The report's markdown and its plot (a PIL image, or None), or a note saying how to make one."""
    md = next((reports_dir / f"{stem}.md" for stem in SHOWN if (reports_dir / f"{stem}.md").is_file()), None)
    if md is None:
        return (
            f"**No evaluation report yet.** Run `rag eval` to write one to `{reports_dir}/latest.md`, then reload."
        ), None
    png = md.with_suffix(".png")
    image = None
    if png.is_file():
        from PIL import Image

        with Image.open(png) as img:
            image = img.copy()
    return md.read_text(encoding="utf-8", errors="replace"), image
