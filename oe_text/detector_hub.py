"""Hub persistence shared by every oe-text detector: `save_pretrained` / `push_to_hub` with the detector's own card.

The decision rule itself (scores, threshold, fitted feature-space scores) lives in `oe_text.detection`; this module
only writes and uploads what a detector is: safetensors weights (including the fitted score state), `config.json`
(including the decision rule), extra files such as the tokenizer, and README.md from the detector's model card.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer
from transformers.utils import logging

from .folders import check_detector_folder, may_write_model_card, remove_stale_weights
from .hub import DEFAULT_HUB_TIMEOUT, explain_model_load_error, hub_timeout, remote_code_kwargs, resolve_model_path


logger = logging.get_logger(__name__)

# Hub download options of `from_pretrained` that also apply to the tokenizer saved beside the weights.
TOKENIZER_HUB_KWARGS = (
    "revision",
    "token",
    "cache_dir",
    "local_files_only",
    "subfolder",
    "force_download",
    "proxies",
)
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


def realign_cpu_tensors(model: nn.Module, alignment: int = 64) -> None:
    """Copy CPU parameters/buffers that the safetensors loader left at unaligned addresses into fresh memory.

    Weights loaded from a safetensors file can start at any byte offset, and CPU BLAS kernels take other code paths on
    unaligned memory: the logits then differ from the saved model's in the last bits (~1e-8), which is enough to move
    an input across a calibrated threshold. Fresh torch allocations are aligned, so a copy restores identical logits.
    """
    copies: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.device.type != "cpu" or tensor.numel() == 0 or tensor.data_ptr() % alignment == 0:
                continue
            key = tensor.data_ptr()
            if key not in copies:
                copies[key] = tensor.data.clone(memory_format=torch.contiguous_format)
            tensor.data = copies[key]


def load_saved_tokenizer(name: str, kwargs: dict[str, Any], trust_remote_code: bool = False):
    """The tokenizer saved beside a detector's weights (`None`, with a message, when there is none).

    Never runs code shipped with it unless `trust_remote_code=True`.
    """
    hub_kwargs = {k: kwargs[k] for k in TOKENIZER_HUB_KWARGS if k in kwargs}
    if os.path.isdir(name):
        folder = os.path.join(name, hub_kwargs.get("subfolder") or "")
        if not any(os.path.isfile(os.path.join(folder, f)) for f in _TOKENIZER_FILES):
            logger.info(f"No tokenizer saved in {folder}; `detect` will need `tokenizer=`.")
            return None
    code_kwargs = remote_code_kwargs(trust_remote_code, f"tokenizer of {name}")
    try:
        return AutoTokenizer.from_pretrained(name, **hub_kwargs, **code_kwargs)
    except (OSError, ValueError) as err:
        if isinstance(err, ValueError) and "trust_remote_code" in str(err):
            raise ValueError(
                f"The tokenizer saved in {name} needs custom code (`auto_map` in tokenizer_config.json), which "
                "oe-text does not run from a downloaded detector. Pass `trust_remote_code=True` "
                "(`oe-text ... --trust_remote_code`) only if you trust that code."
            ) from None
        logger.warning(f"Could not load a tokenizer from {name} ({err}); `detect` will need `tokenizer=`.")
        return None


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
        """Files saved beside the weights: the attached tokenizer (`self.tokenizer`) when there is one, so that the
        folder (or Hub repo) is a complete detector."""
        tokenizer = getattr(self, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.save_pretrained(save_directory)

    def record_oe_provenance(
        self,
        in_distribution_dataset: str | None = None,
        auxiliary_dataset: str | None = None,
        oe_weight: float | None = None,
        oe_loss: str | None = None,
        ood_results: Mapping[str, Mapping[str, float]] | str | None = None,
        training_args=None,
        **extra,
    ) -> dict[str, Any]:
        """Record how the detector was trained and evaluated, for the model card (`config.oe`).

        Args:
            in_distribution_dataset (`str`, *optional*): e.g. `"SetFit/sst2"`.
            auxiliary_dataset (`str`, *optional*): the outlier exposure dataset, e.g. `"Salesforce/wikitext"`.
            oe_weight (`float`, *optional*): lambda, the weight of the OE term.
            oe_loss (`str`, *optional*): `"uniform"` (cross-entropy to uniform) or `"energy"`.
            ood_results (`dict` or `str`, *optional*): `{ood_set: {metric: value}}` with the keys of
                `oe_text.metrics.ood_detection_metrics` (fractions in [0, 1]), or a markdown table.
            training_args (`OETrainingArguments`, *optional*): fills `oe_weight` and `oe_loss` when not given.
            extra: other JSON-serialisable entries to keep (e.g. `seed`, `epochs`).

        Returns:
            `dict`: the updated `config.oe`.
        """
        if training_args is not None:
            oe_weight = oe_weight if oe_weight is not None else getattr(training_args, "oe_weight", None)
            oe_loss = oe_loss if oe_loss is not None else getattr(training_args, "oe_loss", None)
        values = {
            "in_distribution_dataset": in_distribution_dataset,
            "auxiliary_dataset": auxiliary_dataset,
            "oe_weight": oe_weight,
            "oe_loss": oe_loss,
            "ood_results": ood_results,
            **extra,
        }
        oe = dict(self.config.oe or {})
        oe.update({k: v for k, v in values.items() if v is not None})
        json.dumps(oe)  # fail now, not at save time, on values config.json cannot hold
        self.config.oe = oe
        return oe

    #: State-dict prefixes a detector cannot do without: a checkpoint lacking them must not load silently.
    _REQUIRED_STATE_PREFIXES = ("ood_state.", "feature_backbone.")
    #: Whether `from_pretrained` attaches the tokenizer saved beside the weights (text detectors).
    _loads_tokenizer = False

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args,
        load_tokenizer: bool = True,
        trust_remote_code: bool = False,
        **kwargs,
    ):
        """`PreTrainedModel.from_pretrained` for detectors: checked state, aligned tensors, the saved tokenizer.

        A local folder must hold `config.json` (`FileNotFoundError` naming the folder otherwise). A Hub id held by
        the offline mirror (`OE_TEXT_MIRROR`) is read from it; any other id goes to the Hub (`HF_ENDPOINT`), and when
        that fails while a mirror is set, `MirrorMissError` names the id and the mirror folder searched. Safetensors
        weights only are needed; `use_safetensors=True` is supported. A checkpoint whose fitted score state or
        pretrained feature encoder is missing or misshapen refuses to load (`_load_checked`). No code shipped with the
        detector runs: the model class is the detector's own whatever `config.json` says, and a text detector's
        tokenizer is loaded with `trust_remote_code=False` (a tokenizer that needs custom code raises a `ValueError`
        saying so) unless `trust_remote_code=True` is passed; `load_tokenizer=False` skips it.
        """
        name = resolve_model_path(pretrained_model_name_or_path)
        model = cls._load_checked(super().from_pretrained, name, *model_args, **kwargs)
        realign_cpu_tensors(model)
        if cls._loads_tokenizer and load_tokenizer:
            model.tokenizer = cls._prepare_loaded_tokenizer(load_saved_tokenizer(name, kwargs, trust_remote_code))
        return model

    @classmethod
    def _prepare_loaded_tokenizer(cls, tokenizer):
        """Hook: adapt the tokenizer `from_pretrained` loaded (e.g. give a language model's a pad token)."""
        return tokenizer

    @classmethod
    def _load_checked(cls, loader, name: str, *model_args, **kwargs):
        """Call `PreTrainedModel.from_pretrained` (`loader`) and fail on missing or misshapen detector state.

        transformers initialises missing weights at random with a warning; for the fitted score state and the frozen
        pretrained encoder that would be a silent change of the decision rule, so it is an error here. A local
        folder without config.json, and a Hub id that neither the offline mirror nor the Hub provides, fail with a
        message naming the folder (or the id and the mirror folder searched).
        """
        want_info = kwargs.pop("output_loading_info", False)
        if os.path.isdir(name):
            check_detector_folder(name, kwargs.get("subfolder"))
        try:
            model, info = loader(name, *model_args, output_loading_info=True, **kwargs)
        except OSError as err:
            explained = explain_model_load_error(name, err)
            if explained is err:
                raise
            raise explained from err
        bad = sorted(
            k
            for k in (*info.get("missing_keys", ()), *(m[0] for m in info.get("mismatched_keys", ())))
            if k.startswith(cls._REQUIRED_STATE_PREFIXES)
        )
        if bad:
            raise OSError(
                f"The detector at {name} lacks (or has the wrong shape for) {len(bad)} tensor(s) its config needs, "
                f"e.g. {bad[:3]}: the fitted OOD score state (`config.ood_fitted_scores`) or the pretrained feature "
                "encoder does not match the weights file. Refusing to load with another decision rule; re-save the "
                "detector."
            )
        return (model, info) if want_info else model

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict | None = None,
        push_to_hub: bool = False,
        *,
        model_card: bool = True,
        model_card_kwargs: dict[str, Any] | None = None,
        overwrite_readme: bool = False,
        timeout: float | None = DEFAULT_HUB_TIMEOUT,
        **kwargs,
    ) -> None:
        """`PreTrainedModel.save_pretrained` (safetensors, config with the threshold) plus extras and a model card.

        Args:
            save_directory, is_main_process, state_dict, kwargs: as `PreTrainedModel.save_pretrained`.
            push_to_hub (`bool`, *optional*, defaults to `False`): then upload the folder to `repo_id` (a kwarg;
                default: the folder's name).
            model_card (`bool`, *optional*, defaults to `True`): write README.md (`build_model_card`).
            model_card_kwargs (`dict`, *optional*): extra arguments of `build_model_card` (e.g. `repo_id`, `tags`).
            overwrite_readme (`bool`, *optional*, defaults to `False`): replace a README.md that oe-text did not
                write. By default such a file (no `oe-text` tag in its metadata) is kept, with a warning, and the card
                is not written.
            timeout (`float`, *optional*, defaults to 60): with `push_to_hub`, seconds each network operation may
                take (`oe_text.hub.hub_timeout`).

        Weight files of an earlier save in the folder (`model.safetensors`, `model-0000x-of-0000y.safetensors`, their
        index, `pytorch_model*.bin`) are removed first, so that none of them can load in place of the new weights.
        """
        push_kwargs = {}
        if push_to_hub:
            push_kwargs = {k: kwargs.pop(k) for k in self._PUSH_KWARGS if k in kwargs}
            push_kwargs["token"] = kwargs.get("token")
        if is_main_process:
            remove_stale_weights(save_directory)
        super().save_pretrained(save_directory, is_main_process=is_main_process, state_dict=state_dict, **kwargs)
        if not is_main_process:
            return
        self._save_extras(save_directory)
        card_kwargs = dict(model_card_kwargs or {})
        repo_id = push_kwargs.pop("repo_id", os.path.basename(os.path.abspath(os.fspath(save_directory))))
        if push_to_hub:
            card_kwargs.setdefault("repo_id", repo_id)
        if model_card and may_write_model_card(save_directory, overwrite_readme):
            self.build_model_card(**card_kwargs).save(os.path.join(save_directory, "README.md"))
        if push_to_hub:
            self._upload_folder(save_directory, repo_id, timeout=timeout, **push_kwargs)

    def _upload_folder(
        self, folder: str | os.PathLike, repo_id: str, timeout: float | None = DEFAULT_HUB_TIMEOUT, **push_kwargs
    ):
        """Create `repo_id` (and the `revision` branch) and upload `folder`; `push_kwargs` as `push_to_hub`'s
        (`commit_message`, `commit_description`, `private`, `token`, `revision`, `create_pr`)."""
        from huggingface_hub import HfApi

        api = HfApi()
        private, token, revision = (
            push_kwargs.pop("private", None),
            push_kwargs.get("token"),
            push_kwargs.get("revision"),
        )
        commit_message = push_kwargs.pop("commit_message", None) or f"Upload {type(self).__name__} detector"
        with hub_timeout(timeout):
            repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
            if revision is not None and not revision.startswith("refs/pr"):
                api.create_branch(repo_id=repo_id, branch=revision, token=token, exist_ok=True)
            return api.upload_folder(
                repo_id=repo_id, folder_path=os.fspath(folder), commit_message=commit_message, **push_kwargs
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
        timeout: float | None = DEFAULT_HUB_TIMEOUT,
    ):
        """Save the detector (weights, config with the threshold, extras, model card) and upload it to `repo_id`.

        Unlike `PreTrainedModel.push_to_hub`, which replaces README.md with a generic card, the uploaded README.md
        is the detector's own card (its usage snippet names `repo_id`).

        Args:
            repo_id (`str`): `"user/name"` (or `"name"` in the token's namespace).
            commit_message, commit_description, private, token, revision, create_pr, max_shard_size: as
                `PreTrainedModel.push_to_hub`.
            tags (`list[str]`, *optional*): extra model card tags.
            timeout (`float`, *optional*, defaults to 60): seconds each network operation (connect, send, wait for
                the answer) may take; a server that does not answer in time raises `TimeoutError`. `None`: no limit.

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
                timeout=timeout,
            )


__all__ = ["DetectorHubMixin", "load_saved_tokenizer", "realign_cpu_tensors", "resolve_model_path"]
