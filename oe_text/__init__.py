"""oe-text: Outlier Exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019) for the Hugging Face stack."""

__version__ = "0.1.0"

from .data import (
    OOD_PRESETS,
    TextNormalization,
    UnavailableDatasetError,
    load_id_dataset,
    load_ood_dataset,
    load_ood_datasets,
    load_outlier_dataset,
)
from .hub import MirrorMissError, load_hub_dataset, resolve_hub_id
from .losses import energy_margin_loss, free_energy, outlier_exposure_loss
from .metrics import threshold_at_tpr
from .outlier_stream import OutlierStream
from .scores import (
    energy_score,
    entropy_score,
    kl_uniform_score,
    max_logit_score,
    msp_score,
)
from .trainer import OETrainer
from .training_args import OETrainingArguments


__all__ = [
    "__version__",
    "MirrorMissError",
    "OOD_PRESETS",
    "TextNormalization",
    "UnavailableDatasetError",
    "load_id_dataset",
    "load_ood_dataset",
    "load_ood_datasets",
    "load_outlier_dataset",
    "OETrainer",
    "OETrainingArguments",
    "OutlierStream",
    "energy_margin_loss",
    "energy_score",
    "entropy_score",
    "free_energy",
    "kl_uniform_score",
    "load_hub_dataset",
    "max_logit_score",
    "msp_score",
    "outlier_exposure_loss",
    "resolve_hub_id",
    "threshold_at_tpr",
]
