import math

import numpy as np
import pytest
import sklearn.metrics as sk
import torch

from oe_text.metrics import (
    aupr_in,
    aupr_out,
    auroc,
    calibration_error,
    calibration_metrics,
    detection_error,
    expected_calibration_error,
    fpr_at_tpr,
    fpr_key,
    mad_calibration_error,
    ood_detection_metrics,
    ood_detection_metrics_from_labels,
    rms_calibration_error,
    roc_curve,
    soft_f1,
    split_by_label,
    threshold_at_tpr,
)


def _random_case(rng):
    n_id, n_ood = (int(v) for v in rng.integers(1, 80, size=2))
    decimals = int(rng.integers(0, 3))  # 0 decimals -> heavy ties
    ids = rng.normal(size=n_id).round(decimals)
    ood = (rng.normal(size=n_ood) + rng.uniform(-1, 2)).round(decimals)
    return ids, ood


def _paper_fpr_oracle(ids, ood, level):
    """Brute force of the paper's rule: over distinct thresholds t (flag s >= t) from the highest down to the first
    one detecting every OOD input, take the TPR closest to `level`, ties going to the lower threshold."""
    best = None
    for t in sorted(set(np.r_[ids, ood]), reverse=True):
        tpr, fpr = np.mean(ood >= t), np.mean(ids >= t)
        gap = abs(tpr - level)
        if best is None or gap <= best[0]:
            best = (gap, fpr)
        if tpr == 1:
            break
    return best[1]


def _at_least_oracle(ids, ood, level):
    for t in sorted(set(np.r_[ids, ood]), reverse=True):
        if np.sum(ood >= t) >= math.ceil(level * ood.size - 1e-9):
            return np.mean(ids >= t)


def test_detection_metrics_agree_with_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(150):
        ids, ood = _random_case(rng)
        y = np.r_[np.zeros(ids.size), np.ones(ood.size)]
        s = np.r_[ids, ood]
        m = ood_detection_metrics(ids, ood, fpr_tprs=(0.8, 0.9, 0.95))
        assert m["auroc"] == pytest.approx(sk.roc_auc_score(y, s), abs=1e-9)
        assert auroc(ids, ood) == pytest.approx(m["auroc"], abs=1e-12)
        assert m["aupr_out"] == pytest.approx(sk.average_precision_score(y, s), abs=1e-9)
        assert aupr_out(ids, ood) == pytest.approx(m["aupr_out"], abs=1e-12)
        assert m["aupr_in"] == pytest.approx(sk.average_precision_score(1 - y, -s), abs=1e-9)
        assert aupr_in(ids, ood) == pytest.approx(m["aupr_in"], abs=1e-12)
        fpr, tpr, _ = sk.roc_curve(y, s, drop_intermediate=False)
        assert m["detection_error"] == pytest.approx(np.min(0.5 * (1 - tpr) + 0.5 * fpr), abs=1e-9)
        assert detection_error(ids, ood) == pytest.approx(m["detection_error"], abs=1e-12)
        for level in (0.8, 0.9, 0.95):
            assert m[fpr_key(level)] == pytest.approx(_paper_fpr_oracle(ids, ood, level), abs=1e-12)
            assert fpr_at_tpr(ids, ood, level, method="at_least") == pytest.approx(
                _at_least_oracle(ids, ood, level), abs=1e-12
            )


def test_roc_curve_matches_sklearn_points():
    rng = np.random.default_rng(1)
    ids, ood = rng.normal(size=50).round(1), rng.normal(0.5, size=30).round(1)
    fpr, tpr, thr = roc_curve(ids, ood)
    y, s = np.r_[np.zeros(50), np.ones(30)], np.r_[ids, ood]
    sk_fpr, sk_tpr, sk_thr = sk.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert thr[0] == np.inf and np.array_equal(thr[1:], sk_thr[1:])


