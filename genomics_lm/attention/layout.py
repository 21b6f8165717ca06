"""Block layout: what a kernel needs to know about a sparse pattern at one sequence length.

Tokens are tiled in query/key blocks of ``block_size``; the sequence is padded explicitly to
``num_blocks * block_size`` tokens and the padding masked. For query block ``i`` the keys are

* a contiguous *window* of keys ``[i*b - window_left, i*b - window_left + window_len)`` (out-of-range keys
  masked). With ``band=(half_width, dilation)`` only keys with ``|key - query| <= half_width`` and
  ``(key - query) % dilation == 0`` are kept inside it (Longformer); with ``band=None`` the whole window
  (whole blocks, BigBird) is kept;
* the *global* tokens ``global_tokens`` (also removed from the window so no key is counted twice);
* *random* key blocks ``random[h, i]`` (BigBird; -1 = none; never a window or global block).

Query positions listed in ``global_tokens`` attend to every key (dense rows). Query blocks outside
``sparse_rows = (start, stop)`` consist of global tokens only (BigBird's global blocks), so kernels skip them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class BlockLayout:
    seq_len: int
    block_size: int
    num_blocks: int
    global_tokens: torch.Tensor  # (G,) int64, sorted positions < seq_len
    window_left: int  # tokens, a multiple of block_size
    window_len: int  # tokens, a multiple of block_size
    band: tuple[int, int] | None  # (half_width, dilation) or None
    random: torch.Tensor | None  # (H, nb, r) int64 key-block ids, -1 = none
    sparse_rows: tuple[int, int]  # query-block range computed sparsely

    @property
    def padded_len(self) -> int:
        return self.num_blocks * self.block_size

    def kv_blocks(self, num_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Key blocks per (head, query block) for block-sparse kernels such as FlexAttention.

        Returns ``kv_num (H, nb) int32`` and ``kv_idx (H, nb, nb) int32`` (the first ``kv_num`` entries of
        each row are the sorted key-block ids, the rest are filler). Blocks containing a global query token
        get every key block. Exactness inside blocks is the job of the kernel's token-level mask.
        """
        nb, b = self.num_blocks, self.block_size
        blk = torch.arange(nb)
        mask = torch.zeros(num_heads, nb, nb, dtype=torch.bool)
        lo = (blk * b - self.window_left).clamp(min=0) // b
        hi = ((blk * b - self.window_left + self.window_len - 1).clamp(max=self.padded_len - 1)) // b
        win = (blk[None, :] >= lo[:, None]) & (blk[None, :] <= hi[:, None])  # (nb, nb)
        if self.band is not None:  # trim whole blocks outside the band
            hw = self.band[0]
            lo_b = (blk * b - hw).clamp(min=0) // b
            hi_b = (blk * b + b - 1 + hw).clamp(max=self.padded_len - 1) // b
            win &= (blk[None, :] >= lo_b[:, None]) & (blk[None, :] <= hi_b[:, None])
        mask |= win[None]
        gblk = torch.unique(self.global_tokens // b)
        mask[:, :, gblk] = True
        mask[:, gblk, :] = True
        if self.random is not None:
            h, i, j = torch.nonzero(self.random >= 0, as_tuple=True)
            mask[h, i, self.random[h, i, j]] = True
        kv_num = mask.sum(-1).to(torch.int32)
        # sort True first, keeping ascending block order
        order = torch.argsort((~mask).to(torch.int64) * nb + blk, dim=-1, stable=True)  # int64: no overflow
        return kv_num, order.to(torch.int32)
