"""Outlier Exposure losses: pure functions of logits.

Convention used everywhere in oe-text: the OE term is the *cross-entropy* from the model's softmax to the uniform
distribution, `H(U, p) = -1/K sum_k log p_k`, whose minimum `log K` is reached exactly at uniform outputs. It differs
from the KL divergence `KL(U || p) = H(U, p) - log K` (minimum 0) only by the constant `log K`, so both give the same
gradients; the cross-entropy is what the paper's code minimises and what the trainer logs as `oe_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_logits(logits: torch.Tensor, name: str) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (batch, num_classes), got {type(logits).__name__}.")
    if logits.dim() != 2 or logits.shape[-1] < 2:
        raise ValueError(
            f"`{name}` must have shape (batch, num_classes) with num_classes >= 2, got {tuple(logits.shape)}."
        )


def outlier_exposure_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from softmax(logits) to the uniform distribution, averaged over the batch.

    For logits `z` of `K` classes:

        H(U, softmax(z)) = -1/K * sum_k log softmax(z)_k = logsumexp(z) - mean(z)

    This returns the **cross-entropy** (minimum `log K`, reached exactly when all logits of a row are equal), not the
    KL divergence to uniform (minimum 0); the two differ by the constant `log K`. It is computed in fp32 whatever the
    input dtype so that bf16/fp16 logits give accurate values and finite gradients.

    Args:
        logits (`torch.Tensor` of shape `(batch, K)`): the model's logits on auxiliary outliers.

    Returns:
        `torch.Tensor`: a scalar in fp32. An empty batch gives 0 (no outliers, no OE term).
    """
    _check_logits(logits, "logits")
    if logits.shape[0] == 0:
        return logits.float().sum() * 0.0
    z = logits.float()
    return (z.logsumexp(dim=-1) - z.mean(dim=-1)).mean()


def free_energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Free energy `E(x) = -T * logsumexp(z / T)` per row (Liu et al. 2020); lower for in-distribution inputs."""
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature}.")
    return -temperature * torch.logsumexp(logits.float() / temperature, dim=-1)


def energy_margin_loss(
    id_logits: torch.Tensor,
    outlier_logits: torch.Tensor,
    m_in: float,
    m_out: float,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Energy-bounded learning objective of Liu et al., "Energy-based Out-of-distribution Detection" (NeurIPS 2020).

    With the free energy `E(x) = -T logsumexp(z/T)`:

        L = mean_ID relu(E(x_in) - m_in)^2 + mean_OOD relu(m_out - E(x_out))^2

    i.e. a squared hinge pushing in-distribution energies below `m_in` and outlier energies above `m_out`. The paper's
    CIFAR margins are `m_in=-25`, `m_out=-7` with weight 0.1. Computed in fp32.

    Args:
        id_logits (`torch.Tensor` of shape `(n_in, K)`): logits on in-distribution examples.
        outlier_logits (`torch.Tensor` of shape `(n_out, K)`): logits on auxiliary outliers.
        m_in (`float`): energy margin for in-distribution inputs.
        m_out (`float`): energy margin for outliers; must be >= `m_in`.
        temperature (`float`, *optional*, defaults to 1): the energy temperature `T`.

    Returns:
        `torch.Tensor`: a scalar in fp32.
    """
    _check_logits(id_logits, "id_logits")
    _check_logits(outlier_logits, "outlier_logits")
    if m_out < m_in:
        raise ValueError(f"`m_out` ({m_out}) must be >= `m_in` ({m_in}): outliers should get the higher energy.")
    loss = id_logits.float().sum() * 0.0
    if id_logits.shape[0]:
        loss = loss + F.relu(free_energy(id_logits, temperature) - m_in).pow(2).mean()
    if outlier_logits.shape[0]:
        loss = loss + F.relu(m_out - free_energy(outlier_logits, temperature)).pow(2).mean()
    return loss


# ---------------------------------------------------------------------------------------------- language models
# Causal language models (the paper's other NLP experiment, NLP_language_modeling/train.py) are trained on token
# sequences: logits have shape (batch, seq_len, vocab) and position t predicts token t + 1. Labels follow the Hugging
# Face convention: the input ids themselves, with -100 where there is nothing to predict (padding).

IGNORE_INDEX = -100


def _check_token_logits(logits: torch.Tensor, name: str) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"`{name}` must be a torch.Tensor of shape (batch, seq_len, vocab), got {type(logits).__name__}."
        )
    if logits.dim() != 3 or logits.shape[-1] < 2:
        raise ValueError(
            f"`{name}` must have shape (batch, seq_len, vocab) with vocab >= 2, got {tuple(logits.shape)}."
        )


def _check_mask(mask: torch.Tensor | None, logits: torch.Tensor, name: str) -> torch.Tensor:
    if mask is None:
        return torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device)
    if tuple(mask.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"`{name}` must have shape {tuple(logits.shape[:2])} (batch, seq_len), got {tuple(mask.shape)}."
        )
    return mask.to(device=logits.device).bool()


