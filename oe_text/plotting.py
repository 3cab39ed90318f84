"""Matplotlib figures of OOD scores: ROC curves and ID-vs-OOD score histograms.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global backend state), so they work headless and
in threads. Every function returns the figure and, given `path`, also writes it as a PNG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from .metrics import _as_1d_float, auroc, roc_curve


__all__ = ["plot_roc_curves", "plot_score_histograms"]


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike | None, dpi: int) -> None:
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=dpi)


def plot_roc_curves(
    id_scores,
    ood_scores: Mapping[str, np.ndarray],
    *,
    title: str | None = None,
    tpr_line: float | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 100,
):
    """ROC curves (OOD = positive, higher score = more anomalous), one per OOD set, on one axes.

    Args:
        id_scores (array of shape `(n_id,)`): scores of the in-distribution inputs.
        ood_scores (`Mapping[str, array]`): scores of each OOD set, by name.
        title (`str`, *optional*): axes title.
        tpr_line (`float`, *optional*): draw a dotted horizontal line at this TPR (e.g. 0.9 for FPR90).
        path (`str` or `os.PathLike`, *optional*): where to write the PNG.
        dpi (`int`, *optional*, defaults to 100): resolution of the PNG.

    Returns:
        `matplotlib.figure.Figure`.
    """
    if not ood_scores:
        raise ValueError("`ood_scores` is empty: nothing to plot.")
    fig = _new_figure(5.0, 4.6)
    ax = fig.add_subplot()
    for name, scores in ood_scores.items():
        fpr, tpr, _ = roc_curve(id_scores, scores)
        ax.plot(fpr, tpr, lw=1.6, label=f"{name} (AUROC {100 * auroc(id_scores, scores):.1f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey", label="chance")
    if tpr_line is not None:
        ax.axhline(tpr_line, ls=":", lw=0.8, color="black")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("FPR (ID inputs flagged)")
    ax.set_ylabel("TPR (OOD inputs flagged)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path, dpi)
    return fig


def plot_score_histograms(
    id_scores,
    ood_scores: Mapping[str, np.ndarray],
    *,
    score_name: str = "score",
    title: str | None = None,
    bins: int = 40,
    threshold: float | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 100,
):
    """Density histograms of ID vs OOD scores, one panel per OOD set (a grid of at most 3 columns); with a
    `threshold`, a vertical line marks it and each panel says which share of ID and OOD inputs it flags.

    Args:
        id_scores, ood_scores, path, dpi: as `plot_roc_curves`.
        score_name (`str`, *optional*, defaults to `"score"`): x-axis label.
        title (`str`, *optional*): figure title.
        bins (`int`, *optional*, defaults to 40): bins per panel, shared by ID and OOD.
        threshold (`float`, *optional*): a detector's threshold (`score > threshold` is flagged).

    Returns:
        `matplotlib.figure.Figure`.
    """
    if not ood_scores:
        raise ValueError("`ood_scores` is empty: nothing to plot.")
    ids = _as_1d_float(id_scores, "id_scores")
    n = len(ood_scores)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = _new_figure(3.6 * cols, 2.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (name, scores) in zip(axes.flat, ood_scores.items()):
        ood = _as_1d_float(scores, f"ood_scores[{name!r}]")
        lo, hi = min(ids.min(), ood.min()), max(ids.max(), ood.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
        ax.hist(ids, bins=edges, density=True, alpha=0.55, label=f"ID (n={ids.size})")
        ax.hist(ood, bins=edges, density=True, alpha=0.55, label=f"{name} (n={ood.size})")
        title_text = f"{name}: AUROC {100 * auroc(ids, ood):.1f}"
        if threshold is not None:
            ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
            title_text += (
                f"; flags ID {100 * np.mean(ids > threshold):.0f}%, OOD {100 * np.mean(ood > threshold):.0f}%"
            )
        ax.set_title(title_text, fontsize=9)
        ax.set_xlabel(f"{score_name} (higher = more anomalous)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path, dpi)
    return fig
