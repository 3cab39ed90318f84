"""Reproduction of the Outlier Exposure paper's NLP experiment (Table 2 / Table 8) with oe-text's GRU recipe.

For each in-distribution dataset (20 Newsgroups, TREC with its 50 fine labels, SST-2) and seed, `oe_text.recipe`
trains the paper's GRU baseline (Adam lr 0.01, cosine, batch 64, 5 epochs, no clipping), fine-tunes it with OE for 5
more epochs (lambda = 1, 64 WikiText-2 sentences per step), and evaluates both with the paper's protocol (MSP,
OOD:ID = 1:5, metrics averaged over 10 seeded OOD subsets) on every OOD preset the data source holds. The script
prints each run's side-by-side table, then per dataset the mean over seeds of every OOD set and of the mean row, and
finally the mean (± std over seeds) of the mean row next to the paper's numbers.

Runs are cached: a run whose `results.json` exists under `--output-dir` is read back instead of retrained (use
`--force` to retrain), so datasets can be trained in separate processes and summarised with `--summary-only`.

    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/reproduce_nlp.py --datasets 20ng trec sst2
"""

from __future__ import annotations

from pathlib import Path

from _common import cached_recipe_run, md_table, print_header, recipe_benchmark_parser, set_threads
from _common import mean_std as _mean_std

from oe_text.evaluation import OODResults, compare_results


# The paper's Table 2 (mean over its OOD sets; MSP; GRU baseline -> OE fine-tuned on WikiText-2), in %.
PAPER = {
    "20ng": {"fpr90": (42.4, 4.9), "auroc": (82.7, 97.7), "aupr_out": (49.9, 91.9)},
    "trec": {"fpr90": (43.5, 0.8), "auroc": (82.1, 99.3), "aupr_out": (52.2, 97.6)},
    "sst2": {"fpr90": (74.9, 27.3), "auroc": (61.6, 89.3), "aupr_out": (22.9, 59.4)},
}
METRICS = {"fpr90": "FPR90 ↓", "auroc": "AUROC ↑", "aupr_out": "AUPR ↑"}
NAMES = {"20ng": "20 Newsgroups", "trec": "TREC (50 fine labels)", "sst2": "SST-2"}


def run_one(dataset: str, seed: int, output_dir: Path, extra: list[str], force: bool) -> dict:
    """Train and evaluate one (dataset, seed), or read a finished run back; returns the recipe's results.json."""
    args = ["--model", "gru", "--dataset", dataset, "--seed", str(seed), "--logging_steps", "50", *extra]
    summary = cached_recipe_run(output_dir / f"{dataset}_seed{seed}", args, force, label=f"{dataset} seed {seed}")
    summary["meta"].setdefault("seed", seed)
    return summary


def per_set_table(runs: list[dict]) -> str:
    """Mean over seeds of each OOD set's metrics (MSP), baseline vs OE."""
    base = [OODResults.from_dict(r["baseline"]) for r in runs]
    oe = [OODResults.from_dict(r["oe"]) for r in runs]
    rows = []
    for name in [*base[0].ood_names, "mean"]:
        row = [f"**{name}**" if name == "mean" else name]
        for key in METRICS:
            b = [100 * res.get("msp", name, key) for res in base]
            o = [100 * res.get("msp", name, key) for res in oe]
            row += [_mean_std(b), _mean_std(o)]
        rows.append(row)
    acc_b = [100 * r.accuracy for r in base]
    acc_o = [100 * r.accuracy for r in oe]
    rows.append(["*ID test accuracy*", _mean_std(acc_b), _mean_std(acc_o), "", "", "", ""])
    header = ["OOD set"] + [f"{label} {run}" for label in METRICS.values() for run in ("Baseline", "OE")]
    return md_table(header, rows)


def paper_table(all_runs: dict[str, list[dict]]) -> str:
    """Mean row (± std over seeds) next to the paper's Table 2."""
    rows = []
    for dataset, runs in all_runs.items():
        base = [OODResults.from_dict(r["baseline"]) for r in runs]
        oe = [OODResults.from_dict(r["oe"]) for r in runs]
        for key, label in METRICS.items():
            paper_b, paper_o = PAPER.get(dataset, {}).get(key, (None, None))
            b = [100 * res.mean_metrics("msp")[key] for res in base]
            o = [100 * res.mean_metrics("msp")[key] for res in oe]
            rows.append(
                [
                    NAMES.get(dataset, dataset),
                    label,
                    "-" if paper_b is None else f"{paper_b:.1f}",
                    _mean_std(b),
                    "-" if paper_o is None else f"{paper_o:.1f}",
                    _mean_std(o),
                    len(runs),
                ]
            )
    header = ["dataset", "metric (MSP, %)", "paper baseline", "ours baseline", "paper OE", "ours OE", "seeds"]
    return md_table(header, rows)


def main() -> None:
    parser = recipe_benchmark_parser(
        __doc__.split("\n")[0], ["20ng", "trec", "sst2"], "outputs/benchmarks/reproduce_nlp"
    )
    args = parser.parse_args()
    set_threads(args.threads)
    print_header("Reproduction: GRU baseline vs GRU + OE (paper's NLP experiment)")
    all_runs: dict[str, list[dict]] = {}
    for dataset in args.datasets:
        for seed in args.seeds:
            run_dir = args.output_dir / f"{dataset}_seed{seed}"
            if args.summary_only and not (run_dir / "benchmark_meta.json").is_file():
                print(f"[{dataset} seed {seed}] no finished run in {run_dir}; skipped")
                continue
            all_runs.setdefault(dataset, []).append(
                run_one(dataset, seed, args.output_dir, args.recipe_args, args.force)
            )
    for dataset, runs in all_runs.items():
        seeds = [str(r["meta"]["seed"]) for r in runs]
        walls = ", ".join(f"{r['meta']['wall_s']:.0f}" for r in runs)
        first = OODResults.from_dict(runs[0]["oe"])
        print(f"\n### {NAMES.get(dataset, dataset)}: per OOD set, mean over seeds {', '.join(seeds)} (± std)\n")
        print(first.describe_protocol())
        if len(runs) > 1:
            print("Each run draws its OOD subsets with its own seed (the training seed).")
        print(f"Wall time per run (baseline + OE + evaluation), s: {walls}.\n")
        print(per_set_table(runs))
        if first.unavailable:
            print("\nNot evaluated (unavailable): " + ", ".join(f"`{k}`" for k in first.unavailable) + ".")
        if len(runs) == 1:
            base, oe = OODResults.from_dict(runs[0]["baseline"]), first
            print("\n" + compare_results({"Baseline": base, "OE": oe}, score="msp", digits=1))
    if all_runs:
        print("\n### Mean over OOD sets, next to the paper (Table 2)\n")
        print(paper_table(all_runs))


if __name__ == "__main__":
    main()
