"""Peak resident memory of OE training as the auxiliary corpus grows 1x, 10x, 100x: streamed vs in memory.

Each (corpus size, mode) runs in a fresh Python process, so its peak resident set size (`ru_maxrss`) is its own. The
process trains the paper's GRU on SST-2 with `OETrainer` for `--steps` steps (64 ID + 64 outliers per step), then
keeps drawing from the same trainer's outlier stream until `--draw` more outliers have come out, so every size does
the same work. The corpus is the WikiText-2 sentences of the offline mirror (validation + test, 16,502 sentences)
repeated 1x, 10x or 100x:

* `streamed`: a `datasets.IterableDataset.from_generator` yielding the sentences (what `load_outlier_dataset(...,
  streaming=True)` returns for a large corpus): tokenized lazily, shuffled through `OETrainer`'s 10,000-row buffer;
* `in-memory`: a `datasets.Dataset.from_dict` holding all sentences, tokenized up front by `OETrainer` (1x and 10x by
  default: tokenizing 1.65 million sentences up front takes minutes on a small CPU).

    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/bench_memory.py --scales 1 10 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import gru_tokenizer, md_table, peak_rss_mib, print_header, set_threads


def child(args) -> dict:
    """One measurement in this (fresh) process; returns the numbers as a dict."""
    import datasets
    from transformers import set_seed

    from oe_text import OETrainer, OETrainingArguments
    from oe_text.data import load_id_dataset, load_outlier_dataset
    from oe_text.modeling_oe import OEClassifier
    from oe_text.recipe import tokenize_dataset

    set_threads(args.threads)
    start = time.time()
    sst2 = load_id_dataset("sst2")
    tokenizer = gru_tokenizer(sst2["train"]["text"], max_length=64)
    train = tokenize_dataset(sst2["train"], tokenizer, 64)
    sentences = list(load_outlier_dataset("wikitext2", split="validation+test")["text"])
    n_corpus = len(sentences) * args.scale
    if args.mode == "streamed":

        def generate(repeats: int):
            for _ in range(repeats):
                for text in sentences:
                    yield {"text": text}

        outliers = datasets.IterableDataset.from_generator(
            generate,
            gen_kwargs={"repeats": args.scale},
            features=datasets.Features({"text": datasets.Value("string")}),
        )
    else:
        outliers = datasets.Dataset.from_dict({"text": sentences * args.scale})
    set_seed(0)  # seeded construction
    model = OEClassifier.from_rnn("gru", tokenizer=tokenizer, id2label=["negative", "positive"])
    rss_setup = peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        training_args = OETrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=64,
            max_steps=args.steps,
            learning_rate=0.01,
            max_grad_norm=0.0,
            oe_weight=1.0,
            oe_max_length=64,
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            seed=0,
        )
        trainer = OETrainer(
            model=model, args=training_args, train_dataset=train, processing_class=tokenizer, outlier_dataset=outliers
        )
        train_start = time.time()
        trainer.train()
        train_s = time.time() - train_start
    rss_trained = peak_rss_mib()
    drained = 0
    drain_start = time.time()
    stream = trainer.outlier_stream
    while drained < args.draw:
        drained += len(stream.next_rows())
    return {
        "mode": args.mode,
        "scale": args.scale,
        "corpus_sentences": n_corpus,
        "steps": args.steps,
        "outliers_in_training": args.steps * 64,
        "outliers_drawn_after": drained,
        "passes_started": stream.epoch + 1,
        "peak_rss_after_setup_mib": rss_setup,
        "peak_rss_after_training_mib": rss_trained,
        "peak_rss_mib": peak_rss_mib(),
        "train_s": train_s,
        "drain_s": time.time() - drain_start,
        "total_s": time.time() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", nargs="+", type=int, default=[1, 10, 100], help="streamed corpus sizes")
    parser.add_argument("--in-memory-scales", nargs="*", type=int, default=[1, 10], help="in-memory corpus sizes")
    parser.add_argument("--steps", type=int, default=30, help="OETrainer steps")
    parser.add_argument("--draw", type=int, default=50_000, help="outliers drawn from the stream after training")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="streamed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return

    set_threads(args.threads)
    print_header("Scale: peak resident memory vs auxiliary corpus size")
    results = []
    plan = [("streamed", s) for s in args.scales] + [("in-memory", s) for s in args.in_memory_scales]
    for mode, scale in plan:
        cmd = [sys.executable, __file__, "--child", "--scale", str(scale), "--mode", mode]
        cmd += ["--steps", str(args.steps), "--draw", str(args.draw)]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
            raise SystemExit(f"measurement {mode} x{scale} failed (exit code {proc.returncode})")
        result = json.loads(lines[-1][len("RESULT ") :])
        results.append(result)
        print(
            f"  {mode} x{scale}: peak RSS {result['peak_rss_mib']:.0f} MiB "
            f"({result['total_s']:.0f} s in the measured process)",
            flush=True,
        )
    rows = [
        [
            r["mode"],
            f"{r['scale']}x",
            f"{r['corpus_sentences']:,}",
            r["steps"],
            f"{r['outliers_in_training'] + r['outliers_drawn_after']:,}",
            r["passes_started"],
            f"{r['peak_rss_after_setup_mib']:.0f}",
            f"{r['peak_rss_after_training_mib']:.0f}",
            f"{r['peak_rss_mib']:.0f}",
            f"{r['train_s']:.0f} + {r['drain_s']:.0f}",
        ]
        for r in results
    ]
    header = [
        "auxiliary corpus",
        "size",
        "sentences",
        "train steps",
        "outliers drawn",
        "passes begun",
        "peak RSS after set-up, MiB",
        "after training, MiB",
        "at the end, MiB",
        "train + draw, s",
    ]
    print("\n" + md_table(header, rows))
    by_mode: dict[str, list[dict]] = {}
    for r in results:
        by_mode.setdefault(r["mode"], []).append(r)
    for mode, rs in by_mode.items():
        rs = sorted(rs, key=lambda r: r["scale"])
        if len(rs) > 1:
            growth = rs[-1]["peak_rss_mib"] - rs[0]["peak_rss_mib"]
            print(
                f"\n{mode}: peak RSS at {rs[-1]['scale']}x minus at {rs[0]['scale']}x = {growth:+.0f} MiB "
                f"({rs[-1]['peak_rss_mib'] / rs[0]['peak_rss_mib']:.2f}x)"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
