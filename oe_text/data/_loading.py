"""Shared plumbing of the three loaders: Hub-id resolution, split loading with clear errors, text normalisation."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow.compute as pc

from ..hub import MirrorMissError, is_mirrored, mirror_root, resolve_hub_id
from .errors import (
    EmptyDatasetError,
    InvalidTextError,
    MalformedFileError,
    MissingColumnError,
    MissingSplitError,
    UnavailableDatasetError,
)
from .normalization import TextNormalization


# Local files: the `datasets` packaged builder for each extension (`.txt`: one text per line unless the caller asks
# for tab-separated columns, as the in-distribution loader does).
LOCAL_BUILDERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".txt": "text",
}
STRING_DTYPES = ("string", "large_string")


@dataclass(frozen=True)
class HubSource:
    """Where a preset's data lives: a Hub id and how to call `datasets.load_dataset` on it.

    `mirror_id` is the folder name in the offline mirror when it differs from `hub_id` (the mirror stores the
    Universal Dependencies parquet export under `universal_dependencies`). `revision` is only used on the real Hub.
    `data_files` (split -> glob relative to the repo) selects files when a repo holds several configs as folders
    with no card to name them, as the Hub's `refs/convert/parquet` exports do.
    """

    hub_id: str
    config: str | None = None
    revision: str | None = None
    data_files: dict[str, str] | None = None
    mirror_id: str | None = None


def is_local_path(name: str) -> bool:
    """Whether `name` names an existing local file or folder (rather than a Hub id)."""
    return os.path.exists(os.fspath(name))


def resolve_source(name: str, source: HubSource) -> str:
    """The path `datasets.load_dataset` should read for `source`: its mirror folder, or the Hub id itself.

    Raises:
        `UnavailableDatasetError`: `OE_TEXT_MIRROR` is set and holds neither `hub_id` nor `mirror_id`.
    """
    repo_id = source.hub_id
    if (
        source.mirror_id is not None
        and mirror_root() is not None
        and not is_mirrored(source.hub_id, "dataset")
        and is_mirrored(source.mirror_id, "dataset")
    ):
        repo_id = source.mirror_id
    try:
        return resolve_hub_id(repo_id, "dataset")
    except MirrorMissError as err:
        raise UnavailableDatasetError(name, source.hub_id, f"not in the offline mirror ({err})") from err


def _is_remote(path: str, source: HubSource) -> bool:
    return path == source.hub_id and not is_local_path(path)


def _translate_error(name: str, source: HubSource, path: str, split: str, err: Exception) -> Exception | None:
    """Map a `datasets.load_dataset` failure to an `UnavailableDatasetError`, or None when it is some other bug."""
    message = str(err)
    if isinstance(err, ValueError) and "split" in message.lower():
        try:
            available = datasets.get_dataset_split_names(
                path, source.config, data_files=source.data_files, revision=_revision(path, source)
            )
        except Exception:  # the split list is only for the message; the original error still explains itself
            available = None
        if available is not None and split not in available:
            return MissingSplitError(name, source.hub_id, split, available)
    if isinstance(err, ValueError) and "BuilderConfig" in message:
        return UnavailableDatasetError(name, source.hub_id, f"it has no config '{source.config}' ({message})")
    if isinstance(err, (ConnectionError, FileNotFoundError, TimeoutError)):
        where = "the Hugging Face Hub" if _is_remote(path, source) else path
        return UnavailableDatasetError(
            name, source.hub_id, f"could not be read from {where}: {type(err).__name__}: {message}"
        )
    return None


def _revision(path: str, source: HubSource) -> str | None:
    return source.revision if _is_remote(path, source) else None


def load_source_split(
    name: str, source: HubSource, split: str, *, streaming: bool = False
) -> datasets.Dataset | datasets.IterableDataset:
    """Load one split (or several joined with '+', concatenated in order) of a Hub source.

    Args:
        name (`str`): the preset name, for messages.
        source (`HubSource`): where the data lives.
        split (`str`): a split name, or several joined by '+' (`"validation+test"`).
        streaming (`bool`): return an `IterableDataset` read lazily.

    Raises:
        `UnavailableDatasetError` (`MissingSplitError` for a split the dataset lacks, listing those it has).
    """
    parts = [part.strip() for part in split.split("+")]
    if not split or any(not part for part in parts):
        raise ValueError(f"`split` must be a split name or names joined by '+', got {split!r}.")
    path = resolve_source(name, source)
    loaded = []
    for part in parts:
        try:
            loaded.append(
                datasets.load_dataset(
                    path,
                    source.config,
                    data_files=source.data_files,
                    revision=_revision(path, source),
                    split=part,
                    streaming=streaming,
                )
            )
        except Exception as err:
            translated = _translate_error(name, source, path, part, err)
            if translated is None:
                raise
            raise translated from err
    return loaded[0] if len(loaded) == 1 else datasets.concatenate_datasets(loaded)


def load_local_file(path: str, *, builder: str | None = None, streaming: bool = False) -> datasets.DatasetDict:
    """Load a local data file into a `DatasetDict` with one split, `train`.

    `.csv`, `.json`/`.jsonl`, `.parquet` use the matching packaged builder; `.tsv` is read as tab-separated csv;
    `.txt` uses `builder` (the outlier loader reads it as one text per line; the in-distribution loader as
    tab-separated with a header row).
    """
    suffix = Path(path).suffix.lower()
    if builder is None:
        if suffix not in LOCAL_BUILDERS:
            raise ValueError(
                f"Cannot read local file '{path}': unsupported extension '{suffix}'. "
                f"Supported: {sorted(LOCAL_BUILDERS)}."
            )
        builder = LOCAL_BUILDERS[suffix]
    kwargs = {"delimiter": "\t"} if builder == "csv" and suffix in (".tsv", ".txt") else {}
    check_local_file(path, builder, delimiter=kwargs.get("delimiter", ","))
    try:
        return datasets.load_dataset(builder, data_files={"train": path}, streaming=streaming, **kwargs)
    except ValueError as err:
        if "corresponds to no data" not in str(err):
            raise
        raise EmptyDatasetError(f"File '{path}' has no rows.") from None


def check_local_file(path: str, builder: str, delimiter: str = ",") -> None:
    """Read a local csv / tsv / json(l) / text file once and raise a clear error naming the file and line on content
    the `datasets` builders would reject with a bare parser error, or silently read wrong.

    Checks: the file is not empty; a csv has a header and at least one data row, every row has as many fields as the
    header, quotes are closed, the text is UTF-8; json lines parse, one object per line (a `.json` file may instead
    hold one JSON document). Memory stays bounded (one line or row at a time, except a whole-document `.json`).

    Raises:
        `EmptyDatasetError` (no rows), `MalformedFileError` (bad content; the message names the line).
    """
    if builder not in ("csv", "json", "text"):
        return  # parquet and others: the reader's own errors name the file
    lines = _utf8_lines(path)
    if builder == "csv":
        _check_csv(path, lines, delimiter)
    elif builder == "json":
        _check_json(path, lines)
    elif not any(line.strip() for line in lines):
        raise EmptyDatasetError(f"File '{path}' has no text: it is empty or blank.")


def _utf8_lines(path: str):
    """The lines of `path` decoded as UTF-8, one at a time; `MalformedFileError` naming the line on bad bytes."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise MalformedFileError(
                    f"File '{path}', line {number}: not valid UTF-8 (byte {raw[err.start : err.start + 1]!r} at "
                    f"offset {err.start})."
                ) from None


