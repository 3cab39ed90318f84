"""The paper's text experiment as one function: baseline, Outlier Exposure, OOD evaluation, detector.

`recipes/sst2_oe.py`, `recipes/trec_oe.py`, `recipes/newsgroups_oe.py` and `oe-text train` are thin wrappers over
`parse_recipe_args` + `run_recipe`, which runs `TextRecipe`: the shared flow of `oe_text.recipe_flow.OERecipe` with
the text hooks (data, tokenizer, models, score selection, reports). The procedure (Hendrycks et al. 2019, Section
4.2 and its NLP code):

1. train the baseline classifier (cross-entropy only);
2. Outlier Exposure: fine-tune the baseline with `CE + oe_weight * OE-term` (the paper's default), or train a fresh
   model with OE from scratch (`--oe_mode scratch`);
3. evaluate both as OOD detectors on the OOD presets (MSP and any other score; `paper` or `full` protocol) and print
   one side-by-side table;
4. calibrate the OE detector's threshold on in-distribution validation data and save it (with its tokenizer, results
   and model card) in `output_dir/detector`; optionally push it to the Hub.

Everything runs under `accelerate launch` with one or several processes: training is data-parallel, logits are
computed, with features when a score needs them, by `oe_text.inference.predict_outputs` sharing its batches among
the processes (gathered in order), and the main process writes the reports.
Each process draws `--per_device_train_batch_size` examples per step, so N processes train with an N times larger
global batch and N times fewer steps than one process (the run logs the global batch). To match a single-process run,
divide `--per_device_train_batch_size` by N. Pass `--num_processes N --num_machines 1 --mixed_precision no
--dynamo_backend no` to `accelerate launch` (or a config file such as `recipes/accelerate_configs/cpu_2proc.yaml`) so
that accelerate does not warn about the defaults it would otherwise assume.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset
from transformers import AutoTokenizer, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from .data import (
    OOD_PRESETS,
    TextNormalization,
    load_id_dataset,
    load_ood_datasets,
    load_outlier_dataset,
)
from .data.in_distribution import ID_PRESETS
from .defaults import DEFAULT_SEED
from .evaluation import OODResults, compare_results, evaluate_ood
from .feature_scores import FEATURE_SCORES
from .hub import remote_code_kwargs, resolve_hub_id
from .inference import distributed_inference, predict_outputs
from .modeling_oe import OEClassifier
from .ood_protocol import PROTOCOLS, OODProtocol
from .recipe_flow import (
    OERecipe,
    PhaseEvaluation,
    RecipeData,
    RecipeResult,
    cap_eval_splits,
    write_json,
)
from .score_selection import (
    DEFAULT_SCORE_CANDIDATES,
    fit_candidate_scores,
    is_candidate,
    outlier_sources,
    select_ood_score,
    selection_table,
    supported_candidates,
)
from .scores import LOGIT_SCORES, compute_score
from .tokenization import train_sentencepiece_tokenizer
from .trainer import OETrainer
from .training_args import OETrainingArguments, parse_args_with_defaults


logger = logging.get_logger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Where the finished baseline is saved when checkpointing is on (so that a resumed run does not retrain it).
BASELINE_FINAL = "final"
RNN_MODELS = ("gru", "lstm")

# The paper's NLP code (train.py / train_OE.py): Adam lr 0.01, cosine schedule, batch 64, 5 epochs, λ = 1, no clipping.
RNN_TRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.01,
    "lr_scheduler_type": "cosine",
    "per_device_train_batch_size": 64,
    "per_device_eval_batch_size": 256,
    "num_train_epochs": 5.0,
    "weight_decay": 0.0,
    "warmup_steps": 0,
    "max_grad_norm": 0.0,
    "oe_weight": 1.0,
}
# Fine-tuning defaults for pretrained encoders, sized so the SST-2 recipe runs in minutes on a CPU: one baseline
# epoch, then half an epoch of OE fine-tuning (each OE step also runs a batch of outliers of the same length).
TRANSFORMER_TRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-5,
    "lr_scheduler_type": "linear",
    "warmup_steps": 0.1,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 128,
    "baseline_epochs": 1.0,
    "num_train_epochs": 0.5,
    "weight_decay": 0.01,
    "oe_weight": 1.0,
}
COMMON_TRAINING_DEFAULTS: dict[str, Any] = {
    # Batches of similar lengths, like the paper's torchtext BucketIterator; also much less padding on a CPU.
    "train_sampling_strategy": "group_by_length",
    # Outliers drawn from the length bucket of each in-distribution batch: no row is padded to outlier length.
    "oe_length_matching": "bucket",
    "logging_steps": 20,
    "save_strategy": "no",
    "report_to": "none",
    "seed": DEFAULT_SEED,
}
# Validation outliers besides the held-out auxiliary sentences: the benchmark's other in-distribution datasets. No
# recipe trains on them or tests on them (the OOD test sets are SNLI, IMDB, Multi30K, WMT16, Yelp and EWT), so they
# measure whether a score transfers beyond the auxiliary distribution OE learnt.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "sst2": {"max_length": 64, "validation_outliers": ["trec", "20ng"]},
    "glue-sst2": {"validation_outliers": ["trec", "20ng"]},
    "trec": {"max_length": 64, "validation_outliers": ["sst2", "20ng"]},
    # The paper truncates 20 Newsgroups posts to 100 tokens (fix_length=100).
    "20ng": {"max_length": 100, "validation_outliers": ["sst2", "trec"]},
}


@dataclass
class RecipeArguments:
    """What to train, with which outliers, and how to evaluate it (training settings: `OETrainingArguments`)."""

    dataset: str = field(
        default="sst2",
        metadata={"help": f"In-distribution preset ({', '.join(ID_PRESETS)}), another Hub id or a local file."},
    )
    text_column: str | None = field(default=None, metadata={"help": "Text column of a custom dataset."})
    label_column: str | None = field(default=None, metadata={"help": "Label column of a custom dataset."})
    label_granularity: str = field(
        default="fine", metadata={"help": "TREC labels: 'fine' (50, as the paper) or 'coarse' (6)."}
    )
    class_names: list[str] | None = field(
        default=None,
        metadata={"help": "Declare the label set of a custom dataset (integer labels index it; gaps allowed)."},
    )
    remap_labels: bool = field(
        default=False,
        metadata={
            "help": "Integer labels that are not 0..K-1 (e.g. 0, 1, 7): number the labels present 0..K-1 instead of "
            "raising an error."
        },
    )
    model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "'gru' or 'lstm' (the paper's baselines, trained from scratch) or any Hub encoder id."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Allow custom code shipped with --model (auto_map + .py files) to run. Off: such code is refused."
        },
    )
    oe_mode: str = field(
        default="finetune",
        metadata={
            "help": "'finetune': OE fine-tunes the baseline (the paper's default); 'scratch': a fresh model is "
            "trained with OE from the start.",
            "choices": ["finetune", "scratch"],
        },
    )
    auxiliary_dataset: str = field(
        default="wikitext2", metadata={"help": "Auxiliary outliers: 'wikitext2', 'wikitext103', a Hub id or a file."}
    )
    auxiliary_config: str | None = field(default=None, metadata={"help": "Config of the auxiliary dataset."})
    auxiliary_split: str = field(
        default="validation+test",
        metadata={
            "help": "Split(s) of the auxiliary dataset, '+'-joined. The paper uses WikiText-2 'train'; the offline "
            "mirror holds only 'validation' and 'test', hence the default."
        },
    )
    auxiliary_text_column: str = field(default="text", metadata={"help": "Text column of a custom auxiliary set."})
    auxiliary_streaming: bool = field(
        default=False, metadata={"help": "Stream the auxiliary corpus (IterableDataset; flat memory)."}
    )
    auxiliary_max_samples: int | None = field(default=None, metadata={"help": "Cap on auxiliary sentences."})
    auxiliary_unk_policy: str | None = field(
        default=None,
        metadata={
            "help": "WikiText's literal <unk> token: 'remove' (default for the WikiText presets), 'drop' the "
            "sentences holding it, or 'keep' (the paper's behaviour; default for custom data).",
            "choices": [None, "remove", "drop", "keep"],
        },
    )
    exclude_test_overlap: bool = field(
        default=True,
        metadata={"help": "Drop auxiliary sentences that also occur in the ID test set or the OOD sets."},
    )
    ood_datasets: list[str] = field(
        default_factory=lambda: list(OOD_PRESETS),
        metadata={"help": "OOD presets to evaluate on; unavailable ones are reported by name."},
    )
    protocol: str = field(
        default="paper",
        metadata={
            "help": "'paper': OOD:ID = 1:5, mean over 10 seeded OOD subsets; 'full': every example once.",
            "choices": ["paper", "full"],
        },
    )
    scores: list[str] = field(
        default_factory=lambda: ["msp"],
        metadata={
            "help": "OOD scores to report: logit scores (msp, max_logit, energy, kl_uniform, entropy) and fitted "
            "scores (knn, mahalanobis, knn_pretrained, mahalanobis_pretrained, length, combined, combined_length; "
            "fitted on the OE detector, the baseline gets knn/mahalanobis fitted on the fly). The score candidates "
            "are always reported."
        },
    )
    detector_score: str = field(
        default="auto",
        metadata={
            "help": "Score the saved detector decides with: 'auto' (the best of --score_candidates on ID validation "
            "vs validation outliers training never saw: held-out auxiliary outliers and --validation_outliers; never "
            "on OOD test sets), a logit score, or a candidate name."
        },
    )
    score_candidates: list[str] = field(
        default_factory=lambda: list(DEFAULT_SCORE_CANDIDATES),
        metadata={
            "help": "Scores fitted on the OE detector and compared for --detector_score auto: logit scores, knn, "
            "mahalanobis (fine-tuned features), knn_pretrained, mahalanobis_pretrained (frozen pretrained encoder; "
            "transformers only), length (how atypical the input's word count is), combined (msp + k-NN over the "
            "frozen pretrained encoder when the detector has one, which is then saved with it, else over the "
            "fine-tuned features; a logistic model fitted against validation outliers) and combined_length (the "
            "same + length)."
        },
    )
    heldout_auxiliary_samples: int = field(
        default=1000,
        metadata={
            "help": "Auxiliary outliers held out of training (a seeded sample) to choose and fit the detector's "
            "score. 0 disables held-out data (then --detector_score must name a logit score)."
        },
    )
    validation_outliers: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Further validation outlier sources for choosing and fitting the detector's score, besides the "
            "held-out auxiliary outliers: ID presets (their train texts) or outlier datasets (Hub ids, files) that "
            "neither training nor the OOD test sets use; --heldout_auxiliary_samples texts of each (seeded). "
            "Default with --dataset a preset (through the command line or parse_recipe_args): the other ID presets "
            "(SST-2: trec 20ng; TREC: sst2 20ng; 20NG: sst2 trec). 'none' (alone): held-out auxiliary outliers only."
        },
    )
    knn_k: int = field(default=10, metadata={"help": "k of the k-NN candidate scores."})
    calibration_tpr: float = field(
        default=0.95,
        metadata={"help": "Fraction of in-distribution validation inputs the detector's threshold keeps."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Cap on ID test/validation examples."})
    max_ood_samples: int | None = field(default=None, metadata={"help": "Cap on examples per OOD set."})
    max_length: int | None = field(
        default=None,
        metadata={"help": "Token truncation length (default per dataset: SST-2/TREC 64, 20NG 100 as the paper)."},
    )
    vocab_size: int = field(default=10_000, metadata={"help": "Sentencepiece vocabulary of the GRU/LSTM models."})
    lowercase: bool | None = field(
        default=None,
        metadata={
            "help": "Lower-case every text (ID, auxiliary, OOD alike). Default: what the tokenizer expects "
            "(the uncased MiniLM lower-cases; GRU/LSTM: yes, as the paper's data)."
        },
    )
    baseline_epochs: float | None = field(
        default=None,
        metadata={
            "help": "Baseline epochs. Default per --model: GRU/LSTM train the baseline as long as OE "
            "(--num_train_epochs, as the paper); pretrained encoders 1 epoch."
        },
    )
    baseline_learning_rate: float | None = field(
        default=None, metadata={"help": "Baseline learning rate (default: learning_rate)."}
    )

    def __post_init__(self):
        if self.oe_mode not in ("finetune", "scratch"):
            raise ValueError(f"`oe_mode` must be 'finetune' or 'scratch', got {self.oe_mode!r}.")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"`protocol` must be 'paper' or 'full', got {self.protocol!r}.")
        if not 0 < self.calibration_tpr <= 1:
            raise ValueError(f"`calibration_tpr` must be in (0, 1], got {self.calibration_tpr}.")
        supported_candidates(None, self.score_candidates)  # unknown names fail now, with the list of known ones
        allowed = {"auto", *LOGIT_SCORES, *self.score_candidates}
        if self.detector_score not in allowed:
            raise ValueError(f"`detector_score` must be one of {sorted(allowed)}, got {self.detector_score!r}.")
        if self.heldout_auxiliary_samples < 0:
            raise ValueError(f"`heldout_auxiliary_samples` must be >= 0, got {self.heldout_auxiliary_samples}.")
        if self.heldout_auxiliary_samples < 4 and self.detector_score not in LOGIT_SCORES:
            raise ValueError(
                f"`detector_score={self.detector_score!r}` is chosen or fitted on held-out auxiliary outliers: set "
                "`heldout_auxiliary_samples` >= 4, or name a logit score."
            )
        if not self.ood_datasets:
            raise ValueError("`ood_datasets` is empty: name at least one OOD preset.")
        if [v.lower() for v in self.validation_outliers] == ["none"]:
            self.validation_outliers = []
        if "none" in (v.lower() for v in self.validation_outliers):
            raise ValueError("`validation_outliers`: 'none' stands alone (no further sources); drop the other names.")
        # Compared by name and by the data behind the name (a preset and its Hub id, the WikiText presets).
        used = {self.dataset, *self.ood_datasets, self.auxiliary_dataset}
        used_ids = {_data_identity(name) for name in used}
        clash = sorted(v for v in self.validation_outliers if v in used or _data_identity(v) in used_ids)
        if clash:
            raise ValueError(
                f"`validation_outliers` must be sources training and testing never use; {clash} is the "
                "in-distribution dataset, an OOD test set or the auxiliary dataset (or the same data)."
            )
        for name in ("max_train_samples", "max_eval_samples", "max_ood_samples", "max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")

    @property
    def is_rnn(self) -> bool:
        return self.model.lower() in RNN_MODELS

    def ood_protocol(self, seed: int) -> OODProtocol:
        """The evaluation protocol of this run (`--protocol`, `--max_ood_samples`, the run's seed)."""
        return OODProtocol(protocol=self.protocol, seed=seed, max_ood_samples=self.max_ood_samples)


def recipe_defaults(model: str, dataset: str) -> dict[str, Any]:
    """Default `OETrainingArguments`/`RecipeArguments` values for a model kind and dataset (see module docs)."""
    kind = RNN_TRAINING_DEFAULTS if model.lower() in RNN_MODELS else TRANSFORMER_TRAINING_DEFAULTS
    return {
        **COMMON_TRAINING_DEFAULTS,
        **kind,
        **DATASET_DEFAULTS.get(dataset, {}),
        "output_dir": os.path.join("outputs", f"{dataset.replace('/', '_')}_{model.split('/')[-1].lower()}_oe"),
    }


def parse_recipe_args(
    dataset: str | None = None, args: list[str] | None = None
) -> tuple[RecipeArguments, OETrainingArguments]:
    """Parse `RecipeArguments` and `OETrainingArguments` from the command line with per-model defaults.

    The defaults depend on `--model` (GRU/LSTM: the paper's settings; encoders: fine-tuning settings) and on
    `--dataset`; anything given on the command line wins.
    """
    return parse_args_with_defaults(
        (RecipeArguments, OETrainingArguments),
        lambda known: {"dataset": known.dataset, **recipe_defaults(known.model, known.dataset)},
        {"model": DEFAULT_MODEL, "dataset": dataset or "sst2"},
        args,
    )


def _normalization(recipe_args: RecipeArguments, tokenizer) -> TextNormalization:
    if recipe_args.lowercase is not None:
        return TextNormalization(lowercase=recipe_args.lowercase)
    if recipe_args.is_rnn:
        return TextNormalization()
    return TextNormalization.for_tokenizer(tokenizer)


def _build_model(recipe_args: RecipeArguments, label_names: list[str], tokenizer, seed: int) -> OEClassifier:
    # Seeded here, right before the weights are drawn: they depend on the seed only, not on what ran before.
    set_seed(seed)
    if recipe_args.is_rnn:
        return OEClassifier.from_rnn(kind=recipe_args.model.lower(), id2label=label_names, tokenizer=tokenizer)
    return OEClassifier.from_backbone(
        recipe_args.model, id2label=label_names, trust_remote_code=recipe_args.trust_remote_code
    )


def _rnn_tokenizer(
    recipe_args, training_args, train_texts: list[str], max_length: int, normalization: TextNormalization
):
    """Train (process 0) or load the sentencepiece tokenizer; it lower-cases exactly when `normalization` does."""
    folder = Path(training_args.output_dir) / "tokenizer"
    # One process trains the tokenizer; the others load it, so every rank has the same vocabulary.
    with training_args.main_process_first(desc="training the sentencepiece tokenizer"):
        if training_args.process_index == 0:
            tokenizer = train_sentencepiece_tokenizer(
                train_texts,
                vocab_size=recipe_args.vocab_size,
                model_max_length=max_length,
                # The data is already normalised; the tokenizer repeats the same casing rule for raw text at
                # inference (`detect`), so training and inference see the same text.
                lowercase=normalization.lowercase,
                seed=training_args.seed,
            )
            tokenizer.save_pretrained(folder)
        else:
            tokenizer = AutoTokenizer.from_pretrained(folder, **remote_code_kwargs(False))
    return tokenizer


def _complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in `folder` that were saved completely (`trainer_state.json` is written last), oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else -1)


