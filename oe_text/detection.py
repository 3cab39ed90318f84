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

**Unset threshold.** Before calibration there is no decision to make: `detections_from_logits` returns `is_ood=None`
for every input (with a one-time warning saying how to calibrate), unless `require_threshold=True`, which raises
`ThresholdNotCalibratedError` instead, or an explicit `threshold=` is passed.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from transformers.utils import logging

from .hub import is_mirrored, mirror_root, resolve_hub_id
from .metrics import threshold_at_tpr
from .scores import compute_score, get_score_fn


logger = logging.get_logger(__name__)

#: Detection fields a config needs for `OODDetectorMixin`, with their defaults.
DETECTION_CONFIG_DEFAULTS: dict[str, Any] = {
    "ood_score": "msp",
    "ood_temperature": 1.0,
    "ood_threshold": None,
    "threshold_tpr": None,
    "threshold_calibration": None,
}


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
        score_fn (`Callable`, *optional*): looks a score name up (raising on an unknown one); default the logit
            scores' `get_score_fn` (language-model detectors pass `oe_text.lm_scores.get_lm_score_fn`).

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
    if check_score:
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

    The host class must provide `self.config` (with the fields of `DETECTION_CONFIG_DEFAULTS` and `id2label`) and,
    for `calibrate_threshold` on raw inputs, `compute_ood_scores(inputs, **kwargs)`. `get_ood_score_fn` names the
    score registry (the logit scores; language-model detectors use `oe_text.lm_scores`).
    """

    @staticmethod
    def get_ood_score_fn(name: str):
        """The score function called `name` in this detector's registry; a `ValueError` lists the known names."""
        return get_score_fn(name)

    def ood_scores_from_logits(self, logits) -> np.ndarray:
        """OOD scores of `logits` with the config's `ood_score` and `ood_temperature`.

        Args:
            logits (`torch.Tensor` or array of shape `(n, num_labels)`): classifier logits.

        Returns:
            `np.ndarray` of shape `(n,)` in float64; higher = more anomalous.
        """
        validate_detection_config(self.config, score_fn=self.get_ood_score_fn)
        return compute_score(self.config.ood_score, logits, temperature=float(self.config.ood_temperature))

    def compute_ood_scores(self, inputs, **kwargs) -> np.ndarray:
        """OOD scores of raw `inputs`; implemented by models that know how to preprocess their inputs."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement `compute_ood_scores`; pass precomputed scores "
            "(a 1-D array, e.g. `model.ood_scores_from_logits(logits)`) to `calibrate_threshold` instead."
        )

    def set_ood_score(self, ood_score: str, temperature: float = 1.0) -> None:
        """Switch the OOD score (and temperature); clears any threshold, which was calibrated for the old score.

        Args:
            ood_score (`str`): a name in `oe_text.scores.LOGIT_SCORES`.
            temperature (`float`, *optional*, defaults to 1.0): the score's temperature, > 0.
        """
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
        self, logits, threshold: float | None = None, require_threshold: bool = False
    ) -> list[dict[str, Any]]:
        """Per-input predictions and OOD decisions from classifier logits.

        Args:
            logits (`torch.Tensor` or array of shape `(n, num_labels)`): classifier logits.
            threshold (`float`, *optional*): overrides the config's `ood_threshold`.
            require_threshold (`bool`, *optional*, defaults to `False`): see `ood_decisions`.

        Returns:
            `list[dict]`, one per input, with keys `label` (name of the predicted label, from `config.id2label`),
            `score` (softmax probability of that label, at temperature 1), `ood_score` (`float`, higher = more
            anomalous) and `is_ood` (`bool`, or `None` when no threshold is available).
        """
        z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).detach().cpu()
        if z.dim() != 2:
            raise ValueError(f"`logits` must have shape (n, num_labels), got {tuple(z.shape)}.")
        scores = self.ood_scores_from_logits(z)
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


class DetectorHubMixin:
    """Saving and pushing a detector together with its own model card, for text and image detectors alike.

    `PreTrainedModel.push_to_hub` would replace README.md with a generic card; here `save_pretrained` writes the
    detector's card (`build_model_card`, which the host class defines) and any extra files (`_save_extras`, e.g. the
    tokenizer), and `push_to_hub` uploads exactly the folder `save_pretrained` writes.
    """

    _PUSH_KWARGS = ("repo_id", "commit_message", "commit_description", "private", "revision", "create_pr")

    def build_model_card(self, **card_kwargs):
        """The detector's `huggingface_hub.ModelCard`; `card_kwargs` holds `repo_id` and `tags` when pushing."""
        raise NotImplementedError

    def _save_extras(self, save_directory: str | os.PathLike) -> None:
        """Files saved beside the weights (the text detector's tokenizer); nothing by default."""

    @classmethod
    def _resolve_pretrained_name(cls, name: str | os.PathLike) -> str:
        """A Hub id held by the offline mirror (`OE_TEXT_MIRROR`) loads from it; any other id goes to the Hub."""
        name = os.fspath(name)
        if mirror_root() is not None and not os.path.exists(name) and is_mirrored(name, "model"):
            return resolve_hub_id(name, "model")
        return name

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict | None = None,
        push_to_hub: bool = False,
        *,
        model_card: bool = True,
        model_card_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ) -> None:
        """`PreTrainedModel.save_pretrained` (safetensors, config with the threshold) plus extras and a model card.

        Args:
            save_directory, is_main_process, state_dict, kwargs: as `PreTrainedModel.save_pretrained`.
            push_to_hub (`bool`, *optional*, defaults to `False`): then upload the folder to `repo_id` (a kwarg;
                default: the folder's name).
            model_card (`bool`, *optional*, defaults to `True`): write README.md (`build_model_card`).
            model_card_kwargs (`dict`, *optional*): extra arguments of `build_model_card` (e.g. `repo_id`, `tags`).
        """
        push_kwargs = {}
        if push_to_hub:
            push_kwargs = {k: kwargs.pop(k) for k in self._PUSH_KWARGS if k in kwargs}
            push_kwargs["token"] = kwargs.get("token")
        super().save_pretrained(save_directory, is_main_process=is_main_process, state_dict=state_dict, **kwargs)
        if not is_main_process:
            return
        self._save_extras(save_directory)
        card_kwargs = dict(model_card_kwargs or {})
        repo_id = push_kwargs.pop("repo_id", os.path.basename(os.path.abspath(os.fspath(save_directory))))
        if push_to_hub:
            card_kwargs.setdefault("repo_id", repo_id)
        if model_card:
            self.build_model_card(**card_kwargs).save(os.path.join(save_directory, "README.md"))
        if push_to_hub:
            self._upload_folder(save_directory, repo_id, **push_kwargs)

    def _upload_folder(
        self,
        folder: str | os.PathLike,
        repo_id: str,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
    ):
        from huggingface_hub import HfApi

        api = HfApi()
        repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        if revision is not None and not revision.startswith("refs/pr"):
            api.create_branch(repo_id=repo_id, branch=revision, token=token, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=os.fspath(folder),
            commit_message=commit_message or f"Upload {type(self).__name__} detector",
            commit_description=commit_description,
            token=token,
            revision=revision,
            create_pr=create_pr,
        )

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = "50GB",
        tags: list[str] | None = None,
    ):
        """Save the detector (weights, config with the threshold, extras, model card) and upload it to `repo_id`.

        Unlike `PreTrainedModel.push_to_hub`, which replaces README.md with a generic card, the uploaded README.md
        is the detector's own card (its usage snippet names `repo_id`).

        Args:
            repo_id (`str`): `"user/name"` (or `"name"` in the token's namespace).
            commit_message, commit_description, private, token, revision, create_pr, max_shard_size: as
                `PreTrainedModel.push_to_hub`.
            tags (`list[str]`, *optional*): extra model card tags.

        Returns:
            `huggingface_hub.CommitInfo` of the upload.
        """
        with tempfile.TemporaryDirectory() as tmp_dir:
            self.save_pretrained(
                tmp_dir, max_shard_size=max_shard_size, model_card_kwargs={"repo_id": repo_id, "tags": tags}
            )
            return self._upload_folder(
                tmp_dir,
                repo_id,
                commit_message=commit_message,
                commit_description=commit_description,
                private=private,
                token=token,
                revision=revision,
                create_pr=create_pr,
            )
