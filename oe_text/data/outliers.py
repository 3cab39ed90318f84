"""Auxiliary outlier data for Outlier Exposure: WikiText split into sentences as in the paper, or any text column.

The paper's NLP results could only be reproduced once WikiText was split into sentences (hendrycks/outlier-exposure
issue #4). Its `wikitext_reformatted/reformat_wikitext.py` drops blank lines and `= heading =` lines, splits the rest
into sentences (NLTK punkt), and keeps sentences of 3 to 60 space-separated tokens that do not start with '@', a digit
or whitespace. `split_wikitext_sentences` does the same with a deterministic rule-based splitter suited to WikiText's
tokenised text (no NLTK model download): a sentence ends at a standalone '.', '?' or '!' token (plus a closing quote or
bracket that belongs to it), so abbreviations such as "H. gammarus" or "U.S." never end a sentence.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

import datasets

from ._loading import (
    HubSource,
    NonEmptyText,
    NormalizeText,
    check_string_column,
    column_names,
    is_local_path,
    load_local_file,
    load_source_split,
    require_columns,
)
from .errors import EmptyDatasetError, MissingSplitError, UnknownPresetError
from .normalization import TextNormalization, resolve_normalization


MIN_SENTENCE_TOKENS = 3
MAX_SENTENCE_TOKENS = 60
_TERMINATOR = re.compile(r"^[.!?]+$")
_CLOSING_BRACKETS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class OutlierPreset:
    """A named auxiliary outlier corpus.

    Attributes:
        name: the preset name (`load_outlier_dataset(name)`).
        source: Hub id and default config.
        text_column: the column holding the text.
        split_sentences: apply the paper's WikiText sentence splitting and filters.
        paper_split: the split the paper used.
        description: one line for docs.
    """

    name: str
    source: HubSource
    text_column: str
    split_sentences: bool
    paper_split: str
    description: str

    @property
    def hub_id(self) -> str:
        return self.source.hub_id


def _wikitext(name: str, config: str, description: str) -> OutlierPreset:
    """A WikiText release (`config` of Salesforce/wikitext) split into sentences; the paper used its train split."""
    source = HubSource("Salesforce/wikitext", config=config)
    return OutlierPreset(name, source, "text", split_sentences=True, paper_split="train", description=description)


OUTLIER_PRESETS: dict[str, OutlierPreset] = {
    "wikitext2": _wikitext(
        "wikitext2",
        "wikitext-2-v1",
        "WikiText-2 split into sentences as in the paper (default config wikitext-2-v1, the tokenised release with "
        "<unk> that the paper's torchtext loader used; wikitext-2-raw-v1 on request).",
    ),
    "wikitext103": _wikitext(
        "wikitext103",
        "wikitext-103-v1",
        "WikiText-103 split into sentences the same way (default config wikitext-103-v1).",
    ),
}


def is_wikitext_heading(line: str) -> bool:
    """Whether a WikiText line is a section heading (`" = Title = "`, `" = = Section = = "`)."""
    stripped = line.strip()
    return len(stripped) > 1 and stripped[0] == "=" and stripped[-1] == "="


def keep_wikitext_sentence(
    sentence: str, min_tokens: int = MIN_SENTENCE_TOKENS, max_tokens: int = MAX_SENTENCE_TOKENS
) -> bool:
    """The paper's sentence filter: `min_tokens`..`max_tokens` whitespace tokens, not starting with '@', a digit or
    whitespace, and no line break."""
    if not sentence or sentence[0] == "@" or sentence[0].isdigit() or sentence[0].isspace() or "\n" in sentence:
        return False
    return min_tokens <= len(sentence.split()) <= max_tokens


def _paragraph_sentences(line: str) -> list[str]:
    """Sentences of one WikiText paragraph; a trailing fragment with no sentence end is dropped.

    The paper's punkt run over the whole file merged such a fragment with the next paragraph and then dropped the
    merged sentence because it contained a line break; dropping only the fragment keeps each paragraph independent,
    which is what lets streaming process any batch of lines on its own.
    """
    tokens = line.split()
    sentences: list[str] = []
    current: list[str] = []
    quotes = 0
    depth = dict.fromkeys(_CLOSING_BRACKETS.values(), 0)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        current.append(token)
        if token == '"':
            quotes += 1
        elif token in depth:
            depth[token] += 1
        elif token in _CLOSING_BRACKETS and depth[_CLOSING_BRACKETS[token]] > 0:
            depth[_CLOSING_BRACKETS[token]] -= 1
        if _TERMINATOR.match(token):
            # WikiText spaces out quotes and brackets, so an odd quote count / open bracket tells a closing one apart.
            while i + 1 < len(tokens):
                follower = tokens[i + 1]
                if follower == '"' and quotes % 2 == 1:
                    quotes += 1
                elif follower in _CLOSING_BRACKETS and depth[_CLOSING_BRACKETS[follower]] > 0:
                    depth[_CLOSING_BRACKETS[follower]] -= 1
                else:
                    break
                current.append(follower)
                i += 1
            sentences.append(" ".join(current))
            current = []
            quotes = 0
            depth = dict.fromkeys(depth, 0)
        i += 1
    return sentences


def split_wikitext_sentences(
    lines: Iterable[str], min_tokens: int = MIN_SENTENCE_TOKENS, max_tokens: int = MAX_SENTENCE_TOKENS
) -> list[str]:
    """Split WikiText lines into the paper's auxiliary sentences.

    Blank lines and section headings are dropped; every other line (a paragraph) is split into sentences, which are
    kept when `keep_wikitext_sentence` accepts them. Text is not normalised here (no lower-casing).

    Args:
        lines (`Iterable[str]`): WikiText rows as `Salesforce/wikitext` stores them (`" = Title = \\n"`, `""`,
            `" Paragraph text . \\n"`).
        min_tokens (`int`, *optional*, defaults to 3): fewest whitespace tokens a sentence may have.
        max_tokens (`int`, *optional*, defaults to 60): most whitespace tokens a sentence may have.

    Returns:
        `list[str]`: the sentences, tokens separated by single spaces, in corpus order.
    """
    if min_tokens < 1 or max_tokens < min_tokens:
        raise ValueError(f"Need 1 <= min_tokens <= max_tokens, got min_tokens={min_tokens}, max_tokens={max_tokens}.")
    sentences = []
    for line in lines:
        if not isinstance(line, str):
            raise TypeError(f"WikiText lines must be str, got {type(line).__name__}: {line!r}.")
        if not line.strip() or is_wikitext_heading(line):
            continue
        sentences.extend(s for s in _paragraph_sentences(line) if keep_wikitext_sentence(s, min_tokens, max_tokens))
    return sentences


class _WikitextToSentences:
    """Batched `map`: WikiText lines -> normalised sentences (row count changes)."""

    def __init__(self, normalization: TextNormalization, text_column: str):
        self.normalization = normalization
        self.text_column = text_column

    def __call__(self, batch: dict) -> dict:
        lines = [line for line in batch[self.text_column] if line is not None]
        return {"text": [self.normalization(s) for s in split_wikitext_sentences(lines)]}


#: What `load_outlier_dataset` does with the literal `<unk>` token of WikiText's tokenised release.
UNK_POLICIES = ("remove", "drop", "keep")
_UNK = re.compile(r"<unk>", flags=re.IGNORECASE)


def apply_unk_policy(texts: Iterable[str], policy: str) -> list[str]:
    """Apply an `UNK_POLICIES` rule to texts.

    WikiText-2's `wikitext-2-v1` release replaces rare words with the literal string `<unk>` (11,362 of its 16,502
    validation+test sentences contain it). No real out-of-distribution text carries that string, so it is a cue a
    model can learn instead of "unlike my data": a WordPiece tokenizer reads it as `<`, `unk`, `>`, a sentencepiece
    vocabulary maps it to its own `<unk>` id.

    * `"remove"`: delete the token (and the space around it collapses to one); texts left empty are dropped.
    * `"drop"`: drop every text that contains it.
    * `"keep"`: the paper's behaviour (its torchtext loader kept the token).
    """
    if policy not in UNK_POLICIES:
        raise ValueError(f"`unk_policy` must be one of {UNK_POLICIES}, got {policy!r}.")
    texts = list(texts)
    if policy == "keep":
        return texts
    if policy == "drop":
        return [t for t in texts if not _UNK.search(t)]
    # Only texts that held the token are re-spaced (the token and the spaces around it collapse to one space).
    cleaned = (" ".join(_UNK.sub(" ", t).split()) if _UNK.search(t) else t for t in texts)
    return [t for t in cleaned if t]


class _UnkPolicy:
    """Batched `map`: `apply_unk_policy` on the `text` column (row count may change); WikiText sentences shortened by
    the removal must still pass the paper's sentence filter."""

    def __init__(self, policy: str, sentence_filter: bool):
        self.policy = policy
        self.sentence_filter = sentence_filter

    def __call__(self, batch: dict) -> dict:
        texts = apply_unk_policy(batch["text"], self.policy)
        return {"text": [t for t in texts if keep_wikitext_sentence(t)] if self.sentence_filter else texts}


