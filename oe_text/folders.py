"""Detector folders: what `from_pretrained` expects in one, and what `save_pretrained` may replace in one.

`from_pretrained` on a local folder without `config.json` fails with a message naming the folder and the files a
saved detector has (transformers' own message points at a Hub URL built from the local path).

`save_pretrained` replaces only the detector's own weight files and model card, nothing else.

Saving a detector into a folder that already holds one must not leave the old weights behind: transformers prefers
`model.safetensors` to a sharded `model-0000x-of-0000y.safetensors` + index, so an old single file left beside new
shards would silently load instead of them. Saving must not destroy what the user wrote either: a README.md is
replaced only when it is a model card oe-text wrote (its metadata carries the `oe-text` tag).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from transformers.utils import logging


logger = logging.get_logger(__name__)

#: Weight files of a transformers model (safetensors or PyTorch pickle, single or sharded, with their index).
WEIGHT_FILE_PATTERN = re.compile(r"(model|pytorch_model)(-\d{5}-of-\d{5})?\.(safetensors|bin)(\.index\.json)?")
#: The metadata tag that marks a README.md as a model card written by oe-text.
CARD_TAG = "oe-text"


def check_detector_folder(folder: str | os.PathLike, subfolder: str | None = None) -> None:
    """Raise `FileNotFoundError` naming `folder` and what is expected when it holds no `config.json`."""
    path = Path(folder) / (subfolder or "")
    if not (path / "config.json").is_file():
        present = sorted(p.name for p in path.iterdir())[:10] if path.is_dir() else []
        raise FileNotFoundError(
            f"{path} is not a saved detector: it has no config.json (it holds {present or 'nothing'}). Expected the "
            "folder written by `save_pretrained` or `oe-text train` (`<output_dir>/detector`): config.json, "
            "model.safetensors and the tokenizer files."
        )


def remove_stale_weights(folder: str | os.PathLike) -> list[str]:
    """Delete the model weight files in `folder` (before new ones are saved there); returns their names.

    Only files matching `WEIGHT_FILE_PATTERN` directly in `folder` are removed: `model.safetensors`,
    `model-00001-of-00002.safetensors`, `model.safetensors.index.json` and their `pytorch_model*.bin` counterparts.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = sorted(p.name for p in folder.iterdir() if p.is_file() and WEIGHT_FILE_PATTERN.fullmatch(p.name))
    for name in removed:
        (folder / name).unlink()
    if removed:
        logger.info(f"Removed the previous weight files {removed} from {folder} before saving the new ones.")
    return removed


def is_own_model_card(path: str | os.PathLike) -> bool:
    """Whether `path` is absent or a model card oe-text wrote (YAML metadata whose `tags` include `oe-text`)."""
    path = Path(path)
    if not path.exists():
        return True
    from huggingface_hub import metadata_load

    try:
        metadata = metadata_load(path) or {}
    except Exception:  # unreadable or not YAML front matter: not a card we wrote
        return False
    tags = metadata.get("tags") or []
    return isinstance(tags, list) and CARD_TAG in tags


def may_write_model_card(folder: str | os.PathLike, overwrite: bool = False) -> bool:
    """Whether `save_pretrained` may write README.md in `folder`; warns when a user's own README.md is kept."""
    readme = Path(folder) / "README.md"
    if overwrite or is_own_model_card(readme):
        return True
    logger.warning(
        f"{readme} was not written by oe-text (no '{CARD_TAG}' tag in its metadata); it is kept and the detector's "
        "model card is not written. Pass `overwrite_readme=True` to replace it, or save into another folder."
    )
    return False