def _resume_plan(training_args: OETrainingArguments) -> dict[str, str | None]:
    """Where each phase resumes from under `--resume_from_checkpoint` (`true` or a checkpoint folder).

    Returns `{"baseline": None | "final" | checkpoint, "oe": None | checkpoint}`: `"final"` means the baseline
    finished (saved in `baseline/final`) and is loaded instead of retrained. With `true`, the OE phase resumes from its
    newest complete checkpoint if it has one (the baseline is then loaded), else the baseline resumes from its own.
    """
    value = training_args.resume_from_checkpoint
    plan: dict[str, str | None] = {"baseline": None, "oe": None}
    if value is None or str(value).lower() in ("", "false", "none"):
        return plan
    root = Path(training_args.output_dir)
    baseline_dir, oe_dir = root / "baseline", root / "oe"
    final = baseline_dir / BASELINE_FINAL
    has_final = (final / "config.json").is_file()
    if str(value).lower() == "true":
        oe_checkpoints, baseline_checkpoints = _complete_checkpoints(oe_dir), _complete_checkpoints(baseline_dir)
        if oe_checkpoints and has_final:
            return {"baseline": "final", "oe": str(oe_checkpoints[-1])}
        if has_final:
            return {"baseline": "final", "oe": None}
        if baseline_checkpoints:
            return {"baseline": str(baseline_checkpoints[-1]), "oe": None}
        raise ValueError(
            f"--resume_from_checkpoint true: no complete checkpoint under {baseline_dir} or {oe_dir} (and no finished "
            f"baseline in {final}). Checkpoints are written only with --save_strategy steps or epoch."
        )
    checkpoint = Path(value)
    if not (checkpoint / "trainer_state.json").is_file():
        raise ValueError(f"--resume_from_checkpoint {value}: not a complete checkpoint (no trainer_state.json).")
    phase = checkpoint.resolve().parent
    if phase == oe_dir.resolve():
        if not has_final:
            raise ValueError(
                f"--resume_from_checkpoint {value} is an OE checkpoint, but the finished baseline it needs for the "
                f"baseline evaluation is missing ({final})."
            )
        return {"baseline": "final", "oe": str(checkpoint)}
    if phase == baseline_dir.resolve():
        return {"baseline": str(checkpoint), "oe": None}
    raise ValueError(
        f"--resume_from_checkpoint {value} is not a checkpoint of this recipe: expected a folder in {baseline_dir} "
        f"or {oe_dir} (the phases of --output_dir {root})."
    )


