"""Fault injection: each test reproduces a failure found by the adversarial pass of issue 13 and checks the fix.

Code shipped with a downloaded detector never runs; CLI input is split one way whatever its source; bad labels, bad
files, bad arguments and silent servers give specific errors instead of wrong results or hangs.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from oe_text import OEClassifier, OEConfig
from oe_text.cli import main as cli_main


REPO = Path(__file__).resolve().parents[1]


def _child_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OE_TEXT_")) and "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", **extra)
    return env


@pytest.fixture
def detector(tiny_tokenizer, tiny_bert_config) -> OEClassifier:
    """A small text detector (tiny BERT backbone, tiny tokenizer attached), in training mode as `from_backbone`."""
    torch.manual_seed(0)
    model = OEClassifier(OEConfig(backbone_config=tiny_bert_config.to_dict(), num_labels=2))
    model.tokenizer = tiny_tokenizer
    return model.train()


@pytest.fixture
def detector_dir(detector, tmp_path) -> Path:
    folder = tmp_path / "detector"
    detector.save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------------ 1. remote code
def _plant_remote_code(folder: Path, keep_tokenizer_class: bool) -> Path:
    """Make `folder` a malicious detector: `auto_map` in tokenizer_config.json and a module that writes a marker."""
    marker = folder / "MARKER"
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    if not keep_tokenizer_class:
        config["tokenizer_class"] = "EvilTokenizer"  # no library class of that name: only the custom code can load it
    config_file.write_text(json.dumps(config))
    (folder / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertTokenizerFast\n\n\nclass EvilTokenizer(BertTokenizerFast):\n    pass\n"
    )
    return marker


LINES = b"what is x ?\nhow far is it ?\n1\nwho is y ?\n"


def _detect_subprocess(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oe_text.cli", "detect", "--model", folder.name, *extra],
        input=LINES,
        capture_output=True,
        cwd=folder.parent,
        env=_child_env(),
        timeout=300,
    )


def test_detect_never_runs_code_from_a_detector_folder(tmp_path, detector):
    """tokenizer_config.json with `auto_map` + a .py file writing a marker. Before the fix, transformers prompted on
    stdin (eating the first input lines as answers), ran the file and mixed its prompt into stdout."""
    # A tokenizer only the custom code can build: refused with a clear error; nothing read, run or printed.
    refused = tmp_path / "refused"
    detector.save_pretrained(refused)
    marker = _plant_remote_code(refused, keep_tokenizer_class=False)
    result = _detect_subprocess(refused)
    assert result.returncode == 1 and result.stdout == b""
    assert not marker.exists()
    stderr = result.stderr.decode()
    assert "needs custom code" in stderr and "--trust_remote_code" in stderr
    with pytest.raises(ValueError, match=f"tokenizer saved in {refused}.*needs custom code"):
        OEClassifier.from_pretrained(refused)
    assert not marker.exists()
    # A folder whose tokenizer class is a library one: loaded with that class, every line answered, JSON only.
    usable = tmp_path / "usable"
    detector.save_pretrained(usable)
    marker = _plant_remote_code(usable, keep_tokenizer_class=True)
    result = _detect_subprocess(usable)
    assert result.returncode == 0, result.stderr.decode()
    assert not marker.exists()
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["text"] for r in records] == ["what is x ?", "how far is it ?", "1", "who is y ?"]


def test_trust_remote_code_is_an_explicit_opt_in_announced_once(detector_dir):
    marker = _plant_remote_code(detector_dir, keep_tokenizer_class=False)
    result = _detect_subprocess(detector_dir, "--trust_remote_code")
    assert result.returncode == 0, result.stderr.decode()
    assert marker.exists() and len(result.stdout.decode().splitlines()) == 4
    assert result.stderr.decode().count("trust_remote_code=True") == 1


def test_saved_backbone_config_drops_auto_map(tiny_bert_config, tmp_path):
    from transformers import BertModel

    torch.manual_seed(0)
    BertModel(tiny_bert_config).save_pretrained(tmp_path / "backbone")
    data = json.loads((tmp_path / "backbone" / "config.json").read_text())
    data["auto_map"] = {"AutoModel": "evil.EvilModel"}
    (tmp_path / "backbone" / "config.json").write_text(json.dumps(data))
    model = OEClassifier.from_backbone(tmp_path / "backbone", load_tokenizer=False)
    model.save_pretrained(tmp_path / "detector")
    saved = json.loads((tmp_path / "detector" / "config.json").read_text())
    assert "auto_map" not in saved["backbone_config"]  # a saved detector never points at custom code
    assert type(OEClassifier.from_pretrained(tmp_path / "detector").backbone).__name__ == "BertModel"


# ------------------------------------------------------------------------------------------------ 5. CLI input
SEPARATORS = "a\vb\fc\x1cd\x85e\u2028f"


def _run_detect_cli(monkeypatch, capsys, folder, data: bytes, *extra: str, use_file: Path | None = None):
    if use_file is not None:
        use_file.write_bytes(data)
        args = ["detect", "--model", str(folder), "--input", str(use_file), *extra]
    else:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        args = ["detect", "--model", str(folder), *extra]
    assert cli_main(args) == 0
    return [json.loads(line)["text"] for line in capsys.readouterr().out.split("\n") if line]


def test_split_input_lines_is_newline_only():
    from oe_text.cli import split_input_lines

    assert split_input_lines(f"{SEPARATORS}\r\nsecond\n\n  \nthird") == [SEPARATORS, "second", "third"]
    assert split_input_lines("\ufeffgood movie\r\n") == ["good movie"]


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_cli_input_same_records_from_file_and_stdin(detector_dir, tmp_path, monkeypatch, capsys, source):
    data = ("\ufeffgood movie\r\n" + SEPARATORS + "\n\nbad plot\n").encode("utf-8")
    use_file = tmp_path / "in.txt" if source == "file" else None
    texts = _run_detect_cli(monkeypatch, capsys, detector_dir, data, use_file=use_file)
    # Three records whatever the source; the BOM is gone from the first text.
    assert texts == ["good movie", SEPARATORS, "bad plot"]


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_cli_input_undecodable_bytes_name_the_line(detector_dir, tmp_path, monkeypatch, capsys, source):
    data = "good movie\nbad plot\nle film était bon\n".encode("latin-1")
    use_file = tmp_path / "in.txt" if source == "file" else None
    with pytest.raises(SystemExit, match=r"line 3 of .* is not valid utf-8 .*--encoding"):
        _run_detect_cli(monkeypatch, capsys, detector_dir, data, use_file=use_file)
    texts = _run_detect_cli(monkeypatch, capsys, detector_dir, data, "--encoding", "latin-1", use_file=use_file)
    assert texts == ["good movie", "bad plot", "le film était bon"]
    with pytest.raises(SystemExit, match="unknown --encoding 'klingon'"):
        _run_detect_cli(monkeypatch, capsys, detector_dir, data, "--encoding", "klingon", use_file=use_file)


# ------------------------------------------------------------------------------------------------ 4. label sets
def _labelled_csv(path: Path, labels: list[int]) -> str:
    rows = ["text,label"] + [f"text number {i},{label}" for i, label in enumerate(labels)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_integer_label_gaps_are_an_error_unless_declared_or_remapped(tmp_path):
    from oe_text.data import InvalidLabelError, load_id_dataset

    labels = [0, 1, 7] * 4
    csv = _labelled_csv(tmp_path / "gaps.csv", labels)
    with pytest.raises(InvalidLabelError, match=r"not 0\.\.K-1.*\[0, 1, 7\].*\[2, 3, 4, 5, 6\].*remap_labels"):
        load_id_dataset(csv, test_size=3, validation_size=3)
    data = load_id_dataset(csv, test_size=3, validation_size=3, remap_labels=True, seed=0)
    assert data["train"].features["label"].names == ["0", "1", "7"]
    merged = [data[s][i] for s in ("train", "validation", "test") for i in range(len(data[s]))]
    by_text = {row["text"]: row["label"] for row in merged}
    assert [by_text[f"text number {i}"] for i in range(12)] == [{0: 0, 1: 1, 7: 2}[v] for v in labels]
    declared = [f"c{i}" for i in range(8)]
    data = load_id_dataset(csv, test_size=3, validation_size=3, label_names=declared)
    assert data["train"].features["label"].names == declared  # declared: ids 2..6 may be empty


def test_one_typo_label_does_not_allocate_a_million_classes(tmp_path):
    import time

    from oe_text.data import InvalidLabelError, load_id_dataset

    csv = _labelled_csv(tmp_path / "typo.csv", [0, 1] * 5 + [1_000_000])
    start = time.perf_counter()
    with pytest.raises(InvalidLabelError, match=r"largest 1000000\).*\[2, 3, 4, 5, 6\]"):
        load_id_dataset(csv, test_size=2, validation_size=2)
    assert time.perf_counter() - start < 10
    data = load_id_dataset(csv, test_size=2, validation_size=2, remap_labels=True)
    assert data["train"].features["label"].names == ["0", "1", "1000000"]


def test_mahalanobis_classes_are_the_ids_present():
    from oe_text.feature_scores import MahalanobisScorer

    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4)) + np.repeat(np.eye(4)[:3] * 5, 20, axis=0)
    dense = MahalanobisScorer().fit(features, np.repeat([0, 1, 2], 20))
    sparse = MahalanobisScorer().fit(features, np.repeat([0, 7, 10_000_000], 20), batch_size=7)
    assert sparse._sums.shape == (3, 4)  # one row per class present, not 10,000,001
    queries = rng.normal(size=(5, 4))
    np.testing.assert_allclose(sparse.score(queries), dense.score(queries), rtol=1e-10)
    assert sparse.classes_.tolist() == [0, 7, 10_000_000]


# ------------------------------------------------------------------------------------------------ 6. bad arguments
@pytest.mark.parametrize("field", ["oe_weight", "oe_energy_m_in", "oe_energy_temperature"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_oe_settings_are_rejected(tmp_path, field, value):
    from oe_text import OETrainingArguments

    with pytest.raises(ValueError, match=f"`{field}` must be a finite number"):
        OETrainingArguments(output_dir=str(tmp_path), report_to="none", **{field: value})


# ------------------------------------------------------------------------------------------------ 6. bad files
BAD_FILES = {
    "empty.csv": (b"", "EmptyDatasetError", "is empty: expected a header row"),
    "header.csv": (b"text,label\n", "EmptyDatasetError", r"header row \['text', 'label'\] but no data rows"),
    "quote.csv": (b'text,label\n"good movie,1\nbad plot,0\n', "MalformedFileError", "line 3: malformed csv"),
    "fields.csv": (b"text,label\ngood,1\nbad,0,extra\n", "MalformedFileError", "line 3: 3 field"),
    "latin1.csv": ("text,label\ngood,1\nété,0\n".encode("latin-1"), "MalformedFileError", "line 3: not valid UTF-8"),
    "empty.jsonl": (b"\n\n", "EmptyDatasetError", "no records"),
    "broken.jsonl": (
        b'{"text": "a", "label": 0}\n{"text": "b", "label": \n',
        "MalformedFileError",
        "line 2: not valid",
    ),
    "list.jsonl": (b'{"text": "a", "label": 0}\n[1, 2]\n', "MalformedFileError", "line 2: expected one JSON object"),
    "empty.json": (b"[]", "EmptyDatasetError", "empty JSON document"),
}


@pytest.mark.parametrize("filename", sorted(BAD_FILES))
def test_bad_data_files_name_the_file_and_line(tmp_path, filename):
    from oe_text.data import errors, load_id_dataset, load_outlier_dataset

    content, error, message = BAD_FILES[filename]
    path = tmp_path / filename
    path.write_bytes(content)
    error_type = getattr(errors, error)
    with pytest.raises(error_type, match=f"File '{path}'.*{message}"):
        load_id_dataset(str(path), test_size=1)
    for streaming in (False, True):
        with pytest.raises(error_type, match=f"File '{path}'.*{message}"):
            load_outlier_dataset(str(path), streaming=streaming)


def test_zero_row_auxiliary_sets_are_a_clear_error(tmp_path):
    import datasets

    from oe_text.data import EmptyDatasetError, load_outlier_dataset

    empty = datasets.Dataset.from_dict({"text": []}, features=datasets.Features({"text": datasets.Value("string")}))
    empty.to_parquet(str(tmp_path / "zero.parquet"))
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    datasets.Dataset.from_dict({"text": ["", "  ", ""]}).to_parquet(str(tmp_path / "blank.parquet"))
    for name in ("zero.parquet", "blank.txt", "blank.parquet"):
        for streaming in (False, True):
            with pytest.raises(EmptyDatasetError, match=f"{name}.*(no rows|no text|empty after dropping empty)"):
                load_outlier_dataset(str(tmp_path / name), streaming=streaming)


# ------------------------------------------------------------------------------------------------ 6. detector API
def test_detect_is_safe_from_several_threads(tiny_tokenizer, tiny_bert_config):
    """A model in training mode (as `from_backbone` returns it) with dropout: concurrent `detect` calls must each run
    in eval mode (scores equal to a single-threaded call) and leave the model in training mode."""
    import threading

    config = tiny_bert_config.to_dict() | {"hidden_dropout_prob": 0.3}
    torch.manual_seed(0)
    model = OEClassifier(OEConfig(backbone_config=config, num_labels=2, classifier_dropout=0.3))
    model.tokenizer = tiny_tokenizer
    model.train()
    model.backbone.embeddings.eval()  # a submodule deliberately in eval mode (as a frozen encoder) must stay so
    modes = {name: module.training for name, module in model.named_modules()}
    texts = [
        " ".join(["good movie", "bad plot", "the war", "a song"][i % 4] for _ in range(1 + i % 5)) for i in range(24)
    ]
    reference = [d["ood_score"] for d in model.detect(texts, batch_size=1, threshold=0.0)]
    assert model.training
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append([d["ood_score"] for d in model.detect(texts, batch_size=1, threshold=0.0)])
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 12 and all(r == reference for r in results)
    assert {name: module.training for name, module in model.named_modules()} == modes


def test_detect_argument_errors(detector):
    with pytest.raises(TypeError, match="`texts` must be a string or a list of strings, got NoneType"):
        detector.detect(None)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="`max_length` must be a positive int"):
            detector.detect(["good movie"], max_length=bad)
    with pytest.raises(ValueError, match="`max_length=1000` exceeds .* max_position_embeddings is 64"):
        detector.detect(["good movie"], max_length=1000)
    assert len(detector.detect(["good movie"], max_length=64)) == 1


def test_missing_config_names_the_folder(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "not_a_detector"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=f"{folder} is not a saved detector: it has no config.json"):
        OEClassifier.from_pretrained(folder)
    monkeypatch.setattr(sys, "stdin", io.StringIO("good movie\n"))
    with pytest.raises(SystemExit, match="no config.json .*save_pretrained"):
        cli_main(["detect", "--model", str(folder)])


def test_hub_id_missing_from_the_mirror_names_id_and_folder(tmp_path, monkeypatch):
    """The id is still tried on the Hub (offline here, so it fails at once); the error then names the id and the
    mirror folder searched instead of only "couldn't connect to huggingface.co"."""
    from huggingface_hub import constants

    from oe_text.hub import MirrorMissError

    (tmp_path / "models").mkdir()
    monkeypatch.setenv("OE_TEXT_MIRROR", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    expected = f"'org/name' is not in the offline mirror: no folder {tmp_path / 'models' / 'org' / 'name'}"
    with pytest.raises(MirrorMissError, match=expected):
        OEClassifier.from_pretrained("org/name")
    monkeypatch.setattr(sys, "stdin", io.StringIO("good movie\n"))
    with pytest.raises(SystemExit, match=f"cannot load the detector 'org/name': .*{expected}"):
        cli_main(["detect", "--model", "org/name"])


def test_save_keeps_a_users_readme_and_removes_stale_weights(detector, tiny_bert_config, tmp_path):
    folder = tmp_path / "detector"
    folder.mkdir()
    (folder / "README.md").write_text("# My notes\n\nHand-written.\n")
    detector.save_pretrained(folder)
    assert (folder / "README.md").read_text() == "# My notes\n\nHand-written.\n"
    detector.save_pretrained(folder, overwrite_readme=True)
    assert "oe-text" in (folder / "README.md").read_text()
    detector.save_pretrained(folder)  # our own card: rewritten without asking
    # A single-file save, then a sharded save of other weights: the old model.safetensors must go, or it would load.
    torch.manual_seed(1)
    other = OEClassifier(OEConfig(backbone_config=tiny_bert_config.to_dict(), num_labels=2))
    other.save_pretrained(folder, max_shard_size="20KB")
    names = sorted(p.name for p in folder.iterdir())
    assert "model.safetensors" not in names and "model.safetensors.index.json" in names
    loaded = OEClassifier.from_pretrained(folder, load_tokenizer=False)
    for key, value in other.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # And back: a single-file save removes the shards and their index.
    detector.save_pretrained(folder)
    assert not [p.name for p in folder.iterdir() if p.name.startswith("model-") or p.name.endswith(".index.json")]


SILENT_PUSH = """
import sys, time, torch
from oe_text import OEClassifier, OEConfig
from transformers import BertConfig
config = BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
model = OEClassifier(OEConfig(backbone_config=config.to_dict(), num_labels=2))
start = time.monotonic()
try:
    model.push_to_hub("user/silent", timeout=1.0)
