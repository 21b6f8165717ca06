"""genomics_lm.pretrain and genomics-lm pretrain (genomics_lm.cli.pretrain): the MLM LightningModule, the
shared training machinery, checkpoints written by training, the CLI, resume, SIGTERM, DDP, learning.

Real data: token stores of the E. coli genome (../shared/data) made with ``tokenize_genome``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from genomics_lm.cli import main as cli_main
from genomics_lm.data import IGNORE_INDEX, EpochSeededSampler, MLMDataModule, mlm_baselines
from genomics_lm.errors import UserError
from genomics_lm.checkpoint import export_pretrained, load_pretrained
from genomics_lm.model import ModelConfig
from genomics_lm.pretrain import MLMPretrainModule
from genomics_lm.store import TokenStore
from genomics_lm.tokenizer import KmerTokenizer
from genomics_lm.training import find_resume_checkpoint, warmup_cosine

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "configs" / "pretrain" / "tiny.yaml"


@pytest.fixture(scope="module")
def k6(ecoli_stores):
    return ecoli_stores("lit_k6", 6, 6, 256)


@pytest.fixture(scope="module")
def k3(ecoli_stores):
    return ecoli_stores("lit_k3", 3, 3, 512)


def small_arch(k: int = 6, **kw) -> ModelConfig:
    base = dict(tokenizer=KmerTokenizer(k, k), d_model=32, n_layers=1, n_heads=2, d_ff=64, dropout=0.0,
                attention="bigbird", bigbird=dict(block_size=16, window_blocks=3, global_blocks=2, random_blocks=1),
                longformer=dict(window=32, global_tokens=[0]))
    base.update(kw)
    return ModelConfig(**base)


# tiny.yaml with a very small model and short runs (CLI tests); every value is a command-line override
def cli_args(data_dir, root, steps=6, *extra):
    return [
        "fit", "--config", str(TINY_YAML), "--data.data_dir", str(data_dir), "--trainer.default_root_dir", str(root),
        "--trainer.max_steps", str(steps), "--trainer.val_check_interval", "3", "--trainer.limit_val_batches", "2",
        "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--model.arch.tokenizer.k", "6", "--model.arch.tokenizer.stride", "6", "--model.arch.d_model", "32",
        "--model.arch.n_layers", "1", "--model.arch.n_heads", "2", "--model.arch.d_ff", "64",
        "--model.arch.bigbird.block_size", "16", "--model.arch.bigbird.random_blocks", "1",
        "--model.arch.longformer.block_size", "16",
        "--model.warmup_steps", "2", "--data.seq_len", "128", "--data.batch_size", "4", *extra,
    ]


def read_metrics(root: Path) -> list[dict]:
    """The run's one metrics file (appended on resume)."""
    assert not list(root.glob("csv/version_*")), "metrics scattered over version folders"
    with open(root / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------------
# units
# ---------------------------------------------------------------------------------------------------


def test_masked_head_matches_full_forward(k6):
    torch.manual_seed(0)
    module = MLMPretrainModule(arch=small_arch(), lr=1e-3).eval()
    dm = MLMDataModule(data_dir=str(k6), seq_len=128, batch_size=3)
    batch = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        logits, target = module.masked_logits(batch)
        full = module(batch["input_ids"])  # (B, T, V)
    sel = batch["labels"] != IGNORE_INDEX
    assert torch.allclose(logits, full[sel], atol=1e-5)
    assert torch.equal(target, batch["labels"][sel])
    with torch.no_grad():
        h = module.model.encoder(batch["input_ids"])
        assert torch.allclose(module.model.head(h), full, atol=1e-5)


def test_warmup_cosine_schedule():
    f = [warmup_cosine(s, 10, 110, 0.1) for s in range(130)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[60] == pytest.approx(0.55)
    assert f[110] == pytest.approx(0.1) and f[129] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))


def test_hparams_are_plain_and_module_rebuilds_from_them():
    module = MLMPretrainModule(arch=small_arch(attention="longformer"), lr=3e-4)
    hp = dict(module.hparams)
    json.dumps(hp)  # plain JSON-able
    again = MLMPretrainModule(**hp)
    assert again.arch == module.arch


