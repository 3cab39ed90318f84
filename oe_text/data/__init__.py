"""The text data layer: in-distribution, auxiliary-outlier and OOD datasets of the paper by name, one text policy.

    from oe_text.data import load_id_dataset, load_outlier_dataset, load_ood_datasets, TextNormalization

See docs/data.md for the presets, their sources and split sizes.
"""

from .errors import (
    DataError,
    EmptyDatasetError,
    InvalidLabelError,
    InvalidTextError,
    MalformedFileError,
    MissingColumnError,
    MissingSplitError,
    UnavailableDatasetError,
    UnknownPresetError,
)
from .in_distribution import ID_PRESETS, IDPreset, load_id_dataset
from .normalization import TextNormalization, tokenizer_lowercases
from .ood import EWT_GENRES, OOD_PRESETS, OODPreset, load_ood_dataset, load_ood_datasets
from .outliers import (
    OUTLIER_PRESETS,
    OutlierPreset,
    is_wikitext_heading,
    keep_wikitext_sentence,
    load_outlier_dataset,
    split_wikitext_sentences,
)


__all__ = [
    "DataError",
    "EWT_GENRES",
    "EmptyDatasetError",
    "MalformedFileError",
    "IDPreset",
    "ID_PRESETS",
    "InvalidLabelError",
    "InvalidTextError",
    "MissingColumnError",
    "MissingSplitError",
    "OODPreset",
    "OOD_PRESETS",
    "OUTLIER_PRESETS",
    "OutlierPreset",
    "TextNormalization",
    "UnavailableDatasetError",
    "UnknownPresetError",
    "is_wikitext_heading",
    "keep_wikitext_sentence",
    "load_id_dataset",
    "load_ood_dataset",
    "load_ood_datasets",
    "load_outlier_dataset",
    "split_wikitext_sentences",
    "tokenizer_lowercases",
]
