"""The language-model recipe end to end on the offline mirror (tiny budget), its CLI entry and its bad input."""

import json

import pytest
from transformers import BertForSequenceClassification

from oe_text.cli import _pop_task
from oe_text.lm_recipe import likelihood_paradox, load_hub_causal_lm, main, parse_lm_recipe_args


TINY = [
    "--max_train_samples", "64", "--baseline_epochs", "1", "--num_train_epochs", "0.25",
    "--max_eval_samples", "40", "--max_ood_samples", "20", "--ood_datasets", "ewt-answers", "multi30k",
    "--auxiliary_max_samples", "64", "--n_embd", "16", "--n_head", "2", "--n_layer", "1", "--vocab_size", "300",
    "--max_length", "24", "--per_device_train_batch_size", "16", "--disable_tqdm", "true", "--use_cpu", "true",
]  # fmt: skip


def test_lm_recipe_runs_and_reports_both_models(tmp_path, mirror, capsys):
    result = main([*TINY, "--output_dir", str(tmp_path / "run")])
    printed = capsys.readouterr().out
    assert "Score `kl_uniform`" in printed and "Score `nll`" in printed and "Likelihood paradox" in printed
    assert set(result.baseline.metrics) == {"kl_uniform", "nll", "max_prob"}
    assert set(result.oe.metrics["kl_uniform"]) == {"ewt-answers", "multi30k"}
    for run in ("baseline", "oe"):
        for values in result.likelihood_paradox[run].values():
            assert 0 <= values["share_more_likely"] <= 1 and 0 <= values["auroc_nll"] <= 1
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["recipe"]["dataset"] == "sst2" and saved["id_test_mean_nll"]["oe"] > 0
    assert (tmp_path / "run" / "tokenizer" / "tokenizer.json").is_file()
    assert "| ewt-answers |" in (tmp_path / "run" / "comparison.md").read_text()
    from oe_text import OELanguageModelDetector

    detector = OELanguageModelDetector.from_pretrained(result.detector_dir)
    assert detector.config.ood_threshold == pytest.approx(result.threshold)
    assert detector.config.threshold_calibration["n_examples"] == 40  # --max_eval_samples validation texts
    assert set(detector.config.oe["ood_results"]) == {"ewt-answers", "multi30k", "mean"}
    assert detector.config.oe["oe_weight"] == 0.5 and detector.config.truncation_length == 24
    assert len(detector.detect(["a fine film .", "the cat sat on the mat ."])) == 2


def test_lm_recipe_is_reproducible(tmp_path, mirror):
    # Same seed, same numbers: the tokenizer, the model's initialisation and both training phases are seeded.
    runs = [main([*TINY, "--max_train_samples", "32", "--output_dir", str(tmp_path / name)]) for name in "ab"]
    assert runs[0].id_nll == runs[1].id_nll
    assert runs[0].oe.mean_metrics("kl_uniform") == runs[1].oe.mean_metrics("kl_uniform")


def test_likelihood_paradox_numbers():
    import numpy as np

    id_nll = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    ood_nll = np.array([0.5, 1.5, 6.0, 7.0])  # two OOD texts below the ID median 3.0
    out = likelihood_paradox(id_nll, ood_nll)
    assert out["share_more_likely"] == 0.5
    assert out["auroc_nll"] == pytest.approx((0 + 1 + 5 + 5) / 20)
    assert out["mean_nll_ood"] == pytest.approx(3.75) and out["mean_nll_id"] == pytest.approx(3.0)


def test_non_causal_hub_model_is_rejected(tmp_path, tiny_bert_config, tiny_tokenizer):
    folder = tmp_path / "bert"
    BertForSequenceClassification(tiny_bert_config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    # AutoModelForCausalLM loads BERT as BertLMHeadModel, which attends both ways: the probe catches it.
    with pytest.raises(ValueError, match="is not causal"):
        load_hub_causal_lm(str(folder))


def test_recipe_arguments_and_task_flag():
    recipe_args, training_args = parse_lm_recipe_args(["--output_dir", "x"])
    assert recipe_args.model == "gpt2-scratch" and recipe_args.dataset == "sst2"
    assert training_args.oe_weight == 0.5 and recipe_args.max_ood_samples == 1000  # the paper's LM weight
    assert parse_lm_recipe_args(["--max_ood_samples", "0"])[0].max_ood_samples is None
    with pytest.raises(ValueError, match="Unknown LM score"):
        parse_lm_recipe_args(["--scores", "msp"])
    assert _pop_task(["--task", "lm", "--dataset", "sst2"]) == ("lm", ["--dataset", "sst2"])
    assert _pop_task(["--task=lm"]) == ("lm", [])
    assert _pop_task(["--model", "gru"]) == ("classification", ["--model", "gru"])
    with pytest.raises(SystemExit, match="unknown --task 'vision'"):
        _pop_task(["--task", "vision"])
