"""Seeded, reproducible recipe runs; `oe-text train --resume_from_checkpoint`; the RNN tokenizer's casing."""

import json
import shutil

import pytest
from test_recipe import TINY
from transformers import TrainingArguments

from oe_text.cli import main as cli_main
from oe_text.data import TextNormalization
from oe_text.recipe import RecipeArguments, _rnn_tokenizer


def run(tmp_path, name, *extra):
    out = tmp_path / name
    args = ["train", "--dataset", "trec", "--model", "gru", "--output_dir", str(out), *TINY, *extra]
    args[args.index("--ood_datasets") : args.index("--ood_datasets") + 4] = ["--ood_datasets", "snli"]
    assert cli_main(args) == 0
    return out


def read(out):
    return json.loads((out / "results.json").read_text()), (out / "comparison.md").read_text()


@pytest.mark.integration
def test_same_seed_gives_identical_results_and_another_seed_differs(tmp_path, mirror):
    a, b, c = (run(tmp_path, name, "--seed", seed) for name, seed in [("a", "7"), ("b", "7"), ("c", "8")])
    assert read(a) == read(b)
    assert (a / "detector" / "model.safetensors").read_bytes() == (b / "detector" / "model.safetensors").read_bytes()
    assert read(a)[0]["oe"] != read(c)[0]["oe"]


@pytest.mark.integration
def test_cli_resume_continues_instead_of_retraining(tmp_path, mirror):
    full = run(tmp_path, "full", "--save_strategy", "steps", "--save_steps", "1")
    assert sorted(p.name for p in (full / "oe").glob("checkpoint-*")) == [
        "checkpoint-1",
        "checkpoint-2",
        "checkpoint-3",
    ]
    # A run that died after OE step 1: its later checkpoints, detector and results never came to be.
    crashed = tmp_path / "crashed"
    shutil.copytree(full, crashed)
    for path in ["oe/checkpoint-2", "oe/checkpoint-3", "detector"]:
        shutil.rmtree(crashed / path)
    for path in ["results.json", "comparison.md"]:
        (crashed / path).unlink()
    final = crashed / "baseline" / "final" / "model.safetensors"
    before = final.stat().st_mtime_ns
    run(tmp_path, "crashed", "--save_strategy", "steps", "--save_steps", "1", "--resume_from_checkpoint", "true")
    assert final.stat().st_mtime_ns == before  # the finished baseline was loaded, not retrained
    assert (crashed / "oe" / "checkpoint-3" / "trainer_state.json").is_file()
    state = json.loads((crashed / "oe" / "checkpoint-3" / "trainer_state.json").read_text())
    steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert steps == [1, 2, 3]  # step 1 from the checkpoint's history, 2 and 3 trained after resuming
    resumed, expected = read(crashed), read(full)
    assert resumed[1] == expected[1]
    assert resumed[0] == expected[0]


@pytest.mark.integration
def test_cli_resume_without_checkpoint_is_an_error(tmp_path, mirror):
    with pytest.raises(ValueError, match="no complete checkpoint"):
        run(tmp_path, "none", "--resume_from_checkpoint", "true")
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        run(tmp_path, "none", "--resume_from_checkpoint", str(tmp_path))


@pytest.mark.parametrize("lowercase", [True, False])
def test_rnn_tokenizer_follows_the_lowercase_setting(tmp_path, lowercase):
    texts = ["What is the Capital of Peru ?", "Who wrote Hamlet ?", "How far is Paris ?"] * 20
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    recipe = RecipeArguments(model="gru", vocab_size=60, lowercase=lowercase)
    tokenizer = _rnn_tokenizer(recipe, args, texts, 32, TextNormalization(lowercase=lowercase))
    normalize = tokenizer.backend_tokenizer.normalizer.normalize_str
    assert normalize("Capital  PERU") == ("capital peru" if lowercase else "Capital PERU")
