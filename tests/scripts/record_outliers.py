"""Trains a tiny BERT (or, with a second argument `lm`, a tiny GPT-2 language model) with OETrainer for a few steps
and writes, per process, the outliers it drew.

Run under `accelerate launch`; used by tests/test_trainer_multiprocess.py and tests/test_lm_training.py.
"""

import json
import sys

import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast, GPT2Config, GPT2LMHeadModel

from oe_text import OETrainer, OETrainingArguments
from oe_text.modeling_lm import CausalLMCollator


def main(output_dir: str, kind: str = "classifier") -> None:
    words = [f"w{i}" for i in range(40)]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])})
    texts = [f"w{i % 8} w{(i + 1) % 8}" for i in range(32)]
    train = Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(32)]})
    train = train.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
    outliers = Dataset.from_dict({"text": [f"w{8 + i} w{8 + i}" for i in range(32)]})
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    model = BertForSequenceClassification(config)
    collator = None
    if kind == "lm":
        train = train.remove_columns(["label"])
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=16, n_embd=16, n_layer=1, n_head=2))
        collator = CausalLMCollator(tokenizer)
    seen: list[list[int]] = []

    def record(module, args, kwargs):
        if module.training:
            seen.extend(row[1] for row in kwargs["input_ids"][4:].tolist())  # first word piece of each outlier

    model.register_forward_pre_hook(record, with_kwargs=True)
    args = OETrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=4,
        max_steps=4,
        logging_steps=2,
        oe_weight=1.0,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = OETrainer(
        model=model,
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        outlier_dataset=outliers,
        data_collator=collator,
    )
    trainer.train()
    rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
    with open(f"{output_dir}/outliers_rank{rank}.json", "w") as f:
        json.dump({"world_size": world, "outliers": seen, "log": trainer.state.log_history}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
