"""Outlier Exposure for images: datasets, the paper's synthetic OOD sets, WRN / torchvision detectors, the recipe.

Needs the `vision` extra (`pip install "oe-text[vision]"`: torchvision and Pillow). Importing this package registers
`OEImageConfig` / `OEImageClassifier` with `AutoConfig` and `AutoModelForImageClassification`.
"""

try:
    import torchvision  # noqa: F401
except ImportError as err:  # pragma: no cover
    raise ImportError(
        'oe_text.vision needs torchvision and Pillow: install them with `pip install "oe-text[vision]"`.'
    ) from err

from .configuration import OEImageConfig
from .data import (
    VISION_DATASETS,
    ImageDataset,
    ImageTransform,
    VisionDatasetSpec,
    load_image_folder,
    load_numpy_images,
    load_vision_dataset,
    split_train_validation,
    synthetic_ood_dataset,
)
from .modeling import OEImageClassifier
from .models import WideResNet, build_torchvision_backbone
from .synthetic import (
    SYNTHETIC_OOD,
    blob_images,
    gaussian_noise_images,
    make_synthetic_images,
    rademacher_noise_images,
    uniform_noise_images,
)


__all__ = [
    "SYNTHETIC_OOD",
    "VISION_DATASETS",
    "ImageDataset",
    "ImageTransform",
    "OEImageClassifier",
    "OEImageConfig",
    "VisionDatasetSpec",
    "WideResNet",
    "blob_images",
    "build_torchvision_backbone",
    "gaussian_noise_images",
    "load_image_folder",
    "load_numpy_images",
    "load_vision_dataset",
    "make_synthetic_images",
    "rademacher_noise_images",
    "split_train_validation",
    "synthetic_ood_dataset",
    "uniform_noise_images",
]
