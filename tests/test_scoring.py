"""`oe-text score`: files and Hub datasets in, records in input order out, the same under several processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from oe_text import OEClassifier, OEConfig
from oe_text.cli import main as cli_main


REPO = Path(__file__).resolve().parents[1]
WORDS = ["what", "is", "the", "capital", "of", "peru", "how", "far", "moon", "who", "wrote", "hamlet", "a", "dog"]


def _texts(n: int) -> list[str | None]:
    texts = [" ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(1 + i % 6)) for i in range(n)]
    texts[4], texts[9] = "", None  # blank and missing texts keep their rows
    return texts


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory, tiny_tokenizer, tiny_bert_config) -> Path:
    torch.manual_seed(0)
    model = OEClassifier(OEConfig(backbone_config=tiny_bert_config.to_dict(), num_labels=3))
    model.tokenizer = tiny_tokenizer
    model.calibrate_threshold([t for t in _texts(37) if t], tpr=0.7)  # flags about 30% of the corpus
    folder = tmp_path_factory.mktemp("scoring") / "detector"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    texts = _texts(37)
    path = tmp_path_factory.mktemp("corpus") / "corpus.parquet"
    ids = [f"doc-{i:03d}" for i in range(len(texts))]
    pq.write_table(pa.table({"uid": ids, "body": texts, "other": list(range(len(texts)))}), path, row_group_size=8)
    return path


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OE_TEXT_")) and "proxy" not in k.lower()}
    # One thread per process in both runs: the same batch then gives the same floats.
    env.update(PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    return env


def _score_args(detector_dir, corpus, output) -> list[str]:
    return ["score", "--model", str(detector_dir), "--input", str(corpus), "--text_column", "body", "--id_column",
            "uid", "--output", str(output), "--chunk_size", "5", "--batch_size", "3", "--no_progress"]  # fmt: skip


@pytest.mark.multiprocess
def test_two_processes_write_the_same_parquet_as_one(detector_dir, corpus, tmp_path):
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    single = [sys.executable, "-m", "oe_text.cli", *_score_args(detector_dir, corpus, one)]
    result = subprocess.run(single, env=_child_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # `--cpu --num_processes 2` silently starts one process; --multi_gpu with ACCELERATE_USE_CPU starts two.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
              "-m", "oe_text.cli", *_score_args(detector_dir, corpus, two)]  # fmt: skip
    result = subprocess.run(launch, env=_child_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "two.parquet.parts").exists()
    rows_one, rows_two = pq.read_table(one).to_pylist(), pq.read_table(two).to_pylist()
    assert rows_two == rows_one  # row for row, float for float
    assert [r["row"] for r in rows_one] == list(range(37))
    assert [r["uid"] for r in rows_one] == [f"doc-{i:03d}" for i in range(37)]
    assert rows_one[4]["label"] is None and rows_one[9]["ood_score"] is None
    assert sum(r["label"] is not None for r in rows_one) == 35

    # The records are the detector's own decisions (its configured score and threshold) on those texts.
    model = OEClassifier.from_pretrained(detector_dir)
    texts = [t for t in _texts(37) if t]
    expected = model.detect(texts)
    got = [r for r in rows_one if r["label"] is not None]
    assert [r["label"] for r in got] == [d["label"] for d in expected]
    threshold = model.config.ood_threshold
    assert [r["is_ood"] for r in got] == [r["ood_score"] > threshold for r in got]
    assert any(r["is_ood"] for r in got) and not all(r["is_ood"] for r in got)
    assert max(r["ood_score"] for r in got) - min(r["ood_score"] for r in got) > 1e-3
    for r, d in zip(got, expected):
        assert r["ood_score"] == pytest.approx(d["ood_score"], abs=1e-5)
        assert r["probability"] == pytest.approx(d["score"], abs=1e-5)


def _records(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _drop(records, *keys):
    return [{k: v for k, v in r.items() if k not in keys} for r in records]


def test_jsonl_csv_and_text_inputs_give_the_parquet_records(detector_dir, corpus, tmp_path, capsys):
    reference = tmp_path / "ref.jsonl"
    assert cli_main(_score_args(detector_dir, corpus, reference)) == 0
    ref = _records(reference)
    assert len(ref) == 37

    rows = pq.read_table(corpus).to_pylist()
    jsonl = tmp_path / "corpus.jsonl"
    # A BOM, \r\n endings, a blank line (skipped, not a row) and a \u2028 inside a text (not a line break).
    lines = [json.dumps({"uid": r["uid"], "body": r["body"]}, ensure_ascii=False) for r in rows]
    lines.insert(3, "   ")
    jsonl.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    out = tmp_path / "from_jsonl.parquet"
    assert cli_main([*_score_args(detector_dir, jsonl, out), "--include_text"]) == 0
    got = _records(out)
    assert _drop(got, "text") == ref
    assert [r["text"] for r in got] == [r["body"] for r in rows]

    csv_file = tmp_path / "corpus.csv"
    with open(csv_file, "w", encoding="latin-1", newline="") as file:
        file.write("uid,body\n" + "".join(f'{r["uid"]},"{r["body"] or ""}"\n' for r in rows))
    out = tmp_path / "from_csv.jsonl"
    assert cli_main([*_score_args(detector_dir, csv_file, out), "--encoding", "latin-1"]) == 0
    assert _records(out) == ref  # the missing text reads as an empty field: a row without results, as before

    txt = tmp_path / "corpus.txt"
    txt.write_text("\n".join(r["body"] or "" for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "from_txt.jsonl"
    args = ["score", "--model", str(detector_dir), "--input", str(txt), "--output", str(out), "--chunk_size", "4"]
    assert cli_main([*args, "--id_column", "line", "--no_progress"]) == 0
    got = _records(out)
    # Blank lines are no rows of a text file; `line` keeps each text's place in the file.
    kept = [i for i, r in enumerate(rows) if r["body"]]
    assert [r["line"] for r in got] == [i + 1 for i in kept]
    # Other chunks (no blank rows) mean other batches: the same numbers up to float noise.
    expected = [ref[i] for i in kept]
    assert [r["label"] for r in got] == [r["label"] for r in expected]
    assert [r["ood_score"] for r in got] == pytest.approx([r["ood_score"] for r in expected], abs=1e-6)


def test_hub_dataset_through_the_mirror(detector_dir, corpus, tmp_path, monkeypatch, capsys):
    mirror = tmp_path / "mirror"
    folder = mirror / "datasets" / "acme" / "corpus"
    folder.mkdir(parents=True)
    pq.write_table(pq.read_table(corpus), folder / "test.parquet")
    monkeypatch.setenv("OE_TEXT_MIRROR", str(mirror))
    reference, out = tmp_path / "ref.jsonl", tmp_path / "hub.jsonl"
    assert cli_main(_score_args(detector_dir, corpus, reference)) == 0
    args = _score_args(detector_dir, corpus, out)
    args[args.index("--input") : args.index("--input") + 2] = ["--dataset", "acme/corpus", "--split", "test"]
    assert cli_main(args) == 0
    assert _records(out) == _records(reference)


@pytest.mark.parametrize(
    "name, content, extra, message",
    [
        ("bad.jsonl", b'{"body": "a b"}\n{"body": "c"\n', [], "line 2 of '{path}' is not valid JSON"),
        ("bad2.jsonl", b'{"body": "a b"}\n["c"]\n', [], "line 2 of '{path}' is a JSON list"),
        ("bad3.jsonl", b'{"body": "a"}\n\n{"text": "c"}\n', [], "line 3 of '{path}' has no column 'body'"),
        ("bad4.jsonl", b'{"body": "a"}\n{"body": 3}\n', [], "line 2 of '{path}': column 'body' holds a int"),
        ("bad.txt", b"ok\nnot \xff ok\n", [], "line 2 of '{path}' is not valid utf-8 (byte b'\\xff' at character 5"),
        ("bad.csv", b"uid,text\n1,a\n", [], "'{path}' has no column 'body' (--text_column); its columns are"),
        ("bad2.csv", b"uid,body\n1,a\n2,b,c\n", [], "line 3 of '{path}' has 3 fields, the header 2"),
        ("ok.txt", b"a\n", ["--encoding", "klingon"], "unknown --encoding 'klingon'"),
        ("ok2.txt", b"a\n", ["--output", "-", "--output_format", "parquet"], "Parquet cannot be written to standard"),
    ],
)
def test_input_errors_name_the_file_and_line(detector_dir, tmp_path, capsys, name, content, extra, message):
    path = tmp_path / name
    path.write_bytes(content)
    args = ["score", "--model", str(detector_dir), "--input", str(path), "--text_column", "body"]
    with pytest.raises(SystemExit) as err:
        cli_main([*args, "--output", str(tmp_path / "out.jsonl"), *extra])
    assert message.format(path=path) in str(err.value)


def test_score_needs_one_source(detector_dir, tmp_path):
    with pytest.raises(SystemExit, match="exactly one of --input FILE and --dataset"):
        cli_main(["score", "--model", str(detector_dir), "--output", str(tmp_path / "o.jsonl")])
    with pytest.raises(SystemExit, match="does not exist"):
        cli_main(["score", "--model", str(detector_dir), "--input", "nope.parquet", "--output", "o.jsonl"])
