import copy
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassError
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertModel,
    pipeline,
)

from oe_text.configuration_oe import OEConfig
from oe_text.detection import ThresholdNotCalibratedError
from oe_text.modeling_oe import OEClassifier
from oe_text.scores import energy_score


TEXTS = ["good movie", "the plot was very boring", "king of the north", "a fun film", "it was not bad", "album"]


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory, tiny_tokenizer, tiny_bert_config):
    """A tiny pretrained-looking BERT encoder (with pooler) + its tokenizer, saved like a Hub checkpoint."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    BertModel(tiny_bert_config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def detector(backbone_dir):
    torch.manual_seed(1)
    model = OEClassifier.from_backbone(backbone_dir, id2label=["negative", "positive"])
    return model.eval()


def logits_of(model, tokenizer, texts=TEXTS):
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def test_from_backbone_keeps_pretrained_weights(backbone_dir, detector):
    reference = AutoModel.from_pretrained(backbone_dir).state_dict()
    ours = detector.backbone.state_dict()
    # The unused pooler is dropped; every other tensor is the pretrained one, untouched by post_init.
    assert set(reference) - set(ours) == {"pooler.dense.weight", "pooler.dense.bias"}
    assert set(ours) <= set(reference)
    for name, tensor in ours.items():
        assert torch.equal(tensor, reference[name]), name
    assert torch.count_nonzero(detector.classifier.bias) == 0
    assert 0 < detector.classifier.weight.std() < 0.1  # N(0, initializer_range=0.02)
    assert detector.config.backbone_type == "transformer" and detector.config.pooling == "mean"
    assert detector.config.backbone_config["model_type"] == "bert"
    assert "_name_or_path" not in detector.config.backbone_config
    assert detector.config.id2label == {0: "negative", 1: "positive"}
    assert detector.tokenizer is not None


def test_forward_loss_outputs_and_pooling(detector, tiny_tokenizer):
    enc = tiny_tokenizer(TEXTS, padding=True, return_tensors="pt")
    labels = torch.tensor([1, 0, 0, 1, 1, 0])
    out = detector(**enc, labels=labels, output_hidden_states=True)
    assert out.logits.shape == (6, 2)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, labels))
    assert len(out.hidden_states) == 3  # embeddings + 2 layers
    # Mean pooling = attention-masked mean of the last hidden state; the head reads exactly these features.
    last = detector.backbone(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    expected = (last * mask).sum(1) / mask.sum(1)
    features = detector.extract_features(**enc)
    assert torch.allclose(features, expected, atol=1e-6)
    assert torch.allclose(detector.classify_features(features), out.logits, atol=1e-6)
    # Padding does not change a text's features.
    alone = detector.extract_features(**tiny_tokenizer(TEXTS[:1], return_tensors="pt"))
    assert torch.allclose(alone, features[:1], atol=1e-5)
    # Tuple outputs.
    loss, logits = detector(**enc, labels=labels, return_dict=False)[:2]
    assert torch.allclose(logits, out.logits)
    # CLS pooling reads the first token.
    detector.config.pooling = "cls"
    assert torch.allclose(detector.extract_features(**enc), last[:, 0], atol=1e-6)


def test_save_load_round_trip_keeps_logits_tokenizer_and_threshold(detector, tiny_tokenizer, tmp_path):
    detector.calibrate_threshold(
        TEXTS, tpr=0.5, calibration_data={"dataset": "toy", "split": "validation"}, ood_score="energy", temperature=2
    )
    detector.save_pretrained(tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert files == ["README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "oe-classifier" and saved["ood_score"] == "energy"

    loaded = OEClassifier.from_pretrained(tmp_path, use_safetensors=True)
    assert torch.equal(logits_of(loaded, tiny_tokenizer), logits_of(detector, tiny_tokenizer))
    assert loaded.tokenizer(TEXTS)["input_ids"] == tiny_tokenizer(TEXTS)["input_ids"]
    for name in ("ood_score", "ood_temperature", "ood_threshold", "threshold_tpr", "threshold_calibration"):
        assert getattr(loaded.config, name) == getattr(detector.config, name), name
    assert loaded.config.threshold_calibration["n_examples"] == len(TEXTS)
    assert loaded.detect(TEXTS) == detector.detect(TEXTS)

    bare = OEClassifier.from_pretrained(tmp_path, load_tokenizer=False)
    assert bare.tokenizer is None
    with pytest.raises(ValueError, match="no tokenizer"):
        bare.detect(TEXTS)


def test_auto_classes_and_pipeline_load_a_saved_detector(detector, tiny_tokenizer, tmp_path):
    detector.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), OEConfig)
    auto = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert isinstance(auto, OEClassifier)
    assert torch.equal(logits_of(auto, tiny_tokenizer), logits_of(detector, tiny_tokenizer))
    assert type(AutoTokenizer.from_pretrained(tmp_path)).__name__ == type(tiny_tokenizer).__name__

    classify = pipeline("text-classification", model=str(tmp_path), device="cpu")
    predictions = classify(TEXTS)
    detections = detector.detect(TEXTS)
    assert [p["label"] for p in predictions] == [d["label"] for d in detections]
    np.testing.assert_allclose([p["score"] for p in predictions], [d["score"] for d in detections], rtol=1e-5)


def test_detect_output_types_truncation_and_errors(detector, tiny_tokenizer):
    out = detector.detect(TEXTS, batch_size=4, threshold=-0.5)
    assert len(out) == len(TEXTS)
    for d in out:
        assert set(d) == {"label", "score", "ood_score", "is_ood"}
        assert d["label"] in ("negative", "positive")
        assert isinstance(d["score"], float) and 0.5 <= d["score"] <= 1
        assert isinstance(d["ood_score"], float) and d["ood_score"] == pytest.approx(-d["score"])
        assert d["is_ood"] is (d["ood_score"] > -0.5)
    (single,) = detector.detect("good movie", threshold=-0.5)  # a single string still gives a list
    assert single["label"] == out[0]["label"] and single["ood_score"] == pytest.approx(out[0]["ood_score"], abs=1e-6)
    assert [d["is_ood"] for d in detector.detect(TEXTS)] == [None] * len(TEXTS)
    with pytest.raises(ThresholdNotCalibratedError, match="calibrate_threshold"):
        detector.detect(TEXTS, require_threshold=True)
    with pytest.raises(ValueError, match="empty"):
        detector.detect([])
    with pytest.raises(ValueError, match="empty"):
        detector.detect(["fine", "   "])

    # Without a tokenizer limit, texts are cut to the backbone's 64 positions (a longer input would crash BERT).
    unlimited = copy.deepcopy(tiny_tokenizer)
    unlimited.model_max_length = int(1e30)
    long_text = "the movie was very good " * 40
    assert len(unlimited(long_text)["input_ids"]) > 64
    assert detector.config.max_position_embeddings == 64
    (long_out,) = detector.detect([long_text], tokenizer=unlimited)
    (cut_out,) = detector.detect([unlimited.decode(unlimited(long_text)["input_ids"][1:63])], tokenizer=unlimited)
    assert long_out["ood_score"] == pytest.approx(cut_out["ood_score"], abs=1e-5)


def test_calibrate_on_texts_flags_one_minus_tpr(detector):
    texts = [f"{a} {b} {c}" for a in ("good", "bad", "the") for b in ("movie", "plot", "king") for c in ("it", "war")]
    threshold = detector.calibrate_threshold(texts, tpr=0.75, calibration_data="toy", batch_size=5)
    flagged = sum(d["is_ood"] for d in detector.detect(texts))
    assert abs(flagged - 0.25 * len(texts)) <= 1
    assert detector.config.ood_threshold == threshold and detector.config.threshold_tpr == 0.75
    # The score in `detect` is the config's score.
    detector.set_ood_score("energy", temperature=3.0)
    assert detector.config.ood_threshold is None
    out = detector.detect(texts[:3])
    logits = logits_of(detector, detector.tokenizer, texts[:3])
    np.testing.assert_allclose([d["ood_score"] for d in out], energy_score(logits, temperature=3.0), rtol=1e-5)


def test_record_oe_provenance_goes_to_config_and_card(detector, tmp_path):
    class Args:
        oe_weight = 0.5
        oe_loss = "uniform"

    detector.record_oe_provenance(
        in_distribution_dataset="SetFit/sst2",
        auxiliary_dataset="Salesforce/wikitext",
        ood_results={"snli": {"auroc": 0.9, "fpr95": 0.4}, "trec": {"auroc": 0.8, "fpr95": 0.6}},
        training_args=Args(),
        seed=3,
    )
    assert detector.config.oe["oe_weight"] == 0.5 and detector.config.oe["seed"] == 3
    detector.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "`SetFit/sst2`" in card and "**λ (OE weight):** `0.5`" in card
    assert "| **Mean** | 85.00 | 50.00 |" in card
    with pytest.raises(TypeError):
        detector.record_oe_provenance(seed=object())


def test_config_and_factory_validation(backbone_dir):
    # transformers 5 configs are strict dataclasses: invalid values raise StrictDataclassError naming the field.
    with pytest.raises(StrictDataclassError, match="backbone_type"):
        OEConfig(backbone_type="cnn")
    with pytest.raises(StrictDataclassError, match="pooling"):
        OEConfig(backbone_config={"model_type": "bert"}, pooling="max")
    with pytest.raises(StrictDataclassError, match="model_type"):
        OEConfig(backbone_config={"hidden_size": 8})
    with pytest.raises(StrictDataclassError, match="ood_threshold"):
        OEConfig(ood_threshold="high")
    # An unregistered score loads (it may be a custom one registered later) but cannot be computed.
    unknown = OEClassifier.from_rnn("gru", vocab_size=10, ood_score="my_custom_score")
    with pytest.raises(ValueError, match="Unknown OOD score 'my_custom_score'"):
        unknown.detections_from_logits(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="backbone_config is not set"):
        OEClassifier(OEConfig())
    with pytest.raises(ValueError, match="num_labels >= 2"):
        OEClassifier.from_rnn("gru", vocab_size=10, num_labels=1)
    with pytest.raises(ValueError, match="disagrees"):
        OEClassifier.from_backbone(backbone_dir, num_labels=3, id2label=["a", "b"])
    with pytest.raises(StrictDataclassError, match="ood_temperature"):
        OEConfig(ood_temperature=0.0)


@pytest.mark.integration
def test_minilm_backbone_from_mirror(mirror, tmp_path):
    model_dir = mirror / "models" / "sentence-transformers" / "all-MiniLM-L6-v2"
    detector = OEClassifier.from_backbone("sentence-transformers/all-MiniLM-L6-v2", id2label=["neg", "pos"]).eval()
    assert detector.config.base_model_name == "sentence-transformers/all-MiniLM-L6-v2"
    reference = AutoModel.from_pretrained(model_dir).state_dict()
    for name, tensor in detector.backbone.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    assert detector.tokenizer.model_max_length == 256  # sentence-transformers' max_seq_length
    texts = ["a gripping, beautifully shot film", "What is the boiling point of water?"]
    detector.calibrate_threshold(texts, tpr=0.5)
    detector.save_pretrained(tmp_path)
    loaded = OEClassifier.from_pretrained(tmp_path)
    assert torch.equal(logits_of(loaded, loaded.tokenizer, texts), logits_of(detector, detector.tokenizer, texts))
    assert loaded.detect(texts) == detector.detect(texts)
    card = (tmp_path / "README.md").read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card


def test_activation_checkpointing_follows_the_backbone(detector, tiny_tokenizer):
    assert detector.supports_gradient_checkpointing
    detector.activation_checkpointing_enable()
    detector.train()
    out = detector(**tiny_tokenizer(TEXTS, padding=True, return_tensors="pt"), labels=torch.tensor([1, 0, 0, 1, 1, 0]))
    out.loss.backward()
    assert detector.is_activation_checkpointing
    assert detector.backbone.embeddings.word_embeddings.weight.grad is not None
    rnn = OEClassifier.from_rnn("gru", vocab_size=10)
    assert not rnn.supports_gradient_checkpointing
    with pytest.raises(ValueError, match="does not support activation checkpointing"):
        rnn.activation_checkpointing_enable()


def test_transformer_detector_trains_with_oe_trainer(detector, tiny_tokenizer, tmp_path):
    from datasets import Dataset

    from oe_text import OETrainer, OETrainingArguments

    texts = [f"{a} {b}" for a in ("good", "bad", "great", "awful") for b in ("movie", "film", "plot", "actor")]
    labels = [int(t.split()[0] in ("good", "great")) for t in texts]
    train = Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda b: tiny_tokenizer(b["text"]), batched=True, remove_columns=["text"]
    )
    outliers = Dataset.from_dict({"text": ["wiki history of the river", "king born in the north", "album song"] * 4})
    args = OETrainingArguments(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=1e-3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_steps=1,
        oe_weight=0.5,
    )
    head_before = detector.classifier.weight.detach().clone()
    trainer = OETrainer(
        model=detector, args=args, train_dataset=train, processing_class=tiny_tokenizer, outlier_dataset=outliers
    )
    trainer.train()
    assert not torch.equal(detector.classifier.weight, head_before)
    assert any("oe_loss" in entry for entry in trainer.state.log_history)
    trainer.save_model(str(tmp_path / "final"))
    loaded = OEClassifier.from_pretrained(tmp_path / "final")
    assert loaded.detect(TEXTS) == detector.eval().detect(TEXTS)
