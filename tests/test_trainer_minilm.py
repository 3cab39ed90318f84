"""OE fine-tuning of the real all-MiniLM-L6-v2 on SetFit/sst2 with WikiText-2 sentences (offline mirror)."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from oe_text import OETrainer, OETrainingArguments, outlier_exposure_loss, resolve_hub_id
from oe_text.data import load_id_dataset, load_outlier_dataset


MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def oe_term(model, tokenizer, texts):
    model.eval()
    with torch.no_grad():
        enc = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        return outlier_exposure_loss(model(**enc).logits).item()


@pytest.mark.integration
def test_oe_fine_tuning_lowers_the_oe_term_on_held_out_wikitext(mirror, tmp_path):
    torch.manual_seed(0)
    path = resolve_hub_id(MODEL_ID)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    sst2 = load_id_dataset("sst2", max_train_samples=512)
    train = sst2["train"].map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=32), batched=True, remove_columns=["text"]
    )
    wiki = load_outlier_dataset("wikitext2", split="validation")
    held_out = load_outlier_dataset("wikitext2", split="test").shuffle(seed=0).select(range(64))["text"]

    def run(oe_weight, max_steps, output_dir):
        args = OETrainingArguments(
            output_dir=str(tmp_path / output_dir), per_device_train_batch_size=16, learning_rate=1e-4,
            max_steps=max_steps, logging_steps=3, oe_weight=oe_weight, oe_max_length=32, report_to=[],
            save_strategy="no", disable_tqdm=True, use_cpu=True, seed=0,
        )  # fmt: skip
        trainer = OETrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                            outlier_dataset=wiki)  # fmt: skip
        trainer.train()
        return trainer

    # A confident classifier head stands in for a trained baseline: confident on everything, WikiText included.
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 2.0)
    before = oe_term(model, tokenizer, list(held_out))
    trainer = run(oe_weight=1.0, max_steps=12, output_dir="oe")
    after = oe_term(model, tokenizer, list(held_out))
    logged = [entry["oe_loss"] for entry in trainer.state.log_history if "oe_loss" in entry]
    assert len(logged) == 4
    assert before > 0.693 + 0.2, before  # log 2 = 0.693 is the minimum, reached at uniform outputs
    assert logged[-1] < logged[0]
    assert after < before - 0.1, (before, after)
