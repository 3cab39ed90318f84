"""The flow every Outlier Exposure recipe runs, written once; the modalities plug in through hooks.

`OERecipe.run`: load the data, train the baseline, evaluate it, train the Outlier Exposure model (a copy of the
baseline, or a fresh model), choose its score, evaluate it under the same `OODProtocol`, print both side by side,
calibrate both as detectors on in-distribution validation data, record their provenance (model cards), save them with
the reports, push the OE detector if asked. A modality subclasses `OERecipe` and fills in the hooks (load data, build
a model, evaluate a trained model, write the reports): `oe_text.recipe.TextRecipe` (text classifiers) and
`oe_text.vision.recipe.VisionRecipe` (images). The language-model recipe (`oe_text.lm_recipe`) scores texts rather
than logits; it shares the pieces below (`phase_args`, `cap_eval_splits`, `card_results`, `json_default`,
`write_json`, `RecipeResult`).

Every process runs the flow (training is data-parallel and logits are gathered in order); the main process writes
the files.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers.utils import logging

from .evaluation import OODResults
from .folders import remove_empty_folders
from .ood_protocol import OODProtocol
from .reporting import budget_warnings, global_batch_note, report_unavailable
from .trainer import OETrainer
from .training_args import OETrainingArguments


logger = logging.get_logger(__name__)

PHASES = ("baseline", "oe")


# ----------------------------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------------------------


def phase_args(training_args: OETrainingArguments, name: str, **changes) -> OETrainingArguments:
    """The training arguments of one phase: `output_dir/name`, no resuming (the recipe plans it), no Hub push (the
    recipe pushes the finished detector), and `changes`."""
    changes = {"resume_from_checkpoint": None, "push_to_hub": False, **changes}
    # `replace` re-runs __post_init__, which must not see derived fields twice.
    return dataclasses.replace(training_args, output_dir=os.path.join(training_args.output_dir, name), **changes)


def cap_eval_splits(test, validation, max_samples: int | None, seed: int):
    """`(test, validation)` capped at `max_samples` each: a seeded sample of the test split, the validation split's
    first rows (`datasets.Dataset`s)."""
    if max_samples is None:
        return test, validation
    test = test.shuffle(seed=seed).select(range(min(len(test), max_samples)))
    if validation is not None:
        validation = validation.select(range(min(len(validation), max_samples)))
    return test, validation


def card_results(
    results: OODResults, score: str, metrics: tuple[str, ...] | None = None, mean: bool = True
) -> dict[str, dict[str, float]] | None:
    """`{ood_set: {metric: mean over subsets}}` of `score` for a model card (`None` if `score` was not evaluated):
    every metric or only `metrics`, with a `"mean"` row over the sets when `mean`."""
    if score not in results.metrics:
        return None
    table = {
        name: {k: v["mean"] for k, v in per_set.items() if metrics is None or k in metrics}
        for name, per_set in results.metrics[score].items()
    }
    if mean:
        table["mean"] = results.mean_metrics(score)
    return table


def json_default(value):
    """`json.dumps` fallback of the recipes' summaries: numpy scalars as numbers, NaN as null, the rest as text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, int | float):
        return value
    return str(value)


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON (see `json_default`)."""
    path.write_text(json.dumps(data, indent=2, default=json_default) + "\n", encoding="utf-8")


def global_batch_size(training_args: OETrainingArguments) -> int:
    """In-distribution examples per optimisation step over every process."""
    return (
        training_args.per_device_train_batch_size
        * training_args.world_size
        * training_args.gradient_accumulation_steps
    )


def predict_planned(protocol: OODProtocol, predict, test, ood: dict[str, Any], select):
    """Logits of the ID test set and of the OOD inputs the protocol's subsets use.

    Args:
        protocol (`OODProtocol`): draws the subsets.
        predict (`Callable`): inputs -> `(logits, labels or None)`, e.g. a sharded `Trainer.predict`.
        test: the ID test inputs; `len(test)` and `predict(test)` must work.
        ood (`dict`): OOD sets by name.
        select (`Callable`): `(set, indices, name)` -> those inputs of the set.

    Returns:
        `(plan, id_logits, id_labels, ood_logits)`, OOD logits aligned with `plan.indices_to_score(name)`.
    """
    plan = protocol.plan(len(test), {name: len(ds) for name, ds in ood.items()})
    id_logits, id_labels = predict(test)
    ood_logits = {name: predict(select(ds, plan.indices_to_score(name), name))[0] for name, ds in ood.items()}
    return plan, id_logits, id_labels, ood_logits


# ----------------------------------------------------------------------------------------------------------------
# What the flow passes between its steps and returns
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class RecipeData:
    """The data of a run: what the trainer takes (`train`, `outliers`), the evaluation sets and the OOD sets that
    could not be loaded; `extra` holds what a modality's hooks need besides (raw texts, held-out outliers, ...)."""

    train: Any
    test: Any
    validation: Any | None
    ood: dict[str, Any]
    unavailable: dict[str, str]
    outliers: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PhaseEvaluation:
    """One trained model evaluated: its OOD results, the scores of its detector score on the ID validation data
    (its threshold is calibrated on them), and its calibration (image recipe: tuned temperature)."""

    results: OODResults
    validation_scores: np.ndarray | None = None
    calibration: OODResults | None = None
    temperature: float | None = None