def tokenize_dataset(dataset: Dataset, tokenizer, max_length: int, keep: tuple[str, ...] = ("label",)) -> Dataset:
    """`dataset` with `input_ids` / `attention_mask` of its `text` column truncated to `max_length`; of the other
    columns only `keep` stays (the recipe's and the benchmarks' tokenization)."""
    remove = [c for c in dataset.column_names if c not in keep]
    return dataset.map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=remove,
        desc="Tokenizing",
    )


def _predict(trainer: OETrainer, texts: list[str], tokenizer, max_length: int) -> np.ndarray:
    """Logits of `texts`: the one text inference path (`oe_text.inference.predict_outputs`), batches shared among the
    processes of a multi-process run."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    batch_size = trainer.args.per_device_eval_batch_size
    with distributed_inference():
        return predict_outputs(model, tokenizer, texts, batch_size=batch_size, max_length=max_length)[0]


def _evaluate(
    trainer: OETrainer, tokenizer, protocol: OODProtocol, data: RecipeData, max_length: int, scores: list[str]
) -> OODResults:
    """Evaluate the trained model with `evaluate_ood`: logits, and features when a score needs them, from one pass
    of `predict_outputs` over the rows the protocol uses, its batches shared among the processes."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    with distributed_inference():
        return evaluate_ood(
            model,
            tokenizer,
            data.test,
            data.ood,
            scores=scores,
            protocol=protocol,
            unavailable=data.unavailable,
            batch_size=trainer.args.per_device_eval_batch_size,
            max_length=max_length,
            feature_fit_dataset=data.extra["train_texts"],
        )


