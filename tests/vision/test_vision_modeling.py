import json

import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from PIL import Image
from transformers import AutoConfig, AutoModelForImageClassification

from oe_text.detection import ThresholdNotCalibratedError
from oe_text.vision import OEImageClassifier, OEImageConfig


CLASSES = ["shirt", "shoe", "bag"]


@pytest.fixture
def tiny_wrn():
    torch.manual_seed(0)
    model = OEImageClassifier.from_wrn(
        depth=10, widen_factor=1, dropout=0.0, id2label=CLASSES, num_channels=1, image_size=16,
        image_mean=[0.5], image_std=[0.25],
    )  # fmt: skip
    return model.eval()


def test_forward_returns_logits_and_loss(tiny_wrn):
    x = torch.randn(4, 1, 16, 16)
    out = tiny_wrn(pixel_values=x, labels=torch.tensor([0, 1, 2, 0]))
    assert out.logits.shape == (4, 3)
    assert out.loss.item() == pytest.approx(
        torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 0])).item()
    )
    hidden = tiny_wrn(pixel_values=x, output_hidden_states=True).hidden_states[0]
    assert hidden.shape == (4, 64)
    assert torch.allclose(tiny_wrn.classify_features(hidden), out.logits, atol=1e-6)
    with pytest.raises(ValueError, match="pixel_values"):
        tiny_wrn(pixel_values=torch.randn(2, 3, 16, 16))


def test_save_load_round_trip_gives_identical_logits(tiny_wrn, tmp_path):
    # Train mode for one step so that BN running statistics differ from their init and must be saved too.
    tiny_wrn.train()
    tiny_wrn(pixel_values=torch.randn(8, 1, 16, 16) * 3 + 1)
    tiny_wrn.eval()
    tiny_wrn.calibrate_threshold([-0.9, -0.8, -0.7, -0.6, -0.5], tpr=0.8, calibration_data="unit-test")
    tiny_wrn.record_oe_provenance(
        in_distribution_dataset="fashion_mnist",
        auxiliary_dataset="zh-plus/tiny-imagenet",
        oe_weight=0.5,
        oe_loss="uniform",
        ood_results={"mnist": {"fpr95": 0.1, "auroc": 0.9}},
    )
    tiny_wrn.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"model.safetensors", "config.json", "README.md"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "oe-image-classifier" and config["architecture"] == "wrn"
    assert config["ood_threshold"] == pytest.approx(-0.6) and config["image_std"] == [0.25]

    x = torch.randn(5, 1, 16, 16)
    for loaded in (
        OEImageClassifier.from_pretrained(tmp_path),
        AutoModelForImageClassification.from_pretrained(tmp_path),
    ):
        assert isinstance(loaded, OEImageClassifier)
        loaded.eval()
        assert torch.equal(loaded(pixel_values=x).logits, tiny_wrn(pixel_values=x).logits)
        assert loaded.config.id2label == {0: "shirt", 1: "shoe", 2: "bag"}
        assert loaded.config.threshold_calibration["dataset"] == "unit-test"
    assert isinstance(AutoConfig.from_pretrained(tmp_path), OEImageConfig)
    card = (tmp_path / "README.md").read_text()
    assert "WRN-10-1" in card and "image-classification" in card and "fashion_mnist" in card
    assert "| mnist | 10.00 | 90.00 |" in card and "Outlier Exposure" in card


def test_detect_accepts_pil_arrays_and_tensors(tiny_wrn):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    tensor = torch.rand(2, 1, 16, 16)
    with pytest.raises(ThresholdNotCalibratedError):
        tiny_wrn.detect(tensor, require_threshold=True)
    tiny_wrn.calibrate_threshold(tensor, tpr=0.5, calibration_data="two random images")
    results = tiny_wrn.detect([rgb, gray])
    assert len(results) == 2 and set(results[0]) == {"label", "score", "ood_score", "is_ood"}
    assert results[0]["label"] in CLASSES and isinstance(results[0]["is_ood"], bool)
    assert results[0]["ood_score"] == pytest.approx(-results[0]["score"])  # MSP: score = -max softmax
    # The stored preprocessing is applied: detect on raw [0, 1] tensors == forward on normalised ones.
    logits = tiny_wrn(pixel_values=(tensor - 0.5) / 0.25).logits
    detected = tiny_wrn.detect(tensor)
    assert [d["score"] for d in detected] == pytest.approx(torch.softmax(logits, -1).max(-1).values.tolist())
    assert tiny_wrn.detect((tensor - 0.5) / 0.25, normalized=True) == detected
    single = tiny_wrn.detect(rgb)
    assert len(single) == 1
    with pytest.raises(ValueError, match="empty"):
        tiny_wrn.detect([])


