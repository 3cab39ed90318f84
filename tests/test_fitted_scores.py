"""Fitted OOD scores as detector state: k-NN, Mahalanobis and combined scores saved in safetensors and restored."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, BertModel, pipeline

from oe_text.detection import OODDetectorConfig
from oe_text.modeling_oe import OEClassifier
from oe_text.score_combination import combine_scores, fit_score_combination


ID_TEXTS = [
    "the movie was good",
    "a bad film",
    "the film was great",
    "the plot was boring",
    "a fun movie",
    "the actor was awful",
    "i love the film",
    "i hate the plot",
    "not very good",
    "a very bad movie",
    "the movie was fun and good",
    "the film was not great",
]
ID_LABELS = [1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0]
OUTLIERS = [
    "the river of the north city",
    "the king was born in the first year",
    "the second album song",
    "war history",
]


@pytest.fixture
def backbone_dir(tmp_path, tiny_bert_config, tiny_tokenizer):
    """A tiny pretrained BERT encoder saved to a folder, as `from_backbone` / `attach_pretrained_encoder` read it."""
    torch.manual_seed(0)
    folder = tmp_path / "backbone"
    BertModel(tiny_bert_config, add_pooling_layer=False).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def detector(backbone_dir):
    torch.manual_seed(1)
    model = OEClassifier.from_backbone(str(backbone_dir), id2label=["negative", "positive"])
    # Move the "fine-tuned" encoder away from the pretrained one, as training would.
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_knn_score_matches_scorer_and_decides(detector):
    name = detector.fit_ood_score("knn", ID_TEXTS, k=2, fitted_on="toy train")
    assert name == "knn" and detector.config.ood_score == "knn"
    spec = detector.config.ood_fitted_scores["knn"]
    assert spec["features"]["encoder"] == "fine-tuned" and spec["shapes"]["bank"] == [len(ID_TEXTS), 32]
    assert spec["fitted_on"] == {"dataset": "toy train", "n_examples": len(ID_TEXTS)}
    scores = detector.compute_ood_scores(ID_TEXTS + OUTLIERS)
    # A training text is its own nearest neighbour: its k=2 distance is to another text, outliers are farther.
    assert scores[: len(ID_TEXTS)].mean() < scores[len(ID_TEXTS) :].mean()
    # The same numbers as the scorer of oe_text.feature_scores on the same features.
    from oe_text.feature_scores import KNNScorer

    _, feats = detector.predict_outputs(ID_TEXTS + OUTLIERS, ["fine-tuned:-1"])
    direct = KNNScorer(k=2).fit(feats["fine-tuned:-1"][: len(ID_TEXTS)]).score(feats["fine-tuned:-1"])
    np.testing.assert_allclose(scores, direct, rtol=1e-5, atol=1e-6)
    detector.calibrate_threshold(ID_TEXTS, tpr=0.75)
    out = detector.detect(ID_TEXTS + OUTLIERS)
    assert [d["ood_score"] for d in out] == pytest.approx(list(scores))
    assert sum(d["is_ood"] for d in out[: len(ID_TEXTS)]) == 3  # 1 - tpr of the calibration texts


def test_pretrained_features_are_the_frozen_encoder(detector, backbone_dir, tiny_tokenizer):
    detector.fit_ood_score("knn", ID_TEXTS, k=2, features="pretrained", name="knn_pretrained")
    assert detector.config.pretrained_feature_encoder
    assert all(not p.requires_grad for p in detector.feature_backbone.parameters())
    _, feats = detector.predict_outputs(OUTLIERS, ["pretrained:-1", "fine-tuned:-1"])
    encoder = BertModel.from_pretrained(backbone_dir).eval()
    enc = tiny_tokenizer(OUTLIERS, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = encoder(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    expected = ((states * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(feats["pretrained:-1"], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(feats["fine-tuned:-1"], expected, atol=1e-3)


def test_intermediate_layer_features(detector):
    _, feats = detector.predict_outputs(OUTLIERS, ["fine-tuned:-1", "fine-tuned:1", "fine-tuned:2"])
    # hidden_states[-1] of a 2-layer encoder is layer 2: the same as the pooled last layer.
    np.testing.assert_allclose(feats["fine-tuned:2"], feats["fine-tuned:-1"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(feats["fine-tuned:1"], feats["fine-tuned:-1"])


def test_combined_score_round_trips_through_save_load_auto_and_pipeline(detector, tmp_path):
    detector.fit_ood_score("knn", ID_TEXTS, k=2, features="pretrained", name="knn_pretrained")
    detector.fit_ood_score("mahalanobis", ID_TEXTS, labels=ID_LABELS, reg=1e-3)
    detector.fit_ood_score("combined", ID_TEXTS, outliers=OUTLIERS, components=["msp", "knn_pretrained"])
    spec = detector.config.ood_fitted_scores["combined"]
    assert spec["components"] == ["msp", "knn_pretrained"]
    assert detector.required_feature_keys() == ["pretrained:-1"]
    detector.calibrate_threshold(ID_TEXTS, tpr=0.75, calibration_data="toy")
    probe = ID_TEXTS + OUTLIERS + ["good river", "the the the"]
    before = detector.detect(probe)
    scores = {
        n: detector.ood_scores_from_outputs(
            *detector.predict_outputs(probe, ["pretrained:-1", "fine-tuned:-1"]), name=n
        )
        for n in ("knn_pretrained", "mahalanobis", "combined")
    }

    detector.save_pretrained(tmp_path / "det")
    weights = load_file(str(tmp_path / "det" / "model.safetensors"))
    assert weights["ood_state.knn_pretrained__bank"].shape == (len(ID_TEXTS), 32)
    assert weights["ood_state.combined__weight"].shape == (2,)
    assert any(k.startswith("feature_backbone.") for k in weights)
    assert not list(tmp_path.joinpath("det").glob("*.bin")) and not list(tmp_path.joinpath("det").glob("*.pkl"))

    for loaded in (
        OEClassifier.from_pretrained(tmp_path / "det"),
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "det"),
        pipeline("text-classification", model=str(tmp_path / "det")).model,
    ):
        assert isinstance(loaded, OEClassifier)
        assert loaded.config.ood_score == "combined"
        if loaded.tokenizer is None:
            loaded.tokenizer = detector.tokenizer
        assert loaded.detect(probe) == before
        outputs = loaded.predict_outputs(probe, ["pretrained:-1", "fine-tuned:-1"])
        for n, expected in scores.items():
            np.testing.assert_array_equal(loaded.ood_scores_from_outputs(*outputs, name=n), expected)


def test_missing_or_misshapen_state_fails_to_load(detector, tmp_path):
    detector.fit_ood_score("knn", ID_TEXTS, k=2)
    detector.save_pretrained(tmp_path / "det")
    path = tmp_path / "det" / "model.safetensors"
    weights = load_file(str(path))
    bank = weights.pop("ood_state.knn__bank")
    save_file(weights, str(path), metadata={"format": "pt"})
    with pytest.raises(OSError, match="ood_state.knn__bank"):
        OEClassifier.from_pretrained(tmp_path / "det")
    weights["ood_state.knn__bank"] = bank[:, :16].contiguous()
    save_file(weights, str(path), metadata={"format": "pt"})
    with pytest.raises((OSError, RuntimeError, ValueError), match="knn__bank|size|shape"):
        OEClassifier.from_pretrained(tmp_path / "det")


def test_config_without_state_never_falls_back(detector):
    detector.fit_ood_score("knn", ID_TEXTS, k=2)
    detector.ood_state.drop("knn")
    with pytest.raises(ValueError, match="fitted state of score 'knn' is missing"):
        detector.detect(OUTLIERS)
    with pytest.raises(ValueError, match="needs features"):
        detector.ood_scores_from_logits(torch.zeros(2, 2))


def test_bad_fitting_input(detector):
    with pytest.raises(ValueError, match="empty"):
        detector.fit_ood_score("knn", [])
    with pytest.raises(ValueError, match="single-class"):
        detector.fit_ood_score("mahalanobis", ID_TEXTS, labels=[0] * len(ID_TEXTS))
    with pytest.raises(ValueError, match="needs class labels"):
        detector.fit_ood_score("mahalanobis", ID_TEXTS)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        detector.fit_ood_score("lof", ID_TEXTS)
    with pytest.raises(ValueError, match="needs `outliers`"):
        detector.fit_ood_score("combined", ID_TEXTS)
    with pytest.raises(ValueError, match="Unknown component"):
        detector.fit_ood_score("combined", ID_TEXTS, outliers=OUTLIERS, components=["msp", "nothing"])
    with pytest.raises(ValueError, match="logit score"):
        detector.fit_ood_score("knn", ID_TEXTS, name="msp")
    with pytest.raises(MemoryError, match="max_fit_samples"):
        import oe_text.detection as detection

        detection._check_bank_memory(10**12, 384)
    # Nothing half-fitted was left behind.
    assert detector.config.ood_fitted_scores is None and detector.config.ood_score == "msp"


def test_feature_size_mismatch_is_reported(detector):
    detector.fit_ood_score("knn", ID_TEXTS, k=2)
    spec = json.loads(json.dumps(detector.config.ood_fitted_scores))
    spec["knn"]["shapes"]["bank"] = [len(ID_TEXTS), 16]
    detector.config.ood_fitted_scores = spec
    with pytest.raises(ValueError, match=r"should have shape \[12, 16\]"):
        detector.compute_ood_scores(OUTLIERS)


def test_score_combination_is_a_logistic_model_on_standardised_scores():
    rng = np.random.default_rng(0)
    id_s = rng.normal(size=(200, 2))
    out_s = rng.normal(size=(200, 2)) + np.array([3.0, 0.0])  # only the first score separates
    state = fit_score_combination(id_s, out_s)
    np.testing.assert_allclose(state["mean"], id_s.mean(0), rtol=1e-5)
    assert state["weight"][0] > 5 * abs(state["weight"][1])
    combined = combine_scores(np.concatenate([id_s, out_s]), **state)
    z = (np.concatenate([id_s, out_s]) - state["mean"]) / state["std"]
    np.testing.assert_allclose(combined, z @ state["weight"] + state["bias"][0], rtol=1e-6)
    assert combined[200:].mean() > combined[:200].mean()
    with pytest.raises(ValueError, match="at least 2"):
        fit_score_combination(id_s[:1], out_s)


def test_detection_fields_are_declared_once():
    from oe_text.configuration_oe import OEConfig
    from oe_text.vision.configuration import OEImageConfig

    assert issubclass(OEConfig, OODDetectorConfig) and issubclass(OEImageConfig, OODDetectorConfig)
    for field in ("ood_score", "ood_threshold", "ood_fitted_scores", "oe"):
        assert field not in OEConfig.__annotations__ and field not in OEImageConfig.__annotations__


@pytest.mark.integration
def test_knn_on_the_mirrors_minilm_separates_sst2_from_snli(mirror):
    from oe_text.data import TextNormalization, load_id_dataset, load_ood_dataset
    from oe_text.metrics import auroc

    torch.manual_seed(0)
    model = OEClassifier.from_backbone("sentence-transformers/all-MiniLM-L6-v2", id2label=["negative", "positive"])
    norm = TextNormalization.for_tokenizer(model.tokenizer)
    sst2 = load_id_dataset("sst2", normalization=norm, max_train_samples=2000, seed=0)
    snli = load_ood_dataset("snli", normalization=norm).shuffle(seed=0).select(range(400))
    test = sst2["test"].shuffle(seed=0).select(range(400))
    # The untrained head does not matter: k-NN reads the encoder's (here: pretrained) pooled features.
    model.fit_ood_score("knn", sst2["train"], k=10, fitted_on="SetFit/sst2 train (2000)")
    id_scores = model.compute_ood_scores(test["text"], max_length=64)
    ood_scores = model.compute_ood_scores(snli["text"], max_length=64)
    assert auroc(id_scores, ood_scores) >= 0.95


def test_precomputed_features_fit_the_same_state(detector):
    _, feats = detector.predict_outputs(ID_TEXTS, ["fine-tuned:-1"])
    detector.fit_ood_score("knn", ID_TEXTS, k=2, name="knn_a", chunk_size=5)
    detector.fit_ood_score("knn", ID_TEXTS, k=2, name="knn_b", precomputed_features=feats)
    torch.testing.assert_close(
        detector.ood_state.tensors("knn_a")["bank"], detector.ood_state.tensors("knn_b")["bank"]
    )
    with pytest.raises(ValueError, match="rows for 12 inputs"):
        detector.fit_ood_score(
            "knn", ID_TEXTS, k=2, precomputed_features={"fine-tuned:-1": feats["fine-tuned:-1"][:3]}
        )


def test_gaussian_scorer_is_the_squared_z_score_in_one_dimension():
    from oe_text.feature_scores import GaussianScorer, make_feature_scorer

    x = np.array([[1.0], [2.0], [3.0], [6.0]])
    scorer = make_feature_scorer("gaussian").fit(x, batch_size=3)  # no labels: one Gaussian, fitted in chunks
    assert isinstance(scorer, GaussianScorer) and not GaussianScorer.needs_labels
    mu, sd = x.mean(), x.std()  # maximum-likelihood variance, as MahalanobisScorer
    probe = np.array([[3.0], [0.0], [10.0]])
    np.testing.assert_allclose(scorer.score(probe), ((probe[:, 0] - mu) / sd) ** 2, rtol=1e-10)
    # Two-sided: as far below the mean as above scores the same.
    np.testing.assert_allclose(scorer.score([[mu - 2.0], [mu + 2.0]]), [4 / sd**2, 4 / sd**2], rtol=1e-10)


def test_input_length_score_reads_the_whole_raw_text_and_round_trips(detector, tmp_path):
    from oe_text.inference import input_length_features

    np.testing.assert_allclose(input_length_features(["a b c", "one", "x  y\n z w"])[:, 0], np.log1p([3, 1, 4]))
    detector.fit_ood_score("gaussian", ID_TEXTS, features="input-length", name="length", fitted_on="toy train")
    spec = detector.config.ood_fitted_scores["length"]
    assert spec["features"]["encoder"] == "input-length" and spec["shapes"]["means"] == [1, 1]
    assert detector.required_feature_keys("length") == ["input-length:-1"]
    long_text = " ".join(["the movie was good"] * 200)  # far longer than the tokenizer's max length: still counts
    scores = detector.compute_ood_scores(["a fun movie", long_text, "good"])
    assert scores[1] > 10 * scores[0] and scores[2] > scores[0]
    assert "how atypical an input's length is" in detector.build_model_card().content
    detector.save_pretrained(tmp_path / "det")
    loaded = OEClassifier.from_pretrained(tmp_path / "det")
    np.testing.assert_array_equal(loaded.compute_ood_scores(["a fun movie", long_text, "good"]), scores)
    with pytest.raises(ValueError, match="layer"):
        detector.fit_ood_score("gaussian", ID_TEXTS, features="input-length", layer=2)


def test_selection_averages_over_outlier_sources_and_never_sees_test_data(detector):
    from oe_text.score_selection import fit_candidate_scores, select_ood_score, selection_table

    sources = {"held-out auxiliary": OUTLIERS, "other": ["what is the capital of france ?"] * 3 + ["why ?"]}
    candidates, halves = fit_candidate_scores(
        detector, ["msp", "knn", "length", "combined_length"], ID_TEXTS, ID_LABELS, ID_TEXTS, sources, knn_k=2
    )
    assert candidates == ["msp", "knn", "length", "combined_length"]
    assert detector.config.ood_fitted_scores["combined_length"]["components"] == ["msp", "knn_pretrained", "length"]
    assert set(halves["outliers"]) == set(sources) and len(halves["validation"]) == len(ID_TEXTS) // 2
    selection = select_ood_score(detector, candidates, halves["validation"], halves["outliers"])
    per = selection["per_source"]
    assert set(per) == set(sources) and selection["data"]["n_outliers"] == {"held-out auxiliary": 2, "other": 2}
    for name, figures in selection["candidates"].items():
        assert figures["fpr90"] == pytest.approx(
            (per["held-out auxiliary"][name]["fpr90"] + per["other"][name]["fpr90"]) / 2
        )
    best = min(selection["candidates"].values(), key=lambda f: f["fpr90"])["fpr90"]
    assert selection["candidates"][selection["chosen"]]["fpr90"] == best
    assert detector.config.ood_score == selection["chosen"]
    table = selection_table(selection)
    assert "mean FPR90" in table and "FPR90 other" in table and f"**{selection['chosen']}** (chosen)" in table
    with pytest.raises(ValueError, match="fewer than 2 texts"):
        select_ood_score(detector, candidates, ID_TEXTS, {"small": OUTLIERS[:1]})
    with pytest.raises(ValueError, match="fewer than 4 texts"):
        fit_candidate_scores(detector, ["msp", "combined"], ID_TEXTS, ID_LABELS, ID_TEXTS, {"small": OUTLIERS[:3]})
    with pytest.raises(ValueError, match="No validation outliers"):
        fit_candidate_scores(detector, ["msp", "combined"], ID_TEXTS, ID_LABELS, ID_TEXTS, {})


def test_reported_feature_scores_need_no_validation_outliers(detector):
    from oe_text.score_selection import fit_candidate_scores

    # A run without held-out data (--heldout_auxiliary_samples 0) still fits the feature scores it reports.
    fitted, halves = fit_candidate_scores(detector, ["knn", "length"], ID_TEXTS, ID_LABELS, ID_TEXTS, [], knn_k=2)
    assert fitted == ["knn", "length"] and halves["outliers"] == {}
    assert set(detector.config.ood_fitted_scores) == {"knn", "length"}
    with pytest.raises(ValueError, match="kind='gaussian'"):
        detector.fit_ood_score("knn", ID_TEXTS, features="input-length", k=2)