def _hold_out(outliers, n: int, seed: int) -> tuple[list[str], Any]:
    """`(held-out texts, training outliers)`: a seeded sample of `n` auxiliary texts kept out of training.

    A map-style set is shuffled with `seed` and its first `n` rows held out; a streamed set gives its first `n` rows
    and training skips them.
    """
    if n == 0:
        return [], outliers
    if hasattr(outliers, "__len__"):
        if len(outliers) < 2 * n:
            raise ValueError(
                f"The auxiliary set has {len(outliers)} texts; holding out {n} would leave fewer for training than "
                "for choosing the score. Lower `--heldout_auxiliary_samples`."
            )
        order = np.random.default_rng(seed).permutation(len(outliers))
        heldout = outliers.select(np.sort(order[:n]))["text"]
        return heldout, outliers.select(np.sort(order[n:]))
    heldout = [row["text"] for row in outliers.take(n)]
    return heldout, outliers.skip(n)


def _data_identity(name: str) -> str:
    """What data a dataset name stands for: a preset's Hub id (`glue-sst2` and `sst2` differ, `CogComp/trec` and
    `trec` do not), the WikiText family for its presets, else the name itself."""
    if name in ("sst2", "glue-sst2", "SetFit/sst2", "stanfordnlp/sst2"):
        return "sst2"  # two releases of the same sentences
    if name in ID_PRESETS:
        return ID_PRESETS[name].hub_id
    if name.startswith("wikitext"):
        return "wikitext"
    if name in OOD_PRESETS:
        return OOD_PRESETS[name].hub_id
    return name


