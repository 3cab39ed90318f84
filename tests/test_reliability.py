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
from oe_text.cli import split_input_lines


REPO = Path(__file__).resolve().parents[1]


def _child_env(**extra) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", **extra)
    env.pop("OE_TEXT_MIRROR", None)
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


def test_detect_never_runs_code_from_a_detector_folder(detector_dir):
    """A tokenizer_config.json with `auto_map` + a .py file: the code must not run, stdin must not be consumed by a
    prompt, every line is answered and stdout holds JSON lines only (the library's tokenizer class is used)."""
    marker = _plant_remote_code(detector_dir, keep_tokenizer_class=True)
    result = _detect_subprocess(detector_dir)
    assert result.returncode == 0, result.stderr.decode()
    assert not marker.exists()
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["text"] for r in records] == ["what is x ?", "how far is it ?", "1", "who is y ?"]
    assert b"custom code" not in result.stdout


def test_detect_refuses_a_tokenizer_that_only_custom_code_can_load(detector_dir):
    marker = _plant_remote_code(detector_dir, keep_tokenizer_class=False)
    result = _detect_subprocess(detector_dir)
    assert result.returncode == 1 and result.stdout == b""
    assert not marker.exists()
    stderr = result.stderr.decode()
    assert "needs custom code" in stderr and "--trust_remote_code" in stderr
    # The same refusal in the library, as a ValueError naming the folder.
    with pytest.raises(ValueError, match=f"tokenizer saved in {detector_dir}.*needs custom code"):
        OEClassifier.from_pretrained(detector_dir)
    assert not marker.exists()
    # An explicit opt-in runs it, and says so on stderr (once).
    result = _detect_subprocess(detector_dir, "--trust_remote_code")
    assert result.returncode == 0, result.stderr.decode()
    assert marker.exists() and len(result.stdout.decode().splitlines()) == 4
    assert result.stderr.decode().count("trust_remote_code=True") == 1


def test_saved_backbone_config_drops_auto_map(detector, tmp_path):
    detector.config.backbone_config["auto_map"] = {"AutoModel": "evil.EvilModel"}
    detector.save_pretrained(tmp_path / "d")
    loaded = OEClassifier.from_pretrained(tmp_path / "d")  # the library's BertModel, no prompt, no import of evil
    assert type(loaded.backbone).__name__ == "BertModel"


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
