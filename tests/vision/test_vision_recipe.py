import json

import numpy as np
import pytest
import torch

from oe_text.vision import OEImageClassifier
from oe_text.vision.recipe import (
    PRESETS,
    VisionRecipeArguments,
    main,
    parse_vision_args,
    tune_temperature,
)


def test_tune_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(4000, 10))
    # Labels drawn from softmax(z / 2): the NLL-optimal temperature is 2.
    probs = torch.softmax(torch.as_tensor(logits) / 2.0, dim=-1).numpy()
    labels = np.array([rng.choice(10, p=p) for p in probs])
    assert tune_temperature(logits, labels) == pytest.approx(2.0, rel=0.08)
    # Bounded search: an overconfident-by-20x model is clipped at the upper end.
    assert tune_temperature(logits * 20, labels) == pytest.approx(5.0, abs=1e-3)
    with pytest.raises(ValueError, match="logits"):
        tune_temperature(logits[:, 0], labels)


def test_parse_vision_args_applies_the_paper_defaults_and_presets():
    recipe, training = parse_vision_args(["--output_dir", "out"])
    assert (
        recipe.dataset == "fashion_mnist" and recipe.depth == 10 and recipe.outlier_dataset == "zh-plus/tiny-imagenet"
    )
    assert recipe.ood_datasets == ["mnist", "cifar10", "gaussian", "rademacher", "blobs"]
    assert training.per_device_train_batch_size == 64 and training.oe_batch_size == 128  # OE batch = 2 x ID batch
    assert training.oe_weight == 0.5 and training.optim.value == "sgd" and training.weight_decay == 0.0005
    assert training.optim_args == "momentum=0.9,nesterov=True" and training.lr_scheduler_type.value == "cosine"
    assert (training.num_train_epochs, training.learning_rate) == (0.25, 0.01)

    recipe, training = parse_vision_args(
        ["--dataset", "cifar10", "--outlier_dataset", "x.npy", "--learning_rate", "0.003",
         "--per_device_train_batch_size", "64", "--depth", "16"]
    )  # fmt: skip
    assert (recipe.depth, recipe.widen_factor, recipe.dropout, recipe.baseline_epochs) == (16, 2, 0.3, 100.0)
    assert recipe.ood_datasets == PRESETS["cifar10"]["ood_datasets"]
    assert training.learning_rate == 0.003 and training.num_train_epochs == 10.0 and training.oe_batch_size == 128
    _, training = parse_vision_args(["--dataset", "svhn", "--outlier_dataset", "x.npy"])
    assert (training.per_device_train_batch_size, training.oe_batch_size, training.learning_rate) == (128, 256, 1e-4)


def test_recipe_arguments_errors():
    with pytest.raises(ValueError, match="--outlier_dataset is required"):
        VisionRecipeArguments(dataset="cifar10")
    with pytest.raises(ValueError, match="supports --dataset"):
        VisionRecipeArguments(dataset="mnist")
    with pytest.raises(ValueError, match="Unknown vision dataset"):
        VisionRecipeArguments(dataset="imagenet")


@pytest.mark.integration
def test_recipe_runs_end_to_end_on_a_tiny_budget(mirror, tmp_path, capsys):
    out = tmp_path / "run"
    result = main(
        ["--output_dir", str(out), "--widen_factor", "1", "--max_train_samples", "64", "--validation_size", "40",
         "--max_test_samples", "50", "--max_outliers", "64", "--per_device_train_batch_size", "16",
         "--per_device_eval_batch_size", "64", "--baseline_epochs", "1", "--num_train_epochs", "1",
         "--ood_datasets", "mnist", "gaussian", "blobs", "--plots", "false", "--disable_tqdm", "true",
         "--logging_steps", "2"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "| OOD set | FPR95 ↓ Baseline | FPR95 ↓ OE | AUROC ↑ Baseline | AUROC ↑ OE |" in printed
    assert "| RMS ↓ Baseline | RMS ↓ OE | MAD ↓ Baseline | MAD ↓ OE |" in printed
    assert "all 50 ID test inputs vs 1 random OOD subsets of 10 inputs" in printed
    detection = result.oe
    assert detection.ood_names == ["mnist", "gaussian", "blobs"] and detection.num_id == 50
    assert detection.num_ood == {"mnist": 10000, "gaussian": 10, "blobs": 10}
    summary = json.loads((out / "comparison.json").read_text())
    assert set(summary["calibration"]) == {"Baseline", "OE"}
    assert summary["calibration"]["OE"]["temperature"] == pytest.approx(result.temperatures["oe"])
    assert (out / "comparison.md").read_text().startswith("Score `msp`")
    for run in ("results_baseline", "results_oe"):
        assert {"results.json", "results.csv", "results.md"} <= {p.name for p in (out / run).iterdir()}
    detector = OEImageClassifier.from_pretrained(out / "oe_detector")
    assert detector.config.ood_threshold is not None and detector.config.threshold_tpr == 0.95
    assert detector.config.threshold_calibration["n_examples"] == 40
    assert (
        detector.config.oe["auxiliary_dataset"] == "zh-plus/tiny-imagenet" and detector.config.oe["oe_weight"] == 0.5
    )
    assert set(detector.config.oe["ood_results"]) == {"mnist", "gaussian", "blobs"}
    baseline = OEImageClassifier.from_pretrained(out / "baseline")
    assert baseline.config.oe.get("oe_weight") is None
    # The OE detector's card: baseline vs OE per set, accuracy, budget, the rule in words; model-index parses.
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "oe_detector" / "README.md")
    assert "| OOD test set | FPR95 (%) Baseline | FPR95 (%) OE detector |" in card.text
    assert "In-distribution test accuracy:" in card.text and "(baseline " in card.text
    assert "**In-distribution training examples:** `64`" in card.text and "**Seed:** `42`" in card.text
    assert "1 seeded random subset of each OOD set" in card.text and "An image is flagged OOD when" in card.text
    assert "{'" not in card.text
    metrics = {(r.dataset_type, r.metric_type) for r in card.data.eval_results}
    assert ("mnist", "auroc") in metrics and ("blobs", "fpr95") in metrics
    assert "**λ (OE weight):** not recorded" in (out / "baseline" / "README.md").read_text()
    # The saved OE detector reproduces the evaluated logits' decisions: detect() on raw images works end to end.
    assert len(detector.detect(torch.rand(3, 1, 28, 28))) == 3
