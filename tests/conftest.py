"""Shared fixtures: the real-data directory (configurable) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """Real data: $GENOMICS_LM_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("GENOMICS_LM_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "genomes").is_dir():
        pytest.fail(f"real data not found at {root}: set GENOMICS_LM_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session")
def genomes(data_dir) -> Path:
    return data_dir / "genomes"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decompressed FASTA copies and .fai indexes of read-only folders go to a per-run cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GENOMICS_LM_CACHE", str(tmp_path_factory.mktemp("glm_cache")))
    yield
    mp.undo()
