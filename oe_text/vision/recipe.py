"""The vision recipe: baseline classifier, Outlier Exposure fine-tune, side-by-side OOD and calibration tables.

Steps (as the paper's `CIFAR/baseline.py`, `oe_tune.py`, `test.py` and `test_calibration.py`):

1. Load the in-distribution train/test sets; hold out `validation_size` training images (threshold and temperature).
2. Train the baseline (a WRN, or a torchvision model) with cross-entropy: `OETrainer` without outliers.
3. Fine-tune a copy with Outlier Exposure: `OETrainer` with the auxiliary outliers, which go through the network in
   the same forward pass as the in-distribution batch; OE batch = 2 x the in-distribution batch, λ = 0.5.
4. Evaluate both with the MSP score (and any other `--scores`) on each OOD set with the paper's vision protocol
   (`oe_text.evaluation`, OOD:ID = 1:5, `num_subsets` random OOD subsets, FPR95 / AUROC / AUPR), and calibration
   (RMS / MAD calibration error, Soft F1) on the ID + OOD mixtures after temperature tuning on the held-out split.
5. Print the side-by-side tables; save both detectors (threshold calibrated at `threshold_tpr` on the held-out
   split) and every report under `output_dir`.

`recipes/vision_oe.py` is the command-line entry point (`main`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import set_seed
from transformers.utils import logging

from ..evaluation import compare_results, compare_results_to_dict, evaluate_ood_from_logits
from ..inference import trainer_logits
from ..ood_protocol import OODProtocol
from ..recipe_flow import OERecipe, PhaseEvaluation, RecipeData, RecipeResult, predict_planned, write_json
from ..reporting import markdown_table
from ..trainer import OETrainer
from ..training_args import OETrainingArguments, parse_args_with_defaults
from .data import (
    ImageDataset,
    ImageTransform,
    get_dataset_spec,
    is_synthetic,
    load_vision_dataset,
    split_train_validation,
    synthetic_ood_dataset,
)
from .modeling import OEImageClassifier


logger = logging.get_logger(__name__)

RANDOM_IMAGES_URL = "https://people.eecs.berkeley.edu/~hendrycks/300K_random_images.npy"

#: Per-dataset defaults. CIFAR and SVHN follow the paper's code; `fashion_mnist` is the CPU-sized offline demo.
PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "depth": 40, "widen_factor": 2, "dropout": 0.3, "baseline_epochs": 100.0, "baseline_learning_rate": 0.1,
        "num_train_epochs": 10.0, "learning_rate": 0.001, "validation_size": 5000, "outlier_dataset": None,
        "outlier_split": "train", "ood_datasets": ["gaussian", "rademacher", "blobs", "textures", "svhn", "places365",
                                                  "lsun", "cifar100"],
    },
    "cifar100": {
        "depth": 40, "widen_factor": 2, "dropout": 0.3, "baseline_epochs": 100.0, "baseline_learning_rate": 0.1,
        "num_train_epochs": 10.0, "learning_rate": 0.001, "validation_size": 5000, "outlier_dataset": None,
        "outlier_split": "train", "ood_datasets": ["gaussian", "rademacher", "blobs", "textures", "svhn", "places365",
                                                  "lsun", "cifar10"],
    },
    "svhn": {
        "depth": 16, "widen_factor": 4, "dropout": 0.4, "baseline_epochs": 20.0, "baseline_learning_rate": 0.01,
        "num_train_epochs": 5.0, "learning_rate": 0.0001, "validation_size": 5000, "outlier_dataset": None,
        "outlier_split": "train", "ood_datasets": ["gaussian", "rademacher", "blobs", "textures", "places365", "lsun",
                                                  "cifar10"],
    },
    "fashion_mnist": {
        "depth": 10, "widen_factor": 2, "dropout": 0.3, "baseline_epochs": 1.0, "baseline_learning_rate": 0.1,
        "num_train_epochs": 0.25, "learning_rate": 0.01, "per_device_train_batch_size": 64, "validation_size": 1000,
        "max_train_samples": 20000, "max_test_samples": 5000, "outlier_dataset": "zh-plus/tiny-imagenet",
        "outlier_split": "valid", "ood_datasets": ["mnist", "cifar10", "gaussian", "rademacher", "blobs"],
    },
}  # fmt: skip

# Training arguments a preset may set (unless given on the command line).
PRESET_TRAINING_KEYS = ("num_train_epochs", "learning_rate", "per_device_train_batch_size")

# Training arguments the recipe changes from the transformers defaults: the paper's optimiser for every dataset.
VISION_TRAINING_DEFAULTS: dict[str, Any] = {
    "output_dir": "outputs/vision",
    "per_device_train_batch_size": 128,
    "per_device_eval_batch_size": 256,
    "optim": "sgd",
    "optim_args": "momentum=0.9,nesterov=True",
    "weight_decay": 0.0005,
    "lr_scheduler_type": "cosine",
    "logging_steps": 10,
    "save_strategy": "no",
    "report_to": "none",
    "oe_weight": 0.5,
    "dataloader_pin_memory": torch.cuda.is_available(),
}


@dataclass
class VisionRecipeArguments:
    """What the vision recipe trains and evaluates; `None` fields take the per-dataset `PRESETS`."""

    dataset: str = field(
        default="fashion_mnist",
        metadata={"help": "In-distribution dataset: cifar10, cifar100, svhn or fashion_mnist (the CPU demo)."},
    )
    data_root: str | None = field(
        default=None,
        metadata={"help": "torchvision download root (default $OE_TEXT_VISION_ROOT or ~/.cache/oe_text/torchvision)."},
    )
    outlier_dataset: str | None = field(
        default=None,
        metadata={
            "help": "Auxiliary outliers: a Hub id, a registry name, a folder of images or a .npy file such as the "
            f"paper's 300K random images ({RANDOM_IMAGES_URL}). Default: zh-plus/tiny-imagenet for fashion_mnist; "
            "required for CIFAR/SVHN."
        },
    )
    outlier_split: str | None = field(default=None, metadata={"help": "Split of a Hub / registry outlier dataset."})
    max_outliers: int | None = field(default=None, metadata={"help": "Use a seeded random subset of the outliers."})
    ood_datasets: list[str] | None = field(
        default=None,
        metadata={
            "help": "OOD test sets: registry names (mnist, cifar10, cifar100, svhn, textures, places365, lsun, "
            "tiny_imagenet), synthetic sets (gaussian, rademacher, blobs, uniform), Hub ids or folders. Default: "
            "the paper's sets for the dataset."
        },
    )
    model: str = field(
        default="wrn", metadata={"help": "'wrn' (Wide ResNet) or a torchvision classification model name."}
    )
    depth: int | None = field(default=None, metadata={"help": "WRN depth (40 for CIFAR, 16 for SVHN, 10 on CPU)."})
    widen_factor: int | None = field(default=None, metadata={"help": "WRN widen factor (2 for CIFAR, 4 for SVHN)."})
    dropout: float | None = field(default=None, metadata={"help": "WRN dropout (0.3 for CIFAR, 0.4 for SVHN)."})
    torchvision_weights: str | None = field(
        default=None, metadata={"help": "torchvision weights for --model other than wrn (e.g. DEFAULT)."}
    )
    baseline_model: str | None = field(
        default=None,
        metadata={"help": "A trained baseline OEImageClassifier (folder or Hub id): skip baseline training."},
    )
    baseline_epochs: float | None = field(
        default=None, metadata={"help": "Baseline training epochs (paper: 100 for CIFAR, 20 for SVHN)."}
    )
    baseline_learning_rate: float | None = field(
        default=None, metadata={"help": "Baseline peak learning rate (paper: 0.1 for CIFAR, 0.01 for SVHN)."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on a seeded random subset of this size (after the held-out split)."}
    )
    validation_size: int | None = field(
        default=None,
        metadata={"help": "Training images held out for the decision threshold and temperature tuning."},
    )
    max_test_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on a seeded random subset of the in-distribution test set."}
    )
    scores: list[str] = field(
        default_factory=lambda: ["msp"],
        metadata={"help": "OOD scores to evaluate (msp, max_logit, energy, kl_uniform, entropy); the first is saved."},
    )
    num_subsets: int = field(
        default=1,
        metadata={"help": "Random OOD subsets per set, metrics averaged (the paper's vision code uses 1)."},
    )
    ood_to_id_ratio: float = field(default=0.2, metadata={"help": "OOD subset size / ID test size (paper: 1:5)."})
    threshold_tpr: float = field(
        default=0.95, metadata={"help": "Fraction of held-out ID images the saved detectors' threshold keeps."}
    )
    tune_temperature: bool = field(
        default=True, metadata={"help": "Tune the softmax temperature on the held-out split for calibration."}
    )
    plots: bool = field(default=True, metadata={"help": "Save ROC curves and score histograms."})

    def __post_init__(self):
        spec = get_dataset_spec(self.dataset)
        self.dataset = spec.name
        preset = PRESETS.get(spec.name)
        if preset is None:
            raise ValueError(f"The vision recipe supports --dataset {sorted(PRESETS)}, got {self.dataset!r}.")
        for key in (
            "depth", "widen_factor", "dropout", "baseline_epochs", "baseline_learning_rate", "max_train_samples",
            "validation_size", "max_test_samples", "outlier_dataset", "outlier_split", "ood_datasets",
        ):  # fmt: skip
            if getattr(self, key) is None:
                setattr(self, key, preset.get(key))
        if self.outlier_dataset is None:
            raise ValueError(
                f"--outlier_dataset is required for {self.dataset}: the paper uses 80 Million Tiny Images; its "
                f"de-duplicated 300K random images are at {RANDOM_IMAGES_URL} (pass the .npy path), or pass any Hub "
                "image dataset or folder."
            )
        if not self.ood_datasets:
            raise ValueError("--ood_datasets is empty: evaluation needs at least one OOD set.")
        if not 0 < self.threshold_tpr <= 1:
            raise ValueError(f"--threshold_tpr must be in (0, 1], got {self.threshold_tpr}.")
        if self.num_subsets < 1 or not self.ood_to_id_ratio > 0:
            raise ValueError("--num_subsets must be >= 1 and --ood_to_id_ratio > 0.")

    @property
    def calibration_tpr(self) -> float:
        """`threshold_tpr`, under the name the shared recipe flow reads."""
        return self.threshold_tpr

    def ood_protocol(self, seed: int) -> OODProtocol:
        """The paper's vision protocol with this run's subsets and ratio: FPR at 95% TPR first, as the paper."""
        return OODProtocol(
            num_subsets=self.num_subsets,
            ood_to_id_ratio=self.ood_to_id_ratio,
            seed=seed,
            fpr_tprs=(0.95,),
            recall_level=0.95,
        )


def _vision_defaults(known) -> dict[str, Any]:
    """The recipe's training defaults, with those of the `--dataset` preset (`PRESET_TRAINING_KEYS`) on top."""
    try:
        preset = PRESETS.get(get_dataset_spec(known.dataset).name, {})
    except ValueError:  # an unknown dataset: VisionRecipeArguments reports it
        preset = {}
    return {**VISION_TRAINING_DEFAULTS, **{k: preset[k] for k in PRESET_TRAINING_KEYS if k in preset}}


