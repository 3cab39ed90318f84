"""`OEConfig`: the configuration of an `OEClassifier` detector, including its OOD decision rule and provenance."""

# No `from __future__ import annotations`: `@strict` validates fields against their real (non-string) annotations.
from typing import Any

from huggingface_hub.dataclasses import strict

from .detection import OODDetectorConfig
from .modeling_rnn import RNN_KINDS, _check_rnn_config


BACKBONE_TYPES = ("transformer", *RNN_KINDS)
POOLINGS = ("mean", "cls")


@strict
class OEConfig(OODDetectorConfig):
    r"""Configuration of an [`OEClassifier`]: a text classifier that also flags out-of-distribution inputs.

    Args:
        backbone_type (`str`, *optional*, defaults to `"transformer"`):
            `"transformer"` (any Hugging Face encoder), or `"gru"` / `"lstm"` (the paper's recurrent baselines).
        backbone_config (`dict`, *optional*):
            For transformers, the backbone's `config.to_dict()` (it must contain `model_type`): the backbone is rebuilt
            with `AutoConfig.for_model` + `AutoModel.from_config`, so loading never contacts the Hub for it. For
            recurrent backbones: `vocab_size`, `embedding_dim` (50), `hidden_size` (128), `num_layers` (2),
            `dropout` (0.0) and `pad_token_id`.
        pooling (`str`, *optional*, defaults to `"mean"`):
            Transformers only: `"mean"` (attention-masked mean of the last hidden states, as sentence-transformers
            models such as all-MiniLM-L6-v2 are trained) or `"cls"` (the first token's last hidden state).
        classifier_dropout (`float`, *optional*):
            Dropout before the linear head. Default: the backbone's `classifier_dropout` or `hidden_dropout_prob`
            (else 0.1) for transformers, 0.0 for recurrent backbones (the paper's model has none).
        base_model_name (`str`, *optional*):
            Hub id of the pretrained backbone (for the model card); `None` for backbones trained from scratch.
        pretrained_feature_encoder (`bool`, *optional*, defaults to `False`):
            Transformers only: the detector also holds a frozen copy of the pretrained encoder (`feature_backbone`),
            whose pooled features feature scores can read (`fit_ood_score(..., features="pretrained")`) in the same
            forward pass as the fine-tuned encoder's logits.
        ood_score, ood_temperature, ood_threshold, threshold_tpr, threshold_calibration, ood_fitted_scores,
        ood_score_selection, oe:
            The OOD decision rule and provenance shared by every detector: see `oe_text.detection.OODDetectorConfig`.
        kwargs: standard `PretrainedConfig` arguments (`num_labels`, `id2label`, `label2id`, ...).
    """

    model_type = "oe-classifier"

    backbone_type: str = "transformer"
    backbone_config: dict[str, Any] | None = None
    pooling: str = "mean"
    classifier_dropout: float | int | None = None
    base_model_name: str | None = None
    pretrained_feature_encoder: bool = False

    def validate_backbone(self):
        """Part of `@strict` validation: the backbone fields are consistent."""
        if self.backbone_type not in BACKBONE_TYPES:
            raise ValueError(f"`backbone_type` must be one of {BACKBONE_TYPES}, got {self.backbone_type!r}.")
        if self.backbone_config is None:
            return  # a bare `OEConfig()` (e.g. AutoConfig machinery); OEClassifier refuses it with a clear error
        if self.backbone_type == "transformer":
            if "model_type" not in self.backbone_config:
                raise ValueError(
                    "A transformer `backbone_config` must be the backbone's `config.to_dict()` and contain "
                    "`model_type`; use `OEClassifier.from_backbone(name_or_path)` to build it."
                )
            if self.pooling not in POOLINGS:
                raise ValueError(f"`pooling` must be one of {POOLINGS}, got {self.pooling!r}.")
        else:
            _check_rnn_config(self.backbone_config)
        if self.pretrained_feature_encoder and self.backbone_type != "transformer":
            raise ValueError("`pretrained_feature_encoder` needs a transformer backbone.")
        dropout = self.classifier_dropout
        if dropout is not None and not 0 <= dropout < 1:
            raise ValueError(f"`classifier_dropout` must be in [0, 1) or None, got {dropout!r}.")

    @property
    def max_position_embeddings(self) -> int | None:
        """The transformer backbone's maximum input length (read by `oe_text.inference` to truncate texts)."""
        if self.backbone_type == "transformer" and self.backbone_config:
            return self.backbone_config.get("max_position_embeddings")
        return None


__all__ = ["OEConfig"]
