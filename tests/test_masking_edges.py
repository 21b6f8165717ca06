"""MLM masking (genomics_lm.data.mask_tokens, default_span) against a plain-loop reference of the documented
algorithm, draw for draw, plus exact edge cases (all masked, all random, all kept, forced target, mask id).

The reference re-implements the module docstring's recipe with Python loops and the same numpy Generator
calls in the same order (the reproducibility contract: a sample is a pure function of its seed), so any
change in the rates, the span rule, the 80/10/10 split, the overlap rule or the forced target shows up as an
exact mismatch rather than a drift inside a tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

from genomics_lm.data import IGNORE_INDEX, default_span, mask_tokens
from genomics_lm.tokenizer import CLS_ID, MASK_ID, N_SPECIAL, PAD_ID, UNK_ID


def reference_mask(ids, seed, vocab_size, mask_prob=0.15, span=1, mask_token_frac=0.8, random_token_frac=0.1,
                   mask_id=MASK_ID):
    rng = np.random.default_rng(seed)
    ids = [int(x) for x in ids]
    T = len(ids)
    span = max(1, int(span))
    q = 1.0 - (1.0 - mask_prob) ** (1.0 / span)  # P(span start) so that P(token covered) = mask_prob
    draws = rng.random(T + span - 1)
    starts = [i - (span - 1) for i in range(T + span - 1) if draws[i] < q]
    u = rng.random(len(starts))
    code = [3] * T  # 0 [MASK], 1 random, 2 keep, 3 not a target
    for s, x in zip(starts, u):
        decision = 0 if x < mask_token_frac else 1 if x < mask_token_frac + random_token_frac else 2
        for t in range(s, s + span):
            if 0 <= t < T:
                code[t] = min(code[t], decision)
    eligible = [x >= N_SPECIAL for x in ids]
    target = [c < 3 and e for c, e in zip(code, eligible)]
    if not any(target) and any(eligible):
        t = int(rng.choice(np.array([i for i, e in enumerate(eligible) if e])))
        for i in range(t, min(t + span, T)):
            code[i] = 0
        target = [c < 3 and e for c, e in zip(code, eligible)]
    inputs = list(ids)
    for i in range(T):
        if target[i] and code[i] == 0:
            inputs[i] = mask_id
    rand = [i for i in range(T) if target[i] and code[i] == 1]
    if rand:
        for i, v in zip(rand, rng.integers(N_SPECIAL, vocab_size, size=len(rand))):
            inputs[i] = int(v)
    labels = [ids[i] if target[i] else IGNORE_INDEX for i in range(T)]
    return np.array(inputs, dtype=np.int64), np.array(labels, dtype=np.int64)


CASES = [
    # (T, span, mask_prob, mask_token_frac, random_token_frac)
    (64, 1, 0.15, 0.8, 0.1),
    (64, 3, 0.15, 0.8, 0.1),
    (50, 6, 0.3, 0.8, 0.1),
    (40, 2, 0.5, 0.5, 0.25),
    (7, 4, 0.15, 0.8, 0.1),
]


@pytest.mark.parametrize("T,span,p,mf,rf", CASES)
def test_mask_tokens_equals_the_reference(T, span, p, mf, rf):
    vocab = N_SPECIAL + 4**3
    base = np.random.default_rng(T).integers(N_SPECIAL, vocab, size=T)
    base[3::11] = UNK_ID
    base[0] = CLS_ID
    for seed in range(12):
        got = mask_tokens(base, np.random.default_rng(seed), vocab_size=vocab, mask_prob=p, span=span,
                          mask_token_frac=mf, random_token_frac=rf)
        want = reference_mask(base, seed, vocab, p, span, mf, rf)
        assert got[0].dtype == np.int64 and got[1].dtype == np.int64
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (seed, got, want)


def test_mask_tokens_pinned_example():
    ids = np.arange(N_SPECIAL, N_SPECIAL + 12)
    inputs, labels = mask_tokens(ids, np.random.default_rng(3), vocab_size=N_SPECIAL + 64, mask_prob=0.3)
    want = reference_mask(ids, 3, N_SPECIAL + 64, 0.3)
    assert inputs.tolist() == want[0].tolist() and labels.tolist() == want[1].tolist()
    # targets 5, 6, 9 and 14 become [MASK] (4); target 12 is kept as it is (the 10% "keep")
    assert inputs.tolist() == [4, 4, 7, 8, 4, 10, 11, 12, 13, 4, 15, 16]
    assert labels.tolist() == [5, 6, -100, -100, 9, -100, -100, 12, -100, 14, -100, -100]


def test_every_eligible_token_a_target_at_mask_prob_one():
    ids = np.array([CLS_ID, 9, 10, UNK_ID, 11, PAD_ID, 12])
    for span in (1, 3):
        inputs, labels = mask_tokens(ids, np.random.default_rng(0), vocab_size=100, mask_prob=1.0, span=span,
                                     mask_token_frac=1.0, random_token_frac=0.0)
        assert labels.tolist() == [-100, 9, 10, -100, 11, -100, 12]
        assert inputs.tolist() == [CLS_ID, MASK_ID, MASK_ID, UNK_ID, MASK_ID, PAD_ID, MASK_ID]


def test_all_random_and_all_kept():
    ids = np.full(30, 50)
    inputs, labels = mask_tokens(ids, np.random.default_rng(1), vocab_size=N_SPECIAL + 2, mask_prob=1.0,
                                 mask_token_frac=0.0, random_token_frac=1.0)
    assert (labels == 50).all() and set(inputs.tolist()) == {N_SPECIAL, N_SPECIAL + 1}  # random k-mer ids only
    inputs, labels = mask_tokens(ids, np.random.default_rng(1), vocab_size=100, mask_prob=1.0,
                                 mask_token_frac=0.0, random_token_frac=0.0)
    assert (labels == 50).all() and (inputs == 50).all()


def test_custom_mask_id_and_no_eligible_token():
    ids = np.array([7, 8, 9])
    inputs, labels = mask_tokens(ids, np.random.default_rng(0), vocab_size=100, mask_prob=1.0,
                                 mask_token_frac=1.0, random_token_frac=0.0, mask_id=99)
    assert inputs.tolist() == [99, 99, 99] and labels.tolist() == [7, 8, 9]
    specials = np.array([PAD_ID, UNK_ID, CLS_ID, MASK_ID])
    inputs, labels = mask_tokens(specials, np.random.default_rng(0), vocab_size=100, mask_prob=0.5)
    assert inputs.tolist() == specials.tolist() and (labels == IGNORE_INDEX).all()
    inputs, labels = mask_tokens(np.zeros(0, dtype=np.int64), np.random.default_rng(0), vocab_size=100)
    assert inputs.shape == labels.shape == (0,)


def test_forced_target_covers_a_whole_span():
    """mask_prob 0: no span start is drawn, so one span is forced at a random eligible token, as [MASK]."""
    ids = np.array([CLS_ID] + list(range(10, 20)))
    for seed in range(8):
        inputs, labels = mask_tokens(ids, np.random.default_rng(seed), vocab_size=100, mask_prob=0.0, span=3)
        want = reference_mask(ids, seed, 100, 0.0, 3)
        assert np.array_equal(inputs, want[0]) and np.array_equal(labels, want[1])
        target = np.flatnonzero(labels != IGNORE_INDEX)
        assert 1 <= len(target) <= 3 and (np.diff(target) == 1).all() and (inputs[target] == MASK_ID).all()
        assert len(target) == 3 or target[-1] == len(ids) - 1  # a span cut short only by the end


@pytest.mark.parametrize("k,stride,span", [(6, 1, 6), (4, 2, 2), (3, 3, 1), (5, 2, 3), (6, 4, 2), (1, 1, 1),
                                           (8, 3, 3)])
def test_default_span_exact(k, stride, span):
    assert default_span(k, stride) == span


def test_store_dtypes_come_back_as_int64():
    """Token stores hold uint16 (k <= 7) or uint32 ids; the outputs are int64 with -100 labels, as for int64."""
    for dtype in (np.uint16, np.uint32):
        ids = np.arange(N_SPECIAL, N_SPECIAL + 20, dtype=dtype)
        inputs, labels = mask_tokens(ids, np.random.default_rng(2), vocab_size=100, mask_prob=0.3)
        want = reference_mask(ids, 2, 100, 0.3)
        assert inputs.dtype == labels.dtype == np.int64
        assert np.array_equal(inputs, want[0]) and np.array_equal(labels, want[1])
        assert (labels == IGNORE_INDEX).any()
