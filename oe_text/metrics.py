"""OOD detection and calibration metrics: pure numpy functions of scores.

Conventions shared by every function here, by `oe_text.evaluation` and by the `evaluate` module in
`oe_text/hf_metrics/ood_detection`:

* **OOD is the positive class.** A score is *higher for more anomalous inputs* (see `oe_text.scores`), and an input
  is flagged OOD when `score >= t` for a threshold `t`. TPR = fraction of OOD inputs flagged, FPR = fraction of
  in-distribution (ID) inputs flagged.
* **AUROC**: area under the ROC curve (FPR on x, TPR on y), trapezoidal rule; ties count one half. Equals
  `sklearn.metrics.roc_auc_score(is_ood, score)`.
* **AUPR-Out**: average precision with OOD as positive and the score as is; this is the "AUPR" of the Outlier
  Exposure paper (its `get_measures` calls `average_precision_score` with outliers labelled 1). **AUPR-In**: average
  precision with ID as positive and the score negated. Both are *average precision* (step-wise sum
  `sum_n (R_n - R_{n-1}) P_n`, as scikit-learn), not a trapezoidal area; both depend on the OOD:ID ratio (a random
  detector scores the positive-class fraction).
* **FPR at x% TPR** (`FPR90`, `FPR95`): FPR at the threshold where x% of OOD inputs are detected. The default
  `method="paper"` replicates the paper's `fpr_and_fdr_at_recall`: among the distinct thresholds down to the first one
  reaching full recall, take the one whose TPR is *closest* to x (ties go to the higher TPR), so the TPR used can be a
  little below x. `method="at_least"` takes the highest threshold whose TPR is at least x (never below it).
* **Detection error**: `min_t 0.5 * (1 - TPR(t)) + 0.5 * FPR(t)` over all thresholds, flag-nothing and
  flag-everything included (so it is at most 0.5): the error of the best threshold when ID and OOD are equally likely.
* **Calibration** (the paper's Section 5): on a mixture of ID and OOD test inputs, `confidence` is the model's
  maximum softmax probability and `correct` is 1 for a correctly classified ID input and 0 otherwise (every OOD input
  counts as wrong). Lower RMS/MAD/ECE is better; higher Soft F1 is better.

Every function validates its input and raises `ValueError` naming the argument for NaN/inf, empty arrays, a single
class present, or mismatched lengths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


__all__ = [
    "auroc",
    "aupr_in",
    "aupr_out",
    "calibration_error",
    "calibration_metrics",
    "detection_error",
    "expected_calibration_error",
    "fpr_at_tpr",
    "fpr_key",
    "mad_calibration_error",
    "ood_detection_metrics",
    "ood_detection_metrics_from_labels",
    "rms_calibration_error",
    "roc_curve",
    "soft_f1",
    "split_by_label",
    "threshold_at_tpr",
]

FPR_METHODS = ("paper", "at_least")


# ----------------------------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------------------------


def _to_numpy(x):
    # torch tensors (possibly on GPU or requiring grad) without importing torch here.
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    return x


def _as_1d_float(x, name: str) -> np.ndarray:
    """`x` as a finite, non-empty 1-D float64 array, or a `ValueError` naming `name`."""
    try:
        arr = np.asarray(_to_numpy(x), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be a 1-D array of numbers, got {type(x).__name__} ({err}).") from None
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D (one score per input), got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty.")
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan, n_inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
        raise ValueError(
            f"`{name}` contains {n_nan} NaN and {n_inf} inf value(s) (first at index {int(np.flatnonzero(bad)[0])}); "
            "OOD metrics need finite scores."
        )
    return arr


def _as_binary(x, name: str, n: int, length_of: str) -> np.ndarray:
    arr = np.asarray(_to_numpy(x))
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D, got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise ValueError(f"`{name}` has {arr.shape[0]} entries but `{length_of}` has {n}; they must match.")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    try:
        values = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must hold 0/1 values, got dtype {arr.dtype}.") from None
    if not np.isin(values, (0.0, 1.0)).all():
        odd = np.unique(values[~np.isin(values, (0.0, 1.0))])[:5]
        raise ValueError(f"`{name}` must hold only 0 and 1, found {odd.tolist()}.")
    return values.astype(np.int64)


def split_by_label(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Split scores by 0/1 labels into `(id_scores, ood_scores)`; label 1 marks OOD (the positive class).

    Args:
        scores (array of shape `(n,)`): OOD scores, higher = more anomalous.
        labels (array of shape `(n,)`): 1 for OOD inputs, 0 for in-distribution inputs (bools accepted).

    Returns:
        `tuple[np.ndarray, np.ndarray]`: the in-distribution scores and the OOD scores, float64, in input order.

    Raises:
        `ValueError`: non-finite scores, lengths that differ, labels other than 0/1, or only one class present.
    """
    s = _as_1d_float(scores, "scores")
    y = _as_binary(labels, "labels", s.size, "scores")
    n_ood = int(y.sum())
    if n_ood == 0 or n_ood == y.size:
        only = "OOD (1)" if n_ood else "in-distribution (0)"
        raise ValueError(
            f"`labels` contains only {only} examples; OOD metrics need both in-distribution (0) and OOD (1) inputs."
        )
    return s[y == 0], s[y == 1]


