"""The paper's language-model experiment: a causal LM, Outlier Exposure with WikiText, likelihood-based OOD detection.

`recipes/lm_oe.py` and `oe-text train --task lm` wrap `main`. The procedure follows the paper's
`NLP_language_modeling/` code (Hendrycks et al. 2019, Section 4.3):

1. train a baseline causal LM on the in-distribution corpus (next-token cross-entropy only);
2. fine-tune it with Outlier Exposure: `CE + oe_weight * OE-term`, the OE term being the cross-entropy from the
   uniform distribution over the vocabulary to the next-token distribution on WikiText sentences (weight 0.5, the
   paper's), or the margin-ranking variant (`--oe_loss margin`);
3. score the in-distribution test texts and the OOD presets with both models (the paper's `kl_uniform` score, the
   likelihood `nll`, `max_prob`) under the paper's protocol (OOD:ID = 1:5, FPR at 90% TPR), print them side by side,
   and check the **likelihood paradox**: which share of OOD texts the LM finds *more* likely than the median
   in-distribution text, before and after OE;
4. calibrate the OE model's threshold on in-distribution validation text (`--detector_score`, default the paper's
   `kl_uniform`) and save it as an `OELanguageModelDetector` (with its tokenizer and model card) in
   `output_dir/detector`.

The default model is a small GPT-2 built from a config with a sentencepiece tokenizer trained on the in-distribution
text (the paper's QRNN is trained from scratch too); any Hub causal LM id (`--model gpt2`) also works. The paper's
Penn Treebank is not in the offline mirror: the default corpus is the text of SST-2 (`SetFit/sst2`, lower-cased PTB-
tokenised movie-review sentences, the closest the mirror holds to PTB's style); `--dataset ptb_text_only` (the Hub's
Penn Treebank, parquet export) or any Hub text dataset / local file works on the real Hub.

Scoring runs on the main process (only the per-text scores are kept, not the `(n, T, V)` logits); training is
data-parallel under `accelerate launch`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    set_seed,
)
from transformers.utils import logging

from .data import OOD_PRESETS, TextNormalization, load_id_dataset, load_ood_datasets, load_outlier_dataset
from .data._loading import HubSource, is_local_path, load_local_file, load_source_split
from .data.in_distribution import ID_PRESETS
from .evaluation import compare_results, evaluate_ood_from_scores
from .hub import load_hub_dataset, remote_code_kwargs, resolve_hub_id
from .lm_scores import LM_SCORES
from .metrics import auroc
from .modeling_lm import (
    CausalLMCollator,
    OELanguageModelDetector,
    check_causal_lm,
    encode_for_lm,
    ensure_pad_token,
    score_texts_with_lm,
)
from .ood_protocol import OODProtocol
from .recipe_flow import RecipeResult, cap_eval_splits, card_results, phase_args, write_json
from .reporting import report_unavailable
from .tokenization import train_sentencepiece_tokenizer
from .trainer import OETrainer
from .training_args import OETrainingArguments, parse_args_with_defaults


logger = logging.get_logger(__name__)

SCRATCH_MODEL = "gpt2-scratch"
DEFAULT_DATASET = "sst2"


@dataclass(frozen=True)
class LMCorpusPreset:
    """A text corpus without labels for language modelling: where it lives and which column holds the text."""

    source: HubSource
    text_column: str
    splits: tuple[str, str, str] = ("train", "validation", "test")


#: Corpora beyond the classification presets of `ID_PRESETS` (whose text is used without labels).
LM_CORPUS_PRESETS: dict[str, LMCorpusPreset] = {
    # The paper's word-level corpus. The Hub repo is a script dataset; datasets >= 4 reads its parquet export.
    "ptb_text_only": LMCorpusPreset(
        HubSource("ptb-text-only/ptb_text_only", config="penn_treebank", revision="refs/convert/parquet"), "sentence"
    ),
}

# The paper's LM code fine-tunes with OE weight 0.5. The rest is sized so that the default run takes minutes on a CPU:
# a 2-layer, 128-wide GPT-2, 2 baseline epochs on SST-2's 6,920 training sentences, then OE fine-tuning for half an
# epoch (each OE step also runs a batch of longer WikiText sentences).
LM_TRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 2e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "num_train_epochs": 0.5,
    "weight_decay": 0.01,
    "oe_weight": 0.5,
    # Outliers drawn from the length bucket of each step's in-distribution batches (as the classifier recipes).
    "oe_length_matching": "bucket",
    "logging_steps": 50,
    "save_strategy": "no",
    "report_to": "none",
    "seed": 42,
}


@dataclass
class LMRecipeArguments:
    """What language model to train on which corpus, with which outliers, and how to evaluate it."""

    dataset: str = field(
        default=DEFAULT_DATASET,
        metadata={
            "help": "In-distribution corpus: a classification preset used as plain text "
            f"({', '.join(ID_PRESETS)}; default sst2 = SetFit/sst2 sentences), 'ptb_text_only' (the paper's Penn "
            "Treebank, real Hub only), another Hub text dataset id or a local file."
        },
    )
    text_column: str | None = field(
        default=None, metadata={"help": "Text column of a custom corpus (default: 'text', else 'sentence')."}
    )
    model: str = field(
        default=SCRATCH_MODEL,
        metadata={
            "help": f"'{SCRATCH_MODEL}': a small GPT-2 built from a config with a sentencepiece tokenizer trained on "
            "the in-distribution text; or any Hub causal LM id (e.g. 'gpt2')."
        },
    )
    n_layer: int = field(default=2, metadata={"help": "Layers of the scratch GPT-2."})
    n_embd: int = field(default=128, metadata={"help": "Width of the scratch GPT-2."})
    n_head: int = field(default=4, metadata={"help": "Attention heads of the scratch GPT-2."})
    vocab_size: int = field(default=5000, metadata={"help": "Sentencepiece vocabulary of the scratch model."})
    max_length: int = field(
        default=64,
        metadata={
            "help": "Tokens kept per text (its first ones, beginning-of-text token included); also the scratch "
            "model's context. Capped by a Hub model's own context."
        },
    )
    baseline_epochs: float = field(default=2.0, metadata={"help": "Epochs of baseline language-model training."})
    auxiliary_dataset: str = field(default="wikitext2", metadata={"help": "Auxiliary outliers (WikiText sentences)."})
    auxiliary_split: str = field(
        default="validation+test",
        metadata={"help": "Split(s) of the auxiliary set; the paper used WikiText-2 'train', absent from the mirror."},
    )
    auxiliary_max_samples: int | None = field(default=None, metadata={"help": "Cap on auxiliary sentences."})
    ood_datasets: list[str] = field(
        default_factory=lambda: list(OOD_PRESETS), metadata={"help": "OOD presets; unavailable ones are reported."}
    )
    protocol: str = field(
        default="paper",
        metadata={"help": "'paper' (OOD:ID = 1:5, 10 subsets) or 'full'.", "choices": ["paper", "full"]},
    )
    scores: list[str] = field(
        default_factory=lambda: ["kl_uniform", "nll", "max_prob"],
        metadata={"help": f"LM scores to evaluate ({', '.join(LM_SCORES)}); the first one is the main table's."},
    )
    detector_score: str = field(default="kl_uniform", metadata={"help": "Score the saved detector decides with."})
    calibration_tpr: float = field(default=0.95, metadata={"help": "ID validation share the threshold keeps."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training texts."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Cap on ID test/validation texts."})
    max_ood_samples: int | None = field(
        default=1000,
        metadata={
            "help": "Random sample of each OOD set that the protocol's subsets are drawn from (default 1000, to keep "
            "the CPU run in minutes; the OOD:ID ratio is unchanged). Pass 0 for whole sets."
        },
    )

    def __post_init__(self):
        if self.protocol not in ("paper", "full"):
            raise ValueError(f"`protocol` must be 'paper' or 'full', got {self.protocol!r}.")
        unknown = [s for s in [*self.scores, self.detector_score] if s not in LM_SCORES]
        if unknown:
            raise ValueError(f"Unknown LM score(s) {unknown}; known: {sorted(LM_SCORES)}.")
        if not self.scores:
            raise ValueError("`scores` is empty: name at least one LM score.")
        if not self.ood_datasets:
            raise ValueError("`ood_datasets` is empty: name at least one OOD preset.")
        if self.max_length < 2:
            raise ValueError(f"`max_length` must be >= 2, got {self.max_length}.")
        if self.max_ood_samples == 0:
            self.max_ood_samples = None
        for name in ("max_train_samples", "max_eval_samples", "max_ood_samples", "auxiliary_max_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")

    @property
    def from_scratch(self) -> bool:
        return self.model == SCRATCH_MODEL

    def ood_protocol(self, seed: int) -> OODProtocol:
        """The evaluation protocol of this run (`--protocol`, `--max_ood_samples`, the run's seed)."""
        return OODProtocol(protocol=self.protocol, seed=seed, max_ood_samples=self.max_ood_samples)


def parse_lm_recipe_args(args: list[str] | None = None) -> tuple[LMRecipeArguments, OETrainingArguments]:
    """Parse `LMRecipeArguments` and `OETrainingArguments` with the LM defaults (shown by `--help`); the command line
    wins."""

    def defaults(known) -> dict[str, Any]:
        name = f"{known.dataset.replace('/', '_')}_{known.model.split('/')[-1].lower()}_lm_oe"
        return {**LM_TRAINING_DEFAULTS, "output_dir": os.path.join("outputs", name)}

    return parse_args_with_defaults(
        (LMRecipeArguments, OETrainingArguments), defaults, {"dataset": DEFAULT_DATASET, "model": SCRATCH_MODEL}, args
    )


# ------------------------------------------------------------------------------------------------ data
def _text_column(ds: datasets.Dataset, requested: str | None, dataset: str) -> str:
    candidates = [requested] if requested else ["text", "sentence"]
    for column in candidates:
        if column in ds.column_names:
            return column
    raise ValueError(
        f"The corpus {dataset!r} has no text column {candidates} (columns: {ds.column_names}); pass --text_column."
    )


def _clean(ds: datasets.Dataset, column: str, normalization: TextNormalization) -> datasets.Dataset:
    ds = ds.map(
        lambda b: {"text": [normalization(t) if isinstance(t, str) else "" for t in b[column]]},
        batched=True,
        remove_columns=ds.column_names,
    )
    return ds.filter(lambda b: [bool(t) for t in b["text"]], batched=True)


def load_lm_corpus(
    name: str,
    normalization: TextNormalization,
    text_column: str | None = None,
    max_train_samples: int | None = None,
    seed: int = 42,
) -> datasets.DatasetDict:
    """`train` / `validation` / `test` splits of plain text (column `text`, normalised, no empty rows).

    Classification presets (`ID_PRESETS`) are loaded as such and lose their labels; `LM_CORPUS_PRESETS` name text
    corpora; anything else is a Hub id or a local file whose missing validation / test splits are split off train
    (10% each, seeded).
    """
    if name in ID_PRESETS:
        data = load_id_dataset(name, normalization=normalization, max_train_samples=max_train_samples, seed=seed)
        return datasets.DatasetDict(
            {k: v.remove_columns([c for c in v.column_names if c != "text"]) for k, v in data.items()}
        )
    if name in LM_CORPUS_PRESETS:
        preset = LM_CORPUS_PRESETS[name]
        raw = {
            split: load_source_split(name, preset.source, source_split)
            for split, source_split in zip(("train", "validation", "test"), preset.splits)
        }
    else:
        loaded = load_local_file(name) if is_local_path(name) and os.path.isfile(name) else load_hub_dataset(name)
        raw = dict(loaded)
        if "train" not in raw:
            raise ValueError(f"The corpus {name!r} has no 'train' split (splits: {sorted(raw)}).")
        for split in ("test", "validation"):
            if split not in raw:
                parts = raw["train"].train_test_split(test_size=0.1, seed=seed)
                raw["train"], raw[split] = parts["train"], parts["test"]
    column = text_column or (LM_CORPUS_PRESETS[name].text_column if name in LM_CORPUS_PRESETS else None)
    out = datasets.DatasetDict({k: _clean(v, _text_column(v, column, name), normalization) for k, v in raw.items()})
    if max_train_samples is not None and len(out["train"]) > max_train_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(out["train"]), max_train_samples, replace=False))
        out["train"] = out["train"].select(keep)
    for split, ds in out.items():
        if len(ds) == 0:
            raise ValueError(f"The corpus {name!r} has no non-empty text in its {split!r} split.")
    return out


