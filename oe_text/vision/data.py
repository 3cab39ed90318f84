"""Image datasets for in-distribution training, OOD testing and auxiliary outliers, as `OETrainer` rows.

Every loader returns an `ImageDataset`: a map-style `torch.utils.data.Dataset` whose rows are
`{"pixel_values": FloatTensor[C, H, W], "labels": int}` (or only `pixel_values` for outliers and OOD sets), which
`OETrainer` / `transformers.Trainer` batch with `default_data_collator` and `OETrainer` stacks with the outlier batch.

Sources:

* **Named datasets** (`VISION_DATASETS`: `cifar10`, `cifar100`, `svhn`, `fashion_mnist`, `mnist`, `textures` (DTD),
  `places365`, `lsun`, `tiny_imagenet`): read with torchvision (downloaded into `root` on a normal machine) or, when
  torchvision has no copy, through the Hub-id resolver (`oe_text.hub.load_hub_dataset`). With `OE_TEXT_MIRROR` set,
  a torchvision copy under `$OE_TEXT_MIRROR/torchvision` is used when present (FashionMNIST), else the mirrored Hub
  id (`uoft-cs/cifar10` test, `ylecun/mnist` test, `zh-plus/tiny-imagenet` valid).
* **Any Hugging Face image dataset** by Hub id (image and label columns detected from the features).
* **Local files**: a folder of images (searched recursively; class labels from first-level sub-folders when every
  image is in one) or a `.npy` array of `(N, H, W[, C])` uint8 images, e.g. the paper's `300K_random_images.npy`.

Transforms (`ImageTransform`): conversion to the model's channels (RGB -> grayscale with ITU-R 601 luma, grayscale ->
RGB by repetition), resize of the shorter side + centre crop to the model's size (the paper's OOD preprocessing), for
training the paper's random crop with 4-pixel zero padding and horizontal flip, then scaling to [0, 1] and
normalisation with the in-distribution mean/std.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ..hub import MirrorMissError, is_mirrored, load_hub_dataset, mirror_root
from .synthetic import SYNTHETIC_OOD, make_synthetic_images


__all__ = [
    "DATASET_ALIASES",
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "ImageTransform",
    "VISION_DATASETS",
    "VisionDatasetSpec",
    "default_data_root",
    "get_dataset_spec",
    "load_image_folder",
    "load_numpy_images",
    "load_vision_dataset",
    "split_train_validation",
    "synthetic_ood_dataset",
    "to_image_tensor",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------------------------
# Named datasets
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisionDatasetSpec:
    """How to load a named dataset and how its images are preprocessed when it is the in-distribution.

    Attributes:
        name (`str`): registry name.
        num_channels (`int`), image_size (`int`): the native format (channels, height = width).
        mean (`tuple[float, ...]`), std (`tuple[float, ...]`): normalisation when it is the in-distribution.
        splits (`tuple[str, ...]`): split names accepted by `load_vision_dataset`.
        torchvision_class (`str`, *optional*): class in `torchvision.datasets`.
        torchvision_marker (`str`, *optional*): path, relative to the torchvision root, that exists once the data is
            there (used to find a copy in the offline mirror).
        torchvision_can_download (`bool`): torchvision can download it (LSUN cannot).
        hub_id (`str`, *optional*), hub_config (`str`, *optional*): the Hugging Face copy.
        hub_splits (`dict[str, str]`): our split name -> the Hub split name.
        augment (`bool`): apply the paper's random crop (4-pixel padding) in training.
        hflip (`bool`): also flip horizontally in training (not for digits).
    """

    name: str
    num_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    splits: tuple[str, ...]
    torchvision_class: str | None = None
    torchvision_marker: str | None = None
    torchvision_can_download: bool = True
    hub_id: str | None = None
    hub_config: str | None = None
    hub_splits: Mapping[str, str] = field(default_factory=dict)
    augment: bool = True
    hflip: bool = True

    def torchvision_kwargs(self, split: str) -> dict[str, Any]:
        """Keyword arguments selecting `split` in the torchvision class."""
        if self.torchvision_class in ("CIFAR10", "CIFAR100", "MNIST", "FashionMNIST"):
            return {"train": split == "train"}
        if self.torchvision_class in ("SVHN", "DTD"):
            return {"split": split}
        if self.torchvision_class == "Places365":
            return {"split": "train-standard" if split == "train" else "val", "small": True}
        if self.torchvision_class == "LSUN":
            return {"classes": split}
        raise ValueError(f"{self.name} has no torchvision class.")


_CIFAR_MEAN = tuple(x / 255 for x in (125.3, 123.0, 113.9))  # the paper's values, used for CIFAR-100 too
_CIFAR_STD = tuple(x / 255 for x in (63.0, 62.1, 66.7))

VISION_DATASETS: dict[str, VisionDatasetSpec] = {
    spec.name: spec
    for spec in (
        VisionDatasetSpec(
            "cifar10", 3, 32, _CIFAR_MEAN, _CIFAR_STD, ("train", "test"), "CIFAR10", "cifar-10-batches-py",
            hub_id="uoft-cs/cifar10", hub_config="plain_text", hub_splits={"train": "train", "test": "test"},
        ),
        VisionDatasetSpec(
            "cifar100", 3, 32, _CIFAR_MEAN, _CIFAR_STD, ("train", "test"), "CIFAR100", "cifar-100-python",
            hub_id="uoft-cs/cifar100", hub_splits={"train": "train", "test": "test"},
        ),
        # The paper trains SVHN models on unnormalised [0, 1] pixels without augmentation.
        VisionDatasetSpec(
            "svhn", 3, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), ("train", "test", "extra"), "SVHN", "test_32x32.mat",
            hub_id="ufldl-stanford/svhn", hub_config="cropped_digits",
            hub_splits={"train": "train", "test": "test", "extra": "extra"}, augment=False, hflip=False,
        ),
        VisionDatasetSpec(
            "fashion_mnist", 1, 28, (0.2860,), (0.3530,), ("train", "test"), "FashionMNIST", "FashionMNIST/raw",
            hub_id="zalando-datasets/fashion_mnist", hub_splits={"train": "train", "test": "test"},
        ),
        VisionDatasetSpec(
            "mnist", 1, 28, (0.1307,), (0.3081,), ("train", "test"), "MNIST", "MNIST/raw",
            hub_id="ylecun/mnist", hub_config="mnist", hub_splits={"train": "train", "test": "test"}, hflip=False,
        ),
        VisionDatasetSpec(
            "textures", 3, 32, IMAGENET_MEAN, IMAGENET_STD, ("train", "val", "test"), "DTD", "dtd/dtd/images",
        ),
        VisionDatasetSpec(
            "places365", 3, 32, IMAGENET_MEAN, IMAGENET_STD, ("train", "val"), "Places365", "val_256",
        ),
        VisionDatasetSpec(
            "lsun", 3, 32, IMAGENET_MEAN, IMAGENET_STD, ("train", "val", "test"), "LSUN", None,
            torchvision_can_download=False,
        ),
        VisionDatasetSpec(
            "tiny_imagenet", 3, 64, (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821), ("train", "valid"),
            hub_id="zh-plus/tiny-imagenet", hub_splits={"train": "train", "valid": "valid"},
        ),
    )
}  # fmt: skip

DATASET_ALIASES = {
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "fashionmnist": "fashion_mnist",
    "fashion-mnist": "fashion_mnist",
    "dtd": "textures",
    "tiny-imagenet": "tiny_imagenet",
    "tinyimagenet": "tiny_imagenet",
}


def get_dataset_spec(name: str) -> VisionDatasetSpec:
    """The `VisionDatasetSpec` of a named dataset (aliases such as `dtd` or `fashion-mnist` accepted)."""
    key = DATASET_ALIASES.get(name.lower(), name.lower())
    if key not in VISION_DATASETS:
        raise ValueError(f"Unknown vision dataset {name!r}; known: {sorted(VISION_DATASETS)}.")
    return VISION_DATASETS[key]


def default_data_root() -> str:
    """Where torchvision downloads datasets: `$OE_TEXT_VISION_ROOT`, else `~/.cache/oe_text/torchvision`."""
    return os.environ.get("OE_TEXT_VISION_ROOT") or os.path.join(
        os.path.expanduser("~"), ".cache", "oe_text", "torchvision"
    )


# ----------------------------------------------------------------------------------------------------------------
# Transforms
# ----------------------------------------------------------------------------------------------------------------


def _is_pil(image) -> bool:
    from PIL import Image

    return isinstance(image, Image.Image)


def to_image_tensor(image, num_channels: int) -> torch.Tensor:
    """Convert a PIL image, an `(H, W[, C])` array or a `([C,] H, W)` tensor to a `(num_channels, H, W)` tensor.

    uint8 inputs stay uint8 (0-255); float inputs are taken to be in `[0, 1]`. RGB -> grayscale uses ITU-R 601 luma
    (as PIL's "L" mode); grayscale -> RGB repeats the channel; an alpha channel is dropped.
    """
    if num_channels not in (1, 3):
        raise ValueError(f"`num_channels` must be 1 or 3, got {num_channels!r}.")
    if _is_pil(image):
        return TF.pil_to_tensor(image.convert("L" if num_channels == 1 else "RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[-1] in (1, 3, 4) and image.shape[0] not in (1, 3, 4):
            image = np.ascontiguousarray(image.transpose(2, 0, 1))
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"An image must be a PIL image, a numpy array or a torch tensor, got {type(image).__name__}.")
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() != 3:
        raise ValueError(f"An image tensor must have shape (C, H, W) or (H, W), got {tuple(image.shape)}.")
    channels = image.shape[0]
    if channels == 4:
        image, channels = image[:3], 3
    if channels == num_channels:
        return image
    if channels == 3 and num_channels == 1:
        return TF.rgb_to_grayscale(image)
    if channels == 1 and num_channels == 3:
        return image.expand(3, -1, -1).contiguous()
    raise ValueError(f"Cannot convert an image with {channels} channels to {num_channels}.")


class ImageTransform:
    """Image -> normalised `FloatTensor[num_channels, image_size, image_size]`, optionally with training augmentation.

    Steps: `to_image_tensor` (channel conversion); when the size differs, resize of the shorter side to `image_size`
    and centre crop (the paper's `Resize(32) + CenterCrop(32)` for OOD sets); with `train=True`, random crop with
    `crop_padding` zero pixels on each side and (if `hflip`) a horizontal flip with probability 1/2; scaling to
    `[0, 1]`; `(x - mean) / std` per channel.

    Args:
        image_size (`int`): output height = width.
        num_channels (`int`): 1 or 3.
        mean (sequence of `float`), std (sequence of `float`): per-channel normalisation (length `num_channels`).
        train (`bool`, *optional*, defaults to `False`): apply the augmentation.
        crop_padding (`int`, *optional*, defaults to 4): padding of the random crop (0 disables the crop).
        hflip (`bool`, *optional*, defaults to `True`): random horizontal flips in training.
    """

    def __init__(
        self,
        image_size: int,
        num_channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = False,
        crop_padding: int = 4,
        hflip: bool = True,
    ):
        if len(mean) != num_channels or len(std) != num_channels:
            raise ValueError(
                f"`mean` and `std` need one value per channel ({num_channels}), got {len(mean)} and {len(std)}."
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"`std` values must be > 0, got {list(std)}.")
        if image_size < 1 or crop_padding < 0:
            raise ValueError(f"`image_size` must be >= 1 and `crop_padding` >= 0, got {image_size}, {crop_padding}.")
        self.image_size, self.num_channels = int(image_size), int(num_channels)
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.train, self.crop_padding, self.hflip = train, int(crop_padding), hflip
        augment = []
        if train and crop_padding > 0:
            augment.append(v2.RandomCrop(self.image_size, padding=self.crop_padding))
        if train and hflip:
            augment.append(v2.RandomHorizontalFlip())
        self._augment = v2.Compose(augment) if augment else None

    def __call__(self, image) -> torch.Tensor:
        x = to_image_tensor(image, self.num_channels)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = TF.center_crop(TF.resize(x, self.image_size, antialias=True), [self.image_size, self.image_size])
        if self._augment is not None:
            x = self._augment(x)
        x = TF.to_dtype(x, torch.float32, scale=True) if x.dtype == torch.uint8 else x.float()
        return TF.normalize(x, self.mean, self.std)

    def __repr__(self) -> str:
        aug = f", random crop (padding {self.crop_padding})" if self.train and self.crop_padding else ""
        aug += ", horizontal flip" if self.train and self.hflip else ""
        return (
            f"ImageTransform({self.num_channels}x{self.image_size}x{self.image_size}{aug}, "
            f"mean={[round(m, 4) for m in self.mean]}, std={[round(s, 4) for s in self.std]})"
        )

    @classmethod
    def for_dataset(cls, name: str, train: bool = False) -> ImageTransform:
        """The paper's preprocessing for the named in-distribution dataset (see `VISION_DATASETS`)."""
        spec = get_dataset_spec(name)
        return cls(
            spec.image_size,
            spec.num_channels,
            spec.mean,
            spec.std,
            train=train,
            crop_padding=4 if spec.augment else 0,
            hflip=spec.hflip and spec.augment,
        )


# ----------------------------------------------------------------------------------------------------------------
# Readers: raw (image, label) pairs from each kind of source
# ----------------------------------------------------------------------------------------------------------------


class _TorchvisionReader:
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, i: int):
        image, label = self.dataset[i]
        return image, label

    def labels(self) -> np.ndarray:
        for attr in ("targets", "labels", "_labels"):
            values = getattr(self.dataset, attr, None)
            if values is not None and len(values) == len(self.dataset):
                return np.asarray(values, dtype=np.int64)
        return np.asarray([self.dataset[i][1] for i in range(len(self.dataset))], dtype=np.int64)


class _HubReader:
    def __init__(self, dataset, image_column: str, label_column: str | None):
        self.dataset, self.image_column, self.label_column = dataset, image_column, label_column

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, i: int):
        row = self.dataset[int(i)]
        return row[self.image_column], (row[self.label_column] if self.label_column else None)

    def labels(self) -> np.ndarray | None:
        if self.label_column is None:
            return None
        return np.asarray(self.dataset[self.label_column], dtype=np.int64)


