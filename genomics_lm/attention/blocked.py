"""``blocked`` backend: block-sparse attention in pure PyTorch (CPU and GPU, autograd, no compilation).

For query block ``i`` (``b`` queries) of one (batch, head) the keys are
``[global keys | window keys | random key blocks]`` (see :class:`~genomics_lm.attention.layout.BlockLayout`).
Scores for a chunk of ``C`` query blocks are written part by part into one reused (C, b, keys) buffer:

* global keys are shared by every query of a head: one (C*b, D) x (D, G) matmul, no gather;
* window keys are a strided *view* of the keys (block ``i``'s window starts ``i*b`` rows further): a batched
  matmul reads them in place, no gather (only chunks at the array ends use a small zero-padded copy);
* only the random blocks are gathered by index.

:class:`BlockSparseAttention` is a custom ``torch.autograd.Function``, flash-attention style in plain PyTorch:
the forward keeps only its output; the backward recomputes each chunk's probabilities and accumulates dK/dV in
place (window gradients with one batched matmul and one add per window block, random gradients with
``index_add_``). Memory is O(T * D) plus one chunk's scores (about 2 MiB) instead of O(T * keys per query).

Work is organised in *units* of blocks:

* short sequences (one head's scores fit a chunk): q, k, v are made contiguous and viewed as *flat blocks*
  (B * H * nb, b, D); a chunk is several whole heads, so few large ops run (block ``i = j % nb`` of head
  ``j // nb``; windows crossing a head boundary are masked);
* long sequences: one (batch, head) at a time on (T, D) views of the inputs *as given* (any row stride, e.g.
  q, k, v sliced out of one fused projection), chunked along its query blocks; the output is allocated in
  (B, T, H, D) memory order and returned as a (B, H, T, D) view, so ``out.transpose(1, 2).reshape(B, T, H*D)``
  costs nothing.

Global query rows (BigBird's global blocks, Longformer's global tokens) attend to every key: they are computed
inside the same Function with an online softmax over key chunks, batched over (batch, head), and overwrite
their rows.

Masking uses a large finite negative bias (never -inf), so a row whose keys are all masked stays finite; such
rows only occur at padded query positions, whose outputs are set to zero (and pass no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genomics_lm.attention.layout import BlockLayout

# target number of score elements per chunk (C * b * keys): 2**19 fp32 = 2 MiB
_CHUNK_ELEMENTS = 1 << 19
# score elements per key chunk of the dense (global) rows, over all (batch, head): 2**19 fp32 = 2 MiB
_DENSE_ELEMENTS = 1 << 19


def _neg(dtype: torch.dtype) -> float:
    """Finite 'minus infinity': several of these plus a score stay finite."""
    return torch.finfo(dtype).min / 4


def _bias(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask: 0 where valid, a large finite negative elsewhere."""
    return torch.zeros(valid.shape, dtype=dtype, device=valid.device).masked_fill_(~valid, _neg(dtype))


class _Buffers:
    """Reusable contiguous scratch tensors (fresh pages are costly on CPU).

    Matmul results are always written to contiguous buffers: with a strided ``out=`` (a slice of a larger
    buffer) torch's CPU bmm falls back to one small matmul per batch entry, which is slow and collapses when
    the intra-op threads compete with other processes for the cores.
    """

    def __init__(self, like: torch.Tensor):
        self.like, self.store = like, {}

    def get(self, name: str, *shape: int) -> torch.Tensor:
        n = 1
        for x in shape:
            n *= x
        buf = self.store.get(name)
        if buf is None or buf.numel() < n:
            buf = self.store[name] = self.like.new_empty(n)
        return buf[:n].view(*shape)

    def bmm(self, name, a, b):
        return torch.bmm(a, b, out=self.get(name, a.shape[0], a.shape[1], b.shape[2]))

    def mm(self, name, a, b):
        return torch.mm(a, b, out=self.get(name, a.shape[0], b.shape[1]))