def test_hand_computed_small_case():
    ids, ood = [0.1, 0.4], [0.35, 0.8]
    m = ood_detection_metrics(ids, ood)
    # Pairs (ood > id): 0.35>0.1, 0.8>0.1, 0.8>0.4, but 0.35<0.4 -> 3/4.
    assert m["auroc"] == 0.75
    # OOD positive, thresholds 0.8 (P=1), 0.4 (P=1/2), 0.35 (P=2/3): AP = 1/2 * 1 + 1/2 * 2/3.
    assert m["aupr_out"] == pytest.approx(0.5 + 1 / 3)
    # ID positive with -score: -0.1 (P=1), -0.35 (P=1/2), -0.4 (P=2/3).
    assert m["aupr_in"] == pytest.approx(0.5 + 1 / 3)
    # TPR 0.5 at FPR 0 (t=0.8), TPR 1 needs t=0.35 with FPR 0.5: closest to 0.9 is TPR 1.
    assert m["fpr90"] == 0.5 and m["fpr95"] == 0.5
    # Best threshold 0.8: 0.5 * 0.5 + 0.5 * 0 = 0.25.
    assert m["detection_error"] == 0.25


def test_perfectly_separated_and_inverted_scores():
    ids, ood = np.arange(10.0), np.arange(10.0) + 100
    m = ood_detection_metrics(ids, ood)
    assert m == {"auroc": 1.0, "aupr_out": 1.0, "aupr_in": 1.0, "fpr90": 0.0, "fpr95": 0.0, "detection_error": 0.0}
    inv = ood_detection_metrics(ood, ids)  # OOD scores all lower than ID
    assert inv["auroc"] == 0.0
    assert inv["fpr90"] == 1.0 and inv["fpr95"] == 1.0
    assert inv["detection_error"] == 0.5
    # AP of the worst ranking: positives at ranks 11..20 -> mean of k/(10+k).
    assert inv["aupr_out"] == pytest.approx(np.mean([k / (10 + k) for k in range(1, 11)]))


def test_all_equal_scores_are_chance():
    ids, ood = np.full(8, 0.3), np.full(2, 0.3)
    m = ood_detection_metrics(ids, ood)
    assert m["auroc"] == 0.5
    assert m["aupr_out"] == pytest.approx(0.2)  # the OOD fraction
    assert m["aupr_in"] == pytest.approx(0.8)  # the ID fraction
    assert m["fpr90"] == 1.0  # the only threshold flags everything
    assert m["detection_error"] == 0.5


def test_ties_between_id_and_ood_count_half():
    # One OOD tied with one of two IDs, above the other: (1 + 0.5) / 2.
    assert auroc([1.0, 0.0], [1.0]) == 0.75
    assert auroc([1.0, 1.0], [1.0, 1.0]) == 0.5


def test_fpr_paper_rule_can_stop_below_target_while_at_least_does_not():
    # 20 OOD: 17 high distinct scores, then 3 tied at 0.42 together with two ID inputs.
    ood = np.r_[np.arange(17, 0, -1) + 10.0, [0.42] * 3]
    ids = np.array([2.5, 0.42, 0.42, 0.1, 0.0])
    # TPR 0.85 (closest to 0.9, gap 0.05 < 0.1) is reached first at t=11 (FPR 0), last at t=2.5 (FPR 1/5): ties go to
    # the lower threshold, as the paper's scan from full recall downwards.
    assert fpr_at_tpr(ids, ood, 0.9, method="paper") == pytest.approx(0.2)
    # TPR >= 0.9 needs t=0.42, which also flags the two tied ID inputs.
    assert fpr_at_tpr(ids, ood, 0.9, method="at_least") == pytest.approx(0.6)
    assert fpr_at_tpr(ids, ood, 1.0, method="paper") == pytest.approx(0.6)
    assert fpr_at_tpr(ids, ood, 0.05, method="paper") == 0.0


