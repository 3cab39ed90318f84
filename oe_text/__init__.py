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
    "configuration_lm": ["OELanguageModelConfig"],
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
    "detection": [
        "OODDetectorConfig",
        "OODDetectorMixin",
        "OODScoreState",
        "ThresholdNotCalibratedError",
        "describe_ood_score",
    ],
    "evaluation": [
        "OODProtocol",
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
    "lm_scores": [
        "LM_SCORES",
        "bits_per_character",
        "compute_lm_score",
        "kl_uniform_lm_score",
        "max_prob_lm_score",
        "nll_score",
        "register_lm_score",
    ],
    "losses": [
        "causal_lm_labels",
        "energy_margin_loss",
        "free_energy",
        "language_modeling_loss",
        "lm_margin_ranking_loss",
        "outlier_exposure_loss",
        "sequence_log_likelihood",
        "token_outlier_exposure_loss",
    ],
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
    "modeling_lm": ["OELanguageModelDetector", "score_texts_with_lm"],
    "modeling_oe": ["OEClassifier"],
    "outlier_stream": ["OutlierStream"],
    "recipe": ["RecipeArguments", "run_recipe"],
    "recipe_flow": ["OERecipe", "RecipeResult"],
    "score_combination": ["combine_scores", "fit_score_combination"],
    "score_selection": ["DEFAULT_SCORE_CANDIDATES", "fit_candidate_scores", "select_ood_score"],
    "scoring": ["CorpusReader", "score_corpus"],
    "scores": ["energy_score", "entropy_score", "kl_uniform_score", "max_logit_score", "msp_score"],
    "tokenization": ["train_sentencepiece_tokenizer"],
    "trainer": ["OETrainer"],
    "training_args": ["OETrainingArguments"],
}
_NAME_TO_MODULE = {name: module for module, names in _IMPORT_STRUCTURE.items() for name in names}

__all__ = [
    "__version__",
    "CorpusReader",
    "DEFAULT_SCORE_CANDIDATES",
    "KNNScorer",
    "LM_SCORES",
    "MahalanobisScorer",
    "MirrorMissError",
    "OEClassifier",
    "OEConfig",
    "OELanguageModelConfig",
    "OERecipe",
    "OELanguageModelDetector",
    "OETrainer",
    "OETrainingArguments",
    "OODDetectorConfig",
    "OODDetectorMixin",
    "OODProtocol",
    "OODResults",
    "OODScoreState",
    "OODSubsetPlan",
    "OOD_PRESETS",
    "OutlierStream",
    "RecipeArguments",
    "RecipeResult",
    "TextNormalization",
    "ThresholdNotCalibratedError",
    "UnavailableDatasetError",
    "aupr_in",
    "aupr_out",
    "auroc",
    "bits_per_character",
    "build_model_card",
    "calibration_metrics",
    "causal_lm_labels",
    "combine_scores",
    "compare_results",
    "compare_results_to_dict",
    "compute_lm_score",
    "describe_ood_score",
    "detection_error",
    "energy_margin_loss",
    "energy_score",
    "entropy_score",
    "evaluate_ood",
    "evaluate_ood_from_logits",
    "evaluate_ood_from_scores",
    "fit_candidate_scores",
    "fit_score_combination",
    "fpr_at_tpr",
    "free_energy",
    "kl_uniform_lm_score",
    "kl_uniform_score",
    "language_modeling_loss",
    "lm_margin_ranking_loss",
    "load_hub_dataset",
    "load_id_dataset",
    "load_ood_dataset",
    "load_ood_datasets",
    "load_ood_metric",
    "load_outlier_dataset",
    "max_logit_score",
    "max_prob_lm_score",
    "msp_score",
    "nll_score",
    "ood_detection_metrics",
    "ood_detection_metrics_from_labels",
    "outlier_exposure_loss",
    "plan_ood_subsets",
    "register_lm_score",
    "resolve_hub_id",
    "run_recipe",
    "score_corpus",
    "score_texts_with_lm",
    "select_ood_score",
    "sequence_log_likelihood",
    "threshold_at_tpr",
    "token_outlier_exposure_loss",
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
    from .configuration_lm import OELanguageModelConfig
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
    from .detection import (
        OODDetectorConfig,
        OODDetectorMixin,
        OODScoreState,
        ThresholdNotCalibratedError,
        describe_ood_score,
    )
    from .evaluation import (
        OODProtocol,
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
    from .lm_scores import (
        LM_SCORES,
        bits_per_character,
        compute_lm_score,
        kl_uniform_lm_score,
        max_prob_lm_score,
        nll_score,
        register_lm_score,
    )
    from .losses import (
        causal_lm_labels,
        energy_margin_loss,
        free_energy,
        language_modeling_loss,
        lm_margin_ranking_loss,
        outlier_exposure_loss,
        sequence_log_likelihood,
        token_outlier_exposure_loss,
    )
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
    from .modeling_lm import OELanguageModelDetector, score_texts_with_lm
    from .modeling_oe import OEClassifier
    from .outlier_stream import OutlierStream
    from .recipe import RecipeArguments, run_recipe
    from .recipe_flow import OERecipe, RecipeResult
    from .score_combination import combine_scores, fit_score_combination
    from .score_selection import DEFAULT_SCORE_CANDIDATES, fit_candidate_scores, select_ood_score
    from .scores import energy_score, entropy_score, kl_uniform_score, max_logit_score, msp_score
    from .scoring import CorpusReader, score_corpus
    from .tokenization import train_sentencepiece_tokenizer
    from .trainer import OETrainer
    from .training_args import OETrainingArguments

_auto_registration.install()
