"""The data layer on the offline mirror's real data: row counts, label names, WikiText sentences, EWT genres."""

import collections

import pytest

from oe_text.data import (
    EWT_GENRES,
    OOD_PRESETS,
    MissingSplitError,
    TextNormalization,
    load_id_dataset,
    load_ood_datasets,
    load_outlier_dataset,
)


pytestmark = pytest.mark.integration


@pytest.fixture
def real_mirror(mirror, monkeypatch):
    monkeypatch.setenv("OE_TEXT_MIRROR", str(mirror))
    return mirror


def _sizes(dd):
    return [len(dd[split]) for split in ("train", "validation", "test")]


def test_in_distribution_presets(real_mirror):
    sst = load_id_dataset("sst2")
    assert _sizes(sst) == [6920, 872, 1821]
    assert sst["test"].features["label"].names == ["negative", "positive"]
    assert collections.Counter(sst["test"]["label"]) == {0: 912, 1: 909}

    glue = load_id_dataset("glue-sst2")
    assert _sizes(glue) == [60614, 6735, 872]  # 67349 train rows, 10% seeded validation; GLUE dev as test
    assert glue["test"].features["label"].names == ["negative", "positive"]

    trec = load_id_dataset("trec")
    assert _sizes(trec) == [4906, 546, 500]
    names = trec["train"].features["label"].names
    assert len(names) == 50 and names[:2] == ["ABBR:abb", "ABBR:exp"] and names[-1] == "NUM:weight"
    assert trec["test"][0]["text"] == "how far is it from denver to aspen ?"
    coarse = load_id_dataset("trec", label_granularity="coarse")
    assert coarse["train"].features["label"].names == ["ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"]

    ng = load_id_dataset("20ng")
    assert _sizes(ng) == [9912, 1102, 7317]  # 11314 - 300 and 7532 - 215 empty posts dropped
    ng_names = ng["train"].features["label"].names
    assert len(ng_names) == 20 and ng_names[0] == "alt.atheism" and ng_names[-1] == "talk.religion.misc"


def test_wikitext_sentences(real_mirror):
    with pytest.raises(MissingSplitError, match=r"no split 'train'.*\['validation', 'test'\]"):
        load_outlier_dataset("wikitext2")
    raw = TextNormalization(lowercase=False)
    # The paper's pipeline, which kept WikiText's literal <unk> token (the default now removes it; see
    # tests/data/test_data_outliers.py::test_wikitext_unk_token_is_removed_by_default).
    validation = load_outlier_dataset("wikitext2", split="validation", normalization=raw, unk_policy="keep")
    test = load_outlier_dataset("wikitext2", split="test", normalization=raw, unk_policy="keep")
    both = load_outlier_dataset("wikitext2", split="validation+test", unk_policy="keep")
    assert (len(validation), len(test), len(both)) == (7681, 8821, 16502)
    assert validation[0]["text"].startswith("Homarus gammarus , known as the European lobster")
    for sentence in list(validation["text"]) + list(test["text"]):
        n_tokens = len(sentence.split())
        assert 3 <= n_tokens <= 60, sentence
        assert not (sentence[0] == "@" or sentence[0].isdigit() or sentence[0].isspace()), sentence
        assert not (sentence.startswith("= ") and sentence.endswith(" =")), sentence
    assert all(s == s.lower() for s in both["text"])


def test_ood_presets_and_unavailable_report(real_mirror):
    loaded, unavailable = load_ood_datasets()
    assert sorted(unavailable) == ["wmt16", "yelp"]
    assert "wmt/wmt16" in unavailable["wmt16"] and "Yelp/yelp_review_full" in unavailable["yelp"]
    assert set(loaded) | set(unavailable) == set(OOD_PRESETS)
    sizes = {name: len(ds) for name, ds in loaded.items()}
    assert sizes == {
        "snli": 9824,
        "imdb": 25000,
        "multi30k": 1000,
        "ewt-answers": 438,
        "ewt-email": 606,
        "ewt-newsgroup": 284,
        "ewt-reviews": 535,
        "ewt-weblog": 214,
    }
    assert sum(sizes[f"ewt-{genre}"] for genre in EWT_GENRES) == 2077  # the five genres partition en_ewt test
    assert loaded["snli"][0]["text"] == "the church has cracks in the ceiling."
    assert loaded["multi30k"][0]["text"] == "a man in an orange hat starring at something."


def test_minilm_tokenizer_policy(real_mirror):
    from transformers import AutoTokenizer

    from oe_text.hub import resolve_hub_id

    tokenizer = AutoTokenizer.from_pretrained(resolve_hub_id("sentence-transformers/all-MiniLM-L6-v2"))
    assert TextNormalization.for_tokenizer(tokenizer) == TextNormalization()  # uncased -> the default policy
