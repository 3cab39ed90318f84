import math

import pytest
import torch
from torch import nn

from oe_text.vision.models import WideResNet, build_torchvision_backbone


@pytest.mark.parametrize(
    ("depth", "widen", "channels", "size"),
    [(10, 1, 1, 28), (16, 2, 3, 32), (10, 2, 3, 64)],
)
def test_wrn_forward_backward_shapes(depth, widen, channels, size):
    torch.manual_seed(0)
    net = WideResNet(depth=depth, widen_factor=widen, num_classes=7, dropout=0.3, in_channels=channels)
    x = torch.randn(5, channels, size, size, requires_grad=True)
    feats = net.forward_features(x)
    assert feats.shape == (5, 64 * widen)
    logits = net(x)
    assert logits.shape == (5, 7)
    logits.sum().backward()
    assert x.grad.shape == x.shape and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in net.parameters())


def test_wrn_40_2_matches_the_paper_architecture():
    net = WideResNet(depth=40, widen_factor=2, num_classes=10)
    # 6 blocks per group; channels 32, 64, 128; 2.2M parameters as the paper's WRN-40-2.
    assert [len(g) for g in (net.block1, net.block2, net.block3)] == [6, 6, 6]
    assert net.fc.in_features == 128
    n_params = sum(p.numel() for p in net.parameters())
    assert 2_200_000 < n_params < 2_300_000
    # Only width changes get a 1x1 shortcut: the first block of each group.
    shortcuts = [b.shortcut is not None for g in (net.block1, net.block2, net.block3) for b in g]
    assert shortcuts == [True] + [False] * 5 + [True] + [False] * 5 + [True] + [False] * 5


def test_wrn_init_is_the_reference_he_normal():
    torch.manual_seed(0)
    net = WideResNet(depth=16, widen_factor=4, num_classes=10)
    conv = net.block3[1].conv2  # 256 -> 256, 3x3
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / (9 * 256)), rel=0.05)
    assert torch.all(net.block2[0].bn1.weight == 1) and torch.all(net.block2[0].bn1.bias == 0)
    assert torch.all(net.fc.bias == 0)


def test_wrn_dropout_only_in_training():
    torch.manual_seed(0)
    net = WideResNet(depth=10, widen_factor=1, num_classes=3, dropout=0.5, in_channels=1)
    x = torch.randn(4, 1, 28, 28)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


@pytest.mark.parametrize("depth", [12, 3, 40.0])
def test_wrn_rejects_bad_depth(depth):
    with pytest.raises(ValueError, match="6n \\+ 4"):
        WideResNet(depth=depth)


def test_wrn_rejects_bad_widen_and_dropout():
    with pytest.raises(ValueError, match="widen_factor"):
        WideResNet(depth=10, widen_factor=0)
    with pytest.raises(ValueError, match="dropout"):
        WideResNet(depth=10, dropout=1.0)


def test_torchvision_backbone_drops_the_final_linear():
    torch.manual_seed(0)
    backbone, width = build_torchvision_backbone("mobilenet_v3_small")
    assert width == 1024
    assert isinstance(backbone.classifier[-1], nn.Identity)
    backbone.eval()
    assert backbone(torch.randn(2, 3, 32, 32)).shape == (2, 1024)


def test_torchvision_backbone_errors():
    with pytest.raises(ValueError, match="not a torchvision classification model"):
        build_torchvision_backbone("resnet_does_not_exist")
    with pytest.raises(ValueError, match="no final nn.Linear"):
        build_torchvision_backbone("squeezenet1_0")
    with pytest.raises(ValueError, match="num_classes"):
        build_torchvision_backbone("resnet18", {"num_classes": 3})
