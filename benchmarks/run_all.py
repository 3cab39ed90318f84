"""Run the benchmarks and keep what they print: `outputs/benchmarks/<name>.md`, one file per script.

* `--quick` (what `make bench` runs; CPU, a few minutes): the cost benchmark on the GRU and the memory-scale benchmark
  with a reduced draw.
* default (CPU-feasible, about two hours on 2 busy cores, one part after another): the cost benchmark on the GRU and
  MiniLM, the memory benchmark, the GRU reproduction on 20 Newsgroups, TREC and SST-2 (one seed), the MiniLM comparison
  on a CPU budget and the text-pipeline investigations of RESULTS.md.
* `--gpu` (needs CUDA): the same on a GPU with full budgets: three seeds of the reproduction, MiniLM on the whole
  SST-2 training set and test set, the investigations on the full test sets, longer cost measurements.

    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/run_all.py --quick
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent


def investigations(extra: list[str]) -> list[tuple[str, list[str]]]:
    """The text-pipeline ablations of RESULTS.md (part 1): word vocabulary, cased SST, `no-short` 20NG."""
    script = "investigate_shortcuts.py"
    return [
        ("investigate_sst2_word", [script, "--dataset", "sst2", "--tokenizer", "word", *extra]),
        (
            "investigate_sst2_word_cased",
            [script, "--dataset", "sst2", "--tokenizer", "word", "--id-casing", "sentence", *extra],
        ),
        (
            "investigate_20ng_word_noshort",
            [script, "--dataset", "20ng", "--tokenizer", "word", "--id-preprocess", "no-short", *extra],
        ),
    ]


def plan(mode: str, threads: list[str]) -> list[tuple[str, list[str]]]:
    """(name, script arguments) of every benchmark run in `mode`."""
    if mode == "quick":
        return [
            ("cost_gru", ["bench_cost.py", "--models", "gru", "--steps", "15", "--rounds", "3", *threads]),
            (
                "memory",
                ["bench_memory.py", "--in-memory-scales", "10", "--steps", "5", "--draw", "10000", *threads],
            ),
        ]
    if mode == "cpu":
        return [
            (
                "cost",
                ["bench_cost.py", "--minilm-steps", "5", "--warmup", "2", "--minilm-score-texts", "256", *threads],
            ),
            ("memory", ["bench_memory.py", *threads]),
            ("reproduce_nlp", ["reproduce_nlp.py", "--datasets", "20ng", "trec", "sst2", "--seeds", "42", *threads]),
            ("minilm_oe", ["minilm_oe.py", *threads]),
            *investigations(threads + ["--max-eval-samples", "2000"]),
        ]
    return [
        ("cost", ["bench_cost.py", "--device", "cuda", "--steps", "50", "--rounds", "3", "--score-texts", "1821"]),
        ("memory", ["bench_memory.py"]),
        ("reproduce_nlp", ["reproduce_nlp.py", "--datasets", "20ng", "trec", "sst2", "--seeds", "42", "43", "44"]),
        (
            "minilm_oe",
            ["minilm_oe.py", "--max-train-samples", "0", "--max-eval-samples", "0", "--max-ood-samples", "0"],
        ),
        *investigations([]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="the `make bench` subset (minutes, CPU)")
    group.add_argument("--gpu", action="store_true", help="full budgets on a CUDA GPU")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads of CPU runs (default 1: on a busy CPU, several threads per process spin against "
        "each other and a GRU step can take 20x longer; 0 = torch's default)",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args()
    mode = "quick" if args.quick else "gpu" if args.gpu else "cpu"
    threads = [] if args.threads == 0 else ["--threads", str(args.threads)]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    for name, script_args in plan(mode, threads):
        out = args.output_dir / f"{name}.md"
        cmd = [sys.executable, str(HERE / script_args[0]), *script_args[1:]]
        print(f"==> {' '.join(cmd[1:])}  (output: {out})", flush=True)
        t0 = time.time()
        with open(out, "w") as f:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                sys.stdout.write(line)
                f.write(line)
            code = proc.wait()
        print(f"<== {name}: {time.time() - t0:.0f} s, exit code {code}\n", flush=True)
        if code != 0:
            raise SystemExit(code)
    print(f"All benchmarks ({mode}) done in {time.time() - start:.0f} s; outputs in {args.output_dir}/")


if __name__ == "__main__":
    main()