def load_validation_outliers(
    names: list[str], n: int, seed: int, normalization: TextNormalization, exclude_texts=None
) -> dict[str, list[str]]:
    """`{name: texts}`: a seeded sample of `n` texts of each validation outlier source.

    An ID preset gives texts of its train split (its labels are not used); any other name is loaded as an outlier
    dataset (`load_outlier_dataset`, split `train`). Texts are normalised like every other text of the run, and those
    in `exclude_texts` (the ID test set and the OOD sets, normalised the same way) are left out.
    """
    exclude = set(exclude_texts or ())
    sources = {}
    for name in names:
        if name in ID_PRESETS:
            texts = load_id_dataset(name, normalization=normalization, seed=seed)["train"]["text"]
        else:
            texts = load_outlier_dataset(name, normalization=normalization)["text"]
        texts = [t for t in texts if t not in exclude]
        order = np.random.default_rng(seed).permutation(len(texts))[:n]
        sources[name] = [texts[i] for i in np.sort(order)]
    return outlier_sources(sources) if sources else sources  # the selection's own size check, before training


def evaluation_texts(test: Dataset, ood: dict[str, Dataset]) -> list[str]:
    """The ID test and OOD texts, which no auxiliary or validation outlier may repeat."""
    return [*test["text"], *(t for ds in ood.values() for t in ds["text"])]


