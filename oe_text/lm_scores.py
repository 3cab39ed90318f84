"""OOD scores of texts under a causal language model: pure functions, **higher = more anomalous**.

Every function takes the model's next-token logits `(n, T, V)` for a padded batch of `n` texts, their `input_ids`
`(n, T)` and `attention_mask` `(n, T)` (1 = token, 0 = padding) and returns a float64 numpy array of shape `(n,)`,
like the classifier scores of `oe_text.scores`. Position `t` predicts token `t + 1`.

* `nll`: mean negative log-likelihood per predicted token (nats). The likelihood score; Outlier Exposure's abstract
  notes that generative models can give OOD text *higher* likelihood (lower NLL) than in-distribution text.
* `bpc`: bits per character, `sum_t NLL_t / (ln 2 * n_characters)`; needs the number of characters of each text.
* `kl_uniform`: the paper's LM score (`NLP_language_modeling/eval_ood.py`): how close the next-token
  distributions are to uniform, `-mean_t KL(U || p_t)` over the text's positions. An OE-trained LM predicts
  near-uniform distributions on outliers, which score near 0, the maximum.
* `max_prob`: negative mean over positions of the top next-token probability, `-mean_t max_k p_t,k` (MSP per token).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .losses import causal_lm_labels, token_log_likelihoods
from .scores import _lookup, _register


def _as_batch(logits, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = logits.detach() if isinstance(logits, torch.Tensor) else torch.as_tensor(np.asarray(logits))
    if z.dim() != 3 or z.shape[-1] < 2:
        raise ValueError(f"`logits` must have shape (n, seq_len, vocab) with vocab >= 2, got {tuple(z.shape)}.")
    ids = torch.as_tensor(input_ids, device=z.device)
    if tuple(ids.shape) != tuple(z.shape[:2]):
        raise ValueError(f"`input_ids` must have shape {tuple(z.shape[:2])}, got {tuple(ids.shape)}.")
    mask = torch.ones_like(ids) if attention_mask is None else torch.as_tensor(attention_mask, device=z.device)
    if tuple(mask.shape) != tuple(ids.shape):
        raise ValueError(f"`attention_mask` must have shape {tuple(ids.shape)}, got {tuple(mask.shape)}.")
    if not torch.isfinite(z).all():
        raise ValueError("`logits` contain NaN or inf; cannot compute an OOD score.")
    # fp32: the (n, T, V) logits are large, and scores need no more precision than the model computes with.
    return z.float(), ids.long(), mask.bool()


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature}.")


def _token_nll(logits, input_ids, attention_mask, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    _check_temperature(temperature)
    z, ids, mask = _as_batch(logits, input_ids, attention_mask)
    log_probs, predicted = token_log_likelihoods(z / temperature, causal_lm_labels(ids, mask))
    empty = (predicted.sum(-1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"Text(s) at batch position(s) {empty} have no predicted token (a single token and no beginning-of-text "
            "token before it): their likelihood is undefined. Encode texts with `oe_text.modeling_lm.encode_for_lm`, "
            "which prepends the tokenizer's bos token, or use a tokenizer that has one."
        )
    return -log_probs.double().sum(-1), predicted.sum(-1)


def nll_score(logits, input_ids, attention_mask=None, temperature: float = 1.0, num_characters=None) -> np.ndarray:
    """Mean negative log-likelihood per predicted token: `-1/n sum_t log p(x_{t+1} | x_{<=t})` (nats).

    Higher = less likely = more anomalous. Perplexity is `exp(nll)`.

    Args:
        logits (`torch.Tensor` or array of shape `(n, T, V)`): next-token logits of a padded batch.
        input_ids (`(n, T)`): the token ids; attention_mask (`(n, T)`, *optional*): 1 for tokens, 0 for padding.
        temperature (`float`, *optional*, defaults to 1.0): divides the logits before the softmax.
        num_characters: unused (a common signature for every LM score).

    Returns:
        `np.ndarray` of shape `(n,)`, float64, >= 0.
    """
    total, count = _token_nll(logits, input_ids, attention_mask, temperature)
    return (total / count).cpu().numpy()


def bits_per_character(
    logits, input_ids, attention_mask=None, temperature: float = 1.0, num_characters=None
) -> np.ndarray:
    """Bits per character: `sum_t -log2 p(x_{t+1} | x_{<=t}) / n_characters`; higher = more anomalous.

    Comparable across tokenizers (unlike NLL per token). `num_characters` should count the characters the kept tokens
    cover (the detector uses the tokenizer's offsets, so a truncated text counts only its kept part).

    Args:
        logits, input_ids, attention_mask, temperature: as `nll_score`.
        num_characters (array of `n` positive ints): characters of each text.

    Returns:
        `np.ndarray` of shape `(n,)`, float64.
    """
    if num_characters is None:
        raise ValueError("`bpc` needs `num_characters`: the number of characters of each text.")
    chars = np.asarray(num_characters, dtype=np.float64).reshape(-1)
    total, _ = _token_nll(logits, input_ids, attention_mask, temperature)
    if chars.shape[0] != total.shape[0] or not (chars > 0).all():
        raise ValueError(f"`num_characters` must hold {total.shape[0]} positive counts, got {chars.tolist()}.")
    return total.cpu().numpy() / np.log(2.0) / chars


def _position_mean(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    return ((values.double() * mask).sum(-1) / mask.sum(-1).clamp(min=1)).cpu().numpy()


def kl_uniform_lm_score(
    logits, input_ids, attention_mask=None, temperature: float = 1.0, num_characters=None
) -> np.ndarray:
    """The paper's LM OOD score: `-1/T_i sum_t KL(U || p_t)` over the text's positions; higher = more anomalous.

    With `p_t = softmax(z_t / T)` over `V` tokens, `KL(U || p_t) = H(U, p_t) - log V = logsumexp(z_t) - mean(z_t) -
    log V`. The paper's `eval_ood.py` scores a segment by `mean_t sum_k (1/V) log p_t,k = -mean_t H(U, p_t)`, which
    ranks texts identically (it differs by the constant `log V`); this form is 0 for uniform predictions, like
    `oe_text.scores.kl_uniform_score`. Every non-padding position counts, the last one (which predicts past the text)
    included, as in the paper.

    Returns:
        `np.ndarray` of shape `(n,)`, float64, <= 0.
    """
    _check_temperature(temperature)
    z, _, mask = _as_batch(logits, input_ids, attention_mask)
    z = z / temperature
    kl = z.logsumexp(-1) - z.mean(-1) - float(np.log(z.shape[-1]))
    return -_position_mean(kl, mask)


def max_prob_lm_score(
    logits, input_ids, attention_mask=None, temperature: float = 1.0, num_characters=None
) -> np.ndarray:
    """Negative mean top next-token probability, `-1/T_i sum_t max_k softmax(z_t / T)_k`; higher = more anomalous.

    Returns:
        `np.ndarray` of shape `(n,)`, float64, in `[-1, -1/V]`.
    """
    _check_temperature(temperature)
    z, _, mask = _as_batch(logits, input_ids, attention_mask)
    top = torch.softmax(z / temperature, dim=-1).max(dim=-1).values
    return -_position_mean(top, mask)


LM_SCORES: dict[str, Callable[..., np.ndarray]] = {
    "nll": nll_score,
    "bpc": bits_per_character,
    "kl_uniform": kl_uniform_lm_score,
    "max_prob": max_prob_lm_score,
}


def register_lm_score(name: str, fn: Callable[..., np.ndarray]) -> None:
    """Register a custom LM score `fn(logits, input_ids, attention_mask, temperature=1.0, num_characters=None)`."""
    _register(LM_SCORES, name, fn, "LM score")


def get_lm_score_fn(name: str) -> Callable[..., np.ndarray]:
    """Look up a language-model score by name; the error lists the known names."""
    return _lookup(LM_SCORES, name, "language-model OOD score", "language-model scores")


def compute_lm_score(
    name: str, logits, input_ids, attention_mask=None, temperature: float = 1.0, num_characters=None
) -> np.ndarray:
    """Compute the LM score `name` (see `LM_SCORES`); higher = more anomalous, float64 array of shape `(n,)`."""
    return get_lm_score_fn(name)(
        logits, input_ids, attention_mask, temperature=temperature, num_characters=num_characters
    )
