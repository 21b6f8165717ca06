"""genomics_lm.pretrain and genomics-lm pretrain (genomics_lm.cli.pretrain): the MLM LightningModule, the
shared training machinery, checkpoints written by training, the CLI, resume, SIGTERM, DDP, learning.

Real data: token stores of the E. coli genome (../shared/data) made with ``tokenize_genome``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
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
from genomics_lm.data import IGNORE_INDEX, MLMDataModule, mlm_baselines
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
    args = ["validate", "--config", str(TINY_YAML), "--data.data_dir", str(k6), "--data.seq_len", "128",
            "--trainer.default_root_dir", str(tmp_path / "val"), "--trainer.limit_val_batches", "2",
            "--trainer.enable_progress_bar", "false", "--ckpt_path", str(root / "checkpoints" / "best.ckpt")]
    assert cli_main(["pretrain", *args]) == 0


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


def _env():
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    return env


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_then_resume_matches_uninterrupted_run(k6, tmp_path, signum):
    """SIGTERM (and SIGUSR1 outside SLURM) mid-run saves last.ckpt; --resume reaches the same step and weights."""
    steps = 10
    extra = ("--checkpoint.every_n_train_steps", "2", "--trainer.val_check_interval", "5",
             "--trainer.limit_val_batches", "1")
    ref = tmp_path / "ref"
    assert cli_main(["pretrain", *cli_args(k6, ref, steps, *extra)]) == 0

    run = tmp_path / "run"
    proc = subprocess.Popen(CLI + cli_args(k6, run, steps, *extra), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 143, out[-3000:]
    assert "stopped by a signal" in out
    stopped_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < stopped_at < steps, out[-3000:]

    assert cli_main(["pretrain", *cli_args(k6, run, steps, *extra), "--resume"]) == 0
    a = torch.load(ref / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
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
    root = tmp_path / "ddp"
    args = cli_args(k6, root, 4, "--trainer.strategy", "ddp", "--trainer.devices", "2",
                    "--trainer.accelerator", "cpu")
    res = subprocess.run(CLI + args, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    text = res.stdout + res.stderr
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in text and "GLOBAL_RANK: 1, MEMBER: 2/2" in text
    ckpt = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    meta = ckpt["genomics_lm"]
    assert meta["world_size"] == 2 and meta["ranks"] == [0, 1]  # both ranks joined an all_gather
    assert (root / "pretrained.pt").is_file()


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
