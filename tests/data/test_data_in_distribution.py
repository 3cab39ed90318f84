import datasets
import pytest
from oe_data_fixtures import NG_NAMES, SHARED_NORMALISED, SST_NAMES, TREC_COARSE, TREC_FINE

from oe_text.data import (
    ID_PRESETS,
    InvalidLabelError,
    InvalidTextError,
    MissingColumnError,
    MissingSplitError,
    TextNormalization,
    UnavailableDatasetError,
    UnknownPresetError,
    load_id_dataset,
)


def _assert_schema(dd, names):
    assert list(dd) == ["train", "validation", "test"]
    for split in dd.values():
        assert split.column_names == ["text", "label"]
        assert split.features["text"] == datasets.Value("string")
        assert split.features["label"] == datasets.ClassLabel(names=names)


def test_sst2_preset(fake_mirror):
    dd = load_id_dataset("sst2")
    _assert_schema(dd, SST_NAMES)
    assert [len(dd[s]) for s in dd] == [4, 2, 3]
    assert dd["train"]["text"] == [SHARED_NORMALISED, "a stirring, funny film", "dull and long", "bad"]
    assert dd["train"]["label"] == [1, 1, 0, 0]
    assert dd["validation"]["text"] == ["good fun", "boring"]
    cased = load_id_dataset("sst2", normalization=TextNormalization(lowercase=False))
    assert cased["train"]["text"][1] == "A Stirring, FUNNY film"


def test_glue_sst2_tests_on_validation_and_splits_train(fake_mirror):
    dd = load_id_dataset("glue-sst2", validation_size=0.25, seed=3)
    _assert_schema(dd, SST_NAMES)
    assert dd["test"]["text"] == ["val one", "val two", "val three"]  # GLUE test labels are hidden (-1)
    assert (len(dd["train"]), len(dd["validation"])) == (15, 5)
    assert set(dd["train"]["text"]).isdisjoint(dd["validation"]["text"])
    assert set(dd["train"]["text"]) | set(dd["validation"]["text"]) == {f"sentence number {i}" for i in range(20)}
    assert sorted(dd["validation"]["label"]) in ([0, 0, 1, 1, 1], [0, 0, 0, 1, 1])  # stratified
    again = load_id_dataset("glue-sst2", validation_size=0.25, seed=3)
    assert again["validation"]["text"] == dd["validation"]["text"]
    other = load_id_dataset("glue-sst2", validation_size=0.25, seed=4)
    assert other["validation"]["text"] != dd["validation"]["text"]


def test_trec_fine_and_coarse(fake_mirror):
    fine = load_id_dataset("trec", validation_size=4)
    _assert_schema(fine, TREC_FINE)
    assert [len(fine[s]) for s in fine] == [16, 4, 2]
    assert fine["test"]["text"] == ["who wrote hamlet ?", "what is an abbr ?"]
    assert fine["test"]["label"] == [3, 1]
    coarse = load_id_dataset("trec", label_granularity="coarse", validation_size=4)
    _assert_schema(coarse, TREC_COARSE)
    assert coarse["test"]["label"] == [2, 0]
    with pytest.raises(ValueError, match="only 'trec' has coarse"):
        load_id_dataset("sst2", label_granularity="coarse")
    with pytest.raises(ValueError, match="label_granularity"):
        load_id_dataset("trec", label_granularity="medium")


def test_20ng_drops_empty_posts_unless_told_not_to(fake_mirror):
    dd = load_id_dataset("20ng", validation_size=2)
    _assert_schema(dd, NG_NAMES)
    assert len(dd["train"]) + len(dd["validation"]) == 10  # 12 posts, 2 empty
    assert dd["test"]["text"] == ["space post", "god?"]
    assert all(all(dd[s]["text"]) for s in dd) and "post 0 about things" in list(dd["train"]["text"]) + list(
        dd["validation"]["text"]
    )
    with pytest.raises(InvalidTextError, match=r"2 of 12 texts are empty.*drop_empty=True"):
        load_id_dataset("20ng", drop_empty=False)


def test_max_train_samples_is_a_seeded_subset(fake_mirror):
    full = load_id_dataset("glue-sst2", seed=1)
    small = load_id_dataset("glue-sst2", seed=1, max_train_samples=5)
    assert len(small["train"]) == 5 and set(small["train"]["text"]) <= set(full["train"]["text"])
    assert small["validation"]["text"] == full["validation"]["text"]
    assert load_id_dataset("glue-sst2", seed=1, max_train_samples=5)["train"]["text"] == small["train"]["text"]
    with pytest.raises(ValueError, match="max_train_samples"):
        load_id_dataset("sst2", max_train_samples=0)
    with pytest.raises(ValueError, match="validation_size"):
        load_id_dataset("sst2", validation_size=1.5)


