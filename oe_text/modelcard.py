"""Model cards for OOD detectors, text and image alike, from one template (`templates/model_card_template.md`).

`build_model_card(config)` turns the provenance (`config.oe`) and the decision rule (`config.ood_*`,
`threshold_*`) stored in a detector's config into a `huggingface_hub.ModelCard` (`ModelCard.from_template`), with
the OOD results also as model-index metadata (`EvalResult`s) so that the Hub renders them;
`OEClassifier.save_pretrained` and `push_to_hub` write it to README.md. `render_detector_card` is the part shared
with `oe_text.vision.modelcard.build_image_model_card`, which passes the image-specific pieces.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .detection import describe_ood_score, describe_threshold
from .ood_protocol import OODProtocol
from .reporting import METRICS, markdown_table, metric_definition, metric_label


TEMPLATE_PATH = Path(__file__).parent / "templates" / "model_card_template.md"

CARD_TAGS = ("oe-text", "outlier-exposure", "ood-detection", "text-classification")

CITATION = """@inproceedings{hendrycks2019oe,
  title     = {Deep Anomaly Detection with Outlier Exposure},
  author    = {Hendrycks, Dan and Mazeika, Mantas and Dietterich, Thomas},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2019},
  url       = {https://arxiv.org/abs/1812.04606}
}"""

# Name and definition of the metric keys with a definition (the registry is `oe_text.reporting.METRICS`).
METRIC_DEFINITIONS: dict[str, tuple[str, str]] = {k: (v[0], v[2]) for k, v in METRICS.items() if v[2] is not None}

OE_LOSS_TEXT = {
    "uniform": (
        "cross-entropy from the model's softmax to the uniform distribution on the auxiliary outliers, "
        "`loss = CE(f(x_in), y) + λ · mean_k(-log softmax(f(x_out))_k)` (Hendrycks et al. 2019)"
    ),
    "energy": (
        "energy-bounded squared hinge of Liu et al. (2020), "
        "`loss = CE + λ · (E[max(0, E(x_in) - m_in)²] + E[max(0, m_out - E(x_out))²])` with "
        "`E(x) = -T logsumexp(f(x)/T)`"
    ),
}

#: What each protocol means, in words (`oe_text.ood_protocol.OODProtocol`).
PROTOCOL_TEXT = {
    "paper": "the paper's protocol: every in-distribution test input against {subsets} of each OOD set, each {ratio} "
    "the size of the in-distribution test set; metrics are averaged over the subsets",
    "full": "every in-distribution and every OOD test input scored once",
}

# Training-budget entries of `config.oe` and how the card names them, in display order.
BUDGET_LABELS = {
    "oe_mode": "OE mode",
    "train_examples": "In-distribution training examples",
    "auxiliary_examples": "Auxiliary outliers used for training",
    "heldout_auxiliary_examples": "Auxiliary outliers held out to choose the score",
    "baseline_epochs": "Baseline epochs (before OE)",
    "num_train_epochs": "Training epochs",
    "train_steps": "Optimisation steps",
    "global_batch_size": "Global in-distribution batch size",
    "seed": "Seed",
}
# Below this many training examples the card says the numbers come from a small (smoke-test sized) run.
SMALL_BUDGET_EXAMPLES = 2000

_RESULT_KEYS = (
    "ood_results",
    "baseline_ood_results",
    "test_accuracy",
    "baseline_test_accuracy",
    "flagged",
    "evaluation",
    "protocol",
    "unavailable_ood_sets",
    "command",
)
_KNOWN_OE_KEYS = ("in_distribution_dataset", "auxiliary_dataset", "oe_weight", "oe_loss", *_RESULT_KEYS)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _hub_id_or_none(value: Any) -> str | None:
    """`value` when it looks like a Hub id (not a local path), for the card's metadata."""
    if not isinstance(value, str) or not value or os.path.isabs(value) or value.startswith("."):
        return None
    return value if _HUB_ID.match(value) else None


def _fmt(value: Any, missing: str = "not recorded") -> str:
    return f"`{_fmt_scalar(value)}`" if value not in (None, "") else missing


