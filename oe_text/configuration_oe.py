"""`OEConfig`: the configuration of an `OEClassifier` detector, including its OOD decision rule and provenance."""

# No `from __future__ import annotations`: `@strict` validates fields against their real (non-string) annotations.
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig

from .detection import validate_detection_config
from .modeling_rnn import RNN_KINDS, _check_rnn_config


BACKBONE_TYPES = ("transformer", *RNN_KINDS)
POOLINGS = ("mean", "cls")


@strict
class OEConfig(PretrainedConfig):
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
        ood_score (`str`, *optional*, defaults to `"msp"`):
            The OOD score, a name in `oe_text.scores.LOGIT_SCORES` (`msp`, `max_logit`, `energy`, `kl_uniform`,
            `entropy`, or one added with `register_score`). Higher = more anomalous.
        ood_temperature (`float`, *optional*, defaults to 1.0):
            Temperature of the OOD score.
        ood_threshold (`float`, *optional*):
            Decision threshold: an input is OOD when its score is greater. `None` until `calibrate_threshold`.
        threshold_tpr (`float`, *optional*):
            Fraction of in-distribution inputs the threshold keeps.
        threshold_calibration (`dict`, *optional*):
            What the threshold was calibrated on: `dataset`, `split`, `n_examples`, `fraction_flagged`, `ood_score`,
            `ood_temperature`.
        oe (`dict`, *optional*):
            Training provenance for the model card: `in_distribution_dataset`, `auxiliary_dataset`, `oe_weight`,
            `oe_loss`, and `ood_results` (`{ood_set: {metric: value}}`, or a markdown table as a string).
        kwargs: standard `PretrainedConfig` arguments (`num_labels`, `id2label`, `label2id`, ...).
    """

    model_type = "oe-classifier"

    backbone_type: str = "transformer"
    backbone_config: dict[str, Any] | None = None
    pooling: str = "mean"
    classifier_dropout: float | int | None = None
    base_model_name: str | None = None
    ood_score: str = "msp"
    ood_temperature: float | int = 1.0
    ood_threshold: float | int | None = None
    threshold_tpr: float | int | None = None
    threshold_calibration: dict[str, Any] | None = None
    oe: dict[str, Any] | None = None

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
        dropout = self.classifier_dropout
        if dropout is not None and not 0 <= dropout < 1:
            raise ValueError(f"`classifier_dropout` must be in [0, 1) or None, got {dropout!r}.")

    def validate_detection(self):
        """Part of `@strict` validation: the OOD score, temperature and threshold fields are valid.

        The score name is checked when a score is computed, not here, so that a detector saved with a custom score
        (`oe_text.scores.register_score`) loads even where that score is not registered.
        """
        validate_detection_config(self, check_score=False)

    @property
    def max_position_embeddings(self) -> int | None:
        """The transformer backbone's maximum input length (read by `oe_text.inference` to truncate texts)."""
        if self.backbone_type == "transformer" and self.backbone_config:
            return self.backbone_config.get("max_position_embeddings")
        return None


__all__ = ["OEConfig"]
