"""Length-matched outliers (buckets, truncation) and outliers read through a DataLoader."""

import pytest
import torch
from datasets import Dataset
from test_trainer import id_dataset, make_args, outlier_dataset, params

from oe_text import OETrainer
from oe_text.outlier_stream import OutlierStream, length_buckets
from oe_text.trainer import truncate_outliers


def rows(n=40):
    # Row i has length 1 + i % 8: eight lengths, five rows each.
    return Dataset.from_dict({"x": list(range(n)), "input_ids": [[7] * (1 + i % 8) for i in range(n)]})


def xs(batch):
    return [r["x"] for r in batch]


def test_length_buckets_merge_rare_lengths():
    assert length_buckets([1, 1, 2, 3, 3, 3, 9], min_bucket_size=2) == [1, 2]
    assert length_buckets([5, 5, 5], min_bucket_size=10) == [5]
    assert length_buckets(list(range(1, 9)) * 5, min_bucket_size=10) == [1, 3, 5, 7]


def test_buckets_match_the_target_length_and_each_bucket_is_a_reshuffled_pass():
    data = rows()
    lengths = [len(ids) for ids in data["input_ids"]]
    s = OutlierStream(data, batch_size=5, collate_fn=xs, seed=0, lengths=lengths, min_bucket_size=10)
    assert s.bucket_bounds == [1, 3, 5, 7]
    for target, allowed in [(4, {3, 4}), (3, {3, 4}), (100, {7, 8}), (1, {1, 2}), (0, {1, 2})]:
        assert {lengths[i] for i in s.next_batch(target)} <= allowed
    first = s.next_batch(6) + s.next_batch(6)  # bucket [5, 7): 10 rows, one pass
    second = s.next_batch(6) + s.next_batch(6)
    assert sorted(first) == sorted(second) == [i for i in range(40) if lengths[i] in (5, 6)]
    assert first != second


def test_buckets_resume_exactly_and_are_disjoint_across_processes():
    data = rows()
    lengths = [len(ids) for ids in data["input_ids"]]
    targets = [2, 8, 8, 4, 2, 6, 8, 1, 3, 7, 5, 2]

    def make(rank=0, world_size=1):
        return OutlierStream(data, batch_size=3, collate_fn=xs, seed=4, lengths=lengths, min_bucket_size=10,
                             rank=rank, world_size=world_size)  # fmt: skip

    full = make()
    drawn = [full.next_batch(t) for t in targets]
    part = make()
    for t in targets[:5]:
        part.next_batch(t)
    state = part.state_dict()
    assert set(state) == {"epoch", "position", "buckets", "bucket_bounds", "seed", "rank", "world_size"}
    resumed = make()
    resumed.load_state_dict(state)
    assert [resumed.next_batch(t) for t in targets[5:]] == drawn[5:]
    with pytest.raises(ValueError, match="length buckets"):
        make().load_state_dict({**state, "bucket_bounds": [1, 2]})
    with pytest.raises(ValueError, match="bucket 1 position 99"):
        make().load_state_dict({**state, "buckets": [[0, 0], [0, 99], [0, 0], [0, 0]]})

    r0, r1 = make(0, 2), make(1, 2)
    a = [i for _ in range(2) for i in r0.next_batch(8)]  # bucket [7, 9): 10 rows, 5 per process
    b = [i for _ in range(2) for i in r1.next_batch(8)]
    assert len(set(a[:5])) == len(set(b[:5])) == 5 and not set(a[:5]) & set(b[:5])


