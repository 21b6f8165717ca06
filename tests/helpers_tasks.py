"""Shared by tests/test_peaks.py and tests/test_genome_tasks.py: run make-task in-process, read a task folder."""

from __future__ import annotations

import json
from pathlib import Path

import h5py

from genomics_lm.cli import main as cli

SPLITS = ("train", "val", "test")


def run(args, capsys):
    """``genomics-lm make-task ARGS`` in-process: (exit status, stdout, stderr)."""
    rc = cli(["make-task", *map(str, args)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def load(out: Path) -> dict:
    """Every split of a task folder: tokens, labels, coordinates (strand as str), sequences and the attributes."""
    res = {}
    for s in SPLITS:
        with h5py.File(out / f"{s}.h5", "r") as f:
            res[s] = {"tokens": f["tokens"][:], "labels": f["labels"][:], "seqid": [x.decode() for x in f["seqid"][:]],
                      "start": f["start"][:], "end": f["end"][:], "strand": [x.decode() for x in f["strand"][:]],
                      "seq": [x.decode() for x in f["sequence"][:]], "config": json.loads(f.attrs["config"]),
                      "source": json.loads(f.attrs["source"]), "label_names": json.loads(f.attrs["label_names"])}
    return res
