"""Outlier Exposure for images: baseline vs OE fine-tune, side-by-side OOD detection and calibration tables.

Offline default (CPU, about 5 minutes on 2 shared cores, see docs/vision.md; needs OE_TEXT_MIRROR): FashionMNIST
in-distribution, a WRN-10-2, Tiny ImageNet valid (28x28 grayscale) as auxiliary outliers, MNIST test, CIFAR-10 test
(grayscale) and the synthetic Gaussian / Rademacher / Blobs sets as OOD test sets:

    accelerate launch recipes/vision_oe.py --output_dir outputs/vision

The paper's CIFAR-10 setting (WRN-40-2, 100 baseline epochs, 10 OE epochs, 300K random images), on a GPU machine:

    accelerate launch recipes/vision_oe.py --dataset cifar10 --outlier_dataset /data/300K_random_images.npy \
        --output_dir outputs/cifar10_oe

See docs/vision.md and `--help` for every option (VisionRecipeArguments + OETrainingArguments).
"""

import os


# On a CPU shared with other processes, OpenMP threads that spin while waiting for each other slow training several
# times over (measured: 26-50 vs 138 images/s for WRN-10-2 on 2 busy cores); passive waiting costs little on an idle
# machine and nothing on a GPU. Must be set before torch starts its thread pool; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from oe_text.vision.recipe import main  # noqa: E402


if __name__ == "__main__":
    main()
