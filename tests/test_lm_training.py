"""Outlier Exposure for causal language models: the per-token losses and OETrainer on a tiny GPT-2 from a config."""

import json
import math

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from oe_text import OETrainer, OETrainingArguments
from oe_text.losses import (
    causal_lm_labels,
    language_modeling_loss,
    lm_margin_ranking_loss,
    sequence_log_likelihood,
    token_outlier_exposure_loss,
)
from oe_text.modeling_lm import CausalLMCollator, encode_for_lm


ID_WORDS = "the a movie film good bad great plot actor fun boring is was very".split()
OUT_WORDS = "wiki history river city war born king album song team season game north south year first".split()


def word_tokenizer(pad=True, eos=True, bos=False):
    words = ["<pad>", "<unk>", "<s>", "</s>", *ID_WORDS, *OUT_WORDS]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    special = {"unk_token": "<unk>"}
    if pad:
        special["pad_token"] = "<pad>"
    if eos:
        special["eos_token"] = "</s>"
    if bos:
        special["bos_token"] = "<s>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=32, **special)


def tiny_gpt2(vocab_size, seed=0, **kw):
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size, n_positions=32, n_embd=32, n_layer=2, n_head=2,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **kw,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def id_texts(n=32, fixed_length=False):
    # Short "reviews" of 3-5 words (fixed 4 words when asked, for token-count-equal micro-batches).
    out = []
    for i in range(n):
        k = 4 if fixed_length else 3 + i % 3
        out.append(" ".join(ID_WORDS[(i * 3 + j * 5) % len(ID_WORDS)] for j in range(k)))
    return out


def lm_dataset(tokenizer, texts):
    return Dataset.from_dict(encode_for_lm(tokenizer, texts))