# ------------------------------------------------------------------------------------------------ model
def build_scratch_tokenizer(texts: list[str], vocab_size: int, max_length: int, seed: int = 0):
    """Sentencepiece (Unigram) tokenizer trained on `texts`, with `<s>` prepended and `</s>` appended to every text.

    The end-of-text token lets the LM model where sentences end, as the paper's PTB corpus has `<eos>` per line; the
    beginning-of-text token makes the first word a prediction too.
    """
    from tokenizers import processors

    tokenizer = train_sentencepiece_tokenizer(texts, vocab_size=vocab_size, model_max_length=max_length, seed=seed)
    tokenizer.add_special_tokens({"bos_token": "<s>", "eos_token": "</s>"})
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return tokenizer


def build_scratch_model(tokenizer, recipe_args: LMRecipeArguments) -> GPT2LMHeadModel:
    """A small GPT-2 from a config (no pretrained weights)."""
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=recipe_args.max_length,
        n_embd=recipe_args.n_embd,
        n_layer=recipe_args.n_layer,
        n_head=recipe_args.n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def load_hub_causal_lm(name: str):
    """A Hub (or mirrored, or local) causal LM and its tokenizer; a non-causal model is a clear error."""
    path = resolve_hub_id(name, "model")
    code = remote_code_kwargs(False, "language model")  # the recipe never runs code shipped with a model
    config = AutoConfig.from_pretrained(path, **code)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **code)
    except ValueError as err:
        raise ValueError(
            f"--model {name!r} ({type(config).__name__}) is not a causal language model: AutoModelForCausalLM "
            f"cannot load it ({err})."
        ) from None
    check_causal_lm(model, argument=f"--model {name}")
    tokenizer = ensure_pad_token(AutoTokenizer.from_pretrained(path, **code))
    return model, tokenizer


