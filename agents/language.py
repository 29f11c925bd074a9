"""The customer's language, detected offline (the `lingua` detector over the store's likely languages), and the
core replies of the embedded model in Spanish and French."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

LANGUAGES = {
    Language.ENGLISH: "en",
    Language.SPANISH: "es",
    Language.FRENCH: "fr",
    Language.GERMAN: "de",
    Language.PORTUGUESE: "pt",
    Language.ITALIAN: "it",
}
NAMES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "pt": "Portuguese", "it": "Italian"}
SUPPORTED = frozenset({"en", "es", "fr"})
"""Languages the embedded model holds the core flows in (verification, order status, a person); in the others it
hands the case to a person, with the language in the packet."""
_detector: LanguageDetector | None = None
_lock = threading.Lock()
_build_lock = threading.Lock()
_NOT_WORDS = re.compile(r"\S+@\S+|#?W?\d[\d\s-]*|[^\w\s]", re.I)


def _get() -> LanguageDetector:
    global _detector
    with _build_lock:
        if _detector is None:
            _detector = (  # the low-accuracy models: about 20 MB per worker instead of 200
                LanguageDetectorBuilder.from_languages(*LANGUAGES)
                .with_low_accuracy_mode()
                .with_preloaded_language_models()
                .build()
            )
        return _detector


SHORT_WORDS = {
    "hola": "es",
    "gracias": "es",
    "sí": "es",
    "vale": "es",
    "adiós": "es",
    "bonjour": "fr",
    "bonsoir": "fr",
    "salut": "fr",
    "merci": "fr",
    "oui": "fr",
    "d'accord": "fr",
}
"""Words that settle the language of a message of one or two words, which the detector cannot."""
ENGLISH_WORDS = frozenset(
    {"the", "you", "your", "my", "is", "are", "do", "does", "what", "how", "can", "i", "it", "to", "and", "of"}
    | {"for", "with", "this", "that", "where", "when", "why", "have", "please", "thanks", "order", "ship"}
)
"""Common English words no Spanish or French sentence uses: two of them settle it."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


KNOWN_WORDS = {
    "es": _words(
        "de la que el en y los del las por un para con no una su al lo como más pero sus le ya este sí porque esta "
        "cuando muy sin sobre también me hasta hay donde dónde quien desde todo nos mi mis tu usted hola gracias "
        "pedido pedidos quiero puedo cómo cuánto envío envio devolver tiene tienen es está son"
    ),
    "fr": _words(
        "le la les de des du un une et est en que qui dans pour pas ne sur au aux avec ce ces se sa son ses mon ma "
        "mes nous vous je il elle où quand comment combien bonjour merci commande livraison veux voudrais livrez puis"
    ),
    "de": _words("der die das und ist nicht ich mit wo meine mein bestellung ein eine zu den von"),
    "pt": _words("o a os as de do da em um uma que não com meu minha pedido onde está para por"),
    "it": _words("il lo la gli le di che è non un una per con mio mia ordine dove sono"),
}
"""Everyday words of each language other than English: a message must use one to be read as that language."""
ENGLISH_FLOOR = 0.15
OTHER_FLOOR = 0.6


_seen: OrderedDict[bytes, str | None] = OrderedDict()
_SEEN_MAX = 4096


def detect(text: str) -> str | None:
    """The language of `text`, remembered by a digest of the text (the text itself is never kept)."""
    key = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).digest()
    with _lock:
        if key in _seen:
            _seen.move_to_end(key)
            return _seen[key]
    found = _detect(text)
    with _lock:
        _seen[key] = found
        while len(_seen) > _SEEN_MAX:
            _seen.popitem(last=False)
    return found


