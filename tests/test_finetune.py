"""genomics_lm.finetune and genomics-lm finetune: the classification LightningModule, masked BCE, pretrained
encoders, and a short fixed-seed run on real E. coli promoters that must clearly beat chance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_matthews_corrcoef

from genomics_lm.checkpoint import load_classifier, make_record, save_model
from genomics_lm.cli import main as cli_main
from genomics_lm.errors import UserError
from genomics_lm.finetune import FinetuneModule
from genomics_lm.model import MaskedLM, ModelConfig
from genomics_lm.score import predict_proba, trim_padding
from genomics_lm.store import TokenStore
from genomics_lm.tokenizer import KmerTokenizer


def small_arch(k: int = 3, **kw) -> ModelConfig:
    base = dict(tokenizer=KmerTokenizer(k, k), d_model=32, n_layers=1, n_heads=2, d_ff=64, dropout=0.0,
                attention="dense")
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture(scope="module")
def sigma70(data_dir, tmp_path_factory):
    """The real E. coli sigma-70 promoter task (839 promoters, 3,000 genomic non-promoters, 81 bp), single bases
    (the tokenizer of configs/finetune/tiny.yaml)."""
    out = tmp_path_factory.mktemp("sigma70")
    d = data_dir / "promoters" / "ecoli_sigma70"
    assert cli_main(["make-task", "--out-dir", str(out), "--pos", str(d / "promoters.fa"),
                     "--neg", str(d / "non_promoters.fa"), "--k", "1", "--seed", "0"]) == 0
    return out


def test_masked_bce_ignores_unobserved_labels():
    torch.manual_seed(0)
    module = FinetuneModule(arch=small_arch(), label_names=["a", "b"], pos_weight=None)
    ids = torch.randint(5, 69, (3, 10))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids, dtype=torch.bool),
             "labels": torch.tensor([[1.0, float("nan")], [0.0, 1.0], [float("nan"), 0.0]])}
    logits, _, loss = module._step(batch)
    obs = [(0, 0, 1.0), (1, 0, 0.0), (1, 1, 1.0), (2, 1, 0.0)]
    expected = sum(-math.log(torch.sigmoid(logits[i, j]).item()) if y else -math.log(1 - torch.sigmoid(logits[i, j]).item())
                   for i, j, y in obs) / len(obs)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_validation_macro_skips_labels_without_both_classes():
    """A label with no observed val rows (or one class only) is left out of the macro, like evaluate; it used to
    crash torchmetrics' Multilabel metrics with ignore_index (IndexError)."""
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    from genomics_lm.finetune import IGNORE, MacroOverLabels

    g = torch.Generator().manual_seed(0)
    probs = torch.rand(40, 3, generator=g)
    target = (torch.rand(40, 3, generator=g) > 0.5).long()
    target[:, 1] = IGNORE  # label 1: never observed
    target[:20, 2] = IGNORE  # label 2: half observed ...
    target[20:, 2] = 1  # ... and positive only
    target[::7, 0] = IGNORE
    auroc, auprc = MacroOverLabels(binary_auroc), MacroOverLabels(binary_average_precision)
    for lo in range(0, 40, 16):  # several batches, like validation
        auroc.update(probs[lo:lo + 16], target[lo:lo + 16])
        auprc.update(probs[lo:lo + 16], target[lo:lo + 16])
    keep = target[:, 0] != IGNORE
    assert auroc.compute().item() == pytest.approx(binary_auroc(probs[keep, 0], target[keep, 0]).item())
    assert auprc.compute().item() == pytest.approx(binary_average_precision(probs[keep, 0], target[keep, 0]).item())
    two = MacroOverLabels(binary_auroc)
    target[::7, 0] = 0
    target[:20, 2] = 0
    two.update(probs, target)
    expected = (binary_auroc(probs[:, 0], target[:, 0]) + binary_auroc(probs[:, 2], target[:, 2])) / 2
    assert two.compute().item() == pytest.approx(expected.item())


def test_pretrained_encoder_is_loaded_and_checked(tmp_path):
    torch.manual_seed(0)
    arch = small_arch()
    mlm = MaskedLM(arch)
    path = save_model(mlm, make_record(arch, "mlm"), tmp_path / "pretrained.pt")
    module = FinetuneModule(arch=arch, label_names=["promoter"], pretrained=str(path))
    for key, value in mlm.encoder.state_dict().items():
        assert torch.equal(module.model.encoder.state_dict()[key], value), key
    with pytest.raises(UserError, match=r"fine-tuning config \(model.arch.tokenizer\) has k=4 stride=4, checkpoint "
                                        r".* has k=3 stride=3"):
        FinetuneModule(arch=small_arch(k=4), label_names=["promoter"], pretrained=str(path))
    with pytest.raises(UserError, match=r"pretrained.pt: pretrained encoder does not fit the model .*d_model=32"):
        FinetuneModule(arch=small_arch(d_model=64, n_heads=2), label_names=["promoter"], pretrained=str(path))
    # the attention pattern is configuration, not weights: fine-tuning may change it
    FinetuneModule(arch=small_arch(attention="longformer", longformer={"window": 8, "block_size": 8}),
                   label_names=["promoter"], pretrained=str(path))