# ------------------------------------------------------------------------------------------------ evaluation
@dataclass
class LMRecipeResult(RecipeResult):
    """`RecipeResult` with the likelihood-paradox check: its per-set numbers (`likelihood_paradox`, per run), its
    table and the ID test mean NLL per token of each run (`id_nll`)."""

    likelihood_paradox: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    paradox_table: str = ""
    id_nll: dict[str, float] = field(default_factory=dict)


def likelihood_paradox(id_nll: np.ndarray, ood_nll: np.ndarray) -> dict[str, float]:
    """How much more likely OOD texts look than in-distribution texts, under the LM's NLL per token.

    Returns:
        `dict` with `share_more_likely` (fraction of OOD texts whose NLL is below the median ID NLL, i.e. that the LM
        finds more likely than the typical in-distribution text; 0.5 = no separation), `auroc_nll` (AUROC of NLL as
        an OOD score, OOD positive; < 0.5 means OOD text is *more* likely), and the mean NLLs.
    """
    median = float(np.median(id_nll))
    return {
        "share_more_likely": float(np.mean(ood_nll < median)),
        "auroc_nll": float(auroc(id_nll, ood_nll)),
        "mean_nll_ood": float(np.mean(ood_nll)),
        "mean_nll_id": float(np.mean(id_nll)),
    }