def _fmt_scalar(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    if isinstance(value, float):
        return str(int(value))
    return str(value)


def format_value(value: Any) -> str:
    """A provenance value in readable markdown: scalars in backticks (floats to 4 significant digits), lists as
    comma-separated items, mappings as `key: value` pairs; never a raw Python dict."""
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {format_value(v)}" for k, v in value.items()) or "–"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "–"
    return _fmt(value, "–")


def _as_percent(runs: Sequence[Mapping[str, Mapping[str, float]]]) -> bool:
    values = [float(v) for rows in runs for metrics in rows.values() for v in metrics.values()]
    return all(0.0 <= v <= 1.0 for v in values if math.isfinite(v))


def _with_mean(rows: dict[str, dict[str, float]]) -> tuple[dict[str, dict[str, float]], list[str], str | None]:
    """`(rows, sets, mean row name)`: a given `mean` row (any case) is kept, else the mean of 2+ sets is added."""
    mean_name = next((n for n in rows if n.lower() == "mean"), None)
    sets = [n for n in rows if n != mean_name]
    keys = list(dict.fromkeys(k for metrics in rows.values() for k in metrics))
    if mean_name is None and len(sets) > 1:
        rows["Mean"] = {
            k: sum(float(rows[n][k]) for n in sets) / len(sets) for k in keys if all(k in rows[n] for n in sets)
        }
        mean_name = "Mean"
    return rows, sets, mean_name


def _checked_rows(results: Any, name: str) -> dict[str, dict[str, float]]:
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"`{name}` must be a non-empty dict {{ood_set: {{metric: value}}}}.")
    for set_name, metrics in results.items():
        if not isinstance(metrics, Mapping):
            raise ValueError(f"`{name}[{set_name!r}]` must be a dict of metric values, got {type(metrics).__name__}.")
    return {str(n): dict(m) for n, m in results.items()}


def ood_results_table(
    results: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]] | None = None,
    run_names: tuple[str, str] = ("Baseline", "OE"),
) -> tuple[str, list[str]]:
    """Markdown table of OOD results (one row per OOD set plus their mean) and the definitions of its metrics.

    Args:
        results (`dict`): `{ood_set: {metric: value}}`, metric keys as `oe_text.metrics.ood_detection_metrics`
            (`auroc`, `aupr_out`, `aupr_in`, `fpr95`, ...). Values in [0, 1] are shown as percentages. A row named
            `mean` (any case) is used as given; otherwise the mean of the sets is added for every metric all sets
            report.
        baseline (`dict`, *optional*): the baseline's results, same layout: then every metric both report gets a
            baseline and an OE column, side by side.
        run_names (`tuple`, *optional*): the column suffixes of `baseline` and `results` when `baseline` is given.

    Returns:
        `(table, definitions)`: the markdown table and one markdown line per known metric.
    """
    runs = {"": _checked_rows(results, "ood_results")}
    if baseline is not None:
        runs = {run_names[0]: _checked_rows(baseline, "baseline_ood_results"), run_names[1]: runs[""]}
    unit = " (%)" if _as_percent(list(runs.values())) else ""
    prepared = {label: _with_mean(rows) for label, rows in runs.items()}
    main_rows, sets, mean_name = prepared[list(runs)[-1]]
    metric_keys = list(dict.fromkeys(k for rows in runs.values() for m in rows.values() for k in m))
    columns = [
        (key, label) for key in metric_keys for label in runs if any(key in m for m in prepared[label][0].values())
    ]

    def cell(label: str, name: str, key: str) -> str:
        rows, _, mean = prepared[label]
        row = rows.get(mean if name == mean_name else name, {})
        if key not in row:
            return "–"
        value = float(row[key])
        return f"{100 * value:.2f}" if unit else f"{value:.4g}"

    header = ["OOD test set"] + [
        f"{metric_label(k, direction=False)}{unit}{' ' + lb if lb else ''}" for k, lb in columns
    ]
    body = []
    for name in [*sets, *([mean_name] if mean_name is not None else [])]:
        label = f"**{name}**" if name == mean_name else name
        body.append([label] + [cell(lb, name, k) for k, lb in columns])
    definitions = [d for d in (metric_definition(k) for k in metric_keys) if d is not None]
    return markdown_table(header, body), definitions


