"""oe-text: Outlier Exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019) for the Hugging Face stack.

Names are imported on first use (as in transformers), so `import oe_text` and the `oe-text` command start fast;
`import oe_text` still registers the detectors with transformers' Auto classes (see `_auto_registration`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import _auto_registration


__version__ = "0.1.0"

# Public name -> submodule that defines it.
_IMPORT_STRUCTURE: dict[str, list[str]] = {
    "configuration_oe": ["OEConfig"],
    "data": [
        "OOD_PRESETS",
        "TextNormalization",
        "UnavailableDatasetError",
        "load_id_dataset",
        "load_ood_dataset",
        "load_ood_datasets",
        "load_outlier_dataset",
    ],
    "detection": ["OODDetectorMixin", "ThresholdNotCalibratedError"],
    "evaluation": [
        "OODResults",
        "OODSubsetPlan",
        "compare_results",
        "compare_results_to_dict",
        "evaluate_ood",
        "evaluate_ood_from_logits",
        "evaluate_ood_from_scores",
        "plan_ood_subsets",
    ],
    "feature_scores": ["KNNScorer", "MahalanobisScorer"],
    "hf_metrics": ["load_ood_metric"],
    "hub": ["MirrorMissError", "load_hub_dataset", "resolve_hub_id"],
    "losses": ["energy_margin_loss", "free_energy", "outlier_exposure_loss"],
    "metrics": [
        "aupr_in",
        "aupr_out",
        "auroc",
        "calibration_metrics",
        "detection_error",
        "fpr_at_tpr",
        "ood_detection_metrics",
        "ood_detection_metrics_from_labels",
        "threshold_at_tpr",
    ],
    "modelcard": ["build_model_card"],
    "modeling_oe": ["OEClassifier"],
    "outlier_stream": ["OutlierStream"],
    "recipe": ["RecipeArguments", "run_recipe"],
    "scores": ["energy_score", "entropy_score", "kl_uniform_score", "max_logit_score", "msp_score"],
    "tokenization": ["train_sentencepiece_tokenizer"],
    "trainer": ["OETrainer"],
    "training_args": ["OETrainingArguments"],
}
_NAME_TO_MODULE = {name: module for module, names in _IMPORT_STRUCTURE.items() for name in names}

__all__ = [
    "__version__",
    "KNNScorer",
    "MahalanobisScorer",
    "MirrorMissError",
    "OEClassifier",
    "OEConfig",
    "OETrainer",
    "OETrainingArguments",
    "OODDetectorMixin",
    "OODResults",
    "OODSubsetPlan",
    "OOD_PRESETS",
    "OutlierStream",
    "RecipeArguments",
    "TextNormalization",
    "ThresholdNotCalibratedError",
    "UnavailableDatasetError",
    "aupr_in",
    "aupr_out",
    "auroc",
    "build_model_card",
    "calibration_metrics",
    "compare_results",
    "compare_results_to_dict",
    "detection_error",
    "energy_margin_loss",
    "energy_score",
    "entropy_score",
    "evaluate_ood",
    "evaluate_ood_from_logits",
    "evaluate_ood_from_scores",
    "fpr_at_tpr",
    "free_energy",
    "kl_uniform_score",
    "load_hub_dataset",
    "load_id_dataset",
    "load_ood_dataset",
    "load_ood_datasets",
    "load_ood_metric",
    "load_outlier_dataset",
    "max_logit_score",
    "msp_score",
    "ood_detection_metrics",
    "ood_detection_metrics_from_labels",
    "outlier_exposure_loss",
    "plan_ood_subsets",
    "resolve_hub_id",
    "run_recipe",
    "threshold_at_tpr",
    "train_sentencepiece_tokenizer",
    "vision",
]


def __getattr__(name: str):
    if name == "vision":
        # The image path needs the `vision` extra (torchvision); without it `oe_text.vision` is None.
        try:
            value = importlib.import_module(".vision", __name__)
        except ImportError:
            value = None
    elif name in _NAME_TO_MODULE:
        value = getattr(importlib.import_module(f".{_NAME_TO_MODULE[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from . import vision
    from .configuration_oe import OEConfig
    from .data import (
        OOD_PRESETS,
        TextNormalization,
        UnavailableDatasetError,
        load_id_dataset,
        load_ood_dataset,
        load_ood_datasets,
        load_outlier_dataset,
    )
    from .detection import OODDetectorMixin, ThresholdNotCalibratedError
    from .evaluation import (
        OODResults,
        OODSubsetPlan,
        compare_results,
        compare_results_to_dict,
        evaluate_ood,
        evaluate_ood_from_logits,
        evaluate_ood_from_scores,
        plan_ood_subsets,
    )
    from .feature_scores import KNNScorer, MahalanobisScorer
    from .hf_metrics import load_ood_metric
    from .hub import MirrorMissError, load_hub_dataset, resolve_hub_id
    from .losses import energy_margin_loss, free_energy, outlier_exposure_loss
    from .metrics import (
        aupr_in,
        aupr_out,
        auroc,
        calibration_metrics,
        detection_error,
        fpr_at_tpr,
        ood_detection_metrics,
        ood_detection_metrics_from_labels,
        threshold_at_tpr,
    )
    from .modelcard import build_model_card
    from .modeling_oe import OEClassifier
    from .outlier_stream import OutlierStream
    from .recipe import RecipeArguments, run_recipe
    from .scores import energy_score, entropy_score, kl_uniform_score, max_logit_score, msp_score
    from .tokenization import train_sentencepiece_tokenizer
    from .trainer import OETrainer
    from .training_args import OETrainingArguments

_auto_registration.install()