# ---------------------------------------------------------------------------------------------------
# a short in-process fit: checkpoints, weights_only, load_pretrained, resume of another shape
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(k6, tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    pl.seed_everything(0)
    module = MLMPretrainModule(arch=small_arch(), lr=1e-3, warmup_steps=2)
    dm = MLMDataModule(data_dir=str(k6), seq_len=128, batch_size=4)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=root / "checkpoints", filename="best", monitor="val/loss",
                                        save_last=True, enable_version_counter=False)
    trainer = pl.Trainer(max_steps=6, val_check_interval=3, limit_val_batches=2, default_root_dir=root,
                         logger=False, callbacks=[ckpt], enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, gradient_clip_val=1.0)
    trainer.fit(module, dm)
    return root, module, dm


def test_checkpoints_load_with_weights_only_and_carry_meta(fitted):
    root, module, _ = fitted
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = torch.load(root / "checkpoints" / name, map_location="cpu", weights_only=True)
        meta = ckpt["genomics_lm"]
        json.dumps(meta)
        assert meta["format"] == "genomics_lm.checkpoint" and meta["format_version"] == 2 and meta["task"] == "mlm"
        assert meta["model_config"]["tokenizer"] == {"k": 6, "stride": 6, "vocab_size": 4101}
        assert meta["model_config"] == module.arch.to_dict()
        assert "tokenizer" not in meta and "k" not in meta["data"]  # the tokenizer is stored once, in model_config
        assert meta["model_config"]["bigbird"]["block_size"] == 16 and meta["data"]["source"]["sha256"]
        assert meta["ranks"] == [0] and meta["world_size"] == 1
        json.dumps(ckpt["hyper_parameters"])
    assert torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_load_pretrained_rebuilds_the_model(fitted, tmp_path):
    root, module, dm = fitted
    model, config, meta = load_pretrained(root / "checkpoints" / "last.ckpt", expect=KmerTokenizer(6, 6))
    assert config == module.arch and not model.training
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        assert torch.allclose(model(batch["input_ids"]), module.eval()(batch["input_ids"]), atol=1e-5)
    out = export_pretrained(root / "checkpoints" / "last.ckpt", tmp_path / "pretrained.pt")
    m2, c2, meta2 = load_pretrained(out)
    assert c2 == config and meta2["exported_from"].endswith("last.ckpt")
    assert out.stat().st_size < (root / "checkpoints" / "last.ckpt").stat().st_size
    with pytest.raises(UserError, match=r"tokens/val.h5 has k=4 stride=4, checkpoint .* has k=6 stride=6"):
        load_pretrained(out, expect=KmerTokenizer(4, 4), expect_name="token store tokens/val.h5")


