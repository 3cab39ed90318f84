"""Why the GRU reproduction misses the paper on SST-2 and 20NG: the paper's text pipeline, one difference at a time.

The recipe (`reproduce_nlp.py`) lower-cases every text and uses a sentencepiece vocabulary trained on the
in-distribution (ID) training text. The paper's torchtext pipeline differs in ways that give a detector cues unrelated
to what a text is about; this script reruns the recipe's GRU baseline + OE fine-tuning (same hyper-parameters, data,
seed and protocol) with one or more of them put back:

* `--tokenizer word`: whitespace split, the 10,000 most frequent training words, every other word `<unk>`.
  Sentencepiece splits unseen words into known pieces and produces `<unk>` only for characters the ID training text
  lacks (digits, symbols, accents: 0.2% of SST-2 test tokens, 0.1-5% of OOD tokens, 4.7% of WikiText's), so with a
  word vocabulary (8% of SST-2 test tokens, 20-33% of OOD and WikiText tokens) the share of `<unk>` tokens becomes a
  much stronger OOD cue (printed per set) that OE can learn from the auxiliary data.
* `--id-casing sentence` (SST-2): the paper's SST was cased while its WikiText and OOD text were lower-cased; here the
  first letter of every ID sentence is upper-cased and the tokenizer keeps case.
* `--id-preprocess no-short` (20NG): the paper's 20 Newsgroups is Cardoso-Cachopo's `20ng-*-no-short` files: only
  letters kept, lower-cased, words shorter than 3 characters removed, while its OOD and auxiliary sentences keep
  punctuation and short words. Applied here to the ID text (train and test) only, as in the paper.
* `--id-fixed-length 100` (20NG): the paper's 20NG text field was `Field(pad_first=True, fix_length=100)`: every ID
  post cut or padded at the front to exactly 100 tokens, and its GRU (no packing) ran over the padding, while the OOD
  and WikiText fields were not fixed (only padded to the longest text of their bucketed batch). Here every ID text,
  train and test, is padded at the front to exactly N tokens with the pads marked as real tokens, so the GRU reads
  them (zero embeddings, `padding_idx`, as in the paper) and the number of steps it runs says "in-distribution"; OOD
  and auxiliary texts keep their own lengths.
* `--auxiliary-unk-policy keep`: WikiText-2's release writes rare words as the literal `<unk>`; the recipe removes it
  (`load_outlier_dataset(unk_policy="remove")`), the paper's loader kept it. Kept, it becomes the tokenizer's `<unk>`
  id in the auxiliary text only (no OOD test set carries the literal; with sentencepiece on SST-2 WikiText's `<unk>`
  share goes from 4.7% to 8.3%), a cue OE can learn.

Each variant runs for every `--seeds` seed (tokenizer, initial weights, batches and OOD subsets follow the seed) and
ends with a table of mean ± std over the seeds. Each seed's results go to `--output-dir`, in a folder named for the
variant and its budget (`--max-train-samples`, `--num-train-epochs`, `--max-eval-samples`, `--ood-datasets` where
given) with a `variant.json`; `--summary-only` trains nothing and prints one table of every variant of `--dataset`
found there, so single-factor ablations run as separate commands and are read side by side.

    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/investigate_shortcuts.py --dataset 20ng \\
        --tokenizer word --id-preprocess no-short
    .venv/bin/python benchmarks/investigate_shortcuts.py --dataset 20ng --tokenizer sentencepiece \\
        --id-fixed-length 100 --seeds 42 43 44
    .venv/bin/python benchmarks/investigate_shortcuts.py --dataset 20ng --summary-only
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

import numpy as np
from _common import evaluation_data, md_table, mean_std, print_header, set_threads
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast, set_seed

from oe_text import OETrainer, OETrainingArguments
from oe_text.data import TextNormalization, load_id_dataset
from oe_text.evaluation import OODResults, compare_results, evaluate_ood, evaluate_ood_from_logits, plan_ood_subsets
from oe_text.inference import predict_outputs
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


class FrontPaddedTokenizer:
    """`tokenizer` with every text cut or padded at the front to exactly `length` tokens, the pads marked as real
    tokens (attention mask 1) so that the GRU runs over them, as the paper's torchtext field
    `Field(pad_first=True, fix_length=100)` fed its unpacked GRU; the pad embedding is zero (`padding_idx`), as there.
    Other attributes are the wrapped tokenizer's."""

    def __init__(self, tokenizer, length: int):
        self.tokenizer = tokenizer
        self.length = length

    def __getattr__(self, name: str):
        return getattr(self.tokenizer, name)

    def __call__(self, texts, **kwargs):
        kwargs.update(padding="max_length", truncation=True, max_length=self.length)
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            enc = self.tokenizer(texts, **kwargs)
        finally:
            self.tokenizer.padding_side = side
        mask = enc["attention_mask"]
        enc["attention_mask"] = (
            mask.new_ones(mask.shape) if hasattr(mask, "new_ones") else [[1] * len(m) for m in mask]
        )
        return enc


