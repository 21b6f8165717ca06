"""Checkpoint loading at its edges: exact one-line messages, the format-1 defaults, weights that do not fit.

A tiny randomly initialised model (no training); each test well under a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genomics_lm.checkpoint import (
    FORMAT,
    META_KEY,
    _jsonable,
    _upgrade_v1_config,
    config_differences,
    load_pretrained,
    make_record,
    model_state,
    read_checkpoint,
    read_record,
    save_model,
)
from genomics_lm.errors import UserError
from genomics_lm.model import MaskedLM, ModelConfig
from genomics_lm.tokenizer import KmerTokenizer


def tiny(**kw) -> ModelConfig:
    base = dict(tokenizer=KmerTokenizer(3, 3), d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0,
                bigbird=dict(block_size=8, window_blocks=3, global_blocks=2, random_blocks=2, seed=5))
    base.update(kw)
    return ModelConfig(**base).validate()


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = tiny()
    model = MaskedLM(config).eval()
    return save_model(model, make_record(config, "mlm"), tmp_path / "x.pt"), model, config


def _message(fn, *args, **kw) -> str:
    with pytest.raises(UserError) as info:
        fn(*args, **kw)
    return str(info.value)


def test_jsonable_exact():
    assert _jsonable({"a": (1, Path("p/q")), 2: None, "f": 1.5, "b": True, "s": "x"}) == {
        "a": [1, "p/q"], "2": None, "f": 1.5, "b": True, "s": "x"}
    assert _jsonable([Path("a"), [None, 3]]) == ["a", [None, 3]]
    assert _jsonable(Path("z")) == "z"


V1_MINIMAL = {"k": 3, "stride": 3, "vocab_size": 69, "pad_id": 0, "d_model": 16}


def test_format_1_defaults_exact():
    """A format-1 config that recorded none of the attention fields gets the defaults of that format."""
    assert _upgrade_v1_config(V1_MINIMAL) == {
        "tokenizer": {"k": 3, "stride": 3},
        "bigbird": {"block_size": 64, "window_blocks": 3, "global_blocks": 2, "random_blocks": 3, "seed": 0},
        "longformer": {"window": 512, "global_tokens": [0], "dilation": 1, "block_size": 64},
        "d_model": 16,
    }
    # recorded values win over the defaults; block_size feeds both patterns; nothing else is dropped
    full = {"k": 4, "stride": 2, "block_size": 16, "window_blocks": 5, "global_blocks": 1, "random_blocks": 0,
            "attn_seed": 9, "longformer_window": 8, "global_tokens": (0, 3), "longformer_dilation": 2, "n_heads": 4}
    assert _upgrade_v1_config(full) == {
        "tokenizer": {"k": 4, "stride": 2},
        "bigbird": {"block_size": 16, "window_blocks": 5, "global_blocks": 1, "random_blocks": 0, "seed": 9},
        "longformer": {"window": 8, "global_tokens": [0, 3], "dilation": 2, "block_size": 16},
        "n_heads": 4,
    }
    assert "vocab_size" in V1_MINIMAL, "the caller's dict is not changed"


def _v1_record(**meta):
    config = tiny().to_dict()
    v1 = {"k": 3, "stride": 3, "vocab_size": 69, "pad_id": 0, "block_size": 8, "window_blocks": 3,
          "global_blocks": 2, "random_blocks": 2, "attn_seed": 5,
          **{k: v for k, v in config.items() if k not in ("tokenizer", "bigbird", "longformer")}}
    return {META_KEY: {"format": "genomics_lm.mlm", "model_config": v1, **meta}}


def test_format_1_record_is_upgraded_exact():
    """No format_version (format 1 wrote none at first), the old tokenizer/pattern copies dropped, task mlm."""
    config, meta = read_record(_v1_record(tokenizer={"k": 3}, attention_pattern={"kind": "bigbird"}), "old.ckpt")
    assert config == tiny(longformer={"window": 512, "global_tokens": [0], "dilation": 1, "block_size": 8})
    assert meta == {"format": FORMAT, "format_version": 2, "upgraded_from": 1, "task": "mlm",
                    "model_config": meta["model_config"]}
    _, meta = read_record(_v1_record(format_version=1, task="other"), "old.ckpt")
    assert meta["task"] == "other" and meta["upgraded_from"] == 1
    # a record that says format 1 but another version is not upgraded
    assert _message(read_record, _v1_record(format_version=2), "old.ckpt") == (
        "old.ckpt: unknown checkpoint format 'genomics_lm.mlm' (expected 'genomics_lm.checkpoint')")


def test_read_record_messages_exact():
    good = make_record(tiny(), "mlm")
    assert read_record({META_KEY: {k: v for k, v in good.items() if k != "format_version"}}, "a.pt")[0] == tiny()
    assert _message(read_record, {"state_dict": {}}, "a.pt") == (
        "a.pt: not a genomics_lm checkpoint (no 'genomics_lm' record with a model config)")
    assert _message(read_record, {META_KEY: {**good, "format_version": 3}}, "a.pt") == (
        "a.pt: checkpoint format_version 3 is newer than this genomics_lm reads (2); upgrade genomics_lm")
    bad = {**good, "model_config": {**good["model_config"], "d_model": 15}}
    msg = _message(read_record, {META_KEY: bad}, "a.pt")
    assert msg.startswith("a.pt: its model config is not valid for this genomics_lm: ")


def test_read_checkpoint_messages_exact(tmp_path):
    assert _message(read_checkpoint, tmp_path / "none.pt") == f"{tmp_path / 'none.pt'}: no such checkpoint"
    torch.save([1, 2], tmp_path / "list.pt")
    assert _message(read_checkpoint, tmp_path / "list.pt") == (
        f"{tmp_path / 'list.pt'}: not a checkpoint (a list, expected a dict)")
    (tmp_path / "empty.pt").write_bytes(b"")  # torch raises EOFError with an empty message: its name is shown
    assert _message(read_checkpoint, tmp_path / "empty.pt") == (
        f"{tmp_path / 'empty.pt'}: cannot be read as a checkpoint with weights_only=True (EOFError)")
    (tmp_path / "text.pt").write_bytes(b"not a torch file\nsecond line\n")  # a multi-line message: its first line
    msg = _message(read_checkpoint, tmp_path / "text.pt")
    assert msg.startswith(f"{tmp_path / 'text.pt'}: cannot be read as a checkpoint with weights_only=True "
                          "(Weights only load failed.")
    assert "\n" not in msg and msg.endswith(")")


def test_model_state_strips_the_lightning_prefix_exactly():
    w = torch.zeros(2)
    assert model_state({"state_dict": {"model.a.b": w, "model.c": w, "opt": w}}, "p") == {"a.b": w, "c": w}
    assert model_state({"state_dict": {"a": w}}, "p") == {"a": w}
    assert _message(model_state, {"weights": {}}, "p.pt") == "p.pt: checkpoint has no state_dict"


def test_weights_that_do_not_fit_are_named(saved, tmp_path):
    path, model, config = saved
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.ndim == 2)
    cases = {
        "missing": ({k: v for k, v in state.items() if k != name}, f"missing ['{name}'], unexpected [], shape [])"),
        "unexpected": ({**state, "extra.weight": torch.zeros(1)}, "missing [], unexpected ['extra.weight'], shape [])"),
    }
    for what, (st, names) in cases.items():
        torch.save({META_KEY: make_record(config, "mlm"), "state_dict": st}, tmp_path / f"{what}.pt")
        assert _message(load_pretrained, tmp_path / f"{what}.pt") == (
            f"{tmp_path / f'{what}.pt'}: weights do not fit the model config they came with ({names}")


def test_weights_of_another_shape_are_named(saved, tmp_path):
    """Found by mutation testing: load_state_dict(strict=False) raised torch's own multi-line RuntimeError on a
    size mismatch before the one-line message could be given; shapes are now checked first."""
    path, model, config = saved
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.ndim == 2)
    shape = tuple(state[name].shape)
    torch.save({META_KEY: make_record(config, "mlm"), "state_dict": {**state, name: torch.zeros(shape[0] + 1, shape[1])}},
               tmp_path / "shape.pt")
    msg = _message(load_pretrained, tmp_path / "shape.pt")
    assert msg.endswith(f"(missing [], unexpected [], shape ['{name}: checkpoint {(shape[0] + 1, shape[1])} "
                        f"vs model {shape}'])")


def test_at_most_five_names_per_kind(saved, tmp_path):
    path, model, config = saved
    state = dict(model.state_dict())
    extra = {f"extra{i}": torch.zeros(1) for i in range(7)}
    torch.save({META_KEY: make_record(config, "mlm"), "state_dict": {**state, **extra}}, tmp_path / "e.pt")
    assert _message(load_pretrained, tmp_path / "e.pt").endswith(
        f"(missing [], unexpected {[f'extra{i}' for i in range(5)]}, shape [])")
    names = list(state)[:7]
    torch.save({META_KEY: make_record(config, "mlm"), "state_dict": {k: v for k, v in state.items()
                                                                     if k not in names}}, tmp_path / "m.pt")
    assert _message(load_pretrained, tmp_path / "m.pt").endswith(f"(missing {names[:5]}, unexpected [], shape [])")


def test_load_pretrained_names_the_path_and_the_data_side(saved, tmp_path):
    path, _, _ = saved
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    assert _message(load_pretrained, tmp_path / "foreign.pt").startswith(f"{tmp_path / 'foreign.pt'}: not a genomics")
    assert _message(load_pretrained, path, expect=KmerTokenizer(6, 6)) == (
        f"the data has k=6 stride=6, checkpoint {path} has k=3 stride=3")
    model, config, meta = load_pretrained(path, expect=KmerTokenizer(3, 3))
    assert config == tiny() and meta["task"] == "mlm"


def test_config_differences_name_absent_keys():
    a = {"d_model": 16, "dropout": 0.1, "only_saved": 1}
    b = {"d_model": 16, "dropout": 0.2, "only_current": (1, 2)}
    assert config_differences(a, b) == ["only_current: checkpoint '<absent>' vs config (1, 2)",
                                        "only_saved: checkpoint 1 vs config '<absent>'"]
    assert config_differences({"x": None}, {}) == ["x: checkpoint None vs config '<absent>'"]
    assert config_differences({}, {"x": None}) == ["x: checkpoint '<absent>' vs config None"]


def test_load_pretrained_task_and_state_checks_exact(saved, tmp_path):
    path, model, config = saved
    state = model.state_dict()
    torch.save({META_KEY: make_record(config, "classify"), "state_dict": state}, tmp_path / "c.pt")
    assert _message(load_pretrained, tmp_path / "c.pt") == (
        f"{tmp_path / 'c.pt'}: a 'classify' checkpoint, not a pretrained masked LM")
    record = {k: v for k, v in make_record(config, "mlm").items() if k != "task"}  # no task: a masked LM
    torch.save({META_KEY: record, "state_dict": state}, tmp_path / "n.pt")
    assert load_pretrained(tmp_path / "n.pt")[1] == config
    torch.save({META_KEY: make_record(config, "mlm")}, tmp_path / "s.pt")
    assert _message(load_pretrained, tmp_path / "s.pt") == f"{tmp_path / 's.pt'}: checkpoint has no state_dict"


def test_load_pretrained_puts_the_weights_on_map_location(saved):
    model, _, _ = load_pretrained(saved[0], map_location="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"} and not model.training
