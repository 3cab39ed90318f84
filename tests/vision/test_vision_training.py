import copy
import math

import pytest
import torch

from oe_text import OETrainer, OETrainingArguments
from oe_text.losses import outlier_exposure_loss
from oe_text.vision import ImageDataset, ImageTransform, OEImageClassifier, load_vision_dataset


def make_args(tmp_path, **overrides):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=16,
        learning_rate=0.05,
        max_steps=4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
        lr_scheduler_type="constant",
        optim="sgd",
        optim_args="momentum=0.9",
        dataloader_pin_memory=False,
    )
    defaults.update(overrides)
    return OETrainingArguments(**defaults)


def tiny_model(num_labels=10, size=28):
    torch.manual_seed(0)
    return OEImageClassifier.from_wrn(
        depth=10, widen_factor=1, dropout=0.0, num_labels=num_labels, num_channels=1, image_size=size,
        image_mean=[0.286], image_std=[0.353],
    )  # fmt: skip


def test_id_and_outlier_images_share_one_forward_pass(tmp_path):
    """Both batches go through the network together (BatchNorm sees both), the OE batch twice the ID batch."""
    g = torch.Generator().manual_seed(0)
    id_data = ImageDataset.from_tensor(torch.rand(32, 1, 12, 12, generator=g), labels=[i % 3 for i in range(32)])
    outliers = ImageDataset.from_tensor(torch.rand(40, 1, 12, 12, generator=g)).without_labels()
    model = tiny_model(num_labels=3, size=12)
    batch_sizes, bn_batch_sizes = [], []

    def record_batch(module, args, kwargs):
        if module.training:
            batch_sizes.append(kwargs["pixel_values"].shape[0])

    model.register_forward_pre_hook(record_batch, with_kwargs=True)
    model.backbone.block1[0].bn1.register_forward_pre_hook(lambda m, args: bn_batch_sizes.append(args[0].shape[0]))
    args = make_args(tmp_path, per_device_train_batch_size=4, oe_batch_size=8, max_steps=3)
    trainer = OETrainer(model=model, args=args, train_dataset=id_data, outlier_dataset=outliers)
    trainer.train()
    assert batch_sizes == [12, 12, 12]
    assert bn_batch_sizes[:3] == [12, 12, 12]
    logs = [h for h in trainer.state.log_history if "oe_loss" in h]
    assert len(logs) == 3 and all(h["oe_loss"] >= math.log(3) - 1e-4 for h in logs)


@pytest.mark.integration
def test_a_few_oe_steps_on_fashion_mnist_lower_the_oe_term(mirror, tmp_path):
    train_tf = ImageTransform.for_dataset("fashion_mnist", train=True)
    eval_tf = ImageTransform.for_dataset("fashion_mnist")
    fmnist = load_vision_dataset("fashion_mnist", "train")
    id_train = fmnist.select(range(64)).with_transform(train_tf)
    tiny = load_vision_dataset("tiny_imagenet", "valid").without_labels()
    outliers = tiny.select(range(0, 10000, 50)).with_transform(train_tf)  # 200 training outliers
    # Fixed held-out batch, laid out as in OE training: 32 unseen ID images, then 67 unseen outliers.
    held_id = fmnist.select(range(1000, 1032)).with_transform(eval_tf)
    held_out = tiny.select(range(25, 10000, 150)).with_transform(eval_tf)
    held = torch.stack([d[i]["pixel_values"] for d in (held_id, held_out) for i in range(len(d))])

    def oe_term(model) -> float:
        # The OE term as training sees it: one forward pass over ID + outliers (BatchNorm on batch statistics),
        # without gradients and on a copy, so that the running statistics of `model` are untouched.
        probe = copy.deepcopy(model).train()
        with torch.no_grad():
            return outlier_exposure_loss(probe(pixel_values=held).logits[len(held_id) :]).item()

    # A confident baseline first (plain cross-entropy), so that the outliers get confident predictions too.
    baseline = tiny_model()
    OETrainer(
        model=baseline, args=make_args(tmp_path, max_steps=12, learning_rate=0.1), train_dataset=id_train
    ).train()
    before = oe_term(baseline)
    assert before > math.log(10) + 0.1  # log K is the minimum, reached by a uniform softmax

    results = {}
    for name, weight in (("oe", 0.5), ("ce_only", 0.0)):
        model = copy.deepcopy(baseline)
        args = make_args(tmp_path, max_steps=8, learning_rate=0.1, oe_weight=weight, oe_batch_size=32)
        trainer = OETrainer(model=model, args=args, train_dataset=id_train, outlier_dataset=outliers)
        trainer.train()
        results[name] = oe_term(model)
        logged = [h["oe_loss"] for h in trainer.state.log_history if "oe_loss" in h]
        assert len(logged) == (8 if weight else 0)
    assert results["oe"] < before - 0.03
    assert results["oe"] < results["ce_only"] - 0.05
