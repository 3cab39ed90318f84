"""Cost of Outlier Exposure with oe-text: seconds per optimisation step and scoring throughput, in one run.

Per model (the paper's GRU trained from scratch; all-MiniLM-L6-v2 fine-tuned), on SST-2 with WikiText-2 sentences as
auxiliary outliers, at the recipe's batch size (GRU: 64 in-distribution + 64 outliers; MiniLM: 32 + 32, max_length
64 by default):

* (a) `transformers.Trainer`, in-distribution batch only (what training without OE costs);
* (b) `oe_text.OETrainer`, in-distribution + outlier batch in one forward pass;
* (c) a minimal hand-written PyTorch loop doing the same as (b): concatenated ID + outlier forward, CE + OE loss,
  backward, AdamW step.

The three run `--rounds` times, interleaved in rotating order, on the same data, model initialisation, optimiser
(torch AdamW, no weight decay, no gradient clipping) and batch size; each run's first `--warmup` steps are not timed.
A step is timed from the end of the previous step to the end of this one, so data loading, collation and the outlier
draw are included. b/c is the toolkit's overhead over a hand loop; b/a is the price of OE itself.

Scoring: `OEClassifier.detect(texts)` against a bare `model(**tokenizer(batch))` loop under `torch.no_grad()` over
the same texts and batch size, both with tokenization included; the bare loop runs in the texts' order and in
`detect`'s length-sorted order. Peak memory: the increase of resident memory (and, on CUDA, peak allocated GPU
memory) during each phase, sampled every 5 ms.

With `--recipe-defaults` the three methods run under the recipes' own settings instead (`oe_text.recipe` defaults:
GRU on TREC, MiniLM on SST-2; length-grouped in-distribution batches, length-bucketed outliers, the recipe's optimiser,
schedule and clipping): (a) is the recipe's baseline phase (`OETrainer` with `oe_weight=0`), (b) its OE phase, and (c)
a hand-written loop doing the same work (length-grouped ID batches, outliers drawn from the matching length bucket
and cut to the ID length, one joint forward, the same optimiser, schedule and clipping). Targets: b/a <= 2.3 (twice
the rows) and b/c <= 1.05.

    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/bench_cost.py --models gru minilm
    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/bench_cost.py --recipe-defaults --models gru minilm
    OE_TEXT_MIRROR=../shared/mirror .venv/bin/python benchmarks/bench_cost.py --device cuda --steps 50 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import MINILM_ID, RSSSampler, gru_tokenizer, md_table, print_header, set_threads, sync
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from oe_text import OETrainer, OETrainingArguments
from oe_text.data import load_id_dataset, load_outlier_dataset
from oe_text.modeling_oe import OEClassifier
from oe_text.outlier_stream import length_buckets
from oe_text.recipe import parse_recipe_args, tokenize_dataset
from oe_text.trainer import truncate_outliers


METHODS = {
    "a": "(a) transformers.Trainer, ID batch only",
    "b": "(b) OETrainer, ID + outliers",
    "c": "(c) hand-written PyTorch loop, ID + outliers",
}
SCORERS = {
    "bare": "bare forward, texts' order",
    "bare_sorted": "bare forward, length-sorted",
    "detect": "OEClassifier.detect",
}


@dataclass
class Setup:
    name: str
    model: OEClassifier
    init_state: dict[str, torch.Tensor]
    tokenizer: Any
    id_train: Any
    outliers: Any
    batch_size: int
    max_length: int
    learning_rate: float
    score_texts: list[str]
    recipe_args: OETrainingArguments | None = None  # --recipe-defaults: the recipe's training arguments


def build_setup(kind: str, args) -> Setup:
    """Model, tokenizer and tokenized data of one benchmarked model (the same for (a), (b) and (c))."""
    recipe_args = None
    dataset, max_length = "sst2", args.max_length
    if args.recipe_defaults:
        dataset = args.gru_dataset if kind == "gru" else "sst2"
        model_name = "gru" if kind == "gru" else MINILM_ID
        recipe, recipe_args = parse_recipe_args(dataset, ["--model", model_name, "--output_dir", "unused"])
        if args.length_matching:
            recipe_args = dataclasses.replace(recipe_args, oe_length_matching=args.length_matching)
        max_length = recipe.max_length
    data = load_id_dataset(dataset)
    label_names = data["train"].features["label"].names
    set_seed(0)
    if kind == "gru":
        tokenizer = gru_tokenizer(data["train"]["text"], max_length=max_length)
        model = OEClassifier.from_rnn("gru", tokenizer=tokenizer, id2label=label_names)
        batch_size, learning_rate = args.gru_batch_size, 0.01
    else:
        model = OEClassifier.from_backbone(MINILM_ID, id2label=label_names)
        tokenizer = model.tokenizer
        batch_size, learning_rate = args.minilm_batch_size, 5e-5
    if recipe_args is not None:
        batch_size, learning_rate = recipe_args.per_device_train_batch_size, recipe_args.learning_rate
    id_train = tokenize_dataset(data["train"], tokenizer, max_length)
    outliers = tokenize_dataset(
        load_outlier_dataset("wikitext2", split="validation+test"), tokenizer, max_length, keep=()
    )
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n_texts = args.score_texts if kind == "gru" or args.minilm_score_texts is None else args.minilm_score_texts
    texts = list(data["test"]["text"][:n_texts])
    return Setup(kind, model, init_state, tokenizer, id_train, outliers, batch_size, max_length, learning_rate, texts,
                 recipe_args)  # fmt: skip


class StepTimer(TrainerCallback):
    """Records the wall-clock time at the end of every optimisation step."""

    def __init__(self, device):
        self.device = device
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        sync(self.device)
        self.ends.append(time.perf_counter())


def _training_args(cls, setup: Setup, steps: int, device: str, output_dir: str, **extra):
    return cls(
        output_dir=output_dir,
        per_device_train_batch_size=setup.batch_size,
        max_steps=steps,
        learning_rate=setup.learning_rate,
        optim="adamw_torch",
        weight_decay=0.0,
        max_grad_norm=0.0,
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        seed=0,
        **extra,
    )


def run_trainer(setup: Setup, with_oe: bool, steps: int, device: str) -> list[float]:
    """Train `steps` steps with `Trainer` (ID only) or `OETrainer` (ID + outliers); return the step end times."""
    timer = StepTimer(device)
    with tempfile.TemporaryDirectory() as tmp:
        if setup.recipe_args is not None:
            # The recipe's phases: baseline = OETrainer with oe_weight=0 (exactly transformers.Trainer), then OE.
            trainer = OETrainer(
                model=setup.model,
                args=_recipe_run_args(setup, steps, device, tmp, oe_weight=1.0 if with_oe else 0.0),
                train_dataset=setup.id_train,
                processing_class=setup.tokenizer,
                outlier_dataset=setup.outliers if with_oe else None,
            )
        elif with_oe:
            trainer = OETrainer(
                model=setup.model,
                args=_training_args(OETrainingArguments, setup, steps, device, tmp, oe_weight=1.0),
                train_dataset=setup.id_train,
                processing_class=setup.tokenizer,
                outlier_dataset=setup.outliers,
            )
        else:
            trainer = Trainer(
                model=setup.model,
                args=_training_args(TrainingArguments, setup, steps, device, tmp),
                train_dataset=setup.id_train,
                processing_class=setup.tokenizer,
                data_collator=DataCollatorWithPadding(setup.tokenizer),
            )
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(timer)
        trainer.train()
    return timer.ends


def _recipe_run_args(setup: Setup, steps: int, device: str, output_dir: str, **changes) -> OETrainingArguments:
    return dataclasses.replace(
        setup.recipe_args,
        output_dir=output_dir,
        max_steps=steps,
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        seed=0,
        **changes,
    )


def run_recipe_hand_loop(setup: Setup, steps: int, device: str) -> list[float]:
    """A hand-written loop doing the work of the recipe's OE step.

    Length-grouped ID batches (`LengthGroupedSampler`), outliers drawn at random from the length bucket of the ID
    batch's length L and cut to L (as `oe_length_matching` says), one joint forward, CE + OE loss, backward,
    clipping, the recipe's optimiser and schedule.
    """
    args = _recipe_run_args(setup, steps, device, "unused")
    model = setup.model.to(device).train()
    collate = DataCollatorWithPadding(setup.tokenizer)
    generator = torch.Generator().manual_seed(0)
    lengths = [len(ids) for ids in setup.id_train["input_ids"]]
    sampler = LengthGroupedSampler(setup.batch_size, lengths=lengths, generator=generator)
    id_batches = _endless(DataLoader(setup.id_train, batch_size=setup.batch_size, sampler=sampler, collate_fn=collate))
    out_lengths = np.array([len(ids) for ids in setup.outliers["input_ids"]])
    bounds = length_buckets(out_lengths, args.oe_length_bucket_size)
    which = np.searchsorted(bounds, out_lengths, side="right") - 1
    buckets = [np.flatnonzero(which == b) for b in range(len(bounds))]
    rng = np.random.default_rng(0)
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    optimizer = optimizer_cls(model.parameters(), **{**optimizer_kwargs, "weight_decay": args.weight_decay})
    from transformers import get_scheduler

    scheduler = get_scheduler(
        args.lr_scheduler_type, optimizer, args.get_warmup_steps(steps), steps, scheduler_specific_kwargs={}
    )
    pad = {"input_ids": setup.tokenizer.pad_token_id or 0}
    ends = []
    for _ in range(steps):
        batch = next(id_batches)
        length = batch["input_ids"].shape[1]
        matching = args.oe_length_matching
        bucket = (
            buckets[max(int(np.searchsorted(bounds, length, side="right")) - 1, 0)] if matching == "bucket" else None
        )
        pool = bucket if bucket is not None else len(out_lengths)
        rows = setup.outliers[rng.choice(pool, size=setup.batch_size).tolist()]
        outliers = collate([dict(zip(rows, v)) for v in zip(*rows.values())])
        if matching != "none":
            outliers = truncate_outliers(outliers, length)
        labels = batch.pop("labels").to(device)
        inputs = {k: _pad_cat(v, outliers[k], pad.get(k, 0)).to(device) for k, v in batch.items()}
        logits = model(**inputs).logits
        n = labels.shape[0]
        loss = F.cross_entropy(logits[:n], labels) - args.oe_weight * logits[n:].log_softmax(dim=-1).mean()
        loss.backward()
        if args.max_grad_norm and args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        ends.append(time.perf_counter())
    return ends


def _endless(loader):
    while True:
        yield from loader


def _pad_cat(a: torch.Tensor, b: torch.Tensor, value: int) -> torch.Tensor:
    length = max(a.shape[1], b.shape[1])
    return torch.cat(
        [F.pad(a, (0, length - a.shape[1]), value=value), F.pad(b, (0, length - b.shape[1]), value=value)]
    )


def run_hand_loop(setup: Setup, steps: int, device: str) -> list[float]:
    """The minimal PyTorch loop: concatenated ID + outlier forward, CE + OE (cross-entropy to uniform), AdamW."""
    model = setup.model.to(device).train()
    collate = DataCollatorWithPadding(setup.tokenizer)
    generator = torch.Generator().manual_seed(0)
    id_batches = _endless(
        DataLoader(setup.id_train, batch_size=setup.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    )
    out_batches = _endless(
        DataLoader(setup.outliers, batch_size=setup.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=setup.learning_rate, weight_decay=0.0)
    pad = {"input_ids": setup.tokenizer.pad_token_id or 0}
    ends = []
    for _ in range(steps):
        batch, outliers = next(id_batches), next(out_batches)
        labels = batch.pop("labels").to(device)
        inputs = {k: _pad_cat(v, outliers[k], pad.get(k, 0)).to(device) for k, v in batch.items()}
        logits = model(**inputs).logits
        n = labels.shape[0]
        loss = F.cross_entropy(logits[:n], labels) - logits[n:].log_softmax(dim=-1).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        ends.append(time.perf_counter())
    return ends


def time_training(setup: Setup, args) -> dict[str, Any]:
    """Interleaved rounds of (a), (b), (c); per-step times of the steps after warm-up, and peak memory."""
    steps = args.warmup + args.steps
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    memory: dict[str, float] = dict.fromkeys(METHODS, 0.0)
    gpu_memory: dict[str, float | None] = dict.fromkeys(METHODS)
    order = list(METHODS)
    for r in range(args.rounds):
        for method in order[r % 3 :] + order[: r % 3]:
            setup.model.load_state_dict(setup.init_state)
            set_seed(r)
            with RSSSampler() as mem:
                if method == "c":
                    hand_loop = run_recipe_hand_loop if setup.recipe_args is not None else run_hand_loop
                    ends = hand_loop(setup, steps, args.device)
                else:
                    ends = run_trainer(setup, method == "b", steps, args.device)
            if len(ends) != steps:
                raise RuntimeError(f"{METHODS[method]} ran {len(ends)} steps instead of {steps}.")
            step_times = [t1 - t0 for t0, t1 in zip(ends[args.warmup - 1 :], ends[args.warmup :])]
            times[method].extend(step_times)
            memory[method] = max(memory[method], mem.increase)
            if mem.gpu_peak is not None:
                gpu_memory[method] = max(gpu_memory[method] or 0.0, mem.gpu_peak)
            print(
                f"  [{setup.name}] round {r + 1}/{args.rounds} {METHODS[method]}: median "
                f"{statistics.median(step_times):.4f} s/step over {len(step_times)} steps",
                flush=True,
            )
    return {"times": times, "rss_increase_mib": memory, "gpu_peak_mib": gpu_memory}


def _bare_scoring(setup: Setup, texts: list[str], batch_size: int, device: str) -> None:
    model = setup.model
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = setup.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=setup.max_length,
                return_tensors="pt",
            )
            model(**{k: v.to(device) for k, v in enc.items()})


def time_scoring(setup: Setup, args) -> dict[str, Any]:
    """Texts per second of `detect` and of a bare forward loop over the same texts, interleaved rounds."""
    model = setup.model.to(args.device).eval()
    texts = setup.score_texts
    by_length = sorted(texts, key=len, reverse=True)
    batch_size = args.score_batch_size
    rates: dict[str, list[float]] = {s: [] for s in SCORERS}
    memory: dict[str, float] = dict.fromkeys(SCORERS, 0.0)
    gpu_memory: dict[str, float | None] = dict.fromkeys(SCORERS)
    order = list(SCORERS)
    _bare_scoring(setup, texts[:batch_size], batch_size, args.device)  # warm-up
    # A calibrated threshold, as a deployed detector has (on the scored texts themselves: only the cost matters here).
    model.calibrate_threshold(texts, tpr=0.95, calibration_data="SetFit/sst2 test (cost benchmark only)")
    for r in range(args.rounds):
        for scorer in order[r % 3 :] + order[: r % 3]:
            sync(args.device)
            with RSSSampler() as mem:
                start = time.perf_counter()
                if scorer == "detect":
                    out = model.detect(texts, batch_size=batch_size, max_length=setup.max_length)
                    assert len(out) == len(texts)
                else:
                    _bare_scoring(setup, texts if scorer == "bare" else by_length, batch_size, args.device)
                sync(args.device)
                elapsed = time.perf_counter() - start
            rates[scorer].append(len(texts) / elapsed)
            memory[scorer] = max(memory[scorer], mem.increase)
            if mem.gpu_peak is not None:
                gpu_memory[scorer] = max(gpu_memory[scorer] or 0.0, mem.gpu_peak)
            print(f"  [{setup.name}] round {r + 1}/{args.rounds} {SCORERS[scorer]}: {rates[scorer][-1]:.1f} texts/s")
    model.train()
    return {"texts_per_s": rates, "rss_increase_mib": memory, "gpu_peak_mib": gpu_memory, "num_texts": len(texts)}


def _fmt_mem(rss: float, gpu: float | None) -> str:
    return f"{rss:.0f}" + (f" (GPU {gpu:.0f})" if gpu is not None else "")


def report(name: str, setup: Setup, training: dict, scoring: dict | None, args) -> str:
    med = {m: statistics.median(v) for m, v in training["times"].items()}
    rows = []
    for m, label in METHODS.items():
        v = training["times"][m]
        rows.append(
            [
                label,
                f"{med[m]:.4f}",
                f"{statistics.mean(v):.4f} ± {statistics.pstdev(v):.4f}",
                len(v),
                _fmt_mem(training["rss_increase_mib"][m], training["gpu_peak_mib"][m]),
            ]
        )
    rows_per_step = f"{setup.batch_size} ID" + f" (+ {setup.batch_size} outliers for b, c)"
    setting = "the recipe's defaults" if setup.recipe_args is not None else "random batches"
    if setup.recipe_args is not None:
        rows[0][0] = "(a) recipe baseline phase (OETrainer, oe_weight=0)"
        rows[1][0] = f"(b) recipe OE phase (oe_length_matching={setup.recipe_args.oe_length_matching!r})"
        rows[2][0] = "(c) hand-written loop, same work"
    parts = [
        f"### {name}: training step under {setting} (batch {rows_per_step}, max_length {setup.max_length}, "
        f"device {args.device})",
        md_table(["method", "median s/step", "mean ± std s/step", "steps timed", "peak RSS increase, MiB"], rows),
        md_table(
            ["ratio", "value", "target", "meaning"],
            [
                ["b / c", f"{med['b'] / med['c']:.3f}", "<= 1.05", "OETrainer overhead over a hand-written loop"],
                ["b / a", f"{med['b'] / med['a']:.3f}", "<= 2.3", "price of OE (twice the rows per forward/backward)"],
                ["c / a", f"{med['c'] / med['a']:.3f}", "", "the same price in a hand-written loop"],
            ],
        ),
    ]
    if scoring is None:
        return "\n\n".join(parts)
    rate = {s: statistics.median(v) for s, v in scoring["texts_per_s"].items()}
    srows = [
        [label, f"{rate[s]:.1f}", _fmt_mem(scoring["rss_increase_mib"][s], scoring["gpu_peak_mib"][s])]
        for s, label in SCORERS.items()
    ]
    parts += [
        f"### {name}: scoring {scoring['num_texts']} SST-2 test sentences (batch {args.score_batch_size}, "
        f"max_length {setup.max_length}, {args.rounds} rounds)",
        md_table(["scorer", "median texts/s", "peak RSS increase, MiB"], srows),
        md_table(
            ["ratio", "value"],
            [
                ["detect / bare forward (texts' order)", f"{rate['detect'] / rate['bare']:.3f}"],
                ["detect / bare forward (length-sorted, as detect)", f"{rate['detect'] / rate['bare_sorted']:.3f}"],
            ],
        ),
    ]
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["gru", "minilm"], choices=["gru", "minilm"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each run (>= 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (a), (b), (c)")
    parser.add_argument("--minilm-steps", type=int, default=None, help="timed steps for MiniLM (default --steps)")
    parser.add_argument("--gru-batch-size", type=int, default=64)
    parser.add_argument("--minilm-batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--score-texts", type=int, default=512, help="SST-2 test sentences scored")
    parser.add_argument("--minilm-score-texts", type=int, default=None, help="for MiniLM (default --score-texts)")
    parser.add_argument("--score-batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument(
        "--recipe-defaults",
        action="store_true",
        help="time (a)/(b)/(c) under the recipes' training defaults (length grouping, length-bucketed outliers)",
    )
    parser.add_argument("--gru-dataset", default="trec", help="--recipe-defaults: in-distribution set of the GRU")
    parser.add_argument("--skip-scoring", action="store_true", help="time training steps only")
    parser.add_argument(
        "--length-matching",
        choices=["none", "truncate", "bucket"],
        default=None,
        help="--recipe-defaults: override the recipe's oe_length_matching (for (b) and (c)) to compare",
    )
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be >= 1 (the first step's start is not observable inside Trainer).")
    set_threads(args.threads)
    start = time.time()
    print_header("Cost: seconds per optimisation step and scoring throughput")
    results, reports = {}, []
    for kind in args.models:
        name = {"gru": "GRU (paper's model, from scratch)", "minilm": f"{MINILM_ID} (fine-tuned)"}[kind]
        print(f"Setting up {name} ...", flush=True)
        setup = build_setup(kind, args)
        steps = args.steps if kind == "gru" or args.minilm_steps is None else args.minilm_steps
        run_args = argparse.Namespace(**{**vars(args), "steps": steps})
        training = time_training(setup, run_args)
        scoring = None if args.skip_scoring else time_scoring(setup, run_args)
        results[kind] = {"training": training, "scoring": scoring}
        reports.append(report(name, setup, training, scoring, run_args))
    print("\n" + "\n\n".join(reports))
    load = " ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    print(f"\nTotal wall time {time.time() - start:.0f} s; load average at the end (1/5/15 min): {load}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
