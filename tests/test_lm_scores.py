"""Language-model OOD scores: values against their definitions and the paper's code, batching, bad input."""

import math

import numpy as np
import pytest
import torch
from test_lm_training import tiny_gpt2, word_tokenizer
from transformers import BertConfig, BertForSequenceClassification, BertLMHeadModel

from oe_text.lm_scores import (
    LM_SCORES,
    bits_per_character,
    compute_lm_score,
    kl_uniform_lm_score,
    max_prob_lm_score,
    nll_score,
)
from oe_text.modeling_lm import CausalLMCollator, check_causal_lm, encode_for_lm, score_texts_with_lm


def batch_and_logits(texts, tok=None, model=None):
    tok = tok or word_tokenizer(bos=True)
    model = model or tiny_gpt2(len(tok)).eval()
    rows = encode_for_lm(tok, texts)["input_ids"]
    batch = CausalLMCollator(tok)([{"input_ids": r} for r in rows])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return batch, logits, model


def test_nll_is_the_models_own_loss_per_text():
    texts = ["good movie", "a bad plot is very fun", "the film"]
    batch, logits, model = batch_and_logits(texts)
    scores = nll_score(logits, batch["input_ids"], batch["attention_mask"])
    assert scores.dtype == np.float64 and scores.shape == (3,)
    for i in range(3):
        n = int(batch["attention_mask"][i].sum())
        ids = batch["input_ids"][i : i + 1, :n]
        with torch.no_grad():
            expected = model(input_ids=ids, labels=ids).loss.item()
        assert scores[i] == pytest.approx(expected, rel=1e-5)
    chars = [len(t) for t in texts]
    bpc = bits_per_character(logits, batch["input_ids"], batch["attention_mask"], num_characters=chars)
    counts = batch["attention_mask"].sum(-1).numpy() - 1  # predicted tokens
    np.testing.assert_allclose(bpc, scores * counts / math.log(2) / np.array(chars), rtol=1e-6)
    assert compute_lm_score("nll", logits, batch["input_ids"], batch["attention_mask"]) == pytest.approx(scores)
    with pytest.raises(ValueError, match="num_characters"):
        bits_per_character(logits, batch["input_ids"], batch["attention_mask"])


def test_kl_uniform_matches_the_papers_score_up_to_log_v_and_ignores_padding():
    torch.manual_seed(0)
    v = 7
    logits = torch.randn(2, 4, v)
    ids = torch.randint(0, v, (2, 4))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    ours = kl_uniform_lm_score(logits, ids, mask)
    # eval_ood.py: anomaly_score = (log softmax * 1/V).sum(-1).mean over the segment's positions
    for i, n in enumerate((4, 2)):
        paper = (torch.log_softmax(logits[i, :n], -1) / v).sum(-1).mean().item()
        assert ours[i] == pytest.approx(paper + math.log(v), rel=1e-5)
    uniform = kl_uniform_lm_score(torch.zeros(1, 3, v), torch.zeros(1, 3, dtype=torch.long))
    assert uniform[0] == pytest.approx(0.0, abs=1e-6)  # the maximum (fp32): most anomalous
    assert (ours < 0).all()
    assert max_prob_lm_score(torch.zeros(1, 3, v), torch.zeros(1, 3, dtype=torch.long))[0] == pytest.approx(-1 / v)
    top = torch.softmax(logits[1, :2], -1).max(-1).values.mean().item()
    assert max_prob_lm_score(logits, ids, mask)[1] == pytest.approx(-top, rel=1e-6)


def test_scores_reject_bad_input():
    v = 5
    with pytest.raises(ValueError, match="seq_len, vocab"):
        nll_score(torch.zeros(2, 5), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="input_ids"):
        nll_score(torch.zeros(1, 3, v), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="no predicted token"):  # a single token and no bos before it
        nll_score(torch.zeros(2, 3, v), torch.ones(2, 3, dtype=torch.long), torch.tensor([[1, 1, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match="NaN"):
        kl_uniform_lm_score(torch.full((1, 2, v), float("nan")), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        max_prob_lm_score(torch.zeros(1, 2, v), torch.zeros(1, 2, dtype=torch.long), temperature=0)
    with pytest.raises(ValueError, match="Unknown language-model OOD score 'msp'"):
        compute_lm_score("msp", torch.zeros(1, 2, v), torch.zeros(1, 2, dtype=torch.long))
    assert sorted(LM_SCORES) == ["bpc", "kl_uniform", "max_prob", "nll"]


def test_score_texts_keeps_order_truncates_and_matches_one_by_one():
    tok = word_tokenizer(bos=True)
    model = tiny_gpt2(len(tok)).eval()
    texts = ["good movie", "the film " * 40, "a bad plot is very fun", "great"]  # text 1 exceeds the 32-token context
    together = score_texts_with_lm(model, tok, texts, scores=["nll", "kl_uniform", "bpc"], batch_size=3)
    for i, text in enumerate(texts):
        alone = score_texts_with_lm(model, tok, [text], scores=["nll", "kl_uniform", "bpc"])
        for name in together:
            assert together[name][i] == pytest.approx(alone[name][0], rel=1e-5, abs=1e-7), (name, i)
    # the long text is cut to its first 32 tokens (bos included): the same score as that prefix
    prefix = " ".join(("the film " * 40).split()[:31])
    assert together["nll"][1] == pytest.approx(score_texts_with_lm(model, tok, [prefix])["nll"][0], rel=1e-5)
    assert together["bpc"][1] == pytest.approx(  # bits per character of the kept characters only
        score_texts_with_lm(model, tok, [prefix], scores=["bpc"])["bpc"][0], rel=1e-5
    )
    with pytest.raises(ValueError, match=r"texts\[1\]` is empty"):
        score_texts_with_lm(model, tok, ["good", ""])
    with pytest.raises(ValueError, match="max_length"):
        score_texts_with_lm(model, tok, ["good"], max_length=1)


def test_non_causal_models_are_rejected(tiny_bert_config):
    with pytest.raises(ValueError, match="must be a causal language model.*BertForSequenceClassification"):
        check_causal_lm(BertForSequenceClassification(tiny_bert_config))
    encoder_as_lm = BertLMHeadModel(BertConfig(**{**tiny_bert_config.to_dict(), "is_decoder": False}))
    with pytest.raises(ValueError, match="is not causal"):
        check_causal_lm(encoder_as_lm)
    decoder = BertLMHeadModel(BertConfig(**{**tiny_bert_config.to_dict(), "is_decoder": True}))
    check_causal_lm(decoder)  # BERT configured as a decoder is causal
    check_causal_lm(tiny_gpt2(40))
