"""Choosing a detector's OOD score without OOD test data: in-distribution validation vs held-out auxiliary outliers.

The recipes fit every candidate score on the detector (`OODDetectorMixin.fit_ood_score`), then pick the one that best
separates **in-distribution validation** inputs from **held-out auxiliary outliers** (auxiliary sentences that training
never saw). No OOD test set is looked at. The rule: lowest FPR at `tpr` (OOD positive, as every metric here), ties
broken by the higher AUROC. A combined score is fitted on one half of both sets and every candidate is compared on the
other half, so the combination is not judged on the data it was fitted to.

Candidate names:

* logit scores (`msp`, `energy`, `max_logit`, ...);
* `knn`, `mahalanobis`: on the fine-tuned encoder's features (what the head reads);
* `knn_pretrained`, `mahalanobis_pretrained`: on a frozen copy of the pretrained encoder (transformer detectors);
* `combined`: `msp` + `knn_pretrained` when the detector has a pretrained encoder, else `msp` + `knn`
  (`oe_text.score_combination`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .detection import feature_key
from .metrics import auroc, fpr_at_tpr, fpr_key
from .scores import LOGIT_SCORES


__all__ = ["DEFAULT_SCORE_CANDIDATES", "fit_candidate_scores", "is_candidate", "select_ood_score", "selection_table"]

#: What the recipes try by default (pretrained-feature candidates are skipped for recurrent detectors).
DEFAULT_SCORE_CANDIDATES = ("msp", "energy", "knn", "mahalanobis", "knn_pretrained", "combined")
_FEATURE_CANDIDATES = {
    "knn": ("knn", "fine-tuned"),
    "mahalanobis": ("mahalanobis", "fine-tuned"),
    "knn_pretrained": ("knn", "pretrained"),
    "mahalanobis_pretrained": ("mahalanobis", "pretrained"),
}


def is_candidate(name: str) -> bool:
    """Whether `name` is a score `fit_candidate_scores` knows how to fit (feature or combined candidates)."""
    return name in _FEATURE_CANDIDATES or name == "combined"


def supported_candidates(detector, candidates: Sequence[str]) -> list[str]:
    """`candidates` minus those the detector cannot compute (pretrained features of a recurrent detector); with
    `detector=None` only checks the names."""
    has_pretrained = (
        detector is None
        or getattr(detector.config, "backbone_type", None) == "transformer"
        and bool(
            getattr(detector.config, "base_model_name", None)
            or getattr(detector, "feature_backbone", None) is not None
        )
    )
    out = []
    for name in candidates:
        if name not in LOGIT_SCORES and name not in _FEATURE_CANDIDATES and name != "combined":
            raise ValueError(
                f"Unknown score candidate {name!r}; known: {sorted(LOGIT_SCORES)} + {sorted(_FEATURE_CANDIDATES)} + "
                "['combined']."
            )
        if _FEATURE_CANDIDATES.get(name, ("", ""))[1] == "pretrained" and not has_pretrained:
            continue
        out.append(name)
    return out


def _halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def fit_candidate_scores(
    detector,
    candidates: Sequence[str],
    train_texts: Sequence[str],
    train_labels: Sequence[int] | None,
    validation_texts: Sequence[str],
    heldout_outliers: Sequence[str],
    *,
    seed: int = 0,
    knn_k: int = 10,
    knn_max_samples: int = 100_000,
    batch_size: int = 64,
    training_data: str | None = None,
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Fit the feature and combined candidates on the detector; return the candidates and the selection halves.

    Feature scores are fitted on the ID training texts; a combined score on the first half of the validation texts and
    of the held-out outliers (seeded split). Returns `(candidates, {"validation": indices, "outliers": indices})`,
    the second halves on which `select_ood_score` compares the candidates.
    """
    candidates = supported_candidates(detector, candidates)
    rng = np.random.default_rng(seed)
    val_fit, val_select = _halves(len(validation_texts), rng)
    out_fit, out_select = _halves(len(heldout_outliers), rng)
    # One pass over the training texts gives every encoder's features for every feature candidate.
    encoders = {_FEATURE_CANDIDATES[c][1] for c in candidates if c in _FEATURE_CANDIDATES}
    if "combined" in candidates and not any(c in _FEATURE_CANDIDATES for c in candidates):
        encoders.add("fine-tuned")
    if "pretrained" in encoders:
        detector._ensure_pretrained_encoder()
    keys = [feature_key(encoder, -1) for encoder in sorted(encoders)]
    train_features = detector.predict_outputs(list(train_texts), keys, batch_size=batch_size)[1] if keys else {}
    for name in candidates:
        if name in _FEATURE_CANDIDATES:
            kind, encoder = _FEATURE_CANDIDATES[name]
            options = (
                {"k": knn_k, "max_fit_samples": max(knn_max_samples, knn_k), "seed": seed} if kind == "knn" else {}
            )
            detector.fit_ood_score(
                kind,
                list(train_texts),
                labels=train_labels,
                name=name,
                features=encoder,
                activate=False,
                batch_size=batch_size,
                fitted_on=training_data,
                precomputed_features=train_features,
                **options,
            )
    if "combined" in candidates:
        fitted = detector.config.ood_fitted_scores or {}
        feature = "knn_pretrained" if "knn_pretrained" in fitted else "knn"
        if feature not in fitted:
            detector.fit_ood_score(
                "knn", list(train_texts), name="knn", activate=False, batch_size=batch_size, fitted_on=training_data,
                precomputed_features=train_features, k=knn_k, max_fit_samples=max(knn_max_samples, knn_k), seed=seed,
            )  # fmt: skip
        detector.fit_ood_score(
            "combined",
            [validation_texts[i] for i in val_fit],
            outliers=[heldout_outliers[i] for i in out_fit],
            name="combined",
            components=["msp", feature],
            activate=False,
            batch_size=batch_size,
            fitted_on="first half of the ID validation set vs first half of the held-out auxiliary outliers",
        )
    return candidates, {"validation": val_select, "outliers": out_select}


