"""The `oe-text` command: `train`, `evaluate`, `detect` and `score`.

oe-text train --dataset sst2 --model gru --output_dir outputs/sst2_gru      # the recipe, any preset or file
oe-text train --task lm --dataset sst2                                       # the language-model recipe
oe-text evaluate --model outputs/sst2_gru/detector --id_dataset sst2 --ood_datasets snli imdb
echo "what is the capital of peru ?" | oe-text detect --model outputs/trec_gru/detector
oe-text score --model outputs/trec_gru/detector --input corpus.parquet --text_column text --output scores.parquet
accelerate launch --num_processes 4 -m oe_text.cli score ...   # the same output, sharded over 4 processes
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import gc
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .defaults import DEFAULT_SEED


def split_input_lines(text: str) -> list[str]:
    """The one line rule of `--input` files and standard input: the non-blank lines of `text`.

    Lines end at `\n` only (a `\r` before it is dropped, so `\r\n` files read the same); other characters that
    `str.splitlines` treats as breaks (`\v`, `\f`, `\x1c`, `\x85`, `\u2028`, ...) stay inside the text. A leading
    byte-order mark is removed. Blank (whitespace-only) lines are skipped.
    """
    lines = (line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n"))
    return [line for line in lines if line.strip()]


def _decode_input(data: bytes, encoding: str, where: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        from .scoring import decode_line_error

        raise SystemExit(f"oe-text: {decode_line_error(data, err, encoding, where)}") from None


def _read_texts(path: str, encoding: str = "utf-8") -> list[str]:
    """Non-blank lines of a file (`-` = standard input) decoded with `encoding`, by `split_input_lines`."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise SystemExit(f"oe-text: unknown --encoding {encoding!r}.") from None
    where = "standard input" if path == "-" else repr(path)
    if path == "-":
        stream = getattr(sys.stdin, "buffer", None)
        # A text-mode stand-in for stdin (no `.buffer`, as in tests) is already decoded.
        text = _decode_input(stream.read(), encoding, where) if stream is not None else sys.stdin.read()
    else:
        file = Path(path)
        if not file.is_file():
            raise SystemExit(f"oe-text: input file {path!r} does not exist.")
        text = _decode_input(file.read_bytes(), encoding, where)
    texts = split_input_lines(text)
    if not texts:
        raise SystemExit(f"oe-text: no text to process in {where}.")
    return texts


@contextlib.contextmanager
def _startup_gc(pause: bool = True) -> Iterator[None]:
    """Run the block (the imports of torch and transformers, and the detector's loading) without the cyclic garbage
    collector, then freeze what it created.

    Those imports create millions of long-lived objects, and the collector traversing them again and again costs
    about 0.6 s of their 4 s here (measured: `import transformers.modeling_utils` 3.9-4.1 s with it, 3.3-3.4 s
    without); once frozen (`gc.freeze`), later collections and the ones at interpreter exit skip them (the exit of
    `oe-text detect` took 0.9-1.0 s before, 0.2 s after; 1-3 s before on a busier machine). Only for a process that
    exits when the command ends (`main()` reading `sys.argv`): cycles among the frozen objects are never collected,
    which a long-lived process calling `main(argv)` should not be left with. `pause=False` (or a collector already
    disabled) runs the block unchanged.
    """
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _load_detector(name: str, trust_remote_code: bool = False, pause_gc: bool = False):
    try:
        with _startup_gc(pause_gc):
            from .modeling_oe import OEClassifier

            model = OEClassifier.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise SystemExit(f"oe-text: cannot load the detector {name!r}: {err}") from None
    if getattr(model, "tokenizer", None) is None:
        raise SystemExit(f"oe-text: the detector {name!r} has no saved tokenizer; save it with its tokenizer.")
    return model


def evaluation_settings(args: argparse.Namespace, config) -> dict:
    """`oe-text evaluate`'s settings: what the command line gives, else what the detector's config recorded about its
    own evaluation (`config.oe["evaluation"]`, written by the recipe), else the defaults. On the detector's own
    in-distribution dataset the recorded seed, caps, protocol, truncation and normalisation reproduce its card."""
    from .data import OOD_PRESETS
    from .ood_protocol import OODProtocol

    recorded = dict((getattr(config, "oe", None) or {}).get("evaluation") or {})
    same_data = recorded.get("dataset") == args.id_dataset
    given = {
        "seed": args.seed,
        "protocol": args.protocol,
        "max_eval_samples": args.max_eval_samples,
        "max_ood_samples": args.max_ood_samples,
        "ood_datasets": args.ood_datasets,
        "label_granularity": args.label_granularity,
    }
    defaults = {
        "seed": recorded.get("seed", DEFAULT_SEED),
        "protocol": recorded.get("protocol", "paper"),
        "max_eval_samples": recorded.get("max_eval_samples") if same_data else None,
        "max_ood_samples": recorded.get("max_ood_samples"),
        "ood_datasets": recorded.get("ood_datasets", list(OOD_PRESETS)),
        "label_granularity": recorded.get("label_granularity", "fine") if same_data else "fine",
    }
    settings = {k: v if v is not None else defaults[k] for k, v in given.items()}
    # The protocol as recorded (subsets, ratio, FPR levels), with the command line's protocol, seed and cap on top.
    settings["ood_protocol"] = OODProtocol.from_settings(
        recorded, **{k: settings[k] for k in ("protocol", "seed", "max_ood_samples")}
    )
    settings["scores"] = args.scores or [config.ood_score]
    settings["max_length"] = recorded.get("max_length")
    settings["normalization"] = recorded.get("normalization") if same_data else None
    return settings