def _evaluate(model, tokenizer, recipe_args, training_args, test_texts, ood, unavailable, plan):
    kwargs = dict(scores=recipe_args.scores + (["nll"] if "nll" not in recipe_args.scores else []),
                  batch_size=training_args.per_device_eval_batch_size, max_length=recipe_args.max_length)  # fmt: skip
    id_scores = score_texts_with_lm(model, tokenizer, test_texts, **kwargs)
    ood_scores = {
        name: score_texts_with_lm(model, tokenizer, ds.select(plan.indices_to_score(name))["text"], **kwargs)
        for name, ds in ood.items()
    }
    results = evaluate_ood_from_scores(
        {s: id_scores[s] for s in recipe_args.scores},
        {name: {s: v[s] for s in recipe_args.scores} for name, v in ood_scores.items()},
        plan=plan,
        protocol=recipe_args.ood_protocol(training_args.seed),
        unavailable=unavailable,
    )
    paradox = {name: likelihood_paradox(id_scores["nll"], v["nll"]) for name, v in ood_scores.items()}
    return results, paradox, float(np.mean(id_scores["nll"]))


def paradox_markdown(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> str:
    """The likelihood-paradox check as a markdown table (baseline vs OE per OOD set)."""
    lines = [
        "Likelihood paradox: share of OOD texts the LM finds more likely (lower NLL per token) than the median "
        "in-distribution test text (0.5 = indistinguishable, > 0.5 = OOD looks *more* likely), and AUROC of the NLL "
        "as OOD score (< 50 = OOD more likely). Values in %.",
        "",
        "| OOD set | more likely than ID median, Baseline | more likely, OE | AUROC(NLL) Baseline | AUROC(NLL) OE |"
        " mean NLL Baseline | mean NLL OE |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in before:
        b, a = before[name], after[name]
        lines.append(
            f"| {name} | {100 * b['share_more_likely']:.1f} | {100 * a['share_more_likely']:.1f} | "
            f"{100 * b['auroc_nll']:.1f} | {100 * a['auroc_nll']:.1f} | {b['mean_nll_ood']:.3f} | "
            f"{a['mean_nll_ood']:.3f} |"
        )
    lines.append(
        f"| *ID test (mean NLL)* | | | | | {next(iter(before.values()))['mean_nll_id']:.3f} | "
        f"{next(iter(after.values()))['mean_nll_id']:.3f} |"
    )
    return "\n".join(lines)


def _encoded(ds: datasets.Dataset, tokenizer, max_length: int) -> datasets.Dataset:
    return ds.map(
        lambda b: encode_for_lm(tokenizer, b["text"], max_length=max_length, check=False),
        batched=True,
        remove_columns=ds.column_names,
        desc="Tokenizing",
    )


# ------------------------------------------------------------------------------------------------ the recipe
def run_lm_recipe(recipe_args: LMRecipeArguments, training_args: OETrainingArguments) -> LMRecipeResult:
    """Run the experiment of the module docstring and return both evaluations (see `LMRecipeResult`)."""
    output_dir = Path(training_args.output_dir)
    is_main = training_args.process_index == 0
    timings: dict[str, float] = {}
    start = time.perf_counter()

    tokenizer = model = None
    if not recipe_args.from_scratch:
        model, tokenizer = load_hub_causal_lm(recipe_args.model)
    normalization = TextNormalization() if tokenizer is None else TextNormalization.for_tokenizer(tokenizer)
    with training_args.main_process_first(desc="loading datasets"):
        corpus = load_lm_corpus(
            recipe_args.dataset,
            normalization,
            text_column=recipe_args.text_column,
            max_train_samples=recipe_args.max_train_samples,
            seed=training_args.seed,
        )
        ood, unavailable = load_ood_datasets(recipe_args.ood_datasets, normalization=normalization)
    if not ood:
        raise ValueError(f"None of the OOD sets {recipe_args.ood_datasets} could be loaded: {unavailable}.")
    report_unavailable(unavailable, logger, is_main)
    test, validation = cap_eval_splits(
        corpus["test"], corpus["validation"], recipe_args.max_eval_samples, training_args.seed
    )

    if recipe_args.from_scratch:
        folder = output_dir / "tokenizer"
        with training_args.main_process_first(desc="training the sentencepiece tokenizer"):
            if is_main:
                tokenizer = build_scratch_tokenizer(
                    corpus["train"]["text"], recipe_args.vocab_size, recipe_args.max_length, seed=training_args.seed
                )
                tokenizer.save_pretrained(folder)
            else:
                tokenizer = AutoTokenizer.from_pretrained(folder)
        set_seed(training_args.seed)  # the Trainer seeds only after the model exists: seed its initialisation here
        model = build_scratch_model(tokenizer, recipe_args)
    max_length = recipe_args.max_length
    train = _encoded(corpus["train"], tokenizer, max_length)

    exclude = [*test["text"], *(t for ds in ood.values() for t in ds["text"])]
    with training_args.main_process_first(desc="loading auxiliary outliers"):
        outlier_text = load_outlier_dataset(
            recipe_args.auxiliary_dataset,
            split=recipe_args.auxiliary_split,
            exclude_texts=exclude,
            normalization=normalization,
            max_samples=recipe_args.auxiliary_max_samples,
        )
    outliers = _encoded(outlier_text, tokenizer, max_length)
    plan = recipe_args.ood_protocol(training_args.seed).plan(len(test), {name: len(ds) for name, ds in ood.items()})
    timings["data"] = time.perf_counter() - start

    # ---- 1. baseline language model, 2. Outlier Exposure fine-tuning from it
    collator = CausalLMCollator(tokenizer)

    def train_phase(name: str, outlier_dataset=None, **changes):
        t0 = time.perf_counter()
        trainer = OETrainer(
            model=model,
            args=phase_args(training_args, name, **changes),
            train_dataset=train,
            processing_class=tokenizer,
            data_collator=collator,
            outlier_dataset=outlier_dataset,
        )
        trainer.train()
        timings[f"{name}_training"] = time.perf_counter() - t0
        return trainer, trainer.accelerator.unwrap_model(trainer.model)

    _, model = train_phase("baseline", oe_weight=0.0, num_train_epochs=recipe_args.baseline_epochs)
    t0 = time.perf_counter()
    baseline = before = baseline_id_nll = None
    if is_main:
        baseline, before, baseline_id_nll = _evaluate(
            model, tokenizer, recipe_args, training_args, test["text"], ood, unavailable, plan
        )
    timings["baseline_scoring"] = time.perf_counter() - t0
    oe_trainer, model = train_phase("oe", outlier_dataset=outliers)
    t0 = time.perf_counter()
    result = None
    if is_main:
        oe, after, oe_id_nll = _evaluate(
            model, tokenizer, recipe_args, training_args, test["text"], ood, unavailable, plan
        )
        timings["oe_scoring"] = time.perf_counter() - t0
        tables = [compare_results({"Baseline": baseline, "OE": oe}, score=s) for s in recipe_args.scores]
        result = LMRecipeResult(
            baseline=baseline,
            oe=oe,
            comparison="\n\n".join(tables),
            likelihood_paradox={"baseline": before, "oe": after},
            paradox_table=paradox_markdown(before, after),
            id_nll={"baseline": baseline_id_nll, "oe": oe_id_nll},
            output_dir=output_dir,
            detector_score=recipe_args.detector_score,
            timings=timings,
        )
        detector = OELanguageModelDetector.from_lm(model, tokenizer, truncation_length=max_length)
        detector.set_ood_score(recipe_args.detector_score)
        result.threshold = detector.calibrate_threshold(
            validation["text"],
            tpr=recipe_args.calibration_tpr,
            calibration_data={"dataset": recipe_args.dataset, "split": "validation", "num_examples": len(validation)},
            batch_size=training_args.per_device_eval_batch_size,
        )
        detector.record_oe_provenance(
            training_args=training_args,
            in_distribution_dataset=ID_PRESETS[recipe_args.dataset].hub_id
            if recipe_args.dataset in ID_PRESETS
            else recipe_args.dataset,
            auxiliary_dataset=f"{recipe_args.auxiliary_dataset} ({recipe_args.auxiliary_split})",
            ood_results=card_results(oe, recipe_args.detector_score),
            baseline_ood_results=card_results(baseline, recipe_args.detector_score),
            likelihood_paradox=after,
            protocol=recipe_args.protocol,
            seed=training_args.seed,
        )
        result.detector_dir = output_dir / "detector"
        detector.save_pretrained(result.detector_dir)
        _save(result, recipe_args)
    oe_trainer.accelerator.wait_for_everyone()
    return result


def _save(result: LMRecipeResult, recipe_args: LMRecipeArguments) -> None:
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    result.baseline.save(out / "results" / "baseline")
    result.oe.save(out / "results" / "oe")
    (out / "comparison.md").write_text(result.comparison + "\n\n" + result.paradox_table + "\n")
    summary = {
        "recipe": dataclasses.asdict(recipe_args),
        "likelihood_paradox": result.likelihood_paradox,
        "id_test_mean_nll": result.id_nll,
        "timings_s": result.timings,
        "threshold": result.threshold,
        "baseline": result.baseline.to_dict(),
        "oe": result.oe.to_dict(),
    }
    write_json(out / "results.json", summary)


def main(args: list[str] | None = None) -> LMRecipeResult | None:
    """Entry point of `recipes/lm_oe.py` and `oe-text train --task lm`: parse, run, print the tables."""
    recipe_args, training_args = parse_lm_recipe_args(args)
    result = run_lm_recipe(recipe_args, training_args)
    if result is not None:
        print("\n" + result.comparison + "\n\n" + result.paradox_table)
        print(
            f"\nID test mean NLL per token: baseline {result.id_nll['baseline']:.3f}, OE {result.id_nll['oe']:.3f} "
            f"(perplexity {np.exp(result.id_nll['baseline']):.1f} -> {np.exp(result.id_nll['oe']):.1f})"
        )
        print("Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items()))
        if result.detector_dir is not None:
            print(f"Detector (threshold {result.threshold:.4f}) saved to {result.detector_dir}")
        print(f"Reports in {result.output_dir / 'results'}")
    return result
