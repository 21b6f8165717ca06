"""Files: atomic writes, output checks, checksums, the cache and data folders, per-process handles.

The one home of the project's file conventions:

* :func:`atomic_write` - write under a temporary name in the target's folder and rename when complete, so a
  killed job never leaves a file that looks whole (token stores, checkpoints, FASTA cache copies, tables).
* :func:`check_output_path` - refuse an existing output unless ``overwrite`` (one-line :class:`UserError`).
* :func:`made_parents` - create missing parent folders and remove them again if the write fails.
* :func:`default_cache_dir` / :func:`default_data_dir` - ``$GENOMICS_LM_CACHE`` and ``$GENOMICS_LM_DATA``.
* :class:`PerProcess` - a handle (h5py file, pyfaidx FASTA) opened lazily once per process and never
  pickled, so objects holding one can be handed to DataLoader workers and DDP ranks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from genomics_lm.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_cache_dir() -> Path:
    """``$GENOMICS_LM_CACHE``, else ``$XDG_CACHE_HOME/genomics_lm``, else ``~/.cache/genomics_lm``."""
    env = os.environ.get("GENOMICS_LM_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genomics_lm"


def default_data_dir() -> Path:
    """The real-data folder: ``$GENOMICS_LM_DATA``, else ``../shared/data`` beside the repository (absolute)."""
    env = os.environ.get("GENOMICS_LM_DATA")
    return Path(env).resolve() if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (as stored, i.e. of the compressed file for .gz)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``, or an output path that is a folder (creates nothing)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: output is a directory")
    if path.exists() and not overwrite:
        raise UserError(f"{path}: output exists (use --overwrite to replace it)")
    return path


def tmp_name(path: Path) -> Path:
    """The temporary name a file is written under before the rename: ``.NAME.tmp-PID`` in the same folder."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _missing_parents(path: Path) -> list[Path]:
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing  # deepest first


def remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (another output landed there) or already gone
            break


@contextlib.contextmanager
def made_parents(path: str | os.PathLike) -> Iterator[list[Path]]:
    """Create the missing parent folders of ``path``; on an exception remove those that are still empty."""
    path = Path(path)
    missing = _missing_parents(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise UserError(f"{path.parent}: is a file, not a folder (cannot write {path.name} there)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{path}: a parent of this path is a file, not a folder") from None
    try:
        yield missing
    except BaseException:
        remove_if_empty(missing)
        raise


def read_json(path: str | os.PathLike, what: str, hint: str) -> Any:
    """The parsed JSON file at ``path``; a missing file or bad JSON is a one-line :class:`UserError` naming the
    file: ``"PATH: no such file (HINT)"`` / ``"PATH: not WHAT (the parser's message)"``."""
    import json

    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"{p}: no such file ({hint})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{p}: not {what} ({exc})") from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block completes.

    On an exception the temporary file is deleted, parent folders this call created are removed again, and
    nothing is left at ``path``::

        with atomic_write(out) as tmp:
            torch.save(obj, tmp)
    """
    path = Path(path)
    with made_parents(path):
        tmp = tmp_name(path)
        try:
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class PerProcess:
    """A handle opened lazily by ``opener()`` once per process; dropped (not pickled) when its owner is pickled.

    ``get()`` returns the handle, opening it on first use in this process (a DataLoader worker or DDP rank
    opens its own); ``close()`` closes it if this process opened it.
    """

    def __init__(self, opener: Callable[[], Any]):
        self._opener = opener
        self._obj: Any = None
        self._pid: int | None = None

    def get(self) -> Any:
        if self._obj is None or self._pid != os.getpid():
            self._obj = self._opener()
            self._pid = os.getpid()
        return self._obj

    def close(self) -> None:
        if self._obj is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._obj.close()
        self._obj, self._pid = None, None

    def __getstate__(self) -> dict[str, Any]:
        return {"_opener": self._opener, "_obj": None, "_pid": None}
