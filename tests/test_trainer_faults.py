"""Fault injection for OETrainer checkpoints: corrupt outlier states, a kill while a checkpoint is being saved."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from oe_text import OETrainer, OETrainingArguments
from oe_text.outlier_stream import OutlierStream


WORDS = "the a movie film good bad great awful plot actor wiki history river city war born king album".split()
SCRIPT = Path(__file__).parent / "scripts" / "kill_during_checkpoint.py"


def build_trainer(output_dir, **overrides):
    """A 1-layer BERT on 32 labelled texts with 10 outliers; 6 steps of 4 + 4 outliers, seeded."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=32)
    texts = [f"{WORDS[i % 9]} {WORDS[(i * 3) % 9]}" + " good" * (i % 3) for i in range(32)]
    train = Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(32)]})
    train = train.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
    outliers = Dataset.from_dict({"text": [f"{WORDS[9 + i % 9]} {WORDS[9 + (i * 5) % 9]} {i}" for i in range(10)]})
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=64, num_labels=2)  # fmt: skip
    args = dict(output_dir=str(output_dir), per_device_train_batch_size=4, learning_rate=1e-2, max_steps=6,
                logging_steps=1, save_strategy="no", report_to=[], seed=0, use_cpu=True, disable_tqdm=True,
                optim="sgd", oe_weight=1.0)  # fmt: skip
    args.update(overrides)
    return OETrainer(
        model=BertForSequenceClassification(config),
        args=OETrainingArguments(**args),
        train_dataset=train,
        processing_class=tokenizer,
        outlier_dataset=outliers,
    )


def stream(n=10, **kw):
    rows = Dataset.from_dict({"x": list(range(n))})
    return OutlierStream(rows, batch_size=3, collate_fn=lambda r: [x["x"] for x in r], seed=1, **kw)


@pytest.mark.parametrize(
    "state,match",
    [
        ({}, r"missing \['epoch', 'position'\]"),
        ({"epoch": 0, "position": -5}, "'position' must be >= 0, got -5"),
        ({"epoch": 0, "position": 1_000_000}, "position 1000000 is beyond the pass of 10"),
        ({"epoch": 0, "position": 1e6}, "'position' must be an integer, got 1000000.0"),
        ({"epoch": "1", "position": 0}, "'epoch' must be an integer"),
        ({"epoch": True, "position": 0}, "'epoch' must be an integer"),
        ([0, 1], "expected a JSON object, got list"),
        ({"epoch": 0, "position": 0, "world_size": 2}, "world_size=2"),
    ],
)
def test_invalid_stream_states_are_rejected(state, match):
    s = stream()
    with pytest.raises(ValueError, match=match):
        s.load_state_dict(state)
    assert s.state_dict()["position"] == 0  # unchanged


def test_streamed_outliers_reject_a_position_past_the_pass():
    s = OutlierStream(
        Dataset.from_dict({"x": list(range(5))}).to_iterable_dataset(), batch_size=2, collate_fn=list, seed=0
    )
    s.load_state_dict({"epoch": 0, "position": 5})  # exactly the pass length: valid, the next pass starts
    assert len(s.next_rows()) == 2 and s.epoch == 1
    s.load_state_dict({"epoch": 0, "position": 9})
    with pytest.raises(ValueError, match="position 9 is beyond the pass of 5"):
        s.next_rows()


@pytest.mark.parametrize("content", ["", "{}", '{"epoch": 0, "position": -5}', "not json"])
def test_corrupt_state_file_gives_a_clear_error(tmp_path, content):
    first = build_trainer(tmp_path, save_strategy="steps", save_steps=3, max_steps=3)
    first.train()
    checkpoint = tmp_path / "checkpoint-3"
    (checkpoint / "outlier_stream_state_0.json").write_text(content)
    again = build_trainer(tmp_path)
    with pytest.raises(ValueError, match="outlier_stream_state_0.json") as err:
        again.train(resume_from_checkpoint=str(checkpoint))
    assert "corrupt" in str(err.value) or "Invalid outlier stream state" in str(err.value)


def test_state_file_is_written_before_the_old_checkpoint_is_rotated(tmp_path, monkeypatch):
    import oe_text.trainer as trainer_module

    seen = []

    def record(path, obj):
        seen.append(sorted(p.name for p in Path(tmp_path).glob("checkpoint-*")))
        Path(path).write_text(json.dumps(obj))

    monkeypatch.setattr(trainer_module, "_write_json_atomic", record)
    build_trainer(tmp_path, save_strategy="steps", save_steps=2, save_total_limit=1).train()
    # The state of checkpoint-4 was written while checkpoint-2 still existed, and so on.
    assert seen == [["checkpoint-2"], ["checkpoint-2", "checkpoint-4"], ["checkpoint-4", "checkpoint-6"]]
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-6"]
    assert not list(tmp_path.glob("checkpoint-6/.tmp-*"))


def test_kill_while_saving_a_checkpoint_then_resume(tmp_path):
    out, ready = tmp_path / "run", tmp_path / "ready"
    root = str(Path(__file__).parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    child = subprocess.Popen([sys.executable, str(SCRIPT), str(out), str(ready)], env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not ready.exists():
        assert child.poll() is None, child.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "the training subprocess never reached the second checkpoint"
        time.sleep(0.2)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    # Killed while checkpoint-4 was being written: checkpoint-2 must still be there, complete.
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    assert (out / "checkpoint-2" / "outlier_stream_state_0.json").is_file()
    assert not (out / "checkpoint-4" / "trainer_state.json").exists()

    resumed = build_trainer(out, save_strategy="no")
    assert resumed.last_complete_checkpoint() == str(out / "checkpoint-2")
    resumed.train(resume_from_checkpoint=True)
    full = build_trainer(tmp_path / "full")
    full.train()
    assert resumed.state.global_step == 6
    assert resumed.outlier_stream.state_dict() == full.outlier_stream.state_dict()
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_resume_true_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="No complete checkpoint"):
        build_trainer(tmp_path).train(resume_from_checkpoint=True)
