import numpy as np
import pytest
import torch
from PIL import Image
from transformers import default_data_collator

from oe_text.hub import MirrorMissError
from oe_text.vision.data import (
    ImageDataset,
    ImageTransform,
    get_dataset_spec,
    load_image_folder,
    load_numpy_images,
    load_vision_dataset,
    split_train_validation,
    synthetic_ood_dataset,
    to_image_tensor,
)


def test_transform_normalises_with_the_dataset_statistics():
    tf = ImageTransform(4, 1, mean=[0.25], std=[0.5])
    out = tf(np.full((4, 4), 255, dtype=np.uint8))
    assert out.shape == (1, 4, 4) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full((1, 4, 4), (1.0 - 0.25) / 0.5))
    # Float tensors are taken to be in [0, 1] already.
    assert torch.allclose(tf(torch.zeros(1, 4, 4)), torch.full((1, 4, 4), -0.5))


def test_rgb_to_grayscale_matches_pil_luma():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    ours = to_image_tensor(rgb, 1)[0].numpy().astype(int)
    pil = np.asarray(Image.fromarray(rgb).convert("L"), dtype=int)
    assert np.abs(ours - pil).max() <= 1
    assert ours.shape == (8, 8)
    # PIL images go through PIL's own conversion; grayscale -> RGB repeats the channel.
    assert torch.equal(to_image_tensor(Image.fromarray(rgb), 1)[0], torch.from_numpy(pil.astype(np.uint8)))
    gray = torch.randint(0, 256, (1, 5, 5), dtype=torch.uint8)
    assert torch.equal(to_image_tensor(gray, 3), gray.expand(3, -1, -1))


def test_resize_and_centre_crop_to_the_model_size():
    tf = ImageTransform(28, 1, mean=[0.0], std=[1.0])
    # 64x64 RGB (Tiny ImageNet) -> 28x28 grayscale; a constant image stays constant.
    out = tf(Image.new("RGB", (64, 64), (255, 255, 255)))
    assert out.shape == (1, 28, 28) and torch.allclose(out, torch.ones_like(out))
    # Non-square: shorter side to 28, then centre crop.
    img = np.zeros((40, 80), dtype=np.uint8)
    img[:, 14:66] = 255  # white beyond the centre 40x40 square, black at the sides
    out = tf(img)
    assert out.shape == (1, 28, 28) and out.min() > 0.99


def test_training_augmentation_crops_with_zero_padding_and_flips():
    torch.manual_seed(0)
    tf = ImageTransform(8, 1, mean=[0.0], std=[1.0], train=True, crop_padding=4, hflip=True)
    image = torch.ones(1, 8, 8)
    outs = [tf(image) for _ in range(40)]
    assert all(o.shape == (1, 8, 8) for o in outs)
    # Shifted crops bring in zero padding in some draws, never more than 4 rows/columns.
    assert any(o.min() == 0 for o in outs)
    assert all(o.sum() >= 4 * 4 for o in outs)
    ramp = torch.arange(8.0).repeat(8, 1)[None] / 8
    flip_only = ImageTransform(8, 1, mean=[0.0], std=[1.0], train=True, crop_padding=0, hflip=True)
    results = {tuple(flip_only(ramp)[0, 0].tolist()) for _ in range(40)}
    assert results == {tuple(ramp[0, 0].tolist()), tuple(ramp[0, 0].flip(0).tolist())}
    assert "random crop (padding 4), horizontal flip" in repr(tf)


def test_transform_for_dataset_uses_the_paper_settings():
    cifar = ImageTransform.for_dataset("cifar10", train=True)
    assert (cifar.num_channels, cifar.image_size, cifar.crop_padding, cifar.hflip) == (3, 32, 4, True)
    assert cifar.mean == pytest.approx([125.3 / 255, 123.0 / 255, 113.9 / 255])
    svhn = ImageTransform.for_dataset("svhn", train=True)
    assert (svhn.crop_padding, svhn.hflip, svhn.mean, svhn.std) == (0, False, [0.0] * 3, [1.0] * 3)
    assert get_dataset_spec("DTD").name == "textures"


def test_transform_errors():
    with pytest.raises(ValueError, match="one value per channel"):
        ImageTransform(32, 3, mean=[0.5], std=[0.5])
    with pytest.raises(ValueError, match="must be > 0"):
        ImageTransform(32, 1, mean=[0.5], std=[0.0])
    with pytest.raises(TypeError, match="PIL image, a numpy array or a torch tensor"):
        to_image_tensor("not an image", 1)


