"""Build the curated intent examples (`bitext.jsonl`, `clinc150.jsonl`) and copy their licences next to them.

Usage: python agents/data/build_examples.py ../shared/data/bitext ../shared/data/clinc150 [--out agents/data]
Deterministic: the same inputs always give byte-identical outputs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

# bitext intent -> (our intent, cap on examples kept); unlisted bitext intents are dropped.
BITEXT: dict[str, tuple[str, int]] = {
    "track_order": ("order_status", 200),
    "cancel_order": ("cancel_order", 200),
    "get_refund": ("refund", 110),
    "track_refund": ("refund", 110),
    "complaint": ("complaint", 200),
    "contact_human_agent": ("human_request", 160),
    "contact_customer_service": ("human_request", 60),
    "check_refund_policy": ("knowledge_question", 70),
    "delivery_options": ("knowledge_question", 60),
    "delivery_period": ("knowledge_question", 40),
    "check_payment_methods": ("knowledge_question", 50),
    "check_cancellation_fee": ("knowledge_question", 30),
    "place_order": ("knowledge_question", 30),
    # Questions the knowledge base answers (account, addresses, payment trouble, reviews, newsletter, changes).
    "change_order": ("knowledge_question", 50),
    "change_shipping_address": ("knowledge_question", 50),
    "set_up_shipping_address": ("knowledge_question", 50),
    "create_account": ("knowledge_question", 50),
    "delete_account": ("knowledge_question", 50),
    "edit_account": ("knowledge_question", 50),
    "recover_password": ("knowledge_question", 50),
    "registration_problems": ("knowledge_question", 50),
    "switch_account": ("knowledge_question", 50),
    "payment_issue": ("knowledge_question", 40),
    "review": ("knowledge_question", 50),
    "newsletter_subscription": ("knowledge_question", 50),
    # An invoice is a document of the customer's own orders: looked up like the order history.
    "check_invoice": ("order_history", 60),
    "get_invoice": ("order_history", 60),
}
# Utterances re-labelled by pattern: "when will my parcel arrive" is about an order, "what hours" is a question.
BITEXT_OVERRIDES: list[tuple[str, re.Pattern[str], str, int]] = [
    (
        "delivery_period",
        re.compile(r"\b(my|the) (order|parcel|package|item|product|article|purchase|shipment)\b"),
        "order_status",
        60,
    ),
    ("contact_customer_service", re.compile(r"\b(hours?|what time)\b"), "knowledge_question", 30),
]
CLINC_DIRECT: dict[str, tuple[str, int]] = {
    "order_status": ("order_status", 90),
    "greeting": ("greeting", 60),
    "goodbye": ("goodbye", 60),
    "thank_you": ("thanks", 60),
    "yes": ("affirm", 50),
    "no": ("deny", 50),
}
# Dropped: ambiguous for a retailer ("cancel that", "order me some lysol", "my card was declined", …).
CLINC_DROPPED = {"cancel", "maybe", "repeat", "order", "card_declined"}
CLINC_SMALLTALK_CAP = 20
CLINC_OOS_PER_INTENT_CAP = 8
CLINC_OOS_CAP = 150
BITEXT_LICENCE = "LICENSE-bitext-CDLA-Sharing-1.0.txt"
CLINC_LICENCE = "LICENSE-clinc150-CC-BY-3.0.txt"

Rows = dict[str, list[str]]


def main() -> None:
    """Parse arguments and write both subsets with their licences."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bitext_dir", type=Path)
    parser.add_argument("clinc_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    bitext = build_bitext(args.bitext_dir / "bitext_customer_support_v1.csv")
    clinc = build_clinc(args.clinc_dir / "clinc150_train_val.json", args.clinc_dir / "domains.json")
    for name, rows in (("bitext.jsonl", bitext), ("clinc150.jsonl", clinc)):
        count = write_jsonl(args.out / name, rows)
        print(f"{name}: {count} examples, {(args.out / name).stat().st_size} bytes")
    shutil.copyfile(args.bitext_dir / "LICENSE.txt", args.out / BITEXT_LICENCE)
    shutil.copyfile(args.clinc_dir / "LICENSE", args.out / CLINC_LICENCE)


def build_bitext(path: Path) -> Rows:
    """Retail-relevant bitext utterances, order numbers rewritten as `#W` ids, mapped to our intents."""
    pools: dict[tuple[str, str], list[str]] = defaultdict(list)
    caps: dict[tuple[str, str], int] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["intent"] not in BITEXT:
                continue
            text = _rewrite_order_number(row)
            intent, cap = _bitext_label(row["intent"], text)
            pools[(row["intent"], intent)].append(text)
            caps[(row["intent"], intent)] = cap
    rows: Rows = defaultdict(list)
    for key in sorted(pools):
        rows[key[1]] += _sample(pools[key], caps[key])
    return rows


def _bitext_label(source: str, text: str) -> tuple[str, int]:
    """Our intent and cap for one bitext utterance."""
    for src, pattern, intent, cap in BITEXT_OVERRIDES:
        if src == source and pattern.search(text.lower()):
            return intent, cap
    return BITEXT[source]


def _rewrite_order_number(row: dict[str, str]) -> str:
    """The utterance with its order number replaced by a stable tau-style `#W` + 7-digit id.

    Matched on the entity value, not the offsets, which are unreliable in this dataset.
    """
    text = row["instruction"].strip()
    value = row["entity_value"].strip().lstrip("0")
    if row["entity_type"] != "order_id" or not value.isdigit():
        return text
    digest = int(hashlib.sha256(value.encode()).hexdigest(), 16)
    return re.sub(rf"(?<!\d)0*{value}(?!\d)", f"#W{1_000_000 + digest % 9_000_000}", text, count=1)


def build_clinc(path: Path, domains_path: Path) -> Rows:
    """clinc150 train+val utterances mapped to our intents: chit-chat, yes/no, order status and out-of-scope."""
    data = json.loads(path.read_text(encoding="utf-8"))
    domains: dict[str, list[str]] = json.loads(domains_path.read_text(encoding="utf-8"))
    smalltalk = set(domains["small_talk"]) - set(CLINC_DIRECT)
    pools: dict[str, list[str]] = defaultdict(list)
    for text, intent in data["train"] + data["val"] + data["oos_train"] + data["oos_val"]:
        pools[intent].append(text.strip())
    rows: Rows = defaultdict(list)
    for source in sorted(pools):
        if source in CLINC_DROPPED:
            continue
        if source in CLINC_DIRECT:
            ours, cap = CLINC_DIRECT[source]
        elif source in smalltalk:
            ours, cap = "smalltalk", CLINC_SMALLTALK_CAP
        else:
            ours, cap = "out_of_scope", CLINC_OOS_CAP if source == "oos" else CLINC_OOS_PER_INTENT_CAP
        rows[ours] += _sample(pools[source], cap)
    return rows


def _sample(texts: list[str], cap: int) -> list[str]:
    """Up to `cap` texts that differ beyond digits, case and punctuation, chosen by a stable hash."""
    unique: dict[str, str] = {}
    for text in texts:
        unique.setdefault(_dedup_key(text), text)
    return sorted(unique.values(), key=_stable_hash)[:cap]


def _dedup_key(text: str) -> str:
    """Text with digits, case and punctuation folded, for near-duplicate detection."""
    return re.sub(r"[^a-z ]+", "", re.sub(r"\d+", "0", text.lower())).strip()


def _stable_hash(text: str) -> str:
    """A hash that orders texts the same way on every run."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_jsonl(path: Path, rows: Rows) -> int:
    """Write `{"text", "intent"}` lines grouped by intent, in stable hash order within each; return the count."""
    lines = [
        json.dumps({"text": text, "intent": intent}, ensure_ascii=False)
        for intent in sorted(rows)
        for text in sorted(rows[intent], key=_stable_hash)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


if __name__ == "__main__":
    main()
