import json
import math

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from oe_text import OETrainer, OETrainingArguments
from oe_text.trainer import concat_id_and_outliers


WORDS_IN = ["good movie", "bad film", "great plot", "awful actor", "fun film", "boring plot", "love it", "hate it"]
WORDS_OUT = "wiki history river city war born king album song team season game north south year first".split()


def id_dataset(tokenizer, n=32):
    texts = [WORDS_IN[i % len(WORDS_IN)] + (" very" * (i % 3)) for i in range(n)]
    labels = [int(t.split()[0] in {"good", "great", "fun", "love"}) for t in texts]
    ds = Dataset.from_dict({"text": texts, "label": labels})
    return ds.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])


def outlier_dataset(n=24):
    # Every outlier sentence is unique, so the token sequence identifies it.
    texts = [f"{WORDS_OUT[i % 16]} {WORDS_OUT[i // 16]} {WORDS_OUT[(i * 5 + 1) % 16]}" for i in range(n)]
    assert len(set(texts)) == n
    return Dataset.from_dict({"text": texts, "idx": list(range(n))})


def make_args(tmp_path, **overrides):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        max_steps=4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
        lr_scheduler_type="constant",
        optim="sgd",
    )
    defaults.update(overrides)
    return OETrainingArguments(**defaults)


class OutlierRecorder:
    """Records the outlier rows (as token tuples without padding) that reach the model in training."""

    def __init__(self, model, n_in, pad_id=0):
        self.steps = []
        self.n_in, self.pad_id = n_in, pad_id
        model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        if module.training:
            rows = kwargs["input_ids"][self.n_in :].tolist()
            self.steps.append([tuple(t for t in row if t != self.pad_id) for row in rows])


def params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_oe_training_changes_parameters_and_logs_both_terms(tmp_path, tiny_bert, tiny_tokenizer):
    before = params(tiny_bert)
    trainer = OETrainer(
        model=tiny_bert,
        args=make_args(tmp_path, oe_weight=1.0),
        train_dataset=id_dataset(tiny_tokenizer),
        processing_class=tiny_tokenizer,
        outlier_dataset=outlier_dataset(),
    )
    trainer.train()
    changed = [n for n, p in tiny_bert.named_parameters() if not torch.equal(p, before[n])]
    assert "classifier.weight" in changed and len(changed) > 10
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 4
    for entry in logs:
        assert entry["oe_loss"] >= math.log(2) - 1e-6  # cross-entropy to uniform: minimum log K
        assert entry["ce_loss"] > 0
        assert entry["loss"] == pytest.approx(entry["ce_loss"] + entry["oe_loss"], rel=1e-4)


@pytest.mark.parametrize("with_outliers", [False, True])
def test_oe_off_matches_plain_trainer_exactly(tmp_path, tiny_tokenizer, with_outliers):
    from transformers import BertConfig, BertForSequenceClassification

    def fresh():
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64, num_labels=2,
        )  # fmt: skip
        return BertForSequenceClassification(config)  # dropout on: RNG use must match too

    data = id_dataset(tiny_tokenizer)
    common = dict(per_device_train_batch_size=4, learning_rate=1e-2, max_steps=3, report_to=[], seed=3,
                  use_cpu=True, disable_tqdm=True, save_strategy="no", logging_steps=1)  # fmt: skip
    plain_model = fresh()
    Trainer(
        model=plain_model,
        args=TrainingArguments(output_dir=str(tmp_path / "plain"), **common),
        train_dataset=data,
        processing_class=tiny_tokenizer,
    ).train()
    oe_model = fresh()
    trainer = OETrainer(
        model=oe_model,
        args=OETrainingArguments(output_dir=str(tmp_path / "oe"), oe_weight=0.0, **common),
        train_dataset=data,
        processing_class=tiny_tokenizer,
        outlier_dataset=outlier_dataset() if with_outliers else None,
    )
    trainer.train()
    assert trainer.outlier_stream is None
    for (name, a), b in zip(plain_model.named_parameters(), oe_model.parameters()):
        assert torch.equal(a, b), name


def test_gradient_accumulation_matches_one_large_batch(tmp_path, tiny_tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    def run(batch, accumulation, name):
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64, num_labels=2,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )  # fmt: skip
        model = BertForSequenceClassification(config)
        args = make_args(
            tmp_path / name,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            oe_batch_size=batch,
            oe_weight=1.0,
            max_steps=2,
            max_grad_norm=0.0,
        )
        OETrainer(
            model=model,
            args=args,
            train_dataset=id_dataset(tiny_tokenizer),
            processing_class=tiny_tokenizer,
            outlier_dataset=outlier_dataset(),
        ).train()
        return params(model)

    small, large = run(4, 2, "ga"), run(8, 1, "big")
    for name in small:
        torch.testing.assert_close(small[name], large[name], rtol=1e-4, atol=1e-6, msg=name)


