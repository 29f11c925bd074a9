"""Sensitive topics recognised by meaning: the customer's sentences beside labelled examples.

The escalation policy's rules (`graphs.policy.SENSITIVE_TOPICS`) catch the usual wording of an injury, a theft, a
dispute with the bank or harassment. People describe these in words no rule lists ("the heater's cord melted and
my boy's fingers blistered", "a guy walked off with the box from my step"), so each sentence of the customer's
turn is also compared with labelled examples (`data/concerns.jsonl`: sentences of each topic and ordinary support
questions that share their words — "is this toy safe for a three year old", "I was double charged"). A sentence
raises a topic when its nearest examples are of that topic, close enough, and clearly closer than the nearest
ordinary question. The policy decides what follows (priority by topic, the hand-off wording); this module only
says which topic, if any, and which sentence.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from threadline.agents.intents import Matrix, canonical, example_matrix, shared_query_vector

DATA = Path(__file__).parent / "data" / "concerns.jsonl"
ORDINARY = "none"
TOPICS = ("safety", "theft", "fraud_or_legal", "harassment")
"""The topics, as `graphs.policy.SENSITIVE_TOPICS` names them."""
MAX_SENTENCES = 6
"""A long email's sentences compared at most (its longest ones)."""
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+|;\s*")
_QUESTION = re.compile(
    r"^\W*(?:is|are|can|could|does|do|did|will|would|should|how|what|which|when|where|why|any)\b[^?]*\?\W*$", re.I
)
"""A question ("is the heater safe around kids?") asks about a topic; an incident is told."""


@dataclass(frozen=True)
class Concern:
    """A sensitive topic found in a customer's sentence."""

    topic: str
    sentence: str
    score: float
    """The topic's similarity (the mean of its two nearest examples)."""


def load_examples(path: Path = DATA) -> list[tuple[str, str]]:
    """The labelled sentences: (text, topic or `none`)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    unknown = {r["topic"] for r in rows} - {*TOPICS, ORDINARY}
    if unknown:
        raise ValueError(f"unknown topics in {path.name}: {sorted(unknown)}")
    return [(str(r["text"]), str(r["topic"])) for r in rows]


def sentences(text: str) -> list[str]:
    """The sentences worth comparing: statements of three words or more (not questions), the longest
    `MAX_SENTENCES` in their order."""
    found = [s.strip() for s in _SENTENCES.split(text) if len(s.split()) >= 3 and not _QUESTION.match(s.strip())]
    if len(found) > MAX_SENTENCES:
        keep = set(sorted(range(len(found)), key=lambda i: -len(found[i]))[:MAX_SENTENCES])
        found = [s for i, s in enumerate(found) if i in keep]
    return found


class ConcernDetector:
    """Nearest labelled examples per sentence; deterministic. `threshold` is the similarity a topic needs,
    `margin` how far ahead of the nearest ordinary question it must be."""

    def __init__(
        self,
        embeddings: Embeddings,
        examples: list[tuple[str, str]] | None = None,
        *,
        cache_dir: Path | None = None,
        threshold: float = 0.45,
        margin: float = 0.05,
    ) -> None:
        rows = examples if examples is not None else load_examples()
        self._embeddings = embeddings
        labels = np.array([topic for _, topic in rows])
        self._masks = {label: labels == label for label in (*TOPICS, ORDINARY)}
        """Each label's rows of the matrix, found once rather than on every sentence of every guard step."""
        self._matrix = example_matrix(embeddings, [canonical(text) for text, _ in rows], cache_dir, "concern")
        self._threshold, self._margin = threshold, margin

    def detect(self, text: str) -> Concern | None:
        """The strongest sensitive topic in the customer's text, if any sentence raises one."""
        found = [c for c in (self._sentence(s) for s in sentences(text)) if c is not None]
        return max(found, key=lambda c: c.score) if found else None

    def scores(self, sentence: str) -> dict[str, float]:
        """Each label's similarity to one sentence: the mean of its two nearest examples."""
        sims = self._matrix @ self._vector(sentence)
        return {label: _top2(sims[mask]) for label, mask in self._masks.items()}

    def _sentence(self, sentence: str) -> Concern | None:
        scores = self.scores(sentence)
        topic = max(TOPICS, key=lambda t: scores[t])
        best = scores[topic]
        if best < self._threshold or best < scores[ORDINARY] + self._margin:
            return None
        return Concern(topic, sentence, round(best, 4))

    def _vector(self, sentence: str) -> Matrix:
        return shared_query_vector(self._embeddings, canonical(sentence))


def _top2(sims: Matrix) -> float:
    if sims.size == 0:
        return 0.0
    best = np.sort(sims)[-2:]
    return float(best.mean())