def causal_lm_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Language-modelling labels: `input_ids` with padding (`attention_mask == 0`) replaced by -100.

    The mask, not the pad id, decides what is padding, so a tokenizer whose pad token is its end-of-text token
    (`tokenizer.pad_token = tokenizer.eos_token`, the usual GPT-2 set-up) keeps its real end-of-text tokens as targets.
    """
    labels = input_ids.clone()
    if attention_mask is not None:
        labels[attention_mask.to(labels.device) == 0] = IGNORE_INDEX
    return labels


def token_log_likelihoods(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of every next token and where one is defined, for a causal LM.

    `log p(x_{t+1} | x_{<=t}) = log_softmax(z_t)[x_{t+1}]` for t = 0..T-2; positions whose label is -100 are masked.
    Computed in fp32.

    Args:
        logits (`torch.Tensor` of shape `(batch, T, V)`): next-token logits.
        labels (`torch.LongTensor` of shape `(batch, T)`): the input ids, -100 where there is nothing to predict.

    Returns:
        `(log_probs, mask)`, both of shape `(batch, T - 1)`: the log-likelihood of each predicted token (0 where
        masked) and a boolean mask of the predicted tokens.
    """
    _check_token_logits(logits, "logits")
    if tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"`labels` must have shape {tuple(logits.shape[:2])}, got {tuple(labels.shape)}.")
    targets = labels[:, 1:].to(logits.device)
    mask = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def language_modeling_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The usual causal language-modelling loss: mean next-token negative log-likelihood over the predicted tokens.

        L_LM = -1/N * sum_{i,t: label_{i,t+1} != -100} log softmax(z_{i,t})[x_{i,t+1}]

    with `N` the number of predicted tokens in the batch (nats per token; perplexity is `exp(L_LM)`).

    Args:
        logits (`torch.Tensor` of shape `(batch, T, V)`): next-token logits of in-distribution sequences.
        labels (`torch.LongTensor` of shape `(batch, T)`): their input ids, -100 at padding (`causal_lm_labels`).

    Returns:
        `torch.Tensor`: a scalar in fp32; 0 when nothing is predicted (empty batch, one-token sequences).
    """
    log_probs, mask = token_log_likelihoods(logits, labels)
    return -log_probs.sum() / mask.sum().clamp(min=1)


def token_outlier_exposure_loss(logits: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's OE term for language models: cross-entropy to the uniform distribution, averaged over tokens.

    At every non-padding position `t` of every outlier sequence, the next-token distribution `p_t = softmax(z_t)` over
    the `V` vocabulary entries is pushed towards uniform:

        L_OE = 1/N * sum_{i,t: mask_{i,t} = 1} H(U, p_{i,t}),   H(U, p) = -1/V sum_k log p_k = logsumexp(z) - mean(z)

    with `N` the number of non-padding positions. This is `loss_oe = -log_softmax(logits_oe).mean(-1).mean()` of the
    paper's `NLP_language_modeling/train.py` (which has no padding: its segments are fixed-length), minimum `log V`.

    Args:
        logits (`torch.Tensor` of shape `(batch, T, V)`): the model's logits on auxiliary outlier sequences.
        attention_mask (`torch.Tensor` of shape `(batch, T)`, *optional*): 1 for tokens, 0 for padding (default: all
            positions count).

    Returns:
        `torch.Tensor`: a scalar in fp32; 0 for an empty batch.
    """
    _check_token_logits(logits, "logits")
    mask = _check_mask(attention_mask, logits, "attention_mask")
    z = logits.float()
    per_position = z.logsumexp(dim=-1) - z.mean(dim=-1)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)


def sequence_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean log-likelihood per predicted token, `1/n_i * sum_t log p(x_{i,t+1} | x_{i,<=t})`.

    Args:
        logits (`torch.Tensor` of shape `(batch, T, V)`), labels (`torch.LongTensor` of shape `(batch, T)`): as in
            `language_modeling_loss`.

    Returns:
        `torch.Tensor` of shape `(batch,)` in fp32 (nats per token, <= 0); 0 for a sequence with no predicted token.
    """
    log_probs, mask = token_log_likelihoods(logits, labels)
    return log_probs.sum(-1) / mask.sum(-1).clamp(min=1)


def lm_margin_ranking_loss(
    id_logits: torch.Tensor,
    id_labels: torch.Tensor,
    outlier_logits: torch.Tensor,
    outlier_labels: torch.Tensor,
    margin: float = 1.0,
) -> torch.Tensor:
    """Margin-ranking OE term: outlier log-likelihood pushed below in-distribution log-likelihood by `margin`.

    The paper's density-estimation variant (used there for PixelCNN++) on length-normalised log-likelihoods
    `ll(x) = sequence_log_likelihood` (nats per token), over all in-distribution / outlier pairs of the batch:

        L_OE = 1/(n_in * n_out) * sum_{i,j} max(0, margin + ll(x_out_j) - ll(x_in_i))

    It is zero once every outlier is at least `margin` nats per token less likely than every in-distribution
    sequence of the batch. Per-token log-likelihoods are compared because texts differ in length (a total
    log-likelihood would rank texts mainly by their length).

    Args:
        id_logits (`torch.Tensor` of shape `(n_in, T, V)`), id_labels (`(n_in, T)`): in-distribution sequences.
        outlier_logits (`torch.Tensor` of shape `(n_out, T', V)`), outlier_labels (`(n_out, T')`): auxiliary outliers.
        margin (`float`, *optional*, defaults to 1.0): required gap in nats per token, >= 0.

    Returns:
        `torch.Tensor`: a scalar in fp32; 0 when either side is empty.
    """
    if not margin >= 0:
        raise ValueError(f"`margin` must be >= 0, got {margin}.")
    ll_in = sequence_log_likelihood(id_logits, id_labels)
    ll_out = sequence_log_likelihood(outlier_logits, outlier_labels)
    if ll_in.numel() == 0 or ll_out.numel() == 0:
        return ll_in.sum() * 0.0 + ll_out.sum() * 0.0
    return F.relu(margin + ll_out.unsqueeze(0) - ll_in.unsqueeze(1)).mean()