def _protocol_sentence(oe: Mapping[str, Any], inputs: str) -> str:
    evaluation = dict(oe.get("evaluation") or {})
    protocol = evaluation.get("protocol", oe.get("protocol"))
    parts = []
    if protocol in PROTOCOL_TEXT:
        # The recorded settings, with the protocol's defaults for those an older detector did not record.
        recorded = OODProtocol.from_settings(evaluation, protocol=protocol)
        ratio, n = recorded.ood_to_id_ratio, recorded.num_subsets
        parts.append(
            f"Protocol `{protocol}`: "
            + PROTOCOL_TEXT[protocol].format(
                subsets=f"{n} seeded random subset{'s' if n != 1 else ''}",
                ratio=f"1/{round(1 / ratio):d}"
                if ratio and abs(1 / ratio - round(1 / ratio)) < 1e-9
                else f"{ratio:g}x",
            )
            + "."
        )
    caps = []
    if evaluation.get("max_eval_samples"):
        caps.append(f"in-distribution test {inputs} capped at {evaluation['max_eval_samples']}")
    if evaluation.get("max_ood_samples"):
        caps.append(f"at most {evaluation['max_ood_samples']} {inputs} per OOD set")
    seed = evaluation.get("seed", oe.get("seed"))
    if seed is not None:
        caps.append(f"seed {seed}")
    if caps:
        parts.append("Evaluation settings: " + ", ".join(caps) + ".")
    return " ".join(parts)


def ood_results_section(config, results, inputs: str = "inputs", load_id: str | None = None) -> str:
    """The model card's results section: the recorded table (with metric definitions) or a note that there is none.

    Args:
        config: the detector's config (`ood_score`, `ood_temperature`, provenance in `oe`).
        results: `config.oe["ood_results"]`: `{ood_set: {metric: value}}`, a markdown table, or `None`. When
            `config.oe` also holds `baseline_ood_results`, the table puts the baseline and OE side by side; the
            test accuracies, the share flagged at the saved threshold and the evaluation settings follow.
        inputs (`str`, *optional*, defaults to `"inputs"`): what the test items are called (`"images"` for images).
        load_id (`str`, *optional*): the detector's id, for the command that reproduces the table.
    """
    if isinstance(results, str) and results.strip():
        return results.strip()
    if not (isinstance(results, Mapping) and results):
        return "No OOD evaluation was recorded for this model."
    oe = dict(getattr(config, "oe", None) or {})
    rows = {str(k): dict(v) if isinstance(v, Mapping) else v for k, v in results.items()}
    flagged = oe.get("flagged")
    if isinstance(flagged, Mapping):
        for name, share in flagged.items():
            if isinstance(rows.get(name), dict):
                rows[name]["flagged"] = share
        mean_name = next((n for n in rows if n.lower() == "mean"), None)
        if mean_name is not None and isinstance(rows[mean_name], dict) and flagged:
            rows[mean_name]["flagged"] = sum(float(v) for v in flagged.values()) / len(flagged)
    baseline = oe.get("baseline_ood_results")
    if isinstance(baseline, Mapping) and baseline:
        # Side by side, only the paper's main metrics (and the share flagged) keep the table readable.
        keys = list(dict.fromkeys(k for m in rows.values() if isinstance(m, Mapping) for k in m))
        main = [k for k in keys if k.lower().startswith("fpr")][:1] + ["auroc", "aupr_out", "flagged"]
        rows = {n: {k: m[k] for k in main if k in m} if isinstance(m, Mapping) else m for n, m in rows.items()}
        baseline = {n: {k: m[k] for k in main if k in m} for n, m in baseline.items() if isinstance(m, Mapping)}
        table, definitions = ood_results_table(rows, baseline, run_names=("Baseline", "OE detector"))
    else:
        baseline = None
        table, definitions = ood_results_table(rows)
    parts = [
        f"OOD score: `{config.ood_score}` at temperature {config.ood_temperature:g} (higher = more anomalous); "
        f"in-distribution test {inputs} against each OOD test set, OOD = positive class. "
        + ("Baseline: the same classifier trained without Outlier Exposure, scored with `msp`. " if baseline else "")
        + _protocol_sentence(oe, inputs),
        table,
    ]
    accuracy, baseline_accuracy = oe.get("test_accuracy"), oe.get("baseline_test_accuracy")
    if isinstance(accuracy, (int, float)):
        text = f"In-distribution test accuracy: {100 * accuracy:.2f}%"
        if isinstance(baseline_accuracy, (int, float)):
            text += f" (baseline {100 * baseline_accuracy:.2f}%)"
        parts.append(text + ".")
    if oe.get("unavailable_ood_sets"):
        parts.append(
            f"Not evaluated (unavailable when the detector was trained): {format_value(oe['unavailable_ood_sets'])}."
        )
    if definitions:
        parts.append("\n".join(f"- {d}" for d in definitions))
    evaluation = oe.get("evaluation")
    if isinstance(evaluation, Mapping) and evaluation.get("dataset") and inputs == "inputs":
        parts.append(
            "Re-evaluate the detector with the same data, caps and seed (read from its config): "
            f"`oe-text evaluate --model {load_id or 'path/or/repo-id'} --id_dataset {evaluation['dataset']}`."
        )
    if oe.get("command"):
        parts.append(f"Train it again with:\n\n```bash\n{oe['command']}\n```")
    return "\n\n".join(parts)