@dataclass
class RecipeResult:
    """What a recipe produced: both evaluations, the side-by-side table and where things were saved.

    Attributes:
        baseline (`OODResults`), oe (`OODResults`): the evaluations of the baseline and of the OE model.
        comparison (`str`): the printed side-by-side table(s), markdown.
        output_dir (`Path`): where everything was written.
        detector_dir (`Path`, *optional*): the saved OE detector; baseline_dir (`Path`, *optional*): the saved
            baseline detector.
        threshold (`float`, *optional*): the OE detector's calibrated threshold.
        detector_score (`str`): the score the OE detector decides with.
        pushed_to (`str`, *optional*): the Hub repo the detector was pushed to.
        decision (`str`): the OE detector's decision rule in words.
        calibration (`dict[str, OODResults]`), temperatures (`dict[str, float]`), calibration_table (`str`):
            calibration of each run (`"baseline"`, `"oe"`) where the recipe measures it (images).
        timings (`dict[str, float]`): seconds per step.
        budget (`dict`): training budget (examples, epochs, steps, global batch, seed).
    """

    baseline: OODResults
    oe: OODResults
    comparison: str
    output_dir: Path
    detector_dir: Path | None = None
    baseline_dir: Path | None = None
    threshold: float | None = None
    detector_score: str = "msp"
    pushed_to: str | None = None
    decision: str = ""
    calibration: dict[str, OODResults] = field(default_factory=dict)
    temperatures: dict[str, float] = field(default_factory=dict)
    calibration_table: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------------
# The flow
# ----------------------------------------------------------------------------------------------------------------


