import json

import numpy as np
import pytest
import torch
from transformers import PretrainedConfig

from oe_text.detection import (
    DETECTION_CONFIG_DEFAULTS,
    OODDetectorMixin,
    ThresholdNotCalibratedError,
    describe_threshold,
    validate_detection_config,
)
from oe_text.scores import energy_score, msp_score


class LogitDetector(OODDetectorMixin):
    """A detector whose "model" is a fixed linear map, to test the mixin without any text machinery."""

    def __init__(self, **config_kwargs):
        kwargs = {**DETECTION_CONFIG_DEFAULTS, **config_kwargs}
        self.config = PretrainedConfig(id2label={0: "neg", 1: "pos", 2: "neutral"}, **kwargs)
        self.weight = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))

    def compute_ood_scores(self, inputs, **kwargs):
        return self.ood_scores_from_logits(torch.as_tensor(inputs, dtype=torch.float32) @ self.weight)


@pytest.mark.parametrize("tpr", [0.95, 0.9, 0.8, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("n", [7, 100, 1013])
def test_calibration_flags_one_minus_tpr_within_one_example(tpr, n):
    scores = np.random.default_rng(n).normal(size=n)
    det = LogitDetector()
    thr = det.calibrate_threshold(scores, tpr=tpr, calibration_data={"dataset": "toy", "split": "validation"})
    flagged = int((scores > thr).sum())
    assert abs(flagged - (1 - tpr) * n) <= 1
    assert det.config.ood_threshold == thr
    assert det.config.threshold_tpr == tpr
    calib = det.config.threshold_calibration
    assert calib["dataset"] == "toy" and calib["split"] == "validation" and calib["n_examples"] == n
    assert calib["fraction_flagged"] == pytest.approx(flagged / n)
    assert calib["ood_score"] == "msp" and calib["ood_temperature"] == 1.0


def test_calibration_known_scores_exact_threshold():
    det = LogitDetector()
    scores = np.random.default_rng(0).permutation(100).astype(float)  # 0..99
    # Keeping 95% of 100 flags exactly the 5 highest (95..99): the threshold is the 95th smallest, 94.
    assert det.calibrate_threshold(scores, tpr=0.95) == 94.0
    assert det.ood_decisions(scores).count(True) == 5
    # Lists and tensors of scores are accepted too.
    assert det.calibrate_threshold(torch.arange(10.0), tpr=0.8) == 7.0
    assert det.calibrate_threshold([3, 1, 2, 0], tpr=0.75) == 2.0


def test_calibration_from_raw_inputs_uses_compute_ood_scores():
    det = LogitDetector()
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(1))
    thr = det.calibrate_threshold(x.tolist(), tpr=0.9, calibration_data="toy-features")
    scores = msp_score(x @ det.weight)
    assert thr == pytest.approx(np.sort(scores)[179])
    assert (scores > thr).sum() == 20
    assert det.config.threshold_calibration["dataset"] == "toy-features"


def test_calibrate_with_other_score_switches_config():
    det = LogitDetector()
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(2))
    logits = x @ det.weight
    thr = det.calibrate_threshold(x.tolist(), tpr=0.9, ood_score="energy", temperature=2.0)
    assert det.config.ood_score == "energy" and det.config.ood_temperature == 2.0
    assert thr == pytest.approx(np.sort(energy_score(logits, temperature=2.0))[44])
    out = det.detections_from_logits(logits)
    np.testing.assert_allclose([d["ood_score"] for d in out], energy_score(logits, temperature=2.0))


def test_detections_from_logits_fields_and_types():
    det = LogitDetector(ood_threshold=-0.6)
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.1, 0.0, 0.05], [0.0, 0.0, 3.0]])
    out = det.detections_from_logits(logits)
    assert len(out) == 3
    for d in out:
        assert set(d) == {"label", "score", "ood_score", "is_ood"}
        assert isinstance(d["label"], str) and isinstance(d["score"], float)
        assert isinstance(d["ood_score"], float) and isinstance(d["is_ood"], bool)
    assert [d["label"] for d in out] == ["neg", "neg", "neutral"]
    probs = torch.softmax(logits.double(), -1).max(-1).values
    np.testing.assert_allclose([d["score"] for d in out], probs.numpy())
    np.testing.assert_allclose([d["ood_score"] for d in out], -probs.numpy())
    assert [d["is_ood"] for d in out] == [False, True, False]
    # An explicit threshold overrides the stored one.
    assert [d["is_ood"] for d in det.detections_from_logits(logits, threshold=-0.99)] == [True, True, True]


def test_unset_threshold_gives_none_or_raises():
    det = LogitDetector()
    logits = torch.randn(4, 3)
    assert [d["is_ood"] for d in det.detections_from_logits(logits)] == [None] * 4
    with pytest.raises(ThresholdNotCalibratedError, match="calibrate_threshold"):
        det.detections_from_logits(logits, require_threshold=True)
    assert "No decision threshold" in describe_threshold(det.config)


def test_stale_threshold_is_refused_and_set_ood_score_clears_it():
    det = LogitDetector()
    det.calibrate_threshold(np.linspace(-1, -0.3, 20), tpr=0.9)
    det.config.ood_score = "energy"  # changed behind the detector's back
    with pytest.raises(ValueError, match="calibrated with ood_score='msp'"):
        det.detections_from_logits(torch.randn(2, 3))
    det.config.ood_score = "msp"
    det.set_ood_score("max_logit")
    assert det.config.ood_threshold is None and det.config.threshold_calibration is None


def test_detection_fields_round_trip_json():
    det = LogitDetector()
    det.calibrate_threshold(np.arange(40.0), tpr=0.95, calibration_data={"dataset": "d", "split": "validation"})
    restored = PretrainedConfig.from_dict(json.loads(det.config.to_json_string()))
    for name in DETECTION_CONFIG_DEFAULTS:
        assert getattr(restored, name) == getattr(det.config, name)
    text = describe_threshold(restored)
    assert "95% of in-distribution" in text and "dataset=d, split=validation, 40 examples" in text


def test_bad_inputs_give_clear_errors():
    det = LogitDetector()
    with pytest.raises(ValueError, match="tpr"):
        det.calibrate_threshold(np.arange(5.0), tpr=0.0)
    with pytest.raises(ValueError, match="empty"):
        det.calibrate_threshold(np.array([]), tpr=0.9)
    with pytest.raises(ValueError, match="Unknown OOD score"):
        det.set_ood_score("nope")
    with pytest.raises(TypeError, match="calibration_data"):
        det.calibrate_threshold(np.arange(5.0), calibration_data=3)
    with pytest.raises(ValueError, match="threshold"):
        det.detections_from_logits(torch.randn(2, 3), threshold=float("nan"))
    bad = PretrainedConfig(**{**DETECTION_CONFIG_DEFAULTS, "ood_temperature": 0})
    with pytest.raises(ValueError, match="ood_temperature"):
        validate_detection_config(bad)
    with pytest.raises(AttributeError, match="ood_threshold"):
        validate_detection_config(PretrainedConfig(ood_score="msp"))
    with pytest.raises(NotImplementedError, match="precomputed scores"):
        OODDetectorMixin.compute_ood_scores(det, ["text"])
