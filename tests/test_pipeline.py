import numpy as np
import pytest

from memjax.data import pipeline
from memjax.data.tokens import Split

# Three documents of lengths 5, 3 and 8 (end-of-text included), token values = positions.
SPLIT = Split(tokens=np.arange(16, dtype=np.uint16), offsets=np.array([0, 5, 8, 16]), n_bytes=40)


def test_pack_windows_cover_the_stream():
  ds = pipeline.examples(SPLIT, n_ctx=4, mode="pack", pad_id=0, pad_side="right")
  assert len(ds) == 4
  np.testing.assert_array_equal(ds[1]["tokens"], [4, 5, 6, 7])
  np.testing.assert_array_equal(ds[1]["mask"], [1, 1, 1, 1])


@pytest.mark.parametrize("side, tokens, mask", [
    ("right", [5, 6, 7, 99, 99, 99], [1, 1, 1, 0, 0, 0]),
    ("left", [99, 99, 99, 5, 6, 7], [0, 0, 0, 1, 1, 1]),
])
def test_pad_mode_truncates_or_pads_with_a_loss_mask(side, tokens, mask):
  ds = pipeline.examples(SPLIT, n_ctx=6, mode="pad", pad_id=99, pad_side=side)
  assert len(ds) == 3
  np.testing.assert_array_equal(ds[1]["tokens"], tokens)
  np.testing.assert_array_equal(ds[1]["mask"], mask)
  np.testing.assert_array_equal(ds[2]["tokens"], [8, 9, 10, 11, 12, 13])  # truncated


def batches(**kw):
  return pipeline.batches(SPLIT, **dict(n_ctx=2, mode="pack", pad_id=0, pad_side="right",
                                        batch_size=2, seed=3, train=True) | kw)


def first(iterator, n):
  return [next(iterator)["tokens"].tolist() for _ in range(n)]


def test_training_batches_are_deterministic_shuffled_and_reshuffled_each_epoch():
  a, b = first(iter(batches()), 8), first(iter(batches()), 8)
  assert a == b
  epoch = sorted(sum(a[:4], []))
  assert epoch == [[2 * i, 2 * i + 1] for i in range(8)]  # every window once per epoch
  assert a[:4] != a[4:8]
  assert first(iter(batches(seed=4)), 4) != a[:4]


def test_iterator_state_resumes_exactly():
  iterator = iter(batches())
  first(iterator, 3)
  state = iterator.get_state()
  expected = first(iterator, 4)
  resumed = iter(batches())
  resumed.set_state(state)
  assert first(resumed, 4) == expected


@pytest.mark.parametrize("train", [True, False])
def test_processes_read_their_rows_of_the_same_global_batches(train):
  """Two processes' shares, put side by side, are one process's batches, whatever the epoch."""
  whole = first(iter(batches(batch_size=4, train=train)), 2)
  shares = [first(iter(batches(batch_size=4, rows=rows, train=train)), 2) for rows in ((0, 2), (2, 4))]
  assert [a + b for a, b in zip(*shares)] == whole
  assert not {tuple(x) for x in sum(shares[0], [])} & {tuple(x) for x in sum(shares[1], [])}


def test_a_share_reads_only_its_examples():
  read = []
  rows = pipeline.Rows(lambda i: read.append(i) or {"tokens": np.full(2, i)}, start=2, stop=4)
  assert rows(np.array([7, 3, 5, 1]))["tokens"].tolist() == [[5, 5], [1, 1]]
  assert read == [5, 1]


def test_eval_batches_run_once_in_order():
  out = list(batches(train=False))
  assert [b["tokens"].tolist() for b in out][0] == [[0, 1], [2, 3]] and len(out) == 4


def test_errors_name_the_problem():
  with pytest.raises(ValueError, match="fewer than one batch"):
    batches(batch_size=64)
  with pytest.raises(ValueError, match="data.mode"):
    batches(mode="stream")
  with pytest.raises(ValueError, match=r"rows \[2, 6\) are not inside a batch of 4"):
    batches(batch_size=4, rows=(2, 6))
