"""An endless, resumable, per-process stream of auxiliary outliers for `OETrainer`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


try:  # `datasets` is a hard dependency, but keep this module importable on its own.
    from datasets import IterableDataset
    from datasets.distributed import split_dataset_by_node
except ImportError:  # pragma: no cover
    IterableDataset = ()  # type: ignore[assignment]
    split_dataset_by_node = None


class OutlierStream:
    """Draws batches of auxiliary outliers forever, reshuffled on every pass, reproducibly and resumably.

    - **Map-style** datasets (anything with `__len__` and `__getitem__`, e.g. `datasets.Dataset`): pass `e` uses the
      permutation `default_rng([seed, e]).permutation(N)`; process `rank` of `world_size` takes every
      `world_size`-th index from position `rank`, so processes see disjoint outliers within a pass.
    - **Iterable** datasets (`datasets.IterableDataset`, e.g. `streaming=True`): shuffled through a bounded buffer
      (`shuffle_buffer_size`) with `set_epoch(e)` on each pass and sharded with `split_dataset_by_node`, so memory does
      not grow with the corpus.

    Either way the state is two integers, `(epoch, position)`: `state_dict()`/`load_state_dict()` restore a stream
    that continues exactly where it left off (the iterable case re-reads and skips `position` items).

    Args:
        dataset: the outlier dataset (rows are dicts of model inputs).
        batch_size (`int`): outliers per batch.
        collate_fn (`Callable`): turns a list of rows into a batch of tensors.
        seed (`int`): shuffling seed.
        rank (`int`), world_size (`int`): this process and the number of processes.
        shuffle_buffer_size (`int`): shuffle buffer of an iterable dataset.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        collate_fn: Callable[[list[dict[str, Any]]], Any],
        seed: int = 42,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer_size: int = 10_000,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        if not 0 <= rank < world_size:
            raise ValueError(f"`rank` must be in [0, world_size={world_size}), got {rank}.")
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle_buffer_size = shuffle_buffer_size
        self.is_iterable = isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__")
        if not self.is_iterable:
            if len(dataset) == 0:
                raise ValueError("The outlier dataset is empty: OE needs at least one auxiliary outlier.")
            if len(dataset) < world_size:
                raise ValueError(
                    f"The outlier dataset has {len(dataset)} examples, fewer than the {world_size} processes: "
                    "each process needs its own outliers."
                )
        self.epoch = 0
        self.position = 0
        self._order: np.ndarray | None = None
        self._iterator: Iterator | None = None

    # ----- state -----
    def state_dict(self) -> dict[str, int]:
        """The stream's position: pass number, items consumed in this pass, and the settings that define the order."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a `state_dict()`; the order-defining settings must match this stream's."""
        for key in ("seed", "rank", "world_size"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"Cannot resume the outlier stream: the checkpoint has {key}={state[key]}, this run has "
                    f"{key}={getattr(self, key)}. Resume with the same seed and number of processes."
                )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = None
        self._iterator = None

    # ----- drawing -----
    def _pass_order(self) -> np.ndarray:
        if self._order is None:
            perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.dataset))
            self._order = perm[self.rank :: self.world_size]
        return self._order

    def _take_map_style(self, n: int) -> list[dict[str, Any]]:
        indices: list[int] = []
        while len(indices) < n:
            order = self._pass_order()
            take = order[self.position : self.position + n - len(indices)]
            indices.extend(int(i) for i in take)
            self.position += len(take)
            if self.position >= len(order):
                self.epoch, self.position, self._order = self.epoch + 1, 0, None
        return self._rows(indices)

    def _rows(self, indices: list[int]) -> list[dict[str, Any]]:
        if hasattr(self.dataset, "column_names") and hasattr(self.dataset, "select"):
            columns = self.dataset[indices]  # one batched read from Arrow
            return [dict(zip(columns, values)) for values in zip(*columns.values())]
        return [self.dataset[i] for i in indices]

    def _pass_iterator(self) -> Iterator:
        ds = self.dataset
        if isinstance(ds, IterableDataset):
            ds = ds.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer_size)
            if self.world_size > 1:
                ds = split_dataset_by_node(ds, rank=self.rank, world_size=self.world_size)
            ds.set_epoch(self.epoch)
            return itertools.islice(iter(ds), self.position, None)
        # A plain Python iterable: unshuffled, one pass per iteration.
        return itertools.islice(iter(ds), self.rank + self.position * self.world_size, None, self.world_size)

    def _take_iterable(self, n: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        empty_passes = 0
        while len(rows) < n:
            if self._iterator is None:
                self._iterator = self._pass_iterator()
            row = next(self._iterator, None)
            if row is None:
                if self.position == 0:
                    empty_passes += 1
                    if empty_passes > 1:
                        raise ValueError(
                            f"The outlier stream yielded no examples for process {self.rank} of {self.world_size}: "
                            "the auxiliary dataset is empty (or has fewer shards/examples than processes)."
                        )
                self.epoch, self.position, self._iterator = self.epoch + 1, 0, None
                continue
            empty_passes = 0
            rows.append(row)
            self.position += 1
        return rows

    def next_rows(self) -> list[dict[str, Any]]:
        """The next `batch_size` outlier rows (uncollated)."""
        return self._take_iterable(self.batch_size) if self.is_iterable else self._take_map_style(self.batch_size)

    def next_batch(self):
        """The next collated batch of `batch_size` outliers."""
        return self.collate_fn(self.next_rows())

    def __iter__(self):
        while True:
            yield self.next_batch()