def _detect(text: str) -> str | None:
    """The language of `text` (`en`, `es`, …), or None when it says too little to tell (an email, "ok", a zip).

    The store writes English first: another language wins only when the detector is sure of it and English is
    unlikely ("where is my order" sits close to German in the small models)."""
    words = _NOT_WORDS.sub(" ", text.lower()).split()
    if len(words) <= 2:
        settled = {SHORT_WORDS[w] for w in words if w in SHORT_WORDS}
        if len(settled) == 1:
            return settled.pop()
    if len(words) <= 2:
        return None  # a name, "ok thanks", an email: too little to tell, and identity details are in any language
    if len(ENGLISH_WORDS.intersection(words)) >= 2:
        return "en"  # "do you ship to mexico?" is English whatever the place name
    values = {LANGUAGES[c.language]: c.value for c in _get().compute_language_confidence_values(" ".join(words))}
    for lang, known in KNOWN_WORDS.items():
        if not known.intersection(words):
            values.pop(lang, None)  # typos and gibberish read as some language: one of its everyday words must be there
    if not values:
        return None
    best = max(values, key=lambda k: values[k])
    if best != "en" and values[best] >= OTHER_FLOOR and values.get("en", 0.0) < ENGLISH_FLOOR:
        return best
    return "en" if values.get("en", 0.0) >= ENGLISH_FLOOR or best == "en" else None


def conversation_language(texts: Sequence[str]) -> str:
    """The language the customer writes in: the latest message that says, else English."""
    for text in reversed(texts):
        if (found := detect(text)) is not None:
            return found
    return "en"


def customer_language(texts: Sequence[str]) -> str:
    """The language of a customer's recent messages (oldest first); a name and zip or an email say nothing."""
    return conversation_language(texts[-4:])


STATUS_WORDS = {
    "es": {
        "pending": "pendiente",
        "processed": "en preparación",
        "delivered": "entregado",
        "cancelled": "cancelado",
        "return requested": "con devolución solicitada",
        "exchange requested": "con cambio solicitado",
    },
    "fr": {
        "pending": "en attente",
        "processed": "en préparation",
        "delivered": "livrée",
        "cancelled": "annulée",
        "return requested": "avec un retour demandé",
        "exchange requested": "avec un échange demandé",
    },
}
TEXTS: dict[str, dict[str, str]] = {
    "es": {
        "ask_verification": "Primero verifico su identidad: envíeme el correo de su cuenta, o su nombre completo y "
        "código postal.",
        "verification_failed": "Lo siento, no pude verificar esos datos. Inténtelo de nuevo con el correo de su "
        "cuenta, o su nombre completo y código postal.",
        "greeting": "¡Hola! ¿En qué puedo ayudarle? Puedo consultar sus pedidos y ponerle en contacto con una persona "
        "de nuestro equipo.",
        "thanks": "¡De nada! ¿Hay algo más en lo que pueda ayudarle?",
        "no_orders": "No veo pedidos en su cuenta.",
        "not_found": "No encuentro el pedido {order_id} en su cuenta. ¿Podría revisar el número?",
        "handoff": "He pasado su conversación a nuestro equipo, con un resumen para que no repita nada. Le "
        "responderán aquí pronto.",
        "handoff_language": "Por ahora en español solo atiendo pedidos. He pasado su consulta a nuestro equipo, que "
        "le responderá aquí pronto.",
        "queued": "Gracias, he añadido su mensaje a su caso. Una persona de nuestro equipo le responderá pronto.",
    },
    "fr": {
        "ask_verification": "Je dois d'abord vérifier votre identité : envoyez-moi l'e-mail de votre compte, ou vos "
        "nom, prénom et code postal.",
        "verification_failed": "Désolé, je n'ai pas pu vérifier ces informations. Réessayez avec l'e-mail de votre "
        "compte, ou vos nom, prénom et code postal.",
        "greeting": "Bonjour ! Comment puis-je vous aider ? Je peux consulter vos commandes et vous mettre en "
        "relation avec une personne de notre équipe.",
        "thanks": "Je vous en prie ! Puis-je vous aider pour autre chose ?",
        "no_orders": "Je ne vois aucune commande sur votre compte.",
        "not_found": "Je ne trouve pas la commande {order_id} sur votre compte. Pouvez-vous vérifier le numéro ?",
        "handoff": "J'ai transmis votre conversation à une personne de notre équipe, avec un résumé pour que vous "
        "n'ayez rien à répéter. Elle vous répondra ici dès que possible.",
        "handoff_language": "Pour l'instant, je ne peux vous aider en français que pour vos commandes. J'ai transmis "
        "votre demande à une personne de notre équipe, qui vous répondra ici dès que possible.",
        "queued": "Merci, j'ai ajouté votre message à votre dossier. Une personne de notre équipe vous répondra "
        "bientôt.",
    },
}