def parse_vision_args(argv: Sequence[str] | None = None) -> tuple[VisionRecipeArguments, OETrainingArguments]:
    """Parse `VisionRecipeArguments` + `OETrainingArguments` with the vision defaults.

    `VISION_TRAINING_DEFAULTS` (SGD with Nesterov momentum 0.9, weight decay 5e-4, cosine schedule, batch 128,
    λ = 0.5) apply unless given on the command line; `--num_train_epochs` and `--learning_rate` (those of the OE
    fine-tune) and the batch size default to the dataset's preset (`PRESETS`); `--oe_batch_size` defaults to twice
    the in-distribution batch, as the paper's vision code.

    Args:
        argv (sequence of `str`, *optional*): the arguments (default `sys.argv[1:]`).

    Returns:
        `(recipe_args, training_args)`.
    """
    recipe_args, training_args = parse_args_with_defaults(
        (VisionRecipeArguments, OETrainingArguments), _vision_defaults, {"dataset": "fashion_mnist"}, argv
    )
    if training_args.oe_batch_size is None:
        training_args.oe_batch_size = 2 * training_args.per_device_train_batch_size
    return recipe_args, training_args


# ----------------------------------------------------------------------------------------------------------------
# Calibration helper
# ----------------------------------------------------------------------------------------------------------------


