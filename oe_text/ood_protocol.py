"""The OOD evaluation protocol: which OOD inputs each subset uses (`plan_ood_subsets`), and the settings that define
a protocol (`OODProtocol`), carried once through evaluation, recipes, CLI and model cards.

Protocols: `"paper"` (every ID test input against `num_subsets` seeded random OOD subsets of
`floor(ood_to_id_ratio * n_id)` inputs, metrics averaged over the subsets) and `"full"` (every input once); see
`oe_text.evaluation`.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .metrics import fpr_key


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


# ----------------------------------------------------------------------------------------------------------------
# The protocol's settings
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OODProtocol:
    """The settings that define an OOD evaluation: which OOD inputs are drawn (`plan`) and which FPRs are reported.

    Built once (from a recipe's arguments, the CLI's flags or a detector's recorded evaluation, `from_settings`) and
    passed as `protocol=` to `evaluate_ood`, `evaluate_ood_from_logits` and `evaluate_ood_from_scores`; its
    `settings()` are what `OODResults.settings` and a model card's `evaluation` record.

    Attributes:
        protocol (`str`, *optional*, defaults to `"paper"`): `"paper"` or `"full"` (see the module docstring).
        num_subsets (`int`, *optional*, defaults to 10): OOD subsets per set (`"paper"` only).
        ood_to_id_ratio (`float`, *optional*, defaults to 0.2): subset size / ID size (`"paper"` only).
        seed (`int`, *optional*, defaults to 0): seed of the subset draws.
        max_ood_samples (`int`, *optional*): first cut each OOD set to a seeded random sample of this size.
        fpr_tprs (tuple of `float`, *optional*, defaults to `(0.9, 0.95)`): OOD recalls of the reported FPRs;
            `recall_level` is added if missing.
        recall_level (`float`, *optional*, defaults to 0.9): the FPR shown first (the paper: 0.9 text, 0.95 vision).
        fpr_method (`str`, *optional*, defaults to `"paper"`): see `oe_text.metrics.fpr_at_tpr`.
    """

    protocol: str = "paper"
    num_subsets: int = 10
    ood_to_id_ratio: float = 0.2
    seed: int = 0
    max_ood_samples: int | None = None
    fpr_tprs: tuple[float, ...] = (0.9, 0.95)
    recall_level: float = 0.9
    fpr_method: str = "paper"

    def __post_init__(self):
        _check_protocol_args(self.protocol, self.num_subsets, self.ood_to_id_ratio, self.max_ood_samples)
        if self.fpr_method not in ("paper", "at_least"):
            raise ValueError(f"`fpr_method` must be 'paper' or 'at_least', got {self.fpr_method!r}.")
        tprs = [float(t) for t in self.fpr_tprs]
        if float(self.recall_level) not in tprs:
            tprs.insert(0, float(self.recall_level))
        for t in tprs:
            fpr_key(t)  # validates
        # Frozen: normalised values are set through object.__setattr__ (hashable tuple, recall level first if added).
        object.__setattr__(self, "fpr_tprs", tuple(tprs))
        object.__setattr__(self, "recall_level", float(self.recall_level))
        object.__setattr__(self, "seed", int(self.seed))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None, **overrides) -> OODProtocol:
        """The protocol recorded in `settings` (an `OODResults.settings` or a detector's `config.oe["evaluation"]`):
        its known keys, missing ones at their defaults, `overrides` that are not `None` on top."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in dict(settings or {}).items() if k in names and v is not None}
        if values.get("protocol") == "full":
            # "full" records 1 subset and no ratio, which say nothing about a "paper" run asked for in `overrides`.
            values.pop("num_subsets", None)
            values.pop("ood_to_id_ratio", None)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "fpr_tprs" in values:
            values["fpr_tprs"] = tuple(values["fpr_tprs"])
        return cls(**values)

    def replace(self, **changes) -> OODProtocol:
        """A copy with `changes`."""
        return dataclasses.replace(self, **changes)

    def subset_size(self, num_id: int) -> int:
        """OOD inputs per subset for `num_id` ID inputs under `"paper"`: `floor(ood_to_id_ratio * num_id)`, >= 1."""
        return max(1, math.floor(self.ood_to_id_ratio * num_id + 1e-9))

    def settings(self) -> dict[str, Any]:
        """The settings as `OODResults.settings` and model cards record them (`"full"`: 1 subset, no ratio)."""
        paper = self.protocol == "paper"
        return {
            "protocol": self.protocol,
            "num_subsets": self.num_subsets if paper else 1,
            "ood_to_id_ratio": self.ood_to_id_ratio if paper else None,
            "seed": self.seed,
            "fpr_tprs": list(self.fpr_tprs),
            "recall_level": self.recall_level,
            "fpr_method": self.fpr_method,
            "max_ood_samples": self.max_ood_samples,
        }

    def plan(self, num_id: int, ood_sizes: Mapping[str, int]) -> OODSubsetPlan:
        """Draw the OOD subsets of this protocol from set sizes alone.

        Deterministic in `(seed, set name, sizes, num_id)`, so a multi-process recipe can plan first, compute logits
        only for `plan.indices_to_score(name)`, and pass them with `plan=` to `evaluate_ood_from_logits`.

        Args:
            num_id (`int`): number of in-distribution test inputs.
            ood_sizes (`Mapping[str, int]`): size of each OOD set.

        Returns:
            `OODSubsetPlan`.
        """
        if not isinstance(num_id, int | np.integer) or num_id < 1:
            raise ValueError(f"`num_id` must be a positive int, got {num_id!r}.")
        if not ood_sizes:
            raise ValueError("`ood_sizes` is empty: evaluation needs at least one OOD set.")
        subsets: dict[str, list[np.ndarray]] = {}
        for name, size in ood_sizes.items():
            if not isinstance(size, int | np.integer) or size < 1:
                raise ValueError(f"OOD set {name!r} is empty (size {size!r}); every OOD set needs at least one input.")
            rng = _set_rng(self.seed, name)
            pool = np.arange(size)
            if self.max_ood_samples is not None and size > self.max_ood_samples:
                pool = np.sort(rng.choice(size, size=self.max_ood_samples, replace=False))
            if self.protocol == "full":
                subsets[name] = [pool]
                continue
            m = self.subset_size(num_id)
            if m >= pool.size:
                subsets[name] = [pool] * self.num_subsets
            else:
                subsets[name] = [np.sort(rng.choice(pool, size=m, replace=False)) for _ in range(self.num_subsets)]
        return OODSubsetPlan(protocol=self.protocol, num_id=int(num_id), ood_sizes=dict(ood_sizes), subsets=subsets)


_DEFAULT = OODProtocol()


def resolve_protocol(
    protocol: str | OODProtocol,
    num_subsets: int = 10,
    ood_to_id_ratio: float = 0.2,
    seed: int = 0,
    max_ood_samples: int | None = None,
    fpr_tprs: Sequence[float] = (0.9, 0.95),
    recall_level: float = 0.9,
    fpr_method: str = "paper",
) -> OODProtocol:
    """`protocol` as an `OODProtocol`: an `OODProtocol` as it is (then the other settings must stay at their
    defaults, so that no setting is given twice), or a protocol name completed by the other settings."""
    flat = dict(
        num_subsets=num_subsets,
        ood_to_id_ratio=ood_to_id_ratio,
        seed=seed,
        max_ood_samples=max_ood_samples,
        fpr_tprs=tuple(fpr_tprs),
        recall_level=recall_level,
        fpr_method=fpr_method,
    )
    if isinstance(protocol, OODProtocol):
        given = sorted(k for k, v in flat.items() if _normalised(k, v) != _normalised(k, getattr(_DEFAULT, k)))
        if given:
            raise ValueError(f"{given} are set both in the OODProtocol and as arguments: set them in the OODProtocol.")
        return protocol
    return OODProtocol(protocol=protocol, **flat)


def _normalised(name: str, value):
    return tuple(float(v) for v in value) if name == "fpr_tprs" else value


def plan_ood_subsets(
    num_id: int,
    ood_sizes: Mapping[str, int],
    *,
    protocol: str | OODProtocol = "paper",
    num_subsets: int = 10,
    ood_to_id_ratio: float = 0.2,
    seed: int = 0,
    max_ood_samples: int | None = None,
) -> OODSubsetPlan:
    """Draw the OOD subsets of a protocol (see the module docstring) from set sizes alone: `OODProtocol.plan`.

    Args:
        num_id (`int`): number of in-distribution test inputs.
        ood_sizes (`Mapping[str, int]`): size of each OOD set.
        protocol (`str` or `OODProtocol`, *optional*, defaults to `"paper"`): `"paper"`, `"full"` or the whole
            protocol (then leave the other settings at their defaults).
        num_subsets (`int`, *optional*, defaults to 10): subsets per OOD set (`"paper"` only).
        ood_to_id_ratio (`float`, *optional*, defaults to 0.2): subset size is `floor(ratio * num_id)`, at least 1.
        seed (`int`, *optional*, defaults to 0): base seed.
        max_ood_samples (`int`, *optional*): first cut each OOD set to a random sample of this size.

    Returns:
        `OODSubsetPlan`.
    """
    return resolve_protocol(
        protocol,
        num_subsets=num_subsets,
        ood_to_id_ratio=ood_to_id_ratio,
        seed=seed,
        max_ood_samples=max_ood_samples,
    ).plan(num_id, ood_sizes)


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