def load_ood_and_outliers(
    recipe_args: RecipeArguments, test: Dataset, normalization: TextNormalization
) -> tuple[dict[str, Dataset], dict[str, str], Any]:
    """The recipe's OOD sets (`--ood_datasets`) and auxiliary outliers (`--auxiliary_*`), normalised as the ID text;
    without the auxiliary sentences that occur in `test` or an OOD set when `--exclude_test_overlap`.

    Returns:
        `(ood, unavailable, outliers)`: OOD sets by name, the ones that could not be loaded with the reason, and the
        outliers (a `Dataset`, or an `IterableDataset` when streamed).
    """
    ood, unavailable = load_ood_datasets(recipe_args.ood_datasets, normalization=normalization)
    if not ood:
        raise ValueError(f"None of the OOD sets {recipe_args.ood_datasets} could be loaded: {unavailable}.")
    exclude = None
    if recipe_args.exclude_test_overlap:
        exclude = evaluation_texts(test, ood)
    outliers = load_outlier_dataset(
        recipe_args.auxiliary_dataset,
        split=recipe_args.auxiliary_split,
        config=recipe_args.auxiliary_config,
        text_column=recipe_args.auxiliary_text_column,
        streaming=recipe_args.auxiliary_streaming,
        exclude_texts=exclude,
        normalization=normalization,
        max_samples=recipe_args.auxiliary_max_samples,
        unk_policy=recipe_args.auxiliary_unk_policy,
    )
    return ood, unavailable, outliers


