"""Scoring a corpus at scale: `oe-text score` reads text, JSON-lines, CSV or Parquet files or a Hub dataset, runs a
detector over it in chunks and writes one record per input row, in input order, as JSON lines or Parquet.

Memory is bounded by `chunk_size` rows (plus the writer's one chunk): inputs are read as streams (Parquet record
batches, a streamed Hub dataset, files line by line), never loaded whole.

**Several processes.** Under `accelerate launch` (several GPUs, or CPU processes) the rows are cut into chunks of
`chunk_size` consecutive rows and process `r` of `n` scores chunks `r, r + n, r + 2n, ...`, writing each to a part
file; the main process then concatenates the parts in chunk order. A chunk is the same rows, scored in the same
batches, whatever the number of processes, so the output is the same as one process's (bit for bit where the
hardware computes the same batch identically, e.g. CPUs with the same thread count).

**Records.** `row` (0-based index of the row in the input; for text files the non-blank lines are the rows), the
`--id_column` value when given (text files: `line`, the 1-based line number), optionally the text, then the
detector's decision (`detector.detect`, so its configured score, logit or fitted): `label`, `probability` (of that
label), `ood_score` (higher = more anomalous) and `is_ood` (`None` without a threshold). A row whose text is missing
or blank keeps its place with `label`, `probability`, `ood_score` and `is_ood` set to `None`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


INPUT_FORMATS = ("txt", "jsonl", "csv", "parquet")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "txt"}
RESULT_FIELDS = ("label", "probability", "ood_score", "is_ood")
_DETECT_KEYS = ("label", "score", "ood_score", "is_ood")  # `detect`'s names of the RESULT_FIELDS


class ScoringInputError(ValueError):
    """The input of `oe-text score` cannot be read as asked (the message names the file, line or column)."""


def decode_line_error(data: bytes, err: UnicodeDecodeError, encoding: str, where: str, first_line: int = 1) -> str:
    """The message for bytes of `where` that are not valid `encoding`: the line, the byte, its character column.

    `data` is the undecoded text starting at line `first_line` and `err` the error its decoding raised.
    """
    before = data[: err.start].decode(encoding, errors="replace")
    line = first_line + before.count("\n")
    column = len(before) - (before.rfind("\n") + 1) + 1
    return (
        f"line {line} of {where} is not valid {encoding} (byte {data[err.start : err.start + 1]!r} at character "
        f"{column}: {err.reason}); pass --encoding with the right encoding."
    )


def check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ScoringInputError(f"unknown --encoding {encoding!r}.") from None


def _ascii_compatible(encoding: str) -> bool:
    # Encodings that write `\n` as the one byte 0x0A (UTF-8, Latin-1, cp1252, ...) can be split into lines as bytes.
    return "\n\ra".encode(encoding) == b"\n\ra"


def iter_lines(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """`(line_number, line)` of a text file, streamed, by the line rule of the `oe-text` inputs.

    The rule is `oe_text.cli.split_input_lines`'s: lines end at `\\n` only (a `\\r` before it is dropped), a leading
    byte-order mark is removed; blank lines are yielded too (callers skip them). Undecodable bytes raise
    `ScoringInputError` naming the line and character.
    """
    check_encoding(encoding)
    where = repr(str(path))
    with open(path, "rb") as file:
        if not _ascii_compatible(encoding):
            # UTF-16/32: `\n` is not one byte, so decode as a stream; a decoding error names the line it follows.
            number = 0
            try:
                for number, line in enumerate(io.TextIOWrapper(file, encoding=encoding, newline="\n"), start=1):
                    line = line.removesuffix("\n").removesuffix("\r")
                    yield number, line.removeprefix("\ufeff") if number == 1 else line
            except UnicodeDecodeError as err:
                raise ScoringInputError(
                    f"{where} is not valid {encoding} after line {number} ({err.reason}); pass --encoding with the "
                    "right encoding."
                ) from None
            return
        for number, raw in enumerate(file, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as err:
                raise ScoringInputError(decode_line_error(raw, err, encoding, where, first_line=number)) from None
            line = line.removesuffix("\n").removesuffix("\r")
            yield number, line.removeprefix("\ufeff") if number == 1 else line


@dataclass
class Chunk:
    """`len(rows)` consecutive input rows: their 0-based row indices, ids (or `None`) and texts (or `None`)."""

    index: int
    rows: list[int]
    ids: list[Any] | None
    texts: list[str | None]


def _text_or_none(value: Any, column: str, where: str) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not isinstance(value, str):
        raise ScoringInputError(f"{where}: column {column!r} holds a {type(value).__name__}, not text.")
    return value


def _missing_column(column: str, columns: Sequence[str], where: str, flag: str) -> ScoringInputError:
    return ScoringInputError(f"{where} has no column {column!r} ({flag}); its columns are {list(columns)}.")


class CorpusReader:
    """Rows of a file or Hub dataset, in order, as `Chunk`s of `chunk_size` rows.

    Args:
        source (`str`): a file path, or a Hub dataset id when `hub_dataset=True`.
        text_column (`str`, *optional*, defaults to `"text"`): the column with the texts (not used for text files).
        id_column (`str`, *optional*): a column copied into each record (text files: `"line"`, the line number).
        input_format (`str`, *optional*): one of `INPUT_FORMATS`; default: from the file's suffix (`txt` otherwise).
        hub_dataset (`bool`, *optional*, defaults to `False`): `source` is a Hub id, read with
            `oe_text.hub.load_hub_dataset(..., streaming=True)` (through the offline mirror when it is set).
        dataset_config (`str`, *optional*): the Hub dataset's configuration name.
        split (`str`, *optional*, defaults to `"test"`): the Hub dataset's split.
        encoding (`str`, *optional*, defaults to `"utf-8"`): encoding of text, JSON-lines and CSV files.
        chunk_size (`int`, *optional*, defaults to 4096): rows per chunk.
    """

    def __init__(
        self,
        source: str,
        text_column: str = "text",
        id_column: str | None = None,
        input_format: str | None = None,
        hub_dataset: bool = False,
        dataset_config: str | None = None,
        split: str = "test",
        encoding: str = "utf-8",
        chunk_size: int = 4096,
    ):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ScoringInputError(f"--chunk_size must be a positive number of rows, got {chunk_size!r}.")
        self.source, self.text_column, self.id_column = source, text_column, id_column
        self.hub_dataset, self.dataset_config, self.split = hub_dataset, dataset_config, split
        self.encoding, self.chunk_size = encoding, chunk_size
        if hub_dataset:
            self.format = "hub"
        else:
            if not Path(source).is_file():
                raise ScoringInputError(f"input file {source!r} does not exist.")
            fmt = input_format or _SUFFIX_FORMATS.get(Path(source).suffix.lower(), "txt")
            if fmt not in INPUT_FORMATS:
                raise ScoringInputError(f"--input_format must be one of {list(INPUT_FORMATS)}, got {fmt!r}.")
            self.format = fmt
            if fmt != "parquet":
                check_encoding(encoding)
        if self.format == "txt" and id_column not in (None, "line"):
            raise ScoringInputError(f"a text file has no columns: its only id is 'line', not {id_column!r}.")

    @property
    def where(self) -> str:
        return f"Hub dataset {self.source!r} (split {self.split!r})" if self.hub_dataset else repr(self.source)

    def num_rows(self) -> int | None:
        """The number of rows when the format records it (Parquet), else `None`."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.source).metadata.num_rows
        return None

    def _rows(self) -> Iterator[tuple[Any, str | None]]:
        """`(id, text)` per row; the id is `None` without `id_column`."""
        yield from getattr(self, f"_rows_{self.format}")()

    def _rows_txt(self) -> Iterator[tuple[Any, str | None]]:
        for number, line in iter_lines(self.source, self.encoding):
            if line.strip():
                yield (number if self.id_column else None), line

    def _rows_jsonl(self) -> Iterator[tuple[Any, str | None]]:
        for number, line in iter_lines(self.source, self.encoding):
            if not line.strip():
                continue
            where = f"line {number} of {self.where}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ScoringInputError(f"{where} is not valid JSON ({err.msg} at character {err.colno}).") from None
            if not isinstance(record, dict):
                raise ScoringInputError(f"{where} is a JSON {type(record).__name__}, not an object with a text field.")
            if self.text_column not in record:
                raise _missing_column(self.text_column, list(record), where, "--text_column")
            if self.id_column is not None and self.id_column not in record:
                raise _missing_column(self.id_column, list(record), where, "--id_column")
            text = _text_or_none(record[self.text_column], self.text_column, where)
            yield (record[self.id_column] if self.id_column else None), text

    def _rows_csv(self) -> Iterator[tuple[Any, str | None]]:
        with open(self.source, "rb") as raw:
            # newline="" lets the csv module read quoted newlines inside fields.
            reader = csv.reader(io.TextIOWrapper(raw, encoding=self.encoding, newline=""))
            try:
                header = next(reader, None)
                if header is None:
                    raise ScoringInputError(f"{self.where} is empty: a CSV file needs a header row.")
                header[0] = header[0].removeprefix("\ufeff")
                columns = {name: i for i, name in enumerate(header)}
                if self.text_column not in columns:
                    raise _missing_column(self.text_column, header, self.where, "--text_column")
                if self.id_column is not None and self.id_column not in columns:
                    raise _missing_column(self.id_column, header, self.where, "--id_column")
                text_at, id_at = columns[self.text_column], columns.get(self.id_column)
                for row in reader:
                    if not row:
                        continue
                    if len(row) != len(header):
                        raise ScoringInputError(
                            f"line {reader.line_num} of {self.where} has {len(row)} fields, the header {len(header)}."
                        )
                    yield (row[id_at] if id_at is not None else None), row[text_at]
            except UnicodeDecodeError as err:
                raise ScoringInputError(
                    f"{self.where} is not valid {self.encoding} after line {reader.line_num} ({err.reason}); pass "
                    "--encoding with the right encoding."
                ) from None
            except csv.Error as err:
                raise ScoringInputError(f"line {reader.line_num} of {self.where} is not valid CSV: {err}.") from None

    def _rows_parquet(self) -> Iterator[tuple[Any, str | None]]:
        import pyarrow.parquet as pq

        file = pq.ParquetFile(self.source)
        names = file.schema_arrow.names
        yield from self._table_rows(file.iter_batches(batch_size=self.chunk_size, columns=self._columns(names)))

    def _rows_hub(self) -> Iterator[tuple[Any, str | None]]:
        from .hub import load_hub_dataset

        try:
            data = load_hub_dataset(self.source, self.dataset_config, split=self.split, streaming=True)
        except Exception as err:  # datasets raises many types (missing repo, split, config)
            raise ScoringInputError(f"cannot load {self.where}: {err}") from None
        if data.column_names is not None:  # a streamed dataset may not know its columns before the first row
            self._columns(data.column_names)
        for start, batch in enumerate(data.iter(batch_size=self.chunk_size)):
            self._columns(list(batch))
            texts = batch[self.text_column]
            ids = batch[self.id_column] if self.id_column else [None] * len(texts)
            for i, (key, text) in enumerate(zip(ids, texts)):
                yield key, _text_or_none(text, self.text_column, f"row {start * self.chunk_size + i} of {self.where}")

    def _columns(self, names: Sequence[str]) -> list[str]:
        if self.text_column not in names:
            raise _missing_column(self.text_column, names, self.where, "--text_column")
        if self.id_column is not None and self.id_column not in names:
            raise _missing_column(self.id_column, names, self.where, "--id_column")
        return [self.text_column] + ([self.id_column] if self.id_column else [])

    def _table_rows(self, batches) -> Iterator[tuple[Any, str | None]]:
        row = 0
        for batch in batches:
            texts = batch.column(self.text_column).to_pylist()
            ids = batch.column(self.id_column).to_pylist() if self.id_column else [None] * len(texts)
            for key, text in zip(ids, texts):
                yield key, _text_or_none(text, self.text_column, f"row {row} of {self.where}")
                row += 1

    def chunks(self) -> Iterator[Chunk]:
        """The rows as `Chunk`s of `chunk_size` consecutive rows (the last may be shorter)."""
        rows, ids, texts, index = [], [], [], 0
        for row, (key, text) in enumerate(self._rows()):
            rows.append(row)
            ids.append(key)
            texts.append(text)
            if len(rows) == self.chunk_size:
                yield Chunk(index, rows, ids if self.id_column else None, texts)
                rows, ids, texts, index = [], [], [], index + 1
        if rows:
            yield Chunk(index, rows, ids if self.id_column else None, texts)


