"""OOD evaluation with the Outlier Exposure paper's protocol: scores, metrics, tables, files and plots.

Three layers, each a thin wrapper around the next:

* `evaluate_ood(model, tokenizer, id_dataset, ood_datasets, ...)`: text classifiers (an `OEClassifier` or any
  `AutoModelForSequenceClassification`); runs the model only on the inputs the protocol needs.
* `evaluate_ood_from_logits(id_logits, ood_logits, ...)`: precomputed logits (and features), e.g. from an image
  classifier or gathered from several processes.
* `evaluate_ood_from_scores(id_scores, ood_scores, ...)`: precomputed OOD scores only (no accuracy, no calibration).

Protocols (`protocol=`):

* `"paper"`: every ID test input against `num_subsets` (10) random OOD subsets of `floor(ood_to_id_ratio * n_id)`
  inputs each (OOD:ID = 1:5), drawn without replacement from the OOD set with a seed derived from `seed` and the set's
  name; metrics are averaged over the subsets (the std is kept too). An OOD set smaller than the subset size is used
  whole in every subset (its std is then 0). This is the paper's `eval_OOD_*.py` protocol, except that the paper took
  whole batches and so slightly more than `n_id // 5` OOD inputs.
* `"full"`: all ID inputs against all inputs of each OOD set, once.

`protocol=` also takes an `OODProtocol` (`oe_text.ood_protocol`), which carries every protocol setting at once; the
recipes, the CLI and the model cards build one and pass it on.

With `max_ood_samples`, each OOD set is first cut to a seeded random sample of that size. Only the OOD inputs that
some subset uses are scored (`OODSubsetPlan.indices_to_score`), which keeps huge sets like IMDB cheap.

All metrics use OOD as the positive class and scores with higher = more anomalous; see `oe_text.metrics` for each
metric's exact convention.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .feature_scores import FEATURE_SCORES, FeatureScorer, make_feature_scorer
from .metrics import calibration_metrics, ood_detection_metrics
from .ood_protocol import PROTOCOLS, OODProtocol, OODSubsetPlan, _align, plan_ood_subsets, resolve_protocol
from .ood_results import OODResults, _summary, compare_results, compare_results_to_dict
from .scores import LOGIT_SCORES, compute_score, max_softmax_probability


# The protocol (`oe_text.ood_protocol`) and the results and reports (`oe_text.ood_results`) live in their own modules;
# this one holds the core (scores/logits -> results) and the text driver, and re-exports the rest.
__all__ = [
    "PROTOCOLS",
    "OODProtocol",
    "OODResults",
    "OODSubsetPlan",
    "compare_results",
    "compare_results_to_dict",
    "evaluate_ood",
    "evaluate_ood_from_logits",
    "evaluate_ood_from_scores",
    "plan_ood_subsets",
]


# ----------------------------------------------------------------------------------------------------------------
# Core: from scores
# ----------------------------------------------------------------------------------------------------------------


def _as_score_vector(x, what: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"`{what}` must be 1-D (one score per input), got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{what}` contains NaN or inf; OOD metrics need finite scores.")
    return arr


def _run_protocol(
    id_scores: dict[str, np.ndarray],
    ood_scores: dict[str, dict[str, np.ndarray]],
    plan: OODSubsetPlan,
    settings: dict[str, Any],
    *,
    accuracy: float | None = None,
    id_confidence: np.ndarray | None = None,
    id_correct: np.ndarray | None = None,
    ood_confidence: dict[str, np.ndarray] | None = None,
    calibration_bin_size: int = 100,
    unavailable: Mapping[str, str] | None = None,
) -> OODResults:
    """Metrics per subset and their summaries; OOD arrays are aligned with `plan.indices_to_score`."""
    positions = {}
    for name in plan.subsets:
        needed = plan.indices_to_score(name)
        positions[name] = [np.searchsorted(needed, sub) for sub in plan.subsets[name]]
    metrics: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for s, ids in id_scores.items():
        metrics[s] = {}
        for name, pos_list in positions.items():
            per_subset = [
                ood_detection_metrics(
                    ids, ood_scores[name][s][pos], fpr_tprs=settings["fpr_tprs"], fpr_method=settings["fpr_method"]
                )
                for pos in pos_list
            ]
            metrics[s][name] = {k: _summary([m[k] for m in per_subset]) for k in per_subset[0]}
    calibration = id_calib = None
    if id_confidence is not None:
        calibration = {}
        id_calib = calibration_metrics(id_confidence, id_correct, bin_size=calibration_bin_size)
        for name, pos_list in positions.items():
            per_subset = []
            for pos in pos_list:
                conf = np.concatenate([id_confidence, ood_confidence[name][pos]])
                correct = np.concatenate([id_correct, np.zeros(pos.size)])
                per_subset.append(calibration_metrics(conf, correct, bin_size=calibration_bin_size))
            calibration[name] = {k: _summary([m[k] for m in per_subset]) for k in per_subset[0]}
    return OODResults(
        metrics=metrics,
        accuracy=accuracy,
        calibration=calibration,
        id_calibration=id_calib,
        num_id=plan.num_id,
        num_ood=dict(plan.ood_sizes),
        num_ood_per_subset={name: plan.subset_size(name) for name in plan.subsets},
        unavailable=dict(unavailable or {}),
        settings=settings,
        id_scores=id_scores,
        ood_scores={s: {name: ood_scores[name][s] for name in plan.subsets} for s in id_scores},
    )


def evaluate_ood_from_scores(
    id_scores: Mapping[str, Any],
    ood_scores: Mapping[str, Mapping[str, Any]],
    *,
    protocol: str | OODProtocol = "paper",
    fpr_tprs: Sequence[float] = (0.9, 0.95),
    recall_level: float = 0.9,
    num_subsets: int = 10,
    ood_to_id_ratio: float = 0.2,
    seed: int = 0,
    max_ood_samples: int | None = None,
    fpr_method: str = "paper",
    accuracy: float | None = None,
    unavailable: Mapping[str, str] | None = None,
    plan: OODSubsetPlan | None = None,
) -> OODResults:
    """OOD metrics from precomputed scores (higher = more anomalous) under a protocol; no calibration.

    Args:
        id_scores (`Mapping[str, array]`): per score name, the scores of all ID test inputs.
        ood_scores (`Mapping[str, Mapping[str, array]]`): per OOD set, per score name, the scores of the whole set
            (or, with `plan`, only of `plan.indices_to_score(set)`).
        protocol, fpr_tprs, recall_level, num_subsets, ood_to_id_ratio, seed, max_ood_samples, fpr_method:
            as `evaluate_ood_from_logits`.
        accuracy (`float`, *optional*): ID test accuracy to report beside the metrics.
        unavailable (`Mapping[str, str]`, *optional*): OOD sets that could not be loaded, with the reason.
        plan (`OODSubsetPlan`, *optional*): a plan from `plan_ood_subsets` (else one is drawn from the sizes).

    Returns:
        `OODResults`.
    """
    if not id_scores:
        raise ValueError("`id_scores` is empty: pass {score_name: scores_of_the_ID_test_set}.")
    if not ood_scores:
        raise ValueError("`ood_scores` is empty: pass {ood_set_name: {score_name: scores}}.")
    ids = {s: _as_score_vector(v, f"id_scores[{s!r}]") for s, v in id_scores.items()}
    n_id = {v.size for v in ids.values()}
    if len(n_id) != 1:
        raise ValueError(f"every `id_scores` entry must have the same length, got {sorted(n_id)}.")
    ood_protocol = resolve_protocol(
        protocol, num_subsets, ood_to_id_ratio, seed, max_ood_samples, fpr_tprs, recall_level, fpr_method
    )
    ood: dict[str, dict[str, np.ndarray]] = {}
    for name, per_score in ood_scores.items():
        if set(per_score) != set(ids):
            raise ValueError(f"`ood_scores[{name!r}]` has scores {sorted(per_score)}, expected {sorted(ids)}.")
        ood[name] = {s: _as_score_vector(per_score[s], f"ood_scores[{name!r}][{s!r}]") for s in ids}
        if len({v.size for v in ood[name].values()}) != 1:
            raise ValueError(f"every score of `ood_scores[{name!r}]` must have the same length.")
    n_id = n_id.pop()
    if plan is None:
        plan = ood_protocol.plan(n_id, {name: next(iter(v.values())).size for name, v in ood.items()})
    else:
        _check_plan(plan, n_id, ood)
    for name, per_score in ood.items():
        sel = _align(name, next(iter(per_score.values())).size, plan, "ood_scores")
        if sel is not None:
            ood[name] = {s: v[sel] for s, v in per_score.items()}
    settings = _settings(ood_protocol, plan)
    return _run_protocol(ids, ood, plan, settings, accuracy=accuracy, unavailable=unavailable)


def _settings(ood_protocol: OODProtocol, plan: OODSubsetPlan) -> dict[str, Any]:
    # A plan drawn beforehand decides the protocol that was run.
    if plan.protocol != ood_protocol.protocol:
        ood_protocol = ood_protocol.replace(protocol=plan.protocol)
    return ood_protocol.settings()


def _check_plan(plan: OODSubsetPlan, n_id: int, ood: Mapping[str, Any]) -> None:
    if not isinstance(plan, OODSubsetPlan):
        raise TypeError(f"`plan` must be an OODSubsetPlan (from plan_ood_subsets), got {type(plan).__name__}.")
    if plan.num_id != n_id:
        raise ValueError(f"`plan` was drawn for {plan.num_id} ID inputs, but {n_id} ID inputs were given.")
    if set(plan.subsets) != set(ood):
        raise ValueError(f"`plan` covers OOD sets {sorted(plan.subsets)}, but the inputs have {sorted(ood)}.")


# ----------------------------------------------------------------------------------------------------------------
# From logits (and features)
# ----------------------------------------------------------------------------------------------------------------


def _resolve_scores(scores) -> tuple[list[str], dict[str, FeatureScorer]]:
    if isinstance(scores, str | FeatureScorer):
        scores = [scores]
    if not scores:
        raise ValueError("`scores` is empty: pass e.g. ('msp',).")
    names: list[str] = []
    feature: dict[str, FeatureScorer] = {}
    for s in scores:
        if isinstance(s, FeatureScorer):
            name, scorer = s.name, s
        elif isinstance(s, str) and s in LOGIT_SCORES:
            name, scorer = s, None
        elif isinstance(s, str) and s in FEATURE_SCORES:
            name, scorer = s, make_feature_scorer(s)
        else:
            raise ValueError(
                f"Unknown score {s!r}; logit scores: {sorted(LOGIT_SCORES)}, feature scores: {sorted(FEATURE_SCORES)} "
                "(or pass a FeatureScorer instance)."
            )
        if name in names:
            raise ValueError(f"score {name!r} is requested twice; give feature scorers distinct `name`s.")
        names.append(name)
        if scorer is not None:
            feature[name] = scorer
    return names, feature


def _as_logit_array(x, what: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"`{what}` must have shape (n, num_classes) with num_classes >= 2, got {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"`{what}` is empty.")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{what}` contains NaN or inf.")
    return arr


def _check_id_labels(labels, n: int, num_classes: int) -> np.ndarray | None:
    if labels is None:
        return None
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"`id_labels` must have shape ({n},) to match the ID logits, got {arr.shape}.")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"`id_labels` must be integer class ids, got dtype {arr.dtype}.")
    if (arr < 0).all():
        warnings.warn(
            "every ID label is negative (an unlabelled test split, e.g. GLUE's -1); accuracy and calibration are "
            "skipped.",
            stacklevel=3,
        )
        return None
    if (arr < 0).any() or (arr >= num_classes).any():
        raise ValueError(
            f"`id_labels` must be in [0, {num_classes}) for a {num_classes}-class model, found values in "
            f"[{arr.min()}, {arr.max()}]."
        )
    return arr.astype(np.int64)


def evaluate_ood_from_logits(
    id_logits,
    ood_logits: Mapping[str, Any],
    *,
    id_labels=None,
    scores: Sequence[str | FeatureScorer] = ("msp",),
    id_features=None,
    ood_features: Mapping[str, Any] | None = None,
    fit_features=None,
    fit_labels=None,
    protocol: str | OODProtocol = "paper",
    fpr_tprs: Sequence[float] = (0.9, 0.95),
    recall_level: float = 0.9,
    num_subsets: int = 10,
    ood_to_id_ratio: float = 0.2,
    seed: int = 0,
    max_ood_samples: int | None = None,
    temperature: float = 1.0,
    fpr_method: str = "paper",
    calibration: bool = True,
    calibration_bin_size: int = 100,
    unavailable: Mapping[str, str] | None = None,
    plan: OODSubsetPlan | None = None,
    precomputed_scores: Mapping[str, tuple[Any, Mapping[str, Any]]] | None = None,
) -> OODResults:
    """OOD detection metrics, accuracy and calibration from precomputed logits (text, vision, anything).

    Args:
        id_logits (array or `torch.Tensor` of shape `(n_id, K)`): logits of the ID test set.
        ood_logits (`Mapping[str, array]`): per OOD set, logits of shape `(n_set, K)` for the whole set, or, with
            `plan`, only for the rows `plan.indices_to_score(set)` (in that order).
        id_labels (array of shape `(n_id,)`, *optional*): ID labels; enable accuracy and calibration. All-negative
            labels (unlabelled splits) are ignored with a warning.
        scores (sequence, *optional*, defaults to `("msp",)`): logit score names (`oe_text.scores.LOGIT_SCORES`),
            feature score names (`"mahalanobis"`, `"knn"` with default settings) or `FeatureScorer` instances
            (fitted ones are used as they are; unfitted ones are fitted in place on `fit_features`).
        id_features, ood_features: penultimate features aligned with `id_logits` / `ood_logits`; needed by feature
            scores.
        fit_features, fit_labels: ID *training* features (and labels, for Mahalanobis) to fit feature scorers.
        protocol (`str` or `OODProtocol`, *optional*, defaults to `"paper"`): `"paper"` (OOD:ID = `ood_to_id_ratio`,
            mean over `num_subsets` seeded subsets), `"full"` (everything, once), or an `OODProtocol` holding every
            protocol setting (then leave `fpr_tprs`, `recall_level`, `num_subsets`, `ood_to_id_ratio`, `seed`,
            `max_ood_samples` and `fpr_method` at their defaults).
        fpr_tprs (sequence of `float`, *optional*, defaults to `(0.9, 0.95)`): OOD recalls of the reported FPRs.
        recall_level (`float`, *optional*, defaults to 0.9): the FPR shown first in tables (0.9 for text, 0.95 for
            vision, as the paper); added to `fpr_tprs` if missing.
        num_subsets (`int`, *optional*, defaults to 10): OOD subsets per set (`"paper"`).
        ood_to_id_ratio (`float`, *optional*, defaults to 0.2): OOD subset size / ID size (`"paper"`).
        seed (`int`, *optional*, defaults to 0): seed of the subset draws.
        max_ood_samples (`int`, *optional*): cap each OOD set at a seeded random sample of this size first.
        temperature (`float`, *optional*, defaults to 1.0): softmax temperature of logit scores and calibration.
        fpr_method (`str`, *optional*, defaults to `"paper"`): see `oe_text.metrics.fpr_at_tpr`.
        calibration (`bool`, *optional*, defaults to `True`): compute calibration metrics (needs `id_labels`).
        calibration_bin_size (`int`, *optional*, defaults to 100): adaptive bin size of RMS/MAD calibration error.
        unavailable (`Mapping[str, str]`, *optional*): OOD sets that could not be loaded, with the reason; listed in
            every report.
        plan (`OODSubsetPlan`, *optional*): subsets drawn beforehand with `plan_ood_subsets`.
        precomputed_scores (`Mapping[str, (id_scores, {ood_set: scores})]`, *optional*): scores computed elsewhere
            (e.g. a detector's fitted feature or combined score, `OODDetectorMixin.ood_scores_from_outputs`), aligned
            with `id_logits` / `ood_logits` rows; reported after `scores` under their names.

    Returns:
        `OODResults`.
    """
    if not ood_logits:
        raise ValueError("`ood_logits` is empty: evaluation needs at least one OOD set.")
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature}.")
    ood_protocol = resolve_protocol(
        protocol, num_subsets, ood_to_id_ratio, seed, max_ood_samples, fpr_tprs, recall_level, fpr_method
    )
    precomputed_scores = dict(precomputed_scores or {})
    score_names, feature_scorers = _resolve_scores(scores) if scores else ([], {})
    clash = sorted(set(score_names) & set(precomputed_scores))
    if clash:
        raise ValueError(f"score(s) {clash} are both requested in `scores` and given in `precomputed_scores`.")
    if not score_names and not precomputed_scores:
        raise ValueError("`scores` is empty: pass e.g. ('msp',).")
    id_z = _as_logit_array(id_logits, "id_logits")
    num_classes = id_z.shape[1]
    ood_z = {}
    for name, z in ood_logits.items():
        ood_z[name] = _as_logit_array(z, f"ood_logits[{name!r}]")
        if ood_z[name].shape[1] != num_classes:
            raise ValueError(
                f"`ood_logits[{name!r}]` has {ood_z[name].shape[1]} classes but `id_logits` has {num_classes}."
            )
    labels = _check_id_labels(id_labels, id_z.shape[0], num_classes)
    if plan is None:
        plan = ood_protocol.plan(id_z.shape[0], {name: z.shape[0] for name, z in ood_z.items()})
    else:
        _check_plan(plan, id_z.shape[0], ood_z)
    # Reduce every OOD array to the rows some subset uses before computing anything on it.
    sel = {name: _align(name, z.shape[0], plan, "ood_logits") for name, z in ood_z.items()}
    ood_z = {name: z if sel[name] is None else z[sel[name]] for name, z in ood_z.items()}

    id_s: dict[str, np.ndarray] = {}
    ood_s: dict[str, dict[str, np.ndarray]] = {name: {} for name in ood_z}
    for s in score_names:
        if s in feature_scorers:
            continue
        id_s[s] = compute_score(s, id_z, temperature=temperature)
        for name, z in ood_z.items():
            ood_s[name][s] = compute_score(s, z, temperature=temperature)
    if feature_scorers:
        _feature_scores(
            feature_scorers,
            id_features,
            ood_features,
            fit_features,
            fit_labels,
            id_z.shape[0],
            ood_z,
            sel,
            plan,
            id_s,
            ood_s,
        )
    for s, (id_values, ood_values) in precomputed_scores.items():
        id_s[s] = _as_score_vector(id_values, f"precomputed_scores[{s!r}] (ID)")
        if id_s[s].shape[0] != id_z.shape[0]:
            raise ValueError(f"`precomputed_scores[{s!r}]` has {id_s[s].shape[0]} ID scores for {id_z.shape[0]} rows.")
        if set(ood_values) != set(ood_z):
            raise ValueError(
                f"`precomputed_scores[{s!r}]` has OOD sets {sorted(ood_values)}, expected {sorted(ood_z)}."
            )
        for name, values in ood_values.items():
            v = _as_score_vector(values, f"precomputed_scores[{s!r}][{name!r}]")
            expected = ood_z[name].shape[0] if sel[name] is None else plan.ood_sizes[name]
            if v.shape[0] != expected:
                raise ValueError(f"`precomputed_scores[{s!r}][{name!r}]` must have {expected} scores like its logits.")
            ood_s[name][s] = v if sel[name] is None else v[sel[name]]
    score_names = [*score_names, *precomputed_scores]
    id_s = {s: id_s[s] for s in score_names}
    ood_s = {name: {s: v[s] for s in score_names} for name, v in ood_s.items()}

    accuracy = id_conf = id_correct = ood_conf = None
    if labels is not None:
        accuracy = float(np.mean(id_z.argmax(1) == labels))
        if calibration:
            id_conf = max_softmax_probability(id_z, temperature)
            id_correct = (id_z.argmax(1) == labels).astype(np.float64)
            ood_conf = {name: max_softmax_probability(z, temperature) for name, z in ood_z.items()}
    settings = _settings(ood_protocol, plan)
    settings.update(temperature=float(temperature), calibration_bin_size=calibration_bin_size, scores=score_names)
    return _run_protocol(
        id_s,
        ood_s,
        plan,
        settings,
        accuracy=accuracy,
        id_confidence=id_conf,
        id_correct=id_correct,
        ood_confidence=ood_conf,
        calibration_bin_size=calibration_bin_size,
        unavailable=unavailable,
    )


def _feature_scores(scorers, id_features, ood_features, fit_features, fit_labels, n_id, ood_z, sel, plan, id_s, ood_s):
    names = sorted(scorers)
    if id_features is None or ood_features is None:
        raise ValueError(f"feature scores {names} need `id_features` and `ood_features` (penultimate features).")
    id_f = np.asarray(id_features.detach().cpu().float().numpy() if hasattr(id_features, "detach") else id_features)
    if id_f.ndim != 2 or id_f.shape[0] != n_id:
        raise ValueError(f"`id_features` must have shape ({n_id}, feature_dim), got {id_f.shape}.")
    if set(ood_features) != set(ood_z):
        raise ValueError(f"`ood_features` has sets {sorted(ood_features)}, `ood_logits` has {sorted(ood_z)}.")
    ood_f = {}
    for name, f in ood_features.items():
        f = np.asarray(f.detach().cpu().float().numpy() if hasattr(f, "detach") else f)
        expected = ood_z[name].shape[0] if sel[name] is None else plan.ood_sizes[name]
        if f.ndim != 2 or f.shape[0] != expected:
            raise ValueError(
                f"`ood_features[{name!r}]` must have {expected} rows like `ood_logits`, got shape {f.shape}."
            )
        ood_f[name] = f if sel[name] is None else f[sel[name]]
    for s, scorer in scorers.items():
        if not scorer.is_fitted:
            if fit_features is None:
                raise ValueError(
                    f"feature score {s!r} is not fitted: pass `fit_features` (ID training features"
                    f"{' and `fit_labels`' if scorer.needs_labels else ''}) or a fitted scorer."
                )
            scorer.fit(fit_features, fit_labels)
        id_s[s] = scorer.score(id_f)
        for name, f in ood_f.items():
            ood_s[name][s] = scorer.score(f)


# ----------------------------------------------------------------------------------------------------------------
# Text models
# ----------------------------------------------------------------------------------------------------------------


def _is_dataset(obj) -> bool:
    return hasattr(obj, "column_names") and hasattr(obj, "features")


def _texts_of(data, text_column: str, what: str) -> list[str]:
    if isinstance(data, str):
        raise TypeError(f"`{what}` must be a datasets.Dataset or a sequence of strings, got a single string.")
    if _is_dataset(data):
        cols = list(data.column_names)
        if text_column in cols:
            col = text_column
        else:
            str_cols = [c for c, f in data.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
            if len(str_cols) != 1:
                raise ValueError(
                    f"`{what}` has no column {text_column!r} and {len(str_cols)} string columns ({cols}); pass the "
                    f"texts directly, e.g. `dataset['hypothesis']`, or set `text_column`."
                )
            col = str_cols[0]
        texts = list(data[col])
    else:
        try:
            texts = list(data)
        except TypeError:
            raise TypeError(
                f"`{what}` must be a datasets.Dataset or a sequence of strings, got {type(data).__name__}."
            ) from None
    if not texts:
        raise ValueError(f"`{what}` is empty.")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"`{what}` must hold strings; item {bad[0]} is {type(texts[bad[0]]).__name__}.")
    blank = [i for i, t in enumerate(texts) if not t.strip()]
    if blank:
        raise ValueError(
            f"`{what}` has {len(blank)} empty or whitespace-only text(s) (first at index {blank[0]}); drop them "
            "first, e.g. `ds.filter(lambda t: bool(t.strip()), input_columns='text')`."
        )
    return texts


def _texts_and_labels(data, text_column: str, label_column: str, what: str) -> tuple[list[str], np.ndarray | None]:
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], str):
        texts = _texts_of(data[0], text_column, f"{what}[0]")
        labels = np.asarray(data[1])
        if labels.shape != (len(texts),):
            raise ValueError(f"`{what}` labels have shape {labels.shape}, expected ({len(texts)},).")
        return texts, labels
    texts = _texts_of(data, text_column, what)
    if _is_dataset(data) and label_column in data.column_names:
        return texts, np.asarray(data[label_column])
    return texts, None


def evaluate_ood(
    model,
    tokenizer,
    id_dataset,
    ood_datasets: Mapping[str, Any],
    *,
    scores: Sequence[str | FeatureScorer] = ("msp",),
    protocol: str | OODProtocol = "paper",
    fpr_tprs: Sequence[float] = (0.9, 0.95),
    recall_level: float = 0.9,
    num_subsets: int = 10,
    ood_to_id_ratio: float = 0.2,
    seed: int = 0,
    batch_size: int = 64,
    max_length: int | None = None,
    temperature: float = 1.0,
    feature_fit_dataset=None,
    unavailable: Mapping[str, str] | None = None,
    calibration: bool = True,
    progress: bool = True,
    max_ood_samples: int | None = None,
    fpr_method: str = "paper",
    text_column: str = "text",
    label_column: str = "label",
    feature_fit_chunk_size: int = 4096,
) -> OODResults:
    """Evaluate a text classifier as an OOD detector, as in the paper's `eval_OOD_*.py`, and report accuracy.

    Runs `model` (an `OEClassifier` or any sequence-classification model) on the ID test set and on the OOD inputs
    the protocol needs (batched, no grad, progress bars), then calls `evaluate_ood_from_logits`.

    Args:
        model: the classifier; left in its original train/eval mode.
        tokenizer: its tokenizer; `None` uses `model.tokenizer` (set on an `OEClassifier` by `from_pretrained`).
        id_dataset: the ID test set: a `datasets.Dataset` with `text_column` (and `label_column` for accuracy and
            calibration), a sequence of strings (no accuracy), or a tuple `(texts, labels)`.
        ood_datasets (`Mapping[str, Dataset | Sequence[str]]`): OOD sets by name; a `Dataset` is read from
            `text_column`, or from its only string column.
        scores (sequence, *optional*, defaults to `("msp",)`): logit scores (`"msp"`, `"max_logit"`, `"energy"`,
            `"kl_uniform"`, `"entropy"`), feature scores (`"mahalanobis"`, `"knn"`) or `FeatureScorer` instances, and
            the names of scores fitted on the detector (`model.config.ood_fitted_scores`, see `fit_ood_score`), which
            are computed exactly as `model.detect` computes them.
        protocol (`str` or `OODProtocol`, *optional*, defaults to `"paper"`): `"paper"` (OOD:ID = 1:5, mean over 10
            seeded subsets), `"full"` (all inputs), or an `OODProtocol` (as `evaluate_ood_from_logits`).
        fpr_tprs (sequence of `float`, *optional*, defaults to `(0.9, 0.95)`): OOD recalls of the reported FPRs.
        recall_level (`float`, *optional*, defaults to 0.9): the FPR shown first (the paper: 0.9 text, 0.95 vision).
        num_subsets (`int`, *optional*, defaults to 10): OOD subsets per set under `"paper"`.
        ood_to_id_ratio (`float`, *optional*, defaults to 0.2): OOD subset size / ID size under `"paper"`.
        seed (`int`, *optional*, defaults to 0): seed of the subset draws.
        batch_size (`int`, *optional*, defaults to 64): inference batch size.
        max_length (`int`, *optional*): truncation length (default: the model's limit).
        temperature (`float`, *optional*, defaults to 1.0): softmax temperature of logit scores and calibration.
        feature_fit_dataset (*optional*): ID *training* texts to fit feature scores on: a `Dataset` (with
            `label_column` for Mahalanobis), a sequence of strings (k-NN only) or `(texts, labels)`; processed in
            chunks of `feature_fit_chunk_size` texts, so memory stays bounded.
        unavailable (`Mapping[str, str]`, *optional*): OOD sets that could not be loaded, with the reason; listed in
            every report.
        calibration (`bool`, *optional*, defaults to `True`): compute calibration on the ID+OOD mixture.
        progress (`bool`, *optional*, defaults to `True`): show progress bars.
        max_ood_samples (`int`, *optional*): cap each OOD set at a seeded random sample of this size.
        fpr_method (`str`, *optional*, defaults to `"paper"`): see `oe_text.metrics.fpr_at_tpr`.
        text_column (`str`, *optional*, defaults to `"text"`): text column of datasets.
        label_column (`str`, *optional*, defaults to `"label"`): label column of `id_dataset` / `feature_fit_dataset`.
        feature_fit_chunk_size (`int`, *optional*, defaults to 4096): texts per feature-fitting chunk.

    Returns:
        `OODResults`: `print(results)` shows the markdown tables; `results.save(dir)` writes JSON, CSV, markdown and
        plots.
    """
    from .inference import predict_outputs

    if not ood_datasets:
        raise ValueError("`ood_datasets` is empty: pass at least one OOD set, e.g. {'snli': snli_test['hypothesis']}.")
    if tokenizer is None:
        # An OEClassifier loaded with from_pretrained carries its tokenizer.
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("`tokenizer` is None and the model carries no `tokenizer`; pass the model's tokenizer.")
    ood_protocol = resolve_protocol(
        protocol, num_subsets, ood_to_id_ratio, seed, max_ood_samples, fpr_tprs, recall_level, fpr_method
    )
    scores = [scores] if isinstance(scores, str | FeatureScorer) else list(scores)
    fitted = getattr(getattr(model, "config", None), "ood_fitted_scores", None) or {}
    detector_scores = [s for s in scores if isinstance(s, str) and s in fitted]
    other_scores = [s for s in scores if not (isinstance(s, str) and s in fitted)]
    score_names, feature_scorers = _resolve_scores(other_scores) if other_scores else ([], {})
    detector_keys = sorted({key for s in detector_scores for key in model.required_feature_keys(s)})
    id_texts, id_labels = _texts_and_labels(id_dataset, text_column, label_column, "id_dataset")
    ood_texts = {name: _texts_of(d, text_column, f"ood_datasets[{name!r}]") for name, d in ood_datasets.items()}
    plan = ood_protocol.plan(len(id_texts), {name: len(t) for name, t in ood_texts.items()})
    need_features = bool(feature_scorers)
    fit_scorers = {s: sc for s, sc in feature_scorers.items() if not sc.is_fitted}
    if fit_scorers and feature_fit_dataset is None:
        raise ValueError(
            f"feature scores {sorted(fit_scorers)} need `feature_fit_dataset` (ID training texts"
            f"{', with labels' if any(sc.needs_labels for sc in fit_scorers.values()) else ''}) or fitted scorers."
        )

    def run_all(texts: list[str], desc: str, keys: list[str]):
        return predict_outputs(
            model,
            tokenizer,
            texts,
            feature_keys=keys,
            batch_size=batch_size,
            max_length=max_length,
            progress=desc if progress else False,
        )

    def run(texts: list[str], desc: str):
        logits, feats = run_all(texts, desc, ["fine-tuned:-1"] if need_features else [])
        return (logits, feats["fine-tuned:-1"]) if need_features else logits

    if fit_scorers:
        fit_texts, fit_labels = _texts_and_labels(
            feature_fit_dataset, text_column, label_column, "feature_fit_dataset"
        )
        if fit_labels is None and any(sc.needs_labels for sc in fit_scorers.values()):
            raise ValueError("`feature_fit_dataset` has no labels, but the Mahalanobis score needs them.")
        for scorer in fit_scorers.values():
            scorer.reset()
        for start in range(0, len(fit_texts), feature_fit_chunk_size):
            stop = min(start + feature_fit_chunk_size, len(fit_texts))
            _, feats = run(fit_texts[start:stop], f"features for fitting {start}-{stop}/{len(fit_texts)}")
            for scorer in fit_scorers.values():
                scorer.partial_fit(feats, None if fit_labels is None else fit_labels[start:stop])

    # One forward pass per batch gives the logits, the head's features and every feature a detector score reads.
    keys = sorted({*detector_keys, *(["fine-tuned:-1"] if need_features else [])})
    precomputed: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {s: (None, {}) for s in detector_scores}

    def outputs(texts: list[str], desc: str, ood_name: str | None = None):
        logits, feats = run_all(texts, desc, keys)
        for s in detector_scores:
            values = model.ood_scores_from_outputs(logits, feats, name=s)
            if ood_name is None:
                precomputed[s] = (values, precomputed[s][1])
            else:
                precomputed[s][1][ood_name] = values
        return logits, feats.get("fine-tuned:-1")

    id_logits, id_features = outputs(id_texts, f"ID test ({len(id_texts)})")
    ood_logits, ood_features = {}, {}
    for name, texts in ood_texts.items():
        needed = plan.indices_to_score(name)
        ood_logits[name], ood_features[name] = outputs(
            [texts[i] for i in needed], f"OOD {name} ({needed.size}/{len(texts)})", name
        )

    return evaluate_ood_from_logits(
        id_logits,
        ood_logits,
        id_labels=id_labels,
        scores=[feature_scorers.get(s, s) for s in score_names],
        precomputed_scores=precomputed,
        id_features=id_features,
        ood_features=ood_features if need_features else None,
        protocol=ood_protocol,
        temperature=temperature,
        calibration=calibration,
        unavailable=unavailable,
        plan=plan,
    )
