"""`OETrainer`: a `transformers.Trainer` that adds the Outlier Exposure term to the training loss."""

from __future__ import annotations

import json
import os
import tempfile
from collections import deque
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from datasets import IterableDataset
from torch.utils.data import SequentialSampler
from transformers import DataCollatorWithPadding, Trainer, default_data_collator
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, has_length, sort_checkpoints
from transformers.utils import logging

from .losses import (
    causal_lm_labels,
    energy_margin_loss,
    language_modeling_loss,
    lm_margin_ranking_loss,
    outlier_exposure_loss,
    token_outlier_exposure_loss,
)
from .modeling_lm import ensure_pad_token, is_causal_lm
from .outlier_stream import OutlierStream
from .training_args import CAUSAL_LM_OE_LOSSES, CLASSIFIER_OE_LOSSES, OETrainingArguments


logger = logging.get_logger(__name__)

OUTLIER_STATE_NAME = "outlier_stream_state_{rank}.json"
# Written last by `Trainer._save_checkpoint`: a checkpoint folder without it was interrupted while being saved.
TRAINER_STATE_NAME = "trainer_state.json"
_SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids")
# Inputs that carry no model input and must not reach the forward pass of the outliers.
_LABEL_KEYS = ("label", "labels", "label_ids")
_MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values", "inputs_embeds")


def concat_id_and_outliers(
    id_inputs: dict[str, torch.Tensor],
    outlier_inputs: dict[str, torch.Tensor],
    pad_values: dict[str, int] | None = None,
    padding_side: str = "right",
) -> dict[str, torch.Tensor]:
    """Stack in-distribution and outlier inputs into one batch (in-distribution rows first).

    Sequence tensors of different lengths are padded to the longer one with `pad_values[key]` (0 by default), on
    `padding_side`. Keys of the in-distribution batch that the outliers lack are an error, except `token_type_ids`
    (filled with 0, a single segment); keys only the outliers have are dropped.
    """
    pad_values = pad_values or {}
    merged = {}
    n_out = next(iter(outlier_inputs.values())).shape[0] if outlier_inputs else 0
    for key, a in id_inputs.items():
        if not isinstance(a, torch.Tensor):
            continue
        b = outlier_inputs.get(key)
        if b is None:
            if key == "token_type_ids":
                b = torch.zeros((n_out, *a.shape[1:]), dtype=a.dtype, device=a.device)
            else:
                raise ValueError(
                    f"The in-distribution batch has input {key!r} but the outlier batch has only "
                    f"{sorted(outlier_inputs)}; prepare both datasets with the same processing_class."
                )
        b = b.to(device=a.device, dtype=a.dtype)
        if a.dim() >= 2 and a.shape[1:] != b.shape[1:]:
            if a.dim() != 2:
                raise ValueError(f"Cannot stack input {key!r}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ.")
            length = max(a.shape[1], b.shape[1])
            a, b = (_pad_to(t, length, pad_values.get(key, 0), padding_side) for t in (a, b))
        merged[key] = torch.cat([a, b], dim=0)
    return merged


def truncate_outliers(
    outlier_inputs: dict[str, torch.Tensor], length: int, padding_side: str = "right"
) -> dict[str, torch.Tensor]:
    """Cut the token sequences of an outlier batch to at most `length` positions.

    Right-padded rows keep their first `length` tokens; left-padded rows their last `length`. Non-sequence inputs
    (e.g. `pixel_values`) are returned unchanged.
    """
    out = dict(outlier_inputs)
    for key in _SEQUENCE_KEYS:
        t = out.get(key)
        if isinstance(t, torch.Tensor) and t.dim() == 2 and t.shape[1] > length:
            out[key] = t[:, -length:] if padding_side == "left" else t[:, :length]
    return out