class _KeepText:
    """Batched `filter`: non-empty texts that are not in `exclude`."""

    def __init__(self, exclude: frozenset[str]):
        self.exclude = exclude

    def __call__(self, batch: dict) -> list[bool]:
        return [bool(text) and text not in self.exclude for text in batch["text"]]


def load_outlier_dataset(
    name: str = "wikitext2",
    *,
    split: str = "train",
    config: str | None = None,
    text_column: str = "text",
    streaming: bool = False,
    exclude_texts: Iterable[str] | None = None,
    normalization: TextNormalization | None = None,
    max_samples: int | None = None,
    unk_policy: str | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Load an auxiliary outlier set: one column `text`, normalised, no empty rows.

    Args:
        name (`str`, *optional*, defaults to `"wikitext2"`):
            A preset of `OUTLIER_PRESETS` (`"wikitext2"`, `"wikitext103"`: split into sentences as the paper did), a
            Hub id (`"org/name"`), a local dataset folder, or a local file (`.txt`: one text per line; `.csv`, `.tsv`,
            `.json`/`.jsonl`, `.parquet`). Custom data is used as is, one row per text.
        split (`str`, *optional*, defaults to `"train"`):
            The split, or several joined by '+' and concatenated (`"validation+test"`). The paper used `train`; the
            offline mirror only has WikiText-2's `validation` and `test`, so `"train"` raises `MissingSplitError`
            there, listing the splits that exist.
        config (`str`, *optional*):
            The dataset config; defaults to the preset's (`wikitext-2-v1`, `wikitext-103-v1`; `wikitext-2-raw-v1` /
            `wikitext-103-raw-v1` on request).
        text_column (`str`, *optional*, defaults to `"text"`): the column holding the text.
        streaming (`bool`, *optional*, defaults to `False`):
            Return a `datasets.IterableDataset` that reads, splits, normalises and filters lazily, so memory does not
            grow with the corpus (only `exclude_texts` is held in memory).
        exclude_texts (`Iterable[str]`, *optional*):
            Texts (e.g. the in-distribution and OOD test sets) to remove from the auxiliary set; compared after both
            sides are normalised with the same policy.
        normalization (`TextNormalization`, *optional*): the text policy; None means `TextNormalization()`.
        max_samples (`int`, *optional*): keep only the first `max_samples` texts (in corpus order).
        unk_policy (`str`, *optional*): what to do with the literal `<unk>` token (see `apply_unk_policy`):
            `"remove"` it (the default for the WikiText presets), `"drop"` the texts containing it, or `"keep"` it
            (the paper's behaviour; the default for custom data, used as is).

    Returns:
        `datasets.Dataset` (or `datasets.IterableDataset` when `streaming=True`) with one column, `text`.

    Raises:
        `UnknownPresetError`, `UnavailableDatasetError` / `MissingSplitError`, `MissingColumnError`,
        `InvalidTextError` (non-string column), `EmptyDatasetError` (nothing left after filtering).
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a preset name, a Hub id or a local path, got {name!r}.")
    if isinstance(exclude_texts, str):
        raise TypeError("`exclude_texts` must be an iterable of texts, not a single str.")
    norm = resolve_normalization(normalization)
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise ValueError(f"`max_samples` must be a positive int or None, got {max_samples!r}.")
    if not isinstance(split, str) or not split:
        raise ValueError(f"`split` must be a split name such as 'train' or 'validation+test', got {split!r}.")
    if unk_policy is not None and unk_policy not in UNK_POLICIES:
        raise ValueError(f"`unk_policy` must be one of {UNK_POLICIES} or None, got {unk_policy!r}.")

    preset = OUTLIER_PRESETS.get(name)
    if preset is not None:
        source = replace(preset.source, config=config or preset.source.config)
        ds = load_source_split(name, source, split, streaming=streaming)
        sentence_split = preset.split_sentences
    else:
        ds = _load_custom(name, split=split, config=config, streaming=streaming)
        sentence_split = False

    require_columns(ds, [text_column], dataset=name, split=split, hint=" Pass `text_column=` naming the text.")
    check_string_column(ds, text_column, dataset=name, split=split)
    columns = column_names(ds)
    if sentence_split:
        function = _WikitextToSentences(norm, text_column)
    else:
        function = NormalizeText(norm, text_column, name, none_as_empty=True)
    map_kwargs = {} if streaming else {"desc": f"Preparing auxiliary {name}"}
    ds = ds.map(function, batched=True, batch_size=1000, remove_columns=columns, **map_kwargs)
    unk_policy = unk_policy or ("remove" if preset is not None else "keep")
    if unk_policy != "keep":
        ds = ds.map(_UnkPolicy(unk_policy, sentence_split), batched=True, batch_size=1000, **map_kwargs)

    exclude = frozenset(t for t in (norm(x) for x in exclude_texts or () if isinstance(x, str)) if t)
    keep = _KeepText(exclude) if exclude else NonEmptyText()
    ds = ds.filter(keep, batched=True, batch_size=1000, **({} if streaming else {"desc": "Filtering"}))

    if max_samples is not None:
        ds = ds.take(max_samples) if streaming else ds.select(range(min(max_samples, len(ds))))
    if streaming:
        empty = next(iter(ds), None) is None
    else:
        ds = ds.flatten_indices() if ds._indices is not None else ds
        empty = len(ds) == 0
    if empty:
        steps = (
            "empty texts" + (", sentence filtering" if sentence_split else "") + (", exclusions" if exclude else "")
        )
        raise EmptyDatasetError(
            f"The auxiliary outlier set '{name}' (split '{split}', column '{text_column}') is empty after dropping "
            f"{steps}."
        )
    return ds


def _load_custom(name: str, *, split: str, config: str | None, streaming: bool):
    if is_local_path(name) and os.path.isfile(name):
        loaded = load_local_file(name, streaming=streaming)
        if split != "train":
            raise MissingSplitError(name, name, split, list(loaded))
        return loaded["train"]
    if not is_local_path(name) and "/" not in name:
        raise UnknownPresetError(
            f"Unknown auxiliary dataset '{name}': not a preset, a local path, or a Hub id 'org/name'. "
            f"Known presets: {sorted(OUTLIER_PRESETS)}."
        )
    return load_source_split(name, HubSource(name, config=config), split, streaming=streaming)
