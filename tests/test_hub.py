import pytest

from oe_text.hub import MirrorMissError, is_mirrored, load_hub_dataset, resolve_hub_id


def test_without_mirror_ids_go_to_the_hub(monkeypatch):
    monkeypatch.delenv("OE_TEXT_MIRROR", raising=False)
    assert resolve_hub_id("SetFit/sst2", "dataset") == "SetFit/sst2"
    monkeypatch.setenv("OE_TEXT_MIRROR", "")
    assert resolve_hub_id("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def test_mirror_layout_and_miss_error(monkeypatch, tmp_path):
    (tmp_path / "datasets" / "org" / "data").mkdir(parents=True)
    (tmp_path / "models" / "org" / "model").mkdir(parents=True)
    monkeypatch.setenv("OE_TEXT_MIRROR", str(tmp_path))
    assert resolve_hub_id("org/data", "dataset") == str(tmp_path / "datasets" / "org" / "data")
    assert resolve_hub_id("org/model") == str(tmp_path / "models" / "org" / "model")
    assert is_mirrored("org/data", "dataset") and not is_mirrored("org/data", "model")
    with pytest.raises(MirrorMissError) as err:
        resolve_hub_id("org/missing", "dataset")
    assert "org/missing" in str(err.value) and str(tmp_path / "datasets" / "org" / "missing") in str(err.value)
    # A model id is never looked up among the datasets.
    with pytest.raises(MirrorMissError, match="model 'org/data'"):
        resolve_hub_id("org/data", "model")


def test_local_paths_pass_through(monkeypatch, tmp_path):
    monkeypatch.setenv("OE_TEXT_MIRROR", str(tmp_path / "nowhere"))
    assert resolve_hub_id(tmp_path) == str(tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="repo_type"):
        resolve_hub_id("a/b", "space")
    with pytest.raises(ValueError, match="repo_id"):
        resolve_hub_id("")


@pytest.mark.integration
def test_real_mirror_dataset_and_model(mirror):
    from transformers import AutoConfig

    sst2 = load_hub_dataset("SetFit/sst2", split="validation")
    assert len(sst2) == 872 and set(sst2.column_names) >= {"text", "label"}
    config = AutoConfig.from_pretrained(resolve_hub_id("sentence-transformers/all-MiniLM-L6-v2"))
    assert config.model_type == "bert" and config.num_hidden_layers == 6