def _write_json_atomic(path: str, obj: Any) -> None:
    """Write `obj` as JSON to `path` through a temporary file and `os.replace`: readers see the old or the new file."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _pad_to(t: torch.Tensor, length: int, value: int, side: str) -> torch.Tensor:
    extra = length - t.shape[1]
    if extra == 0:
        return t
    pad = (extra, 0) if side == "left" else (0, extra)
    return F.pad(t, pad, value=value)


def _check_outlier_texts(dataset, text_column: str, peek: int = 1000) -> None:
    """Refuse an outlier set whose texts are all empty: OE would train on padding alone, silently.

    A map-style set is checked whole; a streamed one on its first `peek` rows (an empty stream is an error too).
    """
    if hasattr(dataset, "__len__"):
        texts = dataset[text_column]
        what = f"all {len(texts)}"
    else:
        texts = [row[text_column] for row in dataset.take(peek)]
        what = f"the first {len(texts)}"
    if not texts:
        raise ValueError(f"The outlier dataset is empty: no rows in column {text_column!r}.")
    if not any(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(
            f"The outlier dataset's texts are empty ({what} rows of column {text_column!r}): Outlier Exposure "
            "would train on padding only. Check `oe_text_column` and the auxiliary data."
        )


class OETrainer(Trainer):
    """`transformers.Trainer` with Outlier Exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019).

    For each in-distribution micro-batch the trainer draws `args.oe_micro_batch_size` auxiliary outliers and sends
    both through the model in **one** forward pass (so normalisation layers see both, as the paper's code does). The
    loss is

        loss = CE(logits_in, labels) + oe_weight * OE(logits_out)

    where `OE` is `outlier_exposure_loss` (cross-entropy to the uniform distribution) or, with `oe_loss="energy"`,
    `energy_margin_loss` on both parts. Both terms are logged (`ce_loss`, `oe_loss`). With `oe_weight=0` or no
    `outlier_dataset` the trainer is exactly `transformers.Trainer`.

    **Causal language models** (any `AutoModelForCausalLM`, see `oe_text.modeling_lm`) are trained the same way with
    per-token terms: `ce_loss` is the next-token cross-entropy of the in-distribution rows (`labels` from the batch,
    or the input ids with padding masked), and the OE term is `token_outlier_exposure_loss` (`oe_loss="uniform"`,
    the paper's `NLP_language_modeling/train.py`) or `lm_margin_ranking_loss` (`oe_loss="margin"`, margin
    `args.oe_margin`). Each term is a mean over its micro-batch's tokens, so gradient accumulation equals one large
    batch when micro-batches hold the same number of tokens (fixed-length blocks, as the paper's segments).

    The outliers come from an `OutlierStream`: reshuffled every pass, endless, disjoint across processes, seeded by
    `args.oe_seed` (default `args.seed`), and saved in every checkpoint (atomically, before older checkpoints are
    rotated away) so that resuming continues the stream. `args.oe_length_matching` draws them to the length of the
    step's in-distribution batches ("bucket") or cuts them to it ("truncate"); `args.dataloader_num_workers` workers
    read map-style outliers ahead.

    Args:
        outlier_dataset (`datasets.Dataset`, `datasets.IterableDataset` or map-style dataset, *optional*):
            Auxiliary outliers. Rows with `input_ids` (or `pixel_values`) are used as they are; rows with raw text in
            `args.oe_text_column` are tokenized with `processing_class` (truncated to `args.oe_max_length`).
        outlier_collator (`Callable`, *optional*):
            Collates a list of outlier rows into tensors. Default: `DataCollatorWithPadding(processing_class)` for
            tokenizers, else `default_data_collator`.
        *args, **kwargs: as `transformers.Trainer`.
    """

    def __init__(
        self,
        model=None,
        args: OETrainingArguments | None = None,
        *trainer_args,
        outlier_dataset=None,
        outlier_collator: Callable | None = None,
        **kwargs,
    ):
        if args is None:
            args = OETrainingArguments(output_dir="tmp_oe_trainer")
        if not isinstance(args, OETrainingArguments):
            raise TypeError(
                f"`args` must be an OETrainingArguments (it carries the OE settings), got {type(args).__name__}."
            )
        if args.dataloader_pin_memory and args.device.type not in ("cuda", "xpu", "npu", "mps"):
            # Pinned memory only speeds up copies to an accelerator; without one, torch warns on every DataLoader.
            args.dataloader_pin_memory = False
        super().__init__(model, args, *trainer_args, **kwargs)
        self.oe_active = outlier_dataset is not None and args.oe_weight > 0
        self.is_causal_lm = is_causal_lm(self.model)
        if self.oe_active:
            self._check_oe_loss_for_model()
        self.outlier_stream: OutlierStream | None = None
        self._oe_logs: dict[str, list[torch.Tensor]] = {"ce_loss": [], "oe_loss": []}
        # Outlier batches drawn for the micro-batches of the current optimizer step (see `get_batch_samples`).
        self._outlier_queue: deque[tuple[Any, int | None]] = deque()
        if not self.oe_active:
            return
        # Our loss is a per-micro-batch mean: let the Trainer divide it by the accumulation steps.
        self.loss_is_scaled_for_ga = False
        dataset = self._prepare_outlier_dataset(outlier_dataset)
        self.outlier_stream = OutlierStream(
            dataset,
            batch_size=args.oe_micro_batch_size,
            collate_fn=self._outlier_collate_fn(outlier_collator),
            seed=args.oe_seed if args.oe_seed is not None else args.seed,
            rank=self.accelerator.process_index,
            world_size=self.accelerator.num_processes,
            shuffle_buffer_size=args.oe_shuffle_buffer_size,
            lengths=self._outlier_lengths(dataset),
            min_bucket_size=args.oe_length_bucket_size,
            num_workers=args.dataloader_num_workers,
            # Pinned memory only helps (and only exists) for copies to a GPU.
            pin_memory=args.dataloader_pin_memory and self.args.device.type == "cuda",
            prefetch_factor=args.dataloader_prefetch_factor or 2,
        )

    def _check_oe_loss_for_model(self) -> None:
        allowed = CAUSAL_LM_OE_LOSSES if self.is_causal_lm else CLASSIFIER_OE_LOSSES
        if self.args.oe_loss not in allowed:
            kind = "a causal language model" if self.is_causal_lm else "a classifier"
            raise ValueError(
                f"`oe_loss={self.args.oe_loss!r}` does not apply to {kind} ({type(self.model).__name__}); "
                f"use one of {list(allowed)}."
            )
        if self.is_causal_lm and hasattr(self.processing_class, "pad"):
            ensure_pad_token(self.processing_class)  # outlier batches are padded

    # ------------------------------------------------------------------ outlier data
    def _prepare_outlier_dataset(self, dataset):
        columns = getattr(dataset, "column_names", None)
        if columns is None and hasattr(dataset, "features") and dataset.features is not None:
            columns = list(dataset.features)
        if columns is None:
            return dataset  # rows of unknown schema: the collator must cope
        if any(key in columns for key in ("input_ids", "pixel_values", "inputs_embeds")):
            extra = [c for c in columns if c not in _MODEL_INPUT_KEYS]
            return dataset.remove_columns(extra) if extra else dataset
        text_column = self.args.oe_text_column
        if text_column not in columns:
            raise ValueError(
                f"The outlier dataset has neither model inputs (input_ids/pixel_values) nor the text column "
                f"{text_column!r} (set `oe_text_column`); its columns are {columns}."
            )
        tokenizer = self.processing_class
        if tokenizer is None or not callable(tokenizer):
            raise ValueError("Raw-text outliers need a tokenizer: pass `processing_class=` to OETrainer.")
        _check_outlier_texts(dataset, text_column)
        max_length = self.args.oe_max_length
        if max_length is None:
            limit = getattr(tokenizer, "model_max_length", None)
            max_length = limit if isinstance(limit, int) and limit < 1_000_000 else 512

        def tokenize(batch):
            texts = batch[text_column]
            for text in texts:
                if not isinstance(text, str):
                    raise TypeError(f"Outlier column {text_column!r} must hold strings, got {type(text).__name__}.")
            return tokenizer(texts, truncation=True, max_length=max_length)

        kwargs = {"batched": True, "remove_columns": columns}
        if hasattr(dataset, "__len__") and not hasattr(dataset, "set_epoch"):
            with self.args.main_process_first(desc="tokenizing outliers"):
                return dataset.map(tokenize, desc="Tokenizing outliers", **kwargs)
        return dataset.map(tokenize, **kwargs)

    def _outlier_lengths(self, dataset) -> list[int] | None:
        """Token lengths of map-style tokenized outliers when `oe_length_matching="bucket"`, else None."""
        if self.args.oe_length_matching != "bucket":
            return None
        columns = getattr(dataset, "column_names", None)
        if isinstance(dataset, IterableDataset) or not columns or "input_ids" not in columns:
            logger.info("oe_length_matching='bucket' needs map-style tokenized outliers; cutting them to length only.")
            return None
        try:  # from Arrow without building Python lists (21k WikiText-2 rows: ~1 ms instead of 0.3 s)
            import pyarrow.compute as pc

            column = dataset.with_format("arrow")["input_ids"]
            return pc.list_value_length(column).to_numpy(zero_copy_only=False).tolist()
        except (ImportError, AttributeError, TypeError, ValueError):
            return [len(ids) for ids in dataset["input_ids"]]

    def _outlier_collate_fn(self, collator: Callable | None) -> Callable:
        if collator is None:
            tokenizer = self.processing_class
            collator = DataCollatorWithPadding(tokenizer) if hasattr(tokenizer, "pad") else default_data_collator

        def collate(rows: list[dict[str, Any]]):
            rows = [{k: v for k, v in row.items() if k not in _LABEL_KEYS} for row in rows]
            return collator(rows)

        return collate

    def _pad_values(self) -> tuple[dict[str, int], str]:
        tokenizer = self.processing_class
        pad_id = getattr(tokenizer, "pad_token_id", None)
        values = {"input_ids": pad_id if pad_id is not None else 0, "attention_mask": 0, "token_type_ids": 0}
        return values, getattr(tokenizer, "padding_side", "right")

    def _get_eval_sampler(self, eval_dataset):
        # transformers applies `train_sampling_strategy="group_by_length"` to evaluation too, which returns
        # `predict` outputs in a shuffled order; evaluation keeps the dataset's order (sharded in order when
        # distributed, and gathered back in order by Accelerate).
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_eval_sampler(eval_dataset)
        if eval_dataset is None or not has_length(eval_dataset) or self.args.world_size > 1:
            return None
        return SequentialSampler(eval_dataset)

    # ------------------------------------------------------------------ outliers per optimizer step
    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device):
        """`Trainer.get_batch_samples`, plus drawing the outliers of every micro-batch of this optimizer step.

        With `oe_length_matching` on, all micro-batches of a step get outliers matched to the step's longest
        in-distribution batch, so gradient accumulation of 2 x B draws exactly the outliers of one batch of 2B.
        """
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        # Only the training loop calls this (before it switches the model to training mode on the first step).
        if self.oe_active and self.args.oe_length_matching != "none":
            lengths = [b["input_ids"].shape[-1] for b in batch_samples if isinstance(b.get("input_ids"), torch.Tensor)]
            target = max(lengths) if lengths else None
            self._outlier_queue.clear()
            self._outlier_queue.extend((self.outlier_stream.next_batch(target), target) for _ in batch_samples)
        return batch_samples, num_items_in_batch

    def _next_outliers(self) -> dict[str, torch.Tensor]:
        if self._outlier_queue:
            outliers, target = self._outlier_queue.popleft()
        else:
            outliers, target = self.outlier_stream.next_batch(), None
        if target is not None:
            outliers = truncate_outliers(outliers, target, self._pad_values()[1])
        return self._prepare_inputs(outliers)

    # ------------------------------------------------------------------ loss
    def compute_loss(
        self,
        model,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        """In training with OE on: CE on the in-distribution rows + `oe_weight` x OE term on the outlier rows."""
        if not self.oe_active or not model.training:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        if self.is_causal_lm:
            return self._compute_causal_lm_loss(model, inputs, return_outputs)
        inputs = dict(inputs)
        labels = next((inputs.pop(k) for k in _LABEL_KEYS if k in inputs), None)
        if labels is None:
            raise ValueError("OE training needs labelled in-distribution batches (a `labels` or `label` column).")
        n_in = labels.shape[0]
        outliers = self._next_outliers()
        pad_values, side = self._pad_values()
        outputs = model(**concat_id_and_outliers(inputs, outliers, pad_values, side))
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if logits.dim() != 2 or labels.dim() != 1:
            raise ValueError(
                "OETrainer supports single-label classification: expected logits (batch, num_labels) and labels "
                f"(batch,), got {tuple(logits.shape)} and {tuple(labels.shape)}."
            )
        id_logits, out_logits = logits[:n_in], logits[n_in:]
        ce = F.cross_entropy(id_logits.float(), labels, label_smoothing=self.args.label_smoothing_factor)
        if self.args.oe_loss == "energy":
            oe = energy_margin_loss(
                id_logits,
                out_logits,
                m_in=self.args.oe_energy_m_in,
                m_out=self.args.oe_energy_m_out,
                temperature=self.args.oe_energy_temperature,
            )
        else:
            oe = outlier_exposure_loss(out_logits)
        return self._combine_terms(ce, oe, outputs, id_logits, return_outputs)

    def _combine_terms(
        self, ce: torch.Tensor, oe: torch.Tensor, outputs, id_logits: torch.Tensor, return_outputs: bool
    ):
        """`ce + oe_weight * oe`, both terms kept for logging; the outputs carry the in-distribution logits only."""
        loss = ce + self.args.oe_weight * oe
        # Kept as tensors: a .item() here would synchronise the device on every micro-batch. Without logging they
        # would only pile up.
        if self.args.logging_strategy != "no":
            self._oe_logs["ce_loss"].append(ce.detach())
            self._oe_logs["oe_loss"].append(oe.detach())
        if return_outputs:
            outputs["logits"] = id_logits
            return loss, outputs
        return loss

    def _compute_causal_lm_loss(self, model, inputs: dict[str, Any], return_outputs: bool):
        """Next-token CE on the in-distribution rows + `oe_weight` x per-token OE term on the outlier rows."""
        inputs = {k: v for k, v in inputs.items() if k not in ("label", "label_ids")}
        labels = inputs.pop("labels", None)
        if labels is None:
            labels = causal_lm_labels(inputs["input_ids"], inputs.get("attention_mask"))
        n_in = labels.shape[0]
        outliers = self._next_outliers()
        pad_values, side = self._pad_values()
        batch = concat_id_and_outliers(inputs, outliers, pad_values, side)
        outputs = model(**batch)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        # The in-distribution rows may have been padded to the outliers' length: their labels get -100 there.
        labels = _pad_to(labels, logits.shape[1], -100, side)
        id_logits, out_logits = logits[:n_in], logits[n_in:]
        mask = batch.get("attention_mask")
        out_mask = mask[n_in:] if mask is not None else None
        ce = language_modeling_loss(id_logits, labels)
        if self.args.oe_loss == "margin":
            out_labels = causal_lm_labels(batch["input_ids"][n_in:], out_mask)
            oe = lm_margin_ranking_loss(id_logits, labels, out_logits, out_labels, margin=self.args.oe_margin)
        else:
            oe = token_outlier_exposure_loss(out_logits, out_mask)
        return self._combine_terms(ce, oe, outputs, id_logits, return_outputs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean CE and OE terms since the last training log (averaged over processes)."""
        if "loss" in logs and self._oe_logs["ce_loss"]:
            for key, values in self._oe_logs.items():
                mean = torch.stack(values).mean().to(self.args.device)
                logs[key] = round(self.accelerator.gather(mean).mean().item(), 6)
                values.clear()
        super().log(logs, start_time)

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model, trial) -> None:
        # The outlier state goes into the new checkpoint folder first, atomically: `Trainer._save_checkpoint` deletes
        # older checkpoints (`save_total_limit`) at its very end, so a crash at any point leaves either the previous
        # complete checkpoint or the new complete one.
        if self.outlier_stream is not None:
            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, OUTLIER_STATE_NAME.format(rank=self.accelerator.process_index))
            _write_json_atomic(path, self.outlier_stream.state_dict())
        super()._save_checkpoint(model, trial)

    def last_complete_checkpoint(self, folder: str | None = None) -> str | None:
        """The newest checkpoint in `folder` (default `output_dir`) that was saved completely, or None.

        A checkpoint is complete when it has `trainer_state.json` (written last by `Trainer`) and, with OE on, this
        process's outlier stream state. Newer incomplete ones (a crash while saving) are skipped with a warning.
        """
        folder = folder or self.args.output_dir
        if not os.path.isdir(folder):
            return None
        state_name = OUTLIER_STATE_NAME.format(rank=self.accelerator.process_index)
        for checkpoint in reversed(sort_checkpoints(folder)):
            needed = [TRAINER_STATE_NAME] + ([state_name] if self.outlier_stream is not None else [])
            missing = [name for name in needed if not os.path.isfile(os.path.join(checkpoint, name))]
            if not missing:
                return checkpoint
            logger.warning(f"Skipping the incomplete checkpoint {checkpoint} (no {', '.join(missing)}).")
        return None

    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        """`Trainer.train`; on resume, the outlier stream continues from the checkpoint's position.

        `resume_from_checkpoint=True` picks the newest *complete* checkpoint in `output_dir` (see
        `last_complete_checkpoint`).
        """
        if resume_from_checkpoint is True:
            checkpoint = self.last_complete_checkpoint()
            if checkpoint is None:
                raise ValueError(f"No complete checkpoint in output_dir {self.args.output_dir!r} to resume from.")
            resume_from_checkpoint = checkpoint
        if resume_from_checkpoint and self.outlier_stream is not None:
            self._load_outlier_state(resume_from_checkpoint)
        self._outlier_queue.clear()
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _load_outlier_state(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, OUTLIER_STATE_NAME.format(rank=self.accelerator.process_index))
        if not os.path.isfile(path):
            logger.warning(
                f"No outlier stream state at {path}: the outlier stream restarts from its beginning "
                "(checkpoint written without OE or by another trainer)."
            )
            return
        try:
            with open(path) as f:
                state = json.load(f)
            self.outlier_stream.load_state_dict(state)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"The outlier stream state {path} is not valid JSON ({err}); it is corrupt.") from None
        except ValueError as err:
            raise ValueError(f"Cannot resume from {path}: {err}") from None