def _check_csv(path: str, lines, delimiter: str) -> None:
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    header = None
    rows = 0
    try:
        for row in reader:
            if not row or all(not field.strip() for field in row):
                continue  # blank lines are skipped, as pandas does
            if header is None:
                header = row
                continue
            if len(row) != len(header):
                raise MalformedFileError(
                    f"File '{path}', line {reader.line_num}: {len(row)} field(s), but the header "
                    f"{header} has {len(header)}."
                )
            rows += 1
    except csv.Error as err:
        raise MalformedFileError(f"File '{path}', line {reader.line_num}: malformed csv ({err}).") from None
    if header is None:
        raise EmptyDatasetError(f"File '{path}' is empty: expected a header row (e.g. text,label) and data rows.")
    if not rows:
        raise EmptyDatasetError(f"File '{path}' has a header row {header} but no data rows.")


def _check_json(path: str, lines) -> None:
    # A `.json` file may be one document (a list of objects) rather than JSON lines.
    document = path.lower().endswith(".json")
    records = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if document and records == 0:
                return _check_json_document(path)
            raise MalformedFileError(f"File '{path}', line {number}: not valid JSON ({err.msg}).") from None
        if not isinstance(record, dict):
            if document and records == 0:
                return _check_json_document(path)
            raise MalformedFileError(
                f"File '{path}', line {number}: expected one JSON object per line, got {type(record).__name__}."
            )
        records += 1
    if not records:
        raise EmptyDatasetError(f"File '{path}' has no records: expected one JSON object per line.")


