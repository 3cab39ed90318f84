"""`OODProtocol`: the protocol settings carried once through evaluation, the CLI and model cards."""

import argparse

import numpy as np
import pytest

from oe_text import OODProtocol
from oe_text.cli import evaluation_settings
from oe_text.evaluation import evaluate_ood_from_logits, evaluate_ood_from_scores, plan_ood_subsets
from oe_text.modelcard import _protocol_sentence


def test_plan_is_the_same_as_plan_ood_subsets():
    protocol = OODProtocol(num_subsets=4, ood_to_id_ratio=0.25, seed=3, max_ood_samples=500)
    plan = protocol.plan(200, {"big": 10_000, "small": 30})
    flat = plan_ood_subsets(200, {"big": 10_000, "small": 30}, num_subsets=4, ood_to_id_ratio=0.25, seed=3,
                            max_ood_samples=500)  # fmt: skip
    assert plan_ood_subsets(200, {"big": 10_000, "small": 30}, protocol=protocol).subsets.keys() == {"big", "small"}
    for name in ("big", "small"):
        assert all(np.array_equal(a, b) for a, b in zip(plan.subsets[name], flat.subsets[name]))
    assert protocol.subset_size(200) == plan.subset_size("big") == 50 and protocol.subset_size(3) == 1
    assert plan.subset_size("small") == 30  # a set smaller than the subset size is used whole


def test_settings_normalise_and_round_trip():
    protocol = OODProtocol(recall_level=0.95, fpr_tprs=[0.9], seed=np.int64(5))
    assert protocol.fpr_tprs == (0.95, 0.9) and isinstance(protocol.seed, int)
    settings = protocol.settings()
    assert settings == {"protocol": "paper", "num_subsets": 10, "ood_to_id_ratio": 0.2, "seed": 5,
                        "fpr_tprs": [0.95, 0.9], "recall_level": 0.95, "fpr_method": "paper",
                        "max_ood_samples": None}  # fmt: skip
    assert OODProtocol.from_settings(settings) == protocol
    assert OODProtocol.from_settings({"seed": 7, "dataset": "trec"}) == OODProtocol(seed=7)  # other keys ignored
    full = OODProtocol(protocol="full", num_subsets=3).settings()
    assert full["num_subsets"] == 1 and full["ood_to_id_ratio"] is None
    # A recorded "full" run's 1 subset does not leak into a "paper" run asked for on top of it.
    assert OODProtocol.from_settings(full, protocol="paper").num_subsets == 10
    assert OODProtocol.from_settings({"seed": 7}, seed=None).seed == 7  # None overrides keep the recorded value


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"protocol": "half"}, "protocol"),
        ({"num_subsets": 0}, "num_subsets"),
        ({"ood_to_id_ratio": 0}, "ood_to_id_ratio"),
        ({"max_ood_samples": 0}, "max_ood_samples"),
        ({"fpr_method": "best"}, "fpr_method"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OODProtocol(**kwargs)


def test_evaluation_takes_the_protocol_object_or_the_flat_arguments():
    rng = np.random.default_rng(0)
    id_logits, ood_logits = rng.normal(size=(100, 3)), {"x": rng.normal(size=(400, 3)) + 1}
    protocol = OODProtocol(num_subsets=3, seed=2, fpr_tprs=(0.95,), recall_level=0.95, max_ood_samples=200)
    with_object = evaluate_ood_from_logits(id_logits, ood_logits, protocol=protocol)
    flat = evaluate_ood_from_logits(id_logits, ood_logits, num_subsets=3, seed=2, fpr_tprs=(0.95,),
                                    recall_level=0.95, max_ood_samples=200)  # fmt: skip
    assert with_object.metrics == flat.metrics and with_object.settings == flat.settings
    assert with_object.settings["recall_level"] == 0.95 and with_object.settings["num_subsets"] == 3
    scores = evaluate_ood_from_scores({"s": id_logits[:, 0]}, {"x": {"s": ood_logits["x"][:, 0]}}, protocol=protocol)
    assert scores.settings == {k: v for k, v in with_object.settings.items() if k in scores.settings}
    # A setting given twice (in the object and as an argument) is an error, not a silent choice.
    with pytest.raises(ValueError, match="seed"):
        evaluate_ood_from_logits(id_logits, ood_logits, protocol=protocol, seed=4)


def test_cli_and_model_card_read_the_recorded_protocol():
    recorded = OODProtocol(num_subsets=3, ood_to_id_ratio=0.25, seed=9, max_ood_samples=70).settings()
    config = argparse.Namespace(oe={"evaluation": {**recorded, "dataset": "trec"}}, ood_score="msp")
    args = argparse.Namespace(id_dataset="trec", seed=None, protocol=None, max_eval_samples=None,
                              max_ood_samples=None, ood_datasets=None, label_granularity=None,
                              scores=None)  # fmt: skip
    assert evaluation_settings(args, config)["ood_protocol"] == OODProtocol.from_settings(recorded)
    args.seed, args.protocol = 1, "full"
    given = evaluation_settings(args, config)["ood_protocol"].settings()
    assert given == OODProtocol(protocol="full", seed=1, max_ood_samples=70).settings()
    sentence = _protocol_sentence({"evaluation": recorded}, "texts")
    assert "3 seeded random subsets" in sentence and "1/4 the size" in sentence and "seed 9" in sentence
    assert "10 seeded random subsets" in _protocol_sentence({"protocol": "paper"}, "texts")  # defaults if unrecorded
