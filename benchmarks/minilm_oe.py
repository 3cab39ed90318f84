"""all-MiniLM-L6-v2 on SST-2: baseline vs + OE vs + energy-bounded OE, and every OOD score on the OE model.

One baseline is fine-tuned with the recipe's encoder settings (AdamW lr 5e-5, linear schedule, 10% warm-up, weight
decay 0.01, batch 32, max_length 64); two copies of it are then fine-tuned for the same number of steps with
`OETrainer`: Outlier Exposure (cross-entropy to uniform, lambda = 1, 32 WikiText-2 sentences per step) and
energy-bounded OE (Liu et al. 2020: squared hinges with m_in = -25, m_out = -7, lambda = 0.1 as in that paper). All
three are evaluated with the paper's protocol (OOD:ID = 1:5, 10 seeded subsets) on every reachable OOD preset, on the
same ID test inputs and OOD subsets. Scores: MSP, max logit and energy on every model; Mahalanobis and k-NN (fitted on
the training sentences' features) on the OE model too.

The defaults are a budget for a small CPU (a training subset, a capped test set, capped OOD sets); pass larger values
on a GPU, e.g. `--max-train-samples 0 --epochs 1 --max-eval-samples 0 --max-ood-samples 0` for the full data.

    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/minilm_oe.py
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import MINILM_ID, evaluation_data, md_table, print_header, set_threads
from transformers import set_seed

from oe_text import OETrainer, OETrainingArguments
from oe_text.data import TextNormalization, load_id_dataset
from oe_text.defaults import DEFAULT_SEED
from oe_text.evaluation import OODResults, compare_results, evaluate_ood
from oe_text.modeling_oe import OEClassifier
from oe_text.recipe import TRANSFORMER_TRAINING_DEFAULTS, parse_recipe_args, tokenize_dataset
from oe_text.recipe_flow import phase_args


LOGIT_SCORES = ["msp", "max_logit", "energy"]
FEATURE_SCORES = ["mahalanobis", "knn"]


def recipe_training_args(args, output_dir: str) -> OETrainingArguments:
    """The SST-2 MiniLM recipe's training arguments (`oe_text.recipe.parse_recipe_args`: schedule, warm-up, weight
    decay, length grouping and bucketed outliers) with this benchmark's budget on top."""
    cli = [
        "--model", MINILM_ID, "--output_dir", output_dir, "--per_device_train_batch_size", str(args.batch_size),
        "--num_train_epochs", str(args.epochs), "--learning_rate", str(args.learning_rate),
        "--oe_max_length", str(args.max_length), "--seed", str(args.seed), "--logging_steps", "10",
        "--disable_tqdm", "true", "--use_cpu", str(args.device == "cpu").lower(),
    ]  # fmt: skip
    return parse_recipe_args("sst2", cli)[1]


def train(
    model, train_set, outliers, tokenizer, args, output_dir: str, oe_weight: float = 0.0, oe_loss: str = "uniform"
) -> float:
    """Fine-tune `model` in place with `OETrainer` (no OE when `oe_weight` is 0); return the wall time."""
    training_args = phase_args(recipe_training_args(args, output_dir), "run", oe_weight=oe_weight, oe_loss=oe_loss)
    trainer = OETrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        processing_class=tokenizer,
        outlier_dataset=outliers if oe_weight > 0 else None,
    )
    start = time.time()
    trainer.train()
    return time.time() - start


