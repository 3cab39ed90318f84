"""The OOD evaluation protocol: which OOD inputs each subset uses (`plan_ood_subsets`), and the settings that define
a protocol (`OODProtocol`), carried once through evaluation, recipes, CLI and model cards.

Protocols: `"paper"` (every ID test input against `num_subsets` seeded random OOD subsets of
`floor(ood_to_id_ratio * n_id)` inputs, metrics averaged over the subsets) and `"full"` (every input once); see
`oe_text.evaluation`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


PROTOCOLS = ("paper", "full")

# ----------------------------------------------------------------------------------------------------------------
# Subset plan
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OODSubsetPlan:
    """Which OOD inputs each protocol subset uses.

    Attributes:
        protocol (`str`): `"paper"` or `"full"`.
        num_id (`int`): number of in-distribution test inputs.
        ood_sizes (`dict[str, int]`): full size of each OOD set.
        subsets (`dict[str, list[np.ndarray]]`): per OOD set, the sorted indices (into the full set) of each subset.
    """

    protocol: str
    num_id: int
    ood_sizes: dict[str, int]
    subsets: dict[str, list[np.ndarray]]

    def indices_to_score(self, name: str) -> np.ndarray:
        """Sorted indices of the inputs of OOD set `name` that at least one subset uses: the only ones to score."""
        return np.unique(np.concatenate(self.subsets[name]))

    def subset_size(self, name: str) -> int:
        """Number of OOD inputs per subset of set `name`."""
        return int(self.subsets[name][0].size)


def _set_rng(seed: int, name: str) -> np.random.Generator:
    # Keyed by the set's name (crc32 is stable across runs, unlike hash()), so adding or removing another OOD set does
    # not change this set's subsets.
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def _check_protocol_args(protocol, num_subsets, ood_to_id_ratio, max_ood_samples) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {PROTOCOLS}, got {protocol!r}.")
    if not isinstance(num_subsets, int) or num_subsets < 1:
        raise ValueError(f"`num_subsets` must be a positive int, got {num_subsets!r}.")
    if not 0 < ood_to_id_ratio:
        raise ValueError(f"`ood_to_id_ratio` must be > 0 (0.2 = the paper's OOD:ID of 1:5), got {ood_to_id_ratio!r}.")
    if max_ood_samples is not None and (not isinstance(max_ood_samples, int) or max_ood_samples < 1):
        raise ValueError(f"`max_ood_samples` must be None or a positive int, got {max_ood_samples!r}.")


def plan_ood_subsets(
    num_id: int,
    ood_sizes: Mapping[str, int],
    *,
    protocol: str = "paper",
    num_subsets: int = 10,
    ood_to_id_ratio: float = 0.2,
    seed: int = 0,
    max_ood_samples: int | None = None,
) -> OODSubsetPlan:
    """Draw the OOD subsets of a protocol (see the module docstring) from set sizes alone.

    Deterministic in `(seed, set name, sizes, num_id)`, so a multi-process recipe can plan first, compute logits only
    for `plan.indices_to_score(name)`, and pass them with `plan=` to `evaluate_ood_from_logits`.

    Args:
        num_id (`int`): number of in-distribution test inputs.
        ood_sizes (`Mapping[str, int]`): size of each OOD set.
        protocol (`str`, *optional*, defaults to `"paper"`): `"paper"` or `"full"`.
        num_subsets (`int`, *optional*, defaults to 10): subsets per OOD set (`"paper"` only).
        ood_to_id_ratio (`float`, *optional*, defaults to 0.2): subset size is `floor(ratio * num_id)`, at least 1.
        seed (`int`, *optional*, defaults to 0): base seed.
        max_ood_samples (`int`, *optional*): first cut each OOD set to a random sample of this size.

    Returns:
        `OODSubsetPlan`.
    """
    _check_protocol_args(protocol, num_subsets, ood_to_id_ratio, max_ood_samples)
    if not isinstance(num_id, int | np.integer) or num_id < 1:
        raise ValueError(f"`num_id` must be a positive int, got {num_id!r}.")
    if not ood_sizes:
        raise ValueError("`ood_sizes` is empty: evaluation needs at least one OOD set.")
    subsets: dict[str, list[np.ndarray]] = {}
    for name, size in ood_sizes.items():
        if not isinstance(size, int | np.integer) or size < 1:
            raise ValueError(f"OOD set {name!r} is empty (size {size!r}); every OOD set needs at least one input.")
        rng = _set_rng(seed, name)
        pool = np.arange(size)
        if max_ood_samples is not None and size > max_ood_samples:
            pool = np.sort(rng.choice(size, size=max_ood_samples, replace=False))
        if protocol == "full":
            subsets[name] = [pool]
            continue
        m = max(1, math.floor(ood_to_id_ratio * num_id + 1e-9))
        if m >= pool.size:
            subsets[name] = [pool] * num_subsets
        else:
            subsets[name] = [np.sort(rng.choice(pool, size=m, replace=False)) for _ in range(num_subsets)]
    return OODSubsetPlan(protocol=protocol, num_id=int(num_id), ood_sizes=dict(ood_sizes), subsets=subsets)


def _align(name: str, n_rows: int, plan: OODSubsetPlan, what: str) -> np.ndarray | None:
    """Row selector turning a per-set array into rows aligned with `plan.indices_to_score(name)`."""
    needed = plan.indices_to_score(name)
    if n_rows == needed.size:
        return None
    if n_rows == plan.ood_sizes[name]:
        return needed
    raise ValueError(
        f"`{what}[{name!r}]` has {n_rows} rows; expected the full set ({plan.ood_sizes[name]}) or only the rows of "
        f"`plan.indices_to_score({name!r})` ({needed.size})."
    )
