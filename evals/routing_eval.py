"""Labelled routing sets: which of five routes a customer message should take, scored for a router and for a
plain 1-nearest-neighbour baseline.

A route is the first thing the assistant does with a message: `lookup_order`, `search_knowledge`,
`recall_context`, `escalate_to_human`, or `none` (small talk and out-of-scope: answered without a tool).

The offline model routes by intent; `INTENT_ROUTES` is the one table from its intents to routes (it mirrors the
offline policy's first step). The dev sets in `evals/routing/` are labelled from their sources by
`evals/routing/build_dev_sets.py`:

- `lookup_order`: intents order_status, order_history; bitext track_order, check_invoice, get_invoice, and
  delivery_period when it names "my order / parcel / …"; clinc150 order_status.
- `search_knowledge`: intents knowledge_question, return_or_exchange, refund, cancel_order, complaint; the other
  20 bitext intents (policies, delivery, payment, account, refunds, cancellation, complaint, review, newsletter, …)
  and contact_customer_service asking for opening hours.
- `recall_context`: intent recall (neither source has it).
- `escalate_to_human`: intent human_request; bitext contact_human_agent, contact_customer_service.
- `none`: intents greeting, thanks, goodbye, smalltalk, out_of_scope, affirm, deny, verification, unknown; every
  other clinc150 intent (small talk, oos, the nine other domains), minus cancel, maybe, repeat, order and
  card_declined, left out as ambiguous for a retailer.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from threadline.core.errors import InvalidInputError
from threadline.core.tool_names import ESCALATE_TO_HUMAN, LOOKUP_ORDER, RECALL_CONTEXT, SEARCH_KNOWLEDGE

ROUTES = (LOOKUP_ORDER, SEARCH_KNOWLEDGE, RECALL_CONTEXT, ESCALATE_TO_HUMAN, "none")
INTENT_ROUTES: dict[str, str] = {
    "order_status": LOOKUP_ORDER,
    "order_history": LOOKUP_ORDER,
    "knowledge_question": SEARCH_KNOWLEDGE,
    "return_or_exchange": SEARCH_KNOWLEDGE,
    "refund": SEARCH_KNOWLEDGE,
    "cancel_order": SEARCH_KNOWLEDGE,
    "complaint": SEARCH_KNOWLEDGE,
    "recall": RECALL_CONTEXT,
    "human_request": ESCALATE_TO_HUMAN,
    "greeting": "none",
    "thanks": "none",
    "goodbye": "none",
    "smalltalk": "none",
    "out_of_scope": "none",
    "affirm": "none",
    "deny": "none",
    "verification": "none",
    "speaker_change": "none",  # identity bookkeeping (change_speaker), like verification: no routed tool
    "unknown": "none",
}
DEV_DIR = Path(__file__).resolve().parent / "routing"
DEV_SETS = ("bitext_dev.jsonl", "clinc150_dev.jsonl")
Router = Callable[[Sequence[str]], list[str]]


@dataclass(frozen=True)
class Labelled:
    """One message and the route it should take."""

    text: str
    route: str


def load_routing_set(path: Path) -> list[Labelled]:
    """`{"text", "route"}` lines; a clear error on a bad line or an unknown route."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InvalidInputError(f"cannot read {path}: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, route = str(row["text"]), str(row["route"])
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidInputError(f"{path}:{number}: expected a JSON object with text and route") from error
        if route not in ROUTES:
            raise InvalidInputError(f"{path}:{number}: unknown route {route!r} (one of {', '.join(ROUTES)})")
        rows.append(Labelled(text, route))
    if not rows:
        raise InvalidInputError(f"{path} holds no labelled lines")
    return rows


def score(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-route precision / recall / support, and the confusion matrix (gold -> predicted -> n)."""
    confusion: dict[str, Counter[str]] = {route: Counter() for route in ROUTES}
    for want, got in zip(gold, predicted, strict=True):
        confusion[want][got] += 1
    per_route = {}
    for route in ROUTES:
        n = sum(confusion[route].values())
        predicted_n = sum(confusion[g][route] for g in ROUTES)
        hits = confusion[route][route]
        if n or predicted_n:
            per_route[route] = {
                "precision": round(hits / predicted_n, 4) if predicted_n else 0.0,
                "recall": round(hits / n, 4) if n else None,
                "n": n,
            }
    correct = sum(w == g for w, g in zip(gold, predicted, strict=True))
    return {
        "accuracy": round(correct / len(gold), 4) if gold else 0.0,
        "per_route": per_route,
        "confusion": {g: dict(sorted(c.items())) for g, c in confusion.items() if c},
    }


class NearestNeighbour:
    """The baseline: the route of the single most similar training example (cosine over the embeddings)."""

    def __init__(self, embeddings: Embeddings, texts: Sequence[str], routes: Sequence[str]) -> None:
        self._embeddings = embeddings
        self._routes = list(routes)
        self._matrix = _unit(embeddings.embed_documents(list(texts)))

    def __call__(self, texts: Sequence[str]) -> list[str]:
        queries = _unit(self._embeddings.embed_documents(list(texts)))
        return [self._routes[int(i)] for i in np.argmax(queries @ self._matrix.T, axis=1)]


def _unit(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def evaluate_routing(labelled: Sequence[Labelled], router: Router, baseline: Router) -> dict[str, Any]:
    """The router's figures, with the baseline's beside them under `baseline`."""
    gold, texts = [row.route for row in labelled], [row.text for row in labelled]
    result = score(gold, router(texts))
    result["n"] = len(labelled)
    result["baseline"] = score(gold, baseline(texts))
    return result
