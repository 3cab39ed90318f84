"""Detectors against the training-free baseline: frozen-encoder k-NN / Mahalanobis vs fine-tuned and OE scores.

For each in-distribution dataset (SST-2, TREC with its 50 fine labels, 20 Newsgroups) and seed, the text recipe
(`oe_text.recipe`, the code `make demo` runs) fine-tunes all-MiniLM-L6-v2 (baseline), fine-tunes it further with
Outlier Exposure, fits every candidate score on the OE detector, chooses the detector's default score on
in-distribution validation data vs validation outliers (held-out WikiText sentences and the train texts of the other
two ID datasets; never the OOD test sets), and evaluates every score
with the paper's protocol (OOD:ID = 1:5, FPR at 90% TPR, 10 seeded OOD subsets) on the same ID test set and OOD
subsets. Rows:

* frozen MiniLM k-NN / Mahalanobis: `knn_pretrained` / `mahalanobis_pretrained`, the pretrained encoder's pooled
  features (k = 10, cosine), fitted on the ID training set: no training at all;
* fine-tuned MSP (the baseline), OE + MSP / energy / k-NN / Mahalanobis (on the OE model's own features), input
  length alone (no training), OE + combined (MSP and frozen k-NN, logistic model fitted on half of the validation
  set vs half of the validation outliers), OE + combined with length (MSP, frozen k-NN, input length);
* the recipe's shipped default: the candidate the recipe chose on validation data.

Runs are cached under `--output-dir` (use `--force` to retrain), so datasets and seeds can run in separate processes
and be summarised with `--summary-only`. Budgets are recipe arguments (`--recipe-args ...`, see `--help`).

    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/detectors.py --datasets trec --seeds 42 43 44
"""

from __future__ import annotations

from pathlib import Path

from _common import cached_recipe_run, md_table, mean_std, print_header, recipe_benchmark_parser, set_threads

from oe_text.evaluation import OODResults


MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# (row label, run, score): "chosen" is the score the recipe chose for the saved detector.
ROWS = [
    ("frozen MiniLM k-NN (no training)", "oe", "knn_pretrained"),
    ("frozen MiniLM Mahalanobis (no training)", "oe", "mahalanobis_pretrained"),
    ("fine-tuned MSP", "baseline", "msp"),
    ("OE + MSP", "oe", "msp"),
    ("OE + energy", "oe", "energy"),
    ("OE + k-NN", "oe", "knn"),
    ("OE + Mahalanobis", "oe", "mahalanobis"),
    ("input length (no training)", "oe", "length"),
    ("OE + combined (MSP, frozen k-NN)", "oe", "combined"),
    ("OE + combined (MSP, frozen k-NN, length)", "oe", "combined_length"),
    ("**shipped default**", "oe", "chosen"),
]
SCORES = [
    "msp",
    "energy",
    "knn",
    "mahalanobis",
    "knn_pretrained",
    "mahalanobis_pretrained",
    "length",
    "combined",
    "combined_length",
]
# CPU budgets (epochs of the baseline, then of OE fine-tuning); see RESULTS.md for what each costs here.
BUDGETS = {
    "sst2": ["--baseline_epochs", "2", "--num_train_epochs", "1"],
    "trec": ["--baseline_epochs", "4", "--num_train_epochs", "2"],
    # 20 Newsgroups posts are long (100 tokens each): one epoch, half an OE epoch and 2,000 test posts on a CPU.
    "20ng": ["--baseline_epochs", "1", "--num_train_epochs", "0.5", "--max_eval_samples", "2000"],
}
NAMES = {"20ng": "20 Newsgroups", "trec": "TREC (50 fine labels)", "sst2": "SST-2"}


def run_one(dataset: str, seed: int, output_dir: Path, extra: list[str], force: bool) -> dict:
    args = ["--model", MINILM, "--dataset", dataset, "--seed", str(seed), "--scores", *SCORES]
    args += ["--max_ood_samples", "1000", "--logging_steps", "50", *BUDGETS.get(dataset, []), *extra]
    summary = cached_recipe_run(output_dir / f"{dataset}_seed{seed}", args, force, label=f"{dataset} seed {seed}")
    summary["meta"].setdefault("seed", seed)
    return summary


