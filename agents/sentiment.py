"""Customer sentiment per message: VADER's compound score (-1 very negative … +1 very positive), offline."""

from __future__ import annotations

from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

RETAIL_NEUTRAL = ("cancel", "cancelled", "canceled", "cancelling", "canceling", "mistake", "mistakenly")
"""Words VADER scores as negative that, to a store, name an order action ("cancel it, ordered by mistake") rather
than a feeling: scored neutral, so asking for a cancellation never reads as a customer getting angry."""


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    analyzer = SentimentIntensityAnalyzer()
    for word in RETAIL_NEUTRAL:
        analyzer.lexicon.pop(word, None)
    return analyzer


def sentiment(text: str) -> float:
    """The compound sentiment of `text`, rounded to three places; 0.0 for empty text."""
    if not text.strip():
        return 0.0
    return round(float(_analyzer().polarity_scores(text)["compound"]), 3)