def test_outlier_stream_reshuffles_and_never_runs_dry(tmp_path, tiny_bert, tiny_tokenizer):
    n_out = 6  # far fewer outliers than draws: 10 steps x 4 = 40 draws
    trainer = OETrainer(
        model=tiny_bert,
        args=make_args(tmp_path, oe_weight=1.0, max_steps=10),
        train_dataset=id_dataset(tiny_tokenizer),
        processing_class=tiny_tokenizer,
        outlier_dataset=outlier_dataset(n_out),
    )
    recorder = OutlierRecorder(tiny_bert, n_in=4)
    trainer.train()
    drawn = [row for step in recorder.steps for row in step]
    assert len(drawn) == 40
    passes = [drawn[i : i + n_out] for i in range(0, 36, n_out)]
    assert all(len(set(p)) == n_out for p in passes)  # each pass is a permutation of all outliers
    assert len({tuple(p) for p in passes}) > 1  # ... reshuffled between passes


def test_resume_continues_the_outlier_stream(tmp_path, tiny_tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    def build(output_dir, **kw):
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64, num_labels=2,
        )  # fmt: skip
        model = BertForSequenceClassification(config)
        trainer = OETrainer(
            model=model,
            args=make_args(output_dir, oe_weight=1.0, max_steps=6, **kw),
            train_dataset=id_dataset(tiny_tokenizer),
            processing_class=tiny_tokenizer,
            outlier_dataset=outlier_dataset(10),
        )
        return trainer, OutlierRecorder(model, n_in=4)

    full, full_rec = build(tmp_path / "full")
    full.train()

    first, _ = build(tmp_path / "resumed", save_strategy="steps", save_steps=3)
    first.args.max_steps = 3
    first.train()
    checkpoint = tmp_path / "resumed" / "out" / "checkpoint-3"
    state = json.loads((checkpoint / "outlier_stream_state_0.json").read_text())
    assert state == {"epoch": 1, "position": 2, "seed": 0, "rank": 0, "world_size": 1}  # 12 drawn from 10

    second, second_rec = build(tmp_path / "resumed", save_strategy="no")
    second.train(resume_from_checkpoint=str(checkpoint))
    assert second_rec.steps == full_rec.steps[3:]
    assert second.outlier_stream.state_dict() == full.outlier_stream.state_dict()


def test_streaming_outliers(tmp_path, tiny_bert, tiny_tokenizer):
    stream = outlier_dataset(12).to_iterable_dataset(num_shards=2)
    trainer = OETrainer(
        model=tiny_bert,
        args=make_args(tmp_path, oe_weight=1.0, max_steps=5),
        train_dataset=id_dataset(tiny_tokenizer),
        processing_class=tiny_tokenizer,
        outlier_dataset=stream,
    )
    recorder = OutlierRecorder(tiny_bert, n_in=4)
    trainer.train()
    drawn = [row for step in recorder.steps for row in step]
    assert len(drawn) == 20 and len(set(drawn[:12])) == 12  # a full pass, then the stream wraps around
    assert trainer.outlier_stream.state_dict()["epoch"] == 1


