"""rag/fitted.json, the fitted numbers `RagConfig` reads: complete, traceable, and refused clearly
when malformed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from rag.answer import FEATURES, READER_FEATURES
from rag.checker import CHECKER_FEATURES
from rag.config import (
    DATASET_KEYS,
    FITTED_BLOCKS,
    FITTED_ENV,
    FITTED_FIELDS,
    FITTED_FILE,
    PROVENANCE_KEYS,
    FittedFileError,
    RagConfig,
    fitted_defaults,
    fitted_path,
    forget_fitted,
    load_fitted,
)
from rag.verify import SUPPORT_FEATURES


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_package_file_holds_every_field_the_config_needs() -> None:
    data = load_fitted(FITTED_FILE)
    assert set(FITTED_BLOCKS) <= set(data)
    config = RagConfig()
    for field, (block, key) in FITTED_FIELDS.items():
        value = data[block][key]
        assert getattr(config, field) == (tuple(value) if isinstance(value, list) else value), field
    assert set(fitted_defaults()) == set(FITTED_FIELDS)
    # The weights are in the order the scorers compute their features.
    assert data["heuristic_confidence"]["features"] == list(FEATURES)
    assert data["reader_confidence"]["features"] == list(READER_FEATURES)
    assert data["support"]["features"] == list(SUPPORT_FEATURES)
    assert data["checker"]["features"] == list(CHECKER_FEATURES)
    assert len(config.checker_weights) == len(config.checker_fragment_weights) == len(CHECKER_FEATURES)
    assert len(config.confidence_weights) == len(FEATURES)
    assert len(config.reader_confidence_weights) == len(READER_FEATURES)
    assert len(config.support_weights) == len(config.fragment_support_weights) == len(SUPPORT_FEATURES)


def test_every_block_says_where_its_numbers_come_from() -> None:
    data = load_fitted(FITTED_FILE)
    for block in FITTED_BLOCKS:
        provenance = data[block]["provenance"]
        assert set(PROVENANCE_KEYS) <= set(provenance), block
        assert len(provenance["git_commit"]) == 40 and provenance["date"][:4].isdigit()
        assert provenance["command"].startswith(("rag eval --calibrate", "python -m eval.support"))
        for dataset in provenance["datasets"]:
            assert set(DATASET_KEYS) <= set(dataset) and dataset["rows"] > 0, (block, dataset)


def test_configs_read_the_file_once_and_get_copies(tmp_path: Path) -> None:
    path = _write(tmp_path / "fitted.json", load_fitted(FITTED_FILE))
    first = load_fitted(path)
    first["support"]["threshold"] = 0.99  # a copy: the next reader does not see it
    assert load_fitted(path)["support"]["threshold"] == RagConfig().support_threshold
    changed = load_fitted(path)
    changed["support"]["threshold"] = 0.5
    _write(path, changed)
    assert RagConfig.from_fitted(path).support_threshold != 0.5  # read once...
    forget_fitted()
    assert RagConfig.from_fitted(path).support_threshold == 0.5  # ...until told the file changed


def test_env_var_points_configs_at_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_fitted(FITTED_FILE)
    data["reader_confidence"]["answer_threshold"] = 0.61
    data["heuristic_confidence"]["answer_threshold"] = 0.62
    path = _write(tmp_path / "other.json", data)
    monkeypatch.setenv(FITTED_ENV, str(path))
    assert fitted_path() == path
    config = RagConfig()
    assert (config.reader_abstain_threshold, config.abstain_threshold) == (0.61, 0.62)
    assert config.thresholds()[0] == 0.61 and config.replace(answer_scorer="heuristic").thresholds()[0] == 0.62
    assert config.support_threshold == load_fitted(FITTED_FILE)["support"]["threshold"]
    assert RagConfig(reader_abstain_threshold=0.3).thresholds()[0] == 0.3  # an explicit value still wins
    monkeypatch.setenv(FITTED_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match=f"missing.json.*{FITTED_ENV}"):
        RagConfig()


def _drop(data: dict, block: str, key: str) -> None:
    del data[block][key]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.pop("support"), "support is missing"),
        (
            lambda d: _drop(d, "heuristic_confidence", "tentative_threshold"),
            "heuristic_confidence.tentative_threshold is missing",
        ),
        (
            lambda d: d["reader_confidence"]["weights"].pop(),
            "reader_confidence.weights must hold one number per feature",
        ),
        (lambda d: d["support"].update(threshold=1.5), "support.threshold must be a number within [0, 1], got 1.5"),
        (
            lambda d: d["heuristic_confidence"].update(weights=[0.1, "x"]),
            "heuristic_confidence.weights must be a list of numbers",
        ),
        (lambda d: _drop(d["support"], "provenance", "git_commit"), "support.provenance must name"),
        (lambda d: d["support"]["provenance"].update(datasets=[]), "support.provenance.datasets must list"),
        (lambda d: d.update(format=2), "format must be 1, got 2"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_file_and_key(tmp_path: Path, change, key: str) -> None:
    data = copy.deepcopy(load_fitted(FITTED_FILE))
    change(data)
    path = _write(tmp_path / "bad.json", data)
    with pytest.raises(FittedFileError) as err:
        RagConfig.from_fitted(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_a_file_that_is_not_json_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "broken.json", '{"format": 1,')
    monkeypatch.setenv(FITTED_ENV, str(path))
    with pytest.raises(FittedFileError, match=r"broken\.json: not valid JSON"):
        RagConfig()
