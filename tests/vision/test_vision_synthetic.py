import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from oe_text.vision.synthetic import (
    SYNTHETIC_OOD,
    blob_images,
    gaussian_noise_images,
    make_synthetic_images,
    rademacher_noise_images,
    uniform_noise_images,
)


@pytest.mark.parametrize("name", sorted(SYNTHETIC_OOD))
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_shape_range_dtype_and_seed(name, channels, size):
    x = make_synthetic_images(name, 50, num_channels=channels, image_size=size, seed=3)
    assert x.shape == (50, channels, size, size)
    assert x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, make_synthetic_images(name, 50, num_channels=channels, image_size=size, seed=3))
    assert not torch.equal(x, make_synthetic_images(name, 50, num_channels=channels, image_size=size, seed=4))


def test_gaussian_is_the_reference_noise_in_pixel_space():
    # Reference: N(0, 0.5^2) clipped to [-1, 1]; mapped by (x + 1) / 2 that is N(0.5, 0.25^2) clipped to [0, 1].
    x = gaussian_noise_images(200, 3, 32, seed=0).numpy()
    assert x.mean() == pytest.approx(0.5, abs=0.005)
    clipped = np.mean((x == 0) | (x == 1))
    assert clipped == pytest.approx(2 * 0.02275, abs=0.003)  # P(|z| > 2)
    inner = x[(x > 0) & (x < 1)]
    assert inner.std() == pytest.approx(0.2199, abs=0.004)  # std of N(0.5, 0.25^2) truncated at 2 sigma


def test_rademacher_is_balanced_zero_one():
    x = rademacher_noise_images(100, 3, 32, seed=1)
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    assert x.mean().item() == pytest.approx(0.5, abs=0.01)


def test_uniform_noise():
    x = uniform_noise_images(100, 1, 28, seed=0)
    assert x.mean().item() == pytest.approx(0.5, abs=0.01)


def test_blobs_follow_the_reference_recipe():
    x = blob_images(64, 3, 32, seed=7).numpy()
    on = x[x > 0]
    # Background exactly 0, blobs keep their blurred values in [0.75, 1].
    assert on.min() >= 0.75 and on.max() <= 1.0
    assert 0.05 < (x > 0).mean() < 0.6
    # Recompute with the reference's steps (skimage.filters.gaussian == scipy gaussian_filter, 'nearest', 4 sigma).
    rng = np.random.default_rng(7)
    raw = rng.binomial(1, 0.7, size=(64, 3, 32, 32)).astype(np.float32)
    ref = np.stack([gaussian_filter(img, sigma=1.5, mode="nearest", truncate=4.0) for img in raw])
    ref[ref < 0.75] = 0
    np.testing.assert_allclose(x, ref, atol=1e-6)
    # Blurring across the channel axis makes the colour channels of a blob nearly equal.
    both = (x[:, 0] > 0) & (x[:, 1] > 0)
    assert np.abs(x[:, 0][both] - x[:, 1][both]).mean() < 0.05


def test_blob_threshold_zero_keeps_the_blurred_bernoulli_mean():
    x = blob_images(32, 1, 28, seed=0, threshold=0.0)
    assert x.mean().item() == pytest.approx(0.7, abs=0.01)


def test_errors():
    with pytest.raises(ValueError, match="Unknown synthetic OOD set"):
        make_synthetic_images("perlin", 4)
    with pytest.raises(ValueError, match="`n` must be a positive int"):
        gaussian_noise_images(0)
    with pytest.raises(ValueError, match="`p`"):
        blob_images(2, p=1.5)
