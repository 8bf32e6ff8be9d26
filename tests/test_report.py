"""Reports are written where they are asked for, with latest.* beside them, never into the checkout."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from eval.report import write_report

ROOT = Path(__file__).resolve().parents[1]


def _tracked_state() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--", "eval/reports"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def test_write_report_puts_latest_beside_the_report_not_into_the_checkout(tmp_path: Path) -> None:
    report = json.loads((ROOT / "eval" / "reports" / "seed.json").read_text(encoding="utf-8"))
    before = _tracked_state()
    paths = write_report(report, tmp_path / "out" / "seed-copy.json")
    assert [p.name for p in paths] == ["seed-copy.json", "seed-copy.md", "seed-copy.png"]
    for suffix in (".json", ".md", ".png"):
        latest = tmp_path / "out" / f"latest{suffix}"
        assert latest.read_bytes() == (tmp_path / "out" / f"seed-copy{suffix}").read_bytes()
    assert "# Evaluation: seed_qa" in (tmp_path / "out" / "latest.md").read_text(encoding="utf-8")
    assert _tracked_state() == before


def test_write_report_without_latest_writes_only_the_three_files(tmp_path: Path) -> None:
    report = json.loads((ROOT / "eval" / "reports" / "seed.json").read_text(encoding="utf-8"))
    write_report(report, tmp_path / "r.json", latest=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md", "r.png"]
