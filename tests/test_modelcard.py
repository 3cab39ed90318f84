import pytest
from huggingface_hub import ModelCard

from oe_text.configuration_oe import OEConfig
from oe_text.modelcard import CARD_TAGS, build_model_card, ood_results_table


RESULTS = {
    "snli": {"auroc": 0.9, "aupr_out": 0.7, "fpr95": 0.4},
    "trec": {"auroc": 0.8, "aupr_out": 0.5, "fpr95": 0.6},
}


def config(**overrides):
    values = dict(
        backbone_type="transformer",
        backbone_config={"model_type": "bert", "hidden_size": 384, "max_position_embeddings": 512},
        base_model_name="sentence-transformers/all-MiniLM-L6-v2",
        id2label={0: "negative", 1: "positive"},
        ood_score="msp",
        ood_threshold=-0.62,
        threshold_tpr=0.95,
        threshold_calibration={"dataset": "SetFit/sst2", "split": "validation", "n_examples": 872},
        oe={
            "in_distribution_dataset": "SetFit/sst2",
            "auxiliary_dataset": "Salesforce/wikitext",
            "oe_weight": 0.5,
            "oe_loss": "uniform",
            "ood_results": RESULTS,
            "epochs": 3,
        },
    )
    values.update(overrides)
    return OEConfig(**values)


def test_card_metadata_and_sections(tmp_path):
    card = build_model_card(config(), repo_id="someone/sst2-oe", tags=["sst2"])
    path = tmp_path / "README.md"
    card.save(path)
    reloaded = ModelCard.load(path)
    data = reloaded.data
    assert list(CARD_TAGS) == data.tags[: len(CARD_TAGS)] and "sst2" in data.tags
    assert {"oe-text", "outlier-exposure", "ood-detection"} <= set(data.tags)
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.datasets == ["SetFit/sst2", "Salesforce/wikitext"]
    assert data.pipeline_tag == "text-classification" and data.library_name == "transformers"
    text = reloaded.text
    assert "# sst2-oe" in text
    assert "**In-distribution dataset:** `SetFit/sst2`" in text
    assert "**Auxiliary (outlier exposure) dataset:** `Salesforce/wikitext`" in text
    assert "**λ (OE weight):** `0.5`" in text and "cross-entropy from the model's softmax to the uniform" in text
    assert "**epochs:** `3`" in text
    # Threshold and how it was chosen.
    assert "greater than -0.62" in text and "keeps 95% of in-distribution inputs" in text
    assert "dataset=SetFit/sst2, split=validation, 872 examples" in text
    # Usage, limitations, citation.
    assert 'OEClassifier.from_pretrained("someone/sst2-oe")' in text
    assert "## Intended use and limitations" in text
    assert "Deep Anomaly Detection with Outlier Exposure" in text and "1812.04606" in text


def test_results_table_rows_mean_and_definitions():
    table, definitions = ood_results_table(RESULTS)
    lines = table.splitlines()
    assert lines[0] == "| OOD test set | AUROC (%) | AUPR-Out (%) | FPR95 (%) |"
    assert lines[2] == "| snli | 90.00 | 70.00 | 40.00 |"
    assert lines[3] == "| trec | 80.00 | 50.00 | 60.00 |"
    assert lines[4] == "| **Mean** | 85.00 | 60.00 | 50.00 |"
    assert len(definitions) == 3
    assert any(d.startswith("**FPR95**") and "95% of the OOD inputs" in d for d in definitions)
    # A given mean row is kept; percentages stay as they are; unknown metrics have no definition.
    table, definitions = ood_results_table({"a": {"AUROC": 91.0, "speed": 3.0}, "mean": {"AUROC": 91.0}})
    assert "| **mean** | 91 | – |" in table and "(%)" not in table
    assert len(definitions) == 1
    with pytest.raises(ValueError, match="non-empty"):
        ood_results_table({})
    with pytest.raises(ValueError, match="metric values"):
        ood_results_table({"snli": 0.9})


def test_card_without_provenance_or_threshold_and_rnn_backbone():
    cfg = OEConfig(
        backbone_type="gru",
        backbone_config={"vocab_size": 10000, "embedding_dim": 50, "hidden_size": 128, "num_layers": 2},
        num_labels=6,
    )
    card = build_model_card(cfg)
    assert card.data.base_model is None and card.data.datasets is None
    assert "gru" in card.data.tags
    text = card.text
    assert "GRU trained from scratch" in text and "10000-token vocabulary" in text
    assert "No OOD evaluation was recorded" in text
    assert "No decision threshold is calibrated yet" in text
    assert 'from_pretrained("path/or/repo-id")' in text