def _check_json_document(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except json.JSONDecodeError as err:
        raise MalformedFileError(f"File '{path}', line {err.lineno}: not valid JSON ({err.msg}).") from None
    if isinstance(document, list) and not document or isinstance(document, dict) and not document:
        raise EmptyDatasetError(f"File '{path}' holds an empty JSON document: no records.")


def column_names(ds: datasets.Dataset | datasets.IterableDataset) -> list[str]:
    """Column names of a map-style or iterable dataset (peeking at the first row when the features are unknown)."""
    names = ds.column_names
    if names is None:
        first = next(iter(ds), None)
        names = list(first) if first is not None else []
    return list(names)


def require_columns(
    ds: datasets.Dataset | datasets.IterableDataset,
    columns: Sequence[str],
    *,
    dataset: str,
    split: str,
    hint: str = "",
) -> None:
    """Raise `MissingColumnError` naming the dataset and its columns when one of `columns` is missing."""
    names = column_names(ds)
    for column in columns:
        if column not in names:
            raise MissingColumnError(
                f"Dataset '{dataset}' (split '{split}') has no column '{column}'; its columns are {names}.{hint}"
            )


def check_string_column(ds: datasets.Dataset | datasets.IterableDataset, column: str, *, dataset: str, split: str):
    """Raise `InvalidTextError` when `column` is declared with a non-string type."""
    features = ds.features
    if features is None or column not in features:
        return
    feature = features[column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in STRING_DTYPES):
        raise InvalidTextError(
            f"Dataset '{dataset}' (split '{split}'): text column '{column}' must hold strings, but its type is "
            f"{feature}. Pass `text_column=` naming the column with the text."
        )


class NormalizeText:
    """Batched `map` function: normalise `source_column` into a `text` column.

    `None` becomes "" when `none_as_empty` (the caller then drops empty rows); any other non-string value raises
    `InvalidTextError`. A class (not a closure) so that `datasets` can fingerprint it and reuse cached results.
    """

    def __init__(self, normalization: TextNormalization, source_column: str, dataset: str, none_as_empty: bool):
        self.normalization = normalization
        self.source_column = source_column
        self.dataset = dataset
        self.none_as_empty = none_as_empty

    def __call__(self, batch: dict) -> dict:
        out = []
        for value in batch[self.source_column]:
            if isinstance(value, str):
                out.append(self.normalization(value))
            elif value is None and self.none_as_empty:
                out.append("")
            else:
                raise InvalidTextError(
                    f"Dataset '{self.dataset}': text column '{self.source_column}' holds a non-string value "
                    f"{value!r} ({type(value).__name__})."
                )
        return {"text": out}


class NonEmptyText:
    """Batched `filter` predicate: keep rows whose `text` is not empty."""

    def __call__(self, batch: dict) -> list[bool]:
        return [bool(text) for text in batch["text"]]


def empty_text_rows(ds: datasets.Dataset, column: str = "text") -> list[int]:
    """Row indices of `ds` whose `column` is empty or null (vectorised; `ds` must have no indices mapping)."""
    if ds._indices is not None:  # the arrow table below would be the unselected one
        ds = ds.flatten_indices()
    array = ds.data.column(column)
    mask = pc.or_kleene(pc.equal(pc.utf8_length(array), 0), pc.is_null(array))
    return pc.indices_nonzero(pc.fill_null(mask, True).combine_chunks()).to_pylist() if len(array) else []


def null_count(ds: datasets.Dataset, column: str) -> int:
    """Number of null values in `column` of `ds`."""
    if ds._indices is not None:
        ds = ds.flatten_indices()
    return ds.data.column(column).null_count
