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
