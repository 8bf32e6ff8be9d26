"""`python -m eval.support`'s bookkeeping on hand-made units: which rows are fitted on, the counts
per half and kind, and the threshold sweep (a full run indexes ClapNQ and SQuAD and takes minutes)."""

from __future__ import annotations

import numpy as np

from eval.support import _Columns, _threshold_sweep, _unit_counts


def _unit(form: str, kind: str, half: str) -> dict:
    return {"form": form, "kind": kind, "half": half, "label": int(kind == "gold")}


UNITS = [
    _unit("statement", "gold", "calibration"),
    _unit("statement", "swapped", "calibration"),
    _unit("statement", "in_passage", "calibration"),
    _unit("statement", "gold", "report"),
    _unit("statement", "in_passage", "report"),
    _unit("fragment", "gold", "report"),
    _unit("fragment", "wrong_answer", "report"),
    _unit("fragment", "retrieved", "calibration"),
]


def test_weights_are_fitted_on_calibration_rows_of_the_kinds_fitted_on_only() -> None:
    columns = _Columns.of(UNITS)
    assert columns.labels.tolist() == [1, 0, 0, 1, 0, 1, 0, 0]
    # in_passage negatives are reported, never fitted on; report rows never are.
    assert columns.fit_rows.tolist() == [True, True, False, False, False, False, False, True]


def test_units_are_counted_per_form_half_and_kind() -> None:
    counts = _unit_counts(_Columns.of(UNITS), ["statement", "fragment"])
    assert counts["statement"] == {
        "calibration": {"gold": 1, "retrieved": 0, "swapped": 1, "in_passage": 1},
        "report": {"gold": 1, "retrieved": 0, "swapped": 0, "in_passage": 1},
    }
    assert counts["fragment"] == {
        "calibration": {"gold": 0, "retrieved": 1, "wrong_answer": 0},
        "report": {"gold": 1, "retrieved": 0, "wrong_answer": 1},
    }


def test_the_sweep_reads_report_rows_of_the_kinds_fitted_on() -> None:
    # Report rows fitted on: statement gold (0.75), fragment gold (0.35), fragment wrong_answer (0.45);
    # the statement in_passage row (0.95) and the calibration rows must not count.
    scores = np.array([0.05, 0.95, 0.95, 0.75, 0.95, 0.35, 0.45, 0.95])
    sweep = {row["threshold"]: row for row in _threshold_sweep(scores, _Columns.of(UNITS))}
    assert sorted(sweep) == [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert (sweep[0.3]["recall"], sweep[0.3]["unsupported_caught"]) == (1.0, 0.0)
    assert (sweep[0.4]["recall"], sweep[0.4]["unsupported_caught"]) == (0.5, 0.0)
    assert (sweep[0.5]["recall"], sweep[0.5]["unsupported_caught"]) == (0.5, 1.0)
    assert (sweep[0.8]["recall"], sweep[0.8]["unsupported_caught"]) == (0.0, 1.0)
