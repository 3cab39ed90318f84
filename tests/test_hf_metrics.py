import os

import evaluate
import numpy as np
import pytest
import sklearn.metrics as sk

from oe_text.hf_metrics import load_ood_metric, ood_detection_metric_path
from oe_text.metrics import ood_detection_metrics_from_labels


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(ood_detection_metric_path())


def test_metric_folder_layout_is_what_evaluate_needs():
    path = ood_detection_metric_path()
    assert os.path.isabs(path)
    # evaluate.load(<folder>) imports <folder>/<folder name>.py.
    assert os.path.isfile(os.path.join(path, "ood_detection.py"))
    assert os.path.isfile(os.path.join(path, "README.md"))


def test_evaluate_load_works_offline_and_matches_the_library(metric):
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(size=200), rng.normal(1.0, size=40)].round(2)
    refs = np.r_[np.zeros(200, dtype=int), np.ones(40, dtype=int)]
    out = metric.compute(predictions=scores, references=refs)
    assert set(out) == {"auroc", "aupr_out", "aupr_in", "fpr90", "fpr95", "detection_error"}
    assert out == pytest.approx(ood_detection_metrics_from_labels(scores, refs), abs=1e-12)
    assert out["auroc"] == pytest.approx(sk.roc_auc_score(refs, scores), abs=1e-9)
    assert out["aupr_out"] == pytest.approx(sk.average_precision_score(refs, scores), abs=1e-9)


def test_compute_kwargs_and_batches(metric):
    for preds, refs in (([0.1, 0.4], [0, 0]), ([0.35, 0.8], [1, 1])):
        metric.add_batch(predictions=preds, references=refs)
    out = metric.compute(fpr_tprs=[0.5], fpr_method="at_least")
    assert out == {
        "auroc": 0.75,
        "aupr_out": pytest.approx(5 / 6),
        "aupr_in": pytest.approx(5 / 6),
        "fpr50": 0.0,
        "detection_error": 0.25,
    }


def test_helper_and_errors():
    m = load_ood_metric()
    assert m.compute(predictions=[0.0, 1.0], references=[0, 1])["auroc"] == 1.0
    with pytest.raises(ValueError, match="only in-distribution"):
        m.compute(predictions=[0.0, 1.0], references=[0, 0])
    with pytest.raises(ValueError, match="NaN"):
        m.compute(predictions=[float("nan"), 1.0], references=[0, 1])