def test_image_dataset_rows_collate_for_the_trainer():
    images = torch.rand(6, 1, 8, 8)
    ds = ImageDataset.from_tensor(images, labels=[0, 1, 2, 0, 1, 2], transform=ImageTransform(8, 1, [0.0], [1.0]))
    row = ds[1]
    assert set(row) == {"pixel_values", "labels"} and row["labels"] == 1
    assert torch.allclose(row["pixel_values"], images[1])
    batch = default_data_collator([ds[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 1, 8, 8) and batch["labels"].dtype == torch.long
    assert set(ds.without_labels()[0]) == {"pixel_values"}
    sub = ds.select([5, 0])
    assert len(sub) == 2 and sub[0]["labels"] == 2 and list(sub.labels()) == [2, 0]
    with pytest.raises(IndexError):
        ds[6]


def test_split_train_validation_is_disjoint_and_seeded():
    ds = ImageDataset.from_tensor(torch.rand(20, 1, 4, 4), labels=list(range(20)))
    train, val = split_train_validation(ds, 5, seed=1)
    assert len(train) == 15 and len(val) == 5
    assert not set(train.labels()) & set(val.labels())
    assert list(split_train_validation(ds, 5, seed=1)[1].labels()) == list(val.labels())
    with pytest.raises(ValueError, match="validation_size"):
        split_train_validation(ds, 20)


def test_image_folder_and_numpy_sources(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "folder" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(
                tmp_path / "folder" / cls / f"{i}.png"
            )
    ds = load_vision_dataset(str(tmp_path / "folder"), transform=ImageTransform(8, 1, [0.0], [1.0]))
    assert len(ds) == 4 and ds.classes == ["cats", "dogs"] and list(ds.labels()) == [0, 0, 1, 1]
    assert ds[3]["pixel_values"].shape == (1, 8, 8) and ds[3]["labels"] == 1
    flat = load_image_folder(tmp_path / "folder" / "cats")
    assert flat.labels() is None and "labels" not in flat[0]

    array = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "random_images.npy", array)
    npy = load_numpy_images(tmp_path / "random_images.npy", transform=ImageTransform(32, 3, [0.0] * 3, [1.0] * 3))
    assert len(npy) == 7
    assert torch.allclose(npy[2]["pixel_values"], torch.from_numpy(array[2]).permute(2, 0, 1).float() / 255)
    np.save(tmp_path / "bad.npy", array.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        load_numpy_images(tmp_path / "bad.npy")


def test_synthetic_dataset_is_normalised_by_the_transform():
    tf = ImageTransform(28, 1, mean=[0.5], std=[0.5])
    ds = synthetic_ood_dataset("rademacher", 3, num_channels=1, image_size=28, seed=0, transform=tf)
    assert set(torch.unique(ds[0]["pixel_values"]).tolist()) == {-1.0, 1.0}


def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match="Unknown vision dataset"):
        load_vision_dataset("imagenet21k")
    with pytest.raises(ValueError, match="has splits"):
        load_vision_dataset("cifar10", "validation")


# ------------------------------------------------------------------------------------------ the offline mirror


@pytest.mark.integration
def test_mirror_fashion_mnist_loads_with_torchvision(mirror):
    tf = ImageTransform.for_dataset("fashion_mnist")
    train = load_vision_dataset("fashion_mnist", "train", transform=tf)
    test = load_vision_dataset("fashion_mnist", "test", transform=tf)
    assert (len(train), len(test)) == (60000, 10000)
    assert type(train.reader).__name__ == "_TorchvisionReader"
    assert test.classes[:2] == ["T-shirt/top", "Trouser"]
    row = test[0]
    assert row["pixel_values"].shape == (1, 28, 28) and row["labels"] == 9  # the first test image is an ankle boot
    assert np.bincount(test.labels()).tolist() == [1000] * 10


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "split", "n", "n_classes", "first_class"),
    [("mnist", "test", 10000, 10, "0"), ("cifar10", "test", 10000, 10, "airplane"),
     ("tiny_imagenet", "valid", 10000, 200, "n01443537")],
)  # fmt: skip
def test_mirror_hub_image_datasets_load(mirror, name, split, n, n_classes, first_class):
    ds = load_vision_dataset(name, split, transform=ImageTransform.for_dataset("fashion_mnist"))
    assert type(ds.reader).__name__ == "_HubReader"
    assert len(ds) == n and len(ds.classes) == n_classes and ds.classes[0] == first_class
    assert ds[0]["pixel_values"].shape == (1, 28, 28)
    raw = ds.image(0)
    expected = {"mnist": (28, 28), "cifar10": (32, 32), "tiny_imagenet": (64, 64)}[name]
    assert raw.size == expected


@pytest.mark.integration
def test_mirror_hub_id_directly_and_missing_sets(mirror):
    ds = load_vision_dataset("uoft-cs/cifar10", "test", config="plain_text")
    assert ds.reader.image_column == "img" and ds.reader.label_column == "label"
    with pytest.raises(MirrorMissError, match="textures"):
        load_vision_dataset("textures", "test")
    with pytest.raises(ValueError, match="not available in the offline mirror"):
        load_vision_dataset("cifar10", "train")