except TimeoutError as err:
    print(f"TimeoutError after {time.monotonic() - start:.1f}s: {err}")
"""


def test_push_to_hub_times_out_on_a_silent_server(tmp_path):
    """A server that accepts connections and never answers: the push fails within seconds with a clear error."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []

    def accept_forever():
        while True:
            try:
                accepted.append(server.accept()[0])  # never read, never answered
            except OSError:
                return

    threading.Thread(target=accept_forever, daemon=True).start()
    env = _child_env(
        HF_ENDPOINT=f"http://127.0.0.1:{server.getsockname()[1]}",
        HF_TOKEN="hf_fake_token",
        HF_HOME=str(tmp_path / "hf_home"),
        NO_PROXY="127.0.0.1,localhost",
    )
    start = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-c", SILENT_PUSH], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.close()
    assert "TimeoutError after" in result.stdout, result.stderr[-2000:]
    assert "did not answer within 1 s" in result.stdout and "127.0.0.1" in result.stdout
    seconds = float(result.stdout.split("TimeoutError after ")[1].split("s:")[0])
    assert seconds < 15 and accepted
    assert time.monotonic() - start < 90


def test_recipe_cli_declares_or_remaps_labels(tmp_path):
    from oe_text.recipe import parse_recipe_args

    recipe_args, _ = parse_recipe_args(
        args=["--dataset", "data.csv", "--output_dir", str(tmp_path), "--remap_labels", "--class_names", "neg", "pos"]
    )
    assert recipe_args.remap_labels is True and recipe_args.class_names == ["neg", "pos"]
    recipe_args, _ = parse_recipe_args(args=["--dataset", "data.csv", "--output_dir", str(tmp_path)])
    assert recipe_args.remap_labels is False and recipe_args.class_names is None


@pytest.mark.parametrize("streaming", [False, True])
def test_all_empty_outlier_texts_are_refused(tiny_bert, tiny_tokenizer, tmp_path, streaming):
    import datasets

    from oe_text import OETrainer, OETrainingArguments

    train = datasets.Dataset.from_dict(
        {"input_ids": [[2, 5, 3]] * 4, "attention_mask": [[1, 1, 1]] * 4, "label": [0, 1] * 2}
    )
    outliers = datasets.Dataset.from_dict({"text": ["", "  ", ""]})
    if streaming:
        outliers = outliers.to_iterable_dataset()
    args = OETrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    with pytest.raises(ValueError, match="texts are empty"):
        OETrainer(
            model=tiny_bert, args=args, train_dataset=train, processing_class=tiny_tokenizer, outlier_dataset=outliers
        )
