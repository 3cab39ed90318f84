"""Batched, no-grad inference of a sequence classifier on raw texts (used by `detect` and the OOD evaluation)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


def _check_texts(texts: Sequence[str], empty_reason: str = "an empty text has nothing to classify") -> list[str]:
    """`texts` (or one string) as a non-empty list of non-blank strings; errors name the offending index."""
    if isinstance(texts, str):
        texts = [texts]
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


def _max_length(model, tokenizer, max_length: int | None) -> int | None:
    if max_length is not None:
        return max_length
    limits = [getattr(tokenizer, "model_max_length", None), getattr(model.config, "max_position_embeddings", None)]
    limits = [m for m in limits if isinstance(m, int) and 0 < m < 1_000_000]
    return min(limits) if limits else None


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

    Args:
        model: a sequence classifier.
        tokenizer: its tokenizer.
        texts (sequence of `str`): non-empty texts.
        feature_keys (sequence of `str`, *optional*): features to return (`oe_text.detection.feature_key`).
        batch_size (`int`, *optional*, defaults to 64): texts per forward pass.
        max_length (`int`, *optional*): truncation length.
        progress (`bool` or `str`, *optional*): show a progress bar (a string names it).

    Returns:
        `(logits, features)`: float32 `np.ndarray` of shape `(n, num_labels)` and `{key: np.ndarray (n, d)}`.
    """
    texts = _check_texts(texts)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    feature_keys = list(dict.fromkeys(feature_keys))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    limit = _max_length(model, tokenizer, max_length)
    order, batches = length_sorted_batches([len(t) for t in texts], batch_size, progress)
    logits_out: list[torch.Tensor] = []
    feats_out: dict[str, list[torch.Tensor]] = {key: [] for key in feature_keys}
    try:
        for idx in batches:
            batch = [texts[i] for i in idx]
            enc = tokenizer(batch, padding=True, truncation=limit is not None, max_length=limit, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            if hasattr(model, "logits_and_features"):
                logits, feats = model.logits_and_features(**enc, feature_keys=feature_keys)
            else:
                unknown = [k for k in feature_keys if k != "fine-tuned:-1"]
                if unknown:
                    raise ValueError(f"{type(model).__name__} only provides 'fine-tuned:-1' features, not {unknown}.")
                out = model(**enc, output_hidden_states=bool(feature_keys))
                logits = out.logits
                feats = {key: out.hidden_states[-1][:, 0] for key in feature_keys}
            logits_out.append(logits.float().cpu())
            for key in feature_keys:
                feats_out[key].append(feats[key].float().cpu())
    finally:
        model.train(was_training)
    inverse = np.argsort(order, kind="stable")  # back to the texts' order
    features = {key: torch.cat(chunks).numpy()[inverse] for key, chunks in feats_out.items()}
    return torch.cat(logits_out).numpy()[inverse], features


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
