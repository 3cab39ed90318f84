"""`benchmarks/investigate_shortcuts.py`: ID texts fixed at N tokens (the paper's `fix_length`, `pad_first`), and the
same seed printing the same tables."""

import sys
from pathlib import Path

import pytest
import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import investigate_shortcuts  # noqa: E402
from investigate_shortcuts import FrontPaddedTokenizer, word_tokenizer  # noqa: E402

from oe_text import OEClassifier  # noqa: E402
from oe_text.evaluation import OODResults  # noqa: E402


def test_front_padded_tokenizer_pads_in_front_and_the_gru_reads_the_pads():
    tokenizer = word_tokenizer(["a b c d e f g h", "a b"], 100, lowercase=True, max_length=64)
    fixed = FrontPaddedTokenizer(tokenizer, 6)
    enc = fixed(["a b c", "a b c d e f g h"])
    ids = {w: tokenizer.convert_tokens_to_ids(w) for w in "abcdef"}
    pad = tokenizer.pad_token_id
    # Short texts padded at the front, long ones cut to their first 6 tokens; every position is a real token.
    assert enc["input_ids"] == [[pad, pad, pad, ids["a"], ids["b"], ids["c"]], [ids[w] for w in "abcdef"]]
    assert enc["attention_mask"] == [[1] * 6, [1] * 6]
    assert tokenizer.padding_side == "right"  # the wrapped tokenizer is left as it was
    assert fixed.pad_token_id == pad and fixed.model_max_length == 64

    torch.manual_seed(0)
    model = OEClassifier.from_rnn("gru", tokenizer=tokenizer, embedding_dim=4, hidden_size=4, num_layers=1).eval()
    with torch.no_grad():
        padded = model(**fixed(["a b c"], return_tensors="pt")).logits
        plain = model(**tokenizer(["a b c"], return_tensors="pt")).logits
        # The same front padding marked as padding is packed away: then the result equals the plain text's.
        masked = fixed(["a b c"], return_tensors="pt")
        masked["attention_mask"] = (masked["input_ids"] != pad).long()
        packed = model(**masked).logits
    torch.testing.assert_close(packed, plain)
    assert not torch.allclose(padded, plain)  # three zero-embedding steps before the text change the GRU's state


def _tables(capsys, argv, monkeypatch):
    """Run the script's `main` with `argv` and return what it printed from the first per-seed table on (the header
    before it names the date and load, the last line the wall time)."""
    monkeypatch.setattr(sys, "argv", ["investigate_shortcuts.py", *argv])
    investigate_shortcuts.main()
    out = capsys.readouterr().out
    return out[out.index("### GRU baseline vs OE") : out.index("Total wall time")]


@pytest.mark.integration
def test_same_seed_prints_identical_tables_and_another_seed_differs(mirror, tmp_path, capsys, monkeypatch):
    small = ["--dataset", "sst2", "--tokenizer", "sentencepiece", "--id-casing", "sentence", "--max-train-samples",
             "128", "--max-eval-samples", "60", "--num-train-epochs", "1", "--ood-datasets", "snli", "multi30k",
             "--output-dir", str(tmp_path), "--recipe-runs", str(tmp_path / "none")]  # fmt: skip
    first = _tables(capsys, [*small, "--seeds", "7"], monkeypatch)
    again = _tables(capsys, [*small, "--seeds", "7"], monkeypatch)
    other = _tables(capsys, [*small, "--seeds", "8"], monkeypatch)
    assert "snli" in first and "multi30k" in first and "imdb" not in first  # only the OOD sets asked for
    assert first == again
    assert first.replace("seed 7", "seed 8").replace("seeds 7", "seeds 8") != other
    tag = "sst2_sentencepiece_sentence_none_train128_ep1_eval60_ood-snli+multi30k"
    saved = sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != "none")
    assert saved == [f"{tag}_seed7", f"{tag}_seed8"]  # the budget is in the name: other budgets never overwrite

    # The summary reads the saved runs back: one row per variant, its seeds' mean ± std, the paper's row above.
    monkeypatch.setattr(sys, "argv", ["investigate_shortcuts.py", "--summary-only", "--dataset", "sst2",
                                      "--output-dir", str(tmp_path)])  # fmt: skip
    investigate_shortcuts.main()
    summary = capsys.readouterr().out.splitlines()
    rows = [line for line in summary if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| paper", "| sentencepiece vocabulary, cased ID"]
    cells = rows[1].strip("| ").split(" | ")
    assert cells[1:3] == ["128 training texts, 1 epochs per phase, 60 ID test inputs, OOD sets snli multi30k", "7 8"]
    oe_runs = [OODResults.from_json(tmp_path / f"{tag}_seed{seed}" / "oe") for seed in (7, 8)]
    fpr = [100 * res.mean_metrics("msp")["fpr90"] for res in oe_runs]
    assert cells[3].endswith(f"→ {investigate_shortcuts.mean_std(fpr)}")
