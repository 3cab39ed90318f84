"""oe-text: Outlier Exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019) for the Hugging Face stack."""

__version__ = "0.1.0"

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
from .scores import (
    energy_score,
    entropy_score,
    kl_uniform_score,
    max_logit_score,
    msp_score,
)
from .tokenization import train_sentencepiece_tokenizer
from .trainer import OETrainer
from .training_args import OETrainingArguments


try:  # the image path needs the `vision` extra (torchvision); `import oe_text` registers its Auto classes
    from . import vision
except ImportError:  # pragma: no cover
    vision = None


__all__ = [
    "__version__",
    "KNNScorer",
    "LM_SCORES",
    "MahalanobisScorer",
    "MirrorMissError",
    "OEClassifier",
    "OEConfig",
    "OELanguageModelConfig",
    "OELanguageModelDetector",
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
    "bits_per_character",
    "build_model_card",
    "calibration_metrics",
    "causal_lm_labels",
    "compute_lm_score",
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
    "kl_uniform_lm_score",
    "language_modeling_loss",
    "lm_margin_ranking_loss",
    "free_energy",
    "kl_uniform_score",
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
    "score_texts_with_lm",
    "sequence_log_likelihood",
    "threshold_at_tpr",
    "token_outlier_exposure_loss",
    "train_sentencepiece_tokenizer",
    "vision",
]
