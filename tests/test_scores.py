import math

import numpy as np
import pytest
import torch

from oe_text.scores import (
    LOGIT_SCORES,
    compute_score,
    energy_score,
    entropy_score,
    get_score_fn,
    kl_uniform_score,
    max_logit_score,
    max_softmax_probability,
    msp_score,
    register_score,
)


LOGITS = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [10.0, -5.0, 1.0]])


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_scores_match_their_formulas():
    p = _softmax(LOGITS)
    np.testing.assert_allclose(msp_score(LOGITS), -p.max(1))
    np.testing.assert_allclose(max_logit_score(LOGITS), -LOGITS.max(1))
    np.testing.assert_allclose(energy_score(LOGITS), -np.log(np.exp(LOGITS).sum(1)))
    np.testing.assert_allclose(entropy_score(LOGITS), -(p * np.log(p)).sum(1))
    kl = (np.log(1 / 3) - np.log(p)).mean(1)  # KL(U || p) = sum_k 1/K log((1/K) / p_k)
    np.testing.assert_allclose(kl_uniform_score(LOGITS), -kl, atol=1e-12)
    np.testing.assert_allclose(max_softmax_probability(LOGITS), p.max(1))
    assert msp_score(LOGITS).dtype == np.float64 and msp_score(LOGITS).shape == (3,)


def test_temperature():
    p2 = _softmax(LOGITS / 2)
    np.testing.assert_allclose(msp_score(LOGITS, temperature=2.0), -p2.max(1))
    np.testing.assert_allclose(energy_score(LOGITS, temperature=2.0), -2 * np.log(np.exp(LOGITS / 2).sum(1)))
    np.testing.assert_allclose(max_logit_score(LOGITS, temperature=2.0), -LOGITS.max(1) / 2)
    for fn in LOGIT_SCORES.values():
        with pytest.raises(ValueError, match="temperature"):
            fn(LOGITS, temperature=0.0)


@pytest.mark.parametrize("name", sorted(LOGIT_SCORES))
def test_uniform_output_is_most_anomalous(name):
    # Row 1 (all logits 0: uniform softmax, smallest maximum logit) is the most anomalous under every score, and the
    # very confident row 2 the least.
    s = compute_score(name, LOGITS)
    assert s[1] > s[0] and s[1] > s[2]
    assert s[0] > s[2]


def test_bounds():
    uniform = np.zeros((1, 4))
    assert msp_score(uniform)[0] == pytest.approx(-0.25)
    assert kl_uniform_score(uniform)[0] == pytest.approx(0.0)
    assert entropy_score(uniform)[0] == pytest.approx(math.log(4))


def test_torch_inputs_any_dtype():
    z = torch.tensor(LOGITS, dtype=torch.bfloat16, requires_grad=False)
    np.testing.assert_allclose(msp_score(z), msp_score(LOGITS), atol=1e-2)
    z32 = torch.tensor(LOGITS, dtype=torch.float32, requires_grad=True)
    np.testing.assert_allclose(energy_score(z32), energy_score(LOGITS), rtol=1e-6)
    np.testing.assert_allclose(msp_score(LOGITS.tolist()), msp_score(LOGITS))


def test_bad_logits():
    with pytest.raises(ValueError, match="NaN or inf"):
        msp_score([[0.0, np.nan]])
    with pytest.raises(ValueError, match="NaN or inf"):
        energy_score(torch.tensor([[0.0, float("inf")]]))
    with pytest.raises(ValueError, match=r"shape \(n, num_classes\)"):
        msp_score([0.1, 0.2])
    with pytest.raises(ValueError, match="num_classes >= 2"):
        msp_score([[0.1], [0.2]])
    with pytest.raises(ValueError, match="array of numbers"):
        msp_score([["a", "b"]])


def test_registry():
    assert get_score_fn("msp") is msp_score
    with pytest.raises(ValueError, match="Unknown OOD score 'nope'; known logit scores"):
        compute_score("nope", LOGITS)
    register_score("neg_margin", lambda z, temperature=1.0: -np.diff(np.sort(np.asarray(z), 1)[:, -2:], axis=1)[:, 0])
    try:
        np.testing.assert_allclose(compute_score("neg_margin", LOGITS), [-2.0, 0.0, -9.0])
    finally:
        LOGIT_SCORES.pop("neg_margin")
    with pytest.raises(TypeError, match="callable"):
        register_score("bad", 3)
