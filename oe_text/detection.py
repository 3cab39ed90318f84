"""Modality-independent OOD detection on top of a classifier's logits, with the decision threshold kept in the config.

`OODDetectorMixin` turns any `PreTrainedModel` whose config carries the detection fields below into a detector:

- `ood_score`: name of the logit score (`oe_text.scores.LOGIT_SCORES`: `msp`, `max_logit`, `energy`, ...);
- `ood_temperature`: the temperature `T` the score is computed at;
- `ood_threshold`: the decision threshold, an input is OOD when `score > ood_threshold` (`None` until calibrated);
- `threshold_tpr`: the fraction of in-distribution inputs the threshold keeps (e.g. 0.95);
- `threshold_calibration`: what the threshold was calibrated on (`dataset`, `split`, `n_examples`,
  `fraction_flagged`, and the `ood_score` / `ood_temperature` it was computed with).

Conventions (as in the rest of oe-text): OOD is the positive class and a higher score means more anomalous. Because
they are config fields, the threshold and score are saved in `config.json`, pushed to the Hub and restored by
`from_pretrained`.

A model using the mixin implements `compute_ood_scores(inputs, **kwargs)` (e.g. texts -> tokenizer -> logits ->
scores) when it wants `calibrate_threshold` to accept raw inputs; everything else works from logits or scores alone,
so the same mixin serves text and image detectors.

**Fitted scores.** Besides logit scores, a detector can decide with a score fitted on in-distribution data
(`fit_ood_score`): a k-NN distance or a Mahalanobis distance over its features (its own fine-tuned encoder's, or a
frozen copy of the pretrained encoder's), or a logistic combination of several scores. The fitted state is a set of
float32 buffers of the model (`OODScoreState`), so `save_pretrained` writes it into the safetensors weights and
`from_pretrained` restores it; `config.ood_fitted_scores` says what each score is (kind, features, options, shapes).
Logits and features come from one forward pass.

**Unset threshold.** Before calibration there is no decision to make: `detections_from_logits` returns `is_ood=None`
for every input (with a one-time warning saying how to calibrate), unless `require_threshold=True`, which raises
`ThresholdNotCalibratedError` instead, or an explicit `threshold=` is passed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PretrainedConfig
from transformers.utils import logging

from .metrics import threshold_at_tpr
from .scores import LOGIT_SCORES, compute_score, get_score_fn


logger = logging.get_logger(__name__)

#: Kinds of score `fit_ood_score` fits; `"combined"` combines other scores (`oe_text.score_combination`).
FITTED_SCORE_KINDS = ("knn", "mahalanobis", "gaussian", "combined")
#: Which features a feature score reads: the detector's own (fine-tuned) encoder, a frozen pretrained copy of it, or
#: the input's length (text: `log(1 + number of whitespace-separated words)` of the raw text, before truncation).
FEATURE_ENCODERS = ("fine-tuned", "pretrained", "input-length")
#: The feature key of the input-length feature (`feature_key("input-length", -1)`).
INPUT_LENGTH_KEY = "input-length:-1"
_SCORE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ThresholdNotCalibratedError(RuntimeError):
    """A detection decision was required but the detector has no decision threshold yet."""


_CALIBRATE_HINT = (
    "Calibrate one on in-distribution validation data, e.g. "
    "`model.calibrate_threshold(validation_inputs, tpr=0.95, calibration_data={'dataset': ..., 'split': ...})`, "
    "or pass `threshold=` explicitly."
)


def validate_detection_config(config, check_score: bool = True, score_fn=get_score_fn) -> None:
    """Check the detection fields of `config` (see the module docstring) and raise a clear error on a bad value.

    Args:
        config (`PretrainedConfig`): a config with the fields of `DETECTION_CONFIG_DEFAULTS`.
        check_score (`bool`, *optional*, defaults to `True`): also check that `ood_score` is a registered score.
            Configs skip this when loading, so that a detector saved with a custom score (`register_score`) still
            loads, and fails only when the score is computed without it being registered.
        score_fn (`Callable`, *optional*): looks a score name up, raising a `ValueError` on an unknown one; default
            the logit scores' `get_score_fn` (language-model detectors pass `oe_text.lm_scores.get_lm_score_fn`).

    Raises:
        `AttributeError`: a detection field is missing. `ValueError`: a field has an invalid value.
    """
    missing = [name for name in DETECTION_CONFIG_DEFAULTS if not hasattr(config, name)]
    if missing:
        raise AttributeError(
            f"{type(config).__name__} lacks the detection field(s) {missing} that OODDetectorMixin needs; "
            f"add them with the defaults in oe_text.detection.DETECTION_CONFIG_DEFAULTS."
        )
    if not isinstance(config.ood_score, str):
        raise ValueError(f"`ood_score` must be the name of a score, got {config.ood_score!r}.")
    fitted = getattr(config, "ood_fitted_scores", None) or {}
    if not isinstance(fitted, Mapping):
        raise ValueError(f"`ood_fitted_scores` must be a dict or None, got {type(fitted).__name__}.")
    if check_score and config.ood_score not in fitted:
        if config.ood_score in FITTED_SCORE_KINDS:
            raise ValueError(
                f"`ood_score={config.ood_score!r}` is a fitted score, but this detector has none of that name; fit it "
                f"with `fit_ood_score({config.ood_score!r}, ...)` (fitted scores here: {sorted(fitted)})."
            )
        score_fn(config.ood_score)  # raises ValueError listing the known scores
    temperature = config.ood_temperature
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"`ood_temperature` must be a number > 0, got {temperature!r}.")
    threshold = config.ood_threshold
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold)
    ):
        raise ValueError(f"`ood_threshold` must be a finite number or None, got {threshold!r}.")
    tpr = config.threshold_tpr
    if tpr is not None and (isinstance(tpr, bool) or not isinstance(tpr, (int, float)) or not 0 < tpr <= 1):
        raise ValueError(f"`threshold_tpr` must be in (0, 1] or None, got {tpr!r}.")
    if config.threshold_calibration is not None and not isinstance(config.threshold_calibration, Mapping):
        raise ValueError(
            f"`threshold_calibration` must be a dict or None, got {type(config.threshold_calibration).__name__}."
        )


@strict
class OODDetectorConfig(PretrainedConfig):
    r"""The fields every oe-text detector config shares (text `OEConfig`, image `OEImageConfig`, ...), declared once.

    Args:
        ood_score (`str`, *optional*, defaults to `"msp"`):
            The OOD score `detect` decides with: a logit score of `oe_text.scores.LOGIT_SCORES` (`msp`, `max_logit`,
            `energy`, `kl_uniform`, `entropy`, or one added with `register_score`), or the name of a fitted score in
            `ood_fitted_scores`. Higher = more anomalous.
        ood_temperature (`float`, *optional*, defaults to 1.0):
            Temperature of logit scores (and of the logit components of a combined score).
        ood_threshold (`float`, *optional*):
            Decision threshold: an input is OOD when its score is greater. `None` until `calibrate_threshold`.
        threshold_tpr (`float`, *optional*):
            Fraction of in-distribution inputs the threshold keeps.
        threshold_calibration (`dict`, *optional*):
            What the threshold was calibrated on: `dataset`, `split`, `n_examples`, `fraction_flagged`, `ood_score`,
            `ood_temperature`.
        ood_fitted_scores (`dict`, *optional*):
            Scores fitted on in-distribution data with `fit_ood_score`, by name: `{"kind": "knn" | "mahalanobis" |
            "gaussian" | "combined", "features": {"encoder": "fine-tuned" | "pretrained" | "input-length", "layer": -1,
            "pooling": ...},
            "options": {...}, "shapes": {tensor: shape}, "fitted_on": {...}}` (a combined score has `components`
            instead of `features`). Their tensors are buffers of the model, saved in the safetensors weights.
        ood_score_selection (`dict`, *optional*):
            How the default score was chosen (candidates with their validation figures, the rule and the choice),
            written by the recipes and shown on the model card.
        oe (`dict`, *optional*):
            Training provenance for the model card: `in_distribution_dataset`, `auxiliary_dataset`, `oe_weight`,
            `oe_loss`, `ood_results`, ...
        kwargs: standard `PretrainedConfig` arguments (`num_labels`, `id2label`, `label2id`, ...).
    """

    ood_score: str = "msp"
    ood_temperature: float | int = 1.0
    ood_threshold: float | int | None = None
    threshold_tpr: float | int | None = None
    threshold_calibration: dict[str, Any] | None = None
    ood_fitted_scores: dict[str, Any] | None = None
    ood_score_selection: dict[str, Any] | None = None
    oe: dict[str, Any] | None = None

    def validate_detection(self):
        """Part of `@strict` validation: the OOD score, temperature and threshold fields are valid.

        The score name is checked when a score is computed, not here, so that a detector saved with a custom score
        (`oe_text.scores.register_score`) loads even where that score is not registered.
        """
        validate_detection_config(self, check_score=False)


#: Detection fields a config needs for `OODDetectorMixin`, with their defaults (those of `OODDetectorConfig`).
DETECTION_CONFIG_DEFAULTS: dict[str, Any] = {
    f.name: f.default
    for f in dataclasses.fields(OODDetectorConfig)
    if f.name in ("ood_score", "ood_temperature", "ood_threshold", "threshold_tpr", "threshold_calibration")
}


def labels_kwargs(
    num_labels: int | None = None,
    id2label: Mapping[int, str] | Sequence[str] | None = None,
    label2id: Mapping[str, int] | None = None,
    default_num_labels: int | None = None,
) -> dict[str, Any]:
    """Normalise the label arguments of a detector factory into `PretrainedConfig` kwargs (one rule, every modality).

    Args:
        num_labels (`int`, *optional*): number of classes.
        id2label (`dict` or list of `str`, *optional*): class names; keys must be exactly `0..C-1`.
        label2id (`dict`, *optional*): the inverse of `id2label` (derived when omitted).
        default_num_labels (`int`, *optional*): used when neither `num_labels` nor the label maps are given; `None`
            makes that an error.

    Returns:
        `{"id2label": ..., "label2id": ...}` or `{"num_labels": n}`.
    """
    if id2label is None and label2id is not None:
        id2label = {int(v): k for k, v in label2id.items()}
    if id2label is not None:
        if isinstance(id2label, Sequence) and not isinstance(id2label, str):
            id2label = dict(enumerate(id2label))
        if not isinstance(id2label, Mapping):
            raise TypeError(f"`id2label` must be a dict or a list of label names, got {type(id2label).__name__}.")
        id2label = {int(k): str(v) for k, v in id2label.items()}
        if sorted(id2label) != list(range(len(id2label))):
            raise ValueError(f"`id2label` keys must be 0..{len(id2label) - 1}, got {sorted(id2label)}.")
        if num_labels is not None and num_labels != len(id2label):
            raise ValueError(f"`num_labels={num_labels}` disagrees with the {len(id2label)} labels of `id2label`.")
        label2id = dict(label2id) if label2id is not None else {v: k for k, v in id2label.items()}
        return {"id2label": id2label, "label2id": label2id}
    if num_labels is None:
        if default_num_labels is None:
            raise ValueError("Pass `num_labels` or `id2label` (class names).")
        num_labels = default_num_labels
    return {"num_labels": int(num_labels)}


def feature_key(encoder: str, layer: int) -> str:
    """The key of one kind of feature in `predict_outputs` results, e.g. `"pretrained:-1"`."""
    return f"{encoder}:{layer}"


def parse_feature_key(key: str) -> tuple[str, int]:
    """`(encoder, layer)` of a `feature_key`."""
    encoder, _, layer = key.rpartition(":")
    return encoder, int(layer)


class OODScoreState(nn.Module):
    """The fitted state of a detector's fitted scores, as float32 buffers (saved in the safetensors weights).

    Buffers are named `<score name>__<tensor>` (e.g. `knn_pretrained__bank`) and created, with the shapes recorded in
    `config.ood_fitted_scores`, when the model is built, so that `from_pretrained` loads them like any weight and a
    checkpoint whose state is missing or has the wrong shape fails to load instead of falling back silently.
    """

    def __init__(self, specs: Mapping[str, Any] | None = None):
        super().__init__()
        for name, spec in (specs or {}).items():
            for key, shape in spec.get("shapes", {}).items():
                self.register_buffer(f"{name}__{key}", torch.zeros(*shape, dtype=torch.float32))

    def set_tensors(self, name: str, tensors: Mapping[str, torch.Tensor]) -> None:
        """Replace the buffers of score `name` with `tensors` (float32, on the module's device)."""
        self.drop(name)
        device = next((b.device for b in self.buffers()), None)
        for key, value in tensors.items():
            value = torch.as_tensor(value).detach().to(dtype=torch.float32).clone()
            self.register_buffer(f"{name}__{key}", value if device is None else value.to(device))

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        """The buffers of score `name`, keyed by tensor name."""
        prefix = f"{name}__"
        return {k[len(prefix) :]: v for k, v in self.named_buffers() if k.startswith(prefix)}

    def drop(self, name: str) -> None:
        """Remove the buffers of score `name`."""
        for key in [k for k, _ in self.named_buffers() if k.startswith(f"{name}__")]:
            delattr(self, key)


def _check_bank_memory(rows: int, dim: int, fraction: float = 0.5) -> None:
    """Refuse a k-NN bank (float32 `rows x dim`) larger than `fraction` of the memory available now."""
    import psutil

    needed = rows * dim * 4
    available = psutil.virtual_memory().available
    if needed > fraction * available:
        raise MemoryError(
            f"A k-NN bank of {rows} x {dim} float32 features needs {needed / 2**30:.2f} GiB, more than "
            f"{fraction:.0%} of the {available / 2**30:.2f} GiB available; pass `max_fit_samples=` to keep a seeded "
            "random subsample."
        )


def describe_ood_score(config) -> str:
    """Markdown describing the detector's OOD score (what it reads, how it was fitted) and how it was chosen."""
    fitted = getattr(config, "ood_fitted_scores", None) or {}
    name = config.ood_score
    spec = fitted.get(name)
    if spec is None:
        text = f"The OOD score is the logit score `{name}` (higher = more anomalous)."
    elif spec["kind"] == "combined":
        weights = spec.get("weights", {})
        parts = ", ".join(
            f"`{c}` ({weights[c]:+.4g} per unit)" if c in weights else f"`{c}`" for c in spec["components"]
        )
        text = (
            f"The OOD score is `{name}`: a logistic combination of {parts}, each standardised on in-distribution "
            "validation data and weighted to separate it from validation outliers that training never saw "
            "(`oe_text.score_combination`)."
        )
    elif spec["features"]["encoder"] == "input-length":
        text = (
            f"The OOD score is `{name}`: how atypical an input's length is, the squared z-score of "
            f"{spec['features'].get('feature', 'its log word count')} against the in-distribution training texts "
            "(too long and too short both count)."
        )
    else:
        features = spec["features"]
        kind = {
            "knn": "k-NN distance (Sun et al. 2022)",
            "mahalanobis": "Mahalanobis distance (Lee et al. 2018)",
            "gaussian": "Mahalanobis distance to the mean",
        }
        layer = "last layer" if features["layer"] == -1 else f"layer {features['layer']}"
        encoder = features.get("model") or features["encoder"]
        options = ", ".join(
            f"{k}={v}" for k, v in spec.get("options", {}).items() if k in ("k", "reg", "max_fit_samples")
        )
        text = (
            f"The OOD score is `{name}`: the {kind.get(spec['kind'], spec['kind'])} of an input's features "
            f"({features['encoder']} encoder: {encoder}, {layer}, {features.get('pooling', 'pooled')} pooling) to the "
            f"in-distribution training features{f' ({options})' if options else ''}."
        )
    fitted_on = (spec or {}).get("fitted_on") or {}
    if fitted_on:
        text += " Fitted on " + ", ".join(f"{k}={v}" for k, v in fitted_on.items()) + "."
    selection = getattr(config, "ood_score_selection", None)
    if selection:
        from .score_selection import selection_table  # score_selection imports this module

        text += f"\n\nThe score was chosen by {selection['rule']}. Candidates (%):\n\n{selection_table(selection)}"
    return text


def describe_threshold(config) -> str:
    """One sentence describing the decision rule stored in `config`, for model cards and logs."""
    score = f"`{config.ood_score}` score at temperature {config.ood_temperature:g}"
    if config.ood_threshold is None:
        return f"No decision threshold is calibrated yet; the OOD score is the {score} (higher = more anomalous)."
    text = f"An input is flagged out-of-distribution when its {score} is greater than {config.ood_threshold:.6g}"
    if config.threshold_tpr is not None:
        text += f", which keeps {100 * config.threshold_tpr:g}% of in-distribution inputs (TPR)"
    calib = config.threshold_calibration or {}
    data = ", ".join(f"{k}={calib[k]}" for k in ("dataset", "split") if calib.get(k) is not None)
    if calib.get("n_examples") is not None:
        data += (", " if data else "") + f"{calib['n_examples']} examples"
    if data:
        text += f"; calibrated on in-distribution data ({data})"
    if calib.get("fraction_flagged") is not None:
        text += f", of which {100 * calib['fraction_flagged']:.2f}% were flagged"
    return text + "."


def _as_score_array(values) -> np.ndarray | None:
    """`values` as a float64 vector when it is a 1-D numeric array / tensor / sequence of numbers, else `None`."""
    if isinstance(values, torch.Tensor):
        if values.dim() == 1 and values.dtype != torch.bool and not values.dtype.is_complex:
            return values.detach().cpu().double().numpy()
        return None
    if isinstance(values, np.ndarray):
        numeric = np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
        return values.astype(np.float64) if values.ndim == 1 and numeric else None
    if (
        isinstance(values, (list, tuple))
        and values
        and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values)
    ):
        return np.asarray(values, dtype=np.float64)
    return None


