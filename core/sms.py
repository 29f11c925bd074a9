"""SMS segment counting, as the network counts: shared by reply rendering and the Twilio adapter."""

from __future__ import annotations

import math

GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")  # two septets each (escape + character)


def sms_segments(text: str) -> int:
    """How many SMS segments `text` takes: GSM-7 septets (extension characters take two; 160 single / 153
    concatenated) or UCS-2 code units (emoji take two; 70 / 67)."""
    if all(ch in GSM7 or ch in GSM7_EXTENSION for ch in text):
        units, single, multi = len(text) + sum(ch in GSM7_EXTENSION for ch in text), 160, 153
    else:
        units, single, multi = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / multi)
