"""Model cards for OOD detectors: what was trained on what, how well it detects, and how its threshold was chosen.

`build_model_card(config)` turns the provenance (`config.oe`) and the decision rule (`config.ood_*`,
`threshold_*`) stored in a detector's config into a `huggingface_hub.ModelCard`; `OEClassifier.save_pretrained` and
`push_to_hub` write it to README.md.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from .detection import describe_ood_score, describe_threshold


CARD_TAGS = ("oe-text", "outlier-exposure", "ood-detection", "text-classification")

CITATION = """@inproceedings{hendrycks2019oe,
  title     = {Deep Anomaly Detection with Outlier Exposure},
  author    = {Hendrycks, Dan and Mazeika, Mantas and Dietterich, Thomas},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2019},
  url       = {https://arxiv.org/abs/1812.04606}
}"""

# Display name and definition of the keys of `oe_text.metrics.ood_detection_metrics` (OOD = positive class).
METRIC_DEFINITIONS: dict[str, tuple[str, str]] = {
    "auroc": (
        "AUROC",
        "area under the ROC curve of OOD (positive) against in-distribution test inputs; 50% is chance, higher is "
        "better.",
    ),
    "aupr_out": (
        "AUPR-Out",
        "average precision with OOD as the positive class (the paper's AUPR); it depends on the OOD:ID ratio of "
        "the test sets; higher is better.",
    ),
    "aupr_in": (
        "AUPR-In",
        "average precision with in-distribution as the positive class and the score negated; higher is better.",
    ),
    "detection_error": (
        "Detection error",
        "min over thresholds of 0.5 (1 - TPR) + 0.5 FPR, the error of the best threshold when ID and OOD are "
        "equally likely; lower is better.",
    ),
}
_FPR_KEY = re.compile(r"^fpr(\d+(?:\.\d+)?)$", re.IGNORECASE)

_OE_LOSS_TEXT = {
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

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _hub_id_or_none(value: Any) -> str | None:
    """`value` when it looks like a Hub id (not a local path), for the card's metadata."""
    if not isinstance(value, str) or not value or os.path.isabs(value) or value.startswith("."):
        return None
    return value if _HUB_ID.match(value) else None


def _metric_label(key: str) -> str:
    if key.lower() in METRIC_DEFINITIONS:
        return METRIC_DEFINITIONS[key.lower()][0]
    match = _FPR_KEY.match(key)
    return f"FPR{match.group(1)}" if match else key


def _metric_definition(key: str) -> str | None:
    if key.lower() in METRIC_DEFINITIONS:
        name, text = METRIC_DEFINITIONS[key.lower()]
        return f"**{name}**: {text}"
    match = _FPR_KEY.match(key)
    if match:
        return (
            f"**FPR{match.group(1)}**: fraction of in-distribution test inputs flagged as OOD at the threshold that "
            f"detects {match.group(1)}% of the OOD inputs; lower is better."
        )
    return None


