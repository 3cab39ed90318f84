"""In-distribution datasets: the paper's SST-2, TREC and 20 Newsgroups by name, or any labelled Hub / local dataset.

Every loader returns a `DatasetDict` with splits `train`, `validation`, `test` and exactly two columns: `text`
(normalised `str`) and `label` (`ClassLabel` with the source's label names).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow.compute as pc

from ..hub import MirrorMissError, resolve_hub_id
from ._loading import (
    STRING_DTYPES,
    HubSource,
    NormalizeText,
    check_string_column,
    empty_text_rows,
    is_local_path,
    load_local_file,
    load_source_split,
    null_count,
    require_columns,
)
from .errors import (
    EmptyDatasetError,
    InvalidLabelError,
    InvalidTextError,
    MissingSplitError,
    UnavailableDatasetError,
    UnknownPresetError,
)
from .normalization import TextNormalization, resolve_normalization


LABEL_GRANULARITIES = ("fine", "coarse")
# Custom data: split names that play the validation role.
_SPLIT_ALIASES = {"valid": "validation", "dev": "validation", "val": "validation"}


@dataclass(frozen=True)
class IDPreset:
    """A named in-distribution dataset: where it lives and which columns and splits it uses.

    Attributes:
        name: the preset name (`load_id_dataset(name)`).
        source: the Hub id, config and revision.
        text_column: the source column holding the text.
        label_columns: label column per granularity (`{"fine": ...}`; TREC also has `"coarse"`).
        label_names_column: a column with each row's label name, used to name integer labels (SetFit datasets).
        train_split / test_split: the source splits used as train and test.
        validation_split: the source split used for validation, or None to split it off train (seeded).
        drop_empty: drop rows whose text is empty after normalisation (instead of failing).
        description: one line for docs and `repr`.
    """

    name: str
    source: HubSource
    text_column: str
    label_columns: dict[str, str]
    description: str
    label_names_column: str | None = None
    train_split: str = "train"
    validation_split: str | None = None
    test_split: str = "test"
    drop_empty: bool = False

    @property
    def hub_id(self) -> str:
        return self.source.hub_id


def _setfit(name: str, repo: str, description: str, **kwargs) -> IDPreset:
    """A SetFit dataset (`SetFit/<repo>`): `text`, integer `label` and each label's name in `label_text`."""
    return IDPreset(name, HubSource(f"SetFit/{repo}"), "text", {"fine": "label"}, description, "label_text", **kwargs)


ID_PRESETS: dict[str, IDPreset] = {
    "sst2": _setfit(
        "sst2",
        "sst2",
        "Binary SST (the paper's SST-2: 6920/872/1821 sentences, lower-cased, labelled test).",
        validation_split="validation",
    ),
    "glue-sst2": IDPreset(
        name="glue-sst2",
        source=HubSource("stanfordnlp/sst2"),
        text_column="sentence",
        label_columns={"fine": "label"},
        test_split="validation",
        description=(
            "GLUE SST-2 (67k phrases); GLUE's test labels are hidden, so its validation split is the test set and "
            "validation is a seeded split of train."
        ),
    ),
    "trec": IDPreset(
        name="trec",
        source=HubSource("CogComp/trec", revision="refs/convert/parquet"),
        text_column="text",
        label_columns={"fine": "fine_label", "coarse": "coarse_label"},
        description="TREC question classification, 50 fine labels as in the paper (6 coarse on request).",
    ),
    "20ng": _setfit(
        "20ng",
        "20_newsgroups",
        "20 Newsgroups (bydate, headers/footers/quotes removed); posts left empty by that removal are dropped.",
        drop_empty=True,
    ),
}


