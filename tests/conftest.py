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


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM cluster from ../shared/tools/local-slurm.sh, started if it is not running.

    Skipped where it cannot run (no script, not root, start failed). Several xdist workers may use it at once,
    so the start is serialised by a file lock and the cluster is left running at the end (stop it with
    ``bash ../shared/tools/local-slurm.sh stop``).
    """
    import shutil
    import subprocess

    from filelock import FileLock

    script = REPO.parent / "shared" / "tools" / "local-slurm.sh"
    if not script.is_file():
        pytest.skip(f"no SLURM test cluster: {script} not found")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM test cluster needs root")
    with FileLock("/tmp/genomics_lm-local-slurm.lock", timeout=900):
        res = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=900)
    if res.returncode != 0 or shutil.which("sbatch") is None:
        pytest.skip(f"local SLURM cluster did not start: {(res.stdout + res.stderr)[-500:]}")
    return script
