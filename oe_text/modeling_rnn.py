"""Recurrent text encoders trained from scratch: the NLP baselines of the Outlier Exposure paper.

The paper's text classifier (Hendrycks, Mazeika & Dietterich 2019, Section 4.3 and `NLP_classification/train.py`) is a
2-layer unidirectional GRU with 50-dimensional word embeddings and 128 hidden units, whose classifier reads the
top layer's hidden state after the last token. `RNNEncoder` reproduces it (and the LSTM of the same shape); the
linear head lives in `OEClassifier`.

One difference in how padding is handled: the paper pads on the left and runs the GRU over the padding, so the state
it classifies has also seen the pad tokens. Here the recurrence runs over the real tokens only
(`pack_padded_sequence`), so the feature of a text does not depend on how much padding its batch needed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


RNN_KINDS = ("gru", "lstm")

#: The paper's NLP model: 50-dim embeddings, 2 recurrent layers of 128 units, no dropout.
RNN_DEFAULTS: dict[str, Any] = {
    "embedding_dim": 50,
    "hidden_size": 128,
    "num_layers": 2,
    "dropout": 0.0,
    "pad_token_id": 0,
}


def rnn_backbone_config(vocab_size: int, **overrides) -> dict[str, Any]:
    """The `backbone_config` dict of a recurrent backbone: `RNN_DEFAULTS` plus `vocab_size`, with `overrides`.

    Args:
        vocab_size (`int`): number of rows of the embedding matrix (the tokenizer's `len(tokenizer)`).
        overrides: any of `embedding_dim`, `hidden_size`, `num_layers`, `dropout`, `pad_token_id`.

    Returns:
        `dict`: a JSON-serialisable config for `RNNEncoder`.
    """
    unknown = sorted(set(overrides) - set(RNN_DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown recurrent backbone option(s) {unknown}; known: {sorted(RNN_DEFAULTS)}.")
    config = {**RNN_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}, "vocab_size": vocab_size}
    _check_rnn_config(config)
    return config


def _check_rnn_config(config: dict[str, Any]) -> None:
    for key in ("vocab_size", "embedding_dim", "hidden_size", "num_layers"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Recurrent backbone `{key}` must be a positive integer, got {value!r}.")
    dropout = config.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"Recurrent backbone `dropout` must be in [0, 1), got {dropout!r}.")
    pad = config.get("pad_token_id")
    if pad is not None and (isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad < config["vocab_size"]):
        raise ValueError(f"`pad_token_id` must be None or in [0, vocab_size={config['vocab_size']}), got {pad!r}.")


class RNNEncoder(nn.Module):
    """Embedding + multi-layer unidirectional GRU/LSTM; returns the top layer's state after each text's last token.

    Args:
        kind (`str`): `"gru"` or `"lstm"`.
        vocab_size, embedding_dim, hidden_size, num_layers, dropout, pad_token_id: see `RNN_DEFAULTS`; `dropout`
            is applied between recurrent layers, as `torch.nn.GRU` does.
    """

    def __init__(
        self,
        kind: str,
        vocab_size: int,
        embedding_dim: int = 50,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        pad_token_id: int | None = 0,
    ):
        super().__init__()
        if kind not in RNN_KINDS:
            raise ValueError(f"Recurrent backbone kind must be one of {RNN_KINDS}, got {kind!r}.")
        _check_rnn_config(
            {
                "vocab_size": vocab_size,
                "embedding_dim": embedding_dim,
                "hidden_size": hidden_size,
                "num_layers": num_layers,
                "dropout": dropout,
                "pad_token_id": pad_token_id,
            }
        )
        self.kind = kind
        self.pad_token_id = pad_token_id
        self.hidden_size = hidden_size
        self.embeddings = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_token_id)
        rnn_cls = nn.GRU if kind == "gru" else nn.LSTM
        self.rnn = rnn_cls(
            input_size=embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )

    def _mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"`attention_mask` shape {tuple(attention_mask.shape)} differs from `input_ids` shape "
                    f"{tuple(input_ids.shape)}."
                )
            return attention_mask.bool()
        if self.pad_token_id is not None:
            return input_ids != self.pad_token_id
        return torch.ones_like(input_ids, dtype=torch.bool)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode a batch of token ids.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, seq_len)`): token ids, padded on either side.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 for real tokens, 0 for
                padding. Without it, tokens equal to `pad_token_id` are padding.

        Returns:
            `torch.FloatTensor` of shape `(batch, hidden_size)`: the top layer's hidden state after each text's last
            real token (a text with no real token gets the state after its first position).
        """
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must have shape (batch, seq_len), got {tuple(input_ids.shape)}.")
        mask = self._mask(input_ids, attention_mask)
        lengths = mask.sum(dim=1)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        right_padded = bool((mask == (positions[None, :] < lengths[:, None])).all())
        if not right_padded:
            # Move each row's real tokens to the front (stable order) so packing reads exactly them.
            order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
            input_ids = input_ids.gather(1, order)
        embeds = self.embeddings(input_ids)
        packed = pack_padded_sequence(embeds, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h_n = state[0] if self.kind == "lstm" else state
        # h_n is (num_layers, batch, hidden) in the caller's batch order (packing sorts and unsorts it).
        return h_n[-1]