def _training_lines(oe: Mapping[str, Any], loss_text: Mapping[str, str]) -> list[str]:
    oe_loss = oe.get("oe_loss")
    lines = [
        f"**In-distribution dataset:** {_fmt(oe.get('in_distribution_dataset'))}",
        f"**Auxiliary (outlier exposure) dataset:** {_fmt(oe.get('auxiliary_dataset'))}",
        f"**λ (OE weight):** {_fmt(oe.get('oe_weight'))}",
        f"**OE loss:** {loss_text.get(oe_loss, _fmt(oe_loss))}",
    ]
    budget = [f"**{label}:** {format_value(oe[key])}" for key, label in BUDGET_LABELS.items() if key in oe]
    lines += budget or ["**Training budget:** not recorded (examples, epochs and steps are unknown)."]
    lines += [
        f"**{k}:** {format_value(v)}" for k, v in oe.items() if k not in _KNOWN_OE_KEYS and k not in BUDGET_LABELS
    ]
    examples = oe.get("train_examples")
    if isinstance(examples, int) and examples < SMALL_BUDGET_EXAMPLES:
        lines.append(
            f"**Note:** trained on only {examples} in-distribution examples: a small, smoke-test sized run; its "
            "results do not show what the method reaches with the full data."
        )
    return lines


def _flagged_span(flagged: Any) -> str | None:
    if not isinstance(flagged, Mapping) or not flagged:
        return None
    shares = sorted(100 * float(v) for v in flagged.values())
    return f"{shares[0]:.1f}%" if len(shares) == 1 else f"{shares[0]:.1f}–{shares[-1]:.1f}%"


def describe_decision(config, flagged: Mapping[str, float] | None = None, inputs: str = "input") -> str:
    """The decision rule in plain words, e.g. "an input is flagged OOD when its top class has less than 13.5%
    probability (`msp` > -0.135); on in-distribution validation this flags 5.0%; on the evaluated OOD sets 48.0–91.2%".

    Args:
        config: the detector's config (`ood_score`, `ood_temperature`, `ood_threshold`, `threshold_calibration`).
        flagged (`dict`, *optional*): `{ood_set: share flagged}` at the threshold (`OODResults.set_threshold`).
        inputs (`str`, *optional*, defaults to `"input"`): what one item is called.
    """
    threshold, score, temperature = config.ood_threshold, config.ood_score, config.ood_temperature
    if threshold is None:
        return f"No decision threshold is calibrated yet (score `{score}`, higher = more anomalous)."
    at = f" at temperature {temperature:g}" if temperature != 1 else ""
    if score == "msp":
        rule = f"its top class has less than {100 * -threshold:.1f}% probability{at}"
    elif score == "max_logit":
        rule = f"its largest logit{at} is below {-threshold:.4g}"
    else:
        rule = f"its `{score}` score{at} is above {threshold:.4g} (higher = more anomalous)"
    text = f"An {inputs} is flagged OOD when {rule}"
    if score in ("msp", "max_logit"):
        text += f" (`{score}` > {threshold:.4g})"
    calib = getattr(config, "threshold_calibration", None) or {}
    if calib.get("fraction_flagged") is not None:
        text += f"; on in-distribution validation data this flags {100 * calib['fraction_flagged']:.1f}%"
    span = _flagged_span(flagged)
    if span:
        text += f"; on the evaluated OOD test sets it flags {span}"
    return text + "."


def _decision_section(config, oe: Mapping[str, Any], inputs: str, recalibrate: str) -> str:
    text = describe_threshold(config)
    if config.ood_threshold is None:
        return text
    text = describe_decision(config, oe.get("flagged"), inputs=inputs[:-1]) + "\n\nIn detail: " + text
    return (
        text + f" The threshold was chosen on in-distribution validation {inputs} only (no OOD data): it is the score "
        "below which the chosen fraction (TPR) of in-distribution inputs falls (`oe_text.metrics.threshold_at_tpr`). "
        + recalibrate
    )