def test_concat_pads_to_the_longer_sequence():
    a = {"input_ids": torch.tensor([[1, 2, 3]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    b = {"input_ids": torch.tensor([[4, 5], [6, 0]]), "attention_mask": torch.tensor([[1, 1], [1, 0]])}
    merged = concat_id_and_outliers(a, b, {"input_ids": 0, "attention_mask": 0})
    assert merged["input_ids"].tolist() == [[1, 2, 3], [4, 5, 0], [6, 0, 0]]
    assert merged["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
    left = concat_id_and_outliers(a, b, {"input_ids": 9}, padding_side="left")
    assert left["input_ids"][1].tolist() == [9, 4, 5]
    with pytest.raises(ValueError, match="pixel_values"):
        concat_id_and_outliers({"pixel_values": torch.zeros(1, 3)}, b)


def test_argument_validation(tmp_path):
    with pytest.raises(ValueError, match="oe_loss"):
        make_args(tmp_path, oe_loss="kl")
    with pytest.raises(ValueError, match="oe_weight"):
        make_args(tmp_path, oe_weight=-1.0)
    with pytest.raises(ValueError, match="oe_batch_size"):
        make_args(tmp_path, oe_batch_size=0)
    assert make_args(tmp_path).oe_micro_batch_size == 4
    assert make_args(tmp_path, oe_batch_size=8).oe_micro_batch_size == 8


def test_bad_outlier_dataset_is_rejected(tmp_path, tiny_bert, tiny_tokenizer):
    common = dict(model=tiny_bert, args=make_args(tmp_path, oe_weight=1.0), processing_class=tiny_tokenizer)
    with pytest.raises(ValueError, match="'sentence'"):
        OETrainer(**common, outlier_dataset=Dataset.from_dict({"sentence": ["a"]}))
    with pytest.raises(ValueError, match="empty"):
        OETrainer(**common, outlier_dataset=Dataset.from_dict({"text": []}))
    with pytest.raises(TypeError, match="OETrainingArguments"):
        OETrainer(model=tiny_bert, args=TrainingArguments(output_dir=str(tmp_path), report_to=[]))


def test_energy_loss_trains(tmp_path, tiny_bert, tiny_tokenizer):
    trainer = OETrainer(
        model=tiny_bert,
        args=make_args(tmp_path, oe_weight=0.1, oe_loss="energy", oe_energy_m_in=-1.0, oe_energy_m_out=0.0),
        train_dataset=id_dataset(tiny_tokenizer),
        processing_class=tiny_tokenizer,
        outlier_dataset=outlier_dataset(),
        data_collator=DataCollatorWithPadding(tiny_tokenizer),
    )
    trainer.train()
    logs = [e for e in trainer.state.log_history if "oe_loss" in e]
    assert logs and all(e["oe_loss"] >= 0 for e in logs)


def test_predict_keeps_the_dataset_order_with_length_grouping(tmp_path, tiny_bert, tiny_tokenizer):
    # transformers groups *evaluation* batches by length too when train_sampling_strategy="group_by_length",
    # which would return predictions out of order; OETrainer keeps evaluation sequential.
    data = id_dataset(tiny_tokenizer, n=40)
    args = make_args(tmp_path, train_sampling_strategy="group_by_length", per_device_eval_batch_size=8)
    trainer = OETrainer(model=tiny_bert, args=args, processing_class=tiny_tokenizer)
    predictions = trainer.predict(data).predictions
    tiny_bert.eval()
    with torch.no_grad():
        expected = [tiny_bert(input_ids=torch.tensor([ids])).logits[0] for ids in data["input_ids"]]
    torch.testing.assert_close(torch.as_tensor(predictions), torch.stack(expected), rtol=1e-4, atol=1e-5)


def test_trainer_records_its_provenance_for_the_model_card(tmp_path, tiny_tokenizer, tiny_bert_config):
    """A card written right after `trainer.train()` (the README quick start) states λ, the loss, the datasets and the
    budget without a call to `record_oe_provenance`."""
    from datasets import DatasetInfo

    from oe_text import OEClassifier, OEConfig

    model = OEClassifier(OEConfig(backbone_config=tiny_bert_config.to_dict(), num_labels=2))
    train = id_dataset(tiny_tokenizer)
    train.info.dataset_name, train.info.config_name = "sst2", "default"
    outliers = Dataset.from_dict(outlier_dataset().to_dict(), info=DatasetInfo(dataset_name="wikitext"))
    outliers.info.config_name = "wikitext-2-v1"
    args = make_args(tmp_path, oe_weight=0.5, oe_loss="uniform")
    OETrainer(
        model=model, args=args, train_dataset=train, processing_class=tiny_tokenizer, outlier_dataset=outliers
    ).train()
    oe = model.config.oe
    assert oe["in_distribution_dataset"] == "sst2" and oe["auxiliary_dataset"] == "wikitext (wikitext-2-v1)"
    assert (oe["oe_weight"], oe["oe_loss"], oe["train_examples"], oe["train_steps"], oe["seed"]) == (
        0.5, "uniform", 32, 4, 0
    )  # fmt: skip
    assert oe["global_batch_size"] == 4 and "num_train_epochs" not in oe  # max_steps bounded the run
    card = model.build_model_card().text
    assert "**λ (OE weight):** `0.5`" in card and "**Auxiliary (outlier exposure) dataset:** `wikitext" in card
    assert "**Optimisation steps:** `4`" in card and "not recorded" not in card.split("## OOD detection")[0]
    # A name recorded by the user wins over the dataset's own; training without outliers records no λ.
    model.config.oe = {"in_distribution_dataset": "SetFit/sst2"}
    OETrainer(model=model, args=make_args(tmp_path), train_dataset=train, processing_class=tiny_tokenizer).train()
    assert model.config.oe["in_distribution_dataset"] == "SetFit/sst2" and "oe_weight" not in model.config.oe