class TextRecipe(OERecipe):
    """The text classifier recipe: `OERecipe`'s flow with text data, OEClassifier models, resumable phases and the
    detector score chosen on validation outliers training never saw."""

    def __init__(self, recipe_args: RecipeArguments, training_args: OETrainingArguments):
        super().__init__(recipe_args, training_args)
        self.max_length = recipe_args.max_length or 128
        self.resume = _resume_plan(training_args)  # before any work: a bad --resume_from_checkpoint fails at once
        self.selection = None

    def load_data(self) -> RecipeData:
        args, training_args = self.args, self.training_args
        # One normalisation policy for ID, auxiliary and OOD text.
        tokenizer = None
        if not args.is_rnn:
            tokenizer = AutoTokenizer.from_pretrained(
                resolve_hub_id(args.model), **remote_code_kwargs(args.trust_remote_code, "model")
            )
        normalization = _normalization(args, tokenizer)
        with training_args.main_process_first(desc="loading datasets"):
            texts = load_id_dataset(
                args.dataset,
                text_column=args.text_column,
                label_column=args.label_column,
                label_granularity=args.label_granularity,
                label_names=args.class_names,
                remap_labels=args.remap_labels,
                normalization=normalization,
                max_train_samples=args.max_train_samples,
                seed=self.seed,
            )
            test, validation = cap_eval_splits(texts["test"], texts["validation"], args.max_eval_samples, self.seed)
            ood, unavailable, outliers = load_ood_and_outliers(args, test, normalization)
        if args.is_rnn:
            tokenizer = _rnn_tokenizer(args, training_args, texts["train"]["text"], self.max_length, normalization)
        self.tokenizer, self.normalization = tokenizer, normalization
        training_args.oe_max_length = training_args.oe_max_length or self.max_length
        # A seeded slice of the auxiliary outliers that training never sees: it chooses and fits the detector's score.
        heldout, outliers = _hold_out(outliers, args.heldout_auxiliary_samples, self.seed)
        validation_outliers = {}
        if heldout:
            exclude = evaluation_texts(test, ood)
            with training_args.main_process_first(desc="loading validation outliers"):
                validation_outliers = {
                    f"{args.auxiliary_dataset} (held out)": heldout,
                    **load_validation_outliers(
                        args.validation_outliers, len(heldout), self.seed, normalization, exclude_texts=exclude
                    ),
                }
        return RecipeData(
            train=tokenize_dataset(texts["train"], tokenizer, self.max_length),
            test=test,
            validation=validation,
            ood=ood,
            unavailable=unavailable,
            outliers=outliers,
            extra={"train_texts": texts["train"], "heldout": heldout, "validation_outliers": validation_outliers},
        )

    def build_model(self, data: RecipeData) -> OEClassifier:
        label_names = data.extra["train_texts"].features["label"].names
        return _build_model(self.args, label_names, self.tokenizer, self.seed)

    def initial_model(self, data: RecipeData):
        if self.resume["baseline"] == "final":
            final = Path(self.training_args.output_dir) / "baseline" / BASELINE_FINAL
            logger.warning(f"Resuming: the baseline finished before; loading it from {final}.")
            # Loaded, but not "pretrained": the card still states the baseline's training budget.
            return OEClassifier.from_pretrained(final), False
        return self.build_model(data), False

    def baseline_changes(self) -> dict[str, Any]:
        return {
            "oe_weight": 0.0,
            "num_train_epochs": self.args.baseline_epochs or self.training_args.num_train_epochs,
            "learning_rate": self.args.baseline_learning_rate or self.training_args.learning_rate,
        }

    def trainer_kwargs(self, data: RecipeData) -> dict[str, Any]:
        return {"processing_class": self.tokenizer}

    def train(self, phase: str, trainer: OETrainer) -> None:
        checkpoint = self.resume[phase]
        if checkpoint == "final":
            return
        if checkpoint:
            logger.warning(f"Resuming the {phase} phase from {checkpoint}.")
        trainer.train(resume_from_checkpoint=checkpoint)
        if phase == "baseline" and trainer.args.save_strategy != "no":
            # The finished baseline, so that `--resume_from_checkpoint` during the OE phase does not retrain it.
            trainer.save_model(str(Path(trainer.args.output_dir) / BASELINE_FINAL))

    def oe_model(self, baseline, data: RecipeData):
        if self.args.oe_mode == "scratch":
            return self.build_model(data)
        return super().oe_model(baseline, data)

    def choose_score(self, detector, data: RecipeData) -> str:
        args = self.args
        train, validation = data.extra["train_texts"], data.validation
        eval_batch = self.training_args.per_device_eval_batch_size
        auto = args.detector_score == "auto"
        candidates = [] if args.detector_score in LOGIT_SCORES else args.score_candidates
        if not auto and candidates:
            candidates = [args.detector_score]
        # Fitted scores asked for in --scores are fitted too, for the report; only `candidates` compete.
        reported = [s for s in args.scores if s not in LOGIT_SCORES and is_candidate(s)]
        fitted: list[str] = []
        if candidates or reported:
            with distributed_inference():  # every process fits the same scores: their inference is shared
                fitted, halves = fit_candidate_scores(
                    detector,
                    list(dict.fromkeys([*candidates, *reported])),
                    train["text"],
                    train["label"],
                    validation["text"],
                    data.extra["validation_outliers"],
                    seed=self.seed,
                    knn_k=args.knn_k,
                    batch_size=eval_batch,
                    training_data=f"{self.dataset_name()} train",
                )
            candidates = [c for c in candidates if c in fitted]
        if candidates:
            with distributed_inference():
                self.selection = select_ood_score(
                    detector,
                    candidates,
                    halves["validation"],
                    halves["outliers"],
                    batch_size=eval_batch,
                    description={
                        "validation": f"{self.dataset_name()} validation (second half)",
                        "outliers": "second half of each source: held-out auxiliary sentences (never trained on) "
                        "and the --validation_outliers sources (train texts of datasets no training or test set uses)",
                    },
                )
            logger.warning(
                f"Detector score chosen on ID validation vs validation outliers (no OOD test data):\n"
                f"{selection_table(self.selection)}\nChosen: {self.selection['chosen']}"
            )
        else:
            detector.set_ood_score(args.detector_score)
        skipped = [s for s in reported if s not in fitted]
        if skipped:
            logger.warning(
                f"Scores {skipped} need a pretrained transformer encoder, which this detector lacks: skipped."
            )
        self.oe_scores = list(dict.fromkeys([*(s for s in args.scores if s not in skipped), *fitted]))
        return detector.config.ood_score

    def evaluate(self, phase: str, trainer: OETrainer, data: RecipeData, score: str) -> PhaseEvaluation:
        """Every score of the phase on the test and OOD sets, and the detector's score on ID validation (for its
        threshold). The baseline has no fitted detector scores: logit scores, and feature scores fitted on the fly."""
        if phase == "baseline":
            scores = [s for s in self.args.scores if s in LOGIT_SCORES or s in FEATURE_SCORES] or ["msp"]
        else:
            scores = list(dict.fromkeys([*self.oe_scores, score]))
        results = _evaluate(trainer, self.tokenizer, self.protocol, data, self.max_length, scores)
        validation = data.validation["text"]
        if score in LOGIT_SCORES:
            val_scores = compute_score(score, _predict(trainer, validation, self.tokenizer, self.max_length))
        else:
            detector = trainer.accelerator.unwrap_model(trainer.model)
            with distributed_inference():
                val_scores = detector.compute_ood_scores(
                    validation, batch_size=self.training_args.per_device_eval_batch_size, max_length=self.max_length
                )
        return PhaseEvaluation(results=results, validation_scores=val_scores)

    def compare(self, runs: dict[str, PhaseEvaluation], chosen: str) -> str:
        named = {"Baseline": runs["baseline"].results, "OE": runs["oe"].results}
        scores = {"Baseline": "msp", "OE": "msp"}
        if chosen != "msp":
            # The shipped detector: the OE model deciding with the chosen score, on the same test data.
            named["Detector"], scores["Detector"] = runs["oe"].results, chosen
        return compare_results(named, score=scores)

    def dataset_name(self) -> str:
        dataset = self.args.dataset
        return ID_PRESETS[dataset].hub_id if dataset in ID_PRESETS else dataset

    def auxiliary_name(self) -> str:
        return f"{self.args.auxiliary_dataset} ({self.args.auxiliary_split})"

    def evaluation_record(self, data: RecipeData) -> dict[str, Any]:
        return {
            **super().evaluation_record(data),
            "label_granularity": self.args.label_granularity,
            "max_eval_samples": self.args.max_eval_samples,
            "max_length": self.max_length,
            "ood_datasets": list(self.args.ood_datasets),
            "normalization": dataclasses.asdict(self.normalization),
        }

    def extra_provenance(self, phase: str, data: RecipeData) -> dict[str, Any]:
        if phase == "baseline":
            return {}
        return {
            "oe_mode": self.args.oe_mode,
            "protocol": self.args.protocol,
            "heldout_auxiliary_examples": len(data.extra["heldout"]),
            "command": reproduce_command(self.args, self.training_args),
        }

    def write_reports(self, result: RecipeResult, runs: dict[str, PhaseEvaluation], data: RecipeData) -> None:
        out = result.output_dir
        result.baseline.save(out / "results" / "baseline")
        result.oe.save(out / "results" / "oe")
        (out / "comparison.md").write_text(result.comparison + "\n")
        summary = {
            "recipe": dataclasses.asdict(self.args),
            "threshold": result.threshold,
            "detector_score": result.detector_score,
            "score_selection": self.selection,
            "baseline": result.baseline.to_dict(),
            "oe": result.oe.to_dict(),
        }
        write_json(out / "results.json", summary)