def ood_results_table(results: Mapping[str, Mapping[str, float]]) -> tuple[str, list[str]]:
    """Markdown table of OOD results (one row per OOD set plus their mean) and the definitions of its metrics.

    Args:
        results (`dict`): `{ood_set: {metric: value}}`, metric keys as `oe_text.metrics.ood_detection_metrics`
            (`auroc`, `aupr_out`, `aupr_in`, `fpr95`, ...). Values in [0, 1] are shown as percentages. A row named
            `mean` (any case) is used as given; otherwise the mean of the sets is added for every metric all sets
            report.

    Returns:
        `(table, definitions)`: the markdown table and one markdown line per known metric.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("`ood_results` must be a non-empty dict {ood_set: {metric: value}}.")
    for name, metrics in results.items():
        if not isinstance(metrics, Mapping):
            raise ValueError(f"`ood_results[{name!r}]` must be a dict of metric values, got {type(metrics).__name__}.")
    rows = {str(name): dict(metrics) for name, metrics in results.items()}
    metric_keys: list[str] = []
    for metrics in rows.values():
        metric_keys += [k for k in metrics if k not in metric_keys]
    mean_name = next((n for n in rows if n.lower() == "mean"), None)
    sets = [n for n in rows if n != mean_name]
    if mean_name is None and len(sets) > 1:
        mean = {
            k: sum(float(rows[n][k]) for n in sets) / len(sets) for k in metric_keys if all(k in rows[n] for n in sets)
        }
        rows["Mean"] = mean
        mean_name = "Mean"
    values = [float(v) for metrics in rows.values() for v in metrics.values()]
    as_percent = all(0.0 <= v <= 1.0 for v in values if math.isfinite(v))
    unit = " (%)" if as_percent else ""

    def fmt(metrics: Mapping[str, float], key: str) -> str:
        if key not in metrics:
            return "–"
        value = float(metrics[key])
        return f"{100 * value:.2f}" if as_percent else f"{value:.4g}"

    header = "| OOD test set | " + " | ".join(f"{_metric_label(k)}{unit}" for k in metric_keys) + " |"
    lines = [header, "|---|" + "---:|" * len(metric_keys)]
    for name in [*sets, *([mean_name] if mean_name is not None else [])]:
        label = f"**{name}**" if name == mean_name else name
        lines.append(f"| {label} | " + " | ".join(fmt(rows[name], k) for k in metric_keys) + " |")
    definitions = [d for d in (_metric_definition(k) for k in metric_keys) if d is not None]
    return "\n".join(lines), definitions


def ood_results_section(config, results, inputs: str = "inputs") -> str:
    """The model card's results section: the recorded table (with metric definitions) or a note that there is none.

    Args:
        config: the detector's config (`ood_score`, `ood_temperature`).
        results: `config.oe["ood_results"]`: `{ood_set: {metric: value}}`, a markdown table, or `None`.
        inputs (`str`, *optional*, defaults to `"inputs"`): what the test items are called (`"images"` for images).
    """
    if isinstance(results, str) and results.strip():
        return results.strip()
    if isinstance(results, Mapping) and results:
        table, definitions = ood_results_table(results)
        return (
            f"OOD score: `{config.ood_score}` at temperature {config.ood_temperature:g} (higher = more anomalous); "
            f"in-distribution test {inputs} against each OOD test set, OOD = positive class.\n\n"
            + table
            + ("\n\n" + "\n".join(f"- {d}" for d in definitions) if definitions else "")
        )
    return "No OOD evaluation was recorded for this model."


def _fmt(value: Any, missing: str = "not recorded") -> str:
    return f"`{value}`" if value not in (None, "") else missing


def build_model_card(
    config,
    repo_id: str | None = None,
    tags: list[str] | None = None,
    model_name: str | None = None,
) -> ModelCard:
    """A model card for an OOD detector from its config (`OEConfig`, or any config with the detection fields).

    Covers: base model, in-distribution and auxiliary datasets, λ and the OE loss, the OOD results table (per OOD
    set and mean, with the metric definitions), the threshold and how it was chosen, intended use and limitations,
    how to load and call the model, and the paper's citation. Metadata tags: `oe-text`, `outlier-exposure`,
    `ood-detection`, `text-classification` (plus `tags`).

    Args:
        config: the detector's config; provenance is read from `config.oe` (see `OEClassifier.record_oe_provenance`).
        repo_id (`str`, *optional*): the Hub id the card is for, used in the usage snippet.
        tags (`list[str]`, *optional*): extra tags.
        model_name (`str`, *optional*): title (default: `repo_id`'s name, else "OOD detector").

    Returns:
        `huggingface_hub.ModelCard`.
    """
    oe = dict(getattr(config, "oe", None) or {})
    base_model = getattr(config, "base_model_name", None)
    backbone_type = getattr(config, "backbone_type", "transformer")
    id_data = oe.get("in_distribution_dataset")
    aux_data = oe.get("auxiliary_dataset")
    datasets = [d for d in (_hub_id_or_none(id_data), _hub_id_or_none(aux_data)) if d is not None]
    card_tags = list(CARD_TAGS) + [t for t in (tags or []) if t not in CARD_TAGS]
    if backbone_type in ("gru", "lstm"):
        card_tags.append(backbone_type)
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=card_tags,
        base_model=_hub_id_or_none(base_model),
        datasets=datasets or None,
    )
    title = model_name or (repo_id.split("/")[-1] if repo_id else "OOD detector")
    load_id = repo_id or "path/or/repo-id"
    labels = ", ".join(f"`{v}`" for _, v in sorted((config.id2label or {}).items()))

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

    oe_loss = oe.get("oe_loss")
    loss_text = _OE_LOSS_TEXT.get(oe_loss, _fmt(oe_loss))
    training = [
        f"- **In-distribution dataset:** {_fmt(id_data)}",
        f"- **Auxiliary (outlier exposure) dataset:** {_fmt(aux_data)}",
        f"- **λ (OE weight):** {_fmt(oe.get('oe_weight'))}",
        f"- **OE loss:** {loss_text}",
    ]
    training += [f"- **{k}:** `{v}`" for k, v in oe.items() if k not in _KNOWN_OE_KEYS]

    results_md = ood_results_section(config, oe.get("ood_results"), inputs="inputs")

    threshold_md = describe_threshold(config)
    if config.ood_threshold is not None:
        threshold_md += (
            " The threshold was chosen on in-distribution validation data only (no OOD data): it is the score "
            "below which the chosen fraction (TPR) of in-distribution inputs falls "
            "(`oe_text.metrics.threshold_at_tpr`). Recalibrate it with `detector.calibrate_threshold(texts, tpr=...)` "
            "on validation data from your deployment."
        )

    body = f"""
# {title}

An out-of-distribution (OOD) detector for text built with [oe-text](https://github.com/oe-text/oe-text): a
text classifier (labels: {labels or "not set"}) trained with **Outlier Exposure** (Hendrycks, Mazeika & Dietterich,
ICLR 2019), which also flags inputs unlike its training distribution.

## Model

- **Architecture:** {arch}.
- **Base model:** {_fmt(base_model, "none (trained from scratch)")}

## Training: Outlier Exposure

{chr(10).join(training)}

The classifier is trained with cross-entropy on the in-distribution data while the OE term pushes its predictions on
the auxiliary outliers towards the uniform distribution (or, for the energy loss, their free energy above a margin),
so that unseen anomalies get low confidence.

## OOD detection results

{results_md}

## OOD score

{describe_ood_score(config)}

## Decision threshold

{threshold_md}

## How to use

```python
import oe_text  # registers the "oe-classifier" model type with transformers' Auto classes
from oe_text import OEClassifier

detector = OEClassifier.from_pretrained("{load_id}")
detector.detect(["a text to classify", "another one"])
# -> [{{"label": ..., "score": ..., "ood_score": ..., "is_ood": ...}}, ...]
```

It also loads with `AutoModelForSequenceClassification.from_pretrained("{load_id}")` and
`transformers.pipeline("text-classification", model="{load_id}")` once `oe_text` is imported (no
`trust_remote_code`); the pipeline gives the class prediction, `detect` adds the OOD score and decision.

## Intended use and limitations

- Intended for flagging inputs that a text classifier was not trained for (other domains, topics or languages)
  before trusting its prediction, e.g. to route them to a human or a fallback.
- OOD detection is measured on particular OOD test sets; inputs close to the training distribution (same domain,
  new classes, paraphrases) are harder to detect than the sets above suggest, and no score certifies that an input
  is in-distribution.
- The threshold keeps the stated fraction of in-distribution inputs only when deployment data resembles the
  calibration data; recalibrate on your own validation data after any shift.
- Predicted probabilities and OOD scores are not calibrated probabilities of being OOD. The model inherits the
  biases of its training data and base model; do not use it alone for high-stakes decisions.

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


_KNOWN_OE_KEYS = ("in_distribution_dataset", "auxiliary_dataset", "oe_weight", "oe_loss", "ood_results")


LM_CARD_TAGS = ("oe-text", "outlier-exposure", "ood-detection", "text-generation", "language-model")


def build_lm_model_card(
    config, repo_id: str | None = None, tags: list[str] | None = None, model_name: str | None = None
) -> ModelCard:
    """A model card for a language-model OOD detector (`OELanguageModelDetector`) from its config.

    Same sections as `build_model_card` (provenance from `config.oe`, results, decision rule, usage, limitations,
    citation), with the language model's architecture and scores.
    """
    oe = dict(getattr(config, "oe", None) or {})
    base_model = getattr(config, "base_model_name", None)
    lm = config.lm_config or {}
    id_data, aux_data = oe.get("in_distribution_dataset"), oe.get("auxiliary_dataset")
    datasets = [d for d in (_hub_id_or_none(id_data), _hub_id_or_none(aux_data)) if d is not None]
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=list(LM_CARD_TAGS) + [t for t in (tags or []) if t not in LM_CARD_TAGS],
        base_model=_hub_id_or_none(base_model),
        datasets=datasets or None,
    )
    title = model_name or (repo_id.split("/")[-1] if repo_id else "Language-model OOD detector")
    load_id = repo_id or "path/or/repo-id"
    size = ", ".join(
        f"{k} {lm[k]}" for k in ("n_layer", "num_hidden_layers", "n_embd", "hidden_size", "vocab_size") if k in lm
    )
    oe_loss = oe.get("oe_loss")
    loss_text = {
        "uniform": "per-token cross-entropy from the uniform distribution over the vocabulary to the next-token "
        "distribution on the auxiliary outliers (the paper's LM objective)",
        "margin": "margin ranking: outlier log-likelihood per token pushed below the in-distribution one",
    }.get(oe_loss, _fmt(oe_loss))
    training = [
        f"- **In-distribution corpus:** {_fmt(id_data)}",
        f"- **Auxiliary (outlier exposure) dataset:** {_fmt(aux_data)}",
        f"- **λ (OE weight):** {_fmt(oe.get('oe_weight'))}",
        f"- **OE loss:** {loss_text}",
    ]
    training += [f"- **{k}:** `{v}`" for k, v in oe.items() if k not in _KNOWN_OE_KEYS and not isinstance(v, dict)]
    body = f"""
# {title}

An out-of-distribution (OOD) detector for text built with [oe-text](https://github.com/oe-text/oe-text): a causal
language model fine-tuned with **Outlier Exposure** (Hendrycks, Mazeika & Dietterich, ICLR 2019), whose next-token
distributions are pushed towards uniform on auxiliary outliers, so that text unlike its training corpus scores as
anomalous.

## Model

- **Architecture:** causal language model `{lm.get("model_type", "?")}` ({size or "size not recorded"}).
- **Base model:** {_fmt(base_model, "none (trained from scratch)")}

## Training: Outlier Exposure

{chr(10).join(training)}

## OOD detection results

{ood_results_section(config, oe.get("ood_results"), inputs="texts")}

## Decision threshold

{describe_threshold(config)}

## How to use

```python
import oe_text  # registers the "oe-language-model" model type with transformers' Auto classes
from oe_text import OELanguageModelDetector

detector = OELanguageModelDetector.from_pretrained("{load_id}")
detector.detect(["a text to check", "another one"])
# -> [{{"ood_score": ..., "is_ood": ..., "nll": ..., "perplexity": ...}}, ...]
```

Scores (higher = more anomalous): `kl_uniform` (the paper's: minus the mean KL divergence from uniform of the
next-token distributions), `nll` (negative log-likelihood per token), `bpc` (bits per character), `max_prob`.

## Intended use and limitations

- Intended for flagging text unlike the language model's training corpus. A language model's likelihood alone can
  rank some OOD text as *more* likely than in-distribution text (short, simple or repetitive inputs); Outlier
  Exposure targets that, but no score certifies that an input is in-distribution.
- The threshold keeps the stated fraction of in-distribution texts only when deployment text resembles the
  calibration text; recalibrate on your own validation data after any shift.

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
