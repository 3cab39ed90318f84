"""`OELanguageModelConfig`: the configuration of an `OELanguageModelDetector` (a causal LM used as an OOD detector)."""

# No `from __future__ import annotations`: `@strict` validates fields against their real (non-string) annotations.
from typing import Any

from huggingface_hub.dataclasses import strict

from .detection import OODDetectorConfig


@strict
class OELanguageModelConfig(OODDetectorConfig):
    r"""Configuration of an [`OELanguageModelDetector`]: a causal language model that flags out-of-distribution text.

    Args:
        lm_config (`dict`, *optional*):
            The wrapped language model's `config.to_dict()` (with its `model_type`): the LM is rebuilt from it with
            `AutoConfig.for_model` + `AutoModelForCausalLM.from_config`, so loading never contacts the Hub for it.
        base_model_name (`str`, *optional*):
            Hub id of the pretrained LM the detector started from (model card); `None` for an LM trained from scratch.
        truncation_length (`int`, *optional*):
            Tokens kept per text (its first ones); default: the LM's context and the tokenizer's `model_max_length`.
            (Not `max_length`, which `transformers` reserves for generation settings.)
        ood_score (`str`, *optional*, defaults to `"kl_uniform"`):
            The OOD score, a name in `oe_text.lm_scores.LM_SCORES` (`kl_uniform`, the paper's; `nll`, `bpc`,
            `max_prob`). Higher = more anomalous.
        ood_temperature, ood_threshold, threshold_tpr, threshold_calibration, oe:
            The decision rule and provenance, as in every detector config (`oe_text.detection.OODDetectorConfig`).
    """

    model_type = "oe-language-model"

    lm_config: dict[str, Any] | None = None
    base_model_name: str | None = None
    truncation_length: int | None = None
    ood_score: str = "kl_uniform"

    def validate_language_model(self):
        """Part of `@strict` validation: the wrapped LM's config and the truncation length are usable."""
        if self.lm_config is not None and "model_type" not in self.lm_config:
            raise ValueError("`lm_config` must be a causal LM's `config.to_dict()`, with its `model_type`.")
        length = self.truncation_length
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 2):
            raise ValueError(f"`truncation_length` must be an integer >= 2 or None, got {length!r}.")


__all__ = ["OELanguageModelConfig"]