class _ArrayReader:
    def __init__(self, images, labels=None):
        self.images, self._labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def get(self, i: int):
        image = self.images[int(i)]
        return (np.asarray(image) if not isinstance(image, torch.Tensor) else image), (
            None if self._labels is None else int(self._labels[int(i)])
        )

    def labels(self) -> np.ndarray | None:
        return None if self._labels is None else np.asarray(self._labels, dtype=np.int64)


class _FileReader:
    def __init__(self, paths: list[Path], labels: list[int] | None):
        self.paths, self._labels = paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, i: int):
        from PIL import Image

        with Image.open(self.paths[int(i)]) as image:
            image.load()
            return image.copy(), (None if self._labels is None else self._labels[int(i)])

    def labels(self) -> np.ndarray | None:
        return None if self._labels is None else np.asarray(self._labels, dtype=np.int64)


class _SubsetReader:
    def __init__(self, reader, indices: np.ndarray):
        self.reader, self.indices = reader, indices

    def __len__(self) -> int:
        return len(self.indices)

    def get(self, i: int):
        return self.reader.get(int(self.indices[int(i)]))

    def labels(self) -> np.ndarray | None:
        labels = self.reader.labels()
        return None if labels is None else labels[self.indices]


# ----------------------------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------------------------


class ImageDataset(torch.utils.data.Dataset):
    """Images as `OETrainer` rows: `{"pixel_values": FloatTensor[C, H, W], "labels": int}`.

    Build one with `load_vision_dataset`, `load_image_folder`, `load_numpy_images`, `synthetic_ood_dataset` or
    `ImageDataset.from_tensor`; `with_transform`, `without_labels` and `select` return views sharing the images.

    Args:
        reader: the raw source (internal; use the loaders).
        transform (`Callable`, *optional*): image -> `FloatTensor[C, H, W]`, e.g. an `ImageTransform`; without one,
            images are only converted to float tensors in `[0, 1]` (they must then all have the same size).
        with_labels (`bool`, *optional*, defaults to `True`): include `labels` in the rows (when the source has them).
        name (`str`, *optional*, defaults to `"images"`): a display name (used in reports and errors).
        classes (`list[str]`, *optional*): class names, index = label id.
    """

    def __init__(
        self,
        reader,
        transform: Callable | None = None,
        with_labels: bool = True,
        name: str = "images",
        classes: list[str] | None = None,
    ):
        self.reader = reader
        self.transform = transform
        self.with_labels = with_labels
        self.name = name
        self.classes = list(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {self.name} ({len(self)} images)")
        image, label = self.reader.get(i % len(self))
        if self.transform is not None:
            pixel_values = self.transform(image)
        else:
            x = to_image_tensor(image, _image_channels(image))
            pixel_values = TF.to_dtype(x, torch.float32, scale=True) if x.dtype == torch.uint8 else x.float()
        row = {"pixel_values": pixel_values}
        if self.with_labels and label is not None:
            row["labels"] = int(label)
        return row

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, n={len(self)}, labels={self.with_labels}, transform={self.transform})"
        )

    def image(self, i: int):
        """The raw image `i` (PIL image, array or tensor), before any transform."""
        return self.reader.get(i)[0]

    def labels(self) -> np.ndarray | None:
        """All labels as an int64 array (`None` for unlabelled sources)."""
        return self.reader.labels()

    def _view(self, **changes) -> ImageDataset:
        kwargs = {
            "reader": self.reader,
            "transform": self.transform,
            "with_labels": self.with_labels,
            "name": self.name,
            "classes": self.classes,
        }
        kwargs.update(changes)
        return ImageDataset(**kwargs)

    def with_transform(self, transform: Callable | None) -> ImageDataset:
        """The same images with another transform."""
        return self._view(transform=transform)

    def without_labels(self) -> ImageDataset:
        """The same images, rows without `labels` (for outliers and OOD sets)."""
        return self._view(with_labels=False)

    def select(self, indices, name: str | None = None) -> ImageDataset:
        """The images at `indices` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"`indices` must be in [0, {len(self)}) for {self.name}.")
        return self._view(reader=_SubsetReader(self.reader, idx), name=name or self.name)

    @classmethod
    def from_tensor(
        cls, images, labels=None, transform: Callable | None = None, name: str = "images", classes=None
    ) -> ImageDataset:
        """Wrap a `(N, C, H, W)` tensor (float in [0, 1] or uint8) or an `(N, H, W[, C])` uint8 array."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = images[..., None]
        if len(images) == 0:
            raise ValueError(f"{name}: `images` is empty.")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{name}: {len(labels)} labels for {len(images)} images.")
        return cls(
            _ArrayReader(images, labels),
            transform=transform,
            with_labels=labels is not None,
            name=name,
            classes=classes,
        )