def evaluate_front_padded_id(model, tokenizer, length: int, test, ood: dict, **eval_kwargs) -> OODResults:
    """`evaluate_ood` with the ID test texts front-padded to `length` visible tokens and the OOD texts as they are
    (the paper's 20NG evaluation); same protocol, OOD subsets and MSP score."""
    seed, batch_size, max_length = eval_kwargs["seed"], eval_kwargs["batch_size"], eval_kwargs["max_length"]
    plan = plan_ood_subsets(len(test), {name: len(ds) for name, ds in ood.items()}, seed=seed)
    id_tokenizer = FrontPaddedTokenizer(tokenizer, length)
    id_logits, _ = predict_outputs(model, id_tokenizer, list(test["text"]), batch_size=batch_size, max_length=length)
    ood_logits = {}
    for name, ds in ood.items():
        texts = ds["text"]
        rows = [texts[int(i)] for i in plan.indices_to_score(name)]
        ood_logits[name] = predict_outputs(model, tokenizer, rows, batch_size=batch_size, max_length=max_length)[0]
    return evaluate_ood_from_logits(
        id_logits,
        ood_logits,
        id_labels=np.asarray(test["label"]),
        seed=seed,
        unavailable=eval_kwargs["unavailable"],
        plan=plan,
    )


def variant_label(args: argparse.Namespace) -> str:
    label = f"{args.tokenizer} vocabulary" + (", cased ID" if args.id_casing == "sentence" else "")
    label += ", no-short ID text" if args.id_preprocess == "no-short" else ""
    label += f", ID fixed at {args.id_fixed_length} tokens" if args.id_fixed_length else ""
    label += f", auxiliary <unk> {args.auxiliary_unk_policy}" if args.auxiliary_unk_policy != "remove" else ""
    return label


def _budget(args: argparse.Namespace) -> list[tuple[str, str]]:
    """`(folder-name suffix, label)` of each budget setting that differs from the recipe's: training texts, epochs per
    phase, ID test inputs, OOD sets."""
    parts = []
    if args.max_train_samples:
        parts.append((f"_train{args.max_train_samples}", f"{args.max_train_samples} training texts"))
    if args.num_train_epochs is not None:
        parts.append((f"_ep{args.num_train_epochs:g}", f"{args.num_train_epochs:g} epochs per phase"))
    if args.max_eval_samples:
        parts.append((f"_eval{args.max_eval_samples}", f"{args.max_eval_samples} ID test inputs"))
    if args.ood_datasets:
        parts.append((f"_ood-{'+'.join(args.ood_datasets)}", f"OOD sets {' '.join(args.ood_datasets)}"))
    return parts


def budget_label(args: argparse.Namespace) -> str:
    return ", ".join(label for _, label in _budget(args)) or "recipe's"


