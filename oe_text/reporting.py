"""One reporting layer: the metric-name registry and the markdown table builder used by reports, recipes, model cards
and benchmarks.

Metric keys are those of `oe_text.metrics.ood_detection_metrics` (`auroc`, `aupr_out`, `aupr_in`, `fpr95`, ...) and
of the calibration metrics; every table labels them through `metric_label`, so one key reads the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any


#: Display name, direction (`"↑"`: higher is better, `"↓"`: lower is better) and definition of each metric key.
#: `fprXX` keys (FPR at XX% TPR) are handled by `metric_label` / `metric_definition`.
METRICS: dict[str, tuple[str, str, str | None]] = {
    "auroc": (
        "AUROC",
        "↑",
        "area under the ROC curve of OOD (positive) against in-distribution test inputs; 50% is chance, higher is "
        "better.",
    ),
    "aupr_out": (
        "AUPR-Out",
        "↑",
        "average precision with OOD as the positive class (the paper's AUPR); it depends on the OOD:ID ratio of "
        "the test sets; higher is better.",
    ),
    "aupr_in": (
        "AUPR-In",
        "↑",
        "average precision with in-distribution as the positive class and the score negated; higher is better.",
    ),
    "detection_error": (
        "Det. err",
        "↓",
        "min over thresholds of 0.5 (1 - TPR) + 0.5 FPR, the error of the best threshold when ID and OOD are "
        "equally likely; lower is better.",
    ),
    "flagged": (
        "Flagged",
        "↑",
        "share of the inputs flagged as OOD at the detector's saved threshold (on OOD sets: the detection rate at "
        "the deployed threshold, unlike FPR/AUROC which sweep every threshold).",
    ),
    "rms_calibration_error": ("RMS calib. err", "↓", None),
    "mad_calibration_error": ("MAD calib. err", "↓", None),
    "ece": ("ECE", "↓", None),
    "soft_f1": ("Soft F1", "↑", None),
    "accuracy": ("Accuracy", "↑", None),
}
_FPR_KEY = re.compile(r"^fpr(\d+(?:\.\d+)?)$", re.IGNORECASE)


def metric_label(key: str, direction: bool = True) -> str:
    """The display name of a metric key (`"auroc"` -> `"AUROC ↑"`, `"fpr95"` -> `"FPR95 ↓"`); unknown keys as is.

    Args:
        key (`str`): the metric key (any case).
        direction (`bool`, *optional*, defaults to `True`): append ↑ (higher is better) or ↓.
    """
    entry = METRICS.get(key.lower())
    if entry is not None:
        return f"{entry[0]} {entry[1]}" if direction else entry[0]
    match = _FPR_KEY.match(key)
    if match:
        return f"FPR{match.group(1)} ↓" if direction else f"FPR{match.group(1)}"
    return key


def metric_definition(key: str) -> str | None:
    """A markdown line defining a metric key (`**AUROC**: ...`), or `None` for keys without a definition."""
    entry = METRICS.get(key.lower())
    if entry is not None and entry[2] is not None:
        return f"**{entry[0]}**: {entry[2]}"
    match = _FPR_KEY.match(key)
    if match:
        return (
            f"**FPR{match.group(1)}**: fraction of in-distribution test inputs flagged as OOD at the threshold that "
            f"detects {match.group(1)}% of the OOD inputs; lower is better."
        )
    return None


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table: the first column left-aligned (names), the others right-aligned (numbers)."""
    lines = [
        "| " + " | ".join(str(h) for h in header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def percent(value: float | None, digits: int = 2) -> str:
    """`value` (a fraction) as a percentage with `digits` decimals; `"–"` when missing or NaN."""
    if value is None or value != value:
        return "–"
    return f"{100 * float(value):.{digits}f}"


def report_unavailable(unavailable: Mapping[str, str], logger, is_main: bool = True) -> None:
    """Log each unavailable dataset once, on the main process only, with the first line of its reason."""
    if not is_main:
        return
    for name, reason in unavailable.items():
        first = str(reason).strip().splitlines()[0] if str(reason).strip() else "no reason given"
        short = first if len(first) <= 160 else first[:157] + "..."
        logger.warning(f"OOD set {name!r} is unavailable; the results name it as such ({short})")


def global_batch_note(training_args) -> str | None:
    """Under several processes, what the global batch is and how to keep it equal to a single-process run.

    Every process draws `per_device_train_batch_size` in-distribution examples (and `oe_batch_size` outliers) per
    step, so N processes multiply the batch by N and divide the number of steps by N; detection metrics move with it
    (a 2-process shrunk TREC run went from FPR90 59.1 to 70.2).
    """
    world = int(getattr(training_args, "world_size", 1) or 1)
    if world <= 1:
        return None
    per_device = training_args.per_device_train_batch_size
    accumulation = getattr(training_args, "gradient_accumulation_steps", 1) or 1
    global_batch = per_device * world * accumulation
    single = per_device * accumulation
    hint = (
        f"pass --per_device_train_batch_size {single // world}"
        if single % world == 0
        else "lower the per-device batch"
    )
    return (
        f"{world} processes: the global batch is {world} x {per_device} x {accumulation} (accumulation) = "
        f"{global_batch} in-distribution examples per step (and as many times the outlier batch), {world}x the "
        f"single-process run with these settings, with {world}x fewer steps. To train as one process does, {hint} "
        "(the learning rate stays as it is)."
    )


def budget_warnings(
    baseline, oe, score: str = "msp", train_examples: int | None = None, small_budget: int = 2000
) -> list[str]:
    """Warnings that the numbers of a run should not be trusted: Outlier Exposure made the detector worse (mean FPR
    up or AUROC down against the baseline, both with `score`), cost more than 5 points of accuracy, or the run
    trained on fewer than `small_budget` examples.

    Args:
        baseline, oe (`OODResults`): the two evaluations.
        score (`str`, *optional*, defaults to `"msp"`): the score both were evaluated with.
        train_examples (`int`, *optional*): in-distribution training examples of the run.
        small_budget (`int`, *optional*, defaults to 2000): below this many training examples, say so.

    Returns:
        `list[str]`: the warnings (empty when nothing looks off).
    """
    warnings = []
    fpr = [k for k in oe.metric_names if k.startswith("fpr")][:1]
    worse = []
    for key in [*fpr, "auroc"]:
        try:
            before, after = baseline.get(score, "mean", key), oe.get(score, "mean", key)
        except KeyError:
            continue
        lower_is_better = key.startswith("fpr")
        if (after > before) if lower_is_better else (after < before):
            worse.append(f"{metric_label(key, direction=False)} {percent(before, 1)} -> {percent(after, 1)}")
    budget = f" on {train_examples} training examples" if train_examples is not None else ""
    if worse:
        warnings.append(
            f"Outlier Exposure made the detector worse{budget} (mean over the OOD sets, score {score}: "
            f"{'; '.join(worse)}). The training budget is probably too small for these numbers to mean much: "
            "train longer or on more data (--num_train_epochs, --max_train_samples) before drawing conclusions."
        )
    if baseline.accuracy is not None and oe.accuracy is not None and oe.accuracy < baseline.accuracy - 0.05:
        warnings.append(
            f"Outlier Exposure cost {100 * (baseline.accuracy - oe.accuracy):.1f} points of test accuracy "
            f"({percent(baseline.accuracy, 1)}% -> {percent(oe.accuracy, 1)}%): usually a sign of too short training "
            "or too large a λ (--oe_weight)."
        )
    if train_examples is not None and train_examples < small_budget:
        warnings.append(
            f"Only {train_examples} training examples: a smoke-test sized run; the numbers above do not show what "
            "the method reaches with the full data."
        )
    return warnings


__all__ = [
    "METRICS",
    "budget_warnings",
    "global_batch_note",
    "markdown_table",
    "metric_definition",
    "metric_label",
    "percent",
    "report_unavailable",
]
