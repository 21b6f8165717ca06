"""``flex`` backend: torch FlexAttention with a BlockMask built directly from block indices.

The BlockMask comes from :meth:`BlockLayout.kv_blocks` through ``BlockMask.from_kv_blocks`` (``kv_num_blocks`` +
``kv_indices``); a mask function is never evaluated on all T x T points. Key blocks where every pair is allowed
are passed as *full* blocks (no mask evaluation); the rest are *partial* blocks whose exact token-level rule is a
small ``mask_mod`` (key padding, Longformer's band and global tokens). The sequence is padded explicitly to a
block multiple and the padding masked.

Caches: the compiled ``flex_attention`` (one per process) and the block index tensors per
(pattern, T, H, layer, device); with a key padding mask the per-batch full/partial split is rebuilt per call
(cheap: block level).

FlexAttention has no backward on CPU in torch 2.13: asking ``flex`` for gradients on CPU raises.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from genomics_lm.attention.layout import BlockLayout
from genomics_lm.attention.patterns import AttentionPattern

_COMPILED = None


def compiled_flex():
    """``torch.compile(flex_attention)``, built once per process."""
    global _COMPILED
    if _COMPILED is None:
        from torch.nn.attention.flex_attention import flex_attention

        import torch._dynamo

        # one static-shape specialisation per (T, B, H) seen; the default limit of 8 would silently fall back
        # to an unfused implementation that materialises the T x T scores
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        _COMPILED = torch.compile(flex_attention, dynamic=False)
    return _COMPILED


# FlexAttention's CPU kernel gives wrong results for block sizes that are not a multiple of 16 (measured with
# torch 2.13: 8 and 24 fail, 16/32/48/64 pass). Its Triton (CUDA) kernels need the BlockMask block to be
# divisible by their tiles (BLOCK_M / BLOCK_N up to 128 in the default configs). Pattern blocks are therefore
# grouped into kernel blocks of f = kernel_block / block_size pattern blocks when needed, and the exact
# pattern-block rule moves into the mask_mod (a lookup in the block-level table, never a T x T evaluation).
_KERNEL_MULTIPLE = {"cpu": 16, "cuda": 128}


def kernel_block_size(block_size: int, device: str = "cpu") -> int:
    """Smallest multiple of ``block_size`` that the device's flex kernel accepts (16 on CPU, 128 on CUDA)."""
    m = _KERNEL_MULTIPLE.get(torch.device(device).type, 128)
    return block_size * (m // math.gcd(block_size, m))


@functools.lru_cache(maxsize=128)
def _block_tables(pattern: AttentionPattern, T: int, H: int, layer: int, device: str):
    """Kernel-block tables of a layout.

    Returns (layout, kernel block size kb, listed (H, nk, nk), full (H, nk, nk), fine_allowed (H, nb, nb) or
    None when kb == block_size, is_global (nk * kb,)).
    """
    L = pattern.layout(T, H, layer)
    nb, b = L.num_blocks, L.block_size
    kb = kernel_block_size(b, device)
    f = kb // b
    nk = -(-nb // f)
    kv_num, kv_idx = L.kv_blocks(H)
    blk = torch.arange(nb)
    listed = torch.zeros(H, nb, nb, dtype=torch.bool)
    listed.scatter_(2, kv_idx.long(), blk[None, None, :] < kv_num[..., None].long())
    is_global = torch.zeros(nk * kb, dtype=torch.bool)
    is_global[L.global_tokens] = True
    if L.band is None:
        full = listed.clone()  # whole blocks (BigBird)
    else:
        hw, dil = L.band
        i, j = blk[:, None], blk[None, :]
        far = torch.maximum((i * b - (j * b + b - 1)).abs(), (i * b + b - 1 - j * b).abs())
        inside = (far <= hw) if dil == 1 else torch.zeros(nb, nb, dtype=torch.bool)
        gq = is_global[: nb * b].view(nb, b).all(1)
        inside = inside | gq[:, None] | gq[None, :]
        full = listed & inside[None]
    fine = None
    if f > 1:  # group f x f pattern blocks into one kernel block
        fine = listed
        grid = torch.zeros(H, nk * f, nk * f, dtype=torch.bool)
        grid[:, :nb, :nb] = listed
        listed = grid.view(H, nk, f, nk, f).any(4).any(2)
        grid = torch.ones(H, nk * f, nk * f, dtype=torch.bool)  # padded blocks: masked by key validity
        grid[:, :nb, :nb] = full
        full = grid.view(H, nk, f, nk, f).all(4).all(2)
        fine = F.pad(fine, (0, nk * f - nb, 0, nk * f - nb)).to(device)  # (H, nk*f, nk*f)
    return L, kb, listed.to(device), full.to(device), fine, is_global.to(device)


def _to_kv(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, nq, nk) bool -> kv_num (B, H, nq) int32, kv_idx (B, H, nq, nk) int32 (True blocks first)."""
    nk = mask.shape[-1]
    ar = torch.arange(nk, device=mask.device)
    order = torch.argsort((~mask).to(torch.int32) * nk + ar, dim=-1, stable=True)
    return mask.sum(-1).to(torch.int32), order.to(torch.int32)


_MASK_CACHE: dict = {}
_MASK_CACHE_SIZE = 64


def build_block_mask(pattern: AttentionPattern, T: int, B: int, H: int, layer: int, device,
                     key_padding_mask: torch.Tensor | None):
    """The BlockMask of ``pattern`` at ``T`` tokens for a batch (key padding optional) and the padded length.

    Without key padding the BlockMask is cached per (pattern, T, B, H, layer, device).
    """
    if key_padding_mask is None:
        key = (pattern, T, B, H, layer, str(device))
        hit = _MASK_CACHE.get(key)
        if hit is None:
            if len(_MASK_CACHE) >= _MASK_CACHE_SIZE:
                _MASK_CACHE.pop(next(iter(_MASK_CACHE)))
            hit = _MASK_CACHE[key] = _build_block_mask(pattern, T, B, H, layer, device, None)
        return hit
    return _build_block_mask(pattern, T, B, H, layer, device, key_padding_mask)


def _build_block_mask(pattern, T, B, H, layer, device, key_padding_mask):
    from torch.nn.attention.flex_attention import BlockMask

    L, kb, listed, full, fine, is_global = _block_tables(pattern, T, H, layer, str(device))
    b = L.block_size
    Tp = is_global.numel()
    valid = torch.ones(B, Tp, dtype=torch.bool, device=device)
    valid[:, T:] = False
    if key_padding_mask is not None:
        valid[:, :T] = key_padding_mask
    kv_all_valid = valid.view(B, -1, kb).all(-1)  # (B, nk)
    full_b = full[None] & kv_all_valid[:, None, None, :]  # (B, H, nq, nk)
    partial_b = listed[None] & ~full_b
    kv_num, kv_idx = _to_kv(partial_b)
    full_num, full_idx = _to_kv(full_b)

    if L.band is None:
        if fine is None:
            def mask_mod(bi, h, q_idx, kv_idx):
                return valid[bi, kv_idx]
        else:
            def mask_mod(bi, h, q_idx, kv_idx):
                return fine[h, q_idx // b, kv_idx // b] & valid[bi, kv_idx]
    else:
        hw, dil = L.band

        def mask_mod(bi, h, q_idx, kv_idx):
            rel = kv_idx - q_idx
            band = (rel.abs() <= hw) & (rel % dil == 0)
            return (band | is_global[q_idx] | is_global[kv_idx]) & valid[bi, kv_idx]

    bm = BlockMask.from_kv_blocks(
        kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=kb, mask_mod=mask_mod, seq_lengths=(Tp, Tp)
    )
    return bm, Tp


def flex_block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: AttentionPattern,
    L: BlockLayout,
    key_padding_mask: torch.Tensor | None,
    layer: int,
    needs_grad: bool,
) -> torch.Tensor:
    """FlexAttention of a block layout. q, k, v: (B, H, T, D) -> (B, H, T, D)."""
    if needs_grad and not q.is_cuda:
        raise ValueError(
            "backend='flex' has no backward on CPU (torch FlexAttention); use backend='blocked' or 'auto' "
            "for training on CPU"
        )
    B, H, T, D = q.shape
    bm, Tp = build_block_mask(pattern, T, B, H, layer, q.device, key_padding_mask)
    if Tp != T:
        q, k, v = (F.pad(x, (0, 0, 0, Tp - T)) for x in (q, k, v))
    out = compiled_flex()(q, k, v, block_mask=bm)  # (B, H, Tp, D)
    out = out[:, :, :T]
    if key_padding_mask is not None:
        out = out * key_padding_mask[:, None, :, None]
    return out.contiguous()
