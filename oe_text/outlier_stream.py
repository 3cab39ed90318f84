"""An endless, resumable, per-process stream of auxiliary outliers for `OETrainer`."""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch


try:  # `datasets` is a hard dependency, but keep this module importable on its own.
    from datasets import IterableDataset
    from datasets.distributed import split_dataset_by_node
except ImportError:  # pragma: no cover
    IterableDataset = ()  # type: ignore[assignment]
    split_dataset_by_node = None


def length_buckets(lengths: Sequence[int], min_bucket_size: int) -> list[int]:
    """Lower length bounds of buckets that each hold at least `min_bucket_size` rows.

    Every distinct length starts as its own bucket; a bucket with fewer than `min_bucket_size` rows is merged with the
    next longer lengths (the last one with the previous bucket). Bucket `b` holds the rows with
    `bounds[b] <= length < bounds[b + 1]`.

    Args:
        lengths (sequence of `int`): per-row lengths (tokens).
        min_bucket_size (`int`): minimum rows per bucket.

    Returns:
        `list[int]`: increasing lower bounds; the first is the shortest length.
    """
    values, counts = np.unique(np.asarray(lengths, dtype=np.int64), return_counts=True)
    bounds: list[int] = []
    filled = min_bucket_size  # the first length always opens a bucket
    for value, count in zip(values.tolist(), counts.tolist()):
        if filled >= min_bucket_size:
            bounds.append(value)
            filled = 0
        filled += count
    if len(bounds) > 1 and filled < min_bucket_size:
        bounds.pop()  # too few rows in the longest bucket: merge it into the previous one
    return bounds


def _check_int(state: dict, key: str, minimum: int = 0) -> int:
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Invalid outlier stream state: {key!r} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"Invalid outlier stream state: {key!r} must be >= {minimum}, got {value}.")
    return value


class _Cursor:
    """Where one pass-ordered sequence of indices stands: pass number and items consumed in that pass."""

    def __init__(self, seed_key: tuple[int, ...], indices: np.ndarray | None, rank: int, world_size: int):
        self.seed_key, self.indices = seed_key, indices  # indices=None: arange(n) of the whole dataset
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0
        self._order: np.ndarray | None = None

    def order(self, n: int) -> np.ndarray:
        if self._order is None:
            perm = np.random.default_rng([*self.seed_key, self.epoch]).permutation(n)
            if self.indices is not None:
                perm = self.indices[perm]
            self._order = perm[self.rank :: self.world_size]
        return self._order

    def take(self, k: int, n: int) -> list[int]:
        indices: list[int] = []
        while len(indices) < k:
            order = self.order(n)
            chunk = order[self.position : self.position + k - len(indices)]
            indices.extend(int(i) for i in chunk)
            self.position += len(chunk)
            if self.position >= len(order):
                self.epoch, self.position, self._order = self.epoch + 1, 0, None
        return indices

    def pass_length(self, n: int) -> int:
        return len(range(self.rank, n, self.world_size))

    def set(self, epoch: int, position: int) -> None:
        if epoch != self.epoch:
            self._order = None
        self.epoch, self.position = epoch, position

    def copy(self) -> _Cursor:
        other = _Cursor(self.seed_key, self.indices, self.rank, self.world_size)
        other.set(self.epoch, self.position)
        return other


class _Fetch:
    """Reads and collates one batch of rows; what a DataLoader worker (or the training process) runs.

    The key of a batch is `(indices, batch_seed)`: the torch and Python RNGs are seeded with `batch_seed` while the
    rows are read, so random augmentations give the same result with any number of workers and after a resume.
    """

    def __init__(self, dataset, collate_fn: Callable):
        self.dataset, self.collate_fn = dataset, collate_fn

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, key: tuple[list[int], int]):
        indices, batch_seed = key
        state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(batch_seed)
            random.seed(batch_seed)
            try:
                if hasattr(self.dataset, "column_names") and hasattr(self.dataset, "select"):
                    columns = self.dataset[indices]  # one batched read from Arrow
                    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
                else:
                    rows = [self.dataset[i] for i in indices]
            finally:
                random.setstate(state)
        return rows

    def __getitem__(self, key):  # pragma: no cover - DataLoader uses __getitems__
        return self.__getitems__(key)