def load_id_dataset(
    name: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    label_granularity: str = "fine",
    validation_size: float = 0.1,
    seed: int = 42,
    normalization: TextNormalization | None = None,
    max_train_samples: int | None = None,
    test_size: float | None = None,
    drop_empty: bool | None = None,
    label_names: list[str] | None = None,
    remap_labels: bool = False,
) -> datasets.DatasetDict:
    """Load an in-distribution dataset with splits `train`/`validation`/`test` and columns `text`, `label`.

    Args:
        name (`str`):
            A preset of `ID_PRESETS` (`"sst2"`, `"glue-sst2"`, `"trec"`, `"20ng"`), a Hub id (`"org/name"`), a
            local dataset folder, or a local `.csv`/`.tsv`/`.jsonl`/`.json`/`.parquet`/`.txt` file (`.txt` is read as
            tab-separated with a header row). Hub ids are resolved with `oe_text.hub.resolve_hub_id`, so the offline
            mirror is used when `OE_TEXT_MIRROR` is set.
        text_column (`str`, *optional*):
            The column holding the text. Defaults to the preset's, or `"text"` for custom data.
        label_column (`str`, *optional*):
            The column holding the label (a `ClassLabel`, integers, or strings). Defaults to the preset's, or
            `"label"` for custom data.
        label_granularity (`str`, *optional*, defaults to `"fine"`):
            `"fine"` (50 classes) or `"coarse"` (6 classes); TREC only.
        validation_size (`float` or `int`, *optional*, defaults to 0.1):
            When the source has no validation split, the fraction (or number) of train rows split off as validation,
            with `seed`, stratified by label where every class has at least two rows.
        seed (`int`, *optional*, defaults to 42):
            Seed of the validation split, the test split (`test_size`) and the `max_train_samples` subset.
        normalization (`TextNormalization`, *optional*):
            The text policy; None means `TextNormalization()` (lower-case + whitespace normalisation).
        max_train_samples (`int`, *optional*):
            Keep a seeded random subset of this many train rows (in their original order), after the validation
            split is taken; validation and test are not subsampled.
        test_size (`float` or `int`, *optional*):
            For custom data without a test split only: the fraction (or number) of train rows split off as test.
        drop_empty (`bool`, *optional*):
            Drop rows whose text is empty after normalisation instead of raising. Defaults to the preset's choice
            (True for `20ng`, whose header/quote-stripped posts are sometimes empty), else False.
        label_names (`list[str]`, *optional*):
            Declare the label set: integer labels are indices into it (ids without examples are then allowed),
            string labels must be among its names (class ids follow its order). Not for ClassLabel columns.
        remap_labels (`bool`, *optional*, defaults to `False`):
            Integer labels that are not exactly 0..K-1 (e.g. {0, 1, 7}) raise `InvalidLabelError` by default, so a
            typo cannot add classes that never occur; `True` numbers the labels present in train 0..K-1 in
            increasing order instead (class names keep the original values).

    Returns:
        `datasets.DatasetDict`: `train`, `validation`, `test`, each with columns `text` (`string`) and `label`
        (`ClassLabel`).

    Raises:
        `UnknownPresetError`: `name` is not a preset, a local path, or a Hub id of the form `org/name`.
        `UnavailableDatasetError`: the data cannot be reached (e.g. not in the offline mirror).
        `MissingColumnError`, `InvalidTextError`, `InvalidLabelError`: bad columns, texts or labels.
    """
    name = _check_name(name)
    norm = resolve_normalization(normalization)
    _check_size("validation_size", validation_size)
    if test_size is not None:
        _check_size("test_size", test_size)
    if max_train_samples is not None and (
        isinstance(max_train_samples, bool) or not isinstance(max_train_samples, int) or max_train_samples < 1
    ):
        raise ValueError(f"`max_train_samples` must be a positive int or None, got {max_train_samples!r}.")
    if label_names is not None:
        label_names = list(label_names)
        if len(label_names) < 2 or not all(isinstance(n, str) and n for n in label_names):
            raise ValueError(f"`label_names` must be at least two non-empty strings, got {label_names!r}.")
        if len(set(label_names)) != len(label_names):
            raise ValueError(f"`label_names` has duplicates: {label_names!r}.")
    if label_granularity not in LABEL_GRANULARITIES:
        raise ValueError(f"`label_granularity` must be one of {list(LABEL_GRANULARITIES)}, got {label_granularity!r}.")

    if name in ID_PRESETS:
        preset = ID_PRESETS[name]
        if label_granularity not in preset.label_columns:
            raise ValueError(
                f"`label_granularity={label_granularity!r}` is not available for preset '{name}' (it has "
                f"{list(preset.label_columns)}); only 'trec' has coarse labels."
            )
        text_column = text_column or preset.text_column
        label_column = label_column or preset.label_columns[label_granularity]
        drop = preset.drop_empty if drop_empty is None else drop_empty
        raw = {"train": load_source_split(name, preset.source, preset.train_split)}
        if preset.validation_split is not None:
            raw["validation"] = load_source_split(name, preset.source, preset.validation_split)
        raw["test"] = load_source_split(name, preset.source, preset.test_split)
        names_column = preset.label_names_column if label_column == preset.label_columns["fine"] else None
        source_splits = {"train": preset.train_split, "validation": preset.validation_split, "test": preset.test_split}
    else:
        if label_granularity != "fine":
            raise ValueError(f"`label_granularity` applies to the 'trec' preset only, got {label_granularity!r}.")
        raw = _load_custom(name)
        text_column = text_column or "text"
        label_column = label_column or "label"
        drop = bool(drop_empty)
        names_column = None
        source_splits = {split: split for split in raw}

    _check_splits(raw, name, test_size)
    if text_column == label_column:
        raise ValueError(f"`text_column` and `label_column` must differ, both are {text_column!r}.")
    for split, ds in raw.items():
        where = source_splits.get(split) or split
        require_columns(ds, [text_column, label_column], dataset=name, split=where)
        check_string_column(ds, text_column, dataset=name, split=where)
        nulls = null_count(ds, text_column)
        if nulls:
            raise InvalidTextError(
                f"Dataset '{name}' (split '{where}'): {nulls} of {len(ds)} values of text column '{text_column}' "
                "are missing (null)."
            )

    names, label_ids = _label_names(
        raw,
        label_column,
        names_column,
        dataset=name,
        source_splits=source_splits,
        label_names=label_names,
        remap_labels=remap_labels,
    )
    prepared = {}
    for split, ds in raw.items():
        where = source_splits.get(split) or split
        prepared[split] = _prepare_split(ds, name, where, text_column, label_column, names, label_ids, norm, drop)

    prepared = _make_splits(prepared, name, validation_size=validation_size, test_size=test_size, seed=seed)
    if max_train_samples is not None and max_train_samples < len(prepared["train"]):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(prepared["train"]), size=max_train_samples, replace=False))
        prepared["train"] = prepared["train"].select(keep.tolist())
    return datasets.DatasetDict({split: prepared[split] for split in ("train", "validation", "test")})


