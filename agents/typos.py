"""Everyday misspellings in support messages, written correctly before the message is understood ("waht is ur
retrun polcy" → "what is your return policy"). A fixed list: words are only ever replaced by what their writer
meant, never guessed from similarity."""

from __future__ import annotations

import re

MISSPELLINGS = {
    "waht": "what",
    "wat": "what",
    "whta": "what",
    "hw": "how",
    "lnog": "long",
    "ur": "your",
    "u": "you",
    "w": "with",
    "lookin": "looking",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "bak": "back",
    "retrun": "return",
    "retun": "return",
    "reutrn": "return",
    "retunr": "return",
    "polcy": "policy",
    "policiy": "policy",
    "poilcy": "policy",
    "polciy": "policy",
    "shiping": "shipping",
    "shippin": "shipping",
    "shpping": "shipping",
    "arive": "arrive",
    "arrivee": "arrive",
    "refnd": "refund",
    "refund's": "refunds",
    "cancle": "cancel",
    "cancell": "cancel",
    "cancleing": "cancelling",
    "canceling": "cancelling",
    "adress": "address",
    "addres": "address",
    "recieve": "receive",
    "recieved": "received",
    "delivary": "delivery",
    "delievery": "delivery",
    "deliverd": "delivered",
    "ordr": "order",
    "oder": "order",
    "odrer": "order",
    "pakage": "package",
    "packge": "package",
    "pacakge": "package",
    "warrenty": "warranty",
    "waranty": "warranty",
    "warrantee": "warranty",
    "excange": "exchange",
    "exchage": "exchange",
    "paymnet": "payment",
    "payement": "payment",
    "trackin": "tracking",
    "tmrw": "tomorrow",
    "howlong": "how long",
}
_TOKEN = re.compile(r"(?<![\w@.#/-])[A-Za-z][A-Za-z']*(?![\w@#/-]|\.\w)")
"""A whole word: never part of an email, a web address, a number or an id ("u.lee@u.edu" stays)."""


def spelled(text: str) -> str:
    """`text` with the listed misspellings corrected (case kept for the first letter); nothing else changes."""

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        right = MISSPELLINGS.get(word.lower())
        if right is None:
            return word
        return right[:1].upper() + right[1:] if word[:1].isupper() else right

    return _TOKEN.sub(fix, text)