def test_unknown_and_unavailable_names(fake_mirror):
    with pytest.raises(UnknownPresetError) as err:
        load_id_dataset("sst")
    for preset in ID_PRESETS:
        assert preset in str(err.value)
    with pytest.raises(UnavailableDatasetError, match="'someone/missing'.*not in the offline mirror"):
        load_id_dataset("someone/missing")


def test_custom_hub_id_with_hidden_test_labels_fails(fake_mirror):
    with pytest.raises(InvalidLabelError, match=r"split 'test'.*2 of 2 labels.*outside.*\[-1\].*hidden"):
        load_id_dataset("stanfordnlp/sst2", text_column="sentence")
    with pytest.raises(
        MissingColumnError, match=r"'stanfordnlp/sst2'.*no column 'text'.*\['idx', 'sentence', 'label'\]"
    ):
        load_id_dataset("stanfordnlp/sst2")


def test_custom_local_files(tmp_path, fake_mirror):
    train = tmp_path / "data" / "train.csv"
    train.parent.mkdir()
    train.write_text("sentence,topic\nHello World,greet\nBye  Now,leave\nHi there,greet\nSee you,leave\n")
    (tmp_path / "data" / "test.csv").write_text("sentence,topic\nHEY,greet\nciao,leave\n")
    dd = load_id_dataset(str(tmp_path / "data"), text_column="sentence", label_column="topic", validation_size=2)
    _assert_schema(dd, ["greet", "leave"])
    assert dd["test"]["text"] == ["hey", "ciao"] and dd["test"]["label"] == [0, 1]
    assert sorted(list(dd["train"]["text"]) + list(dd["validation"]["text"])) == [
        "bye now",
        "hello world",
        "hi there",
        "see you",
    ]

    with pytest.raises(UnavailableDatasetError, match="no 'test' split.*test_size"):
        load_id_dataset(str(train), text_column="sentence", label_column="topic")
    single = load_id_dataset(str(train), text_column="sentence", label_column="topic", test_size=2, validation_size=1)
    assert [len(single[s]) for s in single] == [1, 1, 2]

    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "a b", "label": 0}\n{"text": "c", "label": 1}\n{"text": "d", "label": 1}\n')
    dd = load_id_dataset(str(jsonl), test_size=1, validation_size=1)
    _assert_schema(dd, ["0", "1"])

    tsv = tmp_path / "d.txt"
    tsv.write_text("label\ttext\nx\tOne\ny\tTwo\nx\tThree\n")
    assert load_id_dataset(str(tsv), test_size=1, validation_size=1)["train"].features["label"].names == ["x", "y"]


def test_custom_data_errors(tmp_path, fake_mirror):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "train.csv").write_text("text,label\na,x\nb,y\n")
    (folder / "test.csv").write_text("text,label\nc,z\n")
    with pytest.raises(InvalidLabelError, match=r"split 'test'.*1 of 1 labels.*outside the label set.*'z'"):
        load_id_dataset(str(folder))
    with pytest.raises(MissingColumnError, match=r"no column 'body'; its columns are \['text', 'label'\]"):
        load_id_dataset(str(folder), text_column="body")

    parquet = tmp_path / "p.parquet"
    datasets.Dataset.from_dict({"text": [1, 2, 3], "label": [0, 1, 0]}).to_parquet(str(parquet))
    with pytest.raises(InvalidTextError, match="must hold strings"):
        load_id_dataset(str(parquet), test_size=1)
    datasets.Dataset.from_dict({"text": ["a", None, "c"], "label": [0, 1, 0]}).to_parquet(str(parquet))
    with pytest.raises(InvalidTextError, match="1 of 3 values.*missing"):
        load_id_dataset(str(parquet), test_size=1)
    datasets.Dataset.from_dict({"text": ["a", " ", "c", "d"], "label": [0, 1, 0, 1]}).to_parquet(str(parquet))
    with pytest.raises(InvalidTextError, match="empty after normalisation"):
        load_id_dataset(str(parquet), test_size=1)
    assert len(load_id_dataset(str(parquet), test_size=1, validation_size=1, drop_empty=True)["train"]) == 1
    datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, -2, 1]}).to_parquet(str(parquet))
    with pytest.raises(InvalidLabelError, match=r"outside the label set.*\[-2\]"):
        load_id_dataset(str(parquet), test_size=1)


def test_argument_checks(tmp_path, fake_mirror):
    only_test = tmp_path / "only_test"
    only_test.mkdir()
    (only_test / "test.csv").write_text("text,label\na,x\n")
    with pytest.raises(MissingSplitError, match=r"no split 'train'.*\['test'\]"):
        load_id_dataset(only_test)  # a pathlib.Path is accepted as a name
    with pytest.raises(ValueError, match="would hold out 10000 of the 20 train rows of 'trec'"):
        load_id_dataset("trec", validation_size=10_000)
    with pytest.raises(ValueError, match="`test_size` is only for data without a test split"):
        load_id_dataset("sst2", test_size=0.2)
    with pytest.raises(TypeError, match="TextNormalization"):
        load_id_dataset("sst2", normalization={"lowercase": True})
