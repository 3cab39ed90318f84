"""Fixtures of the data-layer tests: a tiny offline mirror (see oe_data_fixtures.py)."""

from pathlib import Path

import datasets
import pytest
from oe_data_fixtures import build_fake_mirror


@pytest.fixture(scope="session")
def _fake_mirror_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fake_mirror")
    build_fake_mirror(root)
    return root


@pytest.fixture
def fake_mirror(_fake_mirror_root, tmp_path_factory, monkeypatch) -> Path:
    """OE_TEXT_MIRROR pointed at the tiny mirror; `datasets` caches kept out of ~/.cache for the session."""
    monkeypatch.setenv("OE_TEXT_MIRROR", str(_fake_mirror_root))
    cache = _fake_mirror_root.parent / "hf_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return _fake_mirror_root
