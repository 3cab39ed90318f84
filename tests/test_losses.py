import math

import pytest
import torch

from oe_text import energy_margin_loss, free_energy, outlier_exposure_loss


def test_uniform_logits_give_the_minimum_log_k():
    for k in (2, 10, 50):
        logits = torch.full((4, k), 3.7)
        assert outlier_exposure_loss(logits).item() == pytest.approx(math.log(k), abs=1e-6)


def test_confident_logits_cost_more_and_match_the_definition():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    expected = -(torch.log_softmax(logits, -1).mean(-1)).mean()  # H(U, p) = -1/K sum log p_k
    value = outlier_exposure_loss(logits)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert value.item() > math.log(3) + 1.0


def test_minimum_is_reached_only_at_uniform_outputs():
    torch.manual_seed(0)
    logits = torch.randn(64, 5)
    assert (logits.logsumexp(-1) - logits.mean(-1) > math.log(5)).all()
    assert outlier_exposure_loss(logits).item() > math.log(5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_half_precision_values_and_finite_gradients(dtype):
    torch.manual_seed(0)
    ref = (torch.randn(8, 4) * 30).to(dtype)
    logits = ref.clone().requires_grad_(True)
    loss = outlier_exposure_loss(logits)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(logits.grad).all()
    expected = outlier_exposure_loss(ref.float())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_large_logits_do_not_overflow():
    logits = torch.tensor([[1e4, -1e4]], dtype=torch.float16)
    assert outlier_exposure_loss(logits).item() == pytest.approx(1e4, rel=1e-3)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="num_classes"):
        outlier_exposure_loss(torch.zeros(3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        outlier_exposure_loss([[0.0, 1.0]])


def test_energy_margin_loss_hand_computed():
    id_logits = torch.tensor([[0.0, 0.0]])  # E = -log 2
    out_logits = torch.tensor([[10.0, 10.0]])  # E = -(10 + log 2)
    e_in, e_out = -math.log(2), -(10 + math.log(2))
    loss = energy_margin_loss(id_logits, out_logits, m_in=-5.0, m_out=-3.0)
    assert free_energy(id_logits).item() == pytest.approx(e_in, abs=1e-6)
    expected = max(e_in + 5.0, 0) ** 2 + max(-3.0 - e_out, 0) ** 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Inside both margins (ID energy below m_in, outlier energy above m_out) the loss vanishes.
    assert energy_margin_loss(out_logits, id_logits, m_in=-5.0, m_out=-3.0).item() == 0.0


def test_energy_margin_loss_validates_margins():
    with pytest.raises(ValueError, match="m_out"):
        energy_margin_loss(torch.zeros(1, 2), torch.zeros(1, 2), m_in=-3.0, m_out=-7.0)
