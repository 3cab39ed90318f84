"""The paper's OOD test sets by name: SNLI, IMDB, Multi30K, WMT16, Yelp and the five English Web Treebank genres.

A preset whose data cannot be reached (not in the offline mirror, Hub unreachable) raises `UnavailableDatasetError`
naming it; `load_ood_datasets` reports such presets by name next to the ones it loaded, and never drops or replaces
one silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow.compute as pc

from ._loading import (
    HubSource,
    NormalizeText,
    check_string_column,
    empty_text_rows,
    load_source_split,
    require_columns,
)
from .errors import EmptyDatasetError, InvalidTextError, UnavailableDatasetError, UnknownPresetError
from .normalization import TextNormalization, resolve_normalization


EWT_GENRES = ("answers", "email", "newsgroup", "reviews", "weblog")

# The Hub's universal_dependencies repo is a loading script, which datasets>=4 refuses to run; its parquet export
# (revision refs/convert/parquet, one folder per treebank) is read instead, as the offline mirror stores it.
_EWT_SOURCE = HubSource(
    "universal-dependencies/universal_dependencies",
    revision="refs/convert/parquet",
    data_files={"test": "en_ewt/test/*.parquet"},
    mirror_id="universal_dependencies",
)


@dataclass(frozen=True)
class OODPreset:
    """A named OOD test set.

    Attributes:
        name: the preset name (`load_ood_dataset(name)`).
        source: the Hub id, config and revision.
        split: the source split.
        column: the source column with the text.
        description: one line for docs.
        key: for a column of dicts (WMT16's `translation`), the key holding the English text.
        id_column / id_prefix: keep only rows whose `id_column` starts with `id_prefix` (EWT genres).
    """

    name: str
    source: HubSource
    split: str
    column: str
    description: str
    key: str | None = None
    id_column: str | None = None
    id_prefix: str | None = None

    @property
    def hub_id(self) -> str:
        return self.source.hub_id

    @property
    def config(self) -> str | None:
        return self.source.config


OOD_PRESETS: dict[str, OODPreset] = {
    "snli": OODPreset(
        "snli",
        HubSource("stanfordnlp/snli", config="plain_text"),
        split="test",
        column="hypothesis",
        description="SNLI test hypotheses.",
    ),
    "imdb": OODPreset(
        "imdb",
        HubSource("stanfordnlp/imdb", config="plain_text"),
        split="test",
        column="text",
        description="IMDB movie reviews, test split (text kept as is, including its '<br />' tags).",
    ),
    "multi30k": OODPreset(
        "multi30k",
        HubSource("bentrevett/multi30k"),
        split="test",
        column="en",
        description="Multi30K English image captions, test split (test_2016_flickr).",
    ),
    "wmt16": OODPreset(
        "wmt16",
        HubSource("wmt/wmt16", config="de-en"),
        split="test",
        column="translation",
        key="en",
        description="WMT16 de-en news test set, English side.",
    ),
    "yelp": OODPreset(
        "yelp",
        HubSource("Yelp/yelp_review_full", config="yelp_review_full"),
        split="test",
        column="text",
        description="Yelp reviews (full), test split.",
    ),
}
for _genre in EWT_GENRES:
    OOD_PRESETS[f"ewt-{_genre}"] = OODPreset(
        f"ewt-{_genre}",
        _EWT_SOURCE,
        split="test",
        column="text",
        id_column="idx",
        id_prefix=f"{_genre}-",
        description=f"English Web Treebank '{_genre}' sentences (UD en_ewt test; genre from the sentence id prefix).",
    )
del _genre


class _TakeKey:
    """Batched `map`: the `key` entry of each dict in `column` (WMT16's `translation` -> English)."""

    def __init__(self, column: str, key: str, dataset: str):
        self.column, self.key, self.dataset = column, key, dataset

    def __call__(self, batch: dict) -> dict:
        out = []
        for value in batch[self.column]:
            if not isinstance(value, dict) or self.key not in value:
                raise InvalidTextError(
                    f"Dataset '{self.dataset}': column '{self.column}' should hold dicts with key '{self.key}', got "
                    f"{value!r}."
                )
            out.append(value[self.key])
        return {self.column: out}


def _check_names(names: Iterable[str] | str) -> list[str]:
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    unknown = [name for name in names if name not in OOD_PRESETS]
    if unknown:
        raise UnknownPresetError(f"Unknown OOD preset(s) {unknown}. Known presets: {list(OOD_PRESETS)}.")
    return names


def load_ood_dataset(
    name: str,
    *,
    normalization: TextNormalization | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    deduplicate: bool = False,
) -> datasets.Dataset:
    """Load one OOD test set of `OOD_PRESETS` as a `Dataset` with one column, `text`.

    Texts that are empty after normalisation are dropped (none are in the mirror's data). Duplicates are kept by
    default, so row counts match the source (SNLI's test hypotheses hold 185 repeats, IMDB's test reviews 199);
    `deduplicate=True` keeps the first occurrence of each normalised text.

    Args:
        name (`str`): a key of `OOD_PRESETS`.
        normalization (`TextNormalization`, *optional*): the text policy; None means `TextNormalization()`.
        max_samples (`int`, *optional*): keep a seeded random subset of this many texts (in source order).
        seed (`int`, *optional*, defaults to 0): seed of that subset.
        deduplicate (`bool`, *optional*, defaults to `False`): drop repeated texts (after normalisation).

    Returns:
        `datasets.Dataset` with one column `text`.

    Raises:
        `UnknownPresetError`: `name` is not a preset.
        `UnavailableDatasetError`: its data cannot be reached; the message names the preset, the Hub id and why.
    """
    (name,) = _check_names([name])
    preset = OOD_PRESETS[name]
    norm = resolve_normalization(normalization)
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise ValueError(f"`max_samples` must be a positive int or None, got {max_samples!r}.")

    ds = load_source_split(name, preset.source, preset.split)
    needed = [preset.column] + ([preset.id_column] if preset.id_column else [])
    require_columns(ds, needed, dataset=f"{name} ({preset.hub_id})", split=preset.split)
    if preset.id_column is not None:
        ids = ds.data.column(preset.id_column)
        keep = pc.indices_nonzero(pc.fill_null(pc.starts_with(ids, preset.id_prefix), False).combine_chunks())
        ds = ds.select(keep.to_pylist()).flatten_indices()
        if len(ds) == 0:
            raise EmptyDatasetError(
                f"OOD preset '{name}': no row of {preset.hub_id} ({preset.split}) has an '{preset.id_column}' "
                f"starting with '{preset.id_prefix}'."
            )
    ds = ds.select_columns([preset.column])
    if preset.key is not None:
        ds = ds.map(_TakeKey(preset.column, preset.key, name), batched=True, desc=f"Selecting {name} '{preset.key}'")
    check_string_column(ds, preset.column, dataset=name, split=preset.split)
    ds = ds.map(
        NormalizeText(norm, preset.column, name, none_as_empty=True),
        batched=True,
        batch_size=2000,
        remove_columns=[preset.column],
        desc=f"Normalising {name}",
    )
    drop = set(empty_text_rows(ds))
    if deduplicate:
        seen: set[str] = set()
        for i, text in enumerate(ds.data.column("text").to_pylist()):
            if text in seen:
                drop.add(i)
            seen.add(text)
    if drop:
        ds = ds.select([i for i in range(len(ds)) if i not in drop]).flatten_indices()
    if len(ds) == 0:
        raise EmptyDatasetError(f"OOD preset '{name}' has no non-empty text.")
    if max_samples is not None and max_samples < len(ds):
        rng = np.random.default_rng(seed)
        ds = ds.select(np.sort(rng.choice(len(ds), size=max_samples, replace=False)).tolist()).flatten_indices()
    return ds


def load_ood_datasets(
    names: Iterable[str] | None = None,
    *,
    normalization: TextNormalization | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    deduplicate: bool = False,
) -> tuple[dict[str, datasets.Dataset], dict[str, str]]:
    """Load several OOD presets; report the unreachable ones by name instead of failing or dropping them.

    Args:
        names (`Iterable[str]`, *optional*): preset names; None means every preset of `OOD_PRESETS`, in order.
        normalization, max_samples, seed, deduplicate: passed to `load_ood_dataset` for every preset.

    Returns:
        `tuple[dict[str, Dataset], dict[str, str]]`: the loaded sets by name, and `{name: reason}` for each preset
        whose data cannot be reached. Every requested name is in exactly one of the two.

    Raises:
        `UnknownPresetError`: a name is not a preset (checked before anything is loaded).
    """
    names = _check_names(list(OOD_PRESETS) if names is None else names)
    loaded: dict[str, datasets.Dataset] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        try:
            loaded[name] = load_ood_dataset(
                name, normalization=normalization, max_samples=max_samples, seed=seed, deduplicate=deduplicate
            )
        except UnavailableDatasetError as err:
            unavailable[name] = str(err)
    return loaded, unavailable
