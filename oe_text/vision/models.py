"""Image classifier backbones: the paper's Wide Residual Networks and any torchvision classification model.

`WideResNet` follows the WRN-d-k of Zagoruyko & Komodakis (2016) as used in the Outlier Exposure paper's vision code
(WRN-40-2 with dropout 0.3 for CIFAR, WRN-16-4 with dropout 0.4 for SVHN): a 3x3 stem with 16 channels, three groups
of `(depth - 4) / 6` pre-activation basic blocks with 16k, 32k and 64k channels (strides 1, 2, 2), BN-ReLU, global
average pooling and a linear layer. The pooling is adaptive, so the same network runs on 28x28 and 64x64 inputs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as hf_init


__all__ = ["WideResNet", "build_torchvision_backbone", "init_wrn_weights"]


class WideBasicBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3(stride)-BN-ReLU-dropout-conv3x3, plus the shortcut.

    When the block changes the width, the shortcut is a 1x1 convolution applied to the *activated* input (BN-ReLU
    first), as in the reference implementation; otherwise it is the identity on the raw input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.equal_in_out = in_channels == out_channels and stride == 1
        self.shortcut = (
            None if self.equal_in_out else nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(activated)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(nn.Module):
    """WRN-`depth`-`widen_factor` image classifier (Zagoruyko & Komodakis 2016), as in the Outlier Exposure paper.

    Args:
        depth (`int`, *optional*, defaults to 40): total depth, `6n + 4` (10, 16, 22, 28, 40, ...).
        widen_factor (`int`, *optional*, defaults to 2): width multiplier `k` (channels 16k, 32k, 64k).
        num_classes (`int`, *optional*, defaults to 10): outputs of the linear layer.
        dropout (`float`, *optional*, defaults to 0.3): dropout between the two convolutions of each block.
        in_channels (`int`, *optional*, defaults to 3): image channels (1 for grayscale).
    """

    def __init__(
        self,
        depth: int = 40,
        widen_factor: int = 2,
        num_classes: int = 10,
        dropout: float = 0.3,
        in_channels: int = 3,
    ):
        super().__init__()
        check_wrn_args(depth, widen_factor, dropout)
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"`num_classes` and `in_channels` must be >= 1, got {num_classes} and {in_channels}.")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        groups = []
        for group, stride in enumerate((1, 2, 2)):
            blocks = [
                WideBasicBlock(
                    widths[group] if i == 0 else widths[group + 1], widths[group + 1], stride if i == 0 else 1, dropout
                )
                for i in range(n)
            ]
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self.num_features = widths[3]
        self.apply(init_wrn_weights)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the globally average-pooled activations, shape `(batch, 64 * widen_factor)`."""
        out = self.block3(self.block2(self.block1(self.conv1(pixel_values))))
        out = F.relu(self.bn(out))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(pixel_values))


def check_wrn_args(depth: int, widen_factor: int, dropout: float) -> None:
    """Raise a `ValueError` naming the argument when WRN hyper-parameters are invalid."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"WRN `depth` must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth!r}.")
    if isinstance(widen_factor, bool) or not isinstance(widen_factor, int) or widen_factor < 1:
        raise ValueError(f"WRN `widen_factor` must be a positive int, got {widen_factor!r}.")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"WRN `dropout` must be in [0, 1), got {dropout!r}.")


def init_wrn_weights(module: nn.Module) -> None:
    """The reference WRN initialisation: He-normal (fan-out) convolutions, unit BN, zero linear bias.

    Uses the guarded `transformers.initialization` functions, which leave parameters loaded by `from_pretrained`
    alone.
    """
    if isinstance(module, nn.Conv2d):
        # N(0, 2 / (k * k * out_channels)), the reference's explicit formula.
        n = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        hf_init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / n))
        if module.bias is not None:
            hf_init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        hf_init.ones_(module.weight)
        hf_init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        # PyTorch's default weight init (kept by the reference), zero bias.
        bound = 1.0 / math.sqrt(module.in_features)
        hf_init.uniform_(module.weight, -bound, bound)
        hf_init.zeros_(module.bias)


def build_torchvision_backbone(
    name: str, model_kwargs: dict[str, Any] | None = None, weights: str | None = None
) -> tuple[nn.Module, int]:
    """A torchvision classification model without its final linear layer, and that layer's input width.

    The last `nn.Linear` of the model (in registration order: `fc` of ResNets, `classifier[-1]` of VGG/EfficientNet/
    MobileNet/ConvNeXt, `heads.head` of ViT, `head` of Swin, ...) is replaced by `nn.Identity`, so the backbone maps
    images to penultimate features; the detector puts its own `num_labels`-way linear head on top. Rebuilding from
    the same `name` and `model_kwargs` (with `weights=None`) gives the same architecture, which is how a saved
    detector is restored.

    Args:
        name (`str`): a torchvision classification model name (`torchvision.models.list_models(torchvision.models)`),
            e.g. `"resnet18"`.
        model_kwargs (`dict`, *optional*): keyword arguments of the model builder (e.g. `{"dropout": 0.2}`).
        weights (`str`, *optional*): torchvision weights to start from, e.g. `"DEFAULT"` or `"IMAGENET1K_V1"`
            (downloaded by torchvision); `None` for random initialisation.

    Returns:
        `(backbone, num_features)`.
    """
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise ValueError(
            f"{name!r} is not a torchvision classification model; available: {', '.join(sorted(available))}."
        )
    kwargs = dict(model_kwargs or {})
    for reserved in ("weights", "num_classes"):
        if reserved in kwargs:
            raise ValueError(
                f"`model_kwargs` must not contain {reserved!r}: the detector sets the number of labels itself and "
                "pretrained weights are passed as `weights=`."
            )
    model = torchvision.models.get_model(name, weights=weights, **kwargs)
    parent, attr, head = None, None, None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            head, (parent, _, attr) = module, module_name.rpartition(".")
    if head is None:
        raise ValueError(
            f"torchvision model {name!r} has no final nn.Linear layer to replace with the detector's head (e.g. "
            "SqueezeNet classifies with a convolution); choose another architecture."
        )
    owner = model.get_submodule(parent) if parent else model
    setattr(owner, attr, nn.Identity())
    return model, head.in_features
