"""Model cards for image OOD detectors (`OEImageClassifier`), from the provenance and decision rule in the config.

The results table, metric definitions, threshold description and citation are those of the text detectors'
`oe_text.modelcard`; only the parts that depend on the modality (architecture, preprocessing, usage) differ.
"""

from __future__ import annotations

from huggingface_hub import ModelCard, ModelCardData

from ..detection import describe_ood_score, describe_threshold
from ..modelcard import CITATION, ood_results_section


CARD_TAGS = ("oe-text", "outlier-exposure", "ood-detection", "image-classification")

_OE_LOSS_TEXT = {
    "uniform": "cross-entropy from the softmax to the uniform distribution on the auxiliary outliers "
    "(`loss = CE(f(x_in), y) + λ · mean_k(-log softmax(f(x_out))_k)`, Hendrycks et al. 2019)",
    "energy": "energy-bounded squared hinge of Liu et al. (2020) on the free energy `-T logsumexp(f(x)/T)`",
}


def _fmt(value, missing: str = "not recorded") -> str:
    return f"`{value}`" if value not in (None, "") else missing


def _architecture(config) -> str:
    if config.architecture == "wrn":
        return (
            f"Wide Residual Network WRN-{config.depth}-{config.widen_factor} (dropout {config.dropout:g}), the "
            "Outlier Exposure paper's vision model"
        )
    kwargs = f" with {config.torchvision_kwargs}" if config.torchvision_kwargs else ""
    return f"torchvision `{config.torchvision_model}`{kwargs}, its final linear layer replaced by a new head"


def build_image_model_card(config, repo_id: str | None = None, tags: list[str] | None = None) -> ModelCard:
    """A model card for an image OOD detector from its `OEImageConfig`.

    Covers the architecture and preprocessing, the in-distribution and auxiliary datasets, λ and the OE loss, the
    OOD results (per OOD set and mean, with metric definitions), the decision threshold, usage, limitations and the
    paper's citation. Metadata tags: `oe-text`, `outlier-exposure`, `ood-detection`, `image-classification`.

    Args:
        config (`OEImageConfig`): the detector's config; provenance is read from `config.oe`.
        repo_id (`str`, *optional*): the Hub id the card is for, used in the usage snippet.
        tags (`list[str]`, *optional*): extra tags.

    Returns:
        `huggingface_hub.ModelCard`.
    """
    oe = dict(config.oe or {})
    card_tags = list(CARD_TAGS) + [t for t in (tags or []) if t not in CARD_TAGS]
    data = ModelCardData(library_name="transformers", pipeline_tag="image-classification", tags=card_tags)
    title = repo_id.split("/")[-1] if repo_id else "Image OOD detector"
    load_id = repo_id or "path/or/repo-id"
    labels = ", ".join(f"`{v}`" for _, v in sorted((config.id2label or {}).items()))
    channels = "grayscale" if config.num_channels == 1 else "RGB"

    results_md = ood_results_section(config, oe.get("ood_results"), inputs="images")
    known = ("in_distribution_dataset", "auxiliary_dataset", "oe_weight", "oe_loss", "ood_results")
    training = [
        f"- **In-distribution dataset:** {_fmt(oe.get('in_distribution_dataset'))}",
        f"- **Auxiliary (outlier exposure) dataset:** {_fmt(oe.get('auxiliary_dataset'))}",
        f"- **λ (OE weight):** {_fmt(oe.get('oe_weight'))}",
        f"- **OE loss:** {_OE_LOSS_TEXT.get(oe.get('oe_loss'), _fmt(oe.get('oe_loss')))}",
    ] + [f"- **{k}:** `{v}`" for k, v in oe.items() if k not in known]
    threshold_md = describe_threshold(config)
    if config.ood_threshold is not None:
        threshold_md += (
            " The threshold was chosen on in-distribution validation images only (no OOD data). Recalibrate it with "
            "`detector.calibrate_threshold(images, tpr=...)` on validation images from your deployment."
        )

    body = f"""
# {title}

An out-of-distribution (OOD) detector for images built with [oe-text](https://github.com/oe-text/oe-text): an
image classifier (labels: {labels or "not set"}) trained with **Outlier Exposure** (Hendrycks, Mazeika & Dietterich,
ICLR 2019), which also flags images unlike its training distribution.

## Model

- **Architecture:** {_architecture(config)}.
- **Initial weights:** {_fmt(config.base_model_name, "random initialisation (trained from scratch)")}
- **Inputs:** {channels} {config.image_size}x{config.image_size} images, scaled to [0, 1] and normalised with mean
  `{[round(v, 4) for v in config.image_mean]}` and std `{[round(v, 4) for v in config.image_std]}`; `detect` converts
  the channels, resizes (shorter side) and centre-crops other images first.

## Training: Outlier Exposure

{chr(10).join(training)}

In-distribution and auxiliary outlier images go through the network in one forward pass (so batch normalisation
sees both); the OE term pushes the predictions on the outliers towards the uniform distribution.

## OOD detection results

{results_md}

## OOD score

{describe_ood_score(config)}

## Decision threshold

{threshold_md}

## How to use

```python
from PIL import Image
from oe_text.vision import OEImageClassifier  # registers "oe-image-classifier" with the Auto classes

detector = OEImageClassifier.from_pretrained("{load_id}")
detector.detect([Image.open("photo.png")])
# -> [{{"label": ..., "score": ..., "ood_score": ..., "is_ood": ...}}]
```

It also loads with `AutoModelForImageClassification.from_pretrained("{load_id}")` once `oe_text.vision` is imported
(no `trust_remote_code`); `detect` adds the OOD score and decision to the class prediction.

## Intended use and limitations

- Intended for flagging images a classifier was not trained for (other domains, noise, corrupted inputs) before
  trusting its prediction.
- OOD detection is measured on particular OOD test sets; images close to the training distribution (new classes of
  the same domain) are harder to detect than these sets suggest, and no score certifies that an image is
  in-distribution.
- The threshold keeps the stated fraction of in-distribution images only when deployment data resembles the
  calibration data; recalibrate after any shift. Scores are not calibrated probabilities of being OOD.

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
