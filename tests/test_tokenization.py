import os

import pytest
from transformers import AutoTokenizer
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from oe_text.tokenization import PAD_TOKEN, UNK_TOKEN, train_sentencepiece_tokenizer


SUBJECTS = "the movie the film this plot the actor a story the music the ending our hero".split(" ")
VERBS = ["is", "was", "seems", "felt", "looks", "became"]
ADJECTIVES = "good bad great awful boring funny moving dull brilliant clumsy charming tedious".split()


def corpus(n: int = 600) -> list[str]:
    # Deterministic, varied sentences: enough text for a few hundred sentencepiece tokens.
    return [
        f"{SUBJECTS[i % len(SUBJECTS)]} {VERBS[(i // 3) % len(VERBS)]} {ADJECTIVES[(i * 7) % len(ADJECTIVES)]} "
        f"and {ADJECTIVES[(i * 5 + 3) % len(ADJECTIVES)]} number {i}"
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tokenizer():
    return train_sentencepiece_tokenizer(corpus(), vocab_size=120, model_max_length=16)


def test_special_tokens_vocab_size_and_padding(tokenizer):
    assert len(tokenizer) == 120
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == (PAD_TOKEN, 0)
    assert (tokenizer.unk_token, tokenizer.unk_token_id) == (UNK_TOKEN, 1)
    assert tokenizer.padding_side == "right" and tokenizer.model_max_length == 16
    enc = tokenizer(["the movie was good", "dull"], padding=True)
    assert set(enc) == {"input_ids", "attention_mask"}
    short = enc["input_ids"][1]
    n_real = sum(enc["attention_mask"][1])
    assert short[n_real:] == [0] * (len(short) - n_real) and 0 not in short[:n_real]


def test_normalisation_lowercases_and_collapses_whitespace(tokenizer):
    ids = tokenizer("The   MOVIE\twas\n good ")["input_ids"]
    assert ids == tokenizer("the movie was good")["input_ids"]
    assert tokenizer.decode(ids) == "the movie was good"
    # A character never seen in training is unknown, not dropped.
    assert tokenizer.unk_token_id in tokenizer("the movie ☃")["input_ids"]


def test_lowercase_false_keeps_case():
    texts = [t.capitalize() for t in corpus(300)]
    tok = train_sentencepiece_tokenizer(texts, vocab_size=80, lowercase=False)
    assert tok.tokenize("The movie") != tok.tokenize("the movie")


def test_autotokenizer_round_trip_without_pickle(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["tokenizer.json", "tokenizer_config.json"]
    restored = AutoTokenizer.from_pretrained(tmp_path)
    texts = ["the film felt charming and moving number 12", "a story", "our hero became tedious " * 10]
    assert (
        restored(texts, padding=True, truncation=True)["input_ids"]
        == tokenizer(texts, padding=True, truncation=True)["input_ids"]
    )
    assert len(restored) == len(tokenizer)
    assert (restored.pad_token_id, restored.unk_token_id, restored.model_max_length) == (0, 1, 16)
    # Truncation to model_max_length.
    assert len(restored(texts[2], truncation=True)["input_ids"]) == 16


def test_vocab_size_clamps_with_warning_on_a_small_corpus():
    logger = logging.get_logger("oe_text.tokenization")
    with CaptureLogger(logger) as captured:
        tok = train_sentencepiece_tokenizer(corpus(40), vocab_size=10_000)
    assert len(tok) < 10_000
    assert "instead of the requested vocab_size=10000" in captured.out
    assert tok("the movie was good")["input_ids"]


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="too small for this corpus"):
        train_sentencepiece_tokenizer(corpus(40), vocab_size=5)
    with pytest.raises(ValueError, match="no non-blank text"):
        train_sentencepiece_tokenizer(["", "   "], vocab_size=50)
    with pytest.raises(TypeError, match="not one string"):
        train_sentencepiece_tokenizer("the movie was good")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        train_sentencepiece_tokenizer(["fine", 3], vocab_size=50)
    with pytest.raises(ValueError, match="vocab_size"):
        train_sentencepiece_tokenizer(corpus(40), vocab_size=2)
