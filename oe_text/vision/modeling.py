"""`OEImageClassifier`: a Hub-native image classifier that also flags out-of-distribution images.

The image counterpart of `oe_text.OEClassifier`, with the same detection API (`OODDetectorMixin`: OOD scores,
`calibrate_threshold`, `detections_from_logits`) and the decision rule saved in the config:

* backbones: the paper's Wide Residual Networks (`OEImageClassifier.from_wrn(depth=40, widen_factor=2, ...)`) or any
  torchvision classification model (`OEImageClassifier.from_torchvision("resnet18", ...)`), with a linear head;
* `forward(pixel_values, labels=None) -> ImageClassifierOutput`, so `OETrainer` / `Trainer` train it directly;
* `detect(images)` takes PIL images, arrays or a tensor batch and applies the stored preprocessing (channels, resize,
  normalisation);
* `save_pretrained` writes safetensors, `config.json` (architecture, preprocessing, threshold) and a model card;
  `from_pretrained`, `AutoModelForImageClassification.from_pretrained` and `push_to_hub` work as for any model.

Importing this module registers `OEImageConfig` with `AutoConfig` (model type `"oe-image-classifier"`) and
`OEImageClassifier` with `AutoModelForImageClassification`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, PreTrainedModel
from transformers import initialization as hf_init
from transformers.modeling_outputs import ImageClassifierOutput

from ..detection import OODDetectorMixin, labels_kwargs, parse_feature_key
from ..detector_hub import DetectorHubMixin
from ..inference import evaluation_mode
from .configuration import OEImageConfig
from .data import IMAGENET_MEAN, IMAGENET_STD, ImageTransform, _is_pil, get_dataset_spec
from .modelcard import build_image_model_card
from .models import WideResNet, build_torchvision_backbone, init_wrn_weights


__all__ = ["OEImageClassifier", "OEImageConfig"]


class OEImageClassifier(DetectorHubMixin, OODDetectorMixin, PreTrainedModel):
    """Image classifier + OOD detector (Outlier Exposure, Hendrycks et al. 2019); WRN or torchvision backbone.

    Build one with `from_wrn`, `from_torchvision` or `for_dataset`, train it with `OETrainer` (rows
    `{"pixel_values", "labels"}`, see `oe_text.vision.data`), calibrate its threshold with `calibrate_threshold`,
    save or push it, and call `detect(images)`.
    """

    config_class = OEImageConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    # The loss is a plain per-batch mean: Trainer must not pass `num_items_in_batch`.
    accepts_loss_kwargs = False

    def __init__(self, config: OEImageConfig, backbone: nn.Module | None = None, num_features: int | None = None):
        super().__init__(config)
        if config.num_labels is None or config.num_labels < 2:
            raise ValueError(f"OEImageClassifier needs num_labels >= 2 (softmax OOD scores), got {config.num_labels}.")
        if config.architecture == "wrn":
            # The WRN's own linear layer is the head: the paper's network, parameter for parameter.
            self.backbone = WideResNet(
                depth=config.depth,
                widen_factor=config.widen_factor,
                num_classes=config.num_labels,
                dropout=float(config.dropout),
                in_channels=config.num_channels,
            )
            self.classifier = None
        else:
            if backbone is None:
                backbone, num_features = build_torchvision_backbone(
                    config.torchvision_model, config.torchvision_kwargs
                )
            elif num_features is None:
                raise ValueError("Pass `num_features` (the backbone's output width) with a custom `backbone`.")
            self.backbone = backbone
            self.classifier = nn.Linear(num_features, config.num_labels)
        self._init_ood_state()
        self.post_init()

    # ------------------------------------------------------------------------------------------------ weights
    def _init_weights(self, module: nn.Module) -> None:
        """WRN: the reference initialisation. torchvision: only the new head (the backbone keeps its own init or
        pretrained weights). Guarded initialisers skip parameters loaded by `from_pretrained`."""
        if self.config.architecture == "wrn":
            init_wrn_weights(module)
        elif module is self.classifier:
            bound = 1.0 / math.sqrt(module.in_features)
            hf_init.uniform_(module.weight, -bound, bound)
            hf_init.uniform_(module.bias, -bound, bound)

    # ------------------------------------------------------------------------------------------------ factories
    @classmethod
    def from_wrn(
        cls,
        depth: int = 40,
        widen_factor: int = 2,
        dropout: float = 0.3,
        num_labels: int | None = None,
        id2label=None,
        num_channels: int = 3,
        image_size: int = 32,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        **config_kwargs,
    ) -> OEImageClassifier:
        """A randomly initialised WRN-`depth`-`widen_factor` detector (the paper's CIFAR model is WRN-40-2, dropout
        0.3; SVHN: WRN-16-4, dropout 0.4).

        Args:
            depth (`int`, *optional*, defaults to 40), widen_factor (`int`, *optional*, defaults to 2),
            dropout (`float`, *optional*, defaults to 0.3): the network.
            num_labels (`int`, *optional*), id2label (list of `str` or `dict`, *optional*): the classes.
            num_channels (`int`, *optional*, defaults to 3), image_size (`int`, *optional*, defaults to 32): inputs.
            image_mean, image_std (sequence of `float`, *optional*): normalisation of `[0, 1]` pixels.
            config_kwargs: other `OEImageConfig` fields (e.g. `ood_score`).

        Returns:
            `OEImageClassifier`.
        """
        config = OEImageConfig(
            architecture="wrn",
            depth=depth,
            widen_factor=widen_factor,
            dropout=dropout,
            num_channels=num_channels,
            image_size=image_size,
            image_mean=list(image_mean) if image_mean is not None else None,
            image_std=list(image_std) if image_std is not None else None,
            **labels_kwargs(num_labels, id2label),
            **config_kwargs,
        )
        return cls(config)

    @classmethod
    def from_torchvision(
        cls,
        name: str,
        num_labels: int | None = None,
        id2label=None,
        weights: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        num_channels: int = 3,
        image_size: int = 224,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        **config_kwargs,
    ) -> OEImageClassifier:
        """A detector on any torchvision classification model, its final linear layer replaced by a new head.

        Args:
            name (`str`): e.g. `"resnet18"`, `"efficientnet_b0"`, `"vit_b_16"`.
            num_labels (`int`, *optional*), id2label (list of `str` or `dict`, *optional*): the classes.
            weights (`str`, *optional*): torchvision weights to start from (`"DEFAULT"`, `"IMAGENET1K_V1"`, ...;
                downloaded by torchvision); `None` for random initialisation.
            model_kwargs (`dict`, *optional*): keyword arguments of the builder (JSON-serialisable; saved in the
                config so that the architecture is rebuilt on load).
            num_channels (`int`, *optional*, defaults to 3): 1 for grayscale inputs (repeated to 3 channels).
            image_size (`int`, *optional*, defaults to 224): input height = width.
            image_mean, image_std (sequence of `float`, *optional*): normalisation; default: ImageNet's with
                `weights`, else none.
            config_kwargs: other `OEImageConfig` fields.

        Returns:
            `OEImageClassifier`.
        """
        backbone, num_features = build_torchvision_backbone(name, model_kwargs, weights=weights)
        if image_mean is None and weights is not None:
            image_mean = IMAGENET_MEAN if num_channels == 3 else (float(np.mean(IMAGENET_MEAN)),)
            image_std = IMAGENET_STD if num_channels == 3 else (float(np.mean(IMAGENET_STD)),)
        config_kwargs.setdefault("base_model_name", f"torchvision/{name}:{weights}" if weights else None)
        config = OEImageConfig(
            architecture="torchvision",
            torchvision_model=name,
            torchvision_kwargs=dict(model_kwargs) if model_kwargs else None,
            num_channels=num_channels,
            image_size=image_size,
            image_mean=list(image_mean) if image_mean is not None else None,
            image_std=list(image_std) if image_std is not None else None,
            **labels_kwargs(num_labels, id2label),
            **config_kwargs,
        )
        model = cls(config, backbone=backbone, num_features=num_features)
        return model

    @classmethod
    def for_dataset(
        cls, dataset: str, architecture: str = "wrn", classes: Sequence[str] | None = None, **kwargs
    ) -> OEImageClassifier:
        """A detector whose channels, size and normalisation are those of a named dataset (`VISION_DATASETS`).

        Args:
            dataset (`str`): e.g. `"cifar10"`, `"fashion_mnist"`.
            architecture (`str`, *optional*, defaults to `"wrn"`): `"wrn"` or a torchvision model name.
            classes (list of `str`, *optional*): class names (e.g. `ImageDataset.classes`); else `num_labels=` must
                be given.
            kwargs: passed to `from_wrn` / `from_torchvision` (e.g. `depth`, `widen_factor`, `dropout`, `weights`).
                The dataset's normalisation is used, except with pretrained torchvision `weights` (ImageNet's).

        Returns:
            `OEImageClassifier`.
        """
        spec = get_dataset_spec(dataset)
        defaults = {"num_channels": spec.num_channels, "image_size": spec.image_size}
        if architecture == "wrn" or kwargs.get("weights") is None:
            # Pretrained torchvision weights keep the normalisation they were trained with (ImageNet's).
            defaults.update(image_mean=spec.mean, image_std=spec.std)
        if classes is not None:
            defaults["id2label"] = list(classes)
        defaults.update(kwargs)
        if architecture == "wrn":
            return cls.from_wrn(**defaults)
        return cls.from_torchvision(architecture, **defaults)

    # ------------------------------------------------------------------------------------------------ forward
    def extract_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Penultimate features (the input of the linear head), shape `(batch, num_features)`."""
        if self.config.architecture == "wrn":
            return self.backbone.forward_features(pixel_values)
        if pixel_values.shape[1] == 1:
            # torchvision models are built for RGB.
            pixel_values = pixel_values.expand(-1, 3, -1, -1)
        return self.backbone(pixel_values)

    def classify_features(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from penultimate features."""
        return self.backbone.fc(features) if self.classifier is None else self.classifier(features)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        """Classify normalised images.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, height, width)`): normalised images
                (see `preprocess`).
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*): class ids; the loss is their mean
                cross-entropy.
            output_hidden_states (`bool`, *optional*): also return the penultimate features as `hidden_states[0]`.
            return_dict (`bool`, *optional*): return an `ImageClassifierOutput` (default) or a tuple.

        Returns:
            `ImageClassifierOutput` with `loss` (when `labels` are given), `logits` `(batch, num_labels)` and
            optionally `hidden_states`.
        """
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"`pixel_values` must have shape (batch, {self.config.num_channels}, height, width), got "
                f"{tuple(pixel_values.shape)}; use `model.preprocess(images)` for raw images."
            )
        features = self.extract_features(pixel_values)
        logits = self.classify_features(features)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        hidden_states = (features,) if output_hidden_states else None
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            out = tuple(v for v in (logits, hidden_states) if v is not None)
            return ((loss,) + out) if loss is not None else out
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)

    # ------------------------------------------------------------------------------------------------ inference
    @property
    def image_transform(self) -> ImageTransform:
        """The stored preprocessing (no augmentation): channels, resize + centre crop, normalisation."""
        c = self.config
        return ImageTransform(c.image_size, c.num_channels, c.image_mean, c.image_std, train=False)

    def preprocess(self, images, normalized: bool = False) -> torch.Tensor:
        """Raw images -> the normalised `pixel_values` batch the network takes.

        Args:
            images: a PIL image, a list of PIL images / `(H, W[, C])` arrays / `([C,] H, W)` tensors, or a tensor
                batch `(N, C, H, W)`. Tensors and float arrays are taken to be in `[0, 1]`, uint8 in `[0, 255]`.
            normalized (`bool`, *optional*, defaults to `False`): the input is a tensor batch that is already
                normalised and sized; it is only checked and returned.

        Returns:
            `torch.FloatTensor` of shape `(N, num_channels, image_size, image_size)` on the CPU.
        """
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            if normalized:
                expected = (self.config.num_channels, self.config.image_size, self.config.image_size)
                if tuple(images.shape[1:]) != expected:
                    raise ValueError(
                        f"normalised `images` must have shape (N, {expected}), got {tuple(images.shape)}."
                    )
                return images.detach().float().cpu()
            images = list(images.detach().cpu())
        elif normalized:
            raise ValueError("`normalized=True` needs a tensor batch of shape (N, C, H, W).")
        elif _is_pil(images) or (isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim in (2, 3)):
            images = [images]
        elif isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        if not isinstance(images, Sequence) or isinstance(images, str):
            raise TypeError(
                "`images` must be a PIL image, a list of images, or a tensor / array batch, got "
                f"{type(images).__name__}."
            )
        if len(images) == 0:
            raise ValueError("`images` is empty.")
        transform = self.image_transform
        return torch.stack([transform(image) for image in images])

    @torch.no_grad()
    def predict_outputs(
        self, images, feature_keys=(), batch_size: int = 256, normalized: bool = False
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits and penultimate features (`"fine-tuned:-1"`, the only image features) of raw images, one forward
        pass per batch, under `no_grad`, in eval mode (the model's mode is restored).

        Args:
            images: as `preprocess`.
            feature_keys (sequence of `str`, *optional*): `["fine-tuned:-1"]` or nothing.
            batch_size (`int`, *optional*, defaults to 256): images per forward pass.
            normalized (`bool`, *optional*, defaults to `False`): see `preprocess`.

        Returns:
            `(logits, features)`: float32 arrays `(N, num_labels)` and `{key: (N, num_features)}`.
        """
        for key in feature_keys:
            if parse_feature_key(key) != ("fine-tuned", -1):
                raise ValueError(
                    f"Image detectors provide only the features their head reads ('fine-tuned:-1'), not {key!r}."
                )
        pixel_values = self.preprocess(images, normalized=normalized)
        logits, feats = [], []
        with evaluation_mode(self):  # thread-safe: calls on one model are serialised, its mode restored
            for batch in pixel_values.split(batch_size):
                features = self.extract_features(batch.to(self.device, dtype=self.dtype))
                logits.append(self.classify_features(features).float().cpu())
                feats.append(features.float().cpu())
        features = torch.cat(feats).numpy()
        return torch.cat(logits).numpy(), {key: features for key in feature_keys}

    def predict_logits(self, images, batch_size: int = 256, normalized: bool = False) -> torch.Tensor:
        """Logits of raw images (`predict_outputs` without features), as a `torch.FloatTensor` `(N, num_labels)`."""
        return torch.from_numpy(self.predict_outputs(images, batch_size=batch_size, normalized=normalized)[0])

    def detect(
        self,
        images,
        batch_size: int = 256,
        threshold: float | None = None,
        require_threshold: bool = False,
        normalized: bool = False,
    ) -> list[dict[str, Any]]:
        """Classify images and flag the out-of-distribution ones.

        Args:
            images: a PIL image, a list of images (PIL / arrays / tensors) or a tensor batch `(N, C, H, W)` in
                `[0, 1]`; they get the stored preprocessing (channel conversion, resize + centre crop, normalisation).
            batch_size (`int`, *optional*, defaults to 256): images per forward pass.
            threshold (`float`, *optional*): overrides the calibrated `config.ood_threshold`.
            require_threshold (`bool`, *optional*, defaults to `False`): raise `ThresholdNotCalibratedError` instead
                of returning `is_ood=None` when no threshold is available.
            normalized (`bool`, *optional*, defaults to `False`): `images` is an already normalised tensor batch.

        Returns:
            `list[dict]`, one per image, with `label` (predicted class name), `score` (its softmax probability),
            `ood_score` (higher = more anomalous) and `is_ood` (`bool`; `None` when no threshold is calibrated and
            none is passed).
        """
        return self._detect(
            images,
            threshold=threshold,
            require_threshold=require_threshold,
            batch_size=batch_size,
            normalized=normalized,
        )

    def _fit_data(self, data, labels=None):
        """Images (and labels) of `fit_ood_score` data: images as `preprocess` takes them, or a dataset of rows with
        `pixel_values` (normalised tensors) and `labels`/`label`, as `oe_text.vision.data` builds them."""
        columns = getattr(data, "column_names", None)
        if columns is not None and "pixel_values" in columns:
            label_column = next((c for c in ("labels", "label") if c in columns), None)
            if labels is None and label_column is not None:
                labels = data[label_column]
            data = torch.stack([torch.as_tensor(x) for x in data["pixel_values"]])
        return data, None if labels is None else np.asarray(labels)

    # ------------------------------------------------------------------------------------------------ save / load
    def build_model_card(self, **card_kwargs):
        """The detector's model card (`oe_text.vision.modelcard.build_image_model_card`)."""
        return build_image_model_card(self.config, **card_kwargs)


AutoConfig.register(OEImageConfig.model_type, OEImageConfig, exist_ok=True)
AutoModelForImageClassification.register(OEImageConfig, OEImageClassifier, exist_ok=True)