def _image_channels(image) -> int:
    """Channels of a raw image, 1 or 3 (alpha dropped), to convert it without changing its colour mode."""
    if _is_pil(image):
        return 1 if image.mode in ("L", "1", "I", "F", "I;16") else 3
    shape = tuple(image.shape)
    if len(shape) == 2:
        return 1
    channels = shape[0] if isinstance(image, torch.Tensor) or shape[0] in (1, 3, 4) else shape[-1]
    return 1 if channels == 1 else 3


# ----------------------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------------------


def _hub_columns(dataset, image_column: str | None, label_column: str | None, what: str):
    import datasets

    features = dataset.features
    if image_column is None:
        images = [c for c, f in features.items() if isinstance(f, datasets.Image)]
        if not images:
            raise ValueError(f"{what} has no image column (features: {dict(features)}); pass `image_column=`.")
        image_column = images[0]
    elif image_column not in features:
        raise ValueError(f"{what} has no column {image_column!r}; columns: {list(features)}.")
    if label_column is None:
        class_labels = [c for c, f in features.items() if isinstance(f, datasets.ClassLabel)]
        preferred = [c for c in ("label", "fine_label", "labels") if c in class_labels]
        label_column = (preferred or class_labels or [None])[0]
    elif label_column not in features:
        raise ValueError(f"{what} has no label column {label_column!r}; columns: {list(features)}.")
    feature = features[label_column] if label_column else None
    classes = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    return image_column, label_column, classes


