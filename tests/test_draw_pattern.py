"""``genomics-lm draw-pattern``: the pictures and patterns.json agree with the reference dense masks; one-line errors.

Fast (a few seconds): small lengths, the tiny configs' 2 layers x 4 heads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from genomics_lm.attention import make_pattern
from genomics_lm.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "finetune" / "tiny.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T = 300  # BigBird block 32: 10 blocks (the last one partial) > window + global + random: random blocks in play


def arch(path: Path = TINY) -> dict:
    return yaml.safe_load(path.read_text())["model"]["arch"]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    out = tmp_path_factory.mktemp("patterns") / "out"
    assert cli_main(["draw-pattern", "--config", str(TINY), "--length", str(T), "--out-dir", str(out)]) == 0
    return out, json.loads((out / "patterns.json").read_text())


def test_one_png_per_attention_type_and_the_json(drawn):
    out, doc = drawn
    a = arch()
    assert sorted(p.name for p in out.iterdir()) == ["pattern_bigbird.png", "pattern_dense.png",
                                                     "pattern_longformer.png", "patterns.json"]
    for name in ("bigbird", "longformer", "dense"):
        assert (out / f"pattern_{name}.png").read_bytes().startswith(PNG_MAGIC)
        rec = doc["patterns"][name]
        assert rec["png"] == f"pattern_{name}.png"
        assert [x["layer"] for x in rec["layers"]] == list(range(a["n_layers"]))
        assert all(len(x["heads"]) == a["n_heads"] for x in rec["layers"])
    assert doc["length"] == T and doc["n_heads"] == a["n_heads"] and doc["n_layers"] == a["n_layers"]
    assert doc["patterns"]["bigbird"]["pattern"] == {"kind": "bigbird", **a["bigbird"]}


def test_bigbird_fractions_are_the_reference_mask_per_layer_and_head(drawn):
    _, doc = drawn
    a = arch()
    pattern = make_pattern("bigbird", **a["bigbird"])
    got = doc["patterns"]["bigbird"]["layers"]
    masks = [pattern.dense_mask(T, a["n_heads"], layer).numpy() for layer in range(a["n_layers"])]
    for layer, mask in enumerate(masks):
        assert got[layer]["heads"] == pytest.approx([float(m.mean()) for m in mask], abs=1e-12)
        assert got[layer]["density"] == pytest.approx(pattern.density(T, a["n_heads"], layer), abs=1e-12)
    # the random blocks differ per head and layer (the case is not trivially the same panel everywhere)
    flat = [m for mask in masks for m in mask]
    assert any(not np.array_equal(flat[0], m) for m in flat[1:])
    assert not np.array_equal(masks[0][0], masks[1][0])
    assert 0 < min(f for x in got for f in x["heads"]) and max(f for x in got for f in x["heads"]) < 1


def test_longformer_fractions_are_band_plus_global_rows_and_columns(drawn):
    _, doc = drawn
    lf = arch()["longformer"]
    i, j = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
    mask = np.abs(i - j) <= lf["window"] // 2
    for g in lf["global_tokens"]:
        mask[g, :] = True
        mask[:, g] = True
    for layer in doc["patterns"]["longformer"]["layers"]:
        assert layer["heads"] == pytest.approx([mask.mean()] * len(layer["heads"]), abs=1e-12)


def test_dense_is_every_pair(drawn):
    _, doc = drawn
    assert all(f == 1.0 for x in doc["patterns"]["dense"]["layers"] for f in x["heads"])


def test_checkpoint_config_per_layer_windows_and_layer_choice(tmp_path, capsys):
    """A checkpoint's recorded config is read; a per-layer Longformer window gives each layer its own band."""
    import torch

    from genomics_lm.checkpoint import make_record, save_model
    from genomics_lm.model import ModelConfig, MultiLabelClassifier
    from genomics_lm.tokenizer import KmerTokenizer

    config = ModelConfig(tokenizer=KmerTokenizer(1, 1), d_model=16, n_layers=2, n_heads=2, d_ff=32,
                         attention="longformer", longformer={"window": [8, 40], "global_tokens": [0, 5],
                                                             "dilation": 1, "block_size": 16})
    torch.manual_seed(0)
    ckpt = save_model(MultiLabelClassifier(config, num_labels=1), make_record(config, "classify", label_names=["y"],
                      pooling="mean", add_cls=False), tmp_path / "m.pt")
    out = tmp_path / "out"
    assert cli_main(["draw-pattern", "--config", str(ckpt), "--attention", "longformer", "--length", "64",
                     "--layers", "1", "--out-dir", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    doc = json.loads((out / "patterns.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["pattern_longformer.png", "patterns.json"]
    (layer,) = doc["patterns"]["longformer"]["layers"]
    ref = make_pattern("longformer", window=(8, 40), global_tokens=(0, 5), block_size=16).dense_mask(64, 2, 1)
    assert layer["layer"] == 1 and layer["heads"] == pytest.approx([float(ref[0].float().mean())] * 2, abs=1e-12)
    i, j = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    band = (np.abs(i - j) <= 20) | np.isin(i, [0, 5]) | np.isin(j, [0, 5])
    assert layer["heads"][0] == pytest.approx(band.mean(), abs=1e-12)
    # again without --overwrite: refused, and with it: replaced
    assert cli_main(["draw-pattern", "--config", str(ckpt), "--attention", "longformer", "--length", "64",
                     "--out-dir", str(out)]) == 2
    assert "use --overwrite" in capsys.readouterr().err
    assert cli_main(["draw-pattern", "--config", str(ckpt), "--attention", "longformer", "--length", "64",
                     "--out-dir", str(out), "--overwrite"]) == 0


@pytest.mark.parametrize("options, message", [
    ({"--attention": ["bigbird", "sparse"]}, "--attention 'sparse': unknown attention type"),
    ({"--length": ["0"]}, "--length 0: must be at least 1 token"),
    ({"--length": ["4096"]}, "--length 4096: over 2048 tokens"),
    ({"--length": ["ten"]}, "--length 'ten': not an integer"),
    ({"--layers": ["2"]}, "--layers '2': the model has layers 0..1"),
    ({"--config": ["{tmp}/missing.yaml"]}, "missing.yaml: no such file"),
    ({"--config": ["{tmp}/noarch.yaml"]}, "noarch.yaml: no model.arch section"),
    ({"--config": ["{tmp}/bad.yaml"]}, "bad.yaml: not valid YAML"),
])
def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, capsys, options, message):
    (tmp_path / "noarch.yaml").write_text("trainer: {max_epochs: 1}\n")
    (tmp_path / "bad.yaml").write_text("model: {arch: [\n")
    opts = {"--config": [str(TINY)], "--length": ["128"], "--out-dir": [str(tmp_path / "out")], **options}
    argv = ["draw-pattern"] + [x for flag, values in opts.items() for x in (flag, *values)]
    assert cli_main([x.replace("{tmp}", str(tmp_path)) for x in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genomics-lm draw-pattern: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
