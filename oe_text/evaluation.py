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

With `max_ood_samples`, each OOD set is first cut to a seeded random sample of that size. Only the OOD inputs that
some subset uses are scored (`OODSubsetPlan.indices_to_score`), which keeps huge sets like IMDB cheap.

All metrics use OOD as the positive class and scores with higher = more anomalous; see `oe_text.metrics` for each
metric's exact convention.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .feature_scores import FEATURE_SCORES, FeatureScorer, make_feature_scorer
from .metrics import calibration_metrics, fpr_key, ood_detection_metrics
from .scores import LOGIT_SCORES, compute_score, max_softmax_probability


__all__ = [
    "OODResults",
    "OODSubsetPlan",
    "compare_results",
    "compare_results_to_dict",
    "evaluate_ood",
    "evaluate_ood_from_logits",
    "evaluate_ood_from_scores",
    "plan_ood_subsets",
]

PROTOCOLS = ("paper", "full")
RESULTS_FORMAT_VERSION = 1

# Display names and direction of every metric key (fprXX keys are handled by `_metric_label`).
_METRIC_LABELS = {
    "auroc": "AUROC ↑",
    "aupr_out": "AUPR-Out ↑",
    "aupr_in": "AUPR-In ↑",
    "detection_error": "Det. err ↓",
    "rms_calibration_error": "RMS calib. err ↓",
    "mad_calibration_error": "MAD calib. err ↓",
    "ece": "ECE ↓",
    "soft_f1": "Soft F1 ↑",
    "accuracy": "Accuracy ↑",
}


def _metric_label(key: str) -> str:
    if key in _METRIC_LABELS:
        return _METRIC_LABELS[key]
    if key.startswith("fpr"):
        return f"FPR{key[3:]} ↓"
    return key


# ----------------------------------------------------------------------------------------------------------------
# Subset plan
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OODSubsetPlan:
    """Which OOD inputs each protocol subset uses.

    Attributes:
        protocol (`str`): `"paper"` or `"full"`.
        num_id (`int`): number of in-distribution test inputs.
        ood_sizes (`dict[str, int]`): full size of each OOD set.
        subsets (`dict[str, list[np.ndarray]]`): per OOD set, the sorted indices (into the full set) of each subset.
    """

    protocol: str
    num_id: int
    ood_sizes: dict[str, int]
    subsets: dict[str, list[np.ndarray]]

    def indices_to_score(self, name: str) -> np.ndarray:
        """Sorted indices of the inputs of OOD set `name` that at least one subset uses: the only ones to score."""
        return np.unique(np.concatenate(self.subsets[name]))

    def subset_size(self, name: str) -> int:
        """Number of OOD inputs per subset of set `name`."""
        return int(self.subsets[name][0].size)


def _set_rng(seed: int, name: str) -> np.random.Generator:
    # Keyed by the set's name (crc32 is stable across runs, unlike hash()), so adding or removing another OOD set does
    # not change this set's subsets.
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def _check_protocol_args(protocol, num_subsets, ood_to_id_ratio, max_ood_samples) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {PROTOCOLS}, got {protocol!r}.")
    if not isinstance(num_subsets, int) or num_subsets < 1:
        raise ValueError(f"`num_subsets` must be a positive int, got {num_subsets!r}.")
    if not 0 < ood_to_id_ratio:
        raise ValueError(f"`ood_to_id_ratio` must be > 0 (0.2 = the paper's OOD:ID of 1:5), got {ood_to_id_ratio!r}.")
    if max_ood_samples is not None and (not isinstance(max_ood_samples, int) or max_ood_samples < 1):
        raise ValueError(f"`max_ood_samples` must be None or a positive int, got {max_ood_samples!r}.")


