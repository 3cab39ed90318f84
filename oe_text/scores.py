"""OOD scores from logits: pure functions, **higher = more anomalous** (OOD is the positive class).

Every function takes logits of shape `(n, K)` (a `torch.Tensor` or array) and returns a float64 numpy array of shape
`(n,)`. Feature-space scores that need fitting on in-distribution data live in `oe_text.feature_scores`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def _as_logits(logits) -> torch.Tensor:
    z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).detach()
    if z.dim() != 2 or z.shape[-1] < 2:
        raise ValueError(f"logits must have shape (n, num_classes) with num_classes >= 2, got {tuple(z.shape)}.")
    if not torch.isfinite(z).all():
        raise ValueError("logits contain NaN or inf; cannot compute an OOD score.")
    return z.double()


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature}.")


def msp_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Negative maximum softmax probability (Hendrycks & Gimpel 2017), the paper's main score.

    `score(x) = -max_k softmax(z / T)_k`, in `[-1, -1/K]`; higher = more anomalous.
    """
    _check_temperature(temperature)
    return -torch.softmax(_as_logits(logits) / temperature, dim=-1).max(dim=-1).values.numpy()


def max_logit_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Negative maximum logit (Hendrycks et al. 2022): `score(x) = -max_k z_k / T`; higher = more anomalous."""
    _check_temperature(temperature)
    return -(_as_logits(logits) / temperature).max(dim=-1).values.numpy()


def energy_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Free energy (Liu et al. 2020): `score(x) = E(x) = -T * logsumexp(z / T)`; higher = more anomalous."""
    _check_temperature(temperature)
    return (-temperature * torch.logsumexp(_as_logits(logits) / temperature, dim=-1)).numpy()


def kl_uniform_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Negative KL divergence from uniform to the softmax, the paper's Table 10 alternative to MSP.

    `score(x) = -KL(U || p) = -(logsumexp(z/T) - mean(z/T) - log K)`, in `(-inf, 0]`; a uniform softmax scores 0,
    the maximum; higher = more anomalous.
    """
    _check_temperature(temperature)
    z = _as_logits(logits) / temperature
    return -(z.logsumexp(-1) - z.mean(-1) - np.log(z.shape[-1])).numpy()


def entropy_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Softmax entropy: `score(x) = -sum_k p_k log p_k` with `p = softmax(z / T)`; higher = more anomalous."""
    _check_temperature(temperature)
    logp = torch.log_softmax(_as_logits(logits) / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1).numpy()


LOGIT_SCORES: dict[str, Callable[..., np.ndarray]] = {
    "msp": msp_score,
    "max_logit": max_logit_score,
    "energy": energy_score,
    "kl_uniform": kl_uniform_score,
    "entropy": entropy_score,
}


def register_score(name: str, fn: Callable[..., np.ndarray]) -> None:
    """Register a custom logit score `fn(logits, temperature=1.0) -> np.ndarray` (higher = more anomalous)."""
    if not callable(fn):
        raise TypeError(f"score {name!r} must be callable, got {type(fn).__name__}.")
    LOGIT_SCORES[name] = fn


def get_score_fn(name: str) -> Callable[..., np.ndarray]:
    """Look up a logit score by name; the error lists the known names."""
    try:
        return LOGIT_SCORES[name]
    except KeyError:
        raise ValueError(f"Unknown OOD score {name!r}; known logit scores: {sorted(LOGIT_SCORES)}.") from None


def compute_score(name: str, logits, temperature: float = 1.0) -> np.ndarray:
    """Compute the logit score `name` (see `LOGIT_SCORES`) at `temperature`."""
    return get_score_fn(name)(logits, temperature=temperature)
