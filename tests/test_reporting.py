"""The reporting layer: metric names, tables, flagged shares and the warnings a recipe prints."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from oe_text.evaluation import evaluate_ood_from_scores
from oe_text.reporting import (
    budget_warnings,
    global_batch_note,
    markdown_table,
    metric_label,
    report_unavailable,
)


def test_metric_labels_and_table():
    assert metric_label("auroc") == "AUROC ↑" and metric_label("fpr95") == "FPR95 ↓"
    assert metric_label("FPR90", direction=False) == "FPR90" and metric_label("speed") == "speed"
    assert markdown_table(["set", "x"], [["a", 1]]) == "| set | x |\n|---|---:|\n| a | 1 |"


def results(id_scores, ood_scores, accuracy=None):
    res = evaluate_ood_from_scores(
        {"msp": np.asarray(id_scores)}, {"a": {"msp": np.asarray(ood_scores)}}, protocol="full"
    )
    res.accuracy = accuracy
    return res


def test_threshold_effect_in_reports_and_plots(tmp_path):
    res = results([0.0, 0.1, 0.2, 0.3], [0.2, 0.5, 0.9, 0.25])
    entry = res.set_threshold("msp", 0.25)
    # The detector's rule is strictly greater: 0.25 itself is kept.
    assert entry == {"threshold": 0.25, "id_flagged": 0.25, "flagged": {"a": 0.5}}
    table = res.to_markdown(score="msp")
    assert "| OOD set | FPR90 ↓ | AUROC ↑ | AUPR-Out ↑ |" in table and "Flagged ↑ |" in table
    assert "threshold 0.25, which flags 25.00% of the ID test inputs" in table
    assert table.splitlines()[-2].endswith("| 50.00 |") and table.splitlines()[-1].endswith("| **50.00** |")
    fig = res.plot_histograms("msp", path=tmp_path / "hist.png")
    assert "flags ID 25%, OOD 50%" in fig.axes[0].get_title()
    assert any(line.get_label() == "threshold" for line in fig.axes[0].lines)
    with pytest.raises(KeyError, match="energy"):
        res.set_threshold("energy", 0.0)


def test_budget_warnings_when_oe_made_things_worse():
    good = results([0.0, 0.1, 0.2, 0.3], [0.5, 0.6, 0.7, 0.8], accuracy=0.9)
    bad = results([0.0, 0.1, 0.6, 0.7], [0.5, 0.6, 0.7, 0.8], accuracy=0.8)
    warnings = budget_warnings(good, bad, train_examples=100)
    assert len(warnings) == 3
    assert warnings[0].startswith("Outlier Exposure made the detector worse on 100 training examples")
    assert "AUROC 100.0 -> " in warnings[0]
    assert "cost 10.0 points of test accuracy" in warnings[1] and "smoke-test" in warnings[2]
    assert budget_warnings(bad, good, train_examples=50_000) == []


def test_global_batch_note_says_how_to_match_one_process():
    args = SimpleNamespace(world_size=2, per_device_train_batch_size=32, gradient_accumulation_steps=1)
    note = global_batch_note(args)
    assert "global batch is 2 x 32 x 1 (accumulation) = 64" in note
    assert "--per_device_train_batch_size 16" in note
    assert global_batch_note(SimpleNamespace(world_size=1, per_device_train_batch_size=32)) is None


def test_unavailable_sets_are_reported_once_on_the_main_process(caplog):
    logger = logging.getLogger("oe_text.test_reporting")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        report_unavailable({"wmt16": "not in the mirror\nsecond line " + "x" * 400}, logger, is_main=False)
        assert caplog.records == []
        report_unavailable({"wmt16": "not in the mirror\nsecond line"}, logger, is_main=True)
    assert len(caplog.records) == 1 and "wmt16" in caplog.text and "second line" not in caplog.text
