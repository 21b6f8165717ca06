"""genomics_lm.checkpoint: the record, safe loading (weights_only), format-1 upgrade, atomic export.

Mechanics on a tiny randomly initialised model (no training needed): what is written is what is read back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genomics_lm.checkpoint import (
    FORMAT,
    META_KEY,
    config_differences,
    load_pretrained,
    make_record,
    read_checkpoint,
    save_model,
)
from genomics_lm.errors import UserError
from genomics_lm.model import MaskedLM, ModelConfig
from genomics_lm.tokenizer import KmerTokenizer


def tiny(**kw) -> ModelConfig:
    base = dict(tokenizer=KmerTokenizer(3, 3), d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0,
                bigbird=dict(block_size=8, window_blocks=3, global_blocks=2, random_blocks=2, seed=5))
    base.update(kw)
    return ModelConfig(**base).validate()


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = tiny()
    model = MaskedLM(config).eval()
    path = save_model(model, make_record(config, "mlm", data={"source": {"sha256": "ab"}}), tmp_path / "m" / "x.pt")
    return path, model, config


def test_round_trip_same_logits_and_record(saved):
    path, model, config = saved
    loaded, config2, meta = load_pretrained(path)
    assert config2 == config and not loaded.training
    assert meta["format"] == FORMAT and meta["task"] == "mlm" and meta["data"]["source"]["sha256"] == "ab"
    assert meta["model_config"]["tokenizer"] == {"k": 3, "stride": 3, "vocab_size": 69}
    ids = torch.randint(5, 69, (2, 40))
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))


def test_reloaded_in_a_fresh_process_gives_the_same_logits(saved, tmp_path):
    """BigBird's random plan comes from the recorded seed: a new process rebuilds the same model exactly."""
    path, model, _ = saved
    ids = torch.randint(5, 69, (1, 64), generator=torch.Generator().manual_seed(1))
    torch.save(ids, tmp_path / "ids.pt")
    code = ("import sys, torch; from genomics_lm.checkpoint import load_pretrained; m, _, _ = load_pretrained(sys.argv[1]); "
            "ids = torch.load(sys.argv[2]); torch.save(m(ids).detach(), sys.argv[3])")
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "ids.pt"), str(tmp_path / "out.pt")],
                   check=True, timeout=120)
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "out.pt"), model(ids))


def test_expected_tokenizer_names_both_sides(saved):
    path = saved[0]
    with pytest.raises(UserError, match=r"^token store t/val.h5 has k=6 stride=6, checkpoint .*x.pt has k=3 stride=3$"):
        load_pretrained(path, expect=KmerTokenizer(6, 6), expect_name="token store t/val.h5")


def test_refuses_pickles_and_foreign_files(tmp_path):
    class Evil:  # unpickling this would run code: weights_only refuses it before anything runs
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    torch.save({META_KEY: {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="weights_only=True"):
        read_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not a genomics_lm checkpoint"):
        load_pretrained(tmp_path / "foreign.pt")
    torch.save({META_KEY: {"format": "other", "model_config": {}}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="unknown checkpoint format 'other'"):
        load_pretrained(tmp_path / "other.pt")
    torch.save({META_KEY: {"format": FORMAT, "format_version": 99, "model_config": {}}}, tmp_path / "new.pt")
    with pytest.raises(UserError, match="format_version 99 is newer"):
        load_pretrained(tmp_path / "new.pt")


def test_format_1_record_is_upgraded(saved, tmp_path):
    """A checkpoint written before the tokenizer record (flat k/stride, attn_seed, longformer_*) still loads."""
    path, model, config = saved
    v1 = {"k": 3, "stride": 3, "vocab_size": 69, "pad_id": 0, "d_model": 16, "n_layers": 2, "n_heads": 2,
          "d_ff": 32, "dropout": 0.0, "norm": "layernorm", "rope_base": 10000.0, "zero_init_residual": False,
          "gradient_checkpointing": False, "attention": "bigbird", "backend": "auto", "block_size": 8,
          "window_blocks": 3, "global_blocks": 2, "random_blocks": 2, "attn_seed": 5, "longformer_window": 512,
          "longformer_dilation": 1, "global_tokens": [0]}
    old = {META_KEY: {"format": "genomics_lm.mlm", "format_version": 1, "model_config": v1,
                      "tokenizer": {"k": 3, "stride": 3, "vocab_size": 69}},
           "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    torch.save(old, tmp_path / "v1.ckpt")
    loaded, config1, meta = load_pretrained(tmp_path / "v1.ckpt")
    assert meta["upgraded_from"] == 1
    assert config1.bigbird == config.bigbird and config1.tokenizer == config.tokenizer
    assert config1.longformer == {"window": 512, "global_tokens": [0], "dilation": 1, "block_size": 8}
    ids = torch.randint(5, 69, (1, 48))
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))


def test_truncated_file_and_atomic_write(saved, tmp_path):
    path = saved[0]
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot be read as a checkpoint"):
        load_pretrained(tmp_path / "cut.pt")

    class Boom(torch.nn.Module):
        def state_dict(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_model(Boom(), {}, tmp_path / "new" / "deep" / "y.pt")
    assert not (tmp_path / "new").exists()  # no half file, no folders left behind


def test_config_differences_ignores_runtime_fields():
    a, b = tiny().to_dict(), tiny(dropout=0.3, backend="blocked", d_model=32).to_dict()
    assert config_differences(a, b) == ["d_model: checkpoint 16 vs config 32"]
    c = tiny(bigbird=dict(block_size=8, window_blocks=3, global_blocks=2, random_blocks=2, seed=6)).to_dict()
    assert len(config_differences(a, c)) == 1 and "bigbird" in config_differences(a, c)[0]
