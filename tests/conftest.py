import os


# Before torch is imported: idle OpenMP threads sleep instead of spinning (3-5x faster on a shared 2-core CPU).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline Hub mirror named by OE_TEXT_MIRROR; integration tests are skipped without it."""
    value = os.environ.get("OE_TEXT_MIRROR", "")
    if not value or not Path(value).is_dir():
        pytest.skip("OE_TEXT_MIRROR is not set to the offline Hub mirror (../shared/mirror)")
    return Path(value)


TINY_WORDS = (
    "the a movie film good bad great awful plot actor boring fun love hate it was is not very and of to "
    "wiki history river city war born king album song team season game north south year first second"
).split()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A WordPiece tokenizer over a few dozen words, built in code (no Hub access)."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True, model_max_length=32)
    assert tokenizer("good movie")["input_ids"] == [2, 5 + TINY_WORDS.index("good"), 5 + TINY_WORDS.index("movie"), 3]
    return tokenizer


@pytest.fixture(scope="session")
def tiny_bert_config(tiny_tokenizer):
    """A 2-layer, 32-wide BERT config over the tiny vocabulary, without dropout (2 labels)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2,
    )


@pytest.fixture
def tiny_bert(tiny_bert_config):
    """A BERT sequence classifier built from `tiny_bert_config`, seeded."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_bert_config)
