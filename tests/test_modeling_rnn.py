import math
import os

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from oe_text.modeling_oe import OEClassifier
from oe_text.modeling_rnn import RNNEncoder, rnn_backbone_config
from oe_text.tokenization import train_sentencepiece_tokenizer


POSITIVE = "good great fun lovely brilliant charming moving".split()
NEGATIVE = "bad awful boring dull tedious clumsy weak".split()
NOUNS = "movie film plot story acting ending music".split()
OUTLIER_WORDS = "river king album season north history city war born team song year".split()


def review(i: int) -> tuple[str, int]:
    label = i % 2
    adjective = (POSITIVE if label else NEGATIVE)[(i // 2) % 7]
    return f"the {NOUNS[i % 7]} was {adjective}", label


@pytest.fixture(scope="module")
def tokenizer():
    texts = [review(i)[0] for i in range(200)] + [
        " ".join(OUTLIER_WORDS[i % 12 :] + OUTLIER_WORDS[: i % 12]) for i in range(24)
    ]
    return train_sentencepiece_tokenizer(texts, vocab_size=150, model_max_length=32)


def batch(tokenizer, texts):
    return tokenizer(texts, padding=True, return_tensors="pt")


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_encoder_reads_the_last_real_token_whatever_the_padding(kind):
    torch.manual_seed(0)
    encoder = RNNEncoder(kind, vocab_size=30, embedding_dim=8, hidden_size=6, num_layers=2).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9], [11, 12, 0, 0, 0], [13, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    right = encoder(ids, mask)
    # Each row alone, without padding.
    alone = torch.cat([encoder(ids[i : i + 1, : int(mask[i].sum())]) for i in range(3)])
    assert torch.allclose(right, alone, atol=1e-6)
    # Left padding gives the same states.
    left_ids = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 0, 11, 12], [0, 0, 0, 0, 13]])
    assert torch.allclose(encoder(left_ids, (left_ids != 0).long()), right, atol=1e-6)
    # Without a mask, pad_token_id marks padding.
    assert torch.allclose(encoder(ids), right, atol=1e-6)
    # It is the top layer's state after the last token: compare with running the RNN by hand on row 1.
    out, _ = encoder.rnn(encoder.embeddings(ids[1:2, :2]))
    assert torch.allclose(right[1], out[0, -1], atol=1e-6)