def score_table(results: OODResults, scores: list[str]) -> str:
    """Mean over OOD sets of FPR90 / AUROC / AUPR for each score of one model."""
    rows = []
    for s in scores:
        mean = results.mean_metrics(s)
        rows.append([s, f"{100 * mean['fpr90']:.1f}", f"{100 * mean['auroc']:.1f}", f"{100 * mean['aupr_out']:.1f}"])
    return md_table(["score (mean over OOD sets)", "FPR90 ↓", "AUROC ↑", "AUPR ↑"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-train-samples", type=int, default=1024, help="SST-2 training subset (0: all 6920)")
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs of each phase")
    parser.add_argument("--batch-size", type=int, default=TRANSFORMER_TRAINING_DEFAULTS["per_device_train_batch_size"])
    parser.add_argument("--learning-rate", type=float, default=TRANSFORMER_TRAINING_DEFAULTS["learning_rate"])
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--max-eval-samples", type=int, default=500, help="ID test subset (0: all 1821)")
    parser.add_argument("--max-ood-samples", type=int, default=250, help="cap per OOD set (0: none)")
    parser.add_argument("--energy-weight", type=float, default=0.1, help="lambda of energy-bounded OE")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/benchmarks/minilm_oe"))
    args = parser.parse_args()
    set_threads(args.threads)
    start = time.time()
    print_header("all-MiniLM-L6-v2: baseline vs OE vs energy-bounded OE (SST-2)")

    set_seed(args.seed)  # seeded construction: the classifier head's initial weights depend on the seed only
    base_model = OEClassifier.from_backbone(MINILM_ID, id2label=["negative", "positive"])
    tokenizer = base_model.tokenizer
    norm = TextNormalization.for_tokenizer(tokenizer)
    data = load_id_dataset("sst2", normalization=norm, max_train_samples=args.max_train_samples or None)
    test, ood, unavailable, outliers = evaluation_data(data["test"], norm, args.max_eval_samples, args.seed)
    train_set = tokenize_dataset(data["train"], tokenizer, args.max_length)
    print(
        f"SST-2 train {len(train_set)}, ID test {len(test)}, auxiliary {len(outliers)} WikiText-2 sentences, "
        f"OOD sets {sorted(ood)} (capped at {args.max_ood_samples or 'no cap'}), unavailable {sorted(unavailable)}",
        flush=True,
    )
    eval_kwargs = dict(
        batch_size=args.eval_batch_size,
        max_length=args.max_length,
        unavailable=unavailable,
        seed=args.seed,
        max_ood_samples=args.max_ood_samples or None,
        progress=False,
    )

    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(args.seed)
        walls["Baseline"] = train(base_model, train_set, None, tokenizer, args, f"{tmp}/baseline")
        oe_model = copy.deepcopy(base_model)
        energy_model = copy.deepcopy(base_model)
        walls["OE"] = train(oe_model, train_set, outliers, tokenizer, args, f"{tmp}/oe", oe_weight=1.0)
        walls["Energy OE"] = train(
            energy_model,
            train_set,
            outliers,
            tokenizer,
            args,
            f"{tmp}/energy",
            oe_weight=args.energy_weight,
            oe_loss="energy",
        )
    print("Training wall time, s: " + ", ".join(f"{k} {v:.0f}" for k, v in walls.items()), flush=True)

    results: dict[str, OODResults] = {}
    eval_start = time.time()
    results["Baseline"] = evaluate_ood(base_model, tokenizer, test, ood, scores=LOGIT_SCORES, **eval_kwargs)
    results["OE"] = evaluate_ood(
        oe_model,
        tokenizer,
        test,
        ood,
        scores=LOGIT_SCORES + FEATURE_SCORES,
        feature_fit_dataset=data["train"],
        **eval_kwargs,
    )
    results["Energy OE"] = evaluate_ood(energy_model, tokenizer, test, ood, scores=LOGIT_SCORES, **eval_kwargs)
    print(f"Evaluation wall time: {time.time() - eval_start:.0f} s", flush=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, res in results.items():
        res.save(args.output_dir / name.lower().replace(" ", "_"), plots=False)

    steps = int(np.ceil(len(train_set) / args.batch_size) * args.epochs)
    print(
        f"\n### Budget\n\n{len(train_set)} SST-2 training sentences, {args.epochs:g} epoch(s) per phase = {steps} "
        f"steps of {args.batch_size} (+ {args.batch_size} outliers for OE), max_length {args.max_length}, lr "
        f"{args.learning_rate:g}; energy OE lambda {args.energy_weight:g}; seed {args.seed}."
    )
    print("\n### MSP: baseline vs OE vs energy-bounded OE\n")
    print(compare_results(results, score="msp", digits=1))
    print("### Energy score: baseline vs OE vs energy-bounded OE\n")
    print(compare_results(results, score="energy", digits=1))
    print("### Every score on the OE model\n")
    print(score_table(results["OE"], LOGIT_SCORES + FEATURE_SCORES))
    print("\n### Logit scores on the baseline and the energy-bounded OE model\n")
    for name in ("Baseline", "Energy OE"):
        print(f"{name}:\n\n{score_table(results[name], LOGIT_SCORES)}\n")
    print(f"Total wall time {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