class OODDetectorMixin:
    """OOD scores, threshold calibration and per-input decisions for a classifier whose config has detection fields.

    The host class must provide `self.config` (with the fields of `DETECTION_CONFIG_DEFAULTS` and `id2label`; an
    `OODDetectorConfig` has them all) and, for raw inputs (`compute_ood_scores`, `calibrate_threshold(inputs)`,
    `fit_ood_score`), `predict_outputs(inputs, feature_keys, **kwargs)`. Hosts that support fitted scores call
    `_init_ood_state()` in `__init__`. `get_ood_score_fn` names the registry of unfitted scores (the logit scores;
    the language-model detector overrides it with `oe_text.lm_scores`).
    """

    @staticmethod
    def get_ood_score_fn(name: str):
        """The unfitted score called `name` in this detector's registry; a `ValueError` lists the known names."""
        return get_score_fn(name)

    def ood_scores_from_logits(self, logits) -> np.ndarray:
        """OOD scores of `logits` with the config's `ood_score` and `ood_temperature` (logit scores only).

        Args:
            logits (`torch.Tensor` or array of shape `(n, num_labels)`): classifier logits.

        Returns:
            `np.ndarray` of shape `(n,)` in float64; higher = more anomalous.
        """
        validate_detection_config(self.config)
        if self.config.ood_score in (getattr(self.config, "ood_fitted_scores", None) or {}):
            raise ValueError(
                f"The detector's score {self.config.ood_score!r} is a fitted score that needs features as well as "
                "logits: use `compute_ood_scores(inputs)` / `detect(inputs)`, or `ood_scores_from_outputs(logits, "
                "features)`."
            )
        return compute_score(self.config.ood_score, logits, temperature=float(self.config.ood_temperature))

    def compute_ood_scores(self, inputs, **kwargs) -> np.ndarray:
        """OOD scores of raw `inputs` with the config's score (logits and features from one forward pass).

        Args:
            inputs: raw inputs of the modality (texts, images).
            kwargs: passed to `predict_outputs` (e.g. `batch_size`).

        Returns:
            `np.ndarray` of shape `(n,)`, float64; higher = more anomalous.
        """
        logits, features = self.predict_outputs(inputs, self.required_feature_keys(), **kwargs)
        return self.ood_scores_from_outputs(logits, features)

    def _detect(self, inputs, threshold: float | None = None, require_threshold: bool = False, **kwargs):
        """`detect` of every modality: one forward pass for logits and features, then the decision rule."""
        logits, features = self.predict_outputs(inputs, self.required_feature_keys(), **kwargs)
        scores = self.ood_scores_from_outputs(logits, features)
        return self.detections_from_logits(
            logits, threshold=threshold, require_threshold=require_threshold, scores=scores
        )

    def set_ood_score(self, ood_score: str, temperature: float = 1.0) -> None:
        """Switch the OOD score (and temperature); clears any threshold, which was calibrated for the old score.

        Args:
            ood_score (`str`): a name in `oe_text.scores.LOGIT_SCORES`, or of a fitted score (`fit_ood_score`).
            temperature (`float`, *optional*, defaults to 1.0): the score's temperature, > 0.
        """
        if ood_score not in (getattr(self.config, "ood_fitted_scores", None) or {}):
            self.get_ood_score_fn(ood_score)
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature}.")
        changed = (ood_score, float(temperature)) != (self.config.ood_score, float(self.config.ood_temperature))
        self.config.ood_score = ood_score
        self.config.ood_temperature = float(temperature)
        if changed and self.config.ood_threshold is not None:
            logger.warning(
                f"OOD score changed to {ood_score!r} (T={temperature:g}); the previous threshold was calibrated for "
                "another score and has been cleared. Calibrate a new one with `calibrate_threshold`."
            )
            self.config.ood_threshold = None
            self.config.threshold_tpr = None
            self.config.threshold_calibration = None

    def calibrate_threshold(
        self,
        inputs_or_scores,
        tpr: float = 0.95,
        calibration_data: str | Mapping[str, Any] | None = None,
        ood_score: str | None = None,
        temperature: float | None = None,
        **kwargs,
    ) -> float:
        """Choose the decision threshold that keeps a fraction `tpr` of in-distribution inputs, and store it.

        The threshold is `oe_text.metrics.threshold_at_tpr(scores, tpr)`: inputs are flagged OOD when
        `score > threshold`, so on the calibration data the flagged fraction is `1 - tpr` within one example (fewer
        when scores tie). It is stored in the config (`ood_threshold`, `threshold_tpr`, `threshold_calibration`), so
        `save_pretrained` / `push_to_hub` keep it.

        Args:
            inputs_or_scores:
                In-distribution **validation** data: either precomputed OOD scores (a 1-D numeric array, tensor or
                list, computed with the config's score and temperature) or raw inputs (e.g. a list of texts), which
                are scored with `self.compute_ood_scores(inputs, **kwargs)`.
            tpr (`float`, *optional*, defaults to 0.95):
                Fraction of in-distribution inputs to keep, in `(0, 1]`.
            calibration_data (`str` or `dict`, *optional*):
                What the data is, recorded in `threshold_calibration`: a dataset name, or a dict such as
                `{"dataset": "SetFit/sst2", "split": "validation"}`.
            ood_score (`str`, *optional*):
                Switch to this score (see `set_ood_score`) before calibrating.
            temperature (`float`, *optional*):
                Switch to this temperature before calibrating.
            kwargs:
                Passed to `compute_ood_scores` (e.g. `batch_size`).

        Returns:
            `float`: the threshold.
        """
        if ood_score is not None or temperature is not None:
            self.set_ood_score(
                ood_score if ood_score is not None else self.config.ood_score,
                temperature if temperature is not None else self.config.ood_temperature,
            )
        validate_detection_config(self.config, score_fn=self.get_ood_score_fn)
        if not isinstance(tpr, (int, float)) or isinstance(tpr, bool) or not 0 < tpr <= 1:
            raise ValueError(f"`tpr` must be in (0, 1], got {tpr!r}.")
        if isinstance(calibration_data, str):
            description: dict[str, Any] = {"dataset": calibration_data}
        elif isinstance(calibration_data, Mapping):
            description = dict(calibration_data)
        elif calibration_data is None:
            description = {}
        else:
            raise TypeError(
                f"`calibration_data` must be a str, a dict or None, got {type(calibration_data).__name__}."
            )

        scores = _as_score_array(inputs_or_scores)
        if scores is None:
            scores = np.asarray(self.compute_ood_scores(inputs_or_scores, **kwargs), dtype=np.float64).ravel()
        threshold = threshold_at_tpr(scores, tpr)
        description.update(
            n_examples=int(scores.size),
            fraction_flagged=float(np.mean(scores > threshold)),
            ood_score=self.config.ood_score,
            ood_temperature=float(self.config.ood_temperature),
        )
        self.config.ood_threshold = float(threshold)
        self.config.threshold_tpr = float(tpr)
        self.config.threshold_calibration = description
        logger.info(describe_threshold(self.config))
        return float(threshold)

    def _resolve_threshold(self, threshold: float | None, require_threshold: bool) -> float | None:
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
                raise ValueError(f"`threshold` must be a finite number, got {threshold!r}.")
            return float(threshold)
        config = self.config
        if config.ood_threshold is None:
            if require_threshold:
                raise ThresholdNotCalibratedError(f"{type(self).__name__} has no OOD threshold. {_CALIBRATE_HINT}")
            logger.warning_once(f"No OOD threshold is set, so `is_ood` is None. {_CALIBRATE_HINT}")
            return None
        calib = config.threshold_calibration or {}
        # A threshold only means something for the score it was calibrated with; a silent mismatch would flag
        # everything or nothing.
        stale = [
            f"{key}={calib[key]!r} (config now has {getattr(config, key)!r})"
            for key in ("ood_score", "ood_temperature")
            if key in calib and calib[key] != getattr(config, key)
        ]
        if stale:
            raise ValueError(
                f"The stored threshold was calibrated with {', '.join(stale)}. Recalibrate with "
                "`calibrate_threshold`, or switch scores with `set_ood_score`, which clears the threshold."
            )
        return float(config.ood_threshold)

    def ood_decisions(
        self, scores, threshold: float | None = None, require_threshold: bool = False
    ) -> list[bool] | list[None]:
        """Per-input OOD decisions `score > threshold`.

        Args:
            scores (1-D array): OOD scores (higher = more anomalous).
            threshold (`float`, *optional*): overrides the config's `ood_threshold`.
            require_threshold (`bool`, *optional*, defaults to `False`):
                Raise `ThresholdNotCalibratedError` instead of returning `None`s when no threshold is available.

        Returns:
            `list[bool]`, or `list[None]` when there is no threshold and `require_threshold` is `False`.
        """
        values = _as_score_array(scores)
        if values is None:
            raise ValueError("`scores` must be a 1-D numeric array of OOD scores.")
        thr = self._resolve_threshold(threshold, require_threshold)
        if thr is None:
            return [None] * values.size
        return [bool(v > thr) for v in values]

    def detections_from_logits(
        self, logits, threshold: float | None = None, require_threshold: bool = False, scores=None
    ) -> list[dict[str, Any]]:
        """Per-input predictions and OOD decisions from classifier logits.

        Args:
            logits (`torch.Tensor` or array of shape `(n, num_labels)`): classifier logits.
            threshold (`float`, *optional*): overrides the config's `ood_threshold`.
            require_threshold (`bool`, *optional*, defaults to `False`): see `ood_decisions`.
            scores (1-D array, *optional*): precomputed OOD scores of the same inputs (e.g. a fitted feature score
                from `ood_scores_from_outputs`); default: the config's logit score of `logits`.

        Returns:
            `list[dict]`, one per input, with keys `label` (name of the predicted label, from `config.id2label`),
            `score` (softmax probability of that label, at temperature 1), `ood_score` (`float`, higher = more
            anomalous) and `is_ood` (`bool`, or `None` when no threshold is available).
        """
        z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).detach().cpu()
        if z.dim() != 2:
            raise ValueError(f"`logits` must have shape (n, num_labels), got {tuple(z.shape)}.")
        if scores is None:
            scores = self.ood_scores_from_logits(z)
        else:
            scores = _as_score_array(scores)
            if scores is None or scores.shape[0] != z.shape[0]:
                raise ValueError(f"`scores` must be a 1-D array of {z.shape[0]} OOD scores, one per row of `logits`.")
        decisions = self.ood_decisions(scores, threshold=threshold, require_threshold=require_threshold)
        probs = torch.softmax(z.double(), dim=-1)
        top_p, top_k = probs.max(dim=-1)
        id2label = self.config.id2label or {}
        return [
            {
                "label": id2label.get(int(k), f"LABEL_{int(k)}"),
                "score": float(p),
                "ood_score": float(s),
                "is_ood": d,
            }
            for k, p, s, d in zip(top_k.tolist(), top_p.tolist(), scores.tolist(), decisions)
        ]

    # ------------------------------------------------------------------------------------------------ fitted scores
    def _init_ood_state(self) -> None:
        """Create the buffers of the fitted scores recorded in the config (hosts call this in `__init__`)."""
        self.ood_state = OODScoreState(getattr(self.config, "ood_fitted_scores", None))

    def predict_outputs(self, inputs, feature_keys: Sequence[str] = (), batch_size: int = 64, **kwargs):
        """Logits and the requested features of raw `inputs`, from one forward pass per batch.

        Implemented by each modality (texts: tokenizer + encoder; images: preprocessing + network).

        Returns:
            `(logits, features)`: `np.ndarray` of shape `(n, num_labels)` and `{feature_key: np.ndarray (n, d)}`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement `predict_outputs`; pass precomputed scores "
            "(a 1-D array, e.g. `model.ood_scores_from_logits(logits)`) to `calibrate_threshold` instead."
        )

    def _fit_data(self, data, labels=None) -> tuple[Any, np.ndarray | None]:
        """`(inputs, labels)` of the data given to `fit_ood_score`; modalities read their dataset columns here."""
        return data, None if labels is None else np.asarray(labels)

    def _ensure_pretrained_encoder(self) -> None:
        """Attach the frozen pretrained encoder that `features="pretrained"` reads (text transformer detectors)."""
        raise ValueError(
            f"{type(self).__name__} has no pretrained feature encoder: fit feature scores with "
            "`features='fine-tuned'`."
        )

    def required_feature_keys(self, name: str | None = None) -> list[str]:
        """The feature keys (see `feature_key`) score `name` (default: the config's `ood_score`) needs."""
        name = name or self.config.ood_score
        spec = (getattr(self.config, "ood_fitted_scores", None) or {}).get(name)
        if spec is None:
            return []
        if spec["kind"] == "combined":
            return sorted({key for c in spec["components"] for key in self.required_feature_keys(c)})
        return [feature_key(spec["features"]["encoder"], spec["features"]["layer"])]

    def _fitted_scorer(self, name: str):
        from .feature_scores import make_feature_scorer

        spec = self.config.ood_fitted_scores[name]
        tensors = self.ood_state.tensors(name)
        for key, shape in spec["shapes"].items():
            if key not in tensors or list(tensors[key].shape) != list(shape):
                found = None if key not in tensors else list(tensors[key].shape)
                raise ValueError(
                    f"The fitted state of score {name!r} is missing or has the wrong shape: tensor {key!r} should "
                    f"have shape {list(shape)} (config.ood_fitted_scores), found {found}. Refit it with "
                    f"`fit_ood_score({spec['kind']!r}, ...)`."
                )
        return make_feature_scorer(spec["kind"], **spec.get("options", {})).load_state_tensors(tensors)

    def ood_scores_from_outputs(self, logits, features: Mapping[str, Any] | None = None, name: str | None = None):
        """OOD scores from logits and features (`predict_outputs`), with score `name` (default: the config's).

        Logit scores use the logits only; fitted feature scores read `features[feature_key(...)]`; a combined score
        computes its components and combines them (`oe_text.score_combination.combine_scores`).

        Returns:
            `np.ndarray` of shape `(n,)` in float64; higher = more anomalous.
        """
        from .score_combination import combine_scores

        validate_detection_config(self.config)
        name = name or self.config.ood_score
        fitted = getattr(self.config, "ood_fitted_scores", None) or {}
        if name not in fitted:
            return compute_score(name, logits, temperature=float(self.config.ood_temperature))
        spec = fitted[name]
        if spec["kind"] == "combined":
            parts = np.stack([self.ood_scores_from_outputs(logits, features, c) for c in spec["components"]], axis=1)
            state = self.ood_state.tensors(name)
            missing = [k for k in ("mean", "std", "weight", "bias") if k not in state]
            if missing or state["weight"].shape[0] != parts.shape[1]:
                raise ValueError(
                    f"The fitted state of combined score {name!r} is missing or has the wrong shape ({missing or ''}"
                    f"{'' if missing else tuple(state['weight'].shape)}); refit it with "
                    "`fit_ood_score('combined', ...)`."
                )
            return combine_scores(parts, **{k: v.cpu().numpy() for k, v in state.items()})
        key = feature_key(spec["features"]["encoder"], spec["features"]["layer"])
        if features is None or key not in features:
            raise ValueError(
                f"Score {name!r} reads the {key!r} features, which were not computed; use `compute_ood_scores` / "
                f"`detect`, or `predict_outputs(inputs, feature_keys={self.required_feature_keys(name)})`."
            )
        return self._fitted_scorer(name).score(features[key])

    def fit_ood_score(
        self,
        kind: str,
        data=None,
        labels=None,
        *,
        name: str | None = None,
        features: str = "fine-tuned",
        layer: int = -1,
        outliers=None,
        outlier_data=None,
        components: Sequence[str] | None = None,
        activate: bool = True,
        batch_size: int = 64,
        chunk_size: int = 4096,
        fitted_on: str | Mapping[str, Any] | None = None,
        precomputed_features: Mapping[str, Any] | None = None,
        **options,
    ) -> str:
        """Fit a score that needs in-distribution data, store its state in the model and (by default) decide with it.

        * `"knn"` (Sun et al. 2022): distance to the k-th nearest L2-normalised training feature. `data` = ID
          *training* inputs. Options of `oe_text.feature_scores.KNNScorer`: `k` (default 10 here), `max_fit_samples`
          (a seeded random subsample bounds the bank), `seed`, `normalize`.
        * `"mahalanobis"` (Lee et al. 2018): smallest Mahalanobis distance to a class mean with a shared covariance.
          `data` = ID training inputs with labels. Options: `reg`.
        * `"gaussian"`: squared Mahalanobis distance to the mean of all ID training features (one Gaussian, no
          labels; two-sided). With `features="input-length"` it scores how atypical an input's length is.
        * `"combined"`: `b + sum_j w_j (s_j - mu_j) / sigma_j` over `components` (score names), standardised on `data`
          (ID **validation** inputs) and weighted by a logistic model separating them from `outliers` (held-out
          auxiliary outliers, never OOD test data); see `oe_text.score_combination`.

        The state is stored as float32 buffers of the model (`self.ood_state`), and `config.ood_fitted_scores[name]`
        records the kind, the features, the options and the tensor shapes, so `save_pretrained` / `push_to_hub` write
        it (safetensors) and `from_pretrained` restores it. With `activate=True` the detector then decides with this
        score (`config.ood_score = name`; any threshold, calibrated for another score, is cleared).

        Args:
            kind (`str`): `"knn"`, `"mahalanobis"`, `"gaussian"` or `"combined"`.
            data: the ID inputs (texts, a `datasets.Dataset` with text and label columns, images, ... as the
                modality's `predict_outputs` takes them).
            labels (array, *optional*): class ids of `data` (Mahalanobis), when `data` does not carry them.
            name (`str`, *optional*): the score's name (lowercase identifier), default `kind`.
            features (`str`, *optional*, defaults to `"fine-tuned"`): `"fine-tuned"` (the detector's own encoder),
                `"pretrained"` (a frozen copy of the pretrained encoder, attached on first use; text transformers) or
                `"input-length"` (the log word count of the raw text; texts only).
            layer (`int`, *optional*, defaults to -1): which hidden layer is pooled (-1: the last; text transformers).
            outliers: held-out auxiliary outliers (`"combined"` only).
            outlier_data: alias of `outliers`.
            components (sequence of `str`, *optional*): scores to combine; default the config's logit score plus
                every fitted feature score.
            activate (`bool`, *optional*, defaults to `True`): switch `config.ood_score` to the new score.
            batch_size (`int`, *optional*, defaults to 64): inputs per forward pass.
            chunk_size (`int`, *optional*, defaults to 4096): inputs per fitting chunk (bounded memory).
            fitted_on (`str` or `dict`, *optional*): what `data` is (recorded in the config and model card).
            precomputed_features (`dict`, *optional*): `{feature_key: array (n, d)}` of `data`, from one
                `predict_outputs` pass shared by several scores (`oe_text.score_selection` fits every candidate from
                one pass); the needed key is read instead of running the model again.
            options: options of the scorer (`k`, `max_fit_samples`, `seed`, `reg`, ...; `c` for `"combined"`).

        Returns:
            `str`: the score's name.
        """
        from .feature_scores import FEATURE_SCORES, make_feature_scorer
        from .score_combination import fit_score_combination

        if kind not in FITTED_SCORE_KINDS:
            raise ValueError(f"`kind` must be one of {FITTED_SCORE_KINDS}, got {kind!r}.")
        name = name or kind
        if not isinstance(name, str) or not _SCORE_NAME.match(name) or "__" in name:
            raise ValueError(f"`name` must be a lowercase identifier such as 'knn_pretrained', got {name!r}.")
        if name in LOGIT_SCORES:
            raise ValueError(f"`name={name!r}` is a logit score's name; choose another, e.g. '{name}_fitted'.")
        if data is None:
            raise ValueError(f"`fit_ood_score({kind!r}, ...)` needs in-distribution `data`.")
        inputs, labels = self._fit_data(data, labels)
        n = len(inputs)
        if n == 0:
            raise ValueError(f"`data` is empty: `fit_ood_score({kind!r})` needs in-distribution inputs.")
        fitted = dict(self.config.ood_fitted_scores or {})
        description = {"dataset": fitted_on} if isinstance(fitted_on, str) else dict(fitted_on or {})
        description["n_examples"] = n

        if kind == "combined":
            outliers = outliers if outliers is not None else outlier_data
            if outliers is None:
                raise ValueError("`fit_ood_score('combined', ...)` needs `outliers` (held-out auxiliary outliers).")
            out_inputs, _ = self._fit_data(outliers, None)
            if components is None:
                base = self.config.ood_score if self.config.ood_score in LOGIT_SCORES else "msp"
                components = [base] + [k for k, v in fitted.items() if v["kind"] != "combined" and k != name]
            components = list(components)
            if len(components) < 2:
                raise ValueError(f"A combined score needs at least 2 `components`, got {components}.")
            for c in components:
                if c == name or (c not in fitted and c not in LOGIT_SCORES):
                    raise ValueError(
                        f"Unknown component {c!r}: components are logit scores {sorted(LOGIT_SCORES)} or fitted "
                        f"scores {sorted(k for k in fitted if k != name)}."
                    )
            keys = sorted({key for c in components for key in self.required_feature_keys(c)})
            parts = []
            for group in (inputs, out_inputs):
                logits, feats = self.predict_outputs(group, keys, batch_size=batch_size)
                parts.append(np.stack([self.ood_scores_from_outputs(logits, feats, c) for c in components], axis=1))
            state = fit_score_combination(parts[0], parts[1], **options)
            description["n_outliers"] = len(out_inputs)
            spec = {
                "kind": kind,
                "components": components,
                "options": dict(options),
                "weights": {c: float(w) for c, w in zip(components, state["weight"] / state["std"])},
                "shapes": {k: list(v.shape) for k, v in state.items()},
                "fitted_on": description,
            }
            tensors = {k: torch.from_numpy(v) for k, v in state.items()}
        else:
            if features not in FEATURE_ENCODERS:
                raise ValueError(f"`features` must be one of {FEATURE_ENCODERS}, got {features!r}.")
            if not isinstance(layer, int) or isinstance(layer, bool):
                raise ValueError(f"`layer` must be an int (-1 = last hidden layer), got {layer!r}.")
            if kind == "knn":
                options.setdefault("k", 10)
            scorer = make_feature_scorer(kind, **options)
            if FEATURE_SCORES[kind].needs_labels:
                if labels is None:
                    raise ValueError(f"`fit_ood_score({kind!r})` needs class labels (`labels=` or a label column).")
                if len(labels) != n:
                    raise ValueError(f"`labels` has {len(labels)} entries for {n} inputs.")
                if np.unique(labels).size < 2:
                    raise ValueError(
                        f"`fit_ood_score({kind!r})` got a single-class set (only class {labels[0]!r}); fit it on the "
                        "in-distribution training data with all its classes."
                    )
            if features == "pretrained":
                self._ensure_pretrained_encoder()
            if features == "input-length" and kind != "gaussian":
                # One positive number per input: a k-NN would normalise it to a constant, a class mean adds nothing.
                raise ValueError(f"`features='input-length'` is scored by `kind='gaussian'`, got {kind!r}.")
            if features == "input-length" and layer != -1:
                raise ValueError(f"`layer` means nothing for `features='input-length'`: leave it at -1, got {layer}.")
            key = feature_key(features, layer)
            given = (precomputed_features or {}).get(key)
            if given is not None and len(given) != n:
                raise ValueError(f"`precomputed_features[{key!r}]` has {len(given)} rows for {n} inputs.")
            for start in range(0, n, chunk_size):
                if given is not None:
                    feats = {key: np.asarray(given[start : start + chunk_size])}
                else:
                    _, feats = self.predict_outputs(inputs[start : start + chunk_size], [key], batch_size=batch_size)
                if start == 0 and kind == "knn":
                    _check_bank_memory(min(n, scorer.max_fit_samples), feats[key].shape[1])
                scorer.partial_fit(feats[key], None if labels is None else labels[start : start + chunk_size])
            tensors = scorer.state_tensors()
            spec = {
                "kind": kind,
                "features": {"encoder": features, "layer": layer, **self._feature_description(features)},
                "options": scorer.options(),
                "shapes": scorer.state_shapes(),
                "fitted_on": description,
            }
        self.ood_state.set_tensors(name, tensors)
        fitted[name] = spec
        self.config.ood_fitted_scores = fitted
        logger.info(f"Fitted OOD score {name!r} ({kind}) on {n} inputs.")
        if activate:
            self.set_ood_score(name, float(self.config.ood_temperature))
        return name

    def _feature_description(self, encoder: str) -> dict[str, Any]:
        """What the features of `encoder` are (pooling, encoder id), recorded with a fitted score."""
        return {}
