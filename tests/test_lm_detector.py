"""`OELanguageModelDetector`: scoring, calibration, save/load, and a round trip through a local fake Hub."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import yaml
from hub_server import FakeHub
from test_lm_training import tiny_gpt2, word_tokenizer
from test_push_to_hub import child_env
from transformers import AutoModelForCausalLM, BertForSequenceClassification

from oe_text import OELanguageModelDetector, ThresholdNotCalibratedError
from oe_text.modeling_lm import score_texts_with_lm


TEXTS = ["good movie", "a bad plot is very fun", "river king album", "the film was great"]


def make_detector(**kw):
    tok = word_tokenizer(pad=False, bos=True)
    return OELanguageModelDetector.from_lm(tiny_gpt2(len(tok)).eval(), tok, **kw)


def test_detector_scores_calibrates_and_detects():
    detector = make_detector()
    assert detector.tokenizer.pad_token == "</s>"  # no pad token: eos is used
    assert detector.config.ood_score == "kl_uniform" and not detector.training
    scores = detector.score_texts(TEXTS, scores=["kl_uniform", "nll", "bpc", "max_prob"])
    expected = score_texts_with_lm(detector.lm, detector.tokenizer, TEXTS, scores=["kl_uniform", "nll"])
    np.testing.assert_allclose(scores["kl_uniform"], expected["kl_uniform"])
    np.testing.assert_allclose(scores["nll"], expected["nll"])
    assert detector.detect(TEXTS)[0]["is_ood"] is None  # not calibrated yet
    with pytest.raises(ThresholdNotCalibratedError):
        detector.detect(TEXTS, require_threshold=True)
    threshold = detector.calibrate_threshold(TEXTS, tpr=0.75, calibration_data={"dataset": "toy"})
    detections = detector.detect(TEXTS)
    assert sum(d["is_ood"] for d in detections) == 1  # 1 - tpr of the calibration texts
    assert [d["ood_score"] for d in detections] == pytest.approx(scores["kl_uniform"].tolist())
    assert detections[0]["perplexity"] == pytest.approx(np.exp(scores["nll"][0]))
    assert (
        detector.config.threshold_calibration["ood_score"] == "kl_uniform"
        and threshold == detector.config.ood_threshold
    )
    detector.set_ood_score("nll")  # switching scores clears the threshold
    assert detector.config.ood_threshold is None
    detector.calibrate_threshold(TEXTS, tpr=1.0)
    assert not any(d["is_ood"] for d in detector.detect(TEXTS))
    with pytest.raises(ValueError, match="Unknown language-model OOD score 'msp'"):
        detector.set_ood_score("msp")
    with pytest.raises(NotImplementedError, match="score_texts"):
        detector.ood_scores_from_logits(torch.zeros(2, 3))
    with pytest.raises(NotImplementedError, match="language-model detector scores with"):
        detector.fit_ood_score("knn", TEXTS)


def test_detector_is_a_causal_lm_and_rejects_other_models(tmp_path, tiny_bert_config):
    detector = make_detector()
    ids = detector.tokenizer(["good movie"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(detector(input_ids=ids).logits, detector.lm(input_ids=ids).logits)
    with pytest.raises(ValueError, match="must be a causal language model"):
        OELanguageModelDetector.from_lm(BertForSequenceClassification(tiny_bert_config), word_tokenizer())
    with pytest.raises(ValueError, match="no tokenizer"):
        OELanguageModelDetector.from_lm(tiny_gpt2(40)).detect(["good"])
    with pytest.raises(ValueError, match=r"texts\[0\]` is empty"):
        detector.detect([" "])


def test_save_and_load_keep_weights_threshold_and_tokenizer(tmp_path):
    detector = make_detector(truncation_length=8)
    detector.calibrate_threshold(TEXTS, tpr=0.75)
    detector.record_oe_provenance(in_distribution_dataset="SetFit/sst2", auxiliary_dataset="Salesforce/wikitext",
                                  oe_weight=0.5, oe_loss="uniform")  # fmt: skip
    detector.save_pretrained(tmp_path / "det")
    files = sorted(os.listdir(tmp_path / "det"))
    assert "model.safetensors" in files and "tokenizer.json" in files and "README.md" in files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    loaded = OELanguageModelDetector.from_pretrained(tmp_path / "det")
    auto = AutoModelForCausalLM.from_pretrained(tmp_path / "det")
    assert type(auto) is OELanguageModelDetector
    assert loaded.config.ood_threshold == detector.config.ood_threshold and loaded.config.truncation_length == 8
    assert loaded.detect(TEXTS) == detector.detect(TEXTS)
    card = (tmp_path / "det" / "README.md").read_text()
    assert "OELanguageModelDetector.from_pretrained" in card and "`SetFit/sst2`" in card
    assert (
        "per-token cross-entropy from the uniform distribution" in card
        and str(loaded.config.ood_threshold)[:6] in card
    )


CHILD = textwrap.dedent(
    """
    import json, sys
    import torch
    sys.path.insert(0, "tests")
    from test_lm_training import tiny_gpt2, word_tokenizer
    from transformers import AutoModelForCausalLM
    from oe_text import OELanguageModelDetector

    texts = ["good movie", "a bad plot is very fun", "river king album", "the film was great"]
    tok = word_tokenizer(pad=False, bos=True)
    detector = OELanguageModelDetector.from_lm(tiny_gpt2(len(tok)).eval(), tok)
    detector.calibrate_threshold(texts, tpr=0.75, calibration_data={"dataset": "toy", "split": "validation"})
    detector.record_oe_provenance(in_distribution_dataset="SetFit/sst2", auxiliary_dataset="Salesforce/wikitext",
                                  oe_weight=0.5, oe_loss="uniform")
    commit = detector.push_to_hub("user/tiny-oe-lm", commit_message="Add LM detector")
    loaded = OELanguageModelDetector.from_pretrained("user/tiny-oe-lm", use_safetensors=True)
    auto = AutoModelForCausalLM.from_pretrained("user/tiny-oe-lm")
    ids = tok(texts[:1], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        same_logits = torch.equal(detector(input_ids=ids).logits, loaded(input_ids=ids).logits)
        same_auto = torch.equal(detector(input_ids=ids).logits, auto(input_ids=ids).logits)
    print(json.dumps({
        "commit": commit.oid, "same_logits": same_logits, "same_auto": same_auto,
        "auto_class": type(auto).__name__,
        "threshold": [detector.config.ood_threshold, loaded.config.ood_threshold],
        "detect_equal": loaded.detect(texts) == detector.detect(texts),
        "n_ood": sum(d["is_ood"] for d in loaded.detect(texts)),
        "pad": loaded.tokenizer.pad_token,
    }))
    """
)


def test_push_to_local_hub_then_load_by_repo_id(tmp_path):
    with FakeHub() as hub:
        result = subprocess.run(
            [sys.executable, "-c", CHILD],
            env=child_env(hub, tmp_path / "hf_home"),
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        out = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
        repo = hub.repos["user/tiny-oe-lm"]
        requests = list(hub.requests)
    assert out["same_logits"] and out["same_auto"] and out["auto_class"] == "OELanguageModelDetector"
    assert out["threshold"][0] == out["threshold"][1] is not None
    assert out["detect_equal"] and out["n_ood"] == 1 and out["pad"] == "</s>"
    assert out["commit"] == repo.head
    assert sorted(repo.files) == ["README.md", "config.json", "model.safetensors", "tokenizer.json",
                                  "tokenizer_config.json"]  # fmt: skip
    config = json.loads(repo.files["config.json"])
    assert config["model_type"] == "oe-language-model" and config["lm_config"]["model_type"] == "gpt2"
    assert config["ood_score"] == "kl_uniform" and config["ood_threshold"] == out["threshold"][0]
    readme = repo.files["README.md"].decode()
    metadata = yaml.safe_load(readme.split("---")[1])
    assert {"oe-text", "outlier-exposure", "ood-detection"} <= set(metadata["tags"])
    assert metadata["datasets"] == ["SetFit/sst2", "Salesforce/wikitext"]
    assert 'OELanguageModelDetector.from_pretrained("user/tiny-oe-lm")' in readme
    assert ("GET", f"/user/tiny-oe-lm/resolve/{repo.head}/model.safetensors") in requests
