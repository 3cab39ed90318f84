import itertools

import datasets
import pytest
from oe_data_fixtures import SHARED_NORMALISED

from oe_text.data import (
    OUTLIER_PRESETS,
    EmptyDatasetError,
    InvalidTextError,
    MissingColumnError,
    MissingSplitError,
    TextNormalization,
    UnknownPresetError,
    is_wikitext_heading,
    keep_wikitext_sentence,
    load_outlier_dataset,
    split_wikitext_sentences,
)
from oe_text.data._loading import NormalizeText


CASED = TextNormalization(lowercase=False)
# What the fake mirror's WikiText validation + test split into, in order (see oe_data_fixtures.py).
EXPECTED_VALIDATION = [
    "Homarus gammarus , known as the European lobster , is a species of <unk> lobster .",
    "It is closely related to the American lobster , H. americanus .",
    "It may grow to a length of 60 cm .",
    'The larger claw is the " crusher " .',
    'He said " it is big . "',
    "Then it left ( slowly ) for home .",
    "The Quick Brown FOX jumps over the lazy dog .",
]
EXPECTED_TEST = [
    "Lobsters live on rocky sea beds in the Atlantic .",
    "They hide in holes by day .",
    "Short one here .",
]


def test_split_wikitext_sentences_follows_the_paper():
    lines = [
        "",
        " = Title = \n",
        " = = Section = = \n",
        " First sentence is here . Second one , about the U.S. , ends here ? \n",
        ' He said " go now . " And ( this one ! ) stays . \n',
        " @-@ at sign start . 1990 was a digit start . Short . fragment with no end \n",
        " " + " ".join(["w"] * 59) + " . " + " ".join(["w"] * 60) + " . \n",
    ]
    assert split_wikitext_sentences(lines) == [
        "First sentence is here .",
        "Second one , about the U.S. , ends here ?",
        'He said " go now . "',
        # punkt (the paper's splitter) also ends a sentence at '!' before ')' and moves the ')' back to it.
        "And ( this one ! )",
        " ".join(["w"] * 59) + " .",
    ]
    assert split_wikitext_sentences(["a b . c d e . f ."], min_tokens=3, max_tokens=3) == ["a b ."]
    assert split_wikitext_sentences(["a b . c d e . f ."], min_tokens=2, max_tokens=4) == ["a b .", "c d e .", "f ."]
    with pytest.raises(ValueError, match="min_tokens"):
        split_wikitext_sentences([], min_tokens=5, max_tokens=2)
    with pytest.raises(TypeError, match="must be str"):
        split_wikitext_sentences([None])


def test_sentence_filter_and_headings():
    assert is_wikitext_heading(" = = Life cycle = = \n") and not is_wikitext_heading(" A = B . \n")
    assert keep_wikitext_sentence("a b c") and not keep_wikitext_sentence("a b")
    for bad in ["@-@ a b", "1 a b", " a b c", "a\nb c"]:
        assert not keep_wikitext_sentence(bad)


# The fixtures hold WikiText's literal <unk> token: these tests check the paper's pipeline (unk_policy='keep').


def test_wikitext_preset_on_the_mirror_layout(fake_mirror):
    assert OUTLIER_PRESETS["wikitext2"].source.config == "wikitext-2-v1"
    with pytest.raises(MissingSplitError, match=r"no split 'train'.*\['validation', 'test'\]") as err:
        load_outlier_dataset("wikitext2")
    assert err.value.available_splits == ["validation", "test"] and err.value.name == "wikitext2"
    validation = load_outlier_dataset("wikitext2", unk_policy="keep", split="validation", normalization=CASED)
    assert validation.column_names == ["text"] and list(validation["text"]) == EXPECTED_VALIDATION
    both = load_outlier_dataset("wikitext2", unk_policy="keep", split="validation+test", normalization=CASED)
    assert list(both["text"]) == EXPECTED_VALIDATION + EXPECTED_TEST
    lowered = load_outlier_dataset("wikitext2", unk_policy="keep", split="validation")
    assert list(lowered["text"]) == [s.lower() for s in EXPECTED_VALIDATION]
    assert SHARED_NORMALISED in lowered["text"]
    assert len(load_outlier_dataset("wikitext2", unk_policy="keep", split="validation+test", max_samples=4)) == 4


def test_exclusion_of_test_sentences(fake_mirror):
    ds = load_outlier_dataset(
        "wikitext2", split="validation", exclude_texts=["THE QUICK  brown fox jumps over the lazy dog .", "unrelated"]
    )
    assert len(ds) == len(EXPECTED_VALIDATION) - 1 and SHARED_NORMALISED not in ds["text"]
    with pytest.raises(EmptyDatasetError, match="'wikitext2'.*empty"):
        load_outlier_dataset(
            "wikitext2", unk_policy="keep", split="test", exclude_texts=[s.lower() for s in EXPECTED_TEST]
        )