def test_load_pretrained_bad_files(fitted, tmp_path):
    root = fitted[0]
    with pytest.raises(UserError, match="no such checkpoint"):
        load_pretrained(tmp_path / "nope.ckpt")
    data = (root / "checkpoints" / "last.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot be read as a checkpoint"):
        load_pretrained(tmp_path / "cut.ckpt")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(UserError, match="cannot be read as a checkpoint"):
        load_pretrained(tmp_path / "empty.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(UserError, match="not a genomics_lm checkpoint"):
        load_pretrained(tmp_path / "foreign.ckpt")
    torch.save({"genomics_lm": {"model_config": {}}, "obj": Path("x")}, tmp_path / "pickled.ckpt")  # not weights_only
    with pytest.raises(UserError, match="weights_only=True"):
        load_pretrained(tmp_path / "pickled.ckpt")


def test_resume_with_another_model_shape_is_refused(fitted):
    root, _, _ = fitted
    module = MLMPretrainModule(arch=small_arch(d_model=48))
    dm = MLMDataModule(data_dir=str(fitted[2].data_dir), seq_len=128, batch_size=4)
    trainer = pl.Trainer(max_steps=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    with pytest.raises(UserError, match=r"d_model: checkpoint 32 vs config 48"):
        trainer.fit(module, dm, ckpt_path=str(root / "checkpoints" / "last.ckpt"))


def test_model_and_store_tokenizers_must_agree(k6):
    module = MLMPretrainModule(arch=small_arch(k=4))
    dm = MLMDataModule(data_dir=str(k6), seq_len=128, batch_size=4)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    with pytest.raises(UserError, match=r"train.h5 has k=6 stride=6, the model config has k=4 stride=4"):
        trainer.fit(module, dm)


# ---------------------------------------------------------------------------------------------------
# the command line (in process)
# ---------------------------------------------------------------------------------------------------


def test_cli_fit_writes_logs_config_checkpoints_export(k6, tmp_path, capfd):
    root = tmp_path / "run"
    assert cli_main(["pretrain", *cli_args(k6, root, 6, "--model.arch.attention", "longformer")]) == 0
    out, err = capfd.readouterr()
    for chatter in ("GPU available", "TPU available", "HPU available", "Tip:", "srun", "Seed set", "| Name"):
        assert chatter not in out + err, (chatter, out + err)
    assert "genomics-lm pretrain: fit longformer (k=6 stride=6" in err
    assert (root / "checkpoints" / "best.ckpt").is_file() and (root / "checkpoints" / "last.ckpt").is_file()
    cfg = yaml.safe_load((root / "csv" / "config.yaml").read_text())  # the resolved config beside the metrics
    assert cfg["model"]["arch"]["attention"] == "longformer" and cfg["model"]["arch"]["tokenizer"]["k"] == 6
    assert cfg["data"]["data_dir"] == str(k6) and cfg["trainer"]["max_steps"] == 6
    rows = read_metrics(root)
    assert any(r.get("val/acc") for r in rows) and any(r.get("train/loss") for r in rows)
    assert any(r.get("train/lr") for r in rows)
    if importlib.util.find_spec("tensorboard") is not None:  # TensorBoard logs when it is installed
        assert list((root / "tb").glob("version_0/events.out.tfevents.*"))
    model, config, meta = load_pretrained(root / "pretrained.pt")
    assert config.attention == "longformer" and config.attention_pattern().to_dict()["window"] == 96  # tiny.yaml
    # validate a checkpoint without its model config: the model comes from the checkpoint
    best = root / "checkpoints" / "best.ckpt"
    args = ["validate", "--config", str(TINY_YAML), "--data.data_dir", str(k6), "--data.seq_len", "128",
            "--data.batch_size", "4", "--trainer.default_root_dir", str(tmp_path / "val"),
            "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false", "--ckpt_path", str(best)]
    assert cli_main(["pretrain", *args]) == 0
    printed = capfd.readouterr().out
    rows = [r for r in read_metrics(tmp_path / "val") if r.get("val/loss")]
    assert len(rows) == 1, rows
    val_loss = float(rows[0]["val/loss"])
    shown = re.search(r"val/loss\W+([-+0-9.eE]+)", printed)  # Lightning's results table
    assert math.isfinite(val_loss) and shown and float(shown.group(1)) == pytest.approx(val_loss), printed
    # the same validation batches as the fit's validations: the loss the best checkpoint was chosen by
    state = torch.load(best, weights_only=True)
    (monitored,) = [v for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert monitored["monitor"] == "val/loss"
    assert val_loss == pytest.approx(float(monitored["best_model_score"]), rel=1e-6)
    fit_val = [float(r["val/loss"]) for r in read_metrics(root) if r.get("val/loss")]
    assert len(fit_val) == 2 and val_loss == pytest.approx(min(fit_val), rel=1e-6)
    # and a recomputation outside Lightning: masked-token cross-entropy over the first 2 validation batches
    # (val_crops_per_row 2 as in tiny.yaml), averaged over targets
    model, _, _ = load_pretrained(best)
    dm = MLMDataModule(data_dir=str(k6), seq_len=128, batch_size=4, val_crops_per_row=2)
    total, n = 0.0, 0
    with torch.no_grad():
        for batch, _ in zip(dm.val_dataloader(), range(2)):
            logits = model(batch["input_ids"])
            total += float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(),
                                                             reduction="sum"))
            n += int((batch["labels"] != IGNORE_INDEX).sum())
    # the mean over targets, not over batches (the batches have different target counts: 2e-5 apart here)
    assert val_loss == pytest.approx(total / n, rel=2e-6)


@pytest.mark.parametrize("extra, message", [
    (["--trainer.max_steps", "-5"], "trainer.max_steps must be a positive number of optimizer steps (or -1 for "
                                    "max_epochs), got -5"),
    (["--config", "BAD_YAML"], "BAD_YAML: unknown key 'model.arch.dmodel'; did you mean model.arch.d_model?"),
    (["--model.arch.dmodel", "3"], "unknown option --model.arch.dmodel; did you mean --model.arch.d_model?"),
    (["--model.arch.attention", "bigbirb"], "model.arch.attention: Expected a typing.Literal['bigbird', "
                                            "'longformer', 'dense']. Got value: bigbirb"),
    (["--resume", "--ckpt_path", "x.ckpt"], "give --resume (continue this run folder) or --ckpt_path FILE, not both"),
])
def test_cli_config_mistakes_are_one_line(k6, tmp_path, capfd, extra, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  arch:\n    dmodel: 64\n")
    extra = [str(bad) if a == "BAD_YAML" else a for a in extra]
    message = message.replace("BAD_YAML", str(bad))
    assert cli_main(["pretrain", *cli_args(k6, tmp_path / "run", 2, *extra)]) == 2
    err = capfd.readouterr().err.strip()
    assert err == f"genomics-lm pretrain: error: {message}"
    assert not (tmp_path / "run").exists()


def test_cli_subcommand_is_required_and_help_fits_the_subcommand(capsys):
    assert cli_main(["pretrain", "--config", str(TINY_YAML)]) == 2  # used to start a full fit silently
    assert "choose a subcommand first: 'genomics-lm pretrain fit ...'" in capsys.readouterr().err
    assert cli_main(["pretrain", "fit", "--help"]) == 0
    fit_help = capsys.readouterr().out
    assert cli_main(["pretrain", "validate", "--help"]) == 0
    validate_help = capsys.readouterr().out
    assert len(fit_help.splitlines()) < 350, len(fit_help.splitlines())  # was 822 lines of every Lightning option
    assert "--trainer.max_steps" in fit_help and "--trainer.fast_dev_run" not in fit_help
    assert cli_main(["pretrain", "fit", "--help-all"]) == 0  # everything, as jsonargparse prints it
    assert "--trainer.fast_dev_run" in capsys.readouterr().out
    # with --config, the defaults shown are the config's (tiny.yaml: d_model 128, not the class default 256)
    assert cli_main(["pretrain", "fit", "--config", str(TINY_YAML), "--help"]) == 0
    assert "hidden width. (type: int, default: 128)" in capsys.readouterr().out
    assert "--resume {true" in fit_help and "--export {true" in fit_help
    assert "--resume {true" not in validate_help and "--export {true" not in validate_help  # fit-only options
    # the model's options are documented and list their choices
    assert "{bigbird,longformer,dense}" in fit_help and "{auto,flex,blocked,reference}" in fit_help
    assert "k-mer length, 1..8" in fit_help


def test_cli_user_errors(k6, tmp_path, capsys):
    args = cli_args(k6, tmp_path / "a", 2, "--model.arch.tokenizer.k", "4", "--model.arch.tokenizer.stride", "4")
    assert cli_main(["pretrain", *args]) == 2
    err = capsys.readouterr().err
    assert "train.h5 has k=6 stride=6, the model config (model.arch.tokenizer) has k=4 stride=4" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert cli_main(["pretrain", *cli_args(tmp_path / "nodata", tmp_path / "b", 2)]) == 2
    assert "no such token store" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # no run folders, no empty logs


# ---------------------------------------------------------------------------------------------------
# SIGTERM mid-run, then --resume: same final step and same weights as an uninterrupted run
# ---------------------------------------------------------------------------------------------------

CLI = [sys.executable, "-m", "genomics_lm", "pretrain"]
TESTS = Path(__file__).resolve().parent


def _env():
    """Quiet warnings; tests/ importable (helpers_callbacks, for --trainer.callbacks) in the subprocess."""
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH", "")) if p)
    return env


def callbacks_arg(name: str, **init_args) -> tuple[str, str]:
    """``--trainer.callbacks`` with one callback of tests/helpers_callbacks.py."""
    return "--trainer.callbacks", json.dumps([{"class_path": f"helpers_callbacks.{name}", "init_args": init_args}])


SIGNAL_STEPS = 10
SIGNAL_EXTRA = ("--checkpoint.every_n_train_steps", "2", "--trainer.val_check_interval", "5",
                "--trainer.limit_val_batches", "1")


@pytest.fixture(scope="module")
def uninterrupted(k6, tmp_path_factory):
    """The reference run of the signal tests (same config, never stopped): its last.ckpt."""
    ref = tmp_path_factory.mktemp("uninterrupted")
    assert cli_main(["pretrain", *cli_args(k6, ref, SIGNAL_STEPS, *SIGNAL_EXTRA)]) == 0
    return torch.load(ref / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_then_resume_matches_uninterrupted_run(k6, tmp_path, signum, uninterrupted):
    """SIGTERM (and SIGUSR1 outside SLURM) mid-run saves last.ckpt; --resume reaches the same step and weights.

    The run signals itself after optimizer step 3 (a test callback), so the stop is at a known step whatever the
    machine's speed: Lightning finishes that batch and stops before the next; the checkpoint is at step 3 (not a
    step of ModelCheckpoint, which saves every 2)."""
    stop, steps = 3, SIGNAL_STEPS
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    res = subprocess.run(CLI + cli_args(k6, run, steps, *SIGNAL_EXTRA,
                                        *callbacks_arg("SignalAtStep", step=stop, signame=signum.name)),
                         env=_env(), capture_output=True, text=True, timeout=240)
    out = res.stdout + res.stderr
    assert res.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert f"genomics-lm pretrain: stopped by a signal at step {stop}; saved {last}" in out, out[-3000:]
    stopped = torch.load(last, weights_only=True)
    assert stopped["global_step"] == stop
    assert stopped["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == stop
    assert not (run / "pretrained.pt").exists()  # an interrupted fit exports nothing
    steps_logged = [int(r["step"]) for r in read_metrics(run) if r.get("train/loss")]
    assert steps_logged == list(range(stop)), steps_logged

    assert cli_main(["pretrain", *cli_args(k6, run, steps, *SIGNAL_EXTRA), "--resume"]) == 0
    a, b = uninterrupted, torch.load(last, weights_only=True)
    assert a["global_step"] == b["global_step"] == steps
    loader_a = a["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    loader_b = b["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader_a == loader_b  # same epoch and position in the data order
    # same data order, optimizer state and schedule: the same weights (dropout is 0 in this config)
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-5), key
    assert find_resume_checkpoint(run) == str(last)
    # one metrics file for the interrupted and resumed run: every training step logged once, in order
    steps_logged = [int(r["step"]) for r in read_metrics(run) if r.get("train/loss")]
    assert steps_logged == sorted(set(steps_logged)) == list(range(steps)), steps_logged


def _scontrol(job_id: str) -> dict:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


@pytest.mark.slow
def test_slurm_sigusr1_saves_requeues_and_resumes(k6, tmp_path, slurm_cluster):
    """Under a real SLURM job, SIGUSR1 (what ``sbatch --signal=USR1@T`` sends before the time limit) makes
    Lightning's SLURMEnvironment save hpc_ckpt_N.ckpt and requeue the job; the requeued job (same command,
    --resume) continues from it and reaches the requested step count."""
    steps = 40
    run = tmp_path / "run"
    args = cli_args(k6, run, steps, "--checkpoint.every_n_train_steps", "2", "--trainer.val_check_interval", "20",
                    "--trainer.limit_val_batches", "1", "--resume")
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n" + f"exec {' '.join(map(str, CLI + args))}\n")
    log = tmp_path / "job.out"
    sub = subprocess.run(["sbatch", "--parsable", "--requeue", "--open-mode=append", f"--output={log}",
                          "--ntasks=1", "--cpus-per-task=1", "--time=15", f"--chdir={tmp_path}", str(script)],
                         capture_output=True, text=True, env=_env())
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip().split(";")[0]
    try:
        last = run / "checkpoints" / "last.ckpt"
        deadline = time.time() + 300
        while not last.exists() and time.time() < deadline:  # training has started and saved once
            time.sleep(0.2)
        assert last.exists(), log.read_text()[-3000:] if log.exists() else "no job output"
        subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True)
        deadline = time.time() + 600  # a requeued job waits about 2 minutes before it runs again
        info = _scontrol(job)
        while info.get("JobState") not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") and time.time() < deadline:
            time.sleep(2)
            info = _scontrol(job)
        text = log.read_text()
        assert info.get("JobState") == "COMPLETED", (info, text[-4000:])
        assert int(info["Restarts"]) >= 1, info  # it was requeued
        assert "Requeued SLURM job" in text, text[-4000:]
        assert list(run.glob("hpc_ckpt_*.ckpt")), "SLURMEnvironment saved no hpc checkpoint"
        # the requeue also sends SIGTERM, which saves last.ckpt: --resume takes the newer of the two
        assert "genomics-lm pretrain: resuming from" in text, text[-4000:]
        assert torch.load(last, weights_only=True)["global_step"] == steps
    finally:
        subprocess.run(["scancel", job], capture_output=True)


# ---------------------------------------------------------------------------------------------------
# DDP: two CPU processes (gloo), launched by Lightning from the command line
# ---------------------------------------------------------------------------------------------------


def test_ddp_two_cpu_processes(k6, tmp_path):
    """Two ranks train on disjoint shares of the data: each rank's batches are exactly the first samples of its
    EpochSeededSampler shard (rank r of 2), and no sample is seen by both."""
    from helpers_callbacks import sample_fingerprint

    root = tmp_path / "ddp"
    steps, batch = 4, 4
    args = cli_args(k6, root, steps, "--trainer.strategy", "ddp", "--trainer.devices", "2",
                    "--trainer.accelerator", "cpu", *callbacks_arg("RecordBatches", prefix=str(tmp_path / "seen")))
    res = subprocess.run(CLI + args, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    text = res.stdout + res.stderr
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in text and "GLOBAL_RANK: 1, MEMBER: 2/2" in text
    ckpt = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == steps
    meta = ckpt["genomics_lm"]
    assert meta["world_size"] == 2 and meta["ranks"] == [0, 1]  # both ranks joined an all_gather
    assert (root / "pretrained.pt").is_file()
    # what each rank trained on, against the samples its shard of the epoch-0 order holds (the run's data config)
    data_cfg = yaml.safe_load((root / "csv" / "config.yaml").read_text())["data"]
    dm = MLMDataModule(**data_cfg)
    dm.setup("fit")
    ds = dm.train_ds
    keys, seen = [], []
    for rank in (0, 1):
        record = json.loads((tmp_path / f"seen.rank{rank}.json").read_text())
        assert record["rank"] == rank and record["world_size"] == 2
        sampler = EpochSeededSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=data_cfg["seed"])
        sampler.set_epoch(0)
        mine = list(sampler)[: steps * batch]
        items = [ds[key] for key in mine]
        assert record["samples"] == [sample_fingerprint(x["input_ids"], x["labels"]) for x in items], rank
        keys.append({i for _, i in mine})
        seen.append(set(record["samples"]))
    assert len(keys[0]) == len(keys[1]) == steps * batch and not keys[0] & keys[1]
    assert not seen[0] & seen[1]  # no sample trained on twice
    full = [{i for _, i in EpochSeededSampler(ds, 2, r, seed=data_cfg["seed"])} for r in (0, 1)]
    assert full[0] | full[1] == set(range(len(ds))) and len(full[0] & full[1]) == len(ds) % 2  # the epoch, split


# ---------------------------------------------------------------------------------------------------
# evidence that it learns (real data, fixed seed)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_model_learns_ecoli(k3, tmp_path):
    """A short run beats the context-free baselines on held-out E. coli regions.

    3-mers (stride 3): the tiny config's model at width 64, 256-token crops; after 250 steps the validation loss is
    below the entropy of the training 3-mers and the accuracy above the most frequent 3-mer's.
    """
    root = tmp_path / "learn"
    args = [
        "fit", "--config", str(TINY_YAML), "--data.data_dir", str(k3), "--trainer.default_root_dir", str(root),
        "--model.arch.tokenizer.k", "3", "--model.arch.tokenizer.stride", "3", "--model.arch.d_model", "64",
        "--model.arch.d_ff", "256", "--trainer.max_steps", "250", "--trainer.val_check_interval", "125",
        "--trainer.limit_val_batches", "12", "--data.seq_len", "256", "--data.batch_size", "8",
        "--data.val_crops_per_row", "2", "--model.lr", "3e-3", "--trainer.enable_progress_bar", "false",
    ]
    assert cli_main(["pretrain", *args]) == 0
    base = mlm_baselines(TokenStore(k3 / "train.h5"), TokenStore(k3 / "val.h5"))
    val = [r for r in read_metrics(root) if r.get("val/loss")]
    final = val[-1]
    loss, acc = float(final["val/loss"]), float(final["val/acc"])
    assert loss < base["unigram_entropy"], (loss, base)
    assert acc > base["const_acc_val"], (acc, base)
    assert float(val[0]["val/loss"]) > loss  # it improves over the run