class OutlierStream:
    """Draws batches of auxiliary outliers forever, reshuffled on every pass, reproducibly and resumably.

    - **Map-style** datasets (anything with `__len__` and `__getitem__`, e.g. `datasets.Dataset`): pass `e` uses the
      permutation `default_rng([seed, e]).permutation(N)`; process `rank` of `world_size` takes every
      `world_size`-th index from position `rank`, so processes see disjoint outliers within a pass. With
      `num_workers > 0`, rows are read and collated ahead of time by a `torch.utils.data.DataLoader` (image decoding
      and augmentation leave the training loop); the order does not depend on the number of workers.
    - **Length buckets** (map-style, `lengths` given): the rows are grouped into buckets of similar length
      (`length_buckets`), each its own endless stream (pass `e` of bucket `b`: `default_rng([seed, b, e])`, sharded
      by rank the same way). `next_batch(target_length=L)` draws from the bucket of the longest rows not longer than
      `L` (the first bucket when every row is longer), so outliers match the length of the in-distribution batch.
      Which bucket is drawn depends on `L`, so these rows are read in the training process (tokenized text is cheap
      to read).
    - **Iterable** datasets (`datasets.IterableDataset`, e.g. `streaming=True`): shuffled through a bounded buffer
      (`shuffle_buffer_size`) with `set_epoch(e)` on each pass and sharded with `split_dataset_by_node`, so memory does
      not grow with the corpus; read in the training process.

    The state is `(epoch, position)` per stream (per bucket with length buckets): `state_dict()`/`load_state_dict()`
    restore a stream that continues exactly where it left off (the iterable case re-reads and skips `position` items).
    `load_state_dict` validates the state and raises a `ValueError` naming the bad field.

    Args:
        dataset: the outlier dataset (rows are dicts of model inputs).
        batch_size (`int`): outliers per batch.
        collate_fn (`Callable`): turns a list of rows into a batch of tensors.
        seed (`int`): shuffling seed.
        rank (`int`), world_size (`int`): this process and the number of processes.
        shuffle_buffer_size (`int`): shuffle buffer of an iterable dataset.
        lengths (sequence of `int`, *optional*): per-row lengths of a map-style dataset; turns on length buckets.
        min_bucket_size (`int`, *optional*, defaults to 256): minimum rows per length bucket (raised to `world_size`).
        num_workers (`int`, *optional*, defaults to 0): DataLoader workers reading map-style rows ahead (0: read in
            the training process). Not used with length buckets or iterable datasets.
        pin_memory (`bool`, *optional*, defaults to `False`): pin the batches' memory (set it only when training on
            a GPU).
        prefetch_factor (`int`, *optional*, defaults to 2): batches each worker prepares ahead.
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
        lengths: Sequence[int] | None = None,
        min_bucket_size: int = 256,
        num_workers: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        if not 0 <= rank < world_size:
            raise ValueError(f"`rank` must be in [0, world_size={world_size}), got {rank}.")
        if num_workers < 0:
            raise ValueError(f"`num_workers` must be >= 0, got {num_workers}.")
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle_buffer_size = shuffle_buffer_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.is_iterable = isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__")
        self.bucket_bounds: list[int] | None = None
        if not self.is_iterable:
            if len(dataset) == 0:
                raise ValueError("The outlier dataset is empty: OE needs at least one auxiliary outlier.")
            if len(dataset) < world_size:
                raise ValueError(
                    f"The outlier dataset has {len(dataset)} examples, fewer than the {world_size} processes: "
                    "each process needs its own outliers."
                )
        elif lengths is not None:
            raise ValueError("Length buckets need a map-style outlier dataset (per-row lengths known in advance).")
        self._fetch = _Fetch(dataset, collate_fn)
        self._cursor = _Cursor((seed,), None, rank, world_size)
        self._buckets: list[_Cursor] = []
        if lengths is not None:
            lengths = np.asarray(lengths, dtype=np.int64)
            if len(lengths) != len(dataset):
                raise ValueError(f"`lengths` has {len(lengths)} entries for {len(dataset)} outliers.")
            self.bucket_bounds = length_buckets(lengths, max(min_bucket_size, world_size))
            which = np.searchsorted(self.bucket_bounds, lengths, side="right") - 1
            self._buckets = [
                _Cursor((seed, b), np.flatnonzero(which == b), rank, world_size)
                for b in range(len(self.bucket_bounds))
            ]
        self._iterator: Iterator | None = None
        self._to_skip = 0
        self._loader: Iterator | None = None
        self._pending: deque[tuple[int, int]] = deque()

    # ----- state -----
    @property
    def epoch(self) -> int:
        return self._cursor.epoch

    @property
    def position(self) -> int:
        return self._cursor.position

    def state_dict(self) -> dict[str, Any]:
        """The stream's position: pass number, items consumed in this pass, and the settings that define the order."""
        state: dict[str, Any] = {"epoch": self.epoch, "position": self.position}
        if self.bucket_bounds is not None:  # draws without a target length still come from the whole dataset
            state["buckets"] = [[c.epoch, c.position] for c in self._buckets]
            state["bucket_bounds"] = self.bucket_bounds
        return {**state, "seed": self.seed, "rank": self.rank, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict()`; the state is validated and the order-defining settings must match."""
        if not isinstance(state, dict):
            raise ValueError(f"Invalid outlier stream state: expected a JSON object, got {type(state).__name__}.")
        for key in ("seed", "rank", "world_size"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"Cannot resume the outlier stream: the checkpoint has {key}={state[key]}, this run has "
                    f"{key}={getattr(self, key)}. Resume with the same seed and number of processes."
                )
        missing = [k for k in ("epoch", "position") if k not in state]
        if missing:
            raise ValueError(f"Invalid outlier stream state: missing {missing} (found keys {sorted(state)}).")
        epoch, position = _check_int(state, "epoch"), _check_int(state, "position")
        if not self.is_iterable:
            n = self._cursor.pass_length(len(self.dataset))
            if position >= n:
                raise ValueError(
                    f"Invalid outlier stream state: position {position} is beyond the pass of {n} outliers of "
                    f"process {self.rank}; the checkpoint was written for another outlier dataset."
                )
        if self.bucket_bounds is not None:
            self._load_bucket_state(state)  # validated before anything changes
        self._cursor.set(epoch, position)
        self._iterator, self._to_skip = None, self.position if self.is_iterable else 0
        self._close_loader()

    def _load_bucket_state(self, state: dict[str, Any]) -> None:
        if state.get("bucket_bounds") != self.bucket_bounds or not isinstance(state.get("buckets"), list):
            raise ValueError(
                "Cannot resume the outlier stream: the checkpoint's length buckets "
                f"{state.get('bucket_bounds')!r} differ from this run's {self.bucket_bounds} (or are missing); "
                "resume with the same outlier dataset, tokenizer and oe_length_matching."
            )
        buckets = state["buckets"]
        values: list[tuple[int, int]] = [(0, 0)] * len(buckets)
        if len(buckets) != len(self._buckets):
            raise ValueError(f"Invalid outlier stream state: {len(buckets)} bucket states for {len(self._buckets)}.")
        for b, (cursor, entry) in enumerate(zip(self._buckets, buckets)):
            if not isinstance(entry, list) or len(entry) != 2:
                raise ValueError(f"Invalid outlier stream state: bucket {b} must be [epoch, position], got {entry!r}.")
            entry_state = {"epoch": entry[0], "position": entry[1]}
            epoch, position = _check_int(entry_state, "epoch"), _check_int(entry_state, "position")
            n = cursor.pass_length(len(cursor.indices))
            if position >= n:
                raise ValueError(
                    f"Invalid outlier stream state: bucket {b} position {position} is beyond its pass of {n} outliers."
                )
            values[b] = (epoch, position)
        for cursor, (epoch, position) in zip(self._buckets, values):
            cursor.set(epoch, position)

    # ----- drawing -----
    def _batch_key(self, cursor: _Cursor, indices: list[int], bucket: int = -1) -> tuple[list[int], int]:
        seed = np.random.SeedSequence([self.seed, self.rank, bucket + 1, cursor.epoch, cursor.position])
        return indices, int(seed.generate_state(1)[0])

    def _take_map_style(self, n: int, target_length: int | None) -> tuple[list[int], int]:
        if self.bucket_bounds is not None and target_length is not None:
            b = max(int(np.searchsorted(self.bucket_bounds, target_length, side="right")) - 1, 0)
            cursor = self._buckets[b]
            key = self._batch_key(cursor, [], b)[1]
            return cursor.take(n, len(cursor.indices)), key
        key = self._batch_key(self._cursor, [])[1]
        return self._cursor.take(n, len(self.dataset)), key

    def _pass_iterator(self) -> Iterator:
        ds = self.dataset
        if isinstance(ds, IterableDataset):
            ds = ds.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer_size)
            if self.world_size > 1:
                ds = split_dataset_by_node(ds, rank=self.rank, world_size=self.world_size)
            ds.set_epoch(self.epoch)
            return iter(ds)
        # A plain Python iterable: unshuffled, one pass per iteration.
        return itertools.islice(iter(ds), self.rank, None, self.world_size)

    def _take_iterable(self, n: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        empty_passes = 0
        cursor = self._cursor
        while len(rows) < n:
            if self._iterator is None:
                self._iterator = self._pass_iterator()
                # Resuming: skip what this pass already gave, counting, so a position past the end is an error.
                for skipped in range(self._to_skip):
                    if next(self._iterator, None) is None:
                        raise ValueError(
                            f"Invalid outlier stream state: position {self._to_skip} is beyond the pass of {skipped} "
                            f"outliers of process {self.rank}; the checkpoint was written for another outlier dataset."
                        )
                self._to_skip = 0
            row = next(self._iterator, None)
            if row is None:
                if cursor.position == 0:
                    empty_passes += 1
                    if empty_passes > 1:
                        raise ValueError(
                            f"The outlier stream yielded no examples for process {self.rank} of {self.world_size}: "
                            "the auxiliary dataset is empty (or has fewer shards/examples than processes)."
                        )
                cursor.epoch, cursor.position, self._iterator = cursor.epoch + 1, 0, None
                continue
            empty_passes = 0
            rows.append(row)
            cursor.position += 1
        return rows

    def _close_loader(self) -> None:
        self._loader = None  # workers of a dropped DataLoader iterator shut down
        self._pending.clear()

    def _loader_batches(self) -> Iterator:
        from torch.utils.data import DataLoader

        ahead = self._cursor.copy()  # the DataLoader draws ahead of what training has consumed
        pending = self._pending

        def keys():
            while True:
                key = self._batch_key(ahead, [])[1]
                indices = ahead.take(self.batch_size, len(self.dataset))
                pending.append((ahead.epoch, ahead.position))
                yield indices, key

        loader = DataLoader(
            self._fetch,
            batch_sampler=keys(),
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor,
        )
        return iter(loader)

    def _pin(self, batch):
        if not self.pin_memory:
            return batch
        if isinstance(batch, torch.Tensor):
            return batch.pin_memory()
        if isinstance(batch, dict) or hasattr(batch, "items"):
            return {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return batch

    def next_rows(self, target_length: int | None = None) -> list[dict[str, Any]]:
        """The next `batch_size` outlier rows (uncollated); see `next_batch` for `target_length`."""
        if self.is_iterable:
            return self._take_iterable(self.batch_size)
        self._close_loader()  # rows drawn here: any read-ahead must restart from the new position
        return self._fetch.__getitems__(self._take_map_style(self.batch_size, target_length))

    def next_batch(self, target_length: int | None = None):
        """The next collated batch of `batch_size` outliers.

        Args:
            target_length (`int`, *optional*): length of the in-distribution batch the outliers go with; with length
                buckets, the batch is drawn from the bucket matching it. Ignored without length buckets.
        """
        if self.num_workers > 0 and not self.is_iterable and self.bucket_bounds is None:
            if self._loader is None:
                self._loader = self._loader_batches()
            batch = next(self._loader)
            self._cursor.set(*self._pending.popleft())
            return batch
        if self.is_iterable:
            return self._pin(self.collate_fn(self._take_iterable(self.batch_size)))
        return self._pin(self.collate_fn(self.next_rows(target_length)))

    def __iter__(self):
        while True:
            yield self.next_batch()