GREETINGS = {
    "es": ("Hola {name},", "Hola,", "Saludos cordiales,"),
    "fr": ("Bonjour {name},", "Bonjour,", "Cordialement,"),
}
"""An email's greeting (with and without a name) and sign-off in the customer's language."""


def text(language: str, key: str, **values: str) -> str | None:
    """A core reply in `language`, or None when the embedded model does not hold it in that language."""
    found = TEXTS.get(language, {}).get(key)
    return found.format(**values) if found is not None else None


def order_reply(language: str, order: dict[str, Any]) -> str:
    """Status, items and tracking of one order, in Spanish or French."""
    status = STATUS_WORDS.get(language, {}).get(order["status"], order["status"])
    items = ", ".join(item["name"] for item in order["items"])
    tracking = [t for shipment in order["shipments"] for t in shipment["tracking_ids"]]
    if language == "es":
        reply = f"Su pedido {order['order_id']} está {status}. Artículos: {items}."
        return reply + (f" Número de seguimiento: {', '.join(tracking)}." if tracking else "")
    reply = f"Votre commande {order['order_id']} est {status}. Articles : {items}."
    return reply + (f" Numéro de suivi : {', '.join(tracking)}." if tracking else "")


def history_reply(language: str, orders: list[dict[str, Any]]) -> str:
    """The customer's recent orders, in Spanish or French."""
    if not orders:
        return TEXTS.get(language, TEXTS["es"])["no_orders"] if language in TEXTS else "I don't see any orders."
    lines = [f"{o['order_id']} ({STATUS_WORDS.get(language, {}).get(o['status'], o['status'])})" for o in orders[:5]]
    opening = "Estos son sus pedidos más recientes: " if language == "es" else "Voici vos commandes récentes : "
    return opening + "; ".join(lines) + "."


ORDER_WORDS = re.compile(
    r"\b(?:mis?|nuestros?|ma|mon|mes|notre|nos)\s+(?:pedidos?|[oó]rden(?:es)?|paquetes?|env[ií]os?|"
    r"compras?|commandes?|colis|livraisons?|achats?)\b|\b(?:rastreo|seguimiento|suivi)\b|\bn[uú]mero de "
    r"(?:pedido|seguimiento)\b",
    re.I,
)
"""A customer's own order, in Spanish or French ("mi pedido", "ma commande", "el número de seguimiento")."""
PERSON_WORDS = re.compile(
    r"\b(persona|agente|humano|alguien|asesor|personne|conseill[eè]re?|humain|quelqu'un|agent)\b", re.I
)
NOT_ME = re.compile(
    r"\bno soy (?:yo|[a-záéíóúñ]+)\b|\bsoy su (?:esposo|esposa|marido|mujer|hijo|hija|pareja|madre|padre|herman[oa])\b|"
    r"\bce n'est pas moi\b|\bje ne suis pas\b|\bc'est (?:son|sa) (?:mari|femme|fils|fille|conjoint|m[eè]re|p[eè]re)\b",
    re.I,
)
"""Another person writing on the customer's phone or inbox, in Spanish or French (a speaker change)."""
GREETING_WORDS = re.compile(r"^\W*(hola|buen[oa]s (?:d[ií]as|tardes|noches)|bonjour|bonsoir|salut)\W*$", re.I)
THANKS_WORDS = re.compile(r"^\W*(gracias|muchas gracias|merci|merci beaucoup)\W*$", re.I)