def _load_hub(repo_id: str, config: str | None, split: str, image_column, label_column, what: str):
    try:
        dataset = load_hub_dataset(repo_id, config, split=split) if config else load_hub_dataset(repo_id, split=split)
    except MirrorMissError:
        raise
    except ValueError as err:
        if "split" in str(err).lower():
            where = f"the offline mirror ({mirror_root()})" if is_mirrored(repo_id, "dataset") else "the Hub copy"
            raise ValueError(f"{what}: split {split!r} of {repo_id!r} is not available in {where}: {err}") from None
        raise
    image_column, label_column, classes = _hub_columns(dataset, image_column, label_column, what)
    return _HubReader(dataset, image_column, label_column), classes


def load_vision_dataset(
    name: str,
    split: str = "test",
    *,
    transform: Callable | None = None,
    with_labels: bool = True,
    root: str | os.PathLike | None = None,
    download: bool = True,
    source: str = "auto",
    config: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> ImageDataset:
    """Load an image dataset by registry name, Hub id, image folder or `.npy` file.

    Args:
        name (`str`):
            A registry name (`VISION_DATASETS`: `cifar10`, `cifar100`, `svhn`, `fashion_mnist`, `mnist`, `textures`,
            `places365`, `lsun`, `tiny_imagenet`), a Hugging Face dataset id (`"uoft-cs/cifar10"`), a folder of images
            or a `.npy` file of uint8 images.
        split (`str`, *optional*, defaults to `"test"`): the split (`"train"`, `"test"`, `"valid"`, ...).
        transform (`Callable`, *optional*): image -> tensor, e.g. `ImageTransform.for_dataset("cifar10")`.
        with_labels (`bool`, *optional*, defaults to `True`): rows carry `labels` when the source has them.
        root (`str`, *optional*): torchvision root; default `default_data_root()`, or `$OE_TEXT_MIRROR/torchvision`
            for a copy in the mirror.
        download (`bool`, *optional*, defaults to `True`): let torchvision download missing data (never from the
            mirror).
        source (`str`, *optional*, defaults to `"auto"`): for registry names, `"torchvision"`, `"hub"` or `"auto"`:
            with `OE_TEXT_MIRROR` set, torchvision when the mirror has a torchvision copy, else the mirrored Hub id;
            without it, torchvision when it has the dataset, else the Hub.
        config (`str`, *optional*): Hub dataset config (overrides the registry's).
        image_column (`str`, *optional*), label_column (`str`, *optional*): Hub columns (default: the first
            `Image` feature; `label` / `fine_label` or the first `ClassLabel`).

    Returns:
        `ImageDataset`.

    Raises:
        `MirrorMissError`: `OE_TEXT_MIRROR` is set and holds neither copy. `ValueError`: unknown name or split.
    """
    if source not in ("auto", "torchvision", "hub"):
        raise ValueError(f"`source` must be 'auto', 'torchvision' or 'hub', got {source!r}.")
    path = Path(os.fspath(name)).expanduser()
    if path.exists():
        if path.is_dir():
            dataset = load_image_folder(path, transform=transform)
        elif path.suffix == ".npy":
            dataset = load_numpy_images(path, transform=transform)
        else:
            raise ValueError(f"{path} is neither a folder of images nor a .npy file of images.")
        return dataset if with_labels else dataset.without_labels()
    key = DATASET_ALIASES.get(str(name).lower(), str(name).lower())
    if key not in VISION_DATASETS:
        if "/" not in str(name):
            raise ValueError(
                f"Unknown vision dataset {name!r}: not a registry name ({sorted(VISION_DATASETS)}), a Hub id "
                "('org/name') or an existing folder / .npy file."
            )
        reader, classes = _load_hub(str(name), config, split, image_column, label_column, f"dataset {name!r}")
        return ImageDataset(reader, transform, with_labels, name=f"{name}:{split}", classes=classes)

    spec = VISION_DATASETS[key]
    if split not in spec.splits:
        raise ValueError(f"{spec.name} has splits {list(spec.splits)}, not {split!r}.")
    mirror = mirror_root()
    mirror_tv = mirror / "torchvision" if mirror is not None else None
    in_mirror = (
        root is None
        and mirror_tv is not None
        and spec.torchvision_marker is not None
        and (mirror_tv / spec.torchvision_marker).exists()
    )
    if source == "auto":
        if mirror is not None and root is None:
            if not in_mirror and spec.hub_id is None:
                raise MirrorMissError(
                    f"{spec.name} ({split}) is not in the offline mirror ({mirror}): no torchvision copy under "
                    f"{mirror_tv} and no Hub copy. Unset OE_TEXT_MIRROR (torchvision then downloads it into "
                    "`root`), or pass `root=` to a folder that holds it."
                )
            source = "torchvision" if in_mirror else "hub"
        else:
            source = "torchvision" if spec.torchvision_class is not None else "hub"
    if source == "hub":
        if spec.hub_id is None:
            raise ValueError(f"{spec.name} has no Hugging Face copy in the registry; use source='torchvision'.")
        if split not in spec.hub_splits:
            raise ValueError(f"{spec.name} split {split!r} has no Hub split (Hub splits: {dict(spec.hub_splits)}).")
        reader, classes = _load_hub(
            spec.hub_id, config or spec.hub_config, spec.hub_splits[split], image_column, label_column, spec.name
        )
        return ImageDataset(reader, transform, with_labels, name=f"{spec.name}:{split}", classes=classes)
    if spec.torchvision_class is None:
        raise ValueError(f"{spec.name} is not in torchvision; use source='hub' (Hub id {spec.hub_id!r}).")
    import torchvision

    tv_root = mirror_tv if in_mirror else Path(root or default_data_root()).expanduser()
    cls = getattr(torchvision.datasets, spec.torchvision_class)
    kwargs = spec.torchvision_kwargs(split)
    if spec.torchvision_can_download:
        kwargs["download"] = download and not in_mirror
    try:
        dataset = cls(str(tv_root), **kwargs)
    except (RuntimeError, FileNotFoundError, ImportError) as err:
        hint = "" if spec.torchvision_can_download else " torchvision cannot download it: place it under `root` first."
        raise RuntimeError(
            f"Could not load {spec.name} ({split}) with torchvision from {tv_root}: {err}.{hint}"
        ) from err
    classes = getattr(dataset, "classes", None)
    return ImageDataset(
        _TorchvisionReader(dataset), transform, with_labels, name=f"{spec.name}:{split}", classes=classes
    )


def load_image_folder(folder: str | os.PathLike, transform: Callable | None = None, name: str | None = None):
    """All images under `folder` (recursively, sorted by path), e.g. auxiliary outliers or Textures/DTD.

    When every image lies in a first-level sub-folder, the sub-folder names are the classes (as
    `torchvision.datasets.ImageFolder`); otherwise the dataset has no labels.

    Args:
        folder (`str` or `os.PathLike`): the folder.
        transform (`Callable`, *optional*): image -> tensor.
        name (`str`, *optional*): display name (default: the folder name).

    Returns:
        `ImageDataset`.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} does not exist.")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not paths:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}.")
    parts = [p.relative_to(root).parts for p in paths]
    labels, classes = None, None
    if all(len(q) >= 2 for q in parts):
        classes = sorted({q[0] for q in parts})
        index = {c: i for i, c in enumerate(classes)}
        labels = [index[q[0]] for q in parts]
    return ImageDataset(
        _FileReader(paths, labels), transform, labels is not None, name=name or root.name, classes=classes
    )


def load_numpy_images(
    path: str | os.PathLike, transform: Callable | None = None, name: str | None = None
) -> ImageDataset:
    """Images stored as one `.npy` array of shape `(N, H, W)` or `(N, H, W, C)`, uint8 (memory-mapped).

    This is the format of the paper's `300K_random_images.npy` (300,000 x 32 x 32 x 3), the de-duplicated stand-in
    for 80 Million Tiny Images used as auxiliary outliers.

    Args:
        path (`str` or `os.PathLike`): the `.npy` file.
        transform (`Callable`, *optional*): image -> tensor.
        name (`str`, *optional*): display name (default: the file name).

    Returns:
        `ImageDataset` without labels.
    """
    array = np.load(os.fspath(path), mmap_mode="r")
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"{path}: expected images of shape (N, H, W) or (N, H, W, C), got {array.shape}.")
    if array.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 pixels (0-255), got dtype {array.dtype}.")
    return ImageDataset(_ArrayReader(array), transform, with_labels=False, name=name or Path(path).name)


def synthetic_ood_dataset(
    kind: str,
    n: int,
    num_channels: int = 3,
    image_size: int = 32,
    seed: int = 0,
    transform: Callable | None = None,
) -> ImageDataset:
    """A synthetic OOD set of the paper (`gaussian`, `rademacher`, `blobs` or `uniform`) as an `ImageDataset`.

    The images are generated in `[0, 1]` pixel space (see `oe_text.vision.synthetic`), so pass the in-distribution
    `ImageTransform` (without augmentation) to normalise them like real images.

    Args:
        kind (`str`): the generator (`oe_text.vision.synthetic.SYNTHETIC_OOD`).
        n (`int`): number of images.
        num_channels (`int`, *optional*, defaults to 3), image_size (`int`, *optional*, defaults to 32): format.
        seed (`int`, *optional*, defaults to 0): seed.
        transform (`Callable`, *optional*): tensor -> normalised tensor.

    Returns:
        `ImageDataset` without labels.
    """
    images = make_synthetic_images(kind, n, num_channels=num_channels, image_size=image_size, seed=seed)
    return ImageDataset(_ArrayReader(images), transform, with_labels=False, name=kind)


def split_train_validation(dataset: ImageDataset, validation_size: int, seed: int = 0):
    """Hold out `validation_size` random images (seeded) of a training set, e.g. for threshold and temperature tuning.

    Args:
        dataset (`ImageDataset`): the training set.
        validation_size (`int`): images to hold out (0 returns the dataset and `None`).
        seed (`int`, *optional*, defaults to 0): seed of the permutation.

    Returns:
        `(train, validation)`: two disjoint `ImageDataset` views.
    """
    if validation_size < 0 or validation_size >= len(dataset):
        raise ValueError(f"`validation_size` must be in [0, {len(dataset)}), got {validation_size}.")
    if validation_size == 0:
        return dataset, None
    order = np.random.default_rng(seed).permutation(len(dataset))
    val, train = np.sort(order[:validation_size]), np.sort(order[validation_size:])
    return dataset.select(train), dataset.select(val, name=f"{dataset.name} (validation)")


def is_synthetic(name: str) -> bool:
    """Whether `name` is one of the synthetic OOD sets."""
    return name.lower() in SYNTHETIC_OOD