def _score(run: dict, score: str) -> str:
    return run["detector_score"] if score == "chosen" else score


def tables(runs: list[dict]) -> tuple[str, str]:
    """Per OOD set FPR90 (mean ± std over seeds) and mean FPR90 / AUROC / AUPR / accuracy, one row per method."""
    results = [{k: OODResults.from_dict(r[k]) for k in ("baseline", "oe")} for r in runs]
    sets = results[0]["oe"].ood_names
    per_set, summary = [], []
    for label, phase, score in ROWS:
        values = [(res[phase], _score(run, score)) for res, run in zip(results, runs)]
        if any(s not in res.metrics for res, s in values):
            continue
        if score == "chosen":
            label += " (" + ", ".join(sorted({s for _, s in values})) + ")"
        per_set.append(
            [label]
            + [mean_std([100 * res.get(s, name, "fpr90") for res, s in values]) for name in sets]
            + [f"**{mean_std([100 * res.mean_metrics(s)['fpr90'] for res, s in values])}**"]
        )
        accuracy = "n/a (no classifier)" if score.endswith("_pretrained") else None
        summary.append(
            [label]
            + [mean_std([100 * res.mean_metrics(s)[m] for res, s in values]) for m in ("fpr90", "auroc", "aupr_out")]
            + [accuracy or mean_std([100 * res.accuracy for res, _ in values])]
        )
    return (
        md_table(["method", *sets, "mean"], per_set),
        md_table(["method", "FPR90 ↓", "AUROC ↑", "AUPR-Out ↑", "ID accuracy ↑"], summary),
    )


def selection_lines(runs: list[dict]) -> list[str]:
    lines = []
    for run in runs:
        selection = run.get("score_selection")
        if not selection:
            continue
        figures = ", ".join(
            f"{name} {100 * v['fpr90']:.1f}/{100 * v['auroc']:.1f}" for name, v in selection["candidates"].items()
        )
        lines.append(
            f"- seed {run['meta']['seed']}: chose `{selection['chosen']}`; validation FPR90/AUROC (mean over "
            f"{', '.join(selection.get('per_source') or ['held-out auxiliary'])}): {figures}"
        )
    return lines


def main() -> None:
    parser = recipe_benchmark_parser(__doc__.split("\n")[0], ["sst2", "trec", "20ng"], "outputs/benchmarks/detectors")
    args = parser.parse_args()
    set_threads(args.threads)
    print_header("Detectors vs the training-free baseline (all-MiniLM-L6-v2)")
    for dataset in args.datasets:
        runs = []
        for seed in args.seeds:
            if args.summary_only and not (args.output_dir / f"{dataset}_seed{seed}" / "benchmark_meta.json").is_file():
                continue
            runs.append(run_one(dataset, seed, args.output_dir, args.recipe_args, args.force))
        if not runs:
            continue
        first = OODResults.from_dict(runs[0]["oe"])
        seeds = ", ".join(str(r["meta"]["seed"]) for r in runs)
        walls = ", ".join(f"{r['meta']['wall_s']:.0f}" for r in runs)
        per_set, summary = tables(runs)
        print(f"\n### {NAMES.get(dataset, dataset)}: seeds {seeds} (mean ± std over seeds)\n")
        print(first.describe_protocol())
        print(f"Budget: {' '.join(BUDGETS.get(dataset, []) + args.recipe_args)} (recipe defaults otherwise); "
              f"wall time per run (baseline + OE + fitting + evaluation), s: {walls}.\n")  # fmt: skip
        print("FPR90 per OOD set (%, lower is better):\n")
        print(per_set)
        print("\nMean over OOD sets (%):\n")
        print(summary)
        print("\nScore chosen for the saved detector (on validation data only):\n")
        print("\n".join(selection_lines(runs)))
        if first.unavailable:
            print("\nNot evaluated (unavailable): " + ", ".join(f"`{k}`" for k in first.unavailable) + ".")


if __name__ == "__main__":
    main()