def test_pretraining_checkpoint_is_not_a_classifier(tmp_path):
    arch = small_arch()
    path = save_model(MaskedLM(arch), make_record(arch, "mlm"), tmp_path / "pretrained.pt")
    with pytest.raises(UserError, match="a pretraining checkpoint .* fine-tune it first"):
        load_classifier(path)


def test_cli_errors_are_one_line(sigma70, tmp_path, capfd):
    args = ["finetune", "fit", "--config", "configs/finetune/tiny.yaml", "--trainer.default_root_dir", str(tmp_path / "r")]
    assert cli_main([*args, "--data.task_dir", str(tmp_path / "none")]) == 2
    assert capfd.readouterr().err.strip().endswith("'genomics-lm make-task --out-dir " + str(tmp_path / "none") + "')")
    assert cli_main([*args, "--data.task_dir", str(sigma70), "--model.arch.tokenizer.k", "4",
                     "--model.arch.tokenizer.stride", "4"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.endswith("train.h5 has k=1 stride=1, the model config (model.arch.tokenizer) has k=4 stride=4"), err
    assert len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_short_finetune_beats_chance_on_ecoli_promoters(sigma70, tmp_path):
    """Fixed seed, a small BigBird model from scratch, about a minute on 2 cores: test MCC well above 0 (chance).

    The held-out test split is scored through the exported finetuned.pt (load_classifier + predict_proba), the
    path that 'genomics-lm evaluate' and scoring take.
    """
    root = tmp_path / "run"
    args = ["finetune", "fit", "--config", "configs/finetune/tiny.yaml", "--data.task_dir", str(sigma70),
            "--trainer.default_root_dir", str(root), "--trainer.max_epochs", "4", "--trainer.enable_progress_bar",
            "false", "--model.arch.d_model", "64", "--model.arch.d_ff", "128", "--model.arch.n_layers", "1",
            "--model.arch.bigbird", "{block_size: 8, window_blocks: 3, global_blocks: 2, random_blocks: 1, seed: 0}",
            "--data.batch_size", "64", "--model.lr", "3e-3", "--model.warmup_steps", "20"]
    assert cli_main(args) == 0
    model, config, record = load_classifier(root / "finetuned.pt")
    assert record["label_names"] == ["label"] and config.attention == "bigbird"
    assert record["data"]["window_tokens"] == 81  # the task's row width: the default window of 'genomics-lm score'
    test = TokenStore(sigma70 / "test.h5")
    rows = [trim_padding(np.asarray(test[i])) for i in range(len(test))]
    probs = predict_proba(model, rows, add_cls=record["add_cls"])[:, 0]
    labels = np.asarray(test.h5["labels"][:, 0])
    mcc = binary_matthews_corrcoef(torch.as_tensor(probs), torch.as_tensor(labels).long()).item()
    assert mcc > 0.3, mcc


@pytest.mark.slow
def test_grid_script_fits_evaluates_and_compares(sigma70, tmp_path, pytestconfig):
    """scripts/finetune_grid.sh: one fit per attention type, both evaluations, one compare table; a rerun
    finds every output and fits nothing."""
    import os
    import shutil
    import subprocess
    import sys

    root = pytestconfig.rootpath
    exe = shutil.which("genomics-lm", path=os.path.dirname(sys.executable))
    out = tmp_path / "grid"
    cmd = ["bash", str(root / "scripts" / "finetune_grid.sh"), "--task", str(sigma70), "--out", str(out),
           "--attention", "dense longformer", "--seeds", "3", "--jobs", "2", "--name", "ecoli_sigma70", "--",
           "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--model.arch.d_model", "32",
           "--model.arch.d_ff", "64", "--model.arch.n_heads", "2", "--model.arch.n_layers", "1"]
    env = {**os.environ, "GENOMICS_LM": exe}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "done dense_scratch s3" in first.stdout and "done longformer_scratch s3" in first.stdout
    rows = [line.split("\t") for line in (out / "compare.tsv").read_text().splitlines()]
    # from both fits' metrics.json: one cached fit, the same values in both, so shown once
    assert rows[1][1] == "k-mer baseline" and rows[1][2] == "1"
    assert rows[1][-1] == "one fit, identical in all 2 evaluations"
    assert {r[1] for r in rows[2:6]} == {"dense scratch", "longformer scratch", "dense scratch +both strands",
                                         "longformer scratch +both strands"}
    assert {r[0] for r in rows[1:]} == {"ecoli_sigma70"} and rows[1][3] == "384"
    fitted = (out / "runs" / "dense_scratch" / "s3" / "finetuned.pt").stat().st_mtime_ns
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (out / "runs" / "dense_scratch" / "s3" / "finetuned.pt").stat().st_mtime_ns == fitted
