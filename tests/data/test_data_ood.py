import datasets
import pytest
from oe_data_fixtures import SHARED_NORMALISED, SHARED_RAW

from oe_text.data import (
    EWT_GENRES,
    OOD_PRESETS,
    TextNormalization,
    UnavailableDatasetError,
    UnknownPresetError,
    load_id_dataset,
    load_ood_dataset,
    load_ood_datasets,
    load_outlier_dataset,
)


def test_presets_name_their_sources():
    assert list(OOD_PRESETS) == ["snli", "imdb", "multi30k", "wmt16", "yelp"] + [f"ewt-{g}" for g in EWT_GENRES]
    expected = {
        "snli": ("stanfordnlp/snli", "plain_text", "test", "hypothesis"),
        "imdb": ("stanfordnlp/imdb", "plain_text", "test", "text"),
        "multi30k": ("bentrevett/multi30k", None, "test", "en"),
        "wmt16": ("wmt/wmt16", "de-en", "test", "translation"),
        "yelp": ("Yelp/yelp_review_full", "yelp_review_full", "test", "text"),
    }
    for name, (hub_id, config, split, column) in expected.items():
        preset = OOD_PRESETS[name]
        assert (preset.hub_id, preset.config, preset.split, preset.column) == (hub_id, config, split, column)
    assert OOD_PRESETS["wmt16"].key == "en"
    for genre in EWT_GENRES:
        preset = OOD_PRESETS[f"ewt-{genre}"]
        assert preset.hub_id == "universal-dependencies/universal_dependencies"
        assert (preset.id_column, preset.id_prefix) == ("idx", f"{genre}-")


def test_each_preset_on_the_hub_schema(fake_mirror):
    snli = load_ood_dataset("snli")
    assert snli.column_names == ["text"]
    assert list(snli["text"]) == [SHARED_NORMALISED, "a man sleeps.", "a man sleeps."]  # the blank one dropped
    assert list(load_ood_dataset("snli", deduplicate=True)["text"]) == [SHARED_NORMALISED, "a man sleeps."]
    imdb = load_ood_dataset("imdb", normalization=TextNormalization(lowercase=False))
    assert len(imdb) == 10 and imdb[0]["text"] == "Review 0.<br /><br />It Was OK."
    assert list(load_ood_dataset("multi30k")["text"]) == ["two dogs run.", "a girl smiles."]
    assert list(load_ood_dataset("wmt16")["text"]) == ["hello world", "good day"]  # the English side
    for g, genre in enumerate(EWT_GENRES):
        ewt = load_ood_dataset(f"ewt-{genre}")
        assert list(ewt["text"]) == [f"{genre} sentence {k} ." for k in range(g + 1)]


def test_subsampling_is_seeded(fake_mirror):
    a = load_ood_dataset("imdb", max_samples=4, seed=1)
    assert len(a) == 4 and list(a["text"]) == list(load_ood_dataset("imdb", max_samples=4, seed=1)["text"])
    assert list(a["text"]) != list(load_ood_dataset("imdb", max_samples=4, seed=2)["text"])
    assert len(load_ood_dataset("multi30k", max_samples=50)) == 2
    with pytest.raises(ValueError, match="max_samples"):
        load_ood_dataset("imdb", max_samples=0)


def test_unreachable_presets_are_reported_by_name(fake_mirror):
    with pytest.raises(UnavailableDatasetError, match="'yelp'.*'Yelp/yelp_review_full'.*not in the offline mirror"):
        load_ood_dataset("yelp")
    loaded, unavailable = load_ood_datasets()
    assert list(loaded) == [name for name in OOD_PRESETS if name != "yelp"]
    assert list(unavailable) == ["yelp"] and "Yelp/yelp_review_full" in unavailable["yelp"]
    loaded, unavailable = load_ood_datasets(["yelp", "snli", "snli"])
    assert (list(loaded), list(unavailable)) == (["snli"], ["yelp"])


def test_unknown_names_fail_before_loading(fake_mirror):
    with pytest.raises(UnknownPresetError, match=r"\['ewt'\].*'snli'.*'ewt-weblog'"):
        load_ood_datasets(["snli", "ewt"])
    with pytest.raises(UnknownPresetError, match="'wmt'"):
        load_ood_dataset("wmt")


def test_one_policy_for_in_distribution_auxiliary_and_ood_text(fake_mirror):
    # The same raw sentence sits in SST train, WikiText validation and SNLI test; the three loaders agree on it.
    for norm in (None, TextNormalization(lowercase=False), TextNormalization(unicode_form="NFKC")):
        expected = (norm or TextNormalization())(SHARED_RAW)
        assert expected in load_id_dataset("sst2", normalization=norm)["train"]["text"]
        assert expected in load_outlier_dataset("wikitext2", split="validation", normalization=norm)["text"]
        assert expected in load_ood_dataset("snli", normalization=norm)["text"]


def test_yelp_on_its_hub_schema(tmp_path, fake_mirror, monkeypatch):
    # Yelp is absent from the shared fake mirror (to test the unavailable report); a mirror holding only Yelp here.
    folder = tmp_path / "datasets" / "Yelp" / "yelp_review_full"
    (folder / "yelp_review_full").mkdir(parents=True)
    features = datasets.Features(
        {
            "label": datasets.ClassLabel(names=["1 star", "2 star", "3 stars", "4 stars", "5 stars"]),
            "text": datasets.Value("string"),
        }
    )
    datasets.Dataset.from_dict(
        {"label": [4, 0, 2], "text": ["Great  Tacos!\nWould eat again.", "", "Meh."]}, features=features
    ).to_parquet(str(folder / "yelp_review_full" / "test-00000-of-00001.parquet"))
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: yelp_review_full\n  data_files:\n  - split: test\n"
        "    path: yelp_review_full/test-*\n---\n"
    )
    monkeypatch.setenv("OE_TEXT_MIRROR", str(tmp_path))
    assert list(load_ood_dataset("yelp")["text"]) == ["great tacos! would eat again.", "meh."]
    loaded, unavailable = load_ood_datasets(["yelp", "snli"])
    assert list(loaded) == ["yelp"] and list(unavailable) == ["snli"]
