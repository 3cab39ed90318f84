"""One text normalisation policy, applied identically to in-distribution, auxiliary (outlier) and OOD text.

The policy exists because the paper's public data mixed casings: its SST text was cased while the WikiText outliers
and the OOD sets were lower-cased, so a detector could separate them by case alone instead of by content. Every loader
in `oe_text.data` takes a `normalization` argument and applies the same `TextNormalization` to every row it returns.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any


_UNICODE_FORMS = ("NFC", "NFD", "NFKC", "NFKD")


@dataclass(frozen=True)
class TextNormalization:
    """A text normalisation policy: `__call__` maps one raw text to its normalised form.

    The default policy (what every loader uses when `normalization=None`) is lower-casing plus whitespace
    normalisation: the paper's data was lower-cased, SetFit/sst2 is lower-cased at the source, and the MiniLM
    tokenizer the project uses lower-cases anyway, so lower-casing everything removes casing as a shortcut between
    in-distribution, auxiliary and OOD text at no cost. `TextNormalization.for_tokenizer` follows a given tokenizer
    instead.

    Steps, in order: Unicode normalisation (optional), lower-casing (optional), whitespace collapsing (optional),
    stripping of leading/trailing whitespace (optional).
    """

    lowercase: bool = field(
        default=True,
        metadata={"help": "Lower-case every text (`str.lower`). Default True, as the paper's data was lower-cased."},
    )
    normalize_whitespace: bool = field(
        default=True,
        metadata={
            "help": "Replace every run of whitespace (spaces, tabs, newlines, non-breaking spaces, ...) with one "
            "space and strip both ends."
        },
    )
    strip: bool = field(
        default=True,
        metadata={"help": "Strip leading and trailing whitespace (also done by `normalize_whitespace`)."},
    )
    unicode_form: str | None = field(
        default=None,
        metadata={"help": "Unicode normal form applied first: one of 'NFC', 'NFD', 'NFKC', 'NFKD', or None (off)."},
    )

    def __post_init__(self):
        for name in ("lowercase", "normalize_whitespace", "strip"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be a bool, got {getattr(self, name)!r}.")
        if self.unicode_form is not None and self.unicode_form not in _UNICODE_FORMS:
            raise ValueError(
                f"`unicode_form` must be one of {list(_UNICODE_FORMS)} or None, got {self.unicode_form!r}."
            )

    def __call__(self, text: str) -> str:
        """Normalise one text.

        Args:
            text (`str`): the raw text.

        Returns:
            `str`: the normalised text (may be empty; loaders decide what to do with empty texts).

        Raises:
            `TypeError`: `text` is not a `str`.
        """
        if not isinstance(text, str):
            raise TypeError(f"Text to normalise must be a str, got {type(text).__name__}: {text!r}.")
        if self.unicode_form is not None:
            text = unicodedata.normalize(self.unicode_form, text)
        if self.lowercase:
            text = text.lower()
        if self.normalize_whitespace:
            # str.split() splits on exactly the characters str.isspace() accepts (incl. NBSP) and is C-fast.
            text = " ".join(text.split())
        elif self.strip:
            text = text.strip()
        return text

    def batch(self, texts: Iterable[str]) -> list[str]:
        """Normalise many texts (`[self(t) for t in texts]`)."""
        return [self(text) for text in texts]

    @property
    def is_identity(self) -> bool:
        """Whether this policy leaves every text unchanged."""
        return not (self.lowercase or self.normalize_whitespace or self.strip or self.unicode_form)

    def to_dict(self) -> dict[str, Any]:
        """The policy as a JSON-serialisable dict (for logs, model cards and `TextNormalization(**d)`)."""
        return asdict(self)

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, *, default_lowercase: bool = True, **overrides: Any) -> TextNormalization:
        """The policy that matches what `tokenizer` expects.

        `lowercase` is True when the tokenizer lower-cases its input itself (`do_lower_case=True`, or a `Lowercase` /
        `BertNormalizer(lowercase=True)` step in its `tokenizers` normalizer: the MiniLM tokenizer is uncased), False
        when it declares that it is cased (`do_lower_case=False`, or a `tokenizers` normalizer with no lower-casing
        step), and `default_lowercase` when it declares neither (for example a bare SentencePiece model the project
        trains on normalised, lower-cased text). Whitespace normalisation stays on: no tokenizer gives meaning to runs
        of whitespace that this library relies on.

        Note: with a cased tokenizer the result keeps case, so any casing difference between the sources stays
        visible to the model (SetFit/sst2 is lower-cased, SNLI and WikiText are not). Pass `lowercase=True` to remove
        it.

        Args:
            tokenizer: a `transformers` tokenizer, a `tokenizers.Tokenizer`, or any object with `do_lower_case`.
            default_lowercase (`bool`, *optional*, defaults to `True`):
                the value used when the tokenizer does not say whether it lower-cases.
            **overrides: fields of `TextNormalization` that take precedence over what is inferred.

        Returns:
            `TextNormalization`
        """
        detected = tokenizer_lowercases(tokenizer)
        lowercase = default_lowercase if detected is None else detected
        return replace(cls(lowercase=lowercase), **overrides)


def tokenizer_lowercases(tokenizer: Any) -> bool | None:
    """Whether `tokenizer` lower-cases its input: True, False, or None when it does not say.

    Looks at, in order: a boolean `do_lower_case` attribute, `init_kwargs["do_lower_case"]`, then the normalizer of the
    `tokenizers` backend (`tokenizer.backend_tokenizer`, `tokenizer._tokenizer`, or `tokenizer` itself when it is a
    `tokenizers.Tokenizer`).
    """
    if tokenizer is None:
        raise TypeError("`tokenizer` must be a tokenizer object, got None.")
    value = getattr(tokenizer, "do_lower_case", None)
    if isinstance(value, bool):
        return value
    value = (getattr(tokenizer, "init_kwargs", None) or {}).get("do_lower_case")
    if isinstance(value, bool):
        return value
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None and hasattr(tokenizer, "to_str") and hasattr(tokenizer, "normalizer"):
        backend = tokenizer
    if backend is None or not hasattr(backend, "to_str"):
        return None
    try:
        normalizer = json.loads(backend.to_str()).get("normalizer")
    except (ValueError, TypeError, AttributeError):
        return None
    return _normalizer_lowercases(normalizer)


def _normalizer_lowercases(normalizer: dict | None) -> bool:
    # A `tokenizers` backend always declares its normalizer (None = no normalisation), so absence means "cased".
    if not normalizer:
        return False
    kind = normalizer.get("type")
    if kind == "Lowercase":
        return True
    if kind == "BertNormalizer":
        return bool(normalizer.get("lowercase", False))
    if kind == "Sequence":
        return any(_normalizer_lowercases(step) for step in normalizer.get("normalizers", []))
    return False


def resolve_normalization(normalization: TextNormalization | None) -> TextNormalization:
    """`normalization`, or the default policy `TextNormalization()` when it is None."""
    if normalization is None:
        return TextNormalization()
    if not isinstance(normalization, TextNormalization):
        raise TypeError(
            f"`normalization` must be a TextNormalization or None, got {type(normalization).__name__}. "
            "Build one with TextNormalization(...) or TextNormalization.for_tokenizer(tokenizer)."
        )
    return normalization
