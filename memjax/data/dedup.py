"""Near-duplicate removal by word-shingle containment, so that held-out text is never seen in training.

A document's containment in a set of others is the fraction of its w-word shingles (every run of w
consecutive whitespace-separated, lower-cased words) that occur in any of them. `near_duplicates`
drops documents, most contained first, until every kept document's containment in all the other
kept ones is below the threshold. The guarantee holds for any split of the kept documents: a
held-out document is contained in the training documents at most as much as in all the others.
"""

from __future__ import annotations

import collections
from typing import Sequence

SHINGLE_WORDS = 8
# Containment at or above which a document counts as a near-copy. The embedded corpus's duplicated
# pydoc topics (`try` in `compound`, `in` in `comparisons`, `if` = `else`) and the encodings'
# boilerplate docstrings are mostly contained in another document, while most documents share
# none of their 8-word shingles and others mostly stock phrases ("Return a new ... object"); the
# containments and the command that measures them: benchmarks/README.md.
THRESHOLD = 0.25


def shingles(text: str, words: int = SHINGLE_WORDS) -> frozenset[str]:
  """The set of `words`-word shingles of `text` (the whole text if it is shorter)."""
  tokens = text.lower().split()
  if len(tokens) <= words:
    return frozenset([" ".join(tokens)] if tokens else [])
  return frozenset(" ".join(tokens[i:i + words]) for i in range(len(tokens) - words + 1))


def near_duplicates(texts: Sequence[str], threshold: float = THRESHOLD,
                    words: int = SHINGLE_WORDS) -> set[int]:
  """Indices of the documents to drop (greedy: the most contained, then the shortest, goes first)."""
  sets = [shingles(text, words) for text in texts]
  holders: dict[str, list[int]] = collections.defaultdict(list)
  for index, shingle_set in enumerate(sets):
    for shingle in shingle_set:
      holders[shingle].append(index)
  shared = [sum(len(holders[s]) > 1 for s in shingle_set) for shingle_set in sets]
  dropped: set[int] = set()

  def containment(index: int) -> float:
    return shared[index] / max(len(sets[index]), 1)

  while True:
    alive = [i for i in range(len(sets)) if i not in dropped and sets[i]]
    worst = max(alive, key=lambda i: (containment(i), -len(sets[i]), -i), default=None)
    if worst is None or containment(worst) < threshold:
      return dropped
    dropped.add(worst)
    for shingle in sets[worst]:
      others = holders[shingle]
      others.remove(worst)
      if len(others) == 1:  # the last holder no longer shares this shingle
        shared[others[0]] -= 1