def test_config_validation():
    # transformers 5 configs are strict dataclasses: invalid values raise StrictDataclassError naming the problem.
    with pytest.raises(StrictDataclassError, match="architecture"):
        OEImageConfig(architecture="vit")
    with pytest.raises(StrictDataclassError, match="6n \\+ 4"):
        OEImageConfig(depth=12)
    with pytest.raises(StrictDataclassError, match="image_mean"):
        OEImageConfig(num_channels=3, image_mean=[0.5], image_std=[0.5, 0.5, 0.5])
    with pytest.raises(StrictDataclassError, match="torchvision_model"):
        OEImageConfig(architecture="torchvision")
    # An unregistered score name is accepted (a detector saved with a custom score still loads); using it fails.
    detector = OEImageClassifier(OEImageConfig(ood_score="nonsense", depth=10, widen_factor=1))
    with pytest.raises(ValueError, match="Unknown OOD score"):
        detector.ood_scores_from_logits(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="num_labels >= 2"):
        OEImageClassifier(OEImageConfig(num_labels=1))


def test_torchvision_detector_round_trip(tmp_path):
    torch.manual_seed(0)
    model = OEImageClassifier.from_torchvision("mobilenet_v3_small", num_labels=4, num_channels=1, image_size=32)
    assert model.config.architecture == "torchvision" and model.classifier.out_features == 4
    model.eval()
    x = torch.randn(2, 1, 32, 32)  # grayscale is repeated to RGB for torchvision models
    logits = model(pixel_values=x).logits
    assert logits.shape == (2, 4)
    model.save_pretrained(tmp_path)
    loaded = OEImageClassifier.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded(pixel_values=x).logits, logits)
    assert "torchvision `mobilenet_v3_small`" in (tmp_path / "README.md").read_text()


def test_for_dataset_takes_the_dataset_format():
    model = OEImageClassifier.for_dataset("cifar10", classes=[str(i) for i in range(10)], depth=10, widen_factor=1)
    c = model.config
    assert (c.num_channels, c.image_size, c.depth, c.dropout) == (3, 32, 10, 0.3)
    assert c.image_mean == pytest.approx([125.3 / 255, 123.0 / 255, 113.9 / 255])


IMAGE_PUSH_CHILD = """
import json, torch
from transformers import AutoModelForImageClassification
from oe_text.vision import OEImageClassifier

torch.manual_seed(0)
model = OEImageClassifier.from_wrn(depth=10, widen_factor=1, num_channels=1, image_size=28,
                                   id2label=[str(i) for i in range(10)]).eval()
images = torch.rand(6, 1, 28, 28)
model.calibrate_threshold(model.compute_ood_scores(images, normalized=True), tpr=0.5, calibration_data="toy")
with torch.no_grad():
    reference = model(pixel_values=images).logits
commit = model.push_to_hub("user/tiny-image-oe")
loaded = OEImageClassifier.from_pretrained("user/tiny-image-oe")
auto = AutoModelForImageClassification.from_pretrained("user/tiny-image-oe")
with torch.no_grad():
    same = torch.equal(loaded(pixel_values=images).logits, reference)
    same_auto = torch.equal(auto(pixel_values=images).logits, reference)
print(json.dumps({"commit": commit.oid, "same": same, "same_auto": same_auto,
                  "threshold": [model.config.ood_threshold, loaded.config.ood_threshold]}))
"""


def test_image_detector_push_to_local_hub_then_load_by_repo_id(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from hub_server import FakeHub
    from test_push_to_hub import child_env

    with FakeHub() as hub:
        result = subprocess.run(
            [sys.executable, "-c", IMAGE_PUSH_CHILD],
            env=child_env(hub, tmp_path / "hf_home"),
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        out = json.loads(result.stdout.strip().splitlines()[-1])
        repo = hub.repos["user/tiny-image-oe"]
        assert out["same"] and out["same_auto"] and out["commit"] == repo.head
        assert out["threshold"][0] == out["threshold"][1] is not None
        assert sorted(repo.files) == ["README.md", "config.json", "model.safetensors"]
        assert 'from_pretrained("user/tiny-image-oe")' in repo.files["README.md"].decode()


def test_feature_scores_round_trip_for_image_detectors(tiny_wrn, tmp_path):
    torch.manual_seed(1)
    train = torch.rand(24, 1, 16, 16)
    labels = [0, 1, 2] * 8
    validation, outliers = torch.rand(10, 1, 16, 16), torch.rand(10, 1, 16, 16) * 0.2
    tiny_wrn.fit_ood_score("knn", train, k=3, fitted_on="toy")
    tiny_wrn.fit_ood_score("mahalanobis", train, labels=labels, reg=1e-2)
    tiny_wrn.fit_ood_score("combined", validation, outliers=outliers, components=["msp", "knn", "mahalanobis"])
    assert tiny_wrn.config.ood_score == "combined"
    with pytest.raises(ValueError, match="has no pretrained feature encoder"):
        tiny_wrn.fit_ood_score("knn", train, features="pretrained", name="knn_pre")
    tiny_wrn.calibrate_threshold(validation, tpr=0.8, calibration_data="toy")
    probe = torch.cat([validation, outliers])
    before = tiny_wrn.detect(probe)
    tiny_wrn.save_pretrained(tmp_path)
    for loaded in (
        OEImageClassifier.from_pretrained(tmp_path),
        AutoModelForImageClassification.from_pretrained(tmp_path),
    ):
        assert loaded.config.ood_fitted_scores.keys() == {"knn", "mahalanobis", "combined"}
        assert loaded.detect(probe) == before
