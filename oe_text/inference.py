"""Batched, no-grad inference of a sequence classifier on raw texts (used by `detect` and the OOD evaluation).

**Threads.** Inference switches the model to eval mode (dropout off) and back. Calls on the same model from several
threads are serialised by a per-model lock (`evaluation_mode`), so each runs entirely in eval mode and the model's
train/eval mode is restored exactly; calls on different models run in parallel. Training the same model in another
thread while it is used for inference is not supported.

**Processes.** Inside `distributed_inference()`, `predict_outputs` under an `accelerate launch` run splits its batches
over the processes and gathers the logits and features on every process in the texts' order: the same batches and
the same per-batch code as one process, so the outputs match a single-process run row for row. Every process must
then make the same calls on the same texts (the recipes do: each process runs the same evaluation).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .detection import INPUT_LENGTH_KEY


def _check_texts(texts: Sequence[str], empty_reason: str = "an empty text has nothing to classify") -> list[str]:
    """`texts` (or one string) as a non-empty list of non-blank strings; errors name the offending index."""
    if isinstance(texts, str):
        texts = [texts]
    if texts is None or not isinstance(texts, Iterable):
        raise TypeError(f"`texts` must be a string or a list of strings, got {type(texts).__name__}.")
    texts = list(texts)
    if not texts:
        raise ValueError("`texts` is empty: pass at least one string.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"`texts[{i}]` must be a string, got {type(t).__name__}.")
        if not t.strip():
            raise ValueError(f"`texts[{i}]` is empty or whitespace only; {empty_reason}.")
    return texts


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, progress: bool | str = False
) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """Batches of indices, longest inputs first, so that each batch needs little padding.

    Returns:
        `(order, batches)`: the permutation (restore the inputs' order with `np.argsort(order, kind="stable")`) and an
        iterator over its consecutive slices of `batch_size` indices, shown as a progress bar when `progress` is set
        (a string names it).
    """
    order = np.argsort([-n for n in lengths], kind="stable")
    starts = tqdm(
        range(0, len(order), batch_size),
        desc=progress if isinstance(progress, str) else "scoring",
        disable=not progress,
        leave=False,
    )
    return order, (order[start : start + batch_size] for start in starts)


def _usable_limit(value) -> int | None:
    # Tokenizers without a limit report a huge sentinel (int(1e30)); such values are no limit.
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1_000_000 else None


def resolve_max_length(model, tokenizer, max_length: int | None) -> int | None:
    """The truncation length: `max_length` when given and valid, else the smaller of the tokenizer's
    `model_max_length` and the model's `max_position_embeddings` (`None` when neither is set, e.g. an RNN with a
    tokenizer without limit).

    Raises:
        `ValueError`: `max_length` is not a positive int, or exceeds the model's `max_position_embeddings` (the
        position embeddings have no row for longer inputs).
    """
    model_limit = _usable_limit(getattr(model.config, "max_position_embeddings", None))
    if max_length is None:
        limits = [m for m in (_usable_limit(getattr(tokenizer, "model_max_length", None)), model_limit) if m]
        return min(limits) if limits else None
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"`max_length` must be a positive int (tokens per input) or None, got {max_length!r}.")
    if model_limit is not None and max_length > model_limit:
        raise ValueError(
            f"`max_length={max_length}` exceeds what the model accepts: its max_position_embeddings is {model_limit}. "
            f"Pass at most {model_limit}, or None for the default."
        )
    return max_length


_LOCKS_GUARD = threading.Lock()
_MODEL_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_lock(model) -> threading.RLock:
    """The lock that serialises inference on `model` (one per model object, created on first use)."""
    with _LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock


@contextlib.contextmanager
def evaluation_mode(model) -> Iterator:
    """Run the block with `model` in eval mode while holding `model_lock(model)`; restore every submodule's mode on
    exit.

    Without the lock, one thread restoring training mode while another is mid-inference turns dropout on for the
    other's remaining batches (different scores) and can leave a model in the wrong mode.
    """
    with model_lock(model):
        # Every submodule's own mode is restored: `model.train(was_training)` would also switch a submodule that
        # was deliberately in eval mode (a frozen encoder) to training mode.
        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            yield model
        finally:
            for module, training in modes:
                module.training = training


def input_length_features(texts: Sequence[str]) -> np.ndarray:
    """The input-length feature of texts: `log(1 + number of whitespace-separated words)`, shape `(n, 1)`, float32.

    Read from the raw text, so a long document truncated to the model's `max_length` still counts as long.
    """
    return np.log1p(np.array([len(t.split()) for t in texts], dtype=np.float64))[:, None].astype(np.float32)


_DISTRIBUTED = contextvars.ContextVar("oe_text_distributed_inference", default=False)


@contextlib.contextmanager
def distributed_inference(enabled: bool = True) -> Iterator[None]:
    """Within the block, `predict_outputs` (and so `detect`, `compute_ood_scores`, `fit_ood_score`,
    `evaluate_ood`...) shares its batches among the processes of a `torch.distributed` run (`accelerate launch`).

    Every process must make the same `predict_outputs` calls, on the same texts, in the same order: each call gathers
    from all processes, so a call made by one process only waits forever. Without an initialised process group, or
    with one process, nothing changes. The setting is per thread (a `contextvars` variable).

    Args:
        enabled (`bool`, *optional*, defaults to `True`): `False` turns sharding off inside an enclosing block.
    """
    token = _DISTRIBUTED.set(enabled)
    try:
        yield
    finally:
        _DISTRIBUTED.reset(token)


def _process_group() -> tuple[int, int]:
    """`(rank, world_size)` that `predict_outputs` shards over: `(0, 1)` outside `distributed_inference()`."""
    if _DISTRIBUTED.get() and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _batch_outputs(model, inputs: dict[str, torch.Tensor], feature_keys: list[str]):
    """Logits and `{key: features}` of one tokenized batch, from one forward pass, as float32 CPU tensors.

    `model.logits_and_features(**inputs, feature_keys=...)` when the model defines it (as `OEClassifier` does); else
    the model's output, with `"fine-tuned:-1"` features taken as the first token of the last hidden state.
    """
    if hasattr(model, "logits_and_features"):
        logits, feats = model.logits_and_features(**inputs, feature_keys=feature_keys)
    else:
        unknown = [k for k in feature_keys if k != "fine-tuned:-1"]
        if unknown:
            raise ValueError(f"{type(model).__name__} only provides 'fine-tuned:-1' features, not {unknown}.")
        out = model(**inputs, output_hidden_states=bool(feature_keys))
        logits = out.logits
        feats = {key: out.hidden_states[-1][:, 0] for key in feature_keys}
    return logits.float().cpu(), {key: feats[key].float().cpu() for key in feature_keys}


@torch.no_grad()
def predict_outputs(
    model,
    tokenizer,
    texts: Sequence[str],
    feature_keys: Sequence[str] = (),
    batch_size: int = 64,
    max_length: int | None = None,
    progress: bool | str = False,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits and the requested features of `model` on `texts`, batched, under `no_grad`, in eval mode.

    Texts are tokenized with `tokenizer`, truncated to `max_length` (default: the smaller of the tokenizer's
    `model_max_length` and the model's `max_position_embeddings`), sorted by length to pad less, and sent to the
    model's device in batches; outputs come back in the input order. Each batch is one forward pass:
    `model.logits_and_features(**inputs, feature_keys=...)` when the model defines it (as `OEClassifier` does); else
    the model's output, with `"fine-tuned:-1"` features taken as the first token of the last hidden state.

    Inside `distributed_inference()` under several processes, process `r` of `N` runs batches `r, r + N, ...` and
    every process returns all rows (gathered), as one process would.

    Args:
        model: a sequence classifier.
        tokenizer: its tokenizer.
        texts (sequence of `str`): non-empty texts.
        feature_keys (sequence of `str`, *optional*): features to return (`oe_text.detection.feature_key`).
        batch_size (`int`, *optional*, defaults to 64): texts per forward pass.
        max_length (`int`, *optional*): truncation length.
        progress (`bool` or `str`, *optional*): show a progress bar (a string names it; only the first process
            shows it).

    Returns:
        `(logits, features)`: float32 `np.ndarray` of shape `(n, num_labels)` and `{key: np.ndarray (n, d)}`.
    """
    texts = _check_texts(texts)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    feature_keys = list(dict.fromkeys(feature_keys))
    # The input-length feature reads the raw texts, not the model: the whole text counts, truncation or not.
    lengths = {key: input_length_features(texts) for key in feature_keys if key == INPUT_LENGTH_KEY}
    feature_keys = [key for key in feature_keys if key not in lengths]
    limit = resolve_max_length(model, tokenizer, max_length)
    rank, world_size = _process_group()
    order, batches = length_sorted_batches([len(t) for t in texts], batch_size, progress if rank == 0 else False)
    done: list[tuple[int, np.ndarray, dict[str, np.ndarray]]] = []
    with evaluation_mode(model):
        device = next(model.parameters()).device
        for number, idx in enumerate(batches):
            if number % world_size != rank:
                continue
            batch = [texts[i] for i in idx]
            enc = tokenizer(batch, padding=True, truncation=limit is not None, max_length=limit, return_tensors="pt")
            logits, feats = _batch_outputs(model, {k: v.to(device) for k, v in enc.items()}, feature_keys)
            done.append((number, logits.numpy(), {key: f.numpy() for key, f in feats.items()}))
    if world_size > 1:
        gathered: list = [None] * world_size
        torch.distributed.all_gather_object(gathered, done)
        done = sorted((item for part in gathered for item in part), key=lambda item: item[0])
    inverse = np.argsort(order, kind="stable")  # back to the texts' order
    features = {key: np.concatenate([item[2][key] for item in done])[inverse] for key in feature_keys}
    return np.concatenate([item[1] for item in done])[inverse], {**features, **lengths}