def test_local_paths_stay_out_of_metadata_and_markdown_results_pass_through():
    cfg = config(
        base_model_name="/home/me/models/minilm",
        oe={"in_distribution_dataset": "./data/train.csv", "ood_results": "| set | AUROC |\n|---|---|\n| x | 1 |"},
    )
    card = build_model_card(cfg)
    assert card.data.base_model is None and card.data.datasets is None
    assert "| x | 1 |" in card.text
    assert "`/home/me/models/minilm`" in card.text  # still named in the text


def recipe_config():
    """A config with the provenance the text recipe records (baseline, accuracy, budget, evaluation, flagged)."""
    cfg = config()
    cfg.oe.update(
        baseline_ood_results={
            "snli": {"auroc": 0.7, "aupr_out": 0.4, "fpr95": 0.8, "aupr_in": 0.9},
            "trec": {"auroc": 0.6, "aupr_out": 0.3, "fpr95": 0.9, "aupr_in": 0.8},
        },
        test_accuracy=0.9,
        baseline_test_accuracy=0.915,
        flagged={"snli": 0.6, "trec": 0.5},
        train_examples=400,
        num_train_epochs=0.5,
        train_steps=7,
        global_batch_size=64,
        seed=42,
        evaluation={
            "dataset": "sst2",
            "protocol": "paper",
            "seed": 42,
            "max_eval_samples": 200,
            "max_ood_samples": 50,
        },
        command="oe-text train --dataset sst2 --seed 42",
    )
    return cfg


def test_recipe_card_is_readable_and_its_model_index_parses(tmp_path):
    card = build_model_card(recipe_config(), repo_id="someone/sst2-oe")
    card.save(tmp_path / "README.md")
    reloaded = ModelCard.load(tmp_path / "README.md")
    text = reloaded.text
    # No raw Python containers or long floats anywhere in the markdown.
    assert "{'" not in text and "': " not in text and "0.9150000" not in text
    # Baseline vs OE side by side, with the share flagged at the saved threshold; accuracy; budget; settings.
    assert "| OOD test set | FPR95 (%) Baseline | FPR95 (%) OE detector | AUROC (%) Baseline |" in text
    assert "| snli | 80.00 | 40.00 | 70.00 | 90.00 | 40.00 | 70.00 | 60.00 |" in text
    assert "| **Mean** | 85.00 | 50.00 | 65.00 | 85.00 | 35.00 | 60.00 | 55.00 |" in text
    assert "AUPR-In" not in text.split("## OOD detection results")[1].split("## OOD score")[0].split("\n\n")[2]
    assert "In-distribution test accuracy: 90.00% (baseline 91.50%)." in text
    assert "**In-distribution training examples:** `400`" in text and "**Optimisation steps:** `7`" in text
    assert "smoke-test sized run" in text
    assert "Protocol `paper`" in text and "10 seeded random subsets" in text and "capped at 200" in text
    assert "`oe-text evaluate --model someone/sst2-oe --id_dataset sst2`" in text
    assert "oe-text train --dataset sst2 --seed 42" in text
    # The decision rule in words, with what it flags.
    assert "An input is flagged OOD when its top class has less than 62.0% probability" in text
    assert "on the evaluated OOD test sets it flags 50.0–60.0%" in text
    assert "pip install oe-text" in text and "import oe_text" in text and 'pipeline("text-classification"' in text
    # model-index: one entry per (OOD set, metric) in %, plus the test accuracy.
    results = reloaded.data.eval_results
    auroc = {r.dataset_type: r.metric_value for r in results if r.metric_type == "auroc"}
    assert auroc == {"snli": 90.0, "trec": 80.0}
    accuracy = [r for r in results if r.metric_type == "accuracy"]
    assert len(accuracy) == 1 and accuracy[0].metric_value == 90.0 and accuracy[0].dataset_name == "SetFit/sst2"
    assert reloaded.data.model_name == "sst2-oe"


def test_describe_decision_in_plain_words():
    from oe_text.modelcard import describe_decision

    cfg = config(ood_threshold=-0.1354, threshold_calibration={"fraction_flagged": 0.05})
    assert describe_decision(cfg, {"a": 0.4, "b": 0.9}) == (
        "An input is flagged OOD when its top class has less than 13.5% probability (`msp` > -0.1354); on "
        "in-distribution validation data this flags 5.0%; on the evaluated OOD test sets it flags 40.0–90.0%."
    )
    assert "largest logit is below 3.5" in describe_decision(config(ood_score="max_logit", ood_threshold=-3.5))
    assert "`energy` score is above -2" in describe_decision(config(ood_score="energy", ood_threshold=-2.0))
    assert "No decision threshold" in describe_decision(config(ood_threshold=None))


def test_provenance_values_render_without_python_reprs():
    from oe_text.modelcard import format_value

    assert format_value({"a": 0.123456789, "b": [1, 2]}) == "a: `0.1235`; b: `1`, `2`"
    assert format_value(3.0) == "`3`" and format_value(None) == "–"