@pytest.mark.parametrize("num_workers", [1, 2])
def test_dataloader_workers_give_the_same_stream_and_resume_exactly(num_workers):
    data = rows(17)
    plain = OutlierStream(data, batch_size=4, collate_fn=xs, seed=3)
    expected = [plain.next_batch() for _ in range(12)]
    loaded = OutlierStream(data, batch_size=4, collate_fn=xs, seed=3, num_workers=num_workers)
    got = [loaded.next_batch() for _ in range(5)]
    state = loaded.state_dict()
    assert got == expected[:5] and state == {**plain.state_dict(), "epoch": 1, "position": 3}  # 20 of 17 drawn
    resumed = OutlierStream(data, batch_size=4, collate_fn=xs, seed=3, num_workers=num_workers)
    resumed.load_state_dict(state)
    assert [resumed.next_batch() for _ in range(7)] == expected[5:]


def test_random_augmentation_does_not_depend_on_workers():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 9

        def __getitem__(self, i):
            return {"x": i, "noise": torch.rand(1).item()}

    def draw(workers):
        s = OutlierStream(Noisy(), batch_size=3, collate_fn=list, seed=0, num_workers=workers)
        return [s.next_batch() for _ in range(5)]

    assert draw(0) == draw(2)


def test_truncate_outliers():
    batch = {
        "input_ids": torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]]),
        "attention_mask": torch.tensor([[1] * 4, [1, 1, 0, 0]]),
    }
    cut = truncate_outliers(batch, 3)
    assert cut["input_ids"].tolist() == [[1, 2, 3], [5, 6, 0]] and cut["attention_mask"].shape == (2, 3)
    assert truncate_outliers(batch, 2, "left")["input_ids"].tolist() == [[3, 4], [0, 0]]
    pixels = {"pixel_values": torch.zeros(2, 3, 4, 4)}
    assert truncate_outliers(pixels, 2)["pixel_values"].shape == (2, 3, 4, 4)


class LengthRecorder:
    def __init__(self, model, n_in):
        self.n_in, self.shapes = n_in, []
        model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        if module.training:
            ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
            self.shapes.append(
                (int(mask[: self.n_in].sum(1).max()), int(mask[self.n_in :].sum(1).max()), ids.shape[1])
            )


@pytest.mark.parametrize("mode", ["truncate", "bucket"])
def test_matched_outliers_never_pad_in_distribution_rows(tmp_path, tiny_bert, tiny_tokenizer, mode):
    long_outliers = Dataset.from_dict(
        {"text": [" ".join(["wiki history river city"] * (1 + i % 4)) for i in range(40)]}
    )
    trainer = OETrainer(
        model=tiny_bert,
        args=make_args(tmp_path, oe_weight=1.0, max_steps=6, oe_length_matching=mode, oe_length_bucket_size=5),
        train_dataset=id_dataset(tiny_tokenizer),
        processing_class=tiny_tokenizer,
        outlier_dataset=long_outliers,
    )
    recorder = LengthRecorder(tiny_bert, n_in=4)
    trainer.train()
    assert len(recorder.shapes) == 6
    for id_len, out_len, padded in recorder.shapes:
        assert padded == id_len and out_len <= id_len  # the joint batch is as long as the in-distribution one
    if mode == "bucket":
        assert trainer.outlier_stream.bucket_bounds is not None and len(trainer.outlier_stream.bucket_bounds) > 1


def test_gradient_accumulation_matches_one_large_batch_with_buckets(tmp_path, tiny_tokenizer, tiny_bert_config):
    from transformers import BertForSequenceClassification

    def run(batch, accumulation, name):
        torch.manual_seed(0)
        model = BertForSequenceClassification(tiny_bert_config)
        args = make_args(tmp_path / name, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
                         oe_batch_size=batch, oe_weight=1.0, max_steps=3, max_grad_norm=0.0,
                         oe_length_matching="bucket", oe_length_bucket_size=4)  # fmt: skip
        OETrainer(model=model, args=args, train_dataset=id_dataset(tiny_tokenizer), processing_class=tiny_tokenizer,
                  outlier_dataset=outlier_dataset(40)).train()  # fmt: skip
        return params(model)

    small, large = run(4, 2, "ga"), run(8, 1, "big")
    for name in small:
        torch.testing.assert_close(small[name], large[name], rtol=1e-4, atol=1e-6, msg=name)
