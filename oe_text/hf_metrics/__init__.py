"""`evaluate`-library metric modules shipped inside oe-text; they load offline with `evaluate.load(<folder>)`."""

from __future__ import annotations

from pathlib import Path


__all__ = ["load_ood_metric", "ood_detection_metric_path"]


def ood_detection_metric_path() -> str:
    """Absolute path of the `ood_detection` metric folder, for `evaluate.load(ood_detection_metric_path())`."""
    return str(Path(__file__).resolve().parent / "ood_detection")


def load_ood_metric(**kwargs):
    """`evaluate.load` of the shipped OOD detection metric (no Hub access needed).

    Args:
        **kwargs: passed on to `evaluate.load` (e.g. `experiment_id`, `keep_in_memory`).

    Returns:
        `evaluate.EvaluationModule`: `compute(predictions=scores, references=is_ood)` returns AUROC, AUPR-Out,
        AUPR-In, FPR at 90% and 95% TPR and the detection error (OOD = positive class, higher score = more anomalous).
    """
    import evaluate

    return evaluate.load(ood_detection_metric_path(), **kwargs)
