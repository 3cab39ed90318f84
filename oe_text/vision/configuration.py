"""`OEImageConfig`: the configuration of an `OEImageClassifier` image detector, with its OOD decision rule."""

# No `from __future__ import annotations`: `@strict` validates fields against their real (non-string) annotations.
from typing import Any

from huggingface_hub.dataclasses import strict

from ..detection import OODDetectorConfig
from .models import check_wrn_args


ARCHITECTURES = ("wrn", "torchvision")


@strict
class OEImageConfig(OODDetectorConfig):
    r"""Configuration of an [`OEImageClassifier`]: an image classifier that also flags out-of-distribution inputs.

    The network is rebuilt from these fields alone (no Hub access, no `trust_remote_code`), and the preprocessing
    `detect` applies to raw images is stored with it.

    Args:
        architecture (`str`, *optional*, defaults to `"wrn"`):
            `"wrn"` (the paper's Wide Residual Network, `oe_text.vision.models.WideResNet`) or `"torchvision"` (any
            torchvision classification model, named by `torchvision_model`).
        depth (`int`, *optional*, defaults to 40), widen_factor (`int`, *optional*, defaults to 2),
        dropout (`float`, *optional*, defaults to 0.3):
            WRN-depth-k and its dropout (WRN-40-2 / 0.3 for CIFAR, WRN-16-4 / 0.4 for SVHN in the paper).
        torchvision_model (`str`, *optional*):
            A name of `torchvision.models.list_models(torchvision.models)`, e.g. `"resnet18"`.
        torchvision_kwargs (`dict`, *optional*):
            Keyword arguments of the torchvision builder (e.g. `{"dropout": 0.2}`), JSON-serialisable.
        num_channels (`int`, *optional*, defaults to 3):
            Channels the network takes: 3 (RGB) or 1 (grayscale). torchvision models always take 3, so 1-channel
            inputs are repeated to 3 before them.
        image_size (`int`, *optional*, defaults to 32):
            Height = width of the network's inputs; `detect` resizes (shorter side) and centre-crops other sizes.
        image_mean (`list[float]`, *optional*), image_std (`list[float]`, *optional*):
            Per-channel normalisation `(x - mean) / std` of `[0, 1]` pixels; default 0 and 1 (none).
        base_model_name (`str`, *optional*):
            Where the initial weights came from, for the model card (e.g. `"torchvision/resnet18:IMAGENET1K_V1"`).
        ood_score, ood_temperature, ood_threshold, threshold_tpr, threshold_calibration, ood_fitted_scores,
        ood_score_selection, oe:
            The OOD decision rule and provenance shared by every detector: see `oe_text.detection.OODDetectorConfig`.
        kwargs: standard `PretrainedConfig` arguments (`num_labels`, `id2label`, `label2id`, ...).
    """

    model_type = "oe-image-classifier"

    architecture: str = "wrn"
    depth: int = 40
    widen_factor: int = 2
    dropout: float | int = 0.3
    torchvision_model: str | None = None
    torchvision_kwargs: dict[str, Any] | None = None
    num_channels: int = 3
    image_size: int = 32
    image_mean: list[float | int] | tuple[float | int, ...] | None = None
    image_std: list[float | int] | tuple[float | int, ...] | None = None
    base_model_name: str | None = None

    def __post_init__(self, **kwargs):
        if self.image_mean is None:
            self.image_mean = [0.0] * self.num_channels
        if self.image_std is None:
            self.image_std = [1.0] * self.num_channels
        self.image_mean = [float(v) for v in self.image_mean]
        self.image_std = [float(v) for v in self.image_std]
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Part of `@strict` validation: the network fields are consistent."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"`architecture` must be one of {ARCHITECTURES}, got {self.architecture!r}.")
        if self.architecture == "wrn":
            check_wrn_args(self.depth, self.widen_factor, self.dropout)
        elif not self.torchvision_model:
            raise ValueError("`architecture='torchvision'` needs `torchvision_model` (e.g. 'resnet18').")

    def validate_preprocessing(self):
        """Part of `@strict` validation: channels, size and normalisation."""
        if self.num_channels not in (1, 3):
            raise ValueError(f"`num_channels` must be 1 or 3, got {self.num_channels!r}.")
        if self.image_size < 1:
            raise ValueError(f"`image_size` must be >= 1, got {self.image_size!r}.")
        for name in ("image_mean", "image_std"):
            values = getattr(self, name)
            if len(values) != self.num_channels:
                raise ValueError(f"`{name}` needs {self.num_channels} value(s) (one per channel), got {list(values)}.")
        if any(v <= 0 for v in self.image_std):
            raise ValueError(f"`image_std` values must be > 0, got {list(self.image_std)}.")


__all__ = ["OEImageConfig"]