def _check_pair(id_scores, ood_scores) -> tuple[np.ndarray, np.ndarray]:
    return _as_1d_float(id_scores, "id_scores"), _as_1d_float(ood_scores, "ood_scores")


def _check_tpr(tpr: float, name: str = "tpr") -> float:
    if isinstance(tpr, bool) or not isinstance(tpr, (int, float, np.floating)) or not 0 < float(tpr) <= 1:
        raise ValueError(f"`{name}` must be a float in (0, 1] (e.g. 0.95 for FPR95), got {tpr!r}.")
    return float(tpr)


# ----------------------------------------------------------------------------------------------------------------
# The detection curve: one sort, every metric
# ----------------------------------------------------------------------------------------------------------------


def _curve(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (distinct scores, descending) and cumulative true/false positives at `score >= threshold`."""
    scores = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(pos.size, dtype=np.int64), np.zeros(neg.size, dtype=np.int64)])
    order = np.argsort(-scores, kind="mergesort")
    scores, is_pos = scores[order], is_pos[order]
    # The last index of each run of tied scores: a threshold admits a whole tie group at once.
    ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(is_pos)[ends]
    fps = ends + 1 - tps
    return scores[ends], tps, fps


def _auroc(tps: np.ndarray, fps: np.ndarray) -> float:
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def _average_precision(tps: np.ndarray, fps: np.ndarray) -> float:
    recall = np.r_[0.0, tps / tps[-1]]
    precision = tps / (tps + fps)
    return float(np.sum(np.diff(recall) * precision))


def _fpr_at_tpr(tps: np.ndarray, fps: np.ndarray, tpr: float, method: str) -> float:
    n_pos, n_neg = tps[-1], fps[-1]
    if method == "paper":
        # The reference scans thresholds from the first one reaching full recall back to the highest one and keeps
        # the first minimum of |recall - level|: the closest TPR, ties resolved towards the higher TPR.
        last = int(np.searchsorted(tps, n_pos))
        gap = np.abs(tps[: last + 1] / n_pos - tpr)
        i = last - int(np.argmin(gap[::-1]))
    elif method == "at_least":
        needed = math.ceil(tpr * n_pos - 1e-9)
        i = int(np.argmax(tps >= needed))
    else:
        raise ValueError(f"`method` must be one of {FPR_METHODS}, got {method!r}.")
    return float(fps[i] / n_neg)


def _detection_error(tps: np.ndarray, fps: np.ndarray) -> float:
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.min(0.5 * (1.0 - tpr) + 0.5 * fpr))


# ----------------------------------------------------------------------------------------------------------------
# Public detection metrics
# ----------------------------------------------------------------------------------------------------------------


def auroc(id_scores, ood_scores) -> float:
    """Area under the ROC curve with OOD as the positive class.

    `AUROC = P(s_ood > s_id) + 0.5 * P(s_ood == s_id)` for a random OOD/ID pair: 1 = perfect separation, 0.5 = chance
    (and all-equal scores), 0 = perfectly inverted. Identical to `sklearn.metrics.roc_auc_score(is_ood, score)`.

    Args:
        id_scores (array of shape `(n_id,)`): scores of in-distribution inputs (higher = more anomalous).
        ood_scores (array of shape `(n_ood,)`): scores of OOD inputs.

    Returns:
        `float` in `[0, 1]`.
    """
    ids, ood = _check_pair(id_scores, ood_scores)
    _, tps, fps = _curve(ood, ids)
    return _auroc(tps, fps)


def aupr_out(id_scores, ood_scores) -> float:
    """Area under the precision-recall curve with **OOD as positive** (the Outlier Exposure paper's "AUPR").

    Computed as average precision `sum_n (R_n - R_{n-1}) P_n` over distinct thresholds `score >= t`, identical to
    `sklearn.metrics.average_precision_score(is_ood, score)`. A random detector scores `n_ood / (n_id + n_ood)`, so the
    value depends on the OOD:ID ratio (about 1/6 under the paper's 1:5 protocol).

    Args:
        id_scores (array of shape `(n_id,)`): scores of in-distribution inputs (higher = more anomalous).
        ood_scores (array of shape `(n_ood,)`): scores of OOD inputs.

    Returns:
        `float` in `(0, 1]`.
    """
    ids, ood = _check_pair(id_scores, ood_scores)
    _, tps, fps = _curve(ood, ids)
    return _average_precision(tps, fps)


def aupr_in(id_scores, ood_scores) -> float:
    """Area under the precision-recall curve with **in-distribution as positive** and the score negated.

    Average precision of retrieving ID inputs by *low* score: `sklearn.metrics.average_precision_score(1 - is_ood,
    -score)`. A random detector scores `n_id / (n_id + n_ood)`.

    Args:
        id_scores (array of shape `(n_id,)`): scores of in-distribution inputs (higher = more anomalous).
        ood_scores (array of shape `(n_ood,)`): scores of OOD inputs.

    Returns:
        `float` in `(0, 1]`.
    """
    ids, ood = _check_pair(id_scores, ood_scores)
    _, tps, fps = _curve(-ids, -ood)
    return _average_precision(tps, fps)


def fpr_at_tpr(id_scores, ood_scores, tpr: float = 0.95, method: str = "paper") -> float:
    """False-positive rate (fraction of ID inputs flagged) at the threshold detecting a fraction `tpr` of OOD inputs.

    TPR here is the *OOD* detection rate (OOD = positive), as in the paper's FPR90 (text) and FPR95 (vision); it is
    not the in-distribution keep rate of `threshold_at_tpr`.

    Args:
        id_scores (array of shape `(n_id,)`): scores of in-distribution inputs (higher = more anomalous).
        ood_scores (array of shape `(n_ood,)`): scores of OOD inputs.
        tpr (`float`, *optional*, defaults to 0.95): target OOD recall in `(0, 1]`.
        method (`str`, *optional*, defaults to `"paper"`):
            `"paper"`: the threshold (among distinct scores, down to the first reaching full recall) whose TPR is
            closest to `tpr`, ties towards the higher TPR, exactly as the paper's `fpr_and_fdr_at_recall`; the TPR
            used may be slightly below `tpr`. `"at_least"`: the highest threshold with TPR >= `tpr`.

    Returns:
        `float` in `[0, 1]`.
    """
    tpr = _check_tpr(tpr)
    ids, ood = _check_pair(id_scores, ood_scores)
    _, tps, fps = _curve(ood, ids)
    return _fpr_at_tpr(tps, fps, tpr, method)


def detection_error(id_scores, ood_scores) -> float:
    """Minimum detection error `min_t 0.5 * (1 - TPR(t)) + 0.5 * FPR(t)`, OOD positive, equal priors.

    The minimum runs over every threshold including "flag nothing" (TPR = FPR = 0) and "flag everything", so the value
    is in `[0, 0.5]`: 0 for perfectly separated scores, 0.5 for all-equal scores. Arguments as `auroc`.
    """
    ids, ood = _check_pair(id_scores, ood_scores)
    _, tps, fps = _curve(ood, ids)
    return _detection_error(tps, fps)


def roc_curve(id_scores, ood_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve with OOD as positive and inputs flagged when `score >= threshold`.

    Args:
        id_scores (array of shape `(n_id,)`): scores of in-distribution inputs (higher = more anomalous).
        ood_scores (array of shape `(n_ood,)`): scores of OOD inputs.

    Returns:
        `tuple` `(fpr, tpr, thresholds)`: one point per distinct score (descending thresholds), preceded by the point
        `(0, 0)` whose threshold is `+inf`.
    """
    ids, ood = _check_pair(id_scores, ood_scores)
    thresholds, tps, fps = _curve(ood, ids)
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, thresholds]


def fpr_key(tpr: float) -> str:
    """Result key of the FPR at OOD recall `tpr`: `0.9 -> "fpr90"`, `0.95 -> "fpr95"`, `0.925 -> "fpr92.5"`."""
    tpr = _check_tpr(tpr)
    return f"fpr{round(100 * tpr, 6):g}"


def ood_detection_metrics(
    id_scores,
    ood_scores,
    fpr_tprs: Sequence[float] = (0.9, 0.95),
    fpr_method: str = "paper",
) -> dict[str, float]:
    """Every detection metric of this module from one sort of the scores (OOD = positive, higher = more anomalous).

    Args:
        id_scores (array of shape `(n_id,)`): scores of in-distribution inputs.
        ood_scores (array of shape `(n_ood,)`): scores of OOD inputs.
        fpr_tprs (sequence of `float`, *optional*, defaults to `(0.9, 0.95)`): OOD recalls at which to report the FPR.
        fpr_method (`str`, *optional*, defaults to `"paper"`): see `fpr_at_tpr`.

    Returns:
        `dict[str, float]`: `auroc`, `aupr_out`, `aupr_in`, one `fpr<x>` per entry of `fpr_tprs` (see `fpr_key`) and
        `detection_error`, all as fractions in `[0, 1]`.
    """
    if fpr_method not in FPR_METHODS:
        raise ValueError(f"`fpr_method` must be one of {FPR_METHODS}, got {fpr_method!r}.")
    tprs = [_check_tpr(t, "fpr_tprs") for t in fpr_tprs]
    ids, ood = _check_pair(id_scores, ood_scores)
    _, tps, fps = _curve(ood, ids)
    _, tps_in, fps_in = _curve(-ids, -ood)
    out = {
        "auroc": _auroc(tps, fps),
        "aupr_out": _average_precision(tps, fps),
        "aupr_in": _average_precision(tps_in, fps_in),
    }
    for t in tprs:
        out[fpr_key(t)] = _fpr_at_tpr(tps, fps, t, fpr_method)
    out["detection_error"] = _detection_error(tps, fps)
    return out


def ood_detection_metrics_from_labels(
    scores,
    labels,
    fpr_tprs: Sequence[float] = (0.9, 0.95),
    fpr_method: str = "paper",
) -> dict[str, float]:
    """`ood_detection_metrics` from one score array and 0/1 labels (1 = OOD), the scikit-learn / `evaluate` layout.

    Args:
        scores (array of shape `(n,)`): OOD scores, higher = more anomalous.
        labels (array of shape `(n,)`): 1 for OOD, 0 for in-distribution.
        fpr_tprs, fpr_method: as `ood_detection_metrics`.

    Returns:
        `dict[str, float]`: as `ood_detection_metrics`.
    """
    ids, ood = split_by_label(scores, labels)
    return ood_detection_metrics(ids, ood, fpr_tprs=fpr_tprs, fpr_method=fpr_method)


# ----------------------------------------------------------------------------------------------------------------
# Calibration
# ----------------------------------------------------------------------------------------------------------------


def _check_calibration(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    conf = _as_1d_float(confidence, "confidence")
    if conf.min() < 0 or conf.max() > 1:
        raise ValueError(
            f"`confidence` must be probabilities in [0, 1] (e.g. the maximum softmax probability), got values in "
            f"[{conf.min():g}, {conf.max():g}]."
        )
    return conf, _as_binary(correct, "correct", conf.size, "confidence").astype(np.float64)


def calibration_error(
    confidence, correct, p: int | str = 2, bin_size: int = 100, drop_last_bin: bool = False
) -> float:
    """Calibration error with adaptive binning (bins of `bin_size` examples sorted by confidence), as the paper.

    Examples are sorted by confidence (stable sort) and cut into `max(n // bin_size, 1)` consecutive bins of
    `bin_size` examples; the last bin also takes the remaining `n % bin_size`. With `w_b = |b| / n` and
    `d_b = |mean(confidence_b) - mean(correct_b)|`:

    * `p=2` (RMS): `sqrt(sum_b w_b d_b^2)`; `p=1` (MAD): `sum_b w_b d_b`; `p="max"`: `max_b d_b`.

    Args:
        confidence (array of shape `(n,)`): predicted probability of the predicted class, in `[0, 1]`.
        correct (array of shape `(n,)`): 1 where the prediction is correct, else 0 (OOD inputs: 0).
        p (`int` or `str`, *optional*, defaults to 2): 1, 2 or `"max"`.
        bin_size (`int`, *optional*, defaults to 100): target examples per bin (the paper's `beta`).
        drop_last_bin (`bool`, *optional*, defaults to `False`):
            `True` reproduces the paper's `calib_err` loop exactly, which skips the last (most confident) bin while
            keeping the weights `|b| / n` (its `range(len(bins) - 1)`); it then needs `n >= bin_size`. `False` uses
            every bin, so that the weights sum to 1.

    Returns:
        `float` in `[0, 1]`; lower is better.
    """
    conf, corr = _check_calibration(confidence, correct)
    if p not in (1, 2, "max"):
        raise ValueError(f"`p` must be 1, 2 or 'max', got {p!r}.")
    if not isinstance(bin_size, int) or bin_size < 1:
        raise ValueError(f"`bin_size` must be a positive int, got {bin_size!r}.")
    n = conf.size
    if drop_last_bin and n < bin_size:
        raise ValueError(
            f"`drop_last_bin=True` (the reference loop) needs at least `bin_size`={bin_size} examples, got {n}."
        )
    order = np.argsort(conf, kind="stable")
    conf, corr = conf[order], corr[order]
    n_bins = max(n // bin_size, 1)
    edges = [i * bin_size for i in range(n_bins)] + [n]
    last = n_bins - 1 if drop_last_bin else n_bins
    total = 0.0
    for lo, hi in zip(edges[:last], edges[1 : last + 1]):
        gap = abs(conf[lo:hi].mean() - corr[lo:hi].mean())
        if p == 2:
            total += (hi - lo) / n * gap**2
        elif p == 1:
            total += (hi - lo) / n * gap
        else:
            total = max(total, gap)
    return float(math.sqrt(total) if p == 2 else total)


def rms_calibration_error(confidence, correct, bin_size: int = 100, drop_last_bin: bool = False) -> float:
    """RMS calibration error with adaptive bins of `bin_size` examples: `calibration_error(..., p=2)`.

    Args:
        confidence (array of shape `(n,)`): probability of the predicted class, in `[0, 1]`.
        correct (array of shape `(n,)`): 1 where the prediction is correct, else 0 (OOD inputs: 0).
        bin_size (`int`, *optional*, defaults to 100): examples per bin.
        drop_last_bin (`bool`, *optional*, defaults to `False`): see `calibration_error`.

    Returns:
        `float` in `[0, 1]`; lower is better.
    """
    return calibration_error(confidence, correct, p=2, bin_size=bin_size, drop_last_bin=drop_last_bin)


def mad_calibration_error(confidence, correct, bin_size: int = 100, drop_last_bin: bool = False) -> float:
    """Mean absolute deviation calibration error with adaptive bins: `calibration_error(..., p=1)`.

    Arguments and return value as `rms_calibration_error`: `float` in `[0, 1]`, lower is better.
    """
    return calibration_error(confidence, correct, p=1, bin_size=bin_size, drop_last_bin=drop_last_bin)


def expected_calibration_error(confidence, correct, n_bins: int = 15) -> float:
    """Expected calibration error with `n_bins` equal-width confidence bins (Guo et al. 2017; not in the paper).

    Bins are `(i/n_bins, (i+1)/n_bins]` (confidence 0 goes to the first); `ECE = sum_b |b|/n * |acc_b - conf_b|` over
    non-empty bins.

    Args:
        confidence (array of shape `(n,)`): probability of the predicted class, in `[0, 1]`.
        correct (array of shape `(n,)`): 1 where the prediction is correct, else 0 (OOD inputs: 0).
        n_bins (`int`, *optional*, defaults to 15): number of bins.

    Returns:
        `float` in `[0, 1]`; lower is better.
    """
    conf, corr = _check_calibration(confidence, correct)
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"`n_bins` must be a positive int, got {n_bins!r}.")
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    gap = np.abs(np.bincount(bins, weights=conf, minlength=n_bins) - np.bincount(bins, weights=corr, minlength=n_bins))
    return float(gap.sum() / conf.size)


def soft_f1(confidence, correct) -> float:
    """Soft F1 score of detecting *wrong* predictions (misclassified ID and all OOD inputs) with `1 - confidence`.

    With `w = 1 - correct`: `soft TP = sum (1 - c) w`, `soft FP = sum (1 - c)(1 - w)`, `soft FN = sum c w`, and
    `Soft F1 = 2 TP / (2 TP + FP + FN) = 2 sum((1 - c) w) / sum(1 - c + w)`, as the paper's `soft_f1`. When there is
    nothing to detect and nothing flagged (all correct with confidence 1) it is 0, as scikit-learn's F1 with
    `zero_division=0`.

    Args:
        confidence (array of shape `(n,)`): probability of the predicted class, in `[0, 1]`.
        correct (array of shape `(n,)`): 1 where the prediction is correct, else 0 (OOD inputs: 0).

    Returns:
        `float` in `[0, 1]`; higher is better.
    """
    conf, corr = _check_calibration(confidence, correct)
    wrong = 1.0 - corr
    denom = float(np.sum(1.0 - conf + wrong))
    return float(2.0 * np.sum((1.0 - conf) * wrong) / denom) if denom > 0 else 0.0


def calibration_metrics(confidence, correct, bin_size: int = 100, n_bins: int = 15) -> dict[str, float]:
    """RMS and MAD calibration error (adaptive bins), ECE (equal-width bins) and Soft F1 in one dict.

    Args:
        confidence (array of shape `(n,)`): probability of the predicted class, in `[0, 1]`.
        correct (array of shape `(n,)`): 1 where the prediction is correct, else 0 (OOD inputs: 0).
        bin_size (`int`, *optional*, defaults to 100): examples per adaptive bin (RMS, MAD).
        n_bins (`int`, *optional*, defaults to 15): equal-width bins for the ECE.

    Returns:
        `dict[str, float]`: `rms_calibration_error`, `mad_calibration_error`, `ece`, `soft_f1`.
    """
    return {
        "rms_calibration_error": rms_calibration_error(confidence, correct, bin_size=bin_size),
        "mad_calibration_error": mad_calibration_error(confidence, correct, bin_size=bin_size),
        "ece": expected_calibration_error(confidence, correct, n_bins=n_bins),
        "soft_f1": soft_f1(confidence, correct),
    }


# ----------------------------------------------------------------------------------------------------------------
# Deployment threshold (kept from the first release; used by the detector)
# ----------------------------------------------------------------------------------------------------------------


def threshold_at_tpr(id_scores, tpr: float = 0.95) -> float:
    """Decision threshold that keeps a fraction `tpr` of in-distribution inputs.

    Here the *in-distribution* true-positive rate is meant (the deployment view: "keep 95% of in-distribution
    inputs"), unlike `fpr_at_tpr` whose TPR is the OOD detection rate. An input is flagged OOD when
    `score > threshold`; the threshold is the `(n - n_flag)`-th smallest ID score with
    `n_flag = floor((1 - tpr) * n)`, so at most `n_flag` ID scores exceed it (fewer when the scores tie).

    Args:
        id_scores (array of shape `(n,)`): OOD scores of in-distribution validation inputs (higher = more anomalous).
        tpr (`float`, *optional*, defaults to 0.95): fraction of in-distribution inputs to keep, in `(0, 1]`.

    Returns:
        `float`: the threshold.
    """
    scores = np.asarray(_to_numpy(id_scores), dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("`id_scores` is empty: calibrating a threshold needs in-distribution scores.")
    if not np.isfinite(scores).all():
        raise ValueError("`id_scores` contains NaN or inf.")
    if not 0 < tpr <= 1:
        raise ValueError(f"`tpr` must be in (0, 1], got {tpr}.")
    n = scores.size
    n_flag = int(np.floor((1 - tpr) * n + 1e-9))
    ordered = np.sort(scores)
    # Flag the n_flag highest: threshold is the (n - n_flag)-th smallest score; ties may flag fewer.
    return float(ordered[n - n_flag - 1])
