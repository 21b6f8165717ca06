"""Shared fixtures: the real-data directory (configurable) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """Real data: $GENOMICS_LM_DATA, else ../shared/data beside the repository (one helper: the package's)."""
    from genomics_lm.files import default_data_dir

    return default_data_dir()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "genomes").is_dir():
        pytest.fail(f"real data not found at {root}: set GENOMICS_LM_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session")
def genomes(data_dir) -> Path:
    return data_dir / "genomes"


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread avoids paying a thread wake-up per op on a busy 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def ecoli_stores(genomes, tmp_path_factory):
    """Factory: ``ecoli_stores(name, k, stride, window_tokens)`` -> folder with train/val/test.h5 of E. coli."""
    from genomics_lm.tokenize import tokenize_genome

    def make(name, k, stride, window_tokens):
        out = tmp_path_factory.mktemp(name)
        outputs = {s: out / f"{s}.h5" for s in ("train", "val", "test")}
        tokenize_genome(genomes / "ecoli_k12_mg1655.fna.gz", outputs, k=k, stride=stride,
                        window_tokens=window_tokens, progress=False, cache_dir=out / "cache")
        return out

    return make


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decompressed FASTA copies and .fai indexes of read-only folders go to a per-run cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GENOMICS_LM_CACHE", str(tmp_path_factory.mktemp("glm_cache")))
    yield
    mp.undo()


FAKE_GPUS = 2  # of the local SLURM test cluster


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM cluster from ../shared/tools/local-slurm.sh, started if it is not running.

    Skipped where it cannot run (no script, not root, start failed). Several xdist workers may use it at once,
    so the start is serialised by a file lock and the cluster is left running at the end (stop it with
    ``bash ../shared/tools/local-slurm.sh stop``). It advertises ``FAKE_GPUS`` device-less GPUs (gres), so rules
    that request GPUs are submitted with the GPU syntax and scheduled, while they compute on the CPU.
    """
    import shutil
    import subprocess
    import tempfile

    from filelock import FileLock

    script = REPO.parent / "shared" / "tools" / "local-slurm.sh"
    if not script.is_file():
        pytest.skip(f"no SLURM test cluster: {script} not found")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM test cluster needs root")
    with FileLock(os.path.join(tempfile.gettempdir(), "genomics_lm-local-slurm.lock"), timeout=900):
        res = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=900,
                             env=dict(os.environ, FAKE_GPUS=str(FAKE_GPUS)))
    if res.returncode != 0 or shutil.which("sbatch") is None:
        pytest.skip(f"local SLURM cluster did not start: {(res.stdout + res.stderr)[-500:]}")
    return script