class OERecipe:
    """Baseline -> Outlier Exposure -> evaluation -> comparison -> calibrated detectors -> reports (`run`).

    Subclasses implement `load_data`, `build_model` and `evaluate`, and may override the other hooks. The recipe
    arguments must provide `ood_protocol(seed)` and `calibration_tpr`.

    Args:
        recipe_args: the modality's recipe arguments.
        training_args (`OETrainingArguments`): the OE phase's settings; the baseline's come from `baseline_changes`.
    """

    #: Sub-folders of `output_dir`: each phase's trainer, each saved detector.
    phase_dirs = {"baseline": "baseline", "oe": "oe"}
    detector_dirs = {"baseline": "baseline_detector", "oe": "detector"}
    #: Metrics kept per OOD set in the model card (None: all) and whether it gets a mean row.
    card_metrics: tuple[str, ...] | None = None
    card_mean = True

    def __init__(self, recipe_args, training_args: OETrainingArguments):
        self.args = recipe_args
        self.training_args = training_args
        self.output_dir = Path(training_args.output_dir)
        self.is_main = training_args.process_index == 0
        self.seed = training_args.seed
        self.protocol: OODProtocol = recipe_args.ood_protocol(training_args.seed)
        self.timings: dict[str, float] = {}
        self.trainers: dict[str, OETrainer] = {}

    # ---- hooks ------------------------------------------------------------------------------------------------

    def load_data(self) -> RecipeData:
        """Load and prepare the data of the run."""
        raise NotImplementedError

    def build_model(self, data: RecipeData):
        """A fresh, untrained model (seeded: its weights depend on the seed only)."""
        raise NotImplementedError

    def evaluate(self, phase: str, trainer: OETrainer, data: RecipeData, score: str) -> PhaseEvaluation:
        """Evaluate the model `trainer` trained; `score` is the detector score whose validation scores to return."""
        raise NotImplementedError

    def initial_model(self, data: RecipeData):
        """`(model, trained)`: the baseline to train, or an already trained one (`trained=True`)."""
        return self.build_model(data), False

    def baseline_changes(self) -> dict[str, Any]:
        """Training-argument changes of the baseline phase (epochs, learning rate); it never sees outliers."""
        return {"oe_weight": 0.0}

    def trainer_kwargs(self, data: RecipeData) -> dict[str, Any]:
        """Extra `OETrainer` arguments of both phases (tokenizer, collator)."""
        return {}

    def train(self, phase: str, trainer: OETrainer) -> None:
        """Train one phase."""
        trainer.train()

    def oe_model(self, baseline, data: RecipeData):
        """The model OE trains: by default a copy of the trained baseline (the paper's fine-tuning), so the baseline
        stays intact as a detector of its own."""
        return copy.deepcopy(baseline)

    def choose_score(self, detector, data: RecipeData) -> str:
        """Set and return the OE detector's score (default: the baseline's)."""
        return self.baseline_score()

    def baseline_score(self) -> str:
        """The score the baseline detector decides with."""
        return "msp"

    def compare(self, runs: dict[str, PhaseEvaluation], chosen: str) -> str:
        """The side-by-side table(s), markdown."""
        raise NotImplementedError

    def calibration_table(self, runs: dict[str, PhaseEvaluation]) -> str:
        """The side-by-side calibration table, markdown (empty where the recipe does not measure calibration)."""
        return ""

    def dataset_name(self) -> str:
        """The in-distribution dataset as the model card names it."""
        return self.args.dataset

    def auxiliary_name(self) -> str | None:
        """The auxiliary outliers as the model card names them."""
        return None

    def calibration_data(self, data: RecipeData) -> dict[str, Any]:
        """What the threshold was calibrated on, for the model card."""
        return {"dataset": self.args.dataset, "split": "validation", "num_examples": len(data.validation)}

    def evaluation_record(self, data: RecipeData) -> dict[str, Any]:
        """How both runs were evaluated (`config.oe["evaluation"]`): the protocol and the data settings."""
        return {"dataset": self.args.dataset, **self.protocol.settings()}

    def budget(self, phase: str, data: RecipeData) -> dict[str, Any]:
        """The training budget of one detector for its model card (the OE detector's includes its baseline's)."""
        baseline_args = self.trainers["baseline"].args
        trained = self.trainers[phase]
        out = {
            "train_examples": len(data.train),
            "baseline_epochs": baseline_args.num_train_epochs if self.baseline_trained and baseline_args.max_steps <= 0
            else None,
            "train_steps": trained.state.global_step,
            "seed": self.seed,
        }  # fmt: skip
        if phase == "oe":
            out.update(
                auxiliary_examples=len(data.outliers) if hasattr(data.outliers, "__len__") else None,
                num_train_epochs=self.training_args.num_train_epochs if self.training_args.max_steps <= 0 else None,
                global_batch_size=global_batch_size(self.training_args),
            )
        return out

    def extra_provenance(self, phase: str, data: RecipeData) -> dict[str, Any]:
        """Modality-specific entries of a detector's `config.oe`."""
        return {}

    def write_reports(self, result: RecipeResult, runs: dict[str, PhaseEvaluation], data: RecipeData) -> None:
        """Write the reports (main process only)."""
        raise NotImplementedError

    # ---- the flow ---------------------------------------------------------------------------------------------

    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = time.time() - start

    def _trainer(self, phase: str, model, data: RecipeData, **changes) -> OETrainer:
        args = phase_args(self.training_args, self.phase_dirs[phase], **changes)
        outliers = data.outliers if phase == "oe" else None
        trainer = OETrainer(
            model=model, args=args, train_dataset=data.train, outlier_dataset=outliers, **self.trainer_kwargs(data)
        )
        self.trainers[phase] = trainer
        return trainer

    def _detector(self, phase: str, run: PhaseEvaluation, score: str, data: RecipeData, baseline: PhaseEvaluation):
        """Calibrate the threshold of one phase's detector, and record its provenance."""
        trainer = self.trainers[phase]
        detector = trainer.accelerator.unwrap_model(trainer.model)
        if phase == "baseline":
            # The baseline's card states what the recipe measured, not what its trainer recorded during training.
            detector.config.oe = {}
        if detector.config.ood_score != score:
            detector.set_ood_score(score)
        threshold, flagged = None, {}
        if run.validation_scores is not None:
            threshold = detector.calibrate_threshold(
                run.validation_scores, tpr=self.args.calibration_tpr, calibration_data=self.calibration_data(data)
            )
            flagged = run.results.set_threshold(score, threshold)["flagged"]
        other = {}
        if phase == "oe":
            other = {
                "auxiliary_dataset": self.auxiliary_name(),
                "training_args": self.training_args,
                "baseline_ood_results": card_results(
                    baseline.results, self.baseline_score(), self.card_metrics, self.card_mean
                ),
                "baseline_test_accuracy": baseline.results.accuracy,
            }
        budget = {k: v for k, v in self.budget(phase, data).items() if v is not None}
        detector.record_oe_provenance(
            in_distribution_dataset=self.dataset_name(),
            ood_results=card_results(run.results, score, self.card_metrics, self.card_mean),
            test_accuracy=run.results.accuracy,
            flagged=flagged or None,
            unavailable_ood_sets=sorted(data.unavailable),
            evaluation=self.evaluation_record(data),
            **other,
            **budget,
            **self.extra_provenance(phase, data),
        )
        return detector, threshold, flagged

    def run(self) -> RecipeResult:
        """Run the recipe (see the module docstring) and return its `RecipeResult`."""
        start = time.time()
        data = self.load_data()
        report_unavailable(data.unavailable, logger, self.is_main)
        batch_note = global_batch_note(self.training_args)
        if batch_note and self.is_main:
            logger.warning(batch_note)
        self._timed("data", start)

        # ---- 1. baseline
        t0 = time.time()
        model, pretrained = self.initial_model(data)
        self.baseline_trained = not pretrained
        baseline_trainer = self._trainer("baseline", model, data, **self.baseline_changes())
        if not pretrained:
            self.train("baseline", baseline_trainer)
        self._timed("baseline_train", t0)
        t0 = time.time()
        baseline = self.evaluate("baseline", baseline_trainer, data, self.baseline_score())
        self._timed("baseline_eval", t0)

        # ---- 2. Outlier Exposure
        t0 = time.time()
        oe_trainer = self._trainer("oe", self.oe_model(model, data), data)
        self.train("oe", oe_trainer)
        self._timed("oe_train", t0)

        # ---- 3. the detector's score, evaluation, comparison
        t0 = time.time()
        chosen = self.choose_score(oe_trainer.accelerator.unwrap_model(oe_trainer.model), data)
        oe = self.evaluate("oe", oe_trainer, data, chosen)
        self._timed("oe_eval", t0)
        runs = {"baseline": baseline, "oe": oe}
        comparison = self.compare(runs, chosen)

        # ---- 4. both detectors: threshold on ID validation data, provenance, saved
        baseline_detector, _, _ = self._detector("baseline", baseline, self.baseline_score(), data, baseline)
        detector, threshold, flagged = self._detector("oe", oe, chosen, data, baseline)
        self._timed("total", start)
        from .modelcard import describe_decision

        result = RecipeResult(
            baseline=baseline.results,
            oe=oe.results,
            comparison=comparison,
            output_dir=self.output_dir,
            detector_dir=self.output_dir / self.detector_dirs["oe"],
            baseline_dir=self.output_dir / self.detector_dirs["baseline"],
            threshold=threshold,
            detector_score=chosen,
            decision=describe_decision(detector.config, flagged),
            calibration={k: r.calibration for k, r in runs.items() if r.calibration is not None},
            temperatures={k: r.temperature for k, r in runs.items() if r.temperature is not None},
            calibration_table=self.calibration_table(runs),
            timings=self.timings,
            budget=self.budget("oe", data),
        )
        if self.is_main:
            baseline_detector.save_pretrained(result.baseline_dir)
            detector.save_pretrained(result.detector_dir)
            self.write_reports(result, runs, data)
            if self.training_args.push_to_hub:
                repo_id = self.training_args.hub_model_id or self.output_dir.name
                detector.push_to_hub(
                    repo_id, private=self.training_args.hub_private_repo, token=self.training_args.hub_token
                )
                result.pushed_to = repo_id
            remove_empty_folders(*(trainer.args.output_dir for trainer in self.trainers.values()))
            for warning in budget_warnings(
                baseline.results, oe.results, self.baseline_score(), train_examples=len(data.train)
            ):
                logger.warning(warning)
        oe_trainer.accelerator.wait_for_everyone()
        return result