def select_ood_score(
    detector,
    candidates: Sequence[str],
    validation_texts: Sequence[str],
    heldout_outliers: Sequence[str],
    *,
    tpr: float = 0.9,
    batch_size: int = 64,
    description: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compare candidate scores on ID validation vs held-out auxiliary outliers, switch the detector to the best one.

    Args:
        detector: an `OODDetectorMixin` model on which the fitted candidates exist (`fit_candidate_scores`).
        candidates (sequence of `str`): logit score names and fitted score names.
        validation_texts, heldout_outliers: the inputs to compare on (ID, negative; auxiliary, positive).
        tpr (`float`, *optional*, defaults to 0.9): the FPR is read at this OOD recall (0.9 for text, as the paper).
        batch_size (`int`, *optional*, defaults to 64): inputs per forward pass.
        description (`dict`, *optional*): what the two sets are, recorded with the selection.

    Returns:
        `dict` stored as `config.ood_score_selection`: `rule`, `candidates` (`{name: {fpr<tpr>: ..., auroc: ...}}`,
        fractions), `chosen`, and `data` (sizes and `description`).
    """
    if not candidates:
        raise ValueError("`candidates` is empty: name at least one score.")
    keys = sorted({key for name in candidates for key in detector.required_feature_keys(name)})
    id_logits, id_feats = detector.predict_outputs(list(validation_texts), keys, batch_size=batch_size)
    out_logits, out_feats = detector.predict_outputs(list(heldout_outliers), keys, batch_size=batch_size)
    fpr_name = fpr_key(tpr)
    figures: dict[str, dict[str, float]] = {}
    for name in candidates:
        id_s = detector.ood_scores_from_outputs(id_logits, id_feats, name=name)
        out_s = detector.ood_scores_from_outputs(out_logits, out_feats, name=name)
        figures[name] = {fpr_name: float(fpr_at_tpr(id_s, out_s, tpr)), "auroc": float(auroc(id_s, out_s))}
    chosen = min(candidates, key=lambda n: (figures[n][fpr_name], -figures[n]["auroc"]))
    detector.set_ood_score(chosen, float(detector.config.ood_temperature))
    selection = {
        "rule": (
            f"lowest FPR at {100 * tpr:g}% TPR (ties: highest AUROC) on in-distribution validation inputs vs held-out "
            "auxiliary outliers that training never saw; no OOD test set is used"
        ),
        "candidates": figures,
        "chosen": chosen,
        "data": {
            "n_validation": len(validation_texts),
            "n_heldout_outliers": len(heldout_outliers),
            **dict(description or {}),
        },
    }
    detector.config.ood_score_selection = selection
    return selection


def selection_table(selection: Mapping[str, Any]) -> str:
    """The candidates' validation figures as a markdown table (percent), the chosen score in bold."""
    figures = selection["candidates"]
    metrics = sorted(next(iter(figures.values())), key=lambda m: m == "auroc")
    lines = ["| score | " + " | ".join(m.upper() if m != "auroc" else "AUROC" for m in metrics) + " |"]
    lines.append("|---|" + "---:|" * len(metrics))
    for name, values in figures.items():
        label = f"**{name}** (chosen)" if name == selection["chosen"] else name
        lines.append(f"| {label} | " + " | ".join(f"{100 * values[m]:.2f}" for m in metrics) + " |")
    return "\n".join(lines)