def variant_tag(args: argparse.Namespace) -> str:
    """Folder name of a variant's runs (without the seed): the factors, then the budget where it is not the recipe's,
    so that runs at another budget never overwrite these."""
    tag = f"{args.dataset}_{args.tokenizer}_{args.id_casing}_{args.id_preprocess}"
    tag += f"_fixed{args.id_fixed_length}" if args.id_fixed_length else ""
    tag += f"_unk-{args.auxiliary_unk_policy}" if args.auxiliary_unk_policy != "remove" else ""
    return tag + "".join(suffix for suffix, _ in _budget(args))


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, OODResults]:
    """Baseline, then OE fine-tuning, of the recipe's GRU under the variant `args`, with one seed."""
    defaults = recipe_defaults("gru", args.dataset)
    max_length = defaults.pop("max_length")
    norm = TextNormalization()  # lower-case everything, as the recipe does for GRUs
    data = load_id_dataset(args.dataset, normalization=norm, seed=seed)
    if args.max_train_samples and args.max_train_samples < len(data["train"]):
        data["train"] = data["train"].shuffle(seed=seed).select(range(args.max_train_samples))
    if args.id_casing == "sentence":
        data = data.map(capitalize, batched=True)
    if args.id_preprocess == "no-short":
        data = data.map(no_short, batched=True).filter(lambda t: bool(t), input_columns="text")
        print(f"After no-short preprocessing: {[len(data[s]) for s in ('train', 'test')]} train/test texts kept")
    test, ood, unavailable, outliers = evaluation_data(
        data["test"], norm, args.max_eval_samples, seed, args.auxiliary_unk_policy, args.ood_datasets
    )
    cased = args.id_casing == "sentence"
    if args.tokenizer == "word":
        tokenizer = word_tokenizer(data["train"]["text"], 10_000, lowercase=not cased, max_length=max_length)
    else:
        tokenizer = train_sentencepiece_tokenizer(
            data["train"]["text"], vocab_size=10_000, model_max_length=max_length, lowercase=not cased, seed=seed
        )
    print(f"Vocabulary: {len(tokenizer)} tokens ({args.tokenizer})\n")
    if seed == args.seeds[0]:
        sets = {f"{args.dataset} test (ID)": list(test["text"]), "WikiText-2 (auxiliary)": list(outliers["text"])}
        sets.update({name: list(ds["text"]) for name, ds in ood.items()})
        rows = [[name, f"{100 * unk_share(tokenizer, texts, max_length):.1f}"] for name, texts in sets.items()]
        print(f"Share of `<unk>` tokens (first {max_length} tokens of each text):\n")
        print(md_table(["texts", "<unk> tokens, %"], rows) + "\n", flush=True)

    if args.id_fixed_length:
        # Exactly `id_fixed_length` tokens per ID training text; outliers keep their lengths (drawn from the bucket of
        # texts up to that length by the recipe's `oe_length_matching="bucket"`).
        id_tokenizer = FrontPaddedTokenizer(tokenizer, args.id_fixed_length)
        train = data["train"].map(
            lambda b: id_tokenizer(b["text"]),
            batched=True,
            remove_columns=[c for c in data["train"].column_names if c != "label"],
        )
    else:
        train = tokenize_dataset(data["train"], tokenizer, max_length)
    label_names = data["train"].features["label"].names
    set_seed(seed)  # seeded construction: the initial weights depend on the seed only
    model = OEClassifier.from_rnn("gru", tokenizer=tokenizer, id2label=label_names)
    fields = {f.name for f in dataclasses.fields(OETrainingArguments)}
    base_kwargs = {k: v for k, v in defaults.items() if k in fields and k != "output_dir"}
    base_kwargs.update(seed=seed, disable_tqdm=True, oe_max_length=max_length, logging_steps=50)
    if args.num_train_epochs is not None:
        base_kwargs["num_train_epochs"] = args.num_train_epochs
    eval_kwargs = dict(batch_size=256, max_length=max_length, unavailable=unavailable, seed=seed)
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
            name = "Baseline" if phase == "baseline" else "OE"
            if args.id_fixed_length:
                results[name] = evaluate_front_padded_id(
                    model, tokenizer, args.id_fixed_length, test, ood, **eval_kwargs
                )
            else:
                results[name] = evaluate_ood(model, tokenizer, test, ood, progress=False, **eval_kwargs)
    print(f"\n### GRU baseline vs OE on {args.dataset}, {variant_label(args)}, seed {seed}\n")
    print(compare_results(results, score="msp", digits=1))
    return results


METRICS = {"fpr90": "FPR90 ↓", "auroc": "AUROC ↑", "aupr_out": "AUPR ↑"}


def _accuracy_change(runs: list[dict[str, OODResults]]) -> str:
    acc = [[100 * run[phase].accuracy for run in runs] for phase in ("baseline", "oe")]
    return f"{mean_std(acc[0])} → {mean_std(acc[1])}"


