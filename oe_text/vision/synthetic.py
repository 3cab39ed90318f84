"""The Outlier Exposure paper's synthetic OOD test sets for images, generated in code with a seed.

Every generator returns a float32 tensor of shape `(n, num_channels, image_size, image_size)` with values in
`[0, 1]`, i.e. *pixel space before normalisation*; the recipe then normalises them with the in-distribution mean/std
like any other image. The reference code (`CIFAR/test.py` of hendrycks/outlier-exposure) builds the same images in
`[-1, 1]` and feeds them to the network without normalisation; we map its values to `[0, 1]` with `(x + 1) / 2`:

* **Gaussian**: i.i.d. `N(0, 0.5^2)` clipped to `[-1, 1]` in the reference, i.e. `N(0.5, 0.25^2)` clipped to `[0, 1]`.
* **Rademacher**: i.i.d. `-1` / `+1` with probability 1/2 in the reference, i.e. `0` / `1`.
* **Blobs**: i.i.d. Bernoulli(0.7) pixels, blurred with a Gaussian of sigma 1.5 over the height, width *and* channel
  axes (the reference calls `skimage.filters.gaussian` on an HxWx3 array without a channel axis, with 'nearest'
  borders), then values below 0.75 set to 0: amorphous shapes with definite edges on a black background.
* **Uniform** (the paper's validation noise): i.i.d. `U(-1, 1)`, i.e. `U(0, 1)`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


__all__ = [
    "SYNTHETIC_OOD",
    "blob_images",
    "gaussian_noise_images",
    "make_synthetic_images",
    "rademacher_noise_images",
    "uniform_noise_images",
]


def _check_shape(n: int, num_channels: int, image_size: int) -> None:
    for name, value in (("n", n), ("num_channels", num_channels), ("image_size", image_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}.")


def gaussian_noise_images(
    n: int, num_channels: int = 3, image_size: int = 32, seed: int = 0, mean: float = 0.5, std: float = 0.25
) -> torch.Tensor:
    """Gaussian noise images: i.i.d. `clip(N(mean, std^2), 0, 1)` pixels.

    Args:
        n (`int`): number of images.
        num_channels (`int`, *optional*, defaults to 3): channels.
        image_size (`int`, *optional*, defaults to 32): height = width.
        seed (`int`, *optional*, defaults to 0): seed of `numpy.random.default_rng`.
        mean (`float`, *optional*, defaults to 0.5): mean in `[0, 1]` pixel space.
        std (`float`, *optional*, defaults to 0.25): standard deviation (the reference's 0.5 in `[-1, 1]` space).

    Returns:
        `torch.Tensor` of shape `(n, num_channels, image_size, image_size)`, float32 in `[0, 1]`.
    """
    _check_shape(n, num_channels, image_size)
    if not std > 0:
        raise ValueError(f"`std` must be > 0, got {std!r}.")
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=mean, scale=std, size=(n, num_channels, image_size, image_size))
    return torch.from_numpy(np.clip(x, 0.0, 1.0).astype(np.float32))


def rademacher_noise_images(n: int, num_channels: int = 3, image_size: int = 32, seed: int = 0) -> torch.Tensor:
    """Rademacher noise images: every pixel 0 or 1 with probability 1/2 (the reference's -1 / +1).

    Args:
        n (`int`): number of images.
        num_channels (`int`, *optional*, defaults to 3): channels.
        image_size (`int`, *optional*, defaults to 32): height = width.
        seed (`int`, *optional*, defaults to 0): seed of `numpy.random.default_rng`.

    Returns:
        `torch.Tensor` of shape `(n, num_channels, image_size, image_size)`, float32 with values in `{0, 1}`.
    """
    _check_shape(n, num_channels, image_size)
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.binomial(1, 0.5, size=(n, num_channels, image_size, image_size)).astype(np.float32))


def blob_images(
    n: int,
    num_channels: int = 3,
    image_size: int = 32,
    seed: int = 0,
    p: float = 0.7,
    sigma: float = 1.5,
    threshold: float = 0.75,
) -> torch.Tensor:
    """Blob images: Bernoulli(`p`) pixels, Gaussian blur of `sigma` over height, width and channels, values below
    `threshold` set to 0.

    The blur is `scipy.ndimage.gaussian_filter` with 'nearest' borders and truncation at 4 sigma, which is what the
    reference's `skimage.filters.gaussian` call computes; blurring across the channel axis too (as the reference does)
    makes the colour channels of a blob nearly equal. For one channel it is a 2-D blur.

    Args:
        n (`int`): number of images.
        num_channels (`int`, *optional*, defaults to 3): channels.
        image_size (`int`, *optional*, defaults to 32): height = width.
        seed (`int`, *optional*, defaults to 0): seed of `numpy.random.default_rng`.
        p (`float`, *optional*, defaults to 0.7): probability that a pixel is on before blurring.
        sigma (`float`, *optional*, defaults to 1.5): standard deviation of the blur, in pixels.
        threshold (`float`, *optional*, defaults to 0.75): blurred values below it become 0.

    Returns:
        `torch.Tensor` of shape `(n, num_channels, image_size, image_size)`, float32: 0 or in `[threshold, 1]`.
    """
    from scipy.ndimage import gaussian_filter

    _check_shape(n, num_channels, image_size)
    if not 0 <= p <= 1:
        raise ValueError(f"`p` must be in [0, 1], got {p!r}.")
    if not sigma > 0:
        raise ValueError(f"`sigma` must be > 0, got {sigma!r}.")
    rng = np.random.default_rng(seed)
    x = rng.binomial(1, p, size=(n, num_channels, image_size, image_size)).astype(np.float32)
    # Axis 0 indexes images: never blur across them.
    x = gaussian_filter(x, sigma=(0.0, sigma, sigma, sigma), mode="nearest", truncate=4.0)
    x[x < threshold] = 0.0
    return torch.from_numpy(np.clip(x, 0.0, 1.0).astype(np.float32))


def uniform_noise_images(n: int, num_channels: int = 3, image_size: int = 32, seed: int = 0) -> torch.Tensor:
    """Uniform noise images: i.i.d. `U(0, 1)` pixels (the paper's validation noise, `U(-1, 1)` in its code).

    Arguments as `rademacher_noise_images`. Returns `torch.Tensor` of shape `(n, num_channels, image_size,
    image_size)`, float32 in `[0, 1)`.
    """
    _check_shape(n, num_channels, image_size)
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(size=(n, num_channels, image_size, image_size)).astype(np.float32))


#: Synthetic OOD generators by name: `fn(n, num_channels, image_size, seed) -> tensor in [0, 1]`.
SYNTHETIC_OOD: dict[str, Callable[..., torch.Tensor]] = {
    "gaussian": gaussian_noise_images,
    "rademacher": rademacher_noise_images,
    "blobs": blob_images,
    "uniform": uniform_noise_images,
}


def make_synthetic_images(name: str, n: int, num_channels: int = 3, image_size: int = 32, seed: int = 0):
    """Generate the synthetic OOD set `name` (`gaussian`, `rademacher`, `blobs` or `uniform`).

    Args:
        name (`str`): a key of `SYNTHETIC_OOD`.
        n (`int`): number of images.
        num_channels (`int`, *optional*, defaults to 3): channels.
        image_size (`int`, *optional*, defaults to 32): height = width.
        seed (`int`, *optional*, defaults to 0): seed.

    Returns:
        `torch.Tensor` of shape `(n, num_channels, image_size, image_size)`, float32 in `[0, 1]`.
    """
    if name not in SYNTHETIC_OOD:
        raise ValueError(f"Unknown synthetic OOD set {name!r}; known: {sorted(SYNTHETIC_OOD)}.")
    return SYNTHETIC_OOD[name](n, num_channels=num_channels, image_size=image_size, seed=seed)
