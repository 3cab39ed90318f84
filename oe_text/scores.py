"""OOD scores from logits: pure functions, **higher = more anomalous** (OOD is the positive class).

Every function takes logits of shape `(n, K)` (a `torch.Tensor` on any device, or an array) and returns a float64
numpy array of shape `(n,)`. Feature-space scores that need fitting on in-distribution data (Mahalanobis, k-NN) live in
`oe_text.feature_scores`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np
import torch


def _as_logits(logits) -> torch.Tensor:
    if isinstance(logits, torch.Tensor):
        z = logits.detach().cpu()
    else:
        try:
            z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise ValueError(f"`logits` must be an array of numbers, got {type(logits).__name__} ({err}).") from None
    if z.dim() != 2 or z.shape[-1] < 2:
        raise ValueError(f"`logits` must have shape (n, num_classes) with num_classes >= 2, got {tuple(z.shape)}.")
    if not torch.isfinite(z).all():
        raise ValueError("`logits` contain NaN or inf; cannot compute an OOD score.")
    return z.double()


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature}.")


def msp_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Negative maximum softmax probability (Hendrycks & Gimpel 2017), the paper's main score.

    `score(x) = -max_k softmax(z / T)_k`, in `[-1, -1/K]`; higher = more anomalous.

    Args:
        logits (array or `torch.Tensor` of shape `(n, K)`): classifier logits.
        temperature (`float`, *optional*, defaults to 1.0): softmax temperature `T > 0`.

    Returns:
        `np.ndarray` of shape `(n,)`, float64.
    """
    _check_temperature(temperature)
    return -torch.softmax(_as_logits(logits) / temperature, dim=-1).max(dim=-1).values.numpy()


def max_logit_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Negative maximum logit (Hendrycks et al. 2022): `score(x) = -max_k z_k / T`; higher = more anomalous.

    Args:
        logits (array or `torch.Tensor` of shape `(n, K)`): classifier logits.
        temperature (`float`, *optional*, defaults to 1.0): divides the logits (does not change the ranking).

    Returns:
        `np.ndarray` of shape `(n,)`, float64.
    """
    _check_temperature(temperature)
    return -(_as_logits(logits) / temperature).max(dim=-1).values.numpy()


def energy_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Free energy (Liu et al. 2020): `score(x) = E(x) = -T * logsumexp(z / T)`; higher = more anomalous.

    Args:
        logits (array or `torch.Tensor` of shape `(n, K)`): classifier logits.
        temperature (`float`, *optional*, defaults to 1.0): energy temperature `T > 0` (Liu et al. use 1).

    Returns:
        `np.ndarray` of shape `(n,)`, float64.
    """
    _check_temperature(temperature)
    return (-temperature * torch.logsumexp(_as_logits(logits) / temperature, dim=-1)).numpy()


def kl_uniform_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Negative KL divergence from uniform to the softmax, the paper's Table 10 alternative to MSP.

    `score(x) = -KL(U || p) = -(logsumexp(z/T) - mean(z/T) - log K)`, in `(-inf, 0]`; a uniform softmax scores 0,
    the maximum; higher = more anomalous. It ranks inputs like the paper's cross-entropy to uniform (they differ by
    the constant `log K`). Arguments and return value as `msp_score`.
    """
    _check_temperature(temperature)
    z = _as_logits(logits) / temperature
    return -(z.logsumexp(-1) - z.mean(-1) - np.log(z.shape[-1])).numpy()


def entropy_score(logits, temperature: float = 1.0) -> np.ndarray:
    """Softmax entropy: `score(x) = -sum_k p_k log p_k` with `p = softmax(z / T)`; higher = more anomalous.

    Args:
        logits (array or `torch.Tensor` of shape `(n, K)`): classifier logits.
        temperature (`float`, *optional*, defaults to 1.0): softmax temperature `T > 0`.

    Returns:
        `np.ndarray` of shape `(n,)`, float64, in `[0, log K]`.
    """
    _check_temperature(temperature)
    logp = torch.log_softmax(_as_logits(logits) / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1).numpy()


def max_softmax_probability(logits, temperature: float = 1.0) -> np.ndarray:
    """Confidence `max_k softmax(z / T)_k` (higher = *more confident*; not an OOD score), used for calibration.

    Args:
        logits (array or `torch.Tensor` of shape `(n, K)`): classifier logits.
        temperature (`float`, *optional*, defaults to 1.0): softmax temperature `T > 0`.

    Returns:
        `np.ndarray` of shape `(n,)`, float64, in `[1/K, 1]`.
    """
    return -msp_score(logits, temperature=temperature)


LOGIT_SCORES: dict[str, Callable[..., np.ndarray]] = {
    "msp": msp_score,
    "max_logit": max_logit_score,
    "energy": energy_score,
    "kl_uniform": kl_uniform_score,
    "entropy": entropy_score,
}


def register_score(name: str, fn: Callable[..., np.ndarray]) -> None:
    """Register a custom logit score `fn(logits, temperature=1.0) -> np.ndarray` (higher = more anomalous).

    Args:
        name (`str`): the name used in `compute_score` and `evaluate_ood(scores=...)`.
        fn (`Callable`): the score function.
    """
    _register(LOGIT_SCORES, name, fn, "score")


def get_score_fn(name: str) -> Callable[..., np.ndarray]:
    """Look up a logit score by name; the error lists the known names."""
    return _lookup(LOGIT_SCORES, name, "OOD score", "logit scores")


_T = TypeVar("_T")


def _register(registry: dict[str, Callable], name: str, fn: Callable, kind: str) -> None:
    """`registry[name] = fn` for a callable `fn` (the score registries of logits and language models)."""
    if not callable(fn):
        raise TypeError(f"{kind} {name!r} must be callable, got {type(fn).__name__}.")
    registry[name] = fn


def _lookup(registry: Mapping[str, _T], name: str, kind: str, known: str) -> _T:
    """`registry[name]`, or a `ValueError` that names the `kind` of score and lists the `known` names."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"Unknown {kind} {name!r}; known {known}: {sorted(registry)}.") from None


def compute_score(name: str, logits, temperature: float = 1.0) -> np.ndarray:
    """Compute the logit score `name` (see `LOGIT_SCORES`) at `temperature`.

    Args:
        name (`str`): a key of `LOGIT_SCORES`.
        logits (array or `torch.Tensor` of shape `(n, K)`): classifier logits.
        temperature (`float`, *optional*, defaults to 1.0): softmax temperature `T > 0`.

    Returns:
        `np.ndarray` of shape `(n,)`, float64, higher = more anomalous.
    """
    return get_score_fn(name)(logits, temperature=temperature)
