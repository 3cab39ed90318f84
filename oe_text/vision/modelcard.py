"""Model cards for image OOD detectors (`OEImageClassifier`), from the provenance and decision rule in the config.

The card is the text detectors' template (`oe_text.modelcard.render_detector_card`): results, budget, OOD score,
decision rule and citation are shared; only the modality's parts (architecture, preprocessing, usage, limitations)
are given here.
"""

from __future__ import annotations

from huggingface_hub import ModelCard

from ..modelcard import _fmt, render_detector_card


CARD_TAGS = ("oe-text", "outlier-exposure", "ood-detection", "image-classification")

IMAGE_LIMITATIONS = [
    "Intended for flagging images a classifier was not trained for (other domains, noise, corrupted inputs) before "
    "trusting its prediction.",
    "OOD detection is measured on particular OOD test sets; images close to the training distribution (new classes "
    "of the same domain) are harder to detect than these sets suggest, and no score certifies that an image is "
    "in-distribution.",
    "The threshold keeps the stated fraction of in-distribution images only when deployment data resembles the "
    "calibration data; recalibrate after any shift. Scores are not calibrated probabilities of being OOD.",
]


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

    Covers the architecture and preprocessing, the in-distribution and auxiliary datasets, λ, the OE loss and the
    training budget, the OOD results (per OOD set and mean, with metric definitions; also as model-index metadata),
    the OOD score, the decision rule, install and usage, limitations and the paper's citation. Metadata tags:
    `oe-text`, `outlier-exposure`, `ood-detection`, `image-classification`.

    Args:
        config (`OEImageConfig`): the detector's config; provenance is read from `config.oe`.
        repo_id (`str`, *optional*): the Hub id the card is for, used in the usage snippet.
        tags (`list[str]`, *optional*): extra tags.

    Returns:
        `huggingface_hub.ModelCard`.
    """
    load_id = repo_id or "path/or/repo-id"
    channels = "grayscale" if config.num_channels == 1 else "RGB"
    model_lines = [
        f"**Architecture:** {_architecture(config)}.",
        f"**Initial weights:** {_fmt(config.base_model_name, 'random initialisation (trained from scratch)')}",
        f"**Inputs:** {channels} {config.image_size}x{config.image_size} images, scaled to [0, 1] and normalised with "
        f"mean `{[round(v, 4) for v in config.image_mean]}` and std `{[round(v, 4) for v in config.image_std]}`; "
        "`detect` converts the channels, resizes (shorter side) and centre-crops other images first.",
    ]
    usage_code = f"""
from PIL import Image
from oe_text.vision import OEImageClassifier  # registers "oe-image-classifier" with the Auto classes

detector = OEImageClassifier.from_pretrained("{load_id}")
detector.detect([Image.open("photo.png")])
# -> [{{"label": ..., "score": ..., "ood_score": ..., "is_ood": ...}}]
"""
    return render_detector_card(
        config,
        modality="image",
        model_lines=model_lines,
        usage_code=usage_code,
        usage_note=(
            f'It also loads with `AutoModelForImageClassification.from_pretrained("{load_id}")` once '
            "`oe_text.vision` is imported (no `trust_remote_code`); `detect` adds the OOD score and decision to the "
            "class prediction. Install the image extra: `pip install oe-text[vision]`."
        ),
        limitations=IMAGE_LIMITATIONS,
        training_note=(
            "In-distribution and auxiliary outlier images go through the network in one forward pass (so batch "
            "normalisation sees both); the OE term pushes the predictions on the outliers towards the uniform "
            "distribution."
        ),
        recalibrate="Recalibrate it with `detector.calibrate_threshold(images, tpr=...)` on validation images from "
        "your deployment.",
        card_tags=CARD_TAGS,
        repo_id=repo_id,
        tags=tags,
        base_model=None,
        load_id=load_id,
    )
