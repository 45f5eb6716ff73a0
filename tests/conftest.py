"""Shared fixtures: tiny seeded datasets generated in code."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 synthetic 64x64 scenes in the folder format (images/, masks/, classes.yaml)."""
    from pointseg.data import make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path_factory.mktemp("synthetic") / "data", n_images=20, size=64, seed=3
    )


@pytest.fixture(scope="session")
def dubai_root() -> Path:
    """The real Dubai set beside the project; tests that use it skip when it is absent."""
    root = SHARED_DATA / "dubai-aerial"
    if not (root / "images").is_dir():
        pytest.skip(f"real data not found at {root}")
    return root