def _eval_results(oe: Mapping[str, Any], task_type: str, id_dataset: str | None) -> list[EvalResult]:
    """The OOD results (and test accuracy) as model-index entries, percentages for fractions."""
    results = oe.get("ood_results")
    if not isinstance(results, Mapping):
        return []
    rows = {n: m for n, m in results.items() if isinstance(m, Mapping) and str(n).lower() != "mean"}
    percent = _as_percent([rows]) if rows else False
    out = []
    for name, metrics in rows.items():
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.append(
                    EvalResult(
                        task_type=task_type,
                        task_name="Out-of-distribution detection",
                        dataset_type=str(name),
                        dataset_name=f"{name} (OOD) vs {id_dataset or 'in-distribution'} test",
                        metric_type=key.lower(),
                        metric_name=metric_label(key, direction=False) + (" (%)" if percent else ""),
                        metric_value=round(100 * float(value), 2) if percent else float(value),
                    )
                )
    accuracy = oe.get("test_accuracy")
    if isinstance(accuracy, (int, float)) and id_dataset:
        out.append(
            EvalResult(
                task_type=task_type,
                dataset_type=id_dataset,
                dataset_name=id_dataset,
                dataset_split="test",
                metric_type="accuracy",
                metric_name="Accuracy (%)",
                metric_value=round(100 * float(accuracy), 2),
            )
        )
    return out


def render_detector_card(
    config,
    *,
    modality: str,
    model_lines: list[str],
    usage_code: str,
    usage_note: str,
    limitations: list[str],
    training_note: str,
    recalibrate: str,
    card_tags: Sequence[str],
    repo_id: str | None = None,
    tags: list[str] | None = None,
    model_name: str | None = None,
    base_model: str | None = None,
    load_id: str = "path/or/repo-id",
    pipeline_tag: str | None = None,
    task_phrase: str | None = None,
    loss_text: Mapping[str, str] | None = None,
) -> ModelCard:
    """Fill the one model card template (`TEMPLATE_PATH`) for a text or an image detector.

    The shared parts (training and budget, results with model-index metadata, OOD score, decision rule, install,
    citation) come from `config`; the modality-specific ones (architecture lines, usage code, limitations) are the
    arguments.

    Args:
        config: the detector's config (provenance in `config.oe`).
        modality (`str`): `"text"` or `"image"`.
        model_lines, usage_code, usage_note, limitations, training_note, recalibrate: the modality's markdown.
        card_tags (sequence of `str`): the default tags (`tags` are added).
        repo_id, tags, model_name: as `build_model_card`.
        base_model (`str`, *optional*): the base model for the metadata (a Hub id; local paths are dropped).
        load_id (`str`): the id the usage snippet loads.
        pipeline_tag (`str`, *optional*): the Hub pipeline tag (default `"<modality>-classification"`).
        task_phrase (`str`, *optional*): what was trained, for the introduction (default "a <modality> classifier").
        loss_text (`dict`, *optional*): the OE losses in words, by `config.oe["oe_loss"]` (default `OE_LOSS_TEXT`).
    """
    oe = dict(getattr(config, "oe", None) or {})
    inputs = "inputs" if modality == "text" else "images"
    id_data = oe.get("in_distribution_dataset")
    datasets = [d for d in (_hub_id_or_none(id_data), _hub_id_or_none(oe.get("auxiliary_dataset"))) if d is not None]
    title = model_name or (repo_id.split("/")[-1] if repo_id else f"{modality.capitalize()} OOD detector")
    if modality == "text" and not (model_name or repo_id):
        title = "OOD detector"
    task_type = pipeline_tag or f"{modality}-classification"
    eval_results = _eval_results(oe, task_type, id_data if isinstance(id_data, str) else None)
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=task_type,
        tags=list(card_tags) + [t for t in (tags or []) if t not in card_tags],
        base_model=_hub_id_or_none(base_model),
        datasets=datasets or None,
        model_name=title if eval_results else None,
        eval_results=eval_results or None,
    )
    labels = ", ".join(f"`{v}`" for _, v in sorted((config.id2label or {}).items()))
    return ModelCard.from_template(
        data,
        template_path=str(TEMPLATE_PATH),
        title=title,
        modality_plural=inputs if modality == "image" else "text inputs",
        task_phrase=task_phrase or f"a {modality} classifier",
        labels=(labels or "not set") if task_phrase is None else labels,
        model_lines=model_lines,
        training_lines=_training_lines(oe, loss_text or OE_LOSS_TEXT),
        training_note=training_note,
        results_md=ood_results_section(config, oe.get("ood_results"), inputs=inputs, load_id=load_id),
        ood_score_md=describe_ood_score(config),
        decision_md=_decision_section(config, oe, inputs, recalibrate),
        usage_code=usage_code.strip(),
        usage_note=usage_note,
        limitations=limitations,
        citation=CITATION,
    )