def _evaluate(args: argparse.Namespace) -> int:
    from .data import TextNormalization, load_id_dataset, load_ood_datasets
    from .evaluation import evaluate_ood

    ood_files = {Path(file).stem: _read_texts(file, args.encoding) for file in args.ood_files or []}
    model = _load_detector(args.model, args.trust_remote_code, args.pause_gc)
    settings = evaluation_settings(args, model.config)
    if settings["normalization"] is not None:
        normalization = TextNormalization(**settings["normalization"])
    else:
        normalization = TextNormalization.for_tokenizer(model.tokenizer)
    data = load_id_dataset(
        args.id_dataset,
        normalization=normalization,
        label_granularity=settings["label_granularity"],
        remap_labels=args.remap_labels,
    )
    test = data["test"]
    if settings["max_eval_samples"]:
        test = test.shuffle(seed=settings["seed"]).select(range(min(settings["max_eval_samples"], len(test))))
    ood, unavailable = ({}, {})
    if settings["ood_datasets"]:
        ood, unavailable = load_ood_datasets(settings["ood_datasets"], normalization=normalization)
    for name, texts in ood_files.items():
        ood[name] = [normalization(t) for t in texts]
    if not ood:
        raise SystemExit(f"oe-text: no OOD set could be loaded ({unavailable}); pass --ood_datasets or --ood_files.")
    results = evaluate_ood(
        model,
        model.tokenizer,
        test,
        ood,
        scores=settings["scores"],
        protocol=settings["ood_protocol"],
        batch_size=args.batch_size,
        max_length=settings["max_length"],
        unavailable=unavailable,
    )
    print(results)
    if args.output_dir:
        written = results.save(args.output_dir)
        print(f"\nWrote {', '.join(str(p) for p in written.values())}")
    return 0


def _detect(args: argparse.Namespace) -> int:
    # Input is read before the model loads, so nothing the loading does can consume or interleave with it.
    texts = _read_texts(args.input, args.encoding)
    model = _load_detector(args.model, args.trust_remote_code, args.pause_gc)
    detections = model.detect(texts, batch_size=args.batch_size, threshold=args.threshold)
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    try:
        for text, det in zip(texts, detections):
            record = {"text": text, "label": det["label"], "probability": det["score"]}
            record.update(ood_score=det["ood_score"], is_ood=det["is_ood"])
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _score(args: argparse.Namespace) -> int:
    from .scoring import CorpusReader, ScoringInputError, score_corpus

    if (args.input is None) == (args.dataset is None):
        raise SystemExit("oe-text score: pass exactly one of --input FILE and --dataset HUB_ID.")
    try:
        reader = CorpusReader(
            args.dataset or args.input,
            text_column=args.text_column,
            id_column=args.id_column,
            input_format=args.input_format,
            hub_dataset=args.dataset is not None,
            dataset_config=args.dataset_config,
            split=args.split,
            encoding=args.encoding,
            chunk_size=args.chunk_size,
        )
        model = _load_detector(args.model, args.trust_remote_code, args.pause_gc)
        rows = score_corpus(
            model,
            reader,
            args.output,
            output_format=args.output_format,
            include_text=args.include_text,
            batch_size=args.batch_size,
            threshold=args.threshold,
            progress=not args.no_progress,
        )
    except ScoringInputError as err:
        raise SystemExit(f"oe-text score: {err}") from None
    if args.output != "-":
        print(f"oe-text score: wrote {rows} rows to {args.output}", file=sys.stderr)
    return 0


TRAIN_TASKS = ("classification", "lm")


def _pop_task(args: list[str]) -> tuple[str, list[str]]:
    """Split `--task X` (or `--task=X`) off the `train` arguments; default `classification`."""
    rest, task, i = [], "classification", 0
    while i < len(args):
        arg = args[i]
        if arg == "--task":
            if i + 1 >= len(args):
                raise SystemExit(f"oe-text train: --task needs a value, one of {list(TRAIN_TASKS)}.")
            task, i = args[i + 1], i + 2
            continue
        if arg.startswith("--task="):
            task = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    if task not in TRAIN_TASKS:
        raise SystemExit(f"oe-text train: unknown --task {task!r}; choose one of {list(TRAIN_TASKS)}.")
    return task, rest


