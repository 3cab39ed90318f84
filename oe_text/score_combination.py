"""Combining several OOD scores into one: standardise each, then a logistic model fitted against auxiliary outliers.

A detector often has two complementary signals: the classifier's logits (e.g. MSP after Outlier Exposure), which know
the task, and a feature-space distance (e.g. k-NN over a pretrained encoder's embeddings), which knows the domain.
Their raw scales differ, and a plain sum of standardised scores lets the weaker signal drown the stronger one. Here

    z_j(x) = (s_j(x) - mu_j) / sigma_j,        combined(x) = b + sum_j w_j z_j(x),

where `mu_j`, `sigma_j` are the mean and standard deviation of score `j` on **in-distribution validation** inputs, and
`w`, `b` are an L2-regularised logistic regression separating those inputs (label 0) from **held-out auxiliary
outliers** (label 1, e.g. WikiText sentences that training never saw), with balanced class weights. The combined score
is the log-odds of "outlier"; higher = more anomalous (OOD is the positive class). No OOD test set is involved.
"""

from __future__ import annotations

import numpy as np


__all__ = ["combine_scores", "fit_score_combination"]


def _as_score_matrix(x, name: str, m: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"`{name}` must have shape (n, num_scores) with n >= 1, got {arr.shape}.")
    if m is not None and arr.shape[1] != m:
        raise ValueError(f"`{name}` has {arr.shape[1]} score columns, expected {m}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains NaN or inf.")
    return arr


def fit_score_combination(id_scores, outlier_scores, c: float = 1.0) -> dict[str, np.ndarray]:
    """Fit the combination above.

    Args:
        id_scores (array of shape `(n_id, m)`): the `m` component scores of in-distribution validation inputs.
        outlier_scores (array of shape `(n_out, m)`): the same scores of held-out auxiliary outliers.
        c (`float`, *optional*, defaults to 1.0): inverse L2 strength of the logistic regression (scikit-learn `C`).

    Returns:
        `dict` with float32 arrays `mean` (m,), `std` (m,), `weight` (m,) and `bias` (1,): the state `combine_scores`
        reads (float32 so that a saved detector scores exactly as before saving).
    """
    from sklearn.linear_model import LogisticRegression

    id_s = _as_score_matrix(id_scores, "id_scores")
    out_s = _as_score_matrix(outlier_scores, "outlier_scores", id_s.shape[1])
    if id_s.shape[0] < 2 or out_s.shape[0] < 2:
        raise ValueError(
            f"A score combination needs at least 2 in-distribution and 2 outlier inputs, got {id_s.shape[0]} and "
            f"{out_s.shape[0]}."
        )
    mean = id_s.mean(axis=0).astype(np.float32)
    std = id_s.std(axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    z = (np.concatenate([id_s, out_s]) - mean.astype(np.float64)) / std.astype(np.float64)
    y = np.concatenate([np.zeros(id_s.shape[0]), np.ones(out_s.shape[0])])
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=1000).fit(z, y)
    return {
        "mean": mean,
        "std": std,
        "weight": model.coef_[0].astype(np.float32),
        "bias": model.intercept_.astype(np.float32),
    }


def combine_scores(scores, mean, std, weight, bias) -> np.ndarray:
    """`b + sum_j w_j (s_j - mu_j) / sigma_j` for each row of `scores` (shape `(n, m)`); float64, higher = OOD."""
    weight = np.asarray(weight, dtype=np.float64).ravel()
    s = _as_score_matrix(scores, "scores", weight.shape[0])
    z = (s - np.asarray(mean, dtype=np.float64).ravel()) / np.asarray(std, dtype=np.float64).ravel()
    return z @ weight + float(np.asarray(bias, dtype=np.float64).ravel()[0])