def _json_value(value: Any) -> Any:
    # Ids come back as they were read; ones JSON cannot hold (bytes, dates) are written as their string.
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def score_chunk(
    detector,
    chunk: Chunk,
    id_column: str | None = None,
    include_text: bool = False,
    batch_size: int = 64,
    threshold: float | None = None,
) -> list[dict[str, Any]]:
    """One record per row of `chunk` (see the module docstring), decided by `detector.detect`."""
    present = [i for i, text in enumerate(chunk.texts) if text is not None and text.strip()]
    detections = {}
    if present:
        found = detector.detect([chunk.texts[i] for i in present], batch_size=batch_size, threshold=threshold)
        detections = dict(zip(present, found))
    records = []
    for i, row in enumerate(chunk.rows):
        record: dict[str, Any] = {"row": row}
        if id_column:
            record[id_column] = _json_value(chunk.ids[i])
        if include_text:
            record["text"] = chunk.texts[i]
        det = detections.get(i)
        record.update({field: None if det is None else det[key] for field, key in zip(RESULT_FIELDS, _DETECT_KEYS)})
        records.append(record)
    return records


class RecordWriter:
    """Writes records as JSON lines (`-` = standard output) or, for a `.parquet` path, as Parquet (one row group
    per chunk, the schema of the first chunk)."""

    def __init__(self, path: str, output_format: str | None = None):
        self.path = path
        self.format = output_format or ("parquet" if str(path).lower().endswith(".parquet") else "jsonl")
        if self.format not in ("jsonl", "parquet"):
            raise ScoringInputError(f"--output_format must be 'jsonl' or 'parquet', got {self.format!r}.")
        if self.format == "parquet" and path == "-":
            raise ScoringInputError("Parquet cannot be written to standard output: pass --output FILE.parquet.")
        self._file = None
        self._parquet = None

    def write(self, records: list[dict[str, Any]]) -> None:
        if self.format == "jsonl":
            if self._file is None:
                self._file = sys.stdout if self.path == "-" else open(self.path, "w", encoding="utf-8")
            self._file.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._parquet is None:
            table = pa.Table.from_pylist(records, schema=self._schema(records))
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        else:
            table = pa.Table.from_pylist(records, schema=self._parquet.schema)
        self._parquet.write_table(table)

    @staticmethod
    def _schema(records):
        import pyarrow as pa

        # Result columns have fixed types, so a first chunk of blank rows (all None) does not fix them to null.
        fixed = {"row": pa.int64(), "text": pa.string(), "label": pa.string(), "probability": pa.float64()}
        fixed.update(ood_score=pa.float64(), is_ood=pa.bool_())
        inferred = pa.Table.from_pylist(records).schema
        return pa.schema([pa.field(f.name, fixed.get(f.name, f.type)) for f in inferred])

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()
        else:
            sys.stdout.flush()