def run_recipe(recipe_args: RecipeArguments, training_args: OETrainingArguments) -> RecipeResult:
    """Run the paper's experiment (see the module docstring) and return both evaluations and the detector path."""
    return TextRecipe(recipe_args, training_args).run()


# Recipe arguments that decide what is trained and evaluated: the command in the model card names them explicitly, so
# that it reproduces the run even if a default changes.
_COMMAND_RECIPE_ARGS = (
    "dataset", "model", "oe_mode", "auxiliary_dataset", "auxiliary_split", "auxiliary_max_samples", "protocol",
    "detector_score", "heldout_auxiliary_samples", "max_train_samples", "max_eval_samples", "max_ood_samples",
    "max_length", "baseline_epochs", "baseline_learning_rate", "label_granularity",
)  # fmt: skip
_COMMAND_TRAINING_ARGS = (
    "num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size", "oe_weight", "oe_loss", "seed",
)  # fmt: skip


def reproduce_command(recipe_args: RecipeArguments, training_args: OETrainingArguments) -> str:
    """The `oe-text train` command that repeats this run (the settings that decide the model, named explicitly)."""
    parts = ["oe-text", "train"]
    for args, names in ((recipe_args, _COMMAND_RECIPE_ARGS), (training_args, _COMMAND_TRAINING_ARGS)):
        for name in names:
            value = getattr(args, name, None)
            if value is None or (name == "max_steps" and value <= 0):
                continue
            parts += [f"--{name}", shlex.quote(f"{value:g}" if isinstance(value, float) else str(value))]
    world = getattr(training_args, "world_size", 1) or 1
    if world > 1:
        parts = ["accelerate", "launch", "--num_processes", str(world), "-m", "oe_text.cli", *parts[1:]]
    return " ".join(parts)


def main(dataset: str | None = None, args: list[str] | None = None) -> RecipeResult:
    """Entry point of the recipe scripts: parse, run, print the side-by-side table on the main process."""
    recipe_args, training_args = parse_recipe_args(dataset, args)
    result = run_recipe(recipe_args, training_args)
    if training_args.process_index == 0:
        print("\n" + result.comparison)
        print(f"\n{result.decision}\nDetector saved to {result.detector_dir}")
        print(f"Reports (markdown, CSV, JSON, plots) in {result.output_dir / 'results'}")
        if result.pushed_to:
            print(f"Pushed to the Hub as {result.pushed_to}")
    return result
