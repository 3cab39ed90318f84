"""The recipes end to end on the offline mirror with a tiny budget (GRU and MiniLM), 2 processes, and the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oe_text.cli import main as cli_main
from oe_text.data import TextNormalization, load_id_dataset
from oe_text.modeling_oe import OEClassifier
from oe_text.recipe import RecipeArguments, parse_recipe_args
from oe_text.recipe import main as recipe_main


ROOT = Path(__file__).resolve().parents[1]
TINY = ["--max_train_samples", "96", "--max_steps", "3", "--max_eval_samples", "60", "--max_ood_samples", "40",
        "--ood_datasets", "snli", "multi30k", "wmt16", "--vocab_size", "300", "--logging_steps", "1",
        "--disable_tqdm", "true", "--per_device_train_batch_size", "16"]  # fmt: skip


def test_defaults_follow_the_paper_for_rnns_and_fine_tuning_for_encoders(tmp_path):
    recipe, args = parse_recipe_args("trec", ["--model", "gru", "--output_dir", str(tmp_path)])
    assert recipe.dataset == "trec" and recipe.is_rnn
    assert (args.learning_rate, args.per_device_train_batch_size, args.num_train_epochs) == (0.01, 64, 5.0)
    assert args.lr_scheduler_type == "cosine" and args.oe_weight == 1.0 and recipe.oe_mode == "finetune"
    recipe, args = parse_recipe_args("sst2", ["--learning_rate", "1e-4", "--output_dir", str(tmp_path)])
    assert recipe.model == "sentence-transformers/all-MiniLM-L6-v2" and not recipe.is_rnn
    assert args.learning_rate == 1e-4 and args.per_device_train_batch_size == 32
    assert parse_recipe_args("20ng", ["--model", "lstm", "--output_dir", str(tmp_path)])[0].max_length == 100


def test_bad_recipe_arguments():
    with pytest.raises(ValueError, match="oe_mode"):
        RecipeArguments(oe_mode="sometimes")
    with pytest.raises(ValueError, match="calibration_tpr"):
        RecipeArguments(calibration_tpr=1.5)
    with pytest.raises(ValueError, match="detector_score"):
        RecipeArguments(detector_score="lof")
    # Feature-space scores are detector state now (issue 11): a saved detector can decide with them.
    assert RecipeArguments(detector_score="mahalanobis").detector_score == "mahalanobis"
    with pytest.raises(ValueError, match="detector_score"):
        RecipeArguments(detector_score="mahalanobis", score_candidates=["msp"])
    with pytest.raises(ValueError, match="Unknown score candidate"):
        RecipeArguments(score_candidates=["msp", "lof"])
    with pytest.raises(ValueError, match="heldout_auxiliary_samples"):
        RecipeArguments(heldout_auxiliary_samples=0)


def check_run(result, output_dir, n_labels):
    assert "Baseline" in result.comparison and "OE" in result.comparison
    assert "| snli |" in result.comparison and "| multi30k |" in result.comparison
    assert "wmt16" in result.comparison  # reported by name as unavailable, not dropped
    for run in (result.baseline, result.oe):
        assert run.num_id == 60 and set(run.ood_names) == {"snli", "multi30k"}
        assert 0 <= run.accuracy <= 1 and 0 <= run.mean_metrics("msp")["auroc"] <= 1
        assert "wmt16" in run.unavailable
    for name in ("comparison.md", "results.json", "results/baseline/results.json", "results/oe/results.csv"):
        assert (output_dir / name).is_file(), name
    detector = OEClassifier.from_pretrained(output_dir / "detector")
    assert detector.config.ood_threshold == pytest.approx(result.threshold)
    assert detector.config.threshold_tpr == 0.95 and detector.config.num_labels == n_labels
    assert "outlier-exposure" in (output_dir / "detector" / "README.md").read_text()
    out = detector.detect(["a sentence nobody trained on", "the movie was great"])
    assert len(out) == 2 and all(isinstance(d["is_ood"], bool) for d in out)
    # The baseline is saved as a detector too (MSP, its own threshold and card); no empty trainer folders remain.
    baseline = OEClassifier.from_pretrained(output_dir / "baseline_detector")
    assert baseline.config.ood_score == "msp" and baseline.config.threshold_tpr == 0.95
    assert baseline.config.oe["test_accuracy"] == pytest.approx(result.baseline.accuracy)
    assert "auxiliary_dataset" not in baseline.config.oe and baseline.config.oe["evaluation"]["seed"] == 42
    assert not [p for p in output_dir.iterdir() if p.is_dir() and not any(p.iterdir())]
    return detector


def check_accuracy_matches_detect(result, detector, dataset, label_granularity="fine"):
    """The reported accuracy must be that of the saved detector on the same test inputs, in the same order."""
    test = load_id_dataset(dataset, normalization=TextNormalization(), label_granularity=label_granularity)["test"]
    test = test.shuffle(seed=42).select(range(60))
    names = test.features["label"].names
    predicted = [names.index(d["label"]) for d in detector.detect(test["text"])]
    accuracy = sum(p == y for p, y in zip(predicted, test["label"])) / len(test)
    assert abs(accuracy - result.oe.accuracy) <= 1 / 60 + 1e-9, (accuracy, result.oe.accuracy)


@pytest.mark.integration
@pytest.mark.parametrize(
    "dataset,model,n_labels",
    [
        ("sst2", "gru", 2),
        ("trec", "lstm", 50),
        ("20ng", "gru", 20),
        ("sst2", "sentence-transformers/all-MiniLM-L6-v2", 2),
    ],
)
def test_recipe_end_to_end(mirror, tmp_path, dataset, model, n_labels):
    extra = ["--max_length", "32"] if "MiniLM" in model else []
    result = recipe_main(dataset, ["--model", model, "--output_dir", str(tmp_path), *TINY, *extra])
    detector = check_run(result, tmp_path, n_labels)
    check_accuracy_matches_detect(result, detector, dataset)


@pytest.mark.integration
def test_minilm_recipe_scratch_mode_on_trec_and_20ng(mirror, tmp_path):
    for dataset, n_labels in (("trec", 50), ("20ng", 20)):
        out = tmp_path / dataset
        args = ["--model", "sentence-transformers/all-MiniLM-L6-v2", "--oe_mode", "scratch", "--max_length", "32"]
        result = recipe_main(dataset, [*args, "--output_dir", str(out), *TINY])
        check_run(result, out, n_labels)


@pytest.mark.integration
@pytest.mark.multiprocess
def test_two_process_launch_of_a_recipe(mirror, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    config = ROOT / "recipes" / "accelerate_configs" / "cpu_2proc.yaml"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--main_process_port",
           "0", str(ROOT / "recipes" / "trec_oe.py"), "--model", "gru", "--output_dir", str(tmp_path),
           *TINY]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("| **Mean** |") == 1  # only the main process prints the table
    summary = json.loads((tmp_path / "results.json").read_text())
    # Predictions gathered from both processes: every ID test input scored exactly once.
    assert summary["oe"]["num_id"] == 60 and summary["baseline"]["num_id"] == 60
    check_run_detector = OEClassifier.from_pretrained(tmp_path / "detector")
    assert check_run_detector.config.ood_threshold is not None
    # The baseline is saved as a detector too (MSP, its own threshold and card); no empty trainer folders remain.
    baseline_detector = OEClassifier.from_pretrained(tmp_path / "baseline_detector")
    assert baseline_detector.config.ood_score == "msp" and baseline_detector.config.ood_threshold is not None
    assert "auxiliary_dataset" not in baseline_detector.config.oe
    assert baseline_detector.config.oe["test_accuracy"] == pytest.approx(summary["baseline"]["accuracy"])
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and not any(p.iterdir())]


@pytest.mark.integration
def test_cli_train_evaluate_detect(mirror, tmp_path, capsys, monkeypatch):
    import io

    cli_main(["train", "--dataset", "trec", "--model", "gru", "--output_dir", str(tmp_path), *TINY])
    detector = tmp_path / "detector"
    assert (detector / "model.safetensors").is_file()
    capsys.readouterr()

    code = cli_main(["evaluate", "--model", str(detector), "--id_dataset", "trec", "--ood_datasets", "multi30k",
                     "yelp", "--max_eval_samples", "50", "--output_dir", str(tmp_path / "eval")])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "| multi30k |" in printed and "yelp" in printed
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["num_id"] == 50

    # With no settings, `evaluate` reads the seed, caps, protocol, OOD sets, truncation and normalisation the recipe
    # recorded in the detector's config and reproduces the numbers of its model card.
    config = OEClassifier.from_pretrained(detector).config
    assert config.oe["evaluation"]["seed"] == 42 and config.oe["evaluation"]["max_eval_samples"] == 60
    assert cli_main(["evaluate", "--model", str(detector), "--id_dataset", "trec", "--output_dir",
                     str(tmp_path / "again")]) == 0  # fmt: skip
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["num_id"] == 60
    card = config.oe["ood_results"]
    assert set(card) == {"snli", "multi30k", "mean"}
    for name in ("snli", "multi30k"):
        for metric, value in card[name].items():
            assert again["metrics"][config.ood_score][name][metric]["mean"] == pytest.approx(value, abs=1e-6)
    readme = (detector / "README.md").read_text()
    assert f"oe-text evaluate --model {detector} --id_dataset trec" not in readme  # local folders are not named
    assert "oe-text evaluate --model path/or/repo-id --id_dataset trec" in readme
    capsys.readouterr()

    texts = "what is the capital of peru ?\n\nhow many people live in tokyo ?\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(texts))
    assert cli_main(["detect", "--model", str(detector)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["what is the capital of peru ?", "how many people live in tokyo ?"]
    for r in lines:
        assert set(r) == {"text", "label", "probability", "ood_score", "is_ood"}
        assert isinstance(r["is_ood"], bool) and 0 < r["probability"] <= 1

    out_file = tmp_path / "out.jsonl"
    (tmp_path / "in.txt").write_text(texts)
    cli_main(["detect", "--model", str(detector), "--input", str(tmp_path / "in.txt"), "--output", str(out_file)])
    assert len(out_file.read_text().splitlines()) == 2
    with pytest.raises(SystemExit, match="does not exist"):
        cli_main(["detect", "--model", str(detector), "--input", str(tmp_path / "missing.txt")])


def test_validation_outliers_default_to_the_other_id_presets(tmp_path):
    out = ["--output_dir", str(tmp_path)]
    assert parse_recipe_args("sst2", out)[0].validation_outliers == ["trec", "20ng"]
    assert parse_recipe_args("trec", ["--model", "gru", *out])[0].validation_outliers == ["sst2", "20ng"]
    assert parse_recipe_args("20ng", out)[0].validation_outliers == ["sst2", "trec"]
    assert parse_recipe_args("sst2", ["--validation_outliers", "none", *out])[0].validation_outliers == []
    with pytest.raises(ValueError, match="validation_outliers"):
        RecipeArguments(dataset="trec", validation_outliers=["snli"])  # an OOD test set: never used to choose
    with pytest.raises(ValueError, match="validation_outliers"):
        RecipeArguments(dataset="trec", validation_outliers=["trec"])
    # The same data under another name is refused too: a preset's Hub id, another SST-2 release, another WikiText.
    for dataset, source in (("trec", "CogComp/trec"), ("glue-sst2", "sst2"), ("sst2", "wikitext103")):
        with pytest.raises(ValueError, match="validation_outliers"):
            RecipeArguments(dataset=dataset, validation_outliers=[source])
    with pytest.raises(ValueError, match="'none' stands alone"):
        RecipeArguments(dataset="sst2", validation_outliers=["none", "trec"])
    assert RecipeArguments(dataset="sst2", validation_outliers=["trec", "20ng"]).validation_outliers == [
        "trec",
        "20ng",
    ]
