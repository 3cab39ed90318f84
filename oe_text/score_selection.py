"""Choosing a detector's OOD score without OOD test data: in-distribution validation vs validation outliers.

The recipes fit every candidate score on the detector (`OODDetectorMixin.fit_ood_score`), then pick the one that best
separates **in-distribution validation** inputs from **validation outliers**: auxiliary sentences that training never
saw and, optionally, further sources training never drew from at all (the recipes use the other in-distribution
datasets of the benchmark, e.g. TREC questions and 20 Newsgroups posts for SST-2; none of them is an OOD test set).
No OOD test set is looked at. The rule: lowest FPR at `tpr` (OOD positive, as every metric here) averaged over the
outlier sources, ties broken by the higher mean AUROC. A combined score is fitted on one half of every set and each
candidate is compared on the other half, so the combination is not judged on the data it was fitted to.

Why several sources: outliers held out of the auxiliary set come from the very distribution Outlier Exposure trained
on, so a score that learnt that distribution (OE's MSP) looks near-perfect on them whether or not it transfers to
other OOD text; a source training never saw measures transfer. The recipes' default sources are other datasets than
the OOD test sets but share some of their domains (newsgroup posts, reviews, questions): see docs/detectors.md.

Candidate names:

* logit scores (`msp`, `energy`, `max_logit`, ...);
* `knn`, `mahalanobis`: on the fine-tuned encoder's features (what the head reads);
* `knn_pretrained`, `mahalanobis_pretrained`: on a frozen copy of the pretrained encoder (transformer detectors);
* `length`: how atypical the input's length is (`"gaussian"` on the log word count; texts);
* `combined`: `msp` + `knn_pretrained` when the detector has a pretrained encoder, else `msp` + `knn`;
  `combined_length`: the same plus `length` (`oe_text.score_combination`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .detection import feature_key
from .metrics import auroc, fpr_at_tpr, fpr_key
from .scores import LOGIT_SCORES


__all__ = [
    "DEFAULT_SCORE_CANDIDATES",
    "MIN_SOURCE_TEXTS",
    "fit_candidate_scores",
    "is_candidate",
    "outlier_sources",
    "select_ood_score",
    "selection_table",
]

#: The source name of the auxiliary outliers held out of training when the validation outliers are one plain list.
HELDOUT_AUXILIARY = "held-out auxiliary"
#: Fewest texts per validation outlier source: at least 2 in each half (one fits a combined score, one compares).
MIN_SOURCE_TEXTS = 4

#: What the recipes try by default (pretrained-feature candidates are skipped for recurrent detectors).
DEFAULT_SCORE_CANDIDATES = (
    "msp",
    "energy",
    "knn",
    "mahalanobis",
    "knn_pretrained",
    "length",
    "combined",
    "combined_length",
)
_FEATURE_CANDIDATES = {
    "knn": ("knn", "fine-tuned"),
    "mahalanobis": ("mahalanobis", "fine-tuned"),
    "knn_pretrained": ("knn", "pretrained"),
    "mahalanobis_pretrained": ("mahalanobis", "pretrained"),
    "length": ("gaussian", "input-length"),
}
#: Combined candidates and their components besides `msp` and the k-NN score (pretrained features when available).
_COMBINED_CANDIDATES = {"combined": (), "combined_length": ("length",)}


def is_candidate(name: str) -> bool:
    """Whether `name` is a score `fit_candidate_scores` knows how to fit (feature or combined candidates)."""
    return name in _FEATURE_CANDIDATES or name in _COMBINED_CANDIDATES


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
        if name not in LOGIT_SCORES and not is_candidate(name):
            raise ValueError(
                f"Unknown score candidate {name!r}; known: {sorted(LOGIT_SCORES)} + {sorted(_FEATURE_CANDIDATES)} + "
                f"{sorted(_COMBINED_CANDIDATES)}."
            )
        if _FEATURE_CANDIDATES.get(name, ("", ""))[1] == "pretrained" and not has_pretrained:
            continue
        out.append(name)
    return out


def _halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def outlier_sources(
    outliers: Sequence[str] | Mapping[str, Sequence[str]], min_texts: int = MIN_SOURCE_TEXTS
) -> dict[str, list[str]]:
    """`{source name: texts}` of the validation outliers: a plain sequence is one source, `"held-out auxiliary"`.
    Each source must hold at least `min_texts` texts (`MIN_SOURCE_TEXTS` before the halves are drawn, 2 in a half).
    """
    if isinstance(outliers, Mapping):
        sources = {str(name): list(texts) for name, texts in outliers.items()}
    else:
        sources = {HELDOUT_AUXILIARY: list(outliers)}
    if not sources:
        raise ValueError(
            "No validation outliers: choosing a score or fitting a combined one needs outliers that training never "
            "saw (set `--heldout_auxiliary_samples` >= 4, or pass them)."
        )
    small = {name: len(texts) for name, texts in sources.items() if len(texts) < min_texts}
    if small:
        raise ValueError(
            f"Validation outlier sources {small} hold fewer than {min_texts} texts: each source needs at least 2 "
            "texts in the fitting half and 2 in the selection half."
        )
    return sources


def fit_candidate_scores(
    detector,
    candidates: Sequence[str],
    train_texts: Sequence[str],
    train_labels: Sequence[int] | None,
    validation_texts: Sequence[str],
    heldout_outliers: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    seed: int = 0,
    knn_k: int = 10,
    knn_max_samples: int = 100_000,
    batch_size: int = 64,
    training_data: str | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Fit the feature and combined candidates on the detector; return the candidates and the selection data.

    Feature scores are fitted on the ID training texts; a combined score on the first half of the validation texts
    against the first half of every outlier source (seeded splits).

    Args:
        heldout_outliers: validation outliers, one list (held-out auxiliary outliers) or `{source name: texts}`.

    Returns:
        `(candidates, {"validation": texts, "outliers": {source: texts}})`: the fitted candidates and the second
        halves, on which `select_ood_score` compares them.
    """
    candidates = supported_candidates(detector, candidates)
    combined = [c for c in candidates if c in _COMBINED_CANDIDATES]
    # Feature scores alone need no outliers (reported scores of a run without held-out data); a combination does.
    has_outliers = bool(heldout_outliers) or combined
    sources = outlier_sources(heldout_outliers) if has_outliers else {}
    rng = np.random.default_rng(seed)
    val_fit, val_select = _halves(len(validation_texts), rng)
    out_fit, out_select = [], {}
    for source, texts in sources.items():
        fit_idx, select_idx = _halves(len(texts), rng)
        out_fit.extend(texts[i] for i in fit_idx)
        out_select[source] = [texts[i] for i in select_idx]
    # Every feature score a combination reads is fitted too (and may compete on its own if it is a candidate).
    needed = list(candidates)
    if combined:
        knn = "knn_pretrained" if "knn_pretrained" in supported_candidates(detector, ["knn_pretrained"]) else "knn"
        needed += [knn, *(c for name in combined for c in _COMBINED_CANDIDATES[name])]
    needed = [c for c in dict.fromkeys(needed) if c in _FEATURE_CANDIDATES]
    # One pass over the training texts gives every encoder's features for every feature candidate.
    encoders = sorted({_FEATURE_CANDIDATES[c][1] for c in needed})
    if "pretrained" in encoders:
        detector._ensure_pretrained_encoder()
    keys = [feature_key(encoder, -1) for encoder in encoders]
    train_features = detector.predict_outputs(list(train_texts), keys, batch_size=batch_size)[1] if keys else {}
    for name in needed:
        kind, encoder = _FEATURE_CANDIDATES[name]
        options = {"k": knn_k, "max_fit_samples": max(knn_max_samples, knn_k), "seed": seed} if kind == "knn" else {}
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
    for name in combined:
        detector.fit_ood_score(
            "combined",
            [validation_texts[i] for i in val_fit],
            outliers=out_fit,
            name=name,
            components=["msp", knn, *_COMBINED_CANDIDATES[name]],
            activate=False,
            batch_size=batch_size,
            fitted_on=(
                "first half of the ID validation set vs the first half of each validation outlier source "
                f"({', '.join(sources)})"
            ),
        )
    return candidates, {"validation": [validation_texts[i] for i in val_select], "outliers": out_select}