def _change(runs: list[dict[str, OODResults]], key: str) -> str:
    """`baseline → OE` of the mean over OOD sets (MSP, %), each side mean ± std over `runs`."""
    sides = [[100 * run[phase].mean_metrics("msp")[key] for run in runs] for phase in ("baseline", "oe")]
    return f"{mean_std(sides[0])} → {mean_std(sides[1])}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(PAPER), default="sst2")
    parser.add_argument("--tokenizer", choices=["word", "sentencepiece"], default="word")
    parser.add_argument("--id-casing", choices=["lower", "sentence"], default="lower")
    parser.add_argument("--id-preprocess", choices=["none", "no-short"], default="none")
    parser.add_argument(
        "--id-fixed-length",
        type=int,
        default=None,
        help="pad every ID text (train and test) at the front to exactly this many tokens, read by the GRU "
        "(the paper's 20NG: 100); OOD and auxiliary texts keep their lengths",
    )
    parser.add_argument(
        "--auxiliary-unk-policy",
        choices=["remove", "drop", "keep"],
        default="remove",
        help="WikiText's literal <unk>: 'remove' (the recipe), 'drop' its sentences, 'keep' (the paper)",
    )
    parser.add_argument(
        "--ood-datasets", nargs="+", default=None, help="OOD presets to evaluate (default: the recipe's, all of them)"
    )
    parser.add_argument("--max-eval-samples", type=int, default=None, help="cap on ID test inputs (seeded subset)")
    parser.add_argument("--max-train-samples", type=int, default=None, help="cap on ID training texts (smoke runs)")
    parser.add_argument("--num-train-epochs", type=float, default=None, help="epochs per phase (default: recipe's)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="one baseline + OE run per seed")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--recipe-runs", type=Path, default=Path("outputs/benchmarks/reproduce_nlp"))
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/benchmarks/investigate_shortcuts"))
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="train nothing: print one table of every variant of --dataset saved under --output-dir",
    )
    args = parser.parse_args()
    if args.id_fixed_length is not None and args.id_fixed_length < 1:
        parser.error("--id-fixed-length must be a positive number of tokens")
    if args.summary_only:
        print(f"### {args.dataset}: mean over OOD sets, baseline → OE, mean ± std over each variant's seeds\n")
        print(summary_table(args.dataset, args.output_dir))
        return
    set_threads(args.threads)
    start = time.time()
    variant = (
        f"tokenizer={args.tokenizer}, ID casing={args.id_casing}, ID preprocessing={args.id_preprocess}, "
        f"ID fixed length={args.id_fixed_length or 'no'}, auxiliary <unk>={args.auxiliary_unk_policy}"
    )
    print_header(f"{args.dataset} investigation: {variant}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        results = run_seed(args, seed)
        runs.append({"baseline": results["Baseline"], "oe": results["OE"]})
        run_dir = args.output_dir / f"{variant_tag(args)}_seed{seed}"
        for name, res in results.items():
            res.save(run_dir / name.lower(), plots=False)
        meta = {"dataset": args.dataset, "tag": variant_tag(args), "seed": seed}
        meta.update(label=variant_label(args), budget=budget_label(args))
        (run_dir / "variant.json").write_text(json.dumps(meta, indent=2) + "\n")

    recipe_runs = []
    for seed in args.seeds:
        recipe_file = args.recipe_runs / f"{args.dataset}_seed{seed}" / "results.json"
        if recipe_file.is_file():
            summary = json.loads(recipe_file.read_text())
            recipe_runs.append({k: OODResults.from_dict(summary[k]) for k in ("baseline", "oe")})
    seeds = " ".join(str(s) for s in args.seeds)
    rows = []
    for key, name in METRICS.items():
        paper = PAPER[args.dataset][key]
        row = [name, f"{paper[0]:.1f} → {paper[1]:.1f}"]
        if recipe_runs:
            row.append(_change(recipe_runs, key))
        rows.append([*row, _change(runs, key)])
    rows.append(["ID test accuracy", "", *([""] if recipe_runs else []), _accuracy_change(runs)])
    header = ["mean over OOD sets (MSP, %)", "paper"]
    if recipe_runs:
        header.append(f"recipe (sentencepiece), {len(recipe_runs)} of the seeds' runs in {args.recipe_runs}")
    header.append(f"this run ({variant_label(args)})")
    print(f"\n### {args.dataset}, baseline → OE, mean ± std over seeds {seeds}\n")
    print(md_table(header, rows))
    print(f"\nTotal wall time {time.time() - start:.0f} s; each seed's mean over OOD subsets uses that seed")


def summary_table(dataset: str, output_dir: Path) -> str:
    """Every variant of `dataset` saved under `output_dir`, one row each (baseline → OE, mean ± std over its seeds),
    under the paper's row; the recipe's own pipeline (sentencepiece, lower case, nothing put back) first."""
    groups: dict[str, list[dict]] = {}
    for path in sorted(output_dir.glob("*/variant.json")):
        variant = json.loads(path.read_text())
        if variant["dataset"] == dataset and (path.parent / "oe" / "results.json").is_file():
            results = {phase: OODResults.from_json(path.parent / phase) for phase in ("baseline", "oe")}
            groups.setdefault(variant["tag"], []).append({**variant, **results})
    if not groups:
        raise SystemExit(f"No finished {dataset} runs (folders with variant.json and oe/results.json) in {output_dir}")
    paper = PAPER[dataset]
    rows = [["paper", "", "", *(f"{paper[k][0]:.1f} → {paper[k][1]:.1f}" for k in METRICS), ""]]
    # The recipe's pipeline (no factor put back) first, then by budget and label.
    order = sorted(
        groups.values(), key=lambda r: (r[0]["budget"], r[0]["label"] != "sentencepiece vocabulary", r[0]["label"])
    )
    for runs in order:
        runs.sort(key=lambda r: r["seed"])
        seeds = " ".join(str(r["seed"]) for r in runs)
        rows.append(
            [runs[0]["label"], runs[0]["budget"], seeds, *(_change(runs, k) for k in METRICS), _accuracy_change(runs)]
        )
    header = ["variant", "budget", "seeds", *(f"{name} (MSP, %)" for name in METRICS.values()), "ID test accuracy, %"]
    return md_table(header, rows)


if __name__ == "__main__":
    main()
