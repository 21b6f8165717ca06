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
inside the same Function with an online softmax over key chunks, per (batch, head), and overwrite their rows.

On a CPU with several intra-op threads the independent units run on Python threads with one intra-op thread
each (see ``_HEAD_THREADS``).

Masking uses a large finite negative bias (never -inf), so a row whose keys are all masked stays finite; such
rows only occur at padded query positions, whose outputs are set to zero (and pass no gradient).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from genomics_lm.attention.layout import BlockLayout

# target number of score elements per chunk (C * b * keys): 2**19 fp32 = 2 MiB
_CHUNK_ELEMENTS = 1 << 19
# score elements per key chunk of the dense (global) rows of one (batch, head): 2**19 fp32 = 2 MiB
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

    def __init__(self, like: torch.Tensor, sizes: dict[str, int] | None = None):
        self.like, self.store = like, {}
        for name, n in (sizes or {}).items():  # allocated by the creating thread (one malloc arena)
            self.store[name] = like.new_empty(n)

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

    __slots__ = ("q", "k", "v", "out", "dout", "dq", "dk", "dv", "base", "chunks", "local_rand", "keys")

    def __init__(self, base, chunks, local_rand, keys, **views):
        # keys: (lo, hi) local key blocks of the unit's own heads, the only ones it writes gradients to
        self.base, self.chunks, self.local_rand, self.keys = base, chunks, local_rand, keys
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
        self.hb = L.window_left // b  # window blocks before the query
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
        if self.flat:  # one unit per chunk of whole heads (units never write outside their own heads)
            views = {n: (x.reshape(-1, self.D) if x is not None else None) for n, x in tensors.items()}
            for j0, j1, hc in self.head_chunks:
                yield _Unit(0, [(j0, j1, hc, j0 // nb)], False, (j0, j1), **views)
            return
        for bh in range(self.BH):
            bi, h = divmod(bh, self.H)
            views = {n: (x[bi, h] if x is not None else None) for n, x in tensors.items()}  # (Tp, D)
            yield _Unit(bh * nb, [(bh * nb + c0, bh * nb + c1, 0, bh) for c0, c1 in self.block_chunks], True,
                        (0, nb), **views)

    # -- buffers ----------------------------------------------------------------------------------
    def buffer_sizes(self, dense: bool = False) -> dict[str, int]:
        """Elements of the scratch buffers one worker needs for the sparse rows, or for the dense rows."""
        C, b, D, G, K = self.max_chunk, self.b, self.D, self.G, self.K
        r = 0 if self.rand is None else self.rand.shape[1]
        Tk = min(self.Tp, max(1, _DENSE_ELEMENTS // max(G, 1)))
        if dense:
            return {"d_s": G * Tk, "d_ds": G * Tk, "d_o": max(Tk, G) * D, "d_q": G * D} if G else {}
        sizes = {"s": C * b * K, "ds": C * b * K, "t_g": C * b * G, "t_w": C * b * self.wlen,
                 "t_r": C * b * self.R, "r": C * r * b * D, "t_win": C * self.wlen * D, "q": C * b * D,
                 "o": C * b * D, "o2": C * b * D, "t_q": C * b * D, "t_d": C * r * b * D}
        return {k: v for k, v in sizes.items() if v}

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
        G, D = plan.G, plan.D
        with _intra_op_threads(q) as workers:
            out = plan.new_output(q)
            kgt = vg = None
            if G:
                kg = k[:, :, plan.gidx].reshape(plan.BH, G, D)  # (BH, G, D) gathered copies
                vg = v[:, :, plan.gidx].reshape(plan.BH, G, D)
                kgt = kg.transpose(1, 2)
            units = list(plan.units(q=q, k=k, v=v, out=out))
            _run(workers, units, lambda u, bufs: _forward_unit(plan, u, kgt, vg, bufs), q, plan.buffer_sizes())
            lse = None
            if G:  # after the sparse rows: dense rows overwrite the global-token rows
                lse = q.new_empty(plan.BH, G)
                _run(workers, range(plan.BH), lambda bh, bufs: _dense_rows_forward(q, k, v, out, lse, plan, bh, bufs), q,
                     plan.buffer_sizes(dense=True))
            if plan.qvalid is not None:
                out.mul_(plan.qvalid[:, None, :, None])
        ctx.plan = plan
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        plan: _Plan = ctx.plan
        G, D = plan.G, plan.D
        with _intra_op_threads(q) as workers:
            if plan.flat or dout.stride(-1) != 1:
                dout = dout.contiguous()
            dq = plan.new_dq(q)
            dk = torch.zeros(k.shape, dtype=k.dtype, device=k.device)
            dv = torch.zeros(v.shape, dtype=v.dtype, device=v.device)
            g = {}
            if G:
                kg = k[:, :, plan.gidx].reshape(plan.BH, G, D)
                vg = v[:, :, plan.gidx].reshape(plan.BH, G, D)
                g = {"kg": kg, "kgt": kg.transpose(1, 2), "vgt": vg.transpose(1, 2),
                     "dkg": torch.zeros_like(kg), "dvg": torch.zeros_like(vg)}
            units = list(plan.units(q=q, k=k, v=v, out=out, dout=dout, dq=dq, dk=dk, dv=dv))
            _run(workers, units, lambda u, bufs: _backward_unit(plan, u, g, bufs), q, plan.buffer_sizes())
            if G:  # after the sparse rows (they share dk / dv rows and the global rows of dq)
                _run(workers, range(plan.BH),
                     lambda bh, bufs: _dense_rows_backward(q, k, v, out, dout, lse, dq, dk, dv, plan, bh, bufs), q,
                     plan.buffer_sizes(dense=True))
                dk.view(plan.BH, plan.Tp, D).index_add_(1, plan.gidx, g["dkg"])
                dv.view(plan.BH, plan.Tp, D).index_add_(1, plan.gidx, g["dvg"])
        return dq, dk, dv, None


# CPU threading. The kernel is made of many small ops (e.g. 16 x (64 x 32) @ (32 x 192) matmuls); splitting
# each of them across intra-op threads scales poorly on a 2-core CPU and collapses when another process
# competes for the cores (every op waits for a descheduled OpenMP thread; measured up to 50x slower).
# Instead, the independent units of work (per (batch, head), or per chunk of whole heads; each writes only
# its own rows) run on ``torch.get_num_threads()`` Python threads with ONE intra-op thread each, and the
# intra-op thread count is restored afterwards. (Another thread of the process running torch ops at the same
# moment would see one intra-op thread meanwhile.) Set ``_HEAD_THREADS = False`` to use intra-op threads.
_HEAD_THREADS = True
_POOL: ThreadPoolExecutor | None = None


@contextmanager
def _intra_op_threads(like: torch.Tensor):
    """Yield the number of worker threads to use; on CPU with several threads, intra-op threads are 1 inside."""
    n = torch.get_num_threads()
    if not (_HEAD_THREADS and like.is_cpu and n > 1):
        yield 1
        return
    torch.set_num_threads(1)
    try:
        yield n
    finally:
        torch.set_num_threads(n)


def _run(workers: int, items, work, like: torch.Tensor, sizes: dict[str, int] | None = None) -> None:
    """work(item, buffers) for every item, on ``workers`` Python threads (round-robin) or serially.

    Scratch buffers are allocated here, in the calling thread, so that worker threads do not grow their own
    malloc arenas (which inflates the resident memory).
    """
    items = list(items)
    if workers <= 1 or len(items) < 2:
        bufs = _Buffers(like, sizes)
        for it in items:
            work(it, bufs)
        return
    global _POOL
    workers = min(workers, len(items))
    if _POOL is None or _POOL._max_workers < workers:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genomics_lm-attention")
    grad = torch.is_grad_enabled()
    inference = torch.is_inference_mode_enabled()

    def run(group, bufs):
        # grad mode and inference mode are thread-local: the workers take the caller's (buffers made under
        # inference mode are inference tensors and may only be written inside it)
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            for it in group:
                work(it, bufs)

    buffers = [_Buffers(like, sizes) for _ in range(workers)]  # owned (and freed) by this thread
    futures = [_POOL.submit(run, items[i::workers], buffers[i]) for i in range(workers)]
    for f in futures:
        f.result()
    del futures, buffers


def _forward_unit(plan: _Plan, u: _Unit, kgt, vg, bufs: _Buffers) -> None:
    b, G, wlen, sc, D = plan.b, plan.G, plan.wlen, plan.scale, plan.D
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


def _backward_unit(plan: _Plan, u: _Unit, g: dict, bufs: _Buffers) -> None:
    b, G, wlen, sc, D, hb = plan.b, plan.G, plan.wlen, plan.scale, plan.D, plan.hb
    dkb, dvb = u.dk.unflatten(0, (-1, b)), u.dv.unflatten(0, (-1, b))  # (n, b, D)
    for j0, j1, hc, bh in u.chunks:
        C, l0, l1 = j1 - j0, j0 - u.base, j1 - u.base
        qc = torch.mul(u.q[l0 * b:l1 * b], sc, out=bufs.get("q", C * b, D)).view(C, b, D)
        do = plan.dout_chunk(u, j0, j1)  # (C, b, D)
        delta = (do * u.out[l0 * b:l1 * b].unflatten(0, (C, b))).sum(-1, keepdim=True)  # (C, b, 1)
        p = plan.probs(u, qc, g.get("kgt"), j0, j1, hc, bh, bufs)  # (C, b, K)
        ridx = plan.rand_index(u, j0, j1) if plan.rand is not None else None
        rbuf = bufs.get("r", C * plan.rand.shape[1], b, D) if ridx is not None else None
        # dV = P^T dO
        if G:
            _acc_global(bufs, g["dvg"], p[:, :, :G], do, hc, bh)
        _window_accumulate(bufs, dvb, p[:, :, G:G + wlen], do, l0, l1, hb, u.keys, b)
        if ridx is not None:
            dvb.index_add_(0, ridx.reshape(-1), bufs.bmm("t_d", p[:, :, G + wlen:].transpose(1, 2), do).view(-1, b, D))
        # dP = dO V^T, then dS = P * (dP - delta), in the buffer "ds"
        ds = bufs.get("ds", C, b, plan.K)
        if G:
            ds[:, :, :G] = plan.mm_global(bufs, "t_g", do, g["vgt"], hc, bh)
        ds[:, :, G:G + wlen] = bufs.bmm("t_w", do, plan.window(u.v, l0, l1).transpose(1, 2))
        if ridx is not None:
            ds[:, :, G + wlen:] = bufs.bmm("t_r", do, plan.random(u.v, ridx, rbuf).transpose(1, 2))
        ds.sub_(delta).mul_(p)
        del p
        # dQ = dS K (then scaled), dK = dS^T (q * scale)
        dqc = bufs.bmm("t_q", ds[:, :, G:G + wlen], plan.window(u.k, l0, l1))  # (C, b, D)
        if G:
            dqc += plan.mm_global(bufs, "o2", ds[:, :, :G], g["kg"], hc, bh)
            _acc_global(bufs, g["dkg"], ds[:, :, :G], qc, hc, bh)
        if ridx is not None:
            dqc += bufs.bmm("o2", ds[:, :, G + wlen:], plan.random(u.k, ridx, rbuf))
            dkb.index_add_(0, ridx.reshape(-1), bufs.bmm("t_d", ds[:, :, G + wlen:].transpose(1, 2), qc).view(-1, b, D))
        torch.mul(dqc, sc, out=u.dq[l0 * b:l1 * b].view(C, b, D))
        _window_accumulate(bufs, dkb, ds[:, :, G:G + wlen], qc, l0, l1, hb, u.keys, b)


def _acc_global(bufs, dst, pg, x, hc, bh):
    """dst[bh] += pg^T @ x per head: dst (BH, G, D), pg (C, b, G) rows of the chunk, x (C, b, D)."""
    G, D = pg.shape[-1], x.shape[-1]
    if hc:
        dst[bh:bh + hc] += bufs.bmm("t_gd", pg.reshape(hc, -1, G).transpose(1, 2), x.reshape(hc, -1, D))
    else:
        dst[bh] += bufs.mm("t_gd", pg.reshape(-1, G).t(), x.reshape(-1, D))


def _window_accumulate(bufs, dst_blocks, pw, x, l0, l1, hb, keys, b):
    """dst_blocks[j + s - hb] += pw[j][:, s*b:(s+1)*b]^T @ x[j] for local query blocks j in l0..l1.

    dst_blocks (n, b, D); pw (C, b, wlen); x (C, b, D); only key blocks in ``keys = (lo, hi)`` (the unit's own
    heads) are written. One batched matmul, then one add per window block. Out-of-range and cross-head
    positions have zero probability, so dropping them is exact (and keeps parallel units disjoint).
    """
    d = bufs.bmm("t_win", pw.transpose(1, 2), x)  # (C, wlen, D)
    k_lo, k_hi = keys
    for s in range(pw.shape[-1] // b):
        lo, hi = max(l0, k_lo + hb - s), min(l1, k_hi + hb - s)  # key block j + s - hb in [k_lo, k_hi)
        if lo < hi:
            dst_blocks[lo + s - hb:hi + s - hb] += d[lo - l0:hi - l0, s * b:(s + 1) * b]


def _key_chunks(Tp: int, rows: int):
    step = max(1, _DENSE_ELEMENTS // max(rows, 1))
    for k0 in range(0, Tp, step):
        yield k0, min(k0 + step, Tp)


def _dense_rows_forward(q, k, v, out, lse, plan: _Plan, bh: int, bufs: _Buffers) -> None:
    """Global query rows of (batch, head) ``bh`` see every key: online softmax over key chunks.

    Writes the rows into out (B, H, Tp, D) and their logsumexp into lse[bh] (G,).
    """
    bi, h = divmod(bh, plan.H)
    Tp, D, G = plan.Tp, plan.D, plan.G
    kh, vh = k[bi, h], v[bi, h]  # (Tp, D)
    qg = q[bi, h][plan.gidx] * plan.scale  # (G, D)
    o = q.new_zeros(G, D)
    m = q.new_full((G, 1), _neg(q.dtype))
    l = q.new_zeros(G, 1)
    for k0, k1 in _key_chunks(Tp, G):
        s = bufs.mm("d_s", qg, kh[k0:k1].t())  # (G, Tk)
        if plan.kmasked:
            s += plan.kbias[bi, k0:k1]
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        alpha = torch.exp(m - m_new)
        s.sub_(m_new).exp_()  # probabilities up to the running normaliser
        l = l * alpha + s.sum(-1, keepdim=True)
        o = o * alpha + bufs.mm("d_o", s, vh[k0:k1])
        m = m_new
    out[bi, h, plan.gidx] = o / l
    lse[bh] = (m + l.log()).squeeze(-1)


def _dense_rows_backward(q, k, v, out, dout, lse, dq, dk, dv, plan: _Plan, bh: int, bufs: _Buffers) -> None:
    """Backward of :func:`_dense_rows_forward` for ``bh``: accumulates into dk, dv and writes rows of dq."""
    bi, h = divmod(bh, plan.H)
    Tp, G = plan.Tp, plan.G
    kh, vh, dkh, dvh = k[bi, h], v[bi, h], dk[bi, h], dv[bi, h]  # (Tp, D)
    qg = q[bi, h][plan.gidx] * plan.scale  # (G, D)
    og = out[bi, h][plan.gidx]
    dog = dout[bi, h][plan.gidx]
    if plan.qvalid is not None:
        dog = dog * plan.qvalid[bi, plan.gidx, None]
    delta = (dog * og).sum(-1, keepdim=True)  # (G, 1)
    dqg = q.new_zeros(G, plan.D)
    for k0, k1 in _key_chunks(Tp, G):
        p = bufs.mm("d_s", qg, kh[k0:k1].t())  # (G, Tk)
        if plan.kmasked:
            p += plan.kbias[bi, k0:k1]
        p.sub_(lse[bh][:, None]).exp_()
        dvh[k0:k1] += bufs.mm("d_o", p.t(), dog)
        ds = bufs.mm("d_ds", dog, vh[k0:k1].t())
        ds.sub_(delta).mul_(p)
        dkh[k0:k1] += bufs.mm("d_o", ds.t(), qg)
        dqg += bufs.mm("d_q", ds, kh[k0:k1])
    dq[bi, h, plan.gidx] = dqg * plan.scale


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
    with _intra_op_threads(q):
        plan = _Plan(L, q, key_padding_mask)
    if plan.flat:  # flat (N, b, D) block views need contiguous tensors (short sequences: cheap)
        q, k, v = (x.contiguous() for x in (q, k, v))
    else:
        q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    out = BlockSparseAttention.apply(q, k, v, plan)
    return out[:, :, :T] if Tp != T else out
