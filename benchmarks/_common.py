"""Shared helpers of the benchmark scripts: machine description, peak-memory sampling, data and model set-up."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import datasets
import psutil  # a dependency of accelerate, hence always installed with oe-text
import torch
import transformers

from oe_text.reporting import markdown_table


datasets.disable_progress_bars()
transformers.logging.set_verbosity_error()

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


def set_threads(threads: int | None) -> int:
    """Use `threads` intra-op threads (None: torch's default) and return the number in use.

    On a CPU shared with other jobs, one thread per process avoids OpenMP threads spinning against each other; on an
    idle machine the default is faster.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def command_line() -> str:
    """The command that started this process, as a user would type it."""
    return " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), *sys.argv])


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info() -> dict[str, Any]:
    """Date, hardware, load and library versions, for the header of every benchmark report."""
    import oe_text

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{_cpu_model()}, {os.cpu_count()} logical cores",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM",
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "torch_threads": torch.get_num_threads(),
        "versions": (
            f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"datasets {datasets.__version__}, oe-text {oe_text.__version__}"
        ),
    }
    return info


def print_header(title: str) -> dict[str, Any]:
    """Print the report header (command, date, machine) and return the machine info."""
    info = machine_info()
    print(f"## {title}\n")
    print(f"- command: `{command_line()}`")
    print(f"- date: {info['date']}")
    print(f"- machine: {info['cpu']}, {info['memory']}, GPU: {info['gpu']}; torch threads: {info['torch_threads']}")
    print(f"- load average at start (1/5/15 min): {info['load_average']}")
    print(f"- {info['versions']}\n", flush=True)
    return info


# One table builder for reports, model cards and benchmarks.
md_table = markdown_table


def peak_rss_mib() -> float:
    """Peak resident set size of this process since it started, in MiB (`ru_maxrss` is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


class RSSSampler:
    """Context manager sampling this process's resident memory in a thread; `peak` and `increase` in MiB.

    `increase` is the peak during the block minus the resident memory when it started: what the block needed on top of
    what the process already held (a lower bound when freed memory from earlier blocks is reused). On CUDA the peak of
    allocated GPU memory during the block is recorded too (`gpu_peak`).
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.process = psutil.Process()
        self.start = self.peak = self.increase = 0.0
        self.gpu_peak: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> float:
        return self.process.memory_info().rss / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self) -> RSSSampler:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.start = self.peak = self._rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.increase = self.peak - self.start
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            self.gpu_peak = torch.cuda.max_memory_allocated() / 2**20


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work, so that wall-clock timings include it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def cached_recipe_run(run_dir, recipe_cli: list[str], force: bool = False, label: str = "") -> dict:
    """Run `oe_text.recipe` with `recipe_cli` arguments into `run_dir`, or read a finished run back.

    A run is finished when `results.json` and `benchmark_meta.json` exist (the latter written here, with the wall time
    and the arguments). Returns the recipe's `results.json` with `meta` added.
    """
    import json
    from pathlib import Path

    from oe_text.recipe import parse_recipe_args, run_recipe

    run_dir = Path(run_dir)
    results_file, meta_file = run_dir / "results.json", run_dir / "benchmark_meta.json"
    if results_file.is_file() and meta_file.is_file() and not force:
        print(f"[{label}] read back from {results_file}", flush=True)
        summary = json.loads(results_file.read_text())
        summary["meta"] = json.loads(meta_file.read_text())
        return summary
    args = [*recipe_cli, "--output_dir", str(run_dir), "--disable_tqdm", "true"]
    recipe_args, training_args = parse_recipe_args(None, args)
    print(f"[{label}] training baseline + OE ...", flush=True)
    start = time.time()
    result = run_recipe(recipe_args, training_args)
    wall = time.time() - start
    print(f"[{label}] done in {wall:.0f} s\n\n{result.comparison}", flush=True)
    meta = {"wall_s": wall, "recipe_args": args, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    meta_file.write_text(json.dumps(meta, indent=1))
    summary = json.loads(results_file.read_text())
    summary["meta"] = meta
    return summary


def recipe_benchmark_parser(description: str, datasets: Sequence[str], output_dir: str):
    """The command line shared by the benchmarks that run the recipe per dataset and seed (cached runs)."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--datasets", nargs="+", default=list(datasets))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--output-dir", type=Path, default=Path(output_dir))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--force", action="store_true", help="retrain runs that already have results")
    parser.add_argument("--summary-only", action="store_true", help="only summarise finished runs; train nothing")
    parser.add_argument(
        "--recipe-args", nargs=argparse.REMAINDER, default=[], help="extra `oe-text train` arguments (last)"
    )
    return parser


def mean_std(values: Sequence[float]) -> str:
    """`mean ± std` over seeds (population std), one decimal; a single value as it is."""
    import statistics

    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.pstdev(values):.1f}"


def gru_tokenizer(train_texts: Sequence[str], vocab_size: int = 10_000, max_length: int = 64, seed: int = 42):
    """The sentencepiece tokenizer of the GRU recipe, trained on the in-distribution training text."""
    from oe_text.tokenization import train_sentencepiece_tokenizer

    return train_sentencepiece_tokenizer(
        list(train_texts), vocab_size=vocab_size, model_max_length=max_length, seed=seed
    )


def evaluation_data(
    test,
    normalization,
    max_eval_samples: int | None,
    seed: int,
    unk_policy: str | None = None,
    ood_datasets: list[str] | None = None,
):
    """The ID test set (a seeded sample of `max_eval_samples`), the OOD presets `ood_datasets` (default: every one the
    recipe evaluates), and WikiText-2 validation+test outliers without the sentences that occur in those test sets:
    the recipe's own loading with its defaults (`oe_text.recipe.load_ood_and_outliers`). `unk_policy`: WikiText's
    literal `<unk>` (see `load_outlier_dataset`; default `"remove"`, as the recipe).

    Returns:
        `(test, ood, unavailable, outliers)`.
    """
    from oe_text.recipe import RecipeArguments, load_ood_and_outliers
    from oe_text.recipe_flow import cap_eval_splits

    if max_eval_samples and max_eval_samples < len(test):
        test, _ = cap_eval_splits(test, None, max_eval_samples, seed)
    presets = {"ood_datasets": list(ood_datasets)} if ood_datasets else {}
    recipe_args = RecipeArguments(auxiliary_unk_policy=unk_policy, **presets)
    ood, unavailable, outliers = load_ood_and_outliers(recipe_args, test, normalization)
    return test, ood, unavailable, outliers