def test_labels_layout_matches_pair_layout():
    rng = np.random.default_rng(3)
    s = rng.normal(size=60)
    y = rng.integers(0, 2, size=60)
    ids, ood = split_by_label(s, y)
    assert np.array_equal(ids, s[y == 0]) and np.array_equal(ood, s[y == 1])
    assert ood_detection_metrics_from_labels(s, y.astype(bool)) == ood_detection_metrics(ids, ood)
    assert ood_detection_metrics_from_labels(torch.tensor(s), torch.tensor(y)) == ood_detection_metrics(ids, ood)


def test_fpr_key_names():
    assert (
        fpr_key(0.9) == "fpr90" and fpr_key(0.95) == "fpr95" and fpr_key(0.925) == "fpr92.5" and fpr_key(1) == "fpr100"
    )
    assert list(ood_detection_metrics([0, 1], [2, 3], fpr_tprs=(0.5,))) == [
        "auroc",
        "aupr_out",
        "aupr_in",
        "fpr50",
        "detection_error",
    ]


@pytest.mark.parametrize(
    ("ids", "ood", "match"),
    [
        ([0.1, np.nan], [0.2], "`id_scores` contains 1 NaN and 0 inf"),
        ([0.1], [0.2, np.inf, -np.inf], "`ood_scores` contains 0 NaN and 2 inf"),
        ([], [0.2], "`id_scores` is empty"),
        ([0.1], [], "`ood_scores` is empty"),
        ([[0.1, 0.2]], [0.3], "must be 1-D"),
        (["a"], [0.3], "`id_scores` must be a 1-D array of numbers"),
    ],
)
def test_bad_scores_raise_clear_errors(ids, ood, match):
    with pytest.raises(ValueError, match=match):
        ood_detection_metrics(ids, ood)
    with pytest.raises(ValueError, match=match):
        auroc(ids, ood)