def test_paper_shape_and_initialisation(tokenizer):
    model = OEClassifier.from_rnn("gru", tokenizer=tokenizer, id2label=["neg", "pos"])
    bc = model.config.backbone_config
    assert bc == rnn_backbone_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    assert (bc["embedding_dim"], bc["hidden_size"], bc["num_layers"], bc["dropout"]) == (50, 128, 2, 0.0)
    rnn = model.backbone.rnn
    assert isinstance(rnn, torch.nn.GRU) and not rnn.bidirectional and rnn.num_layers == 2
    gru_params = 3 * (128 * 50 + 128 * 128 + 2 * 128) + 3 * (2 * 128 * 128 + 2 * 128)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == len(tokenizer) * 50 + gru_params + 128 * 2 + 2
    # PyTorch's defaults, as in the paper's code: N(0, 1) embeddings with a zero pad row, U(+-1/sqrt(128)) GRU.
    emb = model.backbone.embeddings.weight
    assert torch.count_nonzero(emb[tokenizer.pad_token_id]) == 0
    assert 0.9 < emb[1:].std().item() < 1.1
    bound = 1 / math.sqrt(128)
    for p in rnn.parameters():
        assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound
    lstm = OEClassifier.from_rnn("lstm", tokenizer=tokenizer)
    assert isinstance(lstm.backbone.rnn, torch.nn.LSTM) and lstm.config.backbone_type == "lstm"


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_save_load_round_trip_restores_model_tokenizer_and_threshold(kind, tokenizer, tmp_path):
    torch.manual_seed(0)
    model = OEClassifier.from_rnn(kind, tokenizer=tokenizer, id2label=["negative", "positive"]).eval()
    texts = [review(i)[0] for i in range(10)] + ["river king album"]
    model.calibrate_threshold(texts, tpr=0.9, calibration_data={"dataset": "toy-reviews", "split": "validation"})
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    restored_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert restored_tokenizer(texts)["input_ids"] == tokenizer(texts)["input_ids"]

    loaded = OEClassifier.from_pretrained(tmp_path, use_safetensors=True)
    assert loaded.config.backbone_type == kind
    assert loaded.tokenizer(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    with torch.no_grad():
        assert torch.equal(loaded(**batch(loaded.tokenizer, texts)).logits, model(**batch(tokenizer, texts)).logits)
    for name in ("ood_score", "ood_temperature", "ood_threshold", "threshold_tpr", "threshold_calibration"):
        assert getattr(loaded.config, name) == getattr(model.config, name)
    assert loaded.detect(texts) == model.detect(texts)
    assert sum(d["is_ood"] for d in loaded.detect(texts)) == 1  # 1 - 0.9 of 11 texts, within one example

    auto = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert isinstance(auto, OEClassifier)
    predictions = pipeline("text-classification", model=str(tmp_path), device="cpu")(texts[:3])
    assert [p["label"] for p in predictions] == [d["label"] for d in model.detect(texts[:3])]


def test_detect_truncates_to_the_tokenizer_length(tokenizer):
    model = OEClassifier.from_rnn("gru", tokenizer=tokenizer).eval()
    long_text = " ".join(review(i)[0] for i in range(30))
    ids = tokenizer(long_text)["input_ids"]
    assert len(ids) > 32
    (full,) = model.detect([long_text])
    (cut,) = model.detect([tokenizer.decode(ids[:32])])
    assert full["ood_score"] == pytest.approx(cut["ood_score"], abs=1e-6)


def test_rnn_rejects_unknown_inputs_and_bad_shapes(tokenizer):
    model = OEClassifier.from_rnn("gru", tokenizer=tokenizer)
    enc = batch(tokenizer, ["the movie was good"])
    # token_type_ids (from a shared collator) is accepted and unused.
    out = model(**enc, token_type_ids=torch.zeros_like(enc["input_ids"]))
    assert out.logits.shape == (1, 2) and out.hidden_states is None
    with pytest.raises(TypeError, match="position_ids"):
        model(**enc, position_ids=enc["input_ids"])
    with pytest.raises(ValueError, match="vocab_size"):
        OEClassifier.from_rnn("gru")
    with pytest.raises(ValueError, match="kind"):
        OEClassifier.from_rnn("transformer", vocab_size=10)
    with pytest.raises(ValueError, match="hidden_size"):
        OEClassifier.from_rnn("gru", vocab_size=10, hidden_size=0)


def test_gru_detector_trains_with_oe_trainer_then_saves_loads_and_detects(tokenizer, tmp_path):
    from oe_text import OETrainer, OETrainingArguments

    torch.manual_seed(0)
    model = OEClassifier.from_rnn("gru", tokenizer=tokenizer, id2label=["negative", "positive"])
    rows = [review(i) for i in range(64)]
    train = Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    train = train.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
    outliers = Dataset.from_dict({"text": [" ".join(OUTLIER_WORDS[i % 12 : i % 12 + 4]) for i in range(32)]})
    args = OETrainingArguments(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        optim="adamw_torch",
        max_steps=6,
        logging_steps=3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        oe_weight=0.5,
        seed=0,
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = OETrainer(
        model=model, args=args, train_dataset=train, processing_class=tokenizer, outlier_dataset=outliers
    )
    trainer.train()
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    logs = [entry for entry in trainer.state.log_history if "oe_loss" in entry]
    assert logs and all(entry["oe_loss"] >= math.log(2) - 1e-6 for entry in logs)

    model.record_oe_provenance(
        in_distribution_dataset="toy-reviews", auxiliary_dataset="toy-outliers", training_args=args
    )
    val = [review(i)[0] for i in range(64, 84)]
    model.calibrate_threshold(val, tpr=0.95, calibration_data={"dataset": "toy-reviews", "split": "validation"})
    trainer.save_model(str(tmp_path / "final"))
    loaded = OEClassifier.from_pretrained(tmp_path / "final")
    assert loaded.config.oe["oe_weight"] == 0.5 and loaded.config.oe["oe_loss"] == "uniform"
    detections = loaded.detect(val + ["river king album season"])
    assert detections == model.eval().detect(val + ["river king album season"])
    assert sum(d["is_ood"] for d in detections[:-1]) <= 1  # 5% of 20 in-distribution texts
    card = (tmp_path / "final" / "README.md").read_text()
    assert "**λ (OE weight):** `0.5`" in card and "keeps 95% of in-distribution inputs" in card