_TRUST_HELP = "allow custom code shipped with the detector (auto_map + .py files) to run; refused by default"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oe-text", description="Outlier Exposure for Hugging Face models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "train",
        help="run the recipe (baseline, OE, evaluation, detector); `oe-text train --help` lists every option; "
        "`--task lm` runs the language-model recipe (`oe-text train --task lm --help`)",
        add_help=False,
    )

    ev = sub.add_parser("evaluate", help="evaluate a saved or Hub detector against OOD presets or files")
    ev.add_argument("--model", required=True, help="detector folder or Hub id")
    ev.add_argument("--id_dataset", required=True, help="in-distribution preset, Hub id or file (its test split)")
    ev.add_argument("--label_granularity", help="TREC labels: fine or coarse (default: as recorded, else fine)")
    ev.add_argument(
        "--remap_labels", action="store_true", help="number integer labels that are not 0..K-1 in increasing order"
    )
    ev.add_argument(
        "--ood_datasets", nargs="*", help="OOD presets (default: those the detector was evaluated on, else all)"
    )
    ev.add_argument("--ood_files", nargs="*", help="text files, one input per line, as extra OOD sets")
    ev.add_argument(
        "--scores",
        nargs="+",
        help="msp, max_logit, energy, kl_uniform, entropy or a fitted score (default: the detector's own score)",
    )
    ev.add_argument("--protocol", choices=["paper", "full"], help="default: as recorded in the detector, else paper")
    ev.add_argument("--max_eval_samples", type=int, help="cap on in-distribution test inputs (default: as recorded)")
    ev.add_argument("--max_ood_samples", type=int, help="cap on inputs per OOD set (default: as recorded)")
    ev.add_argument("--batch_size", type=int, default=64)
    ev.add_argument(
        "--seed", type=int, help=f"default: the seed recorded in the detector's config, else {DEFAULT_SEED}"
    )
    ev.add_argument("--output_dir", help="write results.json/.csv/.md and plots here")
    ev.add_argument("--encoding", default="utf-8", help="encoding of --ood_files (default utf-8; a BOM is dropped)")
    ev.add_argument("--trust_remote_code", action="store_true", help=_TRUST_HELP)

    de = sub.add_parser("detect", help="classify texts and flag OOD ones; writes JSON lines")
    de.add_argument("--model", required=True, help="detector folder or Hub id")
    de.add_argument(
        "--input",
        default="-",
        help="text file, one input per line; lines end at \\n only, blank lines are skipped (default: standard input)",
    )
    de.add_argument("--output", default="-", help="JSON-lines file (default: standard output)")
    de.add_argument("--batch_size", type=int, default=64)
    de.add_argument("--threshold", type=float, help="override the detector's calibrated threshold")
    de.add_argument("--encoding", default="utf-8", help="encoding of --input (default utf-8; a BOM is dropped)")
    de.add_argument("--trust_remote_code", action="store_true", help=_TRUST_HELP)

    sc = sub.add_parser(
        "score",
        help="score a corpus (text/JSON-lines/CSV/Parquet file or Hub dataset) in chunks; runs sharded under "
        "`accelerate launch`; writes JSON lines or Parquet in input order",
    )
    sc.add_argument("--model", required=True, help="detector folder or Hub id")
    sc.add_argument("--input", help="a .txt (one text per line), .jsonl, .csv or .parquet file")
    sc.add_argument("--dataset", help="a Hub dataset id instead of --input (resolved through $OE_TEXT_MIRROR)")
    sc.add_argument("--dataset_config", help="the Hub dataset's configuration name")
    sc.add_argument("--split", default="test", help="the Hub dataset's split (default: test)")
    sc.add_argument("--input_format", choices=["txt", "jsonl", "csv", "parquet"], help="default: from the suffix")
    sc.add_argument("--text_column", default="text", help="column (field) with the texts (default: text)")
    sc.add_argument("--id_column", help="column copied into each record to identify the row (text files: line)")
    sc.add_argument("--output", required=True, help="a .jsonl or .parquet file (- = JSON lines on standard output)")
    sc.add_argument("--output_format", choices=["jsonl", "parquet"], help="default: parquet for .parquet, else jsonl")
    sc.add_argument("--include_text", action="store_true", help="copy each text into its record")
    sc.add_argument("--batch_size", type=int, default=64, help="texts per forward pass (default: 64)")
    sc.add_argument("--chunk_size", type=int, default=4096, help="rows held in memory and per shard (default: 4096)")
    sc.add_argument("--threshold", type=float, help="override the detector's calibrated threshold")
    sc.add_argument("--encoding", default="utf-8", help="encoding of text, JSON-lines and CSV files (default utf-8)")
    sc.add_argument("--no_progress", action="store_true", help="no progress bar")
    sc.add_argument("--trust_remote_code", action="store_true", help=_TRUST_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `oe-text` command. `argv=None` (the `oe-text` executable, `python -m oe_text.cli`) reads `sys.argv` and
    means a process that ends with the command: loading the detector then runs under `_startup_gc`."""
    pause_gc = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        task, rest = _pop_task(argv[1:])
        if task == "lm":
            from .lm_recipe import main as lm_recipe_main

            lm_recipe_main(args=rest)
            return 0
        from .recipe import main as recipe_main

        recipe_main(args=rest)
        return 0
    args = build_parser().parse_args(argv)
    args.pause_gc = pause_gc
    return {"evaluate": _evaluate, "detect": _detect, "score": _score}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