def test_streaming_matches_the_in_memory_result(fake_mirror):
    stream = load_outlier_dataset(
        "wikitext2", unk_policy="keep", split="validation+test", streaming=True, exclude_texts=["short one here ."]
    )
    assert isinstance(stream, datasets.IterableDataset)
    assert [row["text"] for row in stream] == [s.lower() for s in EXPECTED_VALIDATION + EXPECTED_TEST[:2]]
    assert [
        row["text"]
        for row in load_outlier_dataset("wikitext2", unk_policy="keep", split="test", streaming=True, max_samples=2)
    ] == [s.lower() for s in EXPECTED_TEST[:2]]
    with pytest.raises(MissingSplitError, match="'train'"):
        load_outlier_dataset("wikitext2", streaming=True)


def test_streaming_is_lazy_so_memory_does_not_grow_with_the_corpus(tmp_path, monkeypatch):
    # Each 1000-line batch is normalised only when iteration reaches it: reading the first rows touches at most two
    # batches (one for the emptiness check at load time, one for iteration), whatever the corpus size.
    seen_batches = []
    original = NormalizeText.__call__

    def counting(self, batch):
        seen_batches.append(len(batch[self.source_column]))
        return original(self, batch)

    monkeypatch.setattr(NormalizeText, "__call__", counting)
    corpus = tmp_path / "big.txt"
    corpus.write_text("\n".join(f"Line Number {i}" for i in range(6000)))
    stream = load_outlier_dataset(str(corpus), streaming=True)
    first = list(itertools.islice(stream, 10))
    assert [row["text"] for row in first] == [f"line number {i}" for i in range(10)]
    assert sum(seen_batches) <= 2000
    seen_batches.clear()
    assert sum(1 for _ in stream) == 6000
    assert max(seen_batches) == 1000 and sum(seen_batches) == 6000


def test_custom_auxiliary_data(tmp_path):
    txt = tmp_path / "aux.txt"
    txt.write_text("First Line Here\n\n  second   LINE \nthird\n")
    ds = load_outlier_dataset(str(txt))
    assert list(ds["text"]) == ["first line here", "second line", "third"]  # no sentence splitting, blanks dropped
    with pytest.raises(MissingSplitError, match=r"\['train'\]"):
        load_outlier_dataset(str(txt), split="test")
    with pytest.raises(MissingColumnError, match=r"no column 'body'; its columns are \['text'\]"):
        load_outlier_dataset(str(txt), text_column="body")

    jsonl = tmp_path / "aux.jsonl"
    jsonl.write_text('{"sentence": "A", "n": 1}\n{"sentence": null, "n": 2}\n{"sentence": "B b", "n": 3}\n')
    assert list(load_outlier_dataset(str(jsonl), text_column="sentence")["text"]) == ["a", "b b"]
    with pytest.raises(InvalidTextError, match="must hold strings"):
        load_outlier_dataset(str(jsonl), text_column="n")

    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n")
    with pytest.raises(EmptyDatasetError, match="empty"):
        load_outlier_dataset(str(blank))
    with pytest.raises(UnknownPresetError, match=r"'wikitext'.*\['wikitext103', 'wikitext2'\]"):
        load_outlier_dataset("wikitext")
    with pytest.raises(TypeError, match="not a single str"):
        load_outlier_dataset(txt, exclude_texts="first line here")


def test_unk_policy_rules():
    from oe_text.data.outliers import apply_unk_policy

    texts = ["the <unk> river flows", "<unk>", "a clean sentence", "two <unk> <unk> words"]
    assert apply_unk_policy(texts, "remove") == ["the river flows", "a clean sentence", "two words"]
    assert apply_unk_policy(texts, "drop") == ["a clean sentence"]
    assert apply_unk_policy(texts, "keep") == texts
    with pytest.raises(ValueError, match="unk_policy"):
        apply_unk_policy(texts, "mask")


@pytest.mark.integration
def test_wikitext_unk_token_is_removed_by_default(mirror):
    from oe_text.data import load_outlier_dataset

    kept = load_outlier_dataset("wikitext2", split="validation+test", unk_policy="keep")["text"]
    removed = load_outlier_dataset("wikitext2", split="validation+test")["text"]
    dropped = load_outlier_dataset("wikitext2", split="validation+test", unk_policy="drop")["text"]
    with_unk = sum("<unk>" in t for t in kept)
    assert with_unk > len(kept) // 2  # the tokenised release is full of it (11,362 of 16,502 sentences)
    assert len(kept) - with_unk < len(removed) <= len(kept) and not any("<unk>" in t for t in removed)
    assert all(3 <= len(t.split()) <= 60 for t in removed)  # still the paper's sentence filter
    assert len(dropped) == len(kept) - with_unk