class _Unit:
    """A set of flat blocks processed together: 2-D (rows, D) views of q, k, v, out and their block offset.

    Flat block ``j`` (global index over B * H * nb) is local row block ``j - base`` of these views.
    """

    __slots__ = ("q", "k", "v", "out", "dout", "dq", "dk", "dv", "base", "chunks", "local_rand")

    def __init__(self, base, chunks, local_rand, **views):
        self.base, self.chunks, self.local_rand = base, chunks, local_rand
        for name in self.__slots__[:8]:
            setattr(self, name, views.get(name))


class _Plan:
    """Per-call constants shared by forward and backward: sizes, biases, random indices, units and chunks."""

    def __init__(self, L: BlockLayout, q: torch.Tensor, key_padding_mask: torch.Tensor | None):
        B, H, Tp, D = q.shape
        b, nb = L.block_size, L.num_blocks
        dev, dt = q.device, q.dtype
        neg = _neg(dt)
        self.L, self.B, self.H, self.D, self.b, self.nb = L, B, H, D, b, nb
        self.T, self.Tp, self.BH, self.N = L.seq_len, Tp, B * H, B * H * nb
        self.scale = D**-0.5
        self.left, self.wlen = L.window_left, L.window_len
        self.nw, self.hb = L.window_len // b, L.window_left // b  # window blocks, window blocks before the query
        self.row0, self.row1 = L.sparse_rows
        self.gidx = L.global_tokens.to(dev)
        self.G = G = int(self.gidx.numel())
        self.rand = None
        self.R = 0
        if L.random is not None and L.random.shape[-1] > 0:
            rand = L.random.to(dev)  # (H, nb, r)
            if rand.shape[0] != H:
                raise ValueError(f"layout was built for {rand.shape[0]} heads, q has {H}")
            r = rand.shape[-1]
            self.R = r * b
            local = rand.clamp(min=0)[None].expand(B, H, nb, r).reshape(self.N, r)  # block ids within the head
            self.rand_local = local
            self.rand = local + (torch.arange(self.N, device=dev) // nb * nb)[:, None]  # flat key blocks (N, r)
            self.rand_valid = (rand >= 0)[None].expand(B, H, nb, r).reshape(self.N, r)
        self.K = G + self.wlen + self.R  # keys per query block

        # key validity over the padded sequence (B, Tp)
        valid = torch.ones(B, Tp, dtype=torch.bool, device=dev)
        valid[:, self.T:] = False
        if key_padding_mask is not None:
            valid[:, : self.T] = key_padding_mask
        self.kbias = _bias(valid, dt)  # (B, Tp)
        self.kmasked = bool((~valid).any())
        # global columns: key padding only; (BH, G)
        self.gbias = None
        if G and self.kmasked:
            gb = self.kbias[:, self.gidx]
            if bool((gb != 0).any()):
                self.gbias = gb[:, None].expand(B, H, G).reshape(B * H, G)
        # window: padding, out of range and global tokens (counted in the global part); per flat block (N, wlen)
        wv = valid.clone()
        if G:
            wv[:, self.gidx] = False
        wpad = F.pad(_bias(wv, dt), (self.left, self.wlen - b - self.left), value=neg)
        wins = wpad.unfold(1, self.wlen, b)  # (B, nb, wlen)
        self.wbias = wins[:, None].expand(B, H, nb, self.wlen).reshape(self.N, self.wlen)
        self.w_need = (self.wbias != 0).any(-1).tolist()  # (N,)
        self.band = None
        if L.band is not None:
            hw, dil = L.band
            rel = torch.arange(self.wlen, device=dev)[None, :] - self.left - torch.arange(b, device=dev)[:, None]
            self.band = _bias((rel.abs() <= hw) & (rel % dil == 0), dt)  # (b, wlen), rel = key - query
        # random blocks: missing blocks and key padding inside them
        self.r_need = [False] * self.N
        if self.rand is not None:
            kb = self.kbias.view(B, 1, nb, b).expand(B, H, nb, b).reshape(self.N, b)  # per flat key block
            need = ~self.rand_valid
            if self.kmasked:
                self.kbias_blocks = kb
                need = need | (kb != 0).any(-1)[self.rand]
            self.r_need = need.any(-1).tolist()
        # rows whose incoming gradient is dropped: padded queries, and global-token rows (overwritten by dense rows)
        keep = valid.clone() if key_padding_mask is not None else torch.ones(B, Tp, dtype=torch.bool, device=dev)
        if G:
            keep[:, self.gidx] = False
        self.qvalid = valid if key_padding_mask is not None else None
        self.keep = keep[:, None].expand(B, H, Tp).reshape(self.N * b)  # (N*b,)
        self.keep_need = (~self.keep).view(self.N, b).any(-1).tolist()
        # chunks: whole heads per chunk when a head is small ("flat" mode), else query-block ranges of one head
        per_head = nb * b * self.K
        self.flat = per_head <= _CHUNK_ELEMENTS
        if self.flat:
            hc = max(1, _CHUNK_ELEMENTS // per_head)
            self.head_chunks = [(h0 * nb, min(h0 + hc, self.BH) * nb, min(hc, self.BH - h0))
                                for h0 in range(0, self.BH, hc)]
            self.max_chunk = max(j1 - j0 for j0, j1, _ in self.head_chunks)
        else:
            c = max(1, _CHUNK_ELEMENTS // (b * self.K))
            self.block_chunks = [(c0, min(c0 + c, self.row1)) for c0 in range(self.row0, self.row1, c)]
            self.max_chunk = max((c1 - c0 for c0, c1 in self.block_chunks), default=1)

    # -- units ------------------------------------------------------------------------------------
    def units(self, **tensors):
        """Yield :class:`_Unit` s over (B, H, Tp, D) tensors (flat mode: contiguous tensors required)."""
        nb = self.nb
        if self.flat:
            views = {n: (x.reshape(-1, self.D) if x is not None else None) for n, x in tensors.items()}
            yield _Unit(0, [(j0, j1, hc, j0 // nb) for j0, j1, hc in self.head_chunks], False, **views)
            return
        for bh in range(self.BH):
            bi, h = divmod(bh, self.H)
            views = {n: (x[bi, h] if x is not None else None) for n, x in tensors.items()}  # (Tp, D)
            yield _Unit(bh * nb, [(bh * nb + c0, bh * nb + c1, 0, bh) for c0, c1 in self.block_chunks], True, **views)

    # -- buffers ----------------------------------------------------------------------------------
    def new_output(self, q: torch.Tensor) -> torch.Tensor:
        """(B, H, Tp, D) output: flat mode contiguous; otherwise a view of (B, Tp, H, D) memory."""
        B, H, Tp, D = q.shape
        if self.flat:
            return torch.empty(B, H, Tp, D, dtype=q.dtype, device=q.device)
        out = torch.empty(B, Tp, H, D, dtype=q.dtype, device=q.device).transpose(1, 2)
        out[:, :, : self.row0 * self.b] = 0  # rows outside the sparse query blocks (global-only blocks)
        out[:, :, self.row1 * self.b:] = 0
        return out

    def new_dq(self, q: torch.Tensor) -> torch.Tensor:
        x = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        if not self.flat:
            x[:, :, : self.row0 * self.b] = 0
            x[:, :, self.row1 * self.b:] = 0
        return x

    # -- views ----------------------------------------------------------------------------------
    def window(self, x: torch.Tensor, l0: int, l1: int) -> torch.Tensor:
        """Window keys of local query blocks l0..l1 from x (rows, D): (C, wlen, D), a view where in range."""
        b, C = self.b, l1 - l0
        start, stop = l0 * b - self.left, (l1 - 1) * b - self.left + self.wlen
        n = x.shape[0]
        if start < 0 or stop > n:  # array ends: small zero-padded copy (masked by the window bias)
            x = F.pad(x[max(start, 0): min(stop, n)], (0, 0, max(-start, 0), max(stop - n, 0)))
            start = 0
        s = x.stride(0)
        return x.as_strided((C, self.wlen, self.D), (b * s, s, x.stride(1)), x.storage_offset() + start * s)

    def rand_index(self, unit: _Unit, j0: int, j1: int) -> torch.Tensor:
        """Random key blocks of flat query blocks j0..j1 as row-block indices of the unit's views: (C, r)."""
        return self.rand_local[j0:j1] if unit.local_rand else self.rand[j0:j1]

    def random(self, x: torch.Tensor, idx: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
        """Gather random key blocks idx (C, r) from x (rows, D) into buf (C*r, b, D): (C, R, D)."""
        blocks = x.unflatten(0, (-1, self.b))  # (n, b, D)
        torch.index_select(blocks, 0, idx.reshape(-1), out=buf)
        return buf.view(idx.shape[0], self.R, self.D)

    # -- scores ---------------------------------------------------------------------------------
    def mm_global(self, bufs, name, a, bmat, hc, bh) -> torch.Tensor:
        """Per-head product of a chunk's rows with its head's global matrix: a (C, b, X) @ bmat[bh] (X, Y).

        Returns a contiguous (C, b, Y) scratch tensor.
        """
        C, b, X = a.shape
        if hc:
            r = bufs.bmm(name, a.reshape(hc, -1, X), bmat[bh:bh + hc])
        else:
            r = bufs.mm(name, a.reshape(C * b, X), bmat[bh])
        return r.view(C, b, -1)

    def probs(self, unit, qc, kgt, j0, j1, hc, bh, bufs) -> torch.Tensor:
        """Softmax probabilities (C, b, K) of the scaled query chunk qc (C, b, D), in the buffer "s"."""
        C, b, G, wlen = j1 - j0, self.b, self.G, self.wlen
        l0, l1 = j0 - unit.base, j1 - unit.base
        s = bufs.get("s", C, b, self.K)
        if G:
            tg = self.mm_global(bufs, "t_g", qc, kgt, hc, bh)  # (C, b, G)
            if self.gbias is not None:
                gb = self.gbias[bh:bh + hc, None, :].repeat_interleave(self.nb, 0) if hc else self.gbias[bh]
                torch.add(tg, gb, out=s[:, :, :G])
            else:
                s[:, :, :G] = tg
        tw = bufs.bmm("t_w", qc, self.window(unit.k, l0, l1).transpose(1, 2))  # (C, b, wlen)
        if any(self.w_need[j0:j1]):
            wb = self.wbias[j0:j1][:, None, :]  # (C, 1, wlen)
            bias = wb + self.band if self.band is not None else wb
            torch.add(tw, bias, out=s[:, :, G:G + wlen])
        elif self.band is not None:
            torch.add(tw, self.band, out=s[:, :, G:G + wlen])
        else:
            s[:, :, G:G + wlen] = tw
        if self.rand is not None:
            kr = self.random(unit.k, self.rand_index(unit, j0, j1), bufs.get("r", C * self.rand.shape[1], b, self.D))
            tr = bufs.bmm("t_r", qc, kr.transpose(1, 2))  # (C, b, R)
            if any(self.r_need[j0:j1]):
                ridx = self.rand[j0:j1]  # (C, r) flat
                rb = self.kbias_blocks[ridx] if self.kmasked else s.new_zeros(C, ridx.shape[1], b)
                rb = rb.masked_fill(~self.rand_valid[j0:j1, :, None], _neg(s.dtype))  # (C, r, b)
                torch.add(tr, rb.flatten(1, 2)[:, None, :], out=s[:, :, G + wlen:])
            else:
                s[:, :, G + wlen:] = tr
        return torch.softmax(s, dim=-1, out=s) if s.is_cpu else torch.softmax(s, dim=-1)

    def dout_chunk(self, unit, j0, j1) -> torch.Tensor:
        """dO of flat blocks j0..j1 (C, b, D); zero on padded queries and on global-token rows."""
        b = self.b
        do = unit.dout[(j0 - unit.base) * b:(j1 - unit.base) * b]
        if any(self.keep_need[j0:j1]):
            do = do * self.keep[j0 * b:j1 * b, None]
        return do.unflatten(0, (j1 - j0, b))


class BlockSparseAttention(torch.autograd.Function):
    """Block-sparse attention of a layout (see the module docstring).

    Inputs: q, k, v (B, H, Tp, D) with unit last stride (contiguous in flat mode), Tp a multiple of the block
    size (padded keys masked by the plan). Output: (B, H, Tp, D), zero at padded query positions.
    """

    @staticmethod
    def forward(ctx, q, k, v, plan: _Plan):  # noqa: D401
        b, G, wlen, sc, D = plan.b, plan.G, plan.wlen, plan.scale, plan.D
        out = plan.new_output(q)
        kgt = vg = None
        if G:
            kg = k[:, :, plan.gidx].reshape(plan.BH, G, D)  # (BH, G, D) gathered copies
            vg = v[:, :, plan.gidx].reshape(plan.BH, G, D)
            kgt = kg.transpose(1, 2)
        bufs = _Buffers(q)
        for u in plan.units(q=q, k=k, v=v, out=out):
            for j0, j1, hc, bh in u.chunks:
                C, l0, l1 = j1 - j0, j0 - u.base, j1 - u.base
                qc = torch.mul(u.q[l0 * b:l1 * b], sc, out=bufs.get("q", C * b, D)).view(C, b, D)
                p = plan.probs(u, qc, kgt, j0, j1, hc, bh, bufs)  # (C, b, K)
                o = bufs.bmm("o", p[:, :, G:G + wlen], plan.window(u.v, l0, l1))  # (C, b, D)
                if G:
                    o += plan.mm_global(bufs, "o2", p[:, :, :G], vg, hc, bh)
                if plan.rand is not None:
                    vr = plan.random(u.v, plan.rand_index(u, j0, j1), bufs.get("r", C * plan.rand.shape[1], b, D))
                    o += bufs.bmm("o2", p[:, :, G + wlen:], vr)
                u.out[l0 * b:l1 * b] = o.view(C * b, D)
        lse = _dense_rows_forward(q, k, v, out, plan, bufs) if G else None
        if plan.qvalid is not None:
            out.mul_(plan.qvalid[:, None, :, None])
        ctx.plan = plan
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        plan: _Plan = ctx.plan
        b, G, wlen, sc, D, hb = plan.b, plan.G, plan.wlen, plan.scale, plan.D, plan.hb
        if plan.flat or dout.stride(-1) != 1:
            dout = dout.contiguous()
        dq = plan.new_dq(q)
        dk = torch.zeros(k.shape, dtype=k.dtype, device=k.device)
        dv = torch.zeros(v.shape, dtype=v.dtype, device=v.device)
        kg = kgt = vg = vgt = dkg = dvg = None
        if G:
            kg = k[:, :, plan.gidx].reshape(plan.BH, G, D)
            vg = v[:, :, plan.gidx].reshape(plan.BH, G, D)
            kgt, vgt = kg.transpose(1, 2), vg.transpose(1, 2)
            dkg, dvg = torch.zeros_like(kg), torch.zeros_like(vg)
        bufs = _Buffers(q)
        for u in plan.units(q=q, k=k, v=v, out=out, dout=dout, dq=dq, dk=dk, dv=dv):
            dkb, dvb = u.dk.unflatten(0, (-1, b)), u.dv.unflatten(0, (-1, b))  # (n, b, D)
            n = dkb.shape[0]
            for j0, j1, hc, bh in u.chunks:
                C, l0, l1 = j1 - j0, j0 - u.base, j1 - u.base
                qc = torch.mul(u.q[l0 * b:l1 * b], sc, out=bufs.get("q", C * b, D)).view(C, b, D)
                do = plan.dout_chunk(u, j0, j1)  # (C, b, D)
                delta = (do * u.out[l0 * b:l1 * b].unflatten(0, (C, b))).sum(-1, keepdim=True)  # (C, b, 1)
                p = plan.probs(u, qc, kgt, j0, j1, hc, bh, bufs)  # (C, b, K)
                ridx = plan.rand_index(u, j0, j1) if plan.rand is not None else None
                rbuf = bufs.get("r", C * plan.rand.shape[1], b, D) if ridx is not None else None
                # dV = P^T dO
                if G:
                    _acc_global(bufs, dvg, p[:, :, :G], do, hc, bh)
                _window_accumulate(bufs, dvb, p[:, :, G:G + wlen], do, l0, l1, hb, n, b)
                if ridx is not None:
                    dvb.index_add_(0, ridx.reshape(-1), bufs.bmm("t_d", p[:, :, G + wlen:].transpose(1, 2), do).view(-1, b, D))
                # dP = dO V^T, then dS = P * (dP - delta), in the buffer "ds"
                ds = bufs.get("ds", C, b, plan.K)
                if G:
                    ds[:, :, :G] = plan.mm_global(bufs, "t_g", do, vgt, hc, bh)
                ds[:, :, G:G + wlen] = bufs.bmm("t_w", do, plan.window(u.v, l0, l1).transpose(1, 2))
                if ridx is not None:
                    ds[:, :, G + wlen:] = bufs.bmm("t_r", do, plan.random(u.v, ridx, rbuf).transpose(1, 2))
                ds.sub_(delta).mul_(p)
                del p
                # dQ = dS K (then scaled), dK = dS^T (q * scale)
                dqc = bufs.bmm("t_q", ds[:, :, G:G + wlen], plan.window(u.k, l0, l1))  # (C, b, D)
                if G:
                    dqc += plan.mm_global(bufs, "o2", ds[:, :, :G], kg, hc, bh)
                    _acc_global(bufs, dkg, ds[:, :, :G], qc, hc, bh)
                if ridx is not None:
                    dqc += bufs.bmm("o2", ds[:, :, G + wlen:], plan.random(u.k, ridx, rbuf))
                    dkb.index_add_(0, ridx.reshape(-1), bufs.bmm("t_d", ds[:, :, G + wlen:].transpose(1, 2), qc).view(-1, b, D))
                torch.mul(dqc, sc, out=u.dq[l0 * b:l1 * b].view(C, b, D))
                _window_accumulate(bufs, dkb, ds[:, :, G:G + wlen], qc, l0, l1, hb, n, b)
        if G:
            _dense_rows_backward(q, k, v, out, dout, lse, dq, dk, dv, plan, bufs)
            dk.view(plan.BH, plan.Tp, D).index_add_(1, plan.gidx, dkg)
            dv.view(plan.BH, plan.Tp, D).index_add_(1, plan.gidx, dvg)
        return dq, dk, dv, None


def _acc_global(bufs, dst, pg, x, hc, bh):
    """dst[bh] += pg^T @ x per head: dst (BH, G, D), pg (C, b, G) rows of the chunk, x (C, b, D)."""
    G, D = pg.shape[-1], x.shape[-1]
    if hc:
        dst[bh:bh + hc] += bufs.bmm("t_gd", pg.reshape(hc, -1, G).transpose(1, 2), x.reshape(hc, -1, D))
    else:
        dst[bh] += bufs.mm("t_gd", pg.reshape(-1, G).t(), x.reshape(-1, D))


def _window_accumulate(bufs, dst_blocks, pw, x, l0, l1, hb, n, b):
    """dst_blocks[j + s - hb] += pw[j][:, s*b:(s+1)*b]^T @ x[j] for local query blocks j in l0..l1, in range only.

    dst_blocks (n, b, D); pw (C, b, wlen); x (C, b, D). One batched matmul, then one add per window block.
    Out-of-range and cross-head positions have zero probability, so dropping them at the array ends is exact.
    """
    d = bufs.bmm("t_win", pw.transpose(1, 2), x)  # (C, wlen, D)
    for s in range(pw.shape[-1] // b):
        lo, hi = max(l0, hb - s), min(l1, n + hb - s)  # key block j + s - hb in [0, n)
        if lo < hi:
            dst_blocks[lo + s - hb:hi + s - hb] += d[lo - l0:hi - l0, s * b:(s + 1) * b]


def _key_chunks(Tp: int, rows: int):
    step = max(1, _DENSE_ELEMENTS // max(rows, 1))
    for k0 in range(0, Tp, step):
        yield k0, min(k0 + step, Tp)


def _bh(x: torch.Tensor, k0: int, k1: int) -> torch.Tensor:
    """Rows k0..k1 of (B, H, Tp, D) as (B*H, k1-k0, D) (a view when the layout allows, else a copy)."""
    return x[:, :, k0:k1].reshape(-1, k1 - k0, x.shape[-1])


def _dense_rows_forward(q, k, v, out, plan: _Plan, bufs: _Buffers) -> torch.Tensor:
    """Global query rows see every key: online softmax over key chunks, batched over (batch, head).

    Writes the rows into out (B, H, Tp, D) and returns their logsumexp (BH, G).
    """
    BH, Tp, D, G, B, H = plan.BH, plan.Tp, plan.D, plan.G, plan.B, plan.H
    qg = q[:, :, plan.gidx].reshape(BH, G, D) * plan.scale  # (BH, G, D)
    o = q.new_zeros(BH, G, D)
    m = q.new_full((BH, G, 1), _neg(q.dtype))
    l = q.new_zeros(BH, G, 1)
    for k0, k1 in _key_chunks(Tp, BH * G):
        s = bufs.bmm("d_s", qg, _bh(k, k0, k1).transpose(1, 2))  # (BH, G, Tk)
        if plan.kmasked:
            s.view(B, H, G, -1).add_(plan.kbias[:, None, None, k0:k1])
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        alpha = torch.exp(m - m_new)
        s.sub_(m_new).exp_()  # probabilities up to the running normaliser
        l = l * alpha + s.sum(-1, keepdim=True)
        o = o * alpha + bufs.bmm("d_o", s, _bh(v, k0, k1))
        m = m_new
    out[:, :, plan.gidx] = (o / l).view(B, H, G, D)
    return (m + l.log()).squeeze(-1)


def _dense_rows_backward(q, k, v, out, dout, lse, dq, dk, dv, plan: _Plan, bufs: _Buffers) -> None:
    """Backward of :func:`_dense_rows_forward`: accumulates into dk, dv and writes the rows of dq."""
    BH, Tp, D, G, B, H = plan.BH, plan.Tp, plan.D, plan.G, plan.B, plan.H
    dk3, dv3 = dk.view(BH, Tp, D), dv.view(BH, Tp, D)
    qg = q[:, :, plan.gidx].reshape(BH, G, D) * plan.scale  # (BH, G, D)
    og = out[:, :, plan.gidx].reshape(BH, G, D)
    dog = dout[:, :, plan.gidx].reshape(BH, G, D)
    if plan.qvalid is not None:
        dog = dog * plan.qvalid[:, None, plan.gidx, None].expand(B, H, G, 1).reshape(BH, G, 1)
    delta = (dog * og).sum(-1, keepdim=True)  # (BH, G, 1)
    dqg = q.new_zeros(BH, G, D)
    for k0, k1 in _key_chunks(Tp, BH * G):
        kc, vc = _bh(k, k0, k1), _bh(v, k0, k1)
        p = bufs.bmm("d_s", qg, kc.transpose(1, 2))  # (BH, G, Tk)
        if plan.kmasked:
            p.view(B, H, G, -1).add_(plan.kbias[:, None, None, k0:k1])
        p.sub_(lse[:, :, None]).exp_()
        dv3[:, k0:k1] += bufs.bmm("d_o", p.transpose(1, 2), dog)
        ds = bufs.bmm("d_ds", dog, vc.transpose(1, 2))
        ds.sub_(delta).mul_(p)
        dk3[:, k0:k1] += bufs.bmm("d_o", ds.transpose(1, 2), qg)
        dqg += bufs.bmm("d_q", ds, kc)
    dq[:, :, plan.gidx] = (dqg * plan.scale).view(B, H, G, D)


def dense_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """Dense attention with key padding (finite additive mask); padded query positions zeroed."""
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v)
    bias = _bias(key_padding_mask, q.dtype)[:, None, None, :]  # (B, 1, 1, T)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    return out * key_padding_mask[:, None, :, None]


def blocked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, L: BlockLayout, key_padding_mask: torch.Tensor | None
) -> torch.Tensor:
    """Block-sparse attention of a layout. q, k, v: (B, H, T, D) -> (B, H, T, D) (possibly a strided view)."""
    B, H, T, D = q.shape
    if T != L.seq_len:
        raise ValueError(f"layout was built for {L.seq_len} tokens, q has {T}")
    Tp = L.padded_len
    if Tp != T:  # explicit padding to a block multiple; the padded keys are masked by the plan
        q, k, v = (F.pad(x, (0, 0, 0, Tp - T)) for x in (q, k, v))
    plan = _Plan(L, q, key_padding_mask)
    if plan.flat:  # flat (N, b, D) block views need contiguous tensors (short sequences: cheap)
        q, k, v = (x.contiguous() for x in (q, k, v))
    else:
        q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    out = BlockSparseAttention.apply(q, k, v, plan)
    return out[:, :, :T] if Tp != T else out