def plan_ood_subsets(
    num_id: int,
    ood_sizes: Mapping[str, int],
    *,
    protocol: str = "paper",
    num_subsets: int = 10,
    ood_to_id_ratio: float = 0.2,
    seed: int = 0,
    max_ood_samples: int | None = None,
) -> OODSubsetPlan:
    """Draw the OOD subsets of a protocol (see the module docstring) from set sizes alone.

    Deterministic in `(seed, set name, sizes, num_id)`, so a multi-process recipe can plan first, compute logits only
    for `plan.indices_to_score(name)`, and pass them with `plan=` to `evaluate_ood_from_logits`.

    Args:
        num_id (`int`): number of in-distribution test inputs.
        ood_sizes (`Mapping[str, int]`): size of each OOD set.
        protocol (`str`, *optional*, defaults to `"paper"`): `"paper"` or `"full"`.
        num_subsets (`int`, *optional*, defaults to 10): subsets per OOD set (`"paper"` only).
        ood_to_id_ratio (`float`, *optional*, defaults to 0.2): subset size is `floor(ratio * num_id)`, at least 1.
        seed (`int`, *optional*, defaults to 0): base seed.
        max_ood_samples (`int`, *optional*): first cut each OOD set to a random sample of this size.

    Returns:
        `OODSubsetPlan`.
    """
    _check_protocol_args(protocol, num_subsets, ood_to_id_ratio, max_ood_samples)
    if not isinstance(num_id, int | np.integer) or num_id < 1:
        raise ValueError(f"`num_id` must be a positive int, got {num_id!r}.")
    if not ood_sizes:
        raise ValueError("`ood_sizes` is empty: evaluation needs at least one OOD set.")
    subsets: dict[str, list[np.ndarray]] = {}
    for name, size in ood_sizes.items():
        if not isinstance(size, int | np.integer) or size < 1:
            raise ValueError(f"OOD set {name!r} is empty (size {size!r}); every OOD set needs at least one input.")
        rng = _set_rng(seed, name)
        pool = np.arange(size)
        if max_ood_samples is not None and size > max_ood_samples:
            pool = np.sort(rng.choice(size, size=max_ood_samples, replace=False))
        if protocol == "full":
            subsets[name] = [pool]
            continue
        m = max(1, math.floor(ood_to_id_ratio * num_id + 1e-9))
        if m >= pool.size:
            subsets[name] = [pool] * num_subsets
        else:
            subsets[name] = [np.sort(rng.choice(pool, size=m, replace=False)) for _ in range(num_subsets)]
    return OODSubsetPlan(protocol=protocol, num_id=int(num_id), ood_sizes=dict(ood_sizes), subsets=subsets)


def _align(name: str, n_rows: int, plan: OODSubsetPlan, what: str) -> np.ndarray | None:
    """Row selector turning a per-set array into rows aligned with `plan.indices_to_score(name)`."""
    needed = plan.indices_to_score(name)
    if n_rows == needed.size:
        return None
    if n_rows == plan.ood_sizes[name]:
        return needed
    raise ValueError(
        f"`{what}[{name!r}]` has {n_rows} rows; expected the full set ({plan.ood_sizes[name]}) or only the rows of "
        f"`plan.indices_to_score({name!r})` ({needed.size})."
    )


# ----------------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------------


