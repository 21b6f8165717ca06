"""plan_splits and the window N filter at their edges: fraction bounds, exact sizes, the gap, exact plans.

No FASTA needed for the plans (record lengths only); the window tests write a tiny FASTA. Each test well under
a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from genomics_lm.errors import UserError
from genomics_lm.genome import Genome, SplitPlan, iter_window_batches, iter_windows, n_windows, plan_splits

TEN = {f"c{i}": 10 for i in range(10)}  # ten records of 10 bp: 100 bp in all


@pytest.mark.parametrize("val,test", [(0.0, 0.0), (0.0, 0.5), (0.5, 0.0), (0.6, 0.39), (0.999, 0.0)])
def test_fractions_accepted(val, test):
    plan = plan_splits({"a": 1000}, mode="regions", val_frac=val, test_frac=test, block_bp=100, gap_bp=0)
    assert plan.params["val_frac"] == val and plan.params["test_frac"] == test


@pytest.mark.parametrize("val,test", [(-0.5, 0.1), (0.1, -0.5), (1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.7, 0.31)])
def test_fractions_refused_with_the_values(val, test):
    with pytest.raises(UserError) as info:
        plan_splits({"a": 1000}, val_frac=val, test_frac=test)
    assert str(info.value) == f"val_frac={val} and test_frac={test} must be in [0, 1) and sum to less than 1"


def test_defaults_recorded_exactly():
    plan = plan_splits({"a": 1000})  # one record: regions with 100 kb blocks, i.e. a single train block
    assert plan.mode == "regions"
    assert plan.params == {"val_frac": 0.1, "test_frac": 0.1, "seed": 0, "block_bp": 100_000, "gap_bp": 25_000}
    assert plan.to_dict() == {"mode": "regions", "params": plan.params,
                              "intervals": {"train": [["a", 0, 1000]], "val": [], "test": []}}


def test_auto_mode_switches_at_min_chroms():
    nine = {f"c{i}": 10 for i in range(9)}
    assert plan_splits(nine, block_bp=5, gap_bp=1).mode == "regions"
    assert plan_splits(TEN).mode == "chromosomes"  # exactly min_chroms=10 records
    assert plan_splits(TEN, min_chroms=11, block_bp=5, gap_bp=1).mode == "regions"
    # a held-out name alone (val only, or test only) means chromosomes
    assert plan_splits({"a": 10, "b": 10}, val_chroms=["b"]).mode == "chromosomes"
    assert plan_splits({"a": 10, "b": 10}, test_chroms=["b"]).mode == "chromosomes"


def test_drawn_chromosomes_fill_each_split_to_its_share():
    """Ten 10 bp records: val 20% = exactly two records, test 30% = exactly three (a split stops once it has
    its share, not one record later); the draw is pinned for seed 0."""
    plan = plan_splits(TEN, val_frac=0.2, test_frac=0.3)
    assert plan.mode == "chromosomes"
    assert plan.params == {"val_frac": 0.2, "test_frac": 0.3, "seed": 0,
                           "val_chroms": ["c4", "c6"], "test_chroms": ["c2", "c3", "c7"]}
    assert plan.intervals == {
        "train": [("c0", 0, 10), ("c1", 0, 10), ("c5", 0, 10), ("c8", 0, 10), ("c9", 0, 10)],
        "val": [("c4", 0, 10), ("c6", 0, 10)],
        "test": [("c2", 0, 10), ("c3", 0, 10), ("c7", 0, 10)],
    }
    assert (plan.bp("train"), plan.bp("val"), plan.bp("test")) == (50, 20, 30)


def test_a_tiny_share_still_takes_one_chromosome():
    """val 1% of 100 bp = 1 bp: the first drawn record goes to val (a share above 0 is never left empty)."""
    plan = plan_splits(TEN, val_frac=0.01, test_frac=0.01)
    assert len(plan.params["val_chroms"]) == 1 and len(plan.params["test_chroms"]) == 1
    assert plan_splits(TEN, val_frac=0.0, test_frac=0.0).params["val_chroms"] == []


def test_held_out_names_errors_exact():
    twelve = {f"r{i}": 5 for i in range(12)}
    with pytest.raises(UserError) as info:
        plan_splits(twelve, val_chroms=["chrX"])
    assert str(info.value) == ("held-out chromosome 'chrX' is not in the genome (records: "
                               "r0, r1, r2, r3, r4, r5, r6, r7, r8, r9...)")
    with pytest.raises(UserError) as info:
        plan_splits(twelve, val_chroms=["r1", "r2"], test_chroms=["r2", "r3"])
    assert str(info.value) == "chromosomes ['r2'] are both val and test"
    plan = plan_splits(twelve, val_chroms=["r3", "r1"], test_chroms=["r2"])
    assert plan.params == {"val_frac": 0.1, "test_frac": 0.1, "seed": 0, "val_chroms": ["r1", "r3"],
                           "test_chroms": ["r2"]}


def test_region_plan_exact():
    """1 kb in 10 blocks of 100 bp, gap 10: val takes 2 blocks (20%), test 1 (10%); a block after a block of
    another split loses its first 10 bp; runs of one split are merged."""
    plan = plan_splits({"a": 1000}, block_bp=100, gap_bp=10, val_frac=0.2, test_frac=0.1)
    assert plan.intervals == {
        "train": [("a", 0, 400), ("a", 510, 600), ("a", 810, 1000)],
        "val": [("a", 410, 500), ("a", 610, 700)],
        "test": [("a", 710, 800)],
    }
    assert plan.params == {"val_frac": 0.2, "test_frac": 0.1, "seed": 0, "block_bp": 100, "gap_bp": 10}


def test_region_gap_never_crosses_records():
    """The first block of a record never loses a gap (the previous block is another record's)."""
    plan = plan_splits({"a": 300, "b": 300}, block_bp=100, gap_bp=30, val_frac=0.34, test_frac=0.17, seed=1)
    starts = {s for split in plan.intervals.values() for name, s, _ in split if name == "b"}
    assert 0 in starts
    for split, ivs in plan.intervals.items():
        for other, jvs in plan.intervals.items():
            if other == split:
                continue
            for n1, s1, e1 in ivs:
                for n2, s2, e2 in jvs:
                    if n1 == n2:
                        assert s2 - e1 >= 30 or s1 - e2 >= 30, (split, other, (s1, e1), (s2, e2))


def test_split_plan_to_dict_and_bp():
    plan = SplitPlan("regions", {"train": [("a", 0, 5), ("b", 2, 9)], "val": [], "test": [("a", 7, 8)]}, {"x": 1})
    assert plan.to_dict() == {"mode": "regions", "params": {"x": 1},
                              "intervals": {"train": [["a", 0, 5], ["b", 2, 9]], "val": [], "test": [["a", 7, 8]]}}
    assert (plan.bp("train"), plan.bp("val"), plan.bp("test")) == (12, 0, 1)


# -- windows -----------------------------------------------------------------------------------------


@pytest.fixture
def tiny_genome(tmp_path):
    # record a: 40 bp; bases 10..13 are N (4 N's), base 30 is n; record b: 12 bp of ACGT
    a = "ACGTACGTAC" + "NNNN" + "GTACGTACGTACGTAC" + "n" + "acgtacgta"
    assert len(a) == 40
    (tmp_path / "g.fa").write_text(f">a\n{a}\n>b\nACGTACGTACGT\n")
    return Genome(tmp_path / "g.fa", cache_dir=tmp_path / "cache")


def test_n_windows_exact():
    assert [n_windows(L, 10, 5) for L in (0, 9, 10, 14, 15, 40)] == [0, 0, 1, 1, 2, 7]
    assert n_windows(40, 10, 10) == 4


def test_window_n_filter_exact(tiny_genome):
    """Windows of 10 at step 5 over a[0:40]: N counts 0, 4 (of 10), 4 (of 10), 0, 0, 1, 1 -> with max 0.3 the
    two 40% windows go; with max 0.4 (exactly 40%) they stay; with 0.0 every window with an N goes."""
    stats = {}
    wins = list(iter_windows(tiny_genome, [("a", 0, 40)], 10, step_bp=5, max_n_frac=0.3, stats=stats))
    assert [(w.seqid, w.start, w.end) for w in wins] == [("a", s, s + 10) for s in (0, 15, 20, 25, 30)]
    assert stats == {"kept": 5, "skipped_n": 2, "bp": 50}
    assert [w.seq for w in wins][-1] == "nacgtacgta"  # case as in the file
    assert [w.start for w in iter_windows(tiny_genome, [("a", 0, 40)], 10, 5, max_n_frac=0.4)] == [0, 5, 10, 15, 20,
                                                                                                  25, 30]
    assert [w.start for w in iter_windows(tiny_genome, [("a", 0, 40)], 10, 5, max_n_frac=0.0)] == [0, 15, 20]


def test_window_batches_exact(tiny_genome):
    """Pieces of 20 bp hold windows of 10 at step 5 -> 3 windows per piece; stats add up over batches and
    intervals (an existing stats dict is added to, not reset); the last partial window is dropped."""
    stats = {"kept": 1, "skipped_n": 1, "bp": 1}
    batches = list(iter_window_batches(tiny_genome, [("a", 0, 40), ("b", 1, 12)], 10, 5, max_n_frac=0.3,
                                       stats=stats, piece_bp=20))
    got = [(b.seqid, b.start, b.end, b.offsets.tolist(), b.n_skipped) for b in batches]
    assert got == [("a", 0, 20, [0], 2), ("a", 15, 35, [0, 5, 10], 0), ("a", 30, 40, [0], 0), ("b", 1, 11, [0], 0)]
    assert stats == {"kept": 1 + 6, "skipped_n": 1 + 2, "bp": 1 + 60}
    assert batches[1].starts.tolist() == [15, 20, 25] and batches[0].window_bp == 10
    w = list(batches[3].windows())
    assert [(x.seqid, x.start, x.end, x.seq) for x in w] == [("b", 1, 11, "CGTACGTACG")]
    # default step = window; piece smaller than a window still reads whole windows
    assert [w.start for w in iter_windows(tiny_genome, [("b", 0, 12)], 4)] == [0, 4, 8]
    assert [(b.start, b.offsets.tolist()) for b in iter_window_batches(tiny_genome, [("b", 0, 12)], 4, piece_bp=1)] \
        == [(0, [0]), (4, [0]), (8, [0])]


def test_window_arguments_refused(tiny_genome):
    with pytest.raises(UserError, match="^window_bp must be positive, got 0$"):
        list(iter_window_batches(tiny_genome, [("a", 0, 40)], 0))
    with pytest.raises(UserError, match="^step_bp must be positive, got 0$"):
        list(iter_window_batches(tiny_genome, [("a", 0, 40)], 10, step_bp=0))


def test_default_n_filter_is_ten_percent(tiny_genome):
    """Default max_n_frac 0.1: a window of 10 with exactly one N is kept, one with four is not."""
    assert [w.start for w in iter_windows(tiny_genome, [("a", 0, 40)], 10, 5)] == [0, 15, 20, 25, 30]
    assert np.isclose([w.n_frac for w in iter_windows(tiny_genome, [("a", 25, 35)], 10)][0], 0.1)


def test_block_and_gap_bounds_exact():
    for block, gap in ((0, 0), (-5, 0), (100, -1), (100, 100), (100, 150)):
        with pytest.raises(UserError) as info:
            plan_splits({"a": 1000}, mode="regions", block_bp=block, gap_bp=gap)
        assert str(info.value) == f"need block_bp > gap_bp >= 0, got block_bp={block}, gap_bp={gap}"
    plan = plan_splits({"a": 5}, mode="regions", block_bp=1, gap_bp=0, val_frac=0.2, test_frac=0.2)
    assert (plan.bp("train"), plan.bp("val"), plan.bp("test")) == (3, 1, 1)
    plan = plan_splits({"a": 1000}, mode="regions", block_bp=100, gap_bp=99, val_frac=0.1, test_frac=0.1)
    assert plan.bp("val") + plan.bp("test") == 2  # each held-out block follows a train block: 1 bp left each
    with pytest.raises(UserError) as info:
        plan_splits({"a": 10}, mode="genes")
    assert str(info.value) == "unknown split mode 'genes' (choose auto, chromosomes or regions)"


@pytest.mark.parametrize("val_frac,blocks", [(0.01, 1), (0.24, 2), (0.25, 3), (0.26, 3), (0.0, 0)])
def test_region_shares_round_to_the_nearest_block(val_frac, blocks):
    """Ten 100 bp blocks: a block joins val while that brings val closer to its target (a tie joins); a split
    with a share above 0 gets at least one block."""
    plan = plan_splits({"a": 1000}, mode="regions", block_bp=100, gap_bp=0, val_frac=val_frac, test_frac=0.0)
    assert plan.bp("val") == 100 * blocks and plan.bp("test") == 0
    assert plan.bp("train") == 1000 - 100 * blocks


def test_tiny_share_of_two_blocks_stays_empty():
    """Fewer than three blocks: no block is forced into a split whose share rounds to zero blocks."""
    plan = plan_splits({"a": 200}, mode="regions", block_bp=100, gap_bp=0, val_frac=0.1, test_frac=0.1)
    assert plan.intervals == {"train": [("a", 0, 200)], "val": [], "test": []}


def test_window_of_one_base_and_step_of_one(tiny_genome):
    assert [w.seq for w in iter_windows(tiny_genome, [("b", 0, 4)], 1)] == ["A", "C", "G", "T"]
    assert [w.start for w in iter_windows(tiny_genome, [("b", 0, 5)], 3, step_bp=1)] == [0, 1, 2]
    assert [b.offsets.tolist() for b in iter_window_batches(tiny_genome, [("a", 0, 40)], 10, 5)] == [[0, 15, 20, 25, 30]]


def test_window_batch_keeps_non_ascii_bytes_readable():
    from genomics_lm.genome import WindowBatch

    batch = WindowBatch("s", 7, b"AC\xe9GT", np.array([0, 1]), 4, 0)
    assert [(w.seqid, w.start, w.end, w.seq) for w in batch.windows()] == [
        ("s", 7, 11, "AC\ufffdG"), ("s", 8, 12, "C\ufffdGT")]
    assert batch.end == 12 and batch.starts.tolist() == [7, 8]


def test_region_plan_two_records_exact():
    """Two records, 100 bp blocks, gap 60 (seed 1): the gap is cut after every change of split inside a record,
    never at a record's first block; a short last block (50 and 20 bp) after a change is dropped whole, and
    the blocks after it are still assigned."""
    plan = plan_splits({"a": 350, "b": 420}, mode="regions", block_bp=100, gap_bp=60, val_frac=0.25,
                       test_frac=0.25, seed=1)
    assert plan.intervals == {
        "train": [("a", 160, 200), ("b", 160, 300)],
        "val": [("a", 0, 100), ("b", 360, 400)],
        "test": [("a", 260, 300), ("b", 0, 100)],
    }


def test_region_plan_first_block_has_no_gap():
    """Seed 4: block 0 is test, the last block train; block 0 starts at 0 (no block before it)."""
    plan = plan_splits({"a": 500}, mode="regions", block_bp=100, gap_bp=10, val_frac=0.2, test_frac=0.2, seed=4)
    assert plan.intervals == {"train": [("a", 110, 200), ("a", 310, 500)], "val": [("a", 210, 300)],
                              "test": [("a", 0, 100)]}


def test_three_blocks_give_each_split_one():
    plan = plan_splits({"a": 300}, mode="regions", block_bp=100, gap_bp=0, val_frac=0.1, test_frac=0.1)
    assert plan.intervals == {"train": [("a", 0, 100)], "val": [("a", 200, 300)], "test": [("a", 100, 200)]}
