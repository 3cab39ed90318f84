"""Errors of the data layer: each names the dataset, the argument and what was expected."""

from __future__ import annotations

from collections.abc import Iterable


class DataError(ValueError):
    """Bad input to an `oe_text.data` loader (unknown preset, missing column, bad text or labels, empty data)."""


class UnknownPresetError(DataError):
    """A preset name that is neither a known preset nor a Hub id / local path; the message lists the presets."""


class MissingColumnError(DataError):
    """A dataset lacks a column the loader was told to read; the message names the dataset and its columns."""


class InvalidTextError(DataError):
    """A text column is not a string column, or holds missing or empty texts."""


class InvalidLabelError(DataError):
    """Labels outside the label set (negative, too large, or unseen in training)."""


class MalformedFileError(DataError):
    """A local data file that cannot be parsed (bad csv row, invalid JSON line, bytes that are not UTF-8); the
    message names the file and the line."""


class EmptyDatasetError(DataError):
    """A dataset (typically the auxiliary outlier set, after filtering) has no rows left."""


class UnavailableDatasetError(OSError):
    """The data behind a named dataset cannot be reached (not in the offline mirror, Hub unreachable, missing split).

    Attributes:
        name (`str`): the preset name (or the Hub id / path for custom data).
        hub_id (`str`): the Hub id the preset loads.
        reason (`str`): why it cannot be loaded.
    """

    def __init__(self, name: str, hub_id: str, reason: str):
        self.name = name
        self.hub_id = hub_id
        self.reason = reason
        super().__init__(f"Dataset '{name}' (Hub id '{hub_id}') is unavailable: {reason}")

    def __reduce__(self):
        return (type(self), (self.name, self.hub_id, self.reason))


class MissingSplitError(UnavailableDatasetError):
    """A split was asked for that the dataset does not have; `available_splits` lists the ones it has."""

    def __init__(self, name: str, hub_id: str, split: str, available_splits: Iterable[str]):
        self.split = split
        self.available_splits = list(available_splits)
        reason = f"it has no split '{split}'; the splits that exist are {self.available_splits}"
        super().__init__(name, hub_id, reason)

    def __reduce__(self):
        return (type(self), (self.name, self.hub_id, self.split, self.available_splits))