def _summary(values: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    # Identical values (a set used whole in every subset) get an exact 0 rather than rounding noise.
    std = 0.0 if np.ptp(arr) == 0 else float(arr.std())
    mean = float(arr[0]) if std == 0.0 else float(arr.mean())
    return {"mean": mean, "std": std, "values": [float(v) for v in arr]}


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


@dataclass
class OODResults:
    """Results of an OOD evaluation: metrics per (score, OOD set), their mean, accuracy, calibration, settings.

    All metric values are fractions in `[0, 1]` (tables show percentages). Summaries are dicts
    `{"mean", "std", "values"}` over the protocol's subsets (one value under `"full"`; std is numpy's population std,
    as the paper's code prints).

    Attributes:
        metrics (`dict`): `metrics[score][ood_set][metric]` -> summary; metric keys as `ood_detection_metrics`.
        accuracy (`float`, *optional*): in-distribution test accuracy (when ID labels were given).
        calibration (`dict`, *optional*): `calibration[ood_set][metric]` -> summary, on the ID + OOD-subset mixture
            (confidence = max softmax probability at `settings["temperature"]`, OOD inputs count as wrong).
        id_calibration (`dict`, *optional*): the same metrics on the ID test set alone.
        num_id (`int`): in-distribution test inputs.
        num_ood (`dict[str, int]`): size of each OOD set.
        num_ood_per_subset (`dict[str, int]`): OOD inputs per subset.
        unavailable (`dict[str, str]`): OOD sets asked for but not evaluated, with the reason.
        settings (`dict`): protocol and metric settings.
        id_scores, ood_scores: raw scores kept in memory for plots (`ood_scores[score][ood_set]` holds every scored
            OOD input); not written to JSON, so results loaded with `from_json` cannot be plotted.
    """

    metrics: dict[str, dict[str, dict[str, dict[str, Any]]]]
    accuracy: float | None = None
    calibration: dict[str, dict[str, dict[str, Any]]] | None = None
    id_calibration: dict[str, float] | None = None
    num_id: int = 0
    num_ood: dict[str, int] = field(default_factory=dict)
    num_ood_per_subset: dict[str, int] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    id_scores: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)
    ood_scores: dict[str, dict[str, np.ndarray]] | None = field(default=None, repr=False, compare=False)

    # -- access ------------------------------------------------------------------------------------------------

    @property
    def score_names(self) -> list[str]:
        """The scores evaluated, in order."""
        return list(self.metrics)

    @property
    def ood_names(self) -> list[str]:
        """The OOD sets evaluated, in order."""
        first = next(iter(self.metrics.values()), {})
        return list(first)

    @property
    def metric_names(self) -> list[str]:
        """Metric keys, main-table order: FPR at `recall_level`, AUROC, AUPR-Out, then the others."""
        first = next(iter(next(iter(self.metrics.values()), {}).values()), {})
        keys = list(first)
        main = [fpr_key(self.settings.get("recall_level", 0.9)), "auroc", "aupr_out"]
        rest = [k for k in keys if k.startswith("fpr")] + ["aupr_in", "detection_error"]
        ordered = [k for k in main + rest if k in keys]
        return list(dict.fromkeys(ordered + keys))

    def get(self, score: str, ood_set: str, metric: str) -> float:
        """Mean over subsets of `metric` for `score` on `ood_set`; `ood_set="mean"` gives the mean over OOD sets."""
        if score not in self.metrics:
            raise KeyError(f"score {score!r} was not evaluated; evaluated: {self.score_names}.")
        if ood_set == "mean":
            return self.mean_metrics(score)[metric]
        try:
            return self.metrics[score][ood_set][metric]["mean"]
        except KeyError:
            raise KeyError(
                f"no {metric!r} for OOD set {ood_set!r}; sets: {self.ood_names}, metrics: {self.metric_names}."
            ) from None

    def mean_metrics(self, score: str) -> dict[str, float]:
        """Mean over OOD sets of each metric's per-set mean (the paper's "Mean" row)."""
        per_set = self.metrics[score]
        return {k: float(np.mean([per_set[s][k]["mean"] for s in per_set])) for k in self.metric_names}

    def mean_calibration(self) -> dict[str, float] | None:
        """Mean over OOD sets of each calibration metric's per-set mean."""
        if not self.calibration:
            return None
        keys = list(next(iter(self.calibration.values())))
        return {k: float(np.mean([v[k]["mean"] for v in self.calibration.values()])) for k in keys}

    # -- text --------------------------------------------------------------------------------------------------

    def describe_protocol(self) -> str:
        """One sentence describing the protocol, for table captions."""
        s = self.settings
        if s.get("protocol") == "paper":
            ratio = s.get("ood_to_id_ratio") or 0.2
            inv = 1 / ratio
            ratio_text = f"1:{round(inv)}" if abs(inv - round(inv)) < 1e-9 else f"{ratio:g}"
            size = max(1, math.floor(ratio * self.num_id + 1e-9))
            small = [f"{k}: all {v}" for k, v in self.num_ood_per_subset.items() if v < size]
            text = (
                f"Protocol `paper`: all {self.num_id} ID test inputs vs {s.get('num_subsets')} random OOD subsets of "
                f"{size} inputs per OOD set{' (' + ', '.join(small) + ')' if small else ''} (OOD:ID = {ratio_text}), "
                f"metrics averaged over subsets (seed {s.get('seed')})"
            )
        else:
            text = f"Protocol `full`: all {self.num_id} ID test inputs vs every input of each OOD set"
        if s.get("max_ood_samples"):
            text += f", OOD sets capped at {s['max_ood_samples']} inputs"
        return text + ". OOD = positive class; values in %."

    def _unavailable_line(self) -> str | None:
        if not self.unavailable:
            return None
        items = "; ".join(f"`{k}` ({v})" for k, v in self.unavailable.items())
        return f"Not evaluated (unavailable): {items}."

    def to_markdown(self, score: str | None = None, digits: int = 2, include_calibration: bool | None = None) -> str:
        """Markdown tables like the paper's: one row per OOD set plus the mean row, one table per score.

        Args:
            score (`str`, *optional*): only this score's table (default: every score).
            digits (`int`, *optional*, defaults to 2): decimals of the percentages.
            include_calibration (`bool`, *optional*): add the calibration table (default: when `score` is None).

        Returns:
            `str`.
        """
        scores = self.score_names if score is None else [score]
        for s in scores:
            if s not in self.metrics:
                raise KeyError(f"score {s!r} was not evaluated; evaluated: {self.score_names}.")
        parts = [self.describe_protocol()]
        if self.accuracy is not None:
            parts.append(f"In-distribution test accuracy: {100 * self.accuracy:.{digits}f}% (n={self.num_id}).")
        keys = self.metric_names
        for s in scores:
            rows = [[name] + [_fmt(self.metrics[s][name][k]["mean"], digits) for k in keys] for name in self.ood_names]
            mean = self.mean_metrics(s)
            rows.append(["**Mean**"] + [f"**{_fmt(mean[k], digits)}**" for k in keys])
            parts.append(
                f"**Score `{s}`** (higher = more anomalous)\n\n"
                + _md_table(["OOD set"] + [_metric_label(k) for k in keys], rows)
            )
        if include_calibration is None:
            include_calibration = score is None
        if include_calibration and self.calibration:
            ckeys = list(next(iter(self.calibration.values())))
            rows = []
            if self.id_calibration:
                rows.append(["ID test only"] + [_fmt(self.id_calibration[k], digits) for k in ckeys])
            rows += [
                [f"ID + {name}"] + [_fmt(v[k]["mean"], digits) for k in ckeys] for name, v in self.calibration.items()
            ]
            cmean = self.mean_calibration()
            rows.append(["**Mean (ID + OOD)**"] + [f"**{_fmt(cmean[k], digits)}**" for k in ckeys])
            caption = (
                "**Calibration** on the ID test set mixed with each OOD subset (confidence = max softmax probability "
                f"at T={self.settings.get('temperature', 1.0):g}; OOD inputs count as misclassified; adaptive bins of "
                f"{self.settings.get('calibration_bin_size', 100)})"
            )
            parts.append(caption + "\n\n" + _md_table(["Test data"] + [_metric_label(k) for k in ckeys], rows))
        line = self._unavailable_line()
        if line:
            parts.append(line)
        return "\n\n".join(parts) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()

    # -- serialisation -----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of everything but the raw scores, with the mean rows added."""
        return {
            "format_version": RESULTS_FORMAT_VERSION,
            "settings": self.settings,
            "num_id": self.num_id,
            "num_ood": self.num_ood,
            "num_ood_per_subset": self.num_ood_per_subset,
            "accuracy": self.accuracy,
            "metrics": self.metrics,
            "mean": {s: self.mean_metrics(s) for s in self.score_names},
            "calibration": self.calibration,
            "calibration_mean": self.mean_calibration(),
            "id_calibration": self.id_calibration,
            "unavailable": self.unavailable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OODResults:
        """Inverse of `to_dict` (raw scores are not restored)."""
        version = data.get("format_version")
        if version != RESULTS_FORMAT_VERSION:
            raise ValueError(f"Unsupported OOD results format_version {version!r}; expected {RESULTS_FORMAT_VERSION}.")
        return cls(
            metrics=data["metrics"],
            accuracy=data.get("accuracy"),
            calibration=data.get("calibration"),
            id_calibration=data.get("id_calibration"),
            num_id=data.get("num_id", 0),
            num_ood=data.get("num_ood", {}),
            num_ood_per_subset=data.get("num_ood_per_subset", {}),
            unavailable=data.get("unavailable", {}),
            settings=data.get("settings", {}),
        )

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The results as JSON text; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> OODResults:
        """Load results written by `to_json` / `save` (a path to results.json, its folder, or the JSON text)."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            path = Path(path_or_text)
            if path.is_dir():
                path = path / "results.json"
            text = path.read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """Long-format CSV: `kind,score,ood_set,metric,mean,std,num_subsets` (fractions, not %)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["kind", "score", "ood_set", "metric", "mean", "std", "num_subsets"])
        for s in self.score_names:
            for name in self.ood_names:
                for k in self.metric_names:
                    v = self.metrics[s][name][k]
                    w.writerow(["ood", s, name, k, repr(v["mean"]), repr(v["std"]), len(v["values"])])
            for k, v in self.mean_metrics(s).items():
                w.writerow(["ood", s, "mean", k, repr(v), "", ""])
        if self.calibration:
            for name, per in self.calibration.items():
                for k, v in per.items():
                    w.writerow(["calibration", "", name, k, repr(v["mean"]), repr(v["std"]), len(v["values"])])
            for k, v in (self.id_calibration or {}).items():
                w.writerow(["calibration", "", "id_only", k, repr(v), "", ""])
        if self.accuracy is not None:
            w.writerow(["accuracy", "", "", "accuracy", repr(self.accuracy), "", ""])
        for name, reason in self.unavailable.items():
            w.writerow(["unavailable", "", name, reason, "", "", ""])
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    # -- plots ---------------------------------------------------------------------------------------------------

    def _raw(self, score: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if self.id_scores is None or self.ood_scores is None:
            raise RuntimeError(
                "These results hold no raw scores (loaded from JSON?); plots need the OODResults returned by "
                "evaluate_ood / evaluate_ood_from_logits / evaluate_ood_from_scores."
            )
        if score not in self.id_scores:
            raise KeyError(f"score {score!r} was not evaluated; evaluated: {self.score_names}.")
        return self.id_scores[score], self.ood_scores[score]

    def plot_roc(self, score: str, path: str | os.PathLike | None = None):
        """ROC curve of every OOD set for `score` (ID test vs every scored OOD input); see `plot_roc_curves`."""
        from .plotting import plot_roc_curves

        ids, ood = self._raw(score)
        return plot_roc_curves(
            ids,
            ood,
            title=f"ROC of score `{score}` (every scored OOD input)",
            tpr_line=self.settings.get("recall_level"),
            path=path,
        )

    def plot_histograms(self, score: str, path: str | os.PathLike | None = None):
        """ID vs OOD histograms of `score`, one panel per OOD set; see `plot_score_histograms`."""
        from .plotting import plot_score_histograms

        ids, ood = self._raw(score)
        return plot_score_histograms(
            ids, ood, score_name=score, title=f"Score `{score}`: ID test vs every scored OOD input", path=path
        )

    def save(self, output_dir: str | os.PathLike, plots: bool = True) -> dict[str, Path]:
        """Write `results.json`, `results.csv`, `results.md` and, with raw scores, `roc_<score>.png` and
        `hist_<score>.png` (one panel per OOD set) into `output_dir`.

        Args:
            output_dir (`str` or `os.PathLike`): folder, created if missing.
            plots (`bool`, *optional*, defaults to `True`): draw the PNGs (skipped without raw scores).

        Returns:
            `dict[str, Path]`: what was written, by short name.
        """
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {"json": out / "results.json", "csv": out / "results.csv", "markdown": out / "results.md"}
        self.to_json(written["json"])
        self.to_csv(written["csv"])
        written["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        if plots and self.id_scores is not None:
            for s in self.score_names:
                stem = _safe_filename(s)
                written[f"roc_{s}"] = out / f"roc_{stem}.png"
                written[f"hist_{s}"] = out / f"hist_{stem}.png"
                self.plot_roc(s, written[f"roc_{s}"])
                self.plot_histograms(s, written[f"hist_{s}"])
        return written


# ----------------------------------------------------------------------------------------------------------------
# Comparing runs
# ----------------------------------------------------------------------------------------------------------------


def _run_scores(named: Mapping[str, OODResults], score: str | Mapping[str, str]) -> dict[str, str]:
    """The score of each run: one name for all, or `{run label: score}`."""
    if isinstance(score, str):
        return {label: score for label in named}
    missing = [label for label in named if label not in score]
    if missing:
        raise KeyError(f"`score` names no score for run(s) {missing}.")
    return {label: score[label] for label in named}


def _compare_inputs(named: Mapping[str, OODResults], score, metrics: Sequence[str] | None):
    if not named:
        raise ValueError("`named` is empty: pass e.g. {'Baseline': results_a, 'OE': results_b}.")
    scores = _run_scores(named, score)
    for label, res in named.items():
        if not isinstance(res, OODResults):
            raise TypeError(f"`named[{label!r}]` must be an OODResults, got {type(res).__name__}.")
        if scores[label] not in res.metrics:
            raise KeyError(f"`named[{label!r}]` has no score {scores[label]!r}; it has {res.score_names}.")
    first = next(iter(named.values()))
    if metrics is None:
        metrics = [k for k in first.metric_names[:3]]
    sets: list[str] = []
    for res in named.values():
        sets += [s for s in res.ood_names if s not in sets]
    return list(metrics), sets


def compare_results_to_dict(
    named: Mapping[str, OODResults], score: str | Mapping[str, str] = "msp", metrics: Sequence[str] | None = None
) -> dict[str, Any]:
    """Side-by-side numbers of several runs (e.g. Baseline vs OE) for one score, as a JSON-ready dict.

    Args:
        named (`Mapping[str, OODResults]`): results by run name, in column order.
        score (`str` or `Mapping[str, str]`, *optional*, defaults to `"msp"`): the score to compare, or one per run
            (e.g. `{"Baseline": "msp", "OE": "msp", "Detector": "combined"}`).
        metrics (sequence of `str`, *optional*): metric keys (default: the main table's first three, e.g.
            `fpr90`, `auroc`, `aupr_out`).

    Returns:
        `dict` with `score`, `metrics`, `ood_sets`, and per run `score`, `per_set`, `mean`, `accuracy`, `protocol`.
    """
    metrics, sets = _compare_inputs(named, score, metrics)
    scores = _run_scores(named, score)
    runs = {}
    for label, res in named.items():
        score = scores[label]
        runs[label] = {
            "score": score,
            "per_set": {s: {k: res.metrics[score][s][k]["mean"] for k in metrics} for s in res.ood_names},
            "mean": {k: res.mean_metrics(score)[k] for k in metrics},
            "accuracy": res.accuracy,
            "protocol": res.describe_protocol(),
            "unavailable": res.unavailable,
        }
    common = set(scores.values())
    return {"score": common.pop() if len(common) == 1 else scores, "metrics": metrics, "ood_sets": sets, "runs": runs}


def compare_results(
    named: Mapping[str, OODResults],
    score: str | Mapping[str, str] = "msp",
    metrics: Sequence[str] | None = None,
    digits: int = 2,
) -> str:
    """One markdown table comparing runs side by side, like the paper's Baseline vs OE tables.

    Columns: for each metric, one column per run; rows: OOD sets, the mean over sets, then the in-distribution test
    accuracy (under the first metric's columns).

    Args:
        named (`Mapping[str, OODResults]`): results by run name, in column order.
        score (`str` or `Mapping[str, str]`, *optional*, defaults to `"msp"`): the score to compare, or one per
            run label.
        metrics (sequence of `str`, *optional*): metric keys (default: the main table's first three).
        digits (`int`, *optional*, defaults to 2): decimals of the percentages.

    Returns:
        `str`: a caption, the table, and notes on unavailable sets or differing protocols.
    """
    data = compare_results_to_dict(named, score=score, metrics=metrics)
    metrics, sets, runs = data["metrics"], data["ood_sets"], data["runs"]
    labels = list(runs)
    header = ["OOD set"] + [f"{_metric_label(k)} {label}" for k in metrics for label in labels]
    rows = []
    for s in sets:
        rows.append([s] + [_fmt(runs[lb]["per_set"].get(s, {}).get(k), digits) for k in metrics for lb in labels])
    rows.append(["**Mean**"] + [f"**{_fmt(runs[lb]['mean'][k], digits)}**" for k in metrics for lb in labels])
    if any(runs[lb]["accuracy"] is not None for lb in labels):
        acc = [_fmt(runs[lb]["accuracy"], digits) for lb in labels]
        rows.append(["*ID test accuracy ↑*"] + acc + [""] * (len(header) - 1 - len(acc)))
    first = next(iter(named.values()))
    if isinstance(data["score"], str):
        caption = f"Score `{data['score']}`"
    else:
        caption = "Scores: " + ", ".join(f"{lb} `{sc}`" for lb, sc in data["score"].items())
    parts = [f"{caption} (higher = more anomalous). {first.describe_protocol()}", _md_table(header, rows)]
    protocols = {lb: r["protocol"] for lb, r in runs.items()}
    if len(set(protocols.values())) > 1:
        parts.append(
            "Note: the runs used different protocols: " + "; ".join(f"{k}: {v}" for k, v in protocols.items())
        )
    missing = {s for s in sets for lb in labels if s not in runs[lb]["per_set"]}
    if missing:
        parts.append(f"Note: not every run has {sorted(missing)}; each run's mean is over its own OOD sets.")
    unavailable = {k: v for r in runs.values() for k, v in r["unavailable"].items()}
    if unavailable:
        parts.append("Not evaluated (unavailable): " + "; ".join(f"`{k}` ({v})" for k, v in unavailable.items()) + ".")
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Core: from scores
# ----------------------------------------------------------------------------------------------------------------


def _settings(protocol, num_subsets, ood_to_id_ratio, seed, fpr_tprs, recall_level, fpr_method, max_ood_samples):
    tprs = [float(t) for t in fpr_tprs]
    if recall_level not in tprs:
        tprs.insert(0, float(recall_level))
    for t in tprs:
        fpr_key(t)  # validates
    return {
        "protocol": protocol,
        "num_subsets": num_subsets if protocol == "paper" else 1,
        "ood_to_id_ratio": ood_to_id_ratio if protocol == "paper" else None,
        "seed": seed,
        "fpr_tprs": tprs,
        "recall_level": float(recall_level),
        "fpr_method": fpr_method,
        "max_ood_samples": max_ood_samples,
    }


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
    protocol: str = "paper",
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
    if fpr_method not in ("paper", "at_least"):
        raise ValueError(f"`fpr_method` must be 'paper' or 'at_least', got {fpr_method!r}.")
    ood: dict[str, dict[str, np.ndarray]] = {}
    for name, per_score in ood_scores.items():
        if set(per_score) != set(ids):
            raise ValueError(f"`ood_scores[{name!r}]` has scores {sorted(per_score)}, expected {sorted(ids)}.")
        ood[name] = {s: _as_score_vector(per_score[s], f"ood_scores[{name!r}][{s!r}]") for s in ids}
        if len({v.size for v in ood[name].values()}) != 1:
            raise ValueError(f"every score of `ood_scores[{name!r}]` must have the same length.")
    n_id = n_id.pop()
    if plan is None:
        plan = plan_ood_subsets(
            n_id,
            {name: next(iter(v.values())).size for name, v in ood.items()},
            protocol=protocol,
            num_subsets=num_subsets,
            ood_to_id_ratio=ood_to_id_ratio,
            seed=seed,
            max_ood_samples=max_ood_samples,
        )
    else:
        _check_plan(plan, n_id, ood)
    for name, per_score in ood.items():
        sel = _align(name, next(iter(per_score.values())).size, plan, "ood_scores")
        if sel is not None:
            ood[name] = {s: v[sel] for s, v in per_score.items()}
    settings = _settings(
        plan.protocol, num_subsets, ood_to_id_ratio, seed, fpr_tprs, recall_level, fpr_method, max_ood_samples
    )
    return _run_protocol(ids, ood, plan, settings, accuracy=accuracy, unavailable=unavailable)


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
    protocol: str = "paper",
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
        protocol (`str`, *optional*, defaults to `"paper"`): `"paper"` (OOD:ID = `ood_to_id_ratio`, mean over
            `num_subsets` seeded subsets) or `"full"` (everything, once).
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
    if fpr_method not in ("paper", "at_least"):
        raise ValueError(f"`fpr_method` must be 'paper' or 'at_least', got {fpr_method!r}.")
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
        plan = plan_ood_subsets(
            id_z.shape[0],
            {name: z.shape[0] for name, z in ood_z.items()},
            protocol=protocol,
            num_subsets=num_subsets,
            ood_to_id_ratio=ood_to_id_ratio,
            seed=seed,
            max_ood_samples=max_ood_samples,
        )
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
    settings = _settings(
        plan.protocol, num_subsets, ood_to_id_ratio, seed, fpr_tprs, recall_level, fpr_method, max_ood_samples
    )
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
    protocol: str = "paper",
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
        protocol (`str`, *optional*, defaults to `"paper"`): `"paper"` (OOD:ID = 1:5, mean over 10 seeded subsets) or
            `"full"` (all inputs).
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
    scores = [scores] if isinstance(scores, str | FeatureScorer) else list(scores)
    fitted = getattr(getattr(model, "config", None), "ood_fitted_scores", None) or {}
    detector_scores = [s for s in scores if isinstance(s, str) and s in fitted]
    other_scores = [s for s in scores if not (isinstance(s, str) and s in fitted)]
    score_names, feature_scorers = _resolve_scores(other_scores) if other_scores else ([], {})
    detector_keys = sorted({key for s in detector_scores for key in model.required_feature_keys(s)})
    id_texts, id_labels = _texts_and_labels(id_dataset, text_column, label_column, "id_dataset")
    ood_texts = {name: _texts_of(d, text_column, f"ood_datasets[{name!r}]") for name, d in ood_datasets.items()}
    plan = plan_ood_subsets(
        len(id_texts),
        {name: len(t) for name, t in ood_texts.items()},
        protocol=protocol,
        num_subsets=num_subsets,
        ood_to_id_ratio=ood_to_id_ratio,
        seed=seed,
        max_ood_samples=max_ood_samples,
    )
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
        protocol=protocol,
        fpr_tprs=fpr_tprs,
        recall_level=recall_level,
        num_subsets=num_subsets,
        ood_to_id_ratio=ood_to_id_ratio,
        seed=seed,
        max_ood_samples=max_ood_samples,
        temperature=temperature,
        fpr_method=fpr_method,
        calibration=calibration,
        unavailable=unavailable,
        plan=plan,
    )
