"""Hub-id resolution: one function decides whether an id is loaded from the real Hub or the offline mirror.

When the environment variable `OE_TEXT_MIRROR` names a folder laid out like the Hub
(`$OE_TEXT_MIRROR/datasets/<org>/<name>`, `$OE_TEXT_MIRROR/models/<org>/<name>`), every dataset, model and tokenizer
id the project loads is resolved to that folder; otherwise the id is returned unchanged and the real Hub is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal


MIRROR_ENV_VAR = "OE_TEXT_MIRROR"

RepoType = Literal["model", "dataset"]


class MirrorMissError(FileNotFoundError):
    """A Hub id was asked for while `OE_TEXT_MIRROR` is set, and the mirror does not hold it."""


def mirror_root() -> Path | None:
    """The mirror folder named by `OE_TEXT_MIRROR`, or `None` when the variable is unset or empty."""
    value = os.environ.get(MIRROR_ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def resolve_hub_id(repo_id: str | os.PathLike, repo_type: RepoType = "model") -> str:
    """Resolve a Hub id against the offline mirror, or return it unchanged for the real Hub.

    Args:
        repo_id (`str` or `os.PathLike`):
            A Hub id such as `"SetFit/sst2"` or `"sentence-transformers/all-MiniLM-L6-v2"`, or a local path. Local
            paths that exist are returned unchanged, mirror or not.
        repo_type (`str`, *optional*, defaults to `"model"`):
            `"model"` (models and tokenizers) or `"dataset"`.

    Returns:
        `str`: the folder in the mirror when `OE_TEXT_MIRROR` is set, else `repo_id` itself.

    Raises:
        `MirrorMissError`: `OE_TEXT_MIRROR` is set but holds no folder for `repo_id`; the message names the id and the
        folder searched.
    """
    if repo_type not in ("model", "dataset"):
        raise ValueError(f"`repo_type` must be 'model' or 'dataset', got {repo_type!r}.")
    repo_id = os.fspath(repo_id)
    if not repo_id:
        raise ValueError("`repo_id` must be a non-empty Hub id or path.")
    if os.path.exists(repo_id):
        return repo_id
    root = mirror_root()
    if root is None:
        return repo_id
    folder = root / ("datasets" if repo_type == "dataset" else "models") / repo_id
    if not folder.is_dir():
        raise MirrorMissError(
            f"The {repo_type} '{repo_id}' is not in the offline mirror: no folder {folder} "
            f"({MIRROR_ENV_VAR}={root}). Unset {MIRROR_ENV_VAR} to load it from the Hugging Face Hub."
        )
    return str(folder)


def is_mirrored(repo_id: str, repo_type: RepoType = "model") -> bool:
    """Whether `repo_id` would be loaded from the mirror (`OE_TEXT_MIRROR` set and holding it)."""
    root = mirror_root()
    sub = "datasets" if repo_type == "dataset" else "models"
    return root is not None and (root / sub / repo_id).is_dir()


def resolve_model_path(name: str | os.PathLike) -> str:
    """Where `from_pretrained` should load a detector or model from: an existing local path as it is, else the mirror's
    folder when `OE_TEXT_MIRROR` is set and holds the id, else the id itself for the real Hub (`HF_ENDPOINT`).

    Unlike `resolve_hub_id`, an id the mirror lacks is not an error: it is passed on to the Hub, so detectors pushed to
    a (test) Hub server load while a mirror is configured for datasets.
    """
    name = os.fspath(name)
    if mirror_root() is not None and not os.path.exists(name) and is_mirrored(name, "model"):
        return resolve_hub_id(name, "model")
    return name


def load_hub_dataset(repo_id: str, *args, revision: str | None = None, **kwargs):
    """`datasets.load_dataset` with `repo_id` resolved through the mirror.

    `revision` is only passed on to the real Hub: the mirror holds one revision per repo (for example `CogComp/trec`,
    whose data lives on the Hub's `refs/convert/parquet` revision, is mirrored as that export).
    """
    import datasets

    path = resolve_hub_id(repo_id, "dataset")
    if revision is not None and path == repo_id:
        kwargs["revision"] = revision
    return datasets.load_dataset(path, *args, **kwargs)