def test_bad_labels_raise_clear_errors():
    with pytest.raises(ValueError, match="only OOD"):
        split_by_label([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="only in-distribution"):
        ood_detection_metrics_from_labels([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="`labels` has 3 entries but `scores` has 2"):
        split_by_label([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="only 0 and 1"):
        split_by_label([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="`scores` contains 1 NaN"):
        split_by_label([0.1, np.nan], [0, 1])


@pytest.mark.parametrize("tpr", [0, -0.1, 1.5, "0.9", True])
def test_bad_tpr(tpr):
    with pytest.raises(ValueError, match="tpr"):
        fpr_at_tpr([0.1], [0.2], tpr)
    with pytest.raises(ValueError, match="fpr_tprs"):
        ood_detection_metrics([0.1], [0.2], fpr_tprs=(tpr,))


def test_bad_fpr_method():
    with pytest.raises(ValueError, match="method"):
        fpr_at_tpr([0.1], [0.2], 0.9, method="interp")
    with pytest.raises(ValueError, match="fpr_method"):
        ood_detection_metrics([0.1], [0.2], fpr_method="interp")


# ------------------------------------------------------------------------------------------------ calibration


def test_adaptive_calibration_error_by_hand():
    conf, correct = [0.9, 0.8, 0.6, 0.3], [1, 1, 0, 0]
    # Sorted: bins {0.3, 0.6} (acc 0, gap 0.45) and {0.8, 0.9} (acc 1, gap 0.15), weights 1/2.
    assert rms_calibration_error(conf, correct, bin_size=2) == pytest.approx(math.sqrt(0.5 * 0.45**2 + 0.5 * 0.15**2))
    assert mad_calibration_error(conf, correct, bin_size=2) == pytest.approx(0.5 * 0.45 + 0.5 * 0.15)
    assert calibration_error(conf, correct, p="max", bin_size=2) == pytest.approx(0.45)
    # The reference loop skips the last bin but keeps the weights.
    assert rms_calibration_error(conf, correct, bin_size=2, drop_last_bin=True) == pytest.approx(
        math.sqrt(0.5 * 0.45**2)
    )
    # 5 examples in bins of 2: two bins, the last one takes the remainder ({0.6, 0.8, 0.9}).
    conf5, correct5 = [0.3, 0.6, 0.8, 0.9, 0.2], [0, 0, 1, 1, 0]
    gap_low, gap_high = abs(0.25 - 0), abs((0.6 + 0.8 + 0.9) / 3 - 2 / 3)
    assert mad_calibration_error(conf5, correct5, bin_size=2) == pytest.approx(2 / 5 * gap_low + 3 / 5 * gap_high)
    # Fewer examples than one bin: a single bin.
    assert mad_calibration_error(conf, correct, bin_size=100) == pytest.approx(abs(np.mean(conf) - 0.5))


def test_calibration_ties_use_a_stable_order():
    # Equal confidences keep input order, so the bins are deterministic.
    conf, correct = [0.5, 0.5, 0.5, 0.5], [1, 1, 0, 0]
    assert mad_calibration_error(conf, correct, bin_size=2) == pytest.approx(0.5)
    assert mad_calibration_error(conf, correct[::-1], bin_size=2) == pytest.approx(0.5)


def test_perfect_calibration_is_zero():
    conf = np.r_[np.full(100, 1.0), np.full(100, 0.5)]
    correct = np.r_[np.ones(100), np.tile([0, 1], 50)]
    assert rms_calibration_error(conf, correct) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_by_hand():
    conf, correct = [0.95, 0.85, 0.55, 0.15], [1, 0, 1, 0]
    # One example per bin of width 0.1: (0.05 + 0.85 + 0.45 + 0.15) / 4.
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.375)
    # Bins are (lo, hi]: 0.5 falls in the first of two bins with 0.2; 0.0 goes to the first bin too.
    assert expected_calibration_error([0.5, 0.2, 0.0], [1, 0, 0], n_bins=2) == pytest.approx(abs(0.7 - 1) / 3)


def test_soft_f1_by_hand():
    # wrong = [0, 1]: soft TP = 0.8, FP = 0.1, FN = 0.2 -> 1.6 / 1.9.
    assert soft_f1([0.9, 0.2], [1, 0]) == pytest.approx(1.6 / 1.9)
    assert soft_f1([0.0, 0.0], [0, 0]) == 1.0  # every wrong input gets confidence 0
    assert soft_f1([1.0, 1.0], [1, 1]) == 0.0  # nothing to detect, nothing flagged


def test_calibration_metrics_keys_and_mixture_convention():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1, size=300)
    correct = (rng.uniform(size=300) < conf).astype(int)
    m = calibration_metrics(conf, correct)
    assert set(m) == {"rms_calibration_error", "mad_calibration_error", "ece", "soft_f1"}
    # Adding confidently-wrong OOD inputs worsens calibration.
    mixed = calibration_metrics(np.r_[conf, np.full(60, 0.99)], np.r_[correct, np.zeros(60)])
    assert mixed["rms_calibration_error"] > m["rms_calibration_error"]


def test_calibration_bad_input():
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        soft_f1([1.2, 0.5], [1, 0])
    with pytest.raises(ValueError, match="`correct` has 1 entries but `confidence` has 2"):
        rms_calibration_error([0.2, 0.5], [1])
    with pytest.raises(ValueError, match="only 0 and 1"):
        expected_calibration_error([0.2, 0.5], [1, 3])
    with pytest.raises(ValueError, match="NaN"):
        mad_calibration_error([np.nan, 0.5], [1, 0])
    with pytest.raises(ValueError, match="`p`"):
        calibration_error([0.2], [1], p=3)
    with pytest.raises(ValueError, match="drop_last_bin"):
        rms_calibration_error([0.2], [1], drop_last_bin=True)


# -------------------------------------------------------------------------------------------- threshold_at_tpr


def test_threshold_at_tpr_keeps_fraction_of_id():
    scores = np.arange(100.0)
    assert threshold_at_tpr(scores, 0.95) == 94.0
    assert threshold_at_tpr(torch.arange(10.0), 0.8) == 7.0
    with pytest.raises(ValueError, match="NaN or inf"):
        threshold_at_tpr([np.nan], 0.9)
