"""Results of an OOD evaluation (`OODResults`: metrics, accuracy, calibration, files, plots) and the side-by-side
comparison of runs (`compare_results`), built on the one reporting layer (`oe_text.reporting`)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import fpr_key
from .ood_protocol import OODProtocol
from .reporting import markdown_table, metric_label


RESULTS_FORMAT_VERSION = 1

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
            protocol = OODProtocol.from_settings(s)
            ratio = protocol.ood_to_id_ratio
            inv = 1 / ratio
            ratio_text = f"1:{round(inv)}" if abs(inv - round(inv)) < 1e-9 else f"{ratio:g}"
            size = protocol.subset_size(self.num_id)
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
            header, caption = ["OOD set"] + [metric_label(k) for k in keys], ""
            at = (self.settings.get("thresholds") or {}).get(s)
            if at:
                # The saved threshold's effect beside the threshold-free metrics: the share of each set it flags.
                flagged = at["flagged"]
                for row, name in zip(rows, self.ood_names):
                    row.append(_fmt(flagged.get(name), digits))
                rows[-1].append(f"**{_fmt(sum(flagged.values()) / len(flagged), digits)}**" if flagged else "–")
                header.append(metric_label("flagged"))
                caption = (
                    " Flagged: share of each set's scored inputs above the detector's threshold "
                    f"{at['threshold']:.6g}, "
                    f"which flags {100 * at['id_flagged']:.{digits}f}% of the ID test inputs."
                )
            parts.append(f"**Score `{s}`** (higher = more anomalous).{caption}\n\n" + markdown_table(header, rows))
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
            parts.append(caption + "\n\n" + markdown_table(["Test data"] + [metric_label(k) for k in ckeys], rows))
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

    def set_threshold(self, score: str, threshold: float) -> dict[str, Any]:
        """Record a detector's threshold for `score`: the share of the ID test inputs and of each OOD set's scored
        inputs it flags (`score > threshold`, the detector's rule) then appears in the reports, beside FPR/AUROC/AUPR,
        and as a line in the histograms.

        Args:
            score (`str`): an evaluated score.
            threshold (`float`): the threshold (e.g. `detector.config.ood_threshold`).

        Returns:
            `dict`: `{"threshold", "id_flagged", "flagged": {ood_set: share}}`, also kept in `settings["thresholds"]`.
        """
        ids, ood = self._raw(score)
        entry = {
            "threshold": float(threshold),
            "id_flagged": float(np.mean(np.asarray(ids) > threshold)),
            "flagged": {name: float(np.mean(np.asarray(v) > threshold)) for name, v in ood.items() if len(v)},
        }
        self.settings.setdefault("thresholds", {})[score] = entry
        return entry

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
        at = (self.settings.get("thresholds") or {}).get(score)
        return plot_score_histograms(
            ids,
            ood,
            score_name=score,
            title=f"Score `{score}`: ID test vs every scored OOD input",
            threshold=at["threshold"] if at else None,
            path=path,
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
    header = ["OOD set"] + [f"{metric_label(k)} {label}" for k in metrics for label in labels]
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
    parts = [f"{caption} (higher = more anomalous). {first.describe_protocol()}", markdown_table(header, rows)]
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
