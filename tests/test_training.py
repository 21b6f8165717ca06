"""genomics_lm.training: the AdamW parameter groups (no weight decay on biases and norm weights) and the
optimizer + schedule that MLMPretrainModule.configure_optimizers returns (no Trainer needed: total_steps set).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genomics_lm.model import MaskedLM, ModelConfig
from genomics_lm.pretrain import MLMPretrainModule
from genomics_lm.tokenizer import KmerTokenizer
from genomics_lm.training import adamw_groups, warmup_cosine


def tiny_config(norm: str = "layernorm") -> ModelConfig:
    return ModelConfig(tokenizer=KmerTokenizer(3, 3), d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0,
                       attention="dense", norm=norm)


def expected_groups(model: nn.Module) -> tuple[dict[int, str], dict[int, str]]:
    """By module type, independently of tensor shapes: Linear/Embedding weights decay; biases and every
    LayerNorm/RMSNorm parameter do not. {id(param): name} for each group; every parameter classified once."""
    decay, no_decay = {}, {}
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            name = f"{mname}.{pname}" if mname else pname
            if isinstance(module, (nn.Linear, nn.Embedding)) and pname == "weight":
                target = decay
            elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)) or pname.endswith("bias"):
                target = no_decay
            else:
                raise AssertionError(f"parameter {name} ({module.__class__.__name__}) is not classified by the test")
            assert id(p) not in decay and id(p) not in no_decay, f"{name} is registered twice"
            target[id(p)] = name
    return decay, no_decay


def check_groups(groups: list[dict], model: nn.Module, weight_decay: float) -> None:
    decay, no_decay = expected_groups(model)
    # the model's own inventory: norms and biases exist, the decoder is tied to the token embedding
    assert any(".norm1." in n for n in no_decay.values()) and "decoder_bias" in no_decay.values()
    assert any(n.endswith("qkv.bias") for n in no_decay.values())
    assert model.decoder_weight is model.encoder.tok_emb.weight and "encoder.tok_emb.weight" in decay.values()
    by_decay = {float(g["weight_decay"]): g for g in groups}
    assert len(by_decay) == len(groups) == 2, [g["weight_decay"] for g in groups]
    got_decay = [id(p) for p in by_decay[weight_decay]["params"]]
    got_no_decay = [id(p) for p in by_decay[0.0]["params"]]
    names = {**decay, **no_decay}
    assert len(got_decay) == len(set(got_decay)) and len(got_no_decay) == len(set(got_no_decay)), "a parameter twice"
    wrong = sorted(names.get(i, "?") for i in set(got_decay) - set(decay))
    assert not wrong, f"decayed but should not be: {wrong}"
    missing = sorted(names[i] for i in set(decay) - set(got_decay))
    assert not missing, f"not decayed but should be: {missing}"
    assert set(got_no_decay) == set(no_decay), sorted(names.get(i, "?") for i in set(got_no_decay) ^ set(no_decay))
    assert set(got_decay) | set(got_no_decay) == {id(p) for p in model.parameters()}  # none missing


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_adamw_groups_on_masked_lm(norm):
    model = MaskedLM(tiny_config(norm))
    check_groups(adamw_groups(model.named_parameters(), 0.05), model, 0.05)


def test_adamw_groups_tied_and_frozen_parameters():
    emb, head, norm = nn.Embedding(10, 4), nn.Linear(4, 10), nn.LayerNorm(4)
    head.weight = emb.weight  # tied
    frozen = nn.Linear(4, 4)
    frozen.requires_grad_(False)
    model = nn.ModuleDict({"emb": emb, "head": head, "norm": norm, "frozen": frozen})
    decay, no_decay = adamw_groups(model.named_parameters(), 0.1)
    assert [id(p) for p in decay["params"]] == [id(emb.weight)] and decay["weight_decay"] == 0.1
    assert {id(p) for p in no_decay["params"]} == {id(head.bias), id(norm.weight), id(norm.bias)}
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0
    torch.optim.AdamW([decay, no_decay])  # would raise if a parameter were in both groups


def test_configure_optimizers_groups_and_schedule():
    """The optimizer the LightningModule builds (not only the helper): groups, AdamW settings, per-step LR."""
    lr, total, warmup, floor = 2e-3, 10, 3, 0.1
    module = MLMPretrainModule(arch=tiny_config(), lr=lr, weight_decay=0.03, betas=(0.8, 0.95), eps=1e-7,
                               warmup_steps=warmup, min_lr_ratio=floor, total_steps=total)
    out = module.configure_optimizers()
    opt, sched = out["optimizer"], out["lr_scheduler"]
    assert isinstance(opt, torch.optim.AdamW)
    assert sched["interval"] == "step" and sched["frequency"] == 1
    check_groups(opt.param_groups, module.model, 0.03)
    # the module's torchmetrics hold no parameters: the optimizer covers exactly the model's
    assert {id(p) for p in module.parameters()} == {id(p) for p in module.model.parameters()}
    assert all(g["betas"] == (0.8, 0.95) and g["eps"] == 1e-7 for g in opt.param_groups)
    for step in range(total + 3):
        expected = lr * warmup_cosine(step, warmup, total, floor)
        assert all(g["lr"] == pytest.approx(expected, rel=1e-9) for g in opt.param_groups), step
        opt.step()
        sched["scheduler"].step()
    assert opt.param_groups[0]["lr"] == pytest.approx(lr * floor)