def tune_temperature(logits, labels, lower: float = 0.2, upper: float = 5.0, tol: float = 1e-4) -> float:
    """Temperature scaling (Guo et al. 2017): the `T` in `[lower, upper]` minimising the NLL of `softmax(z / T)`.

    Bisection on the sign of `d NLL / d T` (the NLL is unimodal in `T`), then the best of the final bracket, as the
    paper's `tune_temp`.

    Args:
        logits (array of shape `(n, K)`): held-out in-distribution logits.
        labels (array of shape `(n,)`): their labels.
        lower (`float`, *optional*, defaults to 0.2), upper (`float`, *optional*, defaults to 5.0): search range.
        tol (`float`, *optional*, defaults to 1e-4): bracket width at which to stop.

    Returns:
        `float`: the temperature.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if z.dim() != 2 or y.shape != (z.shape[0],) or z.shape[0] == 0:
        raise ValueError(f"`logits` must be (n, K) and `labels` (n,), got {tuple(z.shape)} and {tuple(y.shape)}.")
    if not 0 < lower < upper:
        raise ValueError(f"Need 0 < lower < upper, got {lower} and {upper}.")

    def nll(t: float) -> float:
        return float(F.cross_entropy(z / t, y))

    while upper - lower > tol:
        mid = torch.tensor(0.5 * (lower + upper), dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(F.cross_entropy(z / mid, y), mid)
        if grad > 0:
            upper = mid.item()
        else:
            lower = mid.item()
    return min((lower, 0.5 * (lower + upper), upper), key=nll)


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


def _print_main(training_args: OETrainingArguments, text: str) -> None:
    if training_args.process_index == 0:
        print(text, flush=True)


def _subset(dataset: ImageDataset, size: int | None, seed: int, name: str | None = None) -> ImageDataset:
    if size is None or size >= len(dataset):
        return dataset
    idx = np.sort(np.random.default_rng(seed).choice(len(dataset), size=size, replace=False))
    return dataset.select(idx, name=name)


def _ood_split(name: str) -> str:
    """The held-out split of an OOD set: `test`, else `val` / `valid` (Places365, Tiny ImageNet)."""
    try:
        splits = get_dataset_spec(name).splits
    except ValueError:  # a Hub id or a folder
        return "test"
    return next(s for s in ("test", "val", "valid", "train") if s in splits)


def _load_ood_sets(args: VisionRecipeArguments, n_id: int, seed: int, transform: ImageTransform):
    """OOD sets by name (synthetic ones generated to the protocol's size), and the ones that could not be loaded."""
    spec = get_dataset_spec(args.dataset)
    per_subset = args.ood_protocol(seed).subset_size(n_id)
    sets: dict[str, ImageDataset] = {}
    unavailable: dict[str, str] = {}
    for name in args.ood_datasets:
        key = name.lower()
        if is_synthetic(key):
            sets[key] = synthetic_ood_dataset(
                key, per_subset * args.num_subsets, spec.num_channels, spec.image_size, seed=seed, transform=transform
            )
            continue
        try:
            dataset = load_vision_dataset(name, _ood_split(name), root=args.data_root)
        except (OSError, RuntimeError, ValueError, ImportError) as err:
            unavailable[name] = str(err).splitlines()[0][:300]
            continue
        sets[name] = dataset.without_labels().with_transform(transform)
    if not sets:
        raise RuntimeError(f"None of the OOD sets could be loaded: {unavailable}.")
    return sets, unavailable


# ----------------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------------


def _predict(trainer: OETrainer, dataset: ImageDataset) -> tuple[np.ndarray, np.ndarray | None]:
    return trainer_logits(trainer, dataset, dtype=np.float64)


def evaluate_image_detector(
    trainer: OETrainer,
    id_test: ImageDataset,
    ood_sets: dict[str, ImageDataset],
    validation: ImageDataset | None,
    args: VisionRecipeArguments,
    seed: int,
    unavailable: dict[str, str],
    score: str | None = None,
) -> PhaseEvaluation:
    """Logits of the ID test set, the OOD inputs the protocol needs and the held-out split; detection results at
    T = 1 and calibration results at the tuned temperature.

    Returns:
        `PhaseEvaluation`: `results` (detection), `calibration` (at `temperature`), `temperature`, and the held-out
        split's scores of `score` (default `args.scores[0]`; the detector's threshold is calibrated on them).
    """
    protocol = args.ood_protocol(seed)
    plan, id_logits, id_labels, ood_logits = predict_planned(
        protocol,
        lambda ds: _predict(trainer, ds),
        id_test,
        ood_sets,
        lambda ds, indices, name: ds.select(indices, name=name),
    )
    common = dict(id_labels=id_labels, scores=args.scores, protocol=protocol, plan=plan, unavailable=unavailable)
    detection = evaluate_ood_from_logits(id_logits, ood_logits, calibration=False, **common)
    val_scores = None
    temperature = 1.0
    if validation is not None:
        val_logits, val_labels = _predict(trainer, validation)
        if args.tune_temperature:
            temperature = tune_temperature(val_logits, val_labels)
        detector = trainer.accelerator.unwrap_model(trainer.model)
        if detector.config.ood_score != (score or args.scores[0]):
            detector.set_ood_score(score or args.scores[0])
        val_scores = detector.ood_scores_from_logits(val_logits)
    calibration = evaluate_ood_from_logits(
        id_logits, ood_logits, calibration=True, temperature=temperature, **{**common, "scores": ["msp"]}
    )
    return PhaseEvaluation(
        results=detection, validation_scores=val_scores, calibration=calibration, temperature=temperature
    )


MAIN_METRICS = ("fpr95", "auroc", "aupr_out")
CALIBRATION_KEYS = ("rms_calibration_error", "mad_calibration_error", "soft_f1")
_CALIBRATION_LABELS = {"rms_calibration_error": "RMS ↓", "mad_calibration_error": "MAD ↓", "soft_f1": "Soft F1 ↑"}


def compare_calibration(named: dict[str, PhaseEvaluation], digits: int = 2) -> str:
    """Side-by-side calibration table (the paper's Table 12 layout): per OOD set, RMS / MAD calibration error and
    Soft F1 of each run on the ID test + OOD mixture, at each run's tuned temperature.

    Args:
        named (`dict`): run name -> its `PhaseEvaluation` (`evaluate_image_detector`).
        digits (`int`, *optional*, defaults to 2): decimals of the percentages.

    Returns:
        `str`: markdown.
    """
    runs = list(named)
    sets = list(next(iter(named.values())).calibration.calibration)
    header = ["Test data"] + [f"{_CALIBRATION_LABELS[k]} {run}" for k in CALIBRATION_KEYS for run in runs]
    rows = []
    for s in sets:
        rows.append(
            [f"ID + {s}"]
            + [
                f"{100 * named[r].calibration.calibration[s][k]['mean']:.{digits}f}"
                for k in CALIBRATION_KEYS
                for r in runs
            ]
        )
    means = {r: named[r].calibration.mean_calibration() for r in runs}
    rows.append(["**Mean**"] + [f"**{100 * means[r][k]:.{digits}f}**" for k in CALIBRATION_KEYS for r in runs])
    temps = ", ".join(f"{r}: T={named[r].temperature:.3f}" for r in runs)
    return (
        "Calibration on the ID test set mixed with each OOD subset (confidence = max softmax probability at the "
        f"temperature tuned on the held-out split ({temps}); OOD inputs count as misclassified; adaptive bins of "
        "100; values in %).\n\n" + markdown_table(header, rows) + "\n"
    )


# ----------------------------------------------------------------------------------------------------------------
# The recipe
# ----------------------------------------------------------------------------------------------------------------


def _build_model(args: VisionRecipeArguments, classes: list[str] | None, num_labels: int) -> OEImageClassifier:
    kwargs: dict[str, Any] = {} if classes else {"num_labels": num_labels}
    if args.model == "wrn":
        kwargs.update(depth=args.depth, widen_factor=args.widen_factor, dropout=args.dropout)
        return OEImageClassifier.for_dataset(args.dataset, "wrn", classes=classes, **kwargs)
    return OEImageClassifier.for_dataset(
        args.dataset, args.model, classes=classes, weights=args.torchvision_weights, **kwargs
    )


class VisionRecipe(OERecipe):
    """The image recipe: `OERecipe`'s flow with image data, WRN / torchvision models, temperature-tuned calibration."""

    phase_dirs = {"baseline": "baseline_trainer", "oe": "oe_trainer"}
    detector_dirs = {"baseline": "baseline", "oe": "oe_detector"}
    card_metrics = MAIN_METRICS
    card_mean = False

    def load_data(self) -> RecipeData:
        args, seed = self.args, self.seed
        set_seed(seed)
        spec = get_dataset_spec(args.dataset)
        train_tf = ImageTransform.for_dataset(spec.name, train=True)
        eval_tf = ImageTransform.for_dataset(spec.name, train=False)
        full_train = load_vision_dataset(spec.name, "train", root=args.data_root)
        train, validation = split_train_validation(full_train, args.validation_size or 0, seed=seed)
        train = _subset(train, args.max_train_samples, seed, name=f"{spec.name}:train").with_transform(train_tf)
        validation = validation.with_transform(eval_tf) if validation is not None else None
        id_test = load_vision_dataset(spec.name, "test", root=args.data_root)
        id_test = _subset(id_test, args.max_test_samples, seed, name=f"{spec.name}:test").with_transform(eval_tf)
        outliers = load_vision_dataset(args.outlier_dataset, args.outlier_split or "train", root=args.data_root)
        outliers = _subset(outliers.without_labels(), args.max_outliers, seed).with_transform(train_tf)
        ood_sets, unavailable = _load_ood_sets(args, len(id_test), seed, eval_tf)
        _print_main(
            self.training_args,
            f"Vision recipe: {spec.name} train {len(train)} / held-out {len(validation) if validation else 0} / test "
            f"{len(id_test)}; outliers {args.outlier_dataset} ({len(outliers)}); OOD sets "
            f"{ {k: len(v) for k, v in ood_sets.items()} }; train transform {train_tf}.",
        )
        classes = full_train.classes
        num_labels = len(classes) if classes else int(full_train.labels().max()) + 1
        return RecipeData(
            train=train,
            test=id_test,
            validation=validation,
            ood=ood_sets,
            unavailable=unavailable,
            outliers=outliers,
            extra={"classes": classes, "num_labels": num_labels},
        )

    def build_model(self, data: RecipeData) -> OEImageClassifier:
        set_seed(self.seed)  # the initial weights depend on the seed only, not on what ran before in this process
        return _build_model(self.args, data.extra["classes"], data.extra["num_labels"])

    def initial_model(self, data: RecipeData):
        if self.args.baseline_model:
            return OEImageClassifier.from_pretrained(self.args.baseline_model), True
        return self.build_model(data), False

    def baseline_changes(self) -> dict[str, Any]:
        if self.args.baseline_model:
            return {}
        return {
            "oe_weight": 0.0,
            "num_train_epochs": self.args.baseline_epochs,
            "learning_rate": self.args.baseline_learning_rate,
        }

    def baseline_score(self) -> str:
        return self.args.scores[0]

    def evaluate(self, phase: str, trainer: OETrainer, data: RecipeData, score: str) -> PhaseEvaluation:
        return evaluate_image_detector(
            trainer, data.test, data.ood, data.validation, self.args, self.seed, data.unavailable, score
        )

    def compare(self, runs: dict[str, PhaseEvaluation], chosen: str) -> str:
        named = {"Baseline": runs["baseline"].results, "OE": runs["oe"].results}
        return "\n".join(compare_results(named, score=s, metrics=list(MAIN_METRICS)) for s in self.args.scores)

    def calibration_table(self, runs: dict[str, PhaseEvaluation]) -> str:
        return compare_calibration({"Baseline": runs["baseline"], "OE": runs["oe"]})

    def auxiliary_name(self) -> str:
        aux = str(self.args.outlier_dataset)
        # A local path says nothing to the card's readers (and may be private): keep its file name only.
        return os.path.basename(aux) if os.path.exists(aux) else aux

    def calibration_data(self, data: RecipeData) -> dict[str, Any]:
        return {"dataset": self.args.dataset, "split": "train (held-out)"}

    def evaluation_record(self, data: RecipeData) -> dict[str, Any]:
        return {
            **super().evaluation_record(data),
            "max_eval_samples": self.args.max_test_samples,
            "ood_datasets": list(self.args.ood_datasets),
        }

    def write_reports(self, result: RecipeResult, runs: dict[str, PhaseEvaluation], data: RecipeData) -> None:
        out = result.output_dir
        for name, run in runs.items():
            run.results.save(out / f"results_{name}", plots=self.args.plots)
        named = {"Baseline": result.baseline, "OE": result.oe}
        scores = self.args.scores
        summary = {
            "comparison": {s: compare_results_to_dict(named, score=s, metrics=list(MAIN_METRICS)) for s in scores},
            "calibration": {
                label: {
                    "temperature": r.temperature,
                    "per_set": {s: {k: v["mean"] for k, v in m.items()} for s, m in r.calibration.calibration.items()},
                    "mean": r.calibration.mean_calibration(),
                    "id_only": r.calibration.id_calibration,
                }
                for label, r in (("Baseline", runs["baseline"]), ("OE", runs["oe"]))
            },
            "recipe_args": dataclasses.asdict(self.args),
            "timings_s": result.timings,
        }
        write_json(out / "comparison.json", summary)
        (out / "comparison.md").write_text(result.comparison + "\n" + result.calibration_table, encoding="utf-8")


def run_vision_recipe(args: VisionRecipeArguments, training_args: OETrainingArguments) -> RecipeResult:
    """Run the recipe (see the module docstring) and return its results.

    Args:
        args (`VisionRecipeArguments`): what to train and evaluate.
        training_args (`OETrainingArguments`): the OE fine-tune's settings (`output_dir`, batch sizes, epochs, λ, OE
            batch); the baseline uses the same with `baseline_epochs` / `baseline_learning_rate`.

    Returns:
        `RecipeResult`: both detection evaluations (`baseline`, `oe`), their `calibration` and `temperatures`, the
        printed tables (`comparison`, `calibration_table`), `timings` (seconds per phase) and the training `budget`.
    """
    return VisionRecipe(args, training_args).run()


def main(argv: Sequence[str] | None = None) -> RecipeResult:
    """Command-line entry point: `python recipes/vision_oe.py --dataset fashion_mnist ...` (see `--help`)."""
    args, training_args = parse_vision_args(argv)
    result = run_vision_recipe(args, training_args)
    if training_args.process_index == 0:
        minutes = ", ".join(f"{k} {v / 60:.1f}" for k, v in result.timings.items())
        print(f"\n{result.comparison}\n{result.calibration_table}\nWall-clock minutes: {minutes}.", flush=True)
    return result