def score_corpus(
    detector,
    reader: CorpusReader,
    output: str,
    output_format: str | None = None,
    include_text: bool = False,
    batch_size: int = 64,
    threshold: float | None = None,
    progress: bool = True,
) -> int:
    """Score every row of `reader` with `detector` and write the records to `output`; returns the number of rows.

    Runs on every process of an `accelerate launch` (see the module docstring): each process scores its chunks and
    the main process writes the output. Single-process runs write directly.
    """
    from accelerate import PartialState
    from tqdm.auto import tqdm

    state = PartialState()
    detector.to(state.device)
    writer = RecordWriter(output, output_format)  # checks the output format on every process, before any work
    if state.num_processes > 1 and output == "-":
        raise ScoringInputError("several processes cannot share standard output: pass --output FILE.")
    total = reader.num_rows()
    bar = tqdm(total=total, unit="rows", desc="scoring", disable=not (progress and state.is_main_process))
    score = dict(id_column=reader.id_column, include_text=include_text, batch_size=batch_size, threshold=threshold)
    if state.num_processes == 1:
        rows = 0
        try:
            for chunk in reader.chunks():
                writer.write(score_chunk(detector, chunk, **score))
                rows += len(chunk.rows)
                bar.update(len(chunk.rows))
        finally:
            writer.close()
            bar.close()
        return rows

    parts = Path(f"{output}.parts")
    if state.is_main_process:
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
    state.wait_for_everyone()
    rows = chunks = 0
    for chunk in reader.chunks():
        chunks, rows = chunk.index + 1, rows + len(chunk.rows)
        if chunk.index % state.num_processes != state.process_index:
            continue
        records = score_chunk(detector, chunk, **score)
        part = parts / f"{chunk.index:09d}.jsonl"
        part.with_suffix(".tmp").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        part.with_suffix(".tmp").rename(part)  # a part file exists only once complete
        bar.update(len(chunk.rows) * state.num_processes)
    bar.close()
    state.wait_for_everyone()
    if state.is_main_process:
        try:
            for index in range(chunks):
                part = parts / f"{index:09d}.jsonl"
                if not part.is_file():
                    raise RuntimeError(f"part {part} of the sharded output is missing; a process failed.")
                with open(part, encoding="utf-8") as file:
                    writer.write([json.loads(line) for line in file])
        finally:
            writer.close()
        shutil.rmtree(parts)
    state.wait_for_everyone()
    return rows
