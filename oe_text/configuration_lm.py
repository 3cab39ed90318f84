"""`OELanguageModelConfig`: the configuration of an `OELanguageModelDetector` (a causal LM used as an OOD detector)."""

from typing import Any

from transformers import PretrainedConfig

from .detection import validate_detection_config


class OELanguageModelConfig(PretrainedConfig):
    r"""Configuration of an [`OELanguageModelDetector`]: a causal language model that flags out-of-distribution text.

    Args:
        lm_config (`dict`, *optional*):
            The wrapped language model's `config.to_dict()` (with its `model_type`): the LM is rebuilt from it with
            `AutoConfig.for_model` + `AutoModelForCausalLM.from_config`, so loading never contacts the Hub for it.
        base_model_name (`str`, *optional*):
            Hub id of the pretrained LM the detector started from (model card); `None` for an LM trained from scratch.
        truncation_length (`int`, *optional*):
            Tokens kept per text (its first ones); default: the LM's context and the tokenizer's `model_max_length`.
            (Not `max_length`, which `transformers` reserves for generation.)
        ood_score (`str`, *optional*, defaults to `"kl_uniform"`):
            The OOD score, a name in `oe_text.lm_scores.LM_SCORES` (`kl_uniform`, the paper's; `nll`, `bpc`,
            `max_prob`). Higher = more anomalous.
        ood_temperature, ood_threshold, threshold_tpr, threshold_calibration:
            The decision rule, as in `OEConfig` (see `oe_text.detection`).
        oe (`dict`, *optional*):
            Training provenance and results for the model card (`in_distribution_dataset`, `auxiliary_dataset`,
            `oe_weight`, `oe_loss`, `ood_results`, ...).
    """

    model_type = "oe-language-model"

    def __init__(
        self,
        lm_config: dict[str, Any] | None = None,
        base_model_name: str | None = None,
        truncation_length: int | None = None,
        ood_score: str = "kl_uniform",
        ood_temperature: float = 1.0,
        ood_threshold: float | None = None,
        threshold_tpr: float | None = None,
        threshold_calibration: dict[str, Any] | None = None,
        oe: dict[str, Any] | None = None,
        **kwargs,
    ):
        if lm_config is not None and "model_type" not in lm_config:
            raise ValueError("`lm_config` must be a causal LM's `config.to_dict()`, with its `model_type`.")
        if truncation_length is not None and (
            isinstance(truncation_length, bool) or not isinstance(truncation_length, int) or truncation_length < 2
        ):
            raise ValueError(f"`truncation_length` must be an integer >= 2 or None, got {truncation_length!r}.")
        self.lm_config = lm_config
        self.base_model_name = base_model_name
        self.truncation_length = truncation_length
        self.ood_score = ood_score
        self.ood_temperature = ood_temperature
        self.ood_threshold = ood_threshold
        self.threshold_tpr = threshold_tpr
        self.threshold_calibration = threshold_calibration
        self.oe = oe
        super().__init__(**kwargs)
        # The score name is checked when a score is computed, so that a detector saved with a custom score
        # (`register_lm_score`) still loads.
        validate_detection_config(self, check_score=False)


__all__ = ["OELanguageModelConfig"]