def predict_logits(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int | None = None,
    output_features: bool = False,
    progress: bool | str = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Logits (and optionally the features the head reads) of `model` on `texts`: `predict_outputs` without keys.

    Returns:
        `np.ndarray` of shape `(n, num_labels)` in float32, or `(logits, features)` when `output_features=True`.
    """
    keys = ["fine-tuned:-1"] if output_features else []
    logits, feats = predict_outputs(
        model, tokenizer, texts, feature_keys=keys, batch_size=batch_size, max_length=max_length, progress=progress
    )
    return (logits, feats["fine-tuned:-1"]) if output_features else logits


def trainer_logits(trainer, dataset, dtype=np.float32) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits of `trainer.model` on a prepared dataset (tokenized texts or transformed images) with `Trainer.predict`.

    The multi-process path of the recipes' logit scores, text and image alike: under `accelerate launch` the dataset
    is sharded over the processes and the logits are gathered on every process in the dataset's order (the padding of
    the last shard removed). Logits and features of raw texts, in one process or sharded over several
    (`distributed_inference`), are `predict_outputs`.

    Args:
        trainer (`transformers.Trainer`): the trainer holding the model.
        dataset: the inputs, as the model's collator expects them.
        dtype (*optional*, defaults to `np.float32`): dtype of the returned logits.

    Returns:
        `(logits, label_ids)`: `np.ndarray` of shape `(n, num_labels)`, and the labels when the dataset has them.
    """
    out = trainer.predict(dataset)
    logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    return np.asarray(logits, dtype=dtype), (None if out.label_ids is None else np.asarray(out.label_ids))