def outlier_dataset(n=24, fixed_length=False):
    texts = [
        " ".join([OUT_WORDS[i % 16], OUT_WORDS[i // 16], OUT_WORDS[(i * 5 + 1) % 16]] + ([] if fixed_length else
                 [OUT_WORDS[(i * 7) % 16]] * (i % 2)))
        for i in range(n)
    ]  # fmt: skip
    assert len(set(texts)) == n
    return Dataset.from_dict({"text": texts})


def make_args(tmp_path, **overrides):
    defaults = dict(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, learning_rate=3e-3, max_steps=4,
        logging_steps=1, save_strategy="no", report_to=[], seed=0, use_cpu=True, disable_tqdm=True,
        lr_scheduler_type="constant", oe_weight=0.5,
    )  # fmt: skip
    defaults.update(overrides)
    return OETrainingArguments(**defaults)


def make_trainer(tmp_path, model, tokenizer, id_data=None, outliers=None, **overrides):
    return OETrainer(
        model=model,
        args=make_args(tmp_path, **overrides),
        train_dataset=id_data if id_data is not None else lm_dataset(tokenizer, id_texts()),
        processing_class=tokenizer,
        data_collator=CausalLMCollator(tokenizer),
        outlier_dataset=outliers if outliers is not None else outlier_dataset(),
    )


# ------------------------------------------------------------------------------------------------ losses
def test_language_modeling_loss_matches_the_models_own_loss_with_padding():
    tok = word_tokenizer()
    model = tiny_gpt2(len(tok)).eval()
    batch = CausalLMCollator(tok)(
        [{"input_ids": r} for r in encode_for_lm(tok, ["good movie", "a bad plot is fun"])["input_ids"]]
    )
    assert batch["labels"][0].tolist()[-2:] == [-100, -100]  # padding masked
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        reference = model(**batch).loss
    assert language_modeling_loss(logits, batch["labels"]).item() == pytest.approx(reference.item(), rel=1e-5)
    # Per sequence: 1 + 4 predicted tokens; the mean over tokens weights the longer text 4x.
    ll = sequence_log_likelihood(logits, batch["labels"])
    total = -(ll[0] * 1 + ll[1] * 4) / 5
    assert total.item() == pytest.approx(reference.item(), rel=1e-5)


def test_token_oe_loss_is_log_v_at_uniform_and_ignores_padding():
    v = 11
    uniform = torch.zeros(2, 5, v)
    assert token_outlier_exposure_loss(uniform).item() == pytest.approx(math.log(v), abs=1e-6)
    torch.manual_seed(0)
    logits = torch.randn(2, 5, v)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    expected = -(torch.log_softmax(logits, -1).mean(-1) * mask).sum() / mask.sum()  # the paper's -mean log p_k
    assert token_outlier_exposure_loss(logits, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    changed = logits.clone()
    changed[0, 3:] = 100 * torch.randn(2, v)  # padding positions: no effect
    assert token_outlier_exposure_loss(changed, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="attention_mask"):
        token_outlier_exposure_loss(logits, mask[:, :3])
    with pytest.raises(ValueError, match="seq_len, vocab"):
        token_outlier_exposure_loss(torch.zeros(2, 5))


def test_margin_ranking_loss_values():
    v = 4
    labels = torch.tensor([[0, 1, 2]])

    def logits_with_prob(p):  # every next token gets probability p
        z = torch.full((1, 3, v), math.log((1 - p) / (v - 1)))
        z[0, 0, 1] = z[0, 1, 2] = math.log(p)
        return z

    ll = sequence_log_likelihood(logits_with_prob(0.5), labels)
    assert ll.item() == pytest.approx(math.log(0.5), rel=1e-5)
    likely, unlikely = logits_with_prob(0.9), logits_with_prob(0.05)
    gap = math.log(0.9) - math.log(0.05)  # 2.89 nats per token
    assert lm_margin_ranking_loss(likely, labels, unlikely, labels, margin=1.0).item() == 0.0
    assert lm_margin_ranking_loss(likely, labels, unlikely, labels, margin=4.0).item() == pytest.approx(
        4.0 - gap, 1e-4
    )
    assert lm_margin_ranking_loss(unlikely, labels, likely, labels, margin=0.0).item() == pytest.approx(gap, 1e-4)
    with pytest.raises(ValueError, match="margin"):
        lm_margin_ranking_loss(likely, labels, unlikely, labels, margin=-1.0)


def test_labels_mask_by_attention_not_by_pad_id():
    ids = torch.tensor([[5, 3, 3], [5, 6, 3]])  # 3 = eos reused as pad
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert causal_lm_labels(ids, mask).tolist() == [[5, 3, -100], [5, 6, 3]]


# ------------------------------------------------------------------------------------------------ trainer
def test_oe_term_falls_and_both_terms_are_logged(tmp_path):
    tok = word_tokenizer()
    model = tiny_gpt2(len(tok))
    # The paper's order: a baseline LM (no OE; its next-token distributions become peaked, on outliers too) ...
    make_trainer(tmp_path / "baseline", model, tok, oe_weight=0.0, max_steps=40, learning_rate=1e-2).train()
    # ... then OE fine-tuning.
    trainer = make_trainer(tmp_path / "oe", model, tok, max_steps=30, learning_rate=1e-2)
    assert trainer.is_causal_lm
    trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e and "oe_loss" in e]
    assert len(logs) == 30
    log_v = math.log(len(tok))
    for entry in logs:
        assert entry["oe_loss"] >= log_v - 1e-5  # cross-entropy to uniform: minimum log V
        assert entry["loss"] == pytest.approx(entry["ce_loss"] + 0.5 * entry["oe_loss"], rel=1e-4)
    first = sum(e["oe_loss"] for e in logs[:3]) / 3
    last = sum(e["oe_loss"] for e in logs[-3:]) / 3
    assert last - log_v < 0.5 * (first - log_v)  # at least half of the distance to uniform is gone
    assert all(e["ce_loss"] < 2.0 for e in logs[-3:])  # ... while the LM still fits its in-distribution text


def test_outlier_rows_get_no_lm_loss_and_in_distribution_rows_no_oe(tmp_path):
    tok = word_tokenizer()
    model = tiny_gpt2(len(tok))
    trainer = make_trainer(tmp_path, model, tok)
    trainer.model.train()
    batch = trainer._prepare_inputs(CausalLMCollator(tok)([trainer.train_dataset[i] for i in range(4)]))
    loss = trainer.compute_loss(trainer.model, batch)
    ce, oe = trainer._oe_logs["ce_loss"][-1], trainer._oe_logs["oe_loss"][-1]
    assert loss.item() == pytest.approx(ce.item() + 0.5 * oe.item(), rel=1e-5)
    with torch.no_grad():  # the CE term is the LM loss of the in-distribution rows alone
        alone = model(**batch).loss
    assert ce.item() == pytest.approx(alone.item(), rel=1e-4)


def test_gradient_accumulation_matches_one_large_batch(tmp_path):
    tok = word_tokenizer()
    data = lm_dataset(tok, id_texts(fixed_length=True))

    def run(batch, accumulation, name):
        model = tiny_gpt2(len(tok))
        make_trainer(
            tmp_path / name, model, tok, id_data=data, outliers=outlier_dataset(fixed_length=True),
            per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation, oe_batch_size=batch,
            max_steps=2, max_grad_norm=0.0, optim="sgd", learning_rate=0.1,
        ).train()  # fmt: skip
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    small, large = run(4, 2, "ga"), run(8, 1, "big")
    for name in small:
        torch.testing.assert_close(small[name], large[name], rtol=1e-4, atol=1e-6, msg=name)


class OutlierRecorder:
    def __init__(self, model, n_in):
        self.steps, self.n_in = [], n_in
        model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        if module.training:
            ids, mask = kwargs["input_ids"][self.n_in :], kwargs["attention_mask"][self.n_in :]
            self.steps.append([tuple(t for t, m in zip(r, k) if m) for r, k in zip(ids.tolist(), mask.tolist())])


def test_resume_continues_the_outlier_stream(tmp_path):
    tok = word_tokenizer()

    def build(output_dir, **kw):
        model = tiny_gpt2(len(tok))
        trainer = make_trainer(output_dir, model, tok, outliers=outlier_dataset(10), max_steps=6, **kw)
        return trainer, OutlierRecorder(model, n_in=4)

    full, full_rec = build(tmp_path / "full")
    full.train()
    first, _ = build(tmp_path / "resumed", save_strategy="steps", save_steps=3)
    first.args.max_steps = 3
    first.train()
    checkpoint = tmp_path / "resumed" / "out" / "checkpoint-3"
    state = json.loads((checkpoint / "outlier_stream_state_0.json").read_text())
    assert state["epoch"] == 1 and state["position"] == 2  # 12 drawn from 10
    second, second_rec = build(tmp_path / "resumed", save_strategy="no")
    second.train(resume_from_checkpoint=str(checkpoint))
    assert len(full_rec.steps) == 6 and second_rec.steps == full_rec.steps[3:]
    assert second.outlier_stream.state_dict() == full.outlier_stream.state_dict()
    resumed_logs = [e for e in second.state.log_history if "oe_loss" in e]
    full_logs = [e for e in full.state.log_history if "oe_loss" in e]
    assert [e["oe_loss"] for e in resumed_logs[-3:]] == pytest.approx([e["oe_loss"] for e in full_logs[3:]], rel=1e-4)


def test_margin_variant_trains(tmp_path):
    tok = word_tokenizer()
    model = tiny_gpt2(len(tok))
    trainer = make_trainer(tmp_path, model, tok, oe_loss="margin", oe_margin=0.5, max_steps=3)
    trainer.train()
    logs = [e for e in trainer.state.log_history if "oe_loss" in e]
    assert len(logs) == 3 and all(e["oe_loss"] >= 0 for e in logs)
    assert all(e["loss"] == pytest.approx(e["ce_loss"] + 0.5 * e["oe_loss"], rel=1e-4) for e in logs)


def test_oe_loss_must_fit_the_model(tmp_path, tiny_bert, tiny_tokenizer):
    tok = word_tokenizer()
    with pytest.raises(ValueError, match="'energy'` does not apply to a causal language model"):
        make_trainer(tmp_path, tiny_gpt2(len(tok)), tok, oe_loss="energy")
    with pytest.raises(ValueError, match="'margin'` does not apply to a classifier"):
        OETrainer(
            model=tiny_bert,
            args=make_args(tmp_path, oe_loss="margin"),
            processing_class=tiny_tokenizer,
            outlier_dataset=outlier_dataset(),
        )
    with pytest.raises(ValueError, match="oe_margin"):
        make_args(tmp_path, oe_margin=-1.0)


def test_tokenizer_without_pad_token_gets_eos_or_a_clear_error(tmp_path):
    tok = word_tokenizer(pad=False)
    trainer = make_trainer(tmp_path, tiny_gpt2(len(tok)), tok, max_steps=1)
    assert tok.pad_token == "</s>"
    trainer.train()
    bare = word_tokenizer(pad=False, eos=False)
    with pytest.raises(ValueError, match="no pad token and no eos token"):
        OETrainer(
            model=tiny_gpt2(len(bare)),
            args=make_args(tmp_path),
            processing_class=bare,
            outlier_dataset=outlier_dataset(),
        )


def test_encode_for_lm_prepends_bos_truncates_and_rejects_empty_texts():
    tok = word_tokenizer(bos=True)
    enc = encode_for_lm(tok, ["good movie", "the film " * 20], max_length=6)
    bos = tok.bos_token_id
    assert enc["input_ids"][0] == [bos, *tok("good movie")["input_ids"]]
    assert enc["input_ids"][1] == [bos, *tok("the film the film the")["input_ids"]]  # first tokens kept
    assert encode_for_lm(word_tokenizer(), ["good movie"])["input_ids"][0] == tok("good movie")["input_ids"]
    with pytest.raises(ValueError, match=r"texts\[1\]` is empty"):
        encode_for_lm(tok, ["good", "  "])
    with pytest.raises(ValueError, match="max_length"):
        from oe_text.modeling_lm import lm_max_length

        lm_max_length(tok, max_length=1)


@pytest.mark.multiprocess
def test_two_processes_draw_different_outliers_for_a_language_model(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "scripts" / "record_outliers.py"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(script), str(tmp_path), "lm"]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"outliers_rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    seen0, seen1 = ranks[0]["outliers"], ranks[1]["outliers"]
    assert len(seen0) == len(seen1) == 16 and not set(seen0) & set(seen1)
    logged = [e for e in ranks[0]["log"] if "oe_loss" in e]
    assert logged and all(e["oe_loss"] > 0 and e["ce_loss"] > 0 for e in logged)