TEXT_LIMITATIONS = [
    "Intended for flagging inputs that a text classifier was not trained for (other domains, topics or languages) "
    "before trusting its prediction, e.g. to route them to a human or a fallback.",
    "OOD detection is measured on particular OOD test sets; inputs close to the training distribution (same domain, "
    "new classes, paraphrases) are harder to detect than the sets above suggest, and no score certifies that an input "
    "is in-distribution.",
    "The threshold keeps the stated fraction of in-distribution inputs only when deployment data resembles the "
    "calibration data; recalibrate it on your own validation data after any shift.",
    "Predicted probabilities and OOD scores are not calibrated probabilities of being OOD. The model inherits the "
    "biases of its training data and base model; do not use it alone for high-stakes decisions.",
]


def build_model_card(
    config,
    repo_id: str | None = None,
    tags: list[str] | None = None,
    model_name: str | None = None,
) -> ModelCard:
    """A model card for a text OOD detector from its config (`OEConfig`, or any config with the detection fields).

    Covers: base model, in-distribution and auxiliary datasets, λ, the OE loss and the training budget, the OOD
    results (baseline vs OE per OOD set and mean, test accuracy, the share flagged at the threshold, metric
    definitions, evaluation settings and the commands that reproduce them; also as model-index metadata), the OOD
    score, the decision rule in words, install and usage, intended use and limitations, and the paper's citation.
    Metadata tags: `oe-text`, `outlier-exposure`, `ood-detection`, `text-classification` (plus `tags`).

    Args:
        config: the detector's config; provenance is read from `config.oe` (see `OEClassifier.record_oe_provenance`).
        repo_id (`str`, *optional*): the Hub id the card is for, used in the usage snippet.
        tags (`list[str]`, *optional*): extra tags.
        model_name (`str`, *optional*): title (default: `repo_id`'s name, else "OOD detector").

    Returns:
        `huggingface_hub.ModelCard`.
    """
    base_model = getattr(config, "base_model_name", None)
    backbone_type = getattr(config, "backbone_type", "transformer")
    if backbone_type == "transformer":
        arch = (
            f"pretrained encoder {_fmt(base_model, 'of unknown origin')} "
            f"(`{(config.backbone_config or {}).get('model_type', '?')}`), {config.pooling} pooling, "
            "dropout and a linear head"
        )
    else:
        bc = config.backbone_config or {}
        arch = (
            f"{backbone_type.upper()} trained from scratch (the Outlier Exposure paper's NLP baseline shape): "
            f"{bc.get('embedding_dim')}-dim embeddings over a {bc.get('vocab_size')}-token vocabulary (the tokenizer "
            f"saved with the model; `oe_text.train_sentencepiece_tokenizer` trains one on the in-distribution text), "
            f"{bc.get('num_layers')} layers of {bc.get('hidden_size')} units, linear head on the last hidden state"
        )
    load_id = repo_id or "path/or/repo-id"
    usage_code = f"""
import oe_text  # registers the "oe-classifier" model type with transformers' Auto classes
from oe_text import OEClassifier
from transformers import pipeline

detector = OEClassifier.from_pretrained("{load_id}")
detector.detect(["a text to classify", "another one"])
# -> [{{"label": ..., "score": ..., "ood_score": ..., "is_ood": ...}}, ...]

classifier = pipeline("text-classification", model="{load_id}")  # the class prediction only
"""
    usage_note = (
        f'It also loads with `AutoModelForSequenceClassification.from_pretrained("{load_id}")` once `oe_text` is '
        "imported (no `trust_remote_code`; without the import, transformers does not know the model type). The "
        "pipeline gives the class prediction; `detect` adds the OOD score and the decision. Screen a file with "
        f"`oe-text detect --model {load_id} --input texts.txt`."
    )
    card_tags = list(CARD_TAGS) + ([backbone_type] if backbone_type in ("gru", "lstm") else [])
    return render_detector_card(
        config,
        modality="text",
        model_lines=[
            f"**Architecture:** {arch}.",
            f"**Base model:** {_fmt(base_model, 'none (trained from scratch)')}",
        ],
        usage_code=usage_code,
        usage_note=usage_note,
        limitations=TEXT_LIMITATIONS,
        training_note=(
            "The classifier is trained with cross-entropy on the in-distribution data while the OE term pushes its "
            "predictions on the auxiliary outliers towards the uniform distribution (or, for the energy loss, their "
            "free energy above a margin), so that unseen anomalies get low confidence."
        ),
        recalibrate="Recalibrate it with `detector.calibrate_threshold(texts, tpr=...)` on validation data from "
        "your deployment.",
        card_tags=card_tags,
        repo_id=repo_id,
        tags=tags,
        model_name=model_name,
        base_model=base_model,
        load_id=load_id,
    )


