"""Sentencepiece tokenizers trained on in-distribution text, for the recurrent baselines trained from scratch.

The paper's NLP models use a 10k-word vocabulary built from the in-distribution training set. Here the vocabulary is a
sentencepiece **Unigram** model trained with the `sentencepiece` library on that text, then served by a fast
`tokenizers` tokenizer (same pieces and scores), so that `save_pretrained` writes `tokenizer.json` and
`AutoTokenizer.from_pretrained(folder)` restores it: no `trust_remote_code`, no pickle, no sentencepiece model file.

Text is normalised the same way for training and tokenization: Unicode NFKC, optional lower-casing, runs of
whitespace collapsed to one space, ends stripped. Pieces mark word starts with `▁` as sentencepiece does.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from transformers.utils import logging


logger = logging.get_logger(__name__)

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def _normalizer(lowercase: bool) -> normalizers.Normalizer:
    steps = [normalizers.NFKC()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    steps += [normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    return normalizers.Sequence(steps)


def train_sentencepiece_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 10_000,
    model_max_length: int = 512,
    lowercase: bool = True,
    character_coverage: float = 0.9995,
    max_sentences: int | None = 2_000_000,
    seed: int = 0,
    num_threads: int | None = None,
) -> PreTrainedTokenizerFast:
    """Train a sentencepiece Unigram tokenizer on in-distribution text and return it as a fast HF tokenizer.

    The vocabulary size is a soft limit: when the corpus is too small to hold `vocab_size` pieces, the vocabulary
    is smaller (a warning says by how much) instead of failing.

    Args:
        texts (iterable of `str`): in-distribution **training** text (e.g. `dataset["text"]`); blank entries are
            skipped. Consumed once.
        vocab_size (`int`, *optional*, defaults to 10000): target number of tokens, `<pad>` (id 0) and `<unk>`
            (id 1) included; the paper's vocabulary has 10k words.
        model_max_length (`int`, *optional*, defaults to 512): maximum input length; longer texts are truncated by
            `detect` and by tokenization with `truncation=True`.
        lowercase (`bool`, *optional*, defaults to `True`): lower-case text (the paper's text fields do).
        character_coverage (`float`, *optional*, defaults to 0.9995): share of characters the vocabulary must cover;
            rarer characters become `<unk>`.
        max_sentences (`int`, *optional*, defaults to 2,000,000): sentencepiece samples at most this many texts
            (`None`: all).
        seed (`int`, *optional*, defaults to 0): seed of that sampling.
        num_threads (`int`, *optional*): training threads (default: the CPU count, at most 16).

    Returns:
        `PreTrainedTokenizerFast` with `pad_token="<pad>"`, `unk_token="<unk>"`, right padding, and
        `model_max_length`; save it with `save_pretrained`, reload with `AutoTokenizer.from_pretrained`.
    """
    import sentencepiece as spm

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 3:
        raise ValueError(f"`vocab_size` must be an integer >= 3 (two special tokens + pieces), got {vocab_size!r}.")
    if isinstance(texts, str):
        raise TypeError("`texts` must be an iterable of strings (e.g. a list or a dataset column), not one string.")
    normalizer = _normalizer(lowercase)
    counts = {"n": 0}
    # sentencepiece wraps exceptions raised by the iterator in a RuntimeError; keep ours to re-raise them as is.
    errors: list[Exception] = []

    def sentences() -> Iterator[str]:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                errors.append(TypeError(f"`texts[{i}]` must be a string, got {type(text).__name__}."))
                return
            text = normalizer.normalize_str(text)
            if text:
                counts["n"] += 1
                yield text

    # Seeds the sampling of `max_sentences` texts (a process-wide setting of the sentencepiece library).
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            character_coverage=character_coverage,
            # The text is normalised above, exactly as the fast tokenizer's normaliser will do at inference.
            normalization_rule_name="identity",
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            pad_piece=PAD_TOKEN,
            unk_piece=UNK_TOKEN,
            max_sentence_length=1 << 16,
            input_sentence_size=max_sentences or 0,
            shuffle_input_sentence=True,
            seed_sentencepiece_size=1_000_000,
            num_threads=num_threads or min(os.cpu_count() or 1, 16),
            minloglevel=2,
        )
    except RuntimeError as err:
        if errors:
            raise errors[0] from None
        if counts["n"] == 0:
            raise ValueError("`texts` holds no non-blank text: a tokenizer needs training text.") from None
        match = _TOO_SMALL.search(str(err))
        if match:
            raise ValueError(
                f"`vocab_size={vocab_size}` is too small for this corpus: its characters alone need "
                f"{match.group(2)} tokens. Pass a larger vocab_size or a lower character_coverage."
            ) from None
        raise
    if errors:
        raise errors[0]
    if counts["n"] == 0:
        raise ValueError("`texts` holds no non-blank text: a tokenizer needs training text.")

    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    if len(vocab) < vocab_size:
        logger.warning(
            f"The corpus ({counts['n']} texts) supports only {len(vocab)} sentencepiece tokens; the vocabulary has "
            f"{len(vocab)} instead of the requested vocab_size={vocab_size}."
        )

    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=1, byte_fallback=False))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
        padding_side="right",
        truncation_side="right",
        model_input_names=["input_ids", "attention_mask"],
    )
