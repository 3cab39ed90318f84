"""Why the GRU reproduction misses the paper on SST-2 and 20NG: the paper's text pipeline, one difference at a time.

The recipe (`reproduce_nlp.py`) lower-cases every text and uses a sentencepiece vocabulary trained on the
in-distribution (ID) training text. The paper's torchtext pipeline differs in ways that give a detector cues unrelated
to what a text is about; this script reruns the recipe's GRU baseline + OE fine-tuning (same hyper-parameters, data,
seed and protocol) with one or more of them put back:

* `--tokenizer word`: whitespace split, the 10,000 most frequent training words, every other word `<unk>`.
  Sentencepiece splits unseen words into known pieces and never produces `<unk>`, so with a word vocabulary the share
  of `<unk>` tokens becomes an OOD cue (printed per set) that OE can learn from the auxiliary data.
* `--id-casing sentence` (SST-2): the paper's SST was cased while its WikiText and OOD text were lower-cased; here the
  first letter of every ID sentence is upper-cased and the tokenizer keeps case.
* `--id-preprocess no-short` (20NG): the paper's 20 Newsgroups is Cardoso-Cachopo's `20ng-*-no-short` files: only
  letters kept, lower-cased, words shorter than 3 characters removed, while its OOD and auxiliary sentences keep
  punctuation and short words. Applied here to the ID text (train and test) only, as in the paper.

    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/investigate_shortcuts.py --dataset 20ng \\
        --tokenizer word --id-preprocess no-short
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import evaluation_data, md_table, print_header, set_threads
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast, set_seed

from oe_text import OETrainer, OETrainingArguments
from oe_text.data import TextNormalization, load_id_dataset
from oe_text.evaluation import OODResults, compare_results, evaluate_ood
from oe_text.modeling_oe import OEClassifier
from oe_text.recipe import recipe_defaults, tokenize_dataset
from oe_text.tokenization import train_sentencepiece_tokenizer


PAPER = {
    "sst2": {"fpr90": (74.9, 27.3), "auroc": (61.6, 89.3), "aupr_out": (22.9, 59.4)},
    "20ng": {"fpr90": (42.4, 4.9), "auroc": (82.7, 97.7), "aupr_out": (49.9, 91.9)},
}
_NON_LETTERS = re.compile(r"[^a-z]+")


def word_tokenizer(texts: list[str], max_words: int, lowercase: bool, max_length: int) -> PreTrainedTokenizerFast:
    """torchtext's legacy vocabulary: whitespace split, the `max_words` most frequent training words, `<unk>`."""
    counts = Counter(w for t in texts for w in (t.lower() if lowercase else t).split())
    vocab = {"<pad>": 0, "<unk>": 1}
    for word, _ in counts.most_common(max_words):
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=max_length,
        padding_side="right",
        model_input_names=["input_ids", "attention_mask"],
    )


def unk_share(tokenizer, texts: list[str], max_length: int) -> float:
    """Fraction of (truncated) tokens that are `<unk>`."""
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    total = sum(len(x) for x in ids)
    unk = sum(x.count(tokenizer.unk_token_id) for x in ids)
    return unk / max(total, 1)


def capitalize(batch: dict) -> dict:
    return {"text": [t[:1].upper() + t[1:] for t in batch["text"]]}