LM_CARD_TAGS = ("oe-text", "outlier-exposure", "ood-detection", "text-generation", "language-model")

LM_LOSS_TEXT = {
    "uniform": "per-token cross-entropy from the uniform distribution over the vocabulary to the next-token "
    "distribution on the auxiliary outliers (the paper's LM objective)",
    "margin": "margin ranking: outlier log-likelihood per token pushed below the in-distribution one",
}


def build_lm_model_card(
    config, repo_id: str | None = None, tags: list[str] | None = None, model_name: str | None = None
) -> ModelCard:
    """A model card for a language-model OOD detector (`OELanguageModelDetector`) from its config.

    The same template and sections as `build_model_card` (provenance from `config.oe`, budget, results, OOD score,
    decision rule, usage, limitations, citation), with the language model's architecture, losses and scores.
    """
    base_model = getattr(config, "base_model_name", None)
    lm = config.lm_config or {}
    load_id = repo_id or "path/or/repo-id"
    size = ", ".join(
        f"{k} {lm[k]}" for k in ("n_layer", "num_hidden_layers", "n_embd", "hidden_size", "vocab_size") if k in lm
    )
    usage_code = f"""
import oe_text  # registers the "oe-language-model" model type with transformers' Auto classes
from oe_text import OELanguageModelDetector

detector = OELanguageModelDetector.from_pretrained("{load_id}")
detector.detect(["a text to check", "another one"])
# -> [{{"ood_score": ..., "is_ood": ..., "nll": ..., "perplexity": ...}}, ...]
"""
    return render_detector_card(
        config,
        modality="text",
        model_lines=[
            f"**Architecture:** causal language model `{lm.get('model_type', '?')}` ({size or 'size not recorded'}).",
            f"**Base model:** {_fmt(base_model, 'none (trained from scratch)')}",
        ],
        usage_code=usage_code,
        usage_note="Scores (higher = more anomalous): `kl_uniform` (the paper's: minus the mean KL divergence from "
        "uniform of the next-token distributions), `nll` (negative log-likelihood per token), `bpc` (bits per "
        "character), `max_prob`.",
        limitations=[
            "Intended for flagging text unlike the language model's training corpus. A language model's likelihood "
            "alone can rank some OOD text as *more* likely than in-distribution text (short, simple or repetitive "
            "inputs); Outlier Exposure targets that, but no score certifies that an input is in-distribution.",
            "The threshold keeps the stated fraction of in-distribution texts only when deployment text resembles the "
            "calibration text; recalibrate on your own validation data after any shift.",
        ],
        training_note="The language model's next-token distributions are pushed towards uniform on the auxiliary "
        "outliers, so that text unlike its training corpus scores as anomalous.",
        recalibrate="Recalibrate it with `detector.calibrate_threshold(texts, tpr=...)` on validation text from your "
        "deployment.",
        card_tags=LM_CARD_TAGS,
        repo_id=repo_id,
        tags=tags,
        model_name=model_name or (None if repo_id else "Language-model OOD detector"),
        base_model=base_model,
        load_id=load_id,
        pipeline_tag="text-generation",
        task_phrase="a causal language model",
        loss_text=LM_LOSS_TEXT,
    )
