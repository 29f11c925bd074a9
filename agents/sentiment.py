"""Customer sentiment per message: VADER's compound score (-1 very negative … +1 very positive), offline, read as a
store reads a support message.

VADER was built on social media posts. Support messages differ: "please" and "help" are courtesy, not delight;
"unbelievable" and "a joke" are exasperation; frustration hides in phrases ("fed up", "thanks for nothing",
"waiting two weeks", "get me a manager") and sarcasm ("great, just great") that VADER scores word by word as
praise. Before scoring, typographic punctuation is made plain (VADER strips only ASCII punctuation, so
"ridiculous…" would be an unknown word), everyday misspellings are corrected, and those phrases become single words
with the valence a support desk hears in them.
"""

from __future__ import annotations

import re
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from threadline.agents.typos import spelled

RETAIL_NEUTRAL = (
    "cancel",
    "cancelled",
    "canceled",
    "cancelling",
    "canceling",
    "mistake",
    "mistakenly",
    "please",
    "help",
)
"""Words VADER scores that, to a store, name an order action ("cancel it, ordered by mistake") or are courtesy
("please help me with my order") rather than a feeling: scored neutral, so asking for a cancellation never reads as
a customer getting angry and a polite request never hides an angry one."""

RETAIL_VALENCE = {
    "unbelievable": -1.8,
    "disgraceful": -2.5,
    "ripoff": -2.5,
    "scammed": -2.7,
    "clueless": -1.8,
}
"""Words whose everyday sense in a support message is a complaint (VADER has "unbelievable" as praise)."""

MISSPELLED = {
    "rediculous": "ridiculous",
    "ridiculus": "ridiculous",
    "ridicolous": "ridiculous",
    "rediculus": "ridiculous",
    "unbeleivable": "unbelievable",
    "unbelieveable": "unbelievable",
    "unbelivable": "unbelievable",
    "terible": "terrible",
    "horible": "horrible",
    "horrable": "horrible",
    "discusting": "disgusting",
    "dissapointed": "disappointed",
    "disapointed": "disappointed",
    "dissappointed": "disappointed",
    "frustated": "frustrated",
    "furstrated": "frustrated",
    "unnacceptable": "unacceptable",
    "unacceptible": "unacceptable",
    "wrost": "worst",
    "awfull": "awful",
    "usless": "useless",
    "useles": "useless",
    "pathetc": "pathetic",
    "incompetant": "incompetent",
    "waitng": "waiting",
    "wating": "waiting",
    "waitin": "waiting",
}
"""Misspellings of the words that carry a complaint, beyond the everyday ones `agents/typos.py` corrects."""

_NUMBER = r"(?:\d+|a|one|two|three|four|five|six|several|many|few)"
_PHRASES: tuple[tuple[str, float, str], ...] = (
    # Sarcasm: praise repeated, thanks for nothing.
    ("sarcasm_praise", -2.4, r"\b(great|perfect|wonderful|fantastic|brilliant|lovely|awesome|nice)\W+just \1\b"),
    (
        "thanks_for_nothing",
        -2.6,
        r"\b(?:(?:wow|oh|well|gee),? )?(?:thanks?|thank you) (?:for|4) "
        r"(?:nothing|absolutely nothing|not(?:hing)? helping)\b",
    ),
    (
        "a_joke",
        -2.0,
        r"\b(?:(?:this|that|it)(?:'s| is| was)|is this|what) (?:a |such a |an absolute )?(?:joke|farce)\b",
    ),
    ("yeah_right", -1.5, r"\byeah,? right\b"),
    ("kidding_me", -1.8, r"\b(?:are|r) (?:you|u) (?:kidding|joking|serious)(?: me)?\b"),
    # Frustration.
    ("fed_up", -2.3, r"\b(?:fed up|sick (?:and tired )?of|had enough|had it with|done with (?:this|you))\b"),
    ("waste_time", -2.2, r"\bwast(?:e|ed|ing) (?:of )?(?:my|our) (?:time|money)\b"),
    (
        "never_again",
        -2.0,
        r"\bnever (?:again|(?:order(?:ing)?|shop(?:ping)?) (?:from (?:you|here|this store)|here) again)\b",
    ),
    # Waiting and asking again: the complaint is the time lost.
    (
        "long_wait",
        -1.6,
        rf"\b(?:(?:been |still )waiting|waited)(?: for)?(?: over| more than| almost)? {_NUMBER} "
        rf"(?:days?|weeks?|months?|hours?)\b|\b{_NUMBER} (?:days?|weeks?|months?) (?:and|later)(?: still)? "
        r"(?:nothing|no\b|not)",
    ),
    ("still_not", -1.2, r"\bstill (?:no\b|nothing|not\b|hasn'?t|haven'?t|isn'?t|doesn'?t|waiting)"),
    (
        "again_and_again",
        -1.8,
        r"\bfor the (?:last|umpteenth) time\b|\b(?:for )?the (?:third|fourth|fifth|\d+(?:rd|th)|umpteenth) time\b",
    ),
    # A cancellation's reason is not a feeling ("no longer needed").
    ("no_longer", 0.0, r"\bno longer\b"),
    # Wanting someone above the person answering.
    (
        "wants_manager",
        -1.6,
        r"\b(?:get|give|want|need|speak to|talk to|put me through to) (?:me )?(?:a|your|the|ur) "
        r"(?:manager|supervisor|boss)\b",
    ),
)
PHRASES = tuple((marker, valence, re.compile(pattern, re.I)) for marker, valence, pattern in _PHRASES)
"""Phrases a support desk hears as frustration, each scored as one word of the given valence (VADER's scale, -4 … 4)."""

PLAIN = str.maketrans({"…": "...", "’": "'", "‘": "'", "“": '"', "”": '"', "—": " - ", "–": " - "})
"""Typographic punctuation as ASCII: VADER strips only ASCII punctuation from a word's ends."""
_WORD = re.compile(r"[A-Za-z]+")


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    analyzer = SentimentIntensityAnalyzer()
    for word in RETAIL_NEUTRAL:
        analyzer.lexicon.pop(word, None)
    analyzer.lexicon.update(RETAIL_VALENCE)
    analyzer.lexicon.update({marker: valence for marker, valence, _ in PHRASES})
    return analyzer


def support_text(text: str) -> str:
    """`text` as it is scored: plain punctuation, misspellings corrected, frustration phrases as single words."""
    plain = _WORD.sub(lambda m: MISSPELLED.get(m.group(0).lower(), m.group(0)), spelled(text.translate(PLAIN)))
    for marker, _, pattern in PHRASES:
        plain = pattern.sub(f" {marker} ", plain)
    return plain


def sentiment(text: str) -> float:
    """The compound sentiment of `text`, rounded to three places; 0.0 for empty text."""
    if not text.strip():
        return 0.0
    return round(float(_analyzer().polarity_scores(support_text(text))["compound"]), 3)