def no_short(batch: dict) -> dict:
    """Cardoso-Cachopo's `no-short` 20 Newsgroups: letters only, lower case, words of 3+ characters."""
    words = (_NON_LETTERS.sub(" ", t.lower()).split() for t in batch["text"])
    return {"text": [" ".join(w for w in ws if len(w) >= 3) for ws in words]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(PAPER), default="sst2")
    parser.add_argument("--tokenizer", choices=["word", "sentencepiece"], default="word")
    parser.add_argument("--id-casing", choices=["lower", "sentence"], default="lower")
    parser.add_argument("--id-preprocess", choices=["none", "no-short"], default="none")
    parser.add_argument("--max-eval-samples", type=int, default=None, help="cap on ID test inputs (seeded subset)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--recipe-runs", type=Path, default=Path("outputs/benchmarks/reproduce_nlp"))
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/benchmarks/investigate_shortcuts"))
    args = parser.parse_args()
    set_threads(args.threads)
    start = time.time()
    variant = f"tokenizer={args.tokenizer}, ID casing={args.id_casing}, ID preprocessing={args.id_preprocess}"
    print_header(f"{args.dataset} investigation: {variant}")

    defaults = recipe_defaults("gru", args.dataset)
    max_length = defaults.pop("max_length")
    norm = TextNormalization()  # lower-case everything, as the recipe does for GRUs
    data = load_id_dataset(args.dataset, normalization=norm, seed=args.seed)
    if args.id_casing == "sentence":
        data = data.map(capitalize, batched=True)
    if args.id_preprocess == "no-short":
        data = data.map(no_short, batched=True).filter(lambda t: bool(t), input_columns="text")
        print(f"After no-short preprocessing: {[len(data[s]) for s in ('train', 'test')]} train/test texts kept")
    test, ood, unavailable, outliers = evaluation_data(data["test"], norm, args.max_eval_samples, args.seed)
    cased = args.id_casing == "sentence"
    if args.tokenizer == "word":
        tokenizer = word_tokenizer(data["train"]["text"], 10_000, lowercase=not cased, max_length=max_length)
    else:
        tokenizer = train_sentencepiece_tokenizer(
            data["train"]["text"], vocab_size=10_000, model_max_length=max_length, lowercase=not cased, seed=args.seed
        )
    print(f"Vocabulary: {len(tokenizer)} tokens ({args.tokenizer})\n")
    if args.tokenizer == "word":
        sets = {f"{args.dataset} test (ID)": list(test["text"]), "WikiText-2 (auxiliary)": list(outliers["text"])}
        sets.update({name: list(ds["text"]) for name, ds in ood.items()})
        rows = [[name, f"{100 * unk_share(tokenizer, texts, max_length):.1f}"] for name, texts in sets.items()]
        print(f"Share of `<unk>` tokens (first {max_length} words of each text):\n")
        print(md_table(["texts", "<unk> tokens, %"], rows) + "\n", flush=True)

    train = tokenize_dataset(data["train"], tokenizer, max_length)
    label_names = data["train"].features["label"].names
    set_seed(args.seed)  # seeded construction: the initial weights depend on the seed only
    model = OEClassifier.from_rnn("gru", tokenizer=tokenizer, id2label=label_names)
    fields = {f.name for f in dataclasses.fields(OETrainingArguments)}
    base_kwargs = {k: v for k, v in defaults.items() if k in fields and k != "output_dir"}
    base_kwargs.update(seed=args.seed, disable_tqdm=True, oe_max_length=max_length, logging_steps=50)
    eval_kwargs = dict(batch_size=256, max_length=max_length, unavailable=unavailable, seed=args.seed, progress=False)
    results: dict[str, OODResults] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for phase in ("baseline", "oe"):
            oe_weight = 0.0 if phase == "baseline" else base_kwargs["oe_weight"]
            training_args = OETrainingArguments(output_dir=f"{tmp}/{phase}", **{**base_kwargs, "oe_weight": oe_weight})
            trainer = OETrainer(
                model=model,
                args=training_args,
                train_dataset=train,
                processing_class=tokenizer,
                outlier_dataset=outliers if phase == "oe" else None,
            )
            trainer.train()
            results["Baseline" if phase == "baseline" else "OE"] = evaluate_ood(
                model, tokenizer, test, ood, **eval_kwargs
            )
    label = f"{args.tokenizer} vocabulary" + (", cased ID" if cased else "")
    label += ", no-short ID text" if args.id_preprocess == "no-short" else ""
    print(f"\n### GRU baseline vs OE on {args.dataset}, {label}\n")
    print(compare_results(results, score="msp", digits=1))
    rows = []
    recipe = None
    recipe_run = args.recipe_runs / f"{args.dataset}_seed{args.seed}"
    recipe_file = recipe_run / "results.json"
    if recipe_file.is_file():
        summary = json.loads(recipe_file.read_text())
        recipe = {k: OODResults.from_dict(summary[k]) for k in ("baseline", "oe")}
    for key, name in {"fpr90": "FPR90 ↓", "auroc": "AUROC ↑", "aupr_out": "AUPR ↑"}.items():
        paper = PAPER[args.dataset][key]
        row = [name, f"{paper[0]:.1f} → {paper[1]:.1f}"]
        if recipe is not None:
            row.append(
                f"{100 * recipe['baseline'].mean_metrics('msp')[key]:.1f} → "
                f"{100 * recipe['oe'].mean_metrics('msp')[key]:.1f}"
            )
        row.append(
            f"{100 * results['Baseline'].mean_metrics('msp')[key]:.1f} → "
            f"{100 * results['OE'].mean_metrics('msp')[key]:.1f}"
        )
        rows.append(row)
    header = ["mean over OOD sets (MSP, %)", "paper"]
    if recipe is not None:
        header.append(f"recipe (sentencepiece), {recipe_run.name}")
    header.append(f"this run ({label})")
    print("\n" + md_table(header, rows))
    acc = [f"{100 * results[k].accuracy:.1f}" for k in ("Baseline", "OE")]
    print(f"\nID test accuracy, baseline → OE: {acc[0]} → {acc[1]}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{args.dataset}_{args.tokenizer}_{args.id_casing}_{args.id_preprocess}_seed{args.seed}"
    for name, res in results.items():
        res.save(args.output_dir / tag / name.lower(), plots=False)
    print(f"Total wall time {time.time() - start:.0f} s; mean over subsets uses seed {args.seed}")


if __name__ == "__main__":
    main()
