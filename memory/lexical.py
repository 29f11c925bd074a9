"""BM25 over chunk texts (bm25s), keyed by the same ids as the vector index.

bm25s has no incremental update, so a `LexicalIndex` is an immutable snapshot: `replaced` returns a new one with
some ids dropped and others added. Each text is tokenised once (tokens are cached per id), so a change only
re-counts the corpus, and the new snapshot is built outside any lock while searches keep using the old one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import bm25s
import numpy as np
import numpy.typing as npt
import Stemmer

_stemmer = Stemmer.Stemmer("english")
logger = logging.getLogger(__name__)
Ids = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased word tokens with English stop words removed and Snowball stemming."""
    if not texts:
        return []
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer, return_ids=False, show_progress=False)
    return [list(row) for row in tokens]


class LexicalIndex:
    """A BM25 snapshot over `{id: text}`; `scores` answers in the id space of the vector index."""

    def __init__(self, tokens: Mapping[int, list[str]] | None = None, *, k1: float = 1.5, b: float = 0.75) -> None:
        """Index pre-tokenised texts (see `tokenize`); use `from_texts` or `replaced` rather than this directly."""
        self._k1, self._b = k1, b
        self._tokens: dict[int, list[str]] = dict(tokens or {})
        self._ids: Ids = np.fromiter(self._tokens, dtype=np.int64, count=len(self._tokens))
        self._position = {vid: i for i, vid in enumerate(self._tokens)}
        self._bm25: bm25s.BM25 | None = None
        if self._tokens:
            self._bm25 = bm25s.BM25(k1=k1, b=b)
            self._bm25.index(list(self._tokens.values()), show_progress=False)

    @classmethod
    def from_texts(cls, texts: Mapping[int, str]) -> LexicalIndex:
        """Tokenise and index `texts`."""
        ids = list(texts)
        return cls(dict(zip(ids, tokenize([texts[i] for i in ids]), strict=True)))

    def __len__(self) -> int:
        return len(self._tokens)

    def replaced(self, remove: Iterable[int], add: Mapping[int, str]) -> LexicalIndex:
        """A new snapshot without `remove` and with `add`; only the added texts are tokenised."""
        tokens = dict(self._tokens)
        for vid in remove:
            tokens.pop(vid, None)
        ids = list(add)
        tokens.update(zip(ids, tokenize([add[i] for i in ids]), strict=True))
        return LexicalIndex(tokens, k1=self._k1, b=self._b)

    def query(self, query: str) -> LexicalHits:
        """BM25 of `query` against every indexed text.

        Repeated query words count repeatedly (a long request that keeps naming "credit card" is about that).
        """
        if self._bm25 is None:
            return LexicalHits(self._ids, np.zeros(0, dtype=np.float32), self._position)
        vocabulary = self._bm25.vocab_dict
        words = [word for word in tokenize([query])[0] if word in vocabulary]
        if not words:
            return LexicalHits(self._ids, np.zeros(len(self._ids), dtype=np.float32), self._position)
        return LexicalHits(self._ids, np.asarray(self._bm25.get_scores(words), dtype=np.float32), self._position)


class LexicalHits:
    """One query's BM25 scores over a snapshot."""

    def __init__(self, ids: Ids, scores: Scores, position: Mapping[int, int]) -> None:
        self.ids, self.scores, self._position = ids, scores, position

    def top(self, k: int) -> tuple[Ids, Scores]:
        """The `k` best-scoring ids with a positive score, best first."""
        if not len(self.scores) or k <= 0:
            return self.ids[:0], self.scores[:0]
        k = min(k, len(self.scores))
        part = np.argpartition(-self.scores, k - 1)[:k]
        order = part[np.argsort(-self.scores[part], kind="stable")]
        order = order[self.scores[order] > 0]
        return self.ids[order], self.scores[order]

    def ranks(self, ids: Ids) -> npt.NDArray[np.float64]:
        """Each id's 1-based rank among all indexed texts (ties share the best rank); inf where it scores 0."""
        result = np.full(len(ids), np.inf)
        if not len(self.scores):
            return result
        ascending = np.sort(self.scores)
        for i, vid in enumerate(ids.tolist()):
            position = self._position.get(vid)
            if position is not None and self.scores[position] > 0:
                above = len(ascending) - int(np.searchsorted(ascending, self.scores[position], side="right"))
                result[i] = above + 1
        return result
