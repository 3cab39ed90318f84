"""`oe_text.inference.predict_outputs`: one process, and its batches shared by several (`distributed_inference`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from oe_text import OEClassifier, OEConfig
from oe_text.inference import distributed_inference, predict_outputs


REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).parent / "scripts" / "distributed_outputs.py"
WORDS = "the a movie film good bad great awful plot actor boring fun love hate it was is not very and".split()
TRAIN = [" ".join(WORDS[(3 * i + k) % len(WORDS)] for k in range(2 + i % 5)) for i in range(14)]
LABELS = [i % 3 for i in range(14)]
PROBE = [" ".join(WORDS[(5 * i + 2 * k) % len(WORDS)] for k in range(1 + i % 7)) for i in range(20)]


@pytest.fixture
def detector(tiny_bert_config, tiny_tokenizer) -> OEClassifier:
    torch.manual_seed(0)
    model = OEClassifier(OEConfig(backbone_config=tiny_bert_config.to_dict(), num_labels=3))
    model.tokenizer = tiny_tokenizer
    model.fit_ood_score("knn", TRAIN, k=2, batch_size=4)
    return model


def test_distributed_inference_without_a_process_group_is_one_process(detector, tiny_tokenizer):
    logits, feats = predict_outputs(detector, tiny_tokenizer, PROBE, ["fine-tuned:-1"], batch_size=3)
    with distributed_inference():
        shared, shared_feats = predict_outputs(detector, tiny_tokenizer, PROBE, ["fine-tuned:-1"], batch_size=3)
    np.testing.assert_array_equal(shared, logits)
    np.testing.assert_array_equal(shared_feats["fine-tuned:-1"], feats["fine-tuned:-1"])
    assert logits.shape == (len(PROBE), 3) and feats["fine-tuned:-1"].shape == (len(PROBE), 32)


@pytest.mark.multiprocess
def test_two_processes_return_the_logits_features_and_fitted_scores_of_one(detector, tmp_path):
    detector.save_pretrained(tmp_path / "detector")
    (tmp_path / "texts.json").write_text(json.dumps({"probe": PROBE, "train": TRAIN, "labels": LABELS}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OE_TEXT_")) and "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    # `--cpu --num_processes 2` silently starts one process; --multi_gpu with ACCELERATE_USE_CPU starts two.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(SCRIPT), str(tmp_path / "detector"), str(tmp_path)]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    # The single-process outputs of the same saved detector.
    single = OEClassifier.from_pretrained(tmp_path / "detector")
    logits, feats = single.predict_outputs(PROBE, ["fine-tuned:-1", "fine-tuned:1"], batch_size=3)
    knn = single.compute_ood_scores(PROBE, batch_size=3)
    single.fit_ood_score("mahalanobis", TRAIN, LABELS, batch_size=3)
    mahalanobis = single.compute_ood_scores(PROBE, batch_size=3)

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert [r["rows_alone"] for r in reports] == [len(PROBE), len(PROBE)]
    # 7 batches of 3 probe texts (4 + 3 per process), then the fit's 5 batches of 14 training texts (3 + 2) and the
    # probe again: each text is encoded by one process.
    shared = [r["rows_shared"] for r in reports]
    assert sum(shared) == 3 * len(PROBE) + len(TRAIN) and all(n > 0 for n in shared)
    for r in (0, 1):
        out = np.load(tmp_path / f"rank{r}.npz")
        # Row for row, in the texts' order, on every process.
        np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["last"], feats["fine-tuned:-1"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["layer1"], feats["fine-tuned:1"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["knn"], knn, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["mahalanobis"], mahalanobis, rtol=1e-4, atol=1e-4)
    assert not np.allclose(logits[:10], logits[10:])  # different texts, different rows: the order is checked