def _check_name(name) -> str:
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a preset name, a Hub id or a local path, got {name!r}.")
    return name


def _check_size(argument: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{argument}` must be a float in (0, 1) or a positive int, got {value!r}.")
    if isinstance(value, float) and not 0.0 < value < 1.0 or isinstance(value, int) and value < 1:
        raise ValueError(f"`{argument}` must be a float in (0, 1) or a positive int, got {value!r}.")


def _load_custom(name: str) -> dict[str, datasets.Dataset]:
    """Load a custom dataset (local file, local folder, or Hub id) as {split: Dataset}."""
    if is_local_path(name):
        if os.path.isfile(name):
            builder = "csv" if name.lower().endswith(".txt") else None
            return dict(load_local_file(name, builder=builder))
        path = name
    elif "/" not in name:
        raise UnknownPresetError(
            f"Unknown in-distribution dataset '{name}': not a preset, a local path, or a Hub id 'org/name'. "
            f"Known presets: {sorted(ID_PRESETS)}."
        )
    else:
        try:
            path = resolve_hub_id(name, "dataset")
        except MirrorMissError as err:
            raise UnavailableDatasetError(name, name, f"not in the offline mirror ({err})") from err
    try:
        loaded = datasets.load_dataset(path)
    except (ConnectionError, FileNotFoundError) as err:
        raise UnavailableDatasetError(name, name, f"{type(err).__name__}: {err}") from err
    # Only the splits used are checked: others (e.g. IMDB's unlabelled 'unsupervised') may legitimately lack labels.
    out = {}
    for split, ds in loaded.items():
        role = _SPLIT_ALIASES.get(split, split)
        if role in ("train", "validation", "test") and role not in out:
            out[role] = ds
    if not out:
        raise UnavailableDatasetError(
            name, name, f"it has none of the splits train/validation/test; its splits are {sorted(loaded)}"
        )
    return out


def _label_names(
    raw: dict[str, datasets.Dataset],
    label_column: str,
    names_column: str | None,
    *,
    dataset: str,
    source_splits: dict,
    label_names: list[str] | None = None,
    remap_labels: bool = False,
) -> tuple[list[str], dict | None]:
    """The label set and how to encode it: `(names, encoding)`, `encoding` mapping a raw label to its class id (None
    when integer labels are their own ids).

    The label set is the declared `label_names`, the ClassLabel names, or the labels present in train: strings
    (sorted), or integers, which must then be exactly 0..K-1 (`InvalidLabelError` on gaps, e.g. {0, 1, 7} or a typo
    1000000, unless `remap_labels` numbers the labels present 0..K-1 in increasing order). Integer names come from a
    label-name column when the data has one. Every split's labels are checked against the set (`InvalidLabelError`
    for values outside it).
    """
    train = raw["train"]
    feature = train.features[label_column]

    def where(split):
        return source_splits.get(split) or split

    def outside(split, ds, bad_count, examples, extra=""):
        hint = ""
        if -1 in examples:
            hint = " (-1 is the Hub's marker of a hidden test label: GLUE hides its test labels; use a labelled split)"
        raise InvalidLabelError(
            f"Dataset '{dataset}' (split '{where(split)}'): {bad_count} of {len(ds)} labels in column "
            f"'{label_column}' are outside the label set{extra}: e.g. {examples[:5]}{hint}."
        )

    for split, ds in raw.items():
        nulls = null_count(ds, label_column)
        if nulls:
            raise InvalidLabelError(
                f"Dataset '{dataset}' (split '{where(split)}'): {nulls} labels in column '{label_column}' are missing."
            )

    if isinstance(feature, datasets.ClassLabel):
        if label_names is not None:
            raise ValueError(
                f"`label_names` declares a label set, but label column '{label_column}' of '{dataset}' is a "
                f"ClassLabel that already names its classes ({feature.names})."
            )
        names = list(feature.names)
        for split, ds in raw.items():
            other = ds.features[label_column]
            if not isinstance(other, datasets.ClassLabel) or list(other.names) != names:
                raise InvalidLabelError(
                    f"Dataset '{dataset}': label column '{label_column}' of split '{where(split)}' is {other}, but "
                    f"train's is {feature}; every split must share one label set."
                )
            _check_int_range(split, ds, label_column, len(names), outside)
        return names, None

    is_string = isinstance(feature, datasets.Value) and feature.dtype in STRING_DTYPES
    is_int = isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint"))
    if not (is_string or is_int):
        raise InvalidLabelError(
            f"Dataset '{dataset}': label column '{label_column}' has type {feature}; labels must be a ClassLabel, "
            "integers or strings."
        )
    for split, ds in raw.items():
        other = ds.features[label_column]
        same_kind = isinstance(other, datasets.Value) and (
            other.dtype in STRING_DTYPES if is_string else other.dtype.startswith(("int", "uint"))
        )
        if not same_kind:
            raise InvalidLabelError(
                f"Dataset '{dataset}': label column '{label_column}' is {other} in split '{where(split)}' but "
                f"{feature} in train."
            )

    if is_string:
        names = list(label_names) if label_names is not None else sorted(set(train.unique(label_column)))
        for split, ds in raw.items():
            extra = " declared" if label_names is not None else f" seen in train ({names})"
            _check_in_set(split, ds, label_column, names, outside, extra)
        return names, {name: i for i, name in enumerate(names)}

    if label_names is not None:
        names = list(label_names)
        for split, ds in raw.items():
            _check_int_range(split, ds, label_column, len(names), outside)
        return names, None
    present = sorted(train.unique(label_column))
    if present and present[0] < 0:  # never a class id: reported as outside the label set, whatever the option
        _check_int_range("train", train, label_column, present[-1] + 1, outside)
    if present == list(range(len(present))):
        names = _int_label_names(raw, label_column, names_column, present, dataset=dataset)
        for split, ds in raw.items():
            _check_int_range(split, ds, label_column, len(names), outside)
        return names, None
    if not remap_labels:
        known = set(present)
        # The first missing ids are all below len(present) + 5: no loop up to a huge (typo) label.
        missing = [i for i in range(len(present) + 5) if i not in known][:5]
        raise InvalidLabelError(
            f"Dataset '{dataset}' (split '{where('train')}'): the integer labels in column '{label_column}' are not "
            f"0..K-1: the {len(present)} distinct labels are {present[:10]}{'...' if len(present) > 10 else ''} "
            f"(largest {present[-1]}), so ids such as {missing} have no example. Fix the labels, declare the label "
            "set with `label_names=[...]` (`oe-text train --class_names`), or pass `remap_labels=True` "
            f"(`--remap_labels`) to number the labels present 0..{len(present) - 1} in increasing order."
        )
    names = _int_label_names(raw, label_column, names_column, present, dataset=dataset)
    for split, ds in raw.items():
        _check_in_set(split, ds, label_column, present, outside, f" seen in train ({present[:10]})")
    return names, {value: i for i, value in enumerate(present)}


def _check_in_set(split, ds, label_column, values, outside, extra) -> None:
    """Raise through `outside` when a label of `ds` is not one of `values`."""
    known = set(values)
    bad = [value for value in ds.unique(label_column) if value not in known]
    if bad:
        column = _column(ds, label_column)
        count = int(pc.sum(pc.is_in(column, value_set=pc.cast(bad, column.type))).as_py())
        outside(split, ds, count, sorted(bad), extra=extra)


def _column(ds: datasets.Dataset, column: str):
    """The arrow column of `ds` (of the selected rows when `ds` has an indices mapping)."""
    return ds.data.column(column) if ds._indices is None else ds.flatten_indices().data.column(column)


def _check_int_range(split, ds, label_column, num_classes, outside) -> None:
    column = _column(ds, label_column)
    if not len(column):
        return
    bad_mask = pc.or_(pc.less(column, 0), pc.greater_equal(column, num_classes))
    bad_count = int(pc.sum(bad_mask).as_py() or 0)
    if bad_count:
        examples = sorted(set(pc.filter(column, bad_mask).to_pylist()))
        outside(split, ds, bad_count, examples, extra=f" 0..{num_classes - 1}")


def _int_label_names(raw, label_column, names_column, ids: list[int], *, dataset) -> list[str]:
    """Names of the integer labels `ids`: from `names_column` when the data has one, else the numbers themselves."""
    if names_column is None or names_column not in raw["train"].column_names:
        return [str(i) for i in ids]
    mapping: dict[int, str] = {}
    for ds in raw.values():
        if names_column not in ds.column_names:
            continue
        table = ds.data.table if ds._indices is None else ds.flatten_indices().data.table
        pairs = table.select([label_column, names_column]).group_by([label_column, names_column]).aggregate([])
        for label, label_name in zip(pairs.column(label_column).to_pylist(), pairs.column(names_column).to_pylist()):
            if label in mapping and mapping[label] != label_name:
                raise InvalidLabelError(
                    f"Dataset '{dataset}': label {label} is named both '{mapping[label]}' and '{label_name}' in "
                    f"column '{names_column}'."
                )
            mapping[label] = label_name
    return [mapping.get(i, str(i)) for i in ids]


class _NormalizeAndEncode:
    """Batched `map`: normalise the text into `text`, encode the label into `label`, drop empty texts if asked.

    A class (not a closure) so that `datasets` can fingerprint it and reuse cached results.
    """

    def __init__(self, normalization, text_column, label_column, label_ids, dataset, drop_empty):
        self.normalize = NormalizeText(normalization, text_column, dataset, none_as_empty=False)
        self.label_column = label_column
        self.label_ids = label_ids
        self.drop_empty = drop_empty

    def __call__(self, batch: dict) -> dict:
        texts = self.normalize(batch)["text"]
        labels = batch[self.label_column]
        if self.label_ids is not None:
            labels = [self.label_ids[label] for label in labels]
        if self.drop_empty:
            keep = [i for i, text in enumerate(texts) if text]
            texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        return {"text": texts, "label": labels}


def _prepare_split(
    ds: datasets.Dataset,
    dataset: str,
    split: str,
    text_column: str,
    label_column: str,
    names: list[str],
    label_ids: dict | None,
    normalization: TextNormalization,
    drop_empty: bool,
) -> datasets.Dataset:
    """Normalise and type one split in a single pass: columns `text` (normalised) and `label` (ClassLabel `names`;
    raw labels are encoded with `label_ids`, or kept when it is None)."""
    ds = ds.map(
        _NormalizeAndEncode(normalization, text_column, label_column, label_ids, dataset, drop_empty),
        batched=True,
        batch_size=2000,
        remove_columns=ds.column_names,
        features=datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)}),
        desc=f"Normalising {dataset} {split}",
    )
    if not drop_empty:
        empty = empty_text_rows(ds)
        if empty:
            raise InvalidTextError(
                f"Dataset '{dataset}' (split '{split}'): {len(empty)} of {len(ds)} texts are empty after "
                f"normalisation (rows {empty[:5]}{'...' if len(empty) > 5 else ''}). Pass `drop_empty=True` to drop "
                "them."
            )
    return ds


def _split_off(
    ds: datasets.Dataset, size, seed: int, *, dataset: str, argument: str
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Seeded (rest, held-out) split, stratified by label when possible; both parts keep the original row order."""
    # `Dataset.train_test_split(stratify_by_column=...)` reads the labels row by row (~25 s for GLUE SST-2's 67k
    # rows); scikit-learn on the label array gives the same kind of split in milliseconds.
    from sklearn.model_selection import train_test_split

    labels = ds.data.column("label").to_numpy() if ds._indices is None else np.asarray(ds["label"])
    rows = np.arange(len(labels))
    held_out = math.ceil(size * len(rows)) if isinstance(size, float) else size
    if not 1 <= held_out < len(rows):
        raise ValueError(
            f"`{argument}={size}` would hold out {held_out} of the {len(rows)} train rows of '{dataset}'; it must "
            "leave at least one row on each side."
        )
    try:
        rest, held = train_test_split(rows, test_size=size, random_state=seed, stratify=labels)
    except ValueError:
        # Stratification needs two rows per class and room for every class on both sides; tiny data may lack it.
        rest, held = train_test_split(rows, test_size=size, random_state=seed)
    return ds.select(np.sort(rest)), ds.select(np.sort(held))


def _check_splits(raw: dict, dataset: str, test_size) -> None:
    if "train" not in raw:
        raise MissingSplitError(dataset, dataset, "train", list(raw))
    if "test" not in raw and test_size is None:
        raise UnavailableDatasetError(
            dataset, dataset, f"it has no 'test' split (splits: {list(raw)}); pass `test_size=` to split one off train"
        )
    if "test" in raw and test_size is not None:
        raise ValueError(f"`test_size` is only for data without a test split; '{dataset}' has one.")


def _make_splits(prepared: dict, dataset: str, *, validation_size, test_size, seed) -> dict[str, datasets.Dataset]:
    out = dict(prepared)
    if "test" not in out:
        out["train"], out["test"] = _split_off(out["train"], test_size, seed, dataset=dataset, argument="test_size")
    if "validation" not in out:
        out["train"], out["validation"] = _split_off(
            out["train"], validation_size, seed, dataset=dataset, argument="validation_size"
        )
    for split in ("train", "validation", "test"):
        if len(out[split]) == 0:
            raise EmptyDatasetError(f"Dataset '{dataset}': split '{split}' has no rows.")
    return out
