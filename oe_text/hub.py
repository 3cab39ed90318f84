"""Hub-id resolution: one function decides whether an id is loaded from the real Hub or the offline mirror.

When the environment variable `OE_TEXT_MIRROR` names a folder laid out like the Hub
(`$OE_TEXT_MIRROR/datasets/<org>/<name>`, `$OE_TEXT_MIRROR/models/<org>/<name>`), every dataset, model and tokenizer
id the project loads is resolved to that folder; otherwise the id is returned unchanged and the real Hub is used.

It also holds the one rule for code shipped with a model folder or Hub repo (`auto_map` + `.py` files): every
`AutoTokenizer` / `AutoModel` load in oe-text passes `remote_code_kwargs(trust_remote_code)`, which is
`trust_remote_code=False` unless the caller explicitly opts in, so nothing from a downloaded artefact runs (and
transformers never prompts on stdin for it).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal


MIRROR_ENV_VAR = "OE_TEXT_MIRROR"
#: Seconds any one network operation of a Hub upload (connect, send, wait for the answer) may take.
DEFAULT_HUB_TIMEOUT = 60.0

RepoType = Literal["model", "dataset"]


_remote_code_warned = False


def remote_code_kwargs(trust_remote_code: bool = False, what: str = "model") -> dict[str, bool]:
    """The `trust_remote_code` argument of a transformers `from_pretrained` call, always explicit.

    `trust_remote_code=None` (transformers' default) prompts on stdin for custom code and reads the answer from the
    data being processed; `False` refuses such code (the library's own class is used when it has one, else it raises).
    Only an explicit `True` allows running it, and then a warning says so once per process, on stderr.

    Args:
        trust_remote_code (`bool`, *optional*, defaults to `False`): the user's explicit choice.
        what (`str`, *optional*): what is loaded, for the warning.

    Returns:
        `dict`: `{"trust_remote_code": bool}` to splat into `from_pretrained`.
    """
    if not isinstance(trust_remote_code, bool):
        raise TypeError(f"`trust_remote_code` must be True or False, got {trust_remote_code!r}.")
    global _remote_code_warned
    if trust_remote_code and not _remote_code_warned:
        _remote_code_warned = True
        print(
            f"oe-text: trust_remote_code=True: Python code shipped with the {what} (auto_map) may run on this "
            "machine. Use it only for folders and Hub repos you trust.",
            file=sys.stderr,
        )
    return {"trust_remote_code": trust_remote_code}


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
            f"{_not_mirrored(repo_id, repo_type, root)}. Unset {MIRROR_ENV_VAR} to load it from the Hugging Face Hub."
        )
    return str(folder)


def _not_mirrored(repo_id: str, repo_type: RepoType, root: Path) -> str:
    folder = root / ("datasets" if repo_type == "dataset" else "models") / repo_id
    return f"The {repo_type} '{repo_id}' is not in the offline mirror: no folder {folder} ({MIRROR_ENV_VAR}={root})"


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


def explain_model_load_error(name: str, err: OSError) -> OSError:
    """The error to raise when loading `name` (as passed to `from_pretrained`) failed with `err`.

    With `OE_TEXT_MIRROR` set, an id the mirror lacks is tried on the Hub (`resolve_model_path`); offline that fails
    with a bare "couldn't connect to huggingface.co". Then this returns a `MirrorMissError` naming the id, the mirror
    folder searched and the endpoint tried (with `err`'s message); otherwise `err` itself.
    """
    root = mirror_root()
    if root is None or os.path.exists(name) or is_mirrored(name, "model"):
        return err
    from huggingface_hub import constants

    return MirrorMissError(
        f"{_not_mirrored(name, 'model', root)}, and loading it from the Hub at {constants.ENDPOINT} failed: {err}"
    )


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


@contextlib.contextmanager
def hub_timeout(seconds: float | None = DEFAULT_HUB_TIMEOUT) -> Iterator[None]:
    """Give the `huggingface_hub` requests made inside the block a timeout, and turn a timeout into a clear error.

    `huggingface_hub` sends its requests through one shared HTTP client created without a timeout, so a server that
    accepts the connection and never answers blocks an upload forever. Inside this block that client's timeout
    (connect, read, write and pool, each) is `seconds`; it is restored on exit. The client is shared: other threads'
    Hub requests during the block get the same timeout.

    Args:
        seconds (`float`, *optional*, defaults to `DEFAULT_HUB_TIMEOUT`): the timeout, > 0; `None` leaves the
            client as it is (no timeout).

    Raises:
        `TimeoutError`: a request timed out; the message names the endpoint and the timeout.
    """
    if seconds is None:
        yield
        return
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
        raise ValueError(f"`timeout` must be a positive number of seconds or None, got {seconds!r}.")
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:  # huggingface_hub >= 1.5 ships its HTTP stack as `httpx2`, earlier 1.x as `httpx`
        import httpx2 as httpx
    except ImportError:
        import httpx

    client = get_session()
    previous = client.timeout
    client.timeout = httpx.Timeout(float(seconds))
    try:
        yield
    except httpx.TimeoutException as err:
        raise TimeoutError(
            f"The Hugging Face Hub at {constants.ENDPOINT} did not answer within {seconds:g} s "
            f"({type(err).__name__}: {err}). Check the network and HF_ENDPOINT, or pass a larger `timeout`."
        ) from err
    finally:
        client.timeout = previous
