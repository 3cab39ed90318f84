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