def select_ood_score(
    detector,
    candidates: Sequence[str],
    validation_texts: Sequence[str],
    heldout_outliers: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    tpr: float = 0.9,
    batch_size: int = 64,
    description: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compare candidate scores on ID validation vs validation outliers, switch the detector to the best one.

    Each candidate's FPR at `tpr` and AUROC are computed against every outlier source separately and averaged over
    the sources (each source weighs the same, whatever its size); the lowest mean FPR wins, ties broken by the
    higher mean AUROC.

    Args:
        detector: an `OODDetectorMixin` model on which the fitted candidates exist (`fit_candidate_scores`).
        candidates (sequence of `str`): logit score names and fitted score names.
        validation_texts: the ID inputs (negative).
        heldout_outliers: the outliers (positive): one list (held-out auxiliary outliers) or `{source: texts}`.
        tpr (`float`, *optional*, defaults to 0.9): the FPR is read at this OOD recall (0.9 for text, as the paper).
        batch_size (`int`, *optional*, defaults to 64): inputs per forward pass.
        description (`dict`, *optional*): what the sets are, recorded with the selection.

    Returns:
        `dict` stored as `config.ood_score_selection`: `rule`, `candidates` (`{name: {fpr<tpr>: ..., auroc: ...}}`,
        fractions, means over sources), `per_source` (`{source: {name: {...}}}`), `chosen`, and `data` (sizes and
        `description`).
    """
    if not candidates:
        raise ValueError("`candidates` is empty: name at least one score.")
    sources = outlier_sources(heldout_outliers, min_texts=2)
    keys = sorted({key for name in candidates for key in detector.required_feature_keys(name)})
    id_logits, id_feats = detector.predict_outputs(list(validation_texts), keys, batch_size=batch_size)
    id_scores = {name: detector.ood_scores_from_outputs(id_logits, id_feats, name=name) for name in candidates}
    fpr_name = fpr_key(tpr)
    per_source: dict[str, dict[str, dict[str, float]]] = {}
    for source, texts in sources.items():
        out_logits, out_feats = detector.predict_outputs(texts, keys, batch_size=batch_size)
        per_source[source] = {}
        for name in candidates:
            out_s = detector.ood_scores_from_outputs(out_logits, out_feats, name=name)
            per_source[source][name] = {
                fpr_name: float(fpr_at_tpr(id_scores[name], out_s, tpr)),
                "auroc": float(auroc(id_scores[name], out_s)),
            }
    figures = {
        name: {m: float(np.mean([per_source[src][name][m] for src in sources])) for m in (fpr_name, "auroc")}
        for name in candidates
    }
    chosen = min(candidates, key=lambda n: (figures[n][fpr_name], -figures[n]["auroc"]))
    detector.set_ood_score(chosen, float(detector.config.ood_temperature))
    selection = {
        "rule": (
            f"lowest FPR at {100 * tpr:g}% TPR averaged over the validation outlier sources (ties: highest AUROC), "
            "in-distribution validation inputs vs outliers that training never saw; no OOD test set is used"
        ),
        "candidates": figures,
        "per_source": per_source,
        "chosen": chosen,
        "data": {
            "n_validation": len(validation_texts),
            "n_outliers": {source: len(texts) for source, texts in sources.items()},
            **dict(description or {}),
        },
    }
    detector.config.ood_score_selection = selection
    return selection


def selection_table(selection: Mapping[str, Any]) -> str:
    """The candidates' validation figures as a markdown table (percent), the chosen score in bold.

    Columns: the mean FPR and AUROC over the outlier sources, then the FPR against each source when there are several.
    """
    figures = selection["candidates"]
    metrics = sorted(next(iter(figures.values())), key=lambda m: m == "auroc")
    per_source = selection.get("per_source") or {}
    sources = list(per_source) if len(per_source) > 1 else []
    fpr = metrics[0]
    header = [m.upper() if m != "auroc" else "AUROC" for m in metrics] + [f"{fpr.upper()} {s}" for s in sources]
    if sources:
        header[: len(metrics)] = [f"mean {h}" for h in header[: len(metrics)]]
    lines = ["| score | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for name, values in figures.items():
        label = f"**{name}** (chosen)" if name == selection["chosen"] else name
        cells = [100 * values[m] for m in metrics] + [100 * per_source[s][name][fpr] for s in sources]
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    return "\n".join(lines)
