"""``genomics-lm bench finetune``: the help, the option checks, and a tiny smoke run on the real 70 bp promoters."""

from __future__ import annotations

import json

import pytest


def test_bench_finetune_help_is_plain_text_and_documents_every_option():
    from genomics_lm.cli.bench import BENCHES
    from genomics_lm.cli.bench_finetune import build_parser

    assert BENCHES["finetune"][0] == "genomics_lm.cli.bench_finetune"
    parser = build_parser()
    assert parser.prog == "genomics-lm bench finetune"
    text = parser.format_help()
    assert "``" not in text and ":func:" not in text and ":mod:" not in text and "(default: None)" not in text
    for action in parser._actions:
        assert action.help, action.option_strings
    for option in ("--lengths", "--attentions", "--steps", "--batch-size", "--threads", "--json"):
        assert option in text


@pytest.mark.parametrize("argv, words", [
    (["--attentions", "bigbird,sparse"], ["--attentions", "sparse"]),
    (["--lengths", "70,x"], ["--lengths"]),
    (["--lengths", "10"], ["--lengths", "30"]),
    (["--steps", "0"], ["--steps"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--baseline-rows", "100,100"], ["--baseline-rows"]),
])
def test_bench_finetune_bad_options_are_one_line_errors(argv, words):
    from genomics_lm.cli.bench_finetune import main
    from genomics_lm.errors import UserError

    with pytest.raises(UserError) as err:
        main(argv)
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)


def test_bench_finetune_smoke_70bp_two_attentions(data_dir, tmp_path, capsys):
    """One length (70 bp = 70 single-base tokens: BigBird(32) is complete there), two attentions, 2 timed steps."""
    from genomics_lm.cli.bench_finetune import main

    out = tmp_path / "bench.json"
    rc = main(["--lengths", "70", "--attentions", "bigbird,dense", "--steps", "2", "--warmup", "1",
               "--eval-rows", "64", "--eval-repeats", "1", "--baseline-rows", "64,32,32", "--pause", "0",
               "--data-dir", str(data_dir), "--in-process", "--json", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    rows = [line.split() for line in table.splitlines() if line.lstrip().startswith("70 bp")]
    assert [r[3] for r in rows[:2]] == ["bigbird", "dense"]  # length, "bp", tokens, attention, ...
    for r in rows[:2]:
        assert r[2] == "70" and r[4] == "yes" and r[5] == "sdpa"
        assert float(r[6]) > 0 and float(r[8]) > 0  # train ex/s, eval seq/s
    assert rows[1][7] == "1.00x" and rows[1][9] == "1.00x"  # dense against itself
    assert "k-mer baseline" in table and len(rows) == 3  # the baseline's row for 70 bp

    result = json.loads(out.read_text())
    recs = result["records"]
    assert [(r["attention"], r["length_bp"], r["complete"]) for r in recs] == [("bigbird", 70, True),
                                                                              ("dense", 70, True)]
    for r in recs:
        assert len(r["train_times"]) == 2 and len(r["eval_times"]) == 1
        assert r["train_examples_per_s"] > 0 and r["eval_seqs_per_s"] > 0 and r["peak_rss_mb"] > 0
    (b,) = result["baseline"]
    assert b["rows"] == {"train": 64, "val": 32, "eval": 32} and b["seconds"] > 0 and b["fits"] == 4
    assert result["inputs"][0]["labels"] == "real" and result["inputs"][0]["tokens"] == 70


def test_bench_finetune_complete_flags_follow_the_token_length():
    """What the table reports as complete? at 70 bp / 300 bp / 1 kb (single-base tokens) under tiny.yaml: BigBird
    (blocks of 32, 3 window + 2 global + 2 random) covers 70 tokens, Longformer's band of 96 does not."""
    from genomics_lm.bench.finetune import default_config, read_model_config
    from genomics_lm.model import ModelConfig

    arch = read_model_config(default_config())["arch"]
    expect = {"bigbird": (True, False, False), "longformer": (False, False, False), "dense": (True, True, True)}
    for att, flags in expect.items():
        config = ModelConfig.from_dict({**arch, "attention": att})
        pattern = config.attention_pattern()
        got = tuple(all(pattern.is_complete(T, config.n_heads, layer) for layer in range(config.n_layers))
                    for T in (70, 300, 1000))
        assert got == flags, att
