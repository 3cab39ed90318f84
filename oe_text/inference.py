"""Batched, no-grad inference of a sequence classifier on raw texts (used by `detect` and the OOD evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

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


def _max_length(model, tokenizer, max_length: int | None) -> int | None:
    if max_length is not None:
        return max_length
    limits = [getattr(tokenizer, "model_max_length", None), getattr(model.config, "max_position_embeddings", None)]
    limits = [m for m in limits if isinstance(m, int) and 0 < m < 1_000_000]
    return min(limits) if limits else None


@torch.no_grad()
def predict_logits(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int | None = None,
    output_features: bool = False,
    progress: bool | str = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Logits (and optionally penultimate features) of `model` on `texts`, batched, under `no_grad`.

    Texts are tokenized with `tokenizer`, truncated to `max_length` (default: the smaller of the tokenizer's
    `model_max_length` and the model's `max_position_embeddings`), and sent to the model's device in batches.

    Features are what the classification head sees: `model.extract_features(**inputs)` when the model defines it (as
    `OEClassifier` does), else the first token of the last hidden state.

    Returns:
        `np.ndarray` of shape `(n, num_labels)` in float32, or `(logits, features)` when `output_features=True`.
    """
    texts = _check_texts(texts)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    limit = _max_length(model, tokenizer, max_length)
    # Sorting by length keeps padding small; the original order is restored at the end.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    logits_out, feats_out = [], []
    bar = tqdm(
        range(0, len(texts), batch_size),
        desc=progress if isinstance(progress, str) else "scoring",
        disable=not progress,
        leave=False,
    )
    try:
        for start in bar:
            batch = [texts[i] for i in order[start : start + batch_size]]
            enc = tokenizer(batch, padding=True, truncation=limit is not None, max_length=limit, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            if output_features and hasattr(model, "extract_features"):
                feats = model.extract_features(**enc)
                logits = model.classify_features(feats) if hasattr(model, "classify_features") else model(**enc).logits
            else:
                out = model(**enc, output_hidden_states=output_features)
                logits = out.logits
                feats = out.hidden_states[-1][:, 0] if output_features else None
            logits_out.append(logits.float().cpu())
            if output_features:
                feats_out.append(feats.float().cpu())
    finally:
        model.train(was_training)
    inverse = np.argsort(order, kind="stable")
    logits_np = torch.cat(logits_out).numpy()[inverse]
    if not output_features:
        return logits_np
    return logits_np, torch.cat(feats_out).numpy()[inverse]
