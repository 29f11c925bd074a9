"""Build the labelled routing dev sets (`bitext_dev.jsonl`, `clinc150_dev.jsonl`) and copy their licences.

Usage: python evals/routing/build_dev_sets.py ../shared/data/bitext ../shared/data/clinc150 [--out evals/routing]
Deterministic. Every utterance the offline model learns from (agents/data/*.jsonl, compared with digits, case and
punctuation folded) is left out, so the sets measure routing on text the model was not trained on.
Routes follow the table in `evals/routing_eval.py`.
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

from threadline.core.tool_names import ESCALATE_TO_HUMAN, LOOKUP_ORDER, SEARCH_KNOWLEDGE

TRAINING_DIR = Path(__file__).resolve().parents[2] / "agents" / "data"
TRAINING_FILES = ("bitext.jsonl", "clinc150.jsonl", "examples_extra.jsonl")
BITEXT_CAP = 40  # per bitext intent
CLINC_ORDER_STATUS_CAP = 120
CLINC_SMALLTALK_CAP = 15  # per small-talk intent
CLINC_OTHER_CAP = 4  # per intent of the other nine domains
CLINC_OOS_CAP = 60
# bitext intent -> route; every other bitext intent is a question the knowledge base answers.
BITEXT_ROUTES = {
    "track_order": LOOKUP_ORDER,
    "check_invoice": LOOKUP_ORDER,
    "get_invoice": LOOKUP_ORDER,
    "contact_human_agent": ESCALATE_TO_HUMAN,
    "contact_customer_service": ESCALATE_TO_HUMAN,
}
BITEXT_OVERRIDES = [
    (
        "delivery_period",
        re.compile(r"\b(my|the) (order|parcel|package|item|product|article|purchase|shipment)\b"),
        LOOKUP_ORDER,
    ),
    ("contact_customer_service", re.compile(r"\b(hours?|what time)\b"), SEARCH_KNOWLEDGE),
]
CLINC_DROPPED = {"cancel", "maybe", "repeat", "order", "card_declined"}  # ambiguous for a retailer
BITEXT_LICENCE = "LICENSE-bitext-CDLA-Sharing-1.0.txt"
CLINC_LICENCE = "LICENSE-clinc150-CC-BY-3.0.txt"


def fold(text: str) -> str:
    """Text with digits, case and punctuation folded, for near-duplicate detection."""
    return re.sub(r"[^a-z ]+", "", re.sub(r"\d+", "0", text.lower())).strip()


def stable(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def trained_on(directory: Path = TRAINING_DIR) -> set[str]:
    """Folded texts of every example the offline model learns from."""
    seen = set()
    for name in TRAINING_FILES:
        for line in (directory / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                seen.add(fold(json.loads(line)["text"]))
    return seen


def rewrite_order_number(row: dict[str, str]) -> str:
    """The utterance with its order number as a tau-style `#W` + 7-digit id (matched on the entity value)."""
    text = row["instruction"].strip()
    value = row["entity_value"].strip().lstrip("0")
    if row["entity_type"] != "order_id" or not value.isdigit():
        return text
    digest = int(hashlib.sha256(value.encode()).hexdigest(), 16)
    return re.sub(rf"(?<!\d)0*{value}(?!\d)", f"#W{1_000_000 + digest % 9_000_000}", text, count=1)


def pick(texts: list[str], cap: int, seen: set[str]) -> list[str]:
    """Up to `cap` texts not trained on and distinct after folding, in a stable order."""
    unique: dict[str, str] = {}
    for text in texts:
        key = fold(text)
        if key and key not in seen:
            unique.setdefault(key, text)
    return sorted(unique.values(), key=stable)[:cap]


def build_bitext(path: Path, seen: set[str]) -> list[dict[str, str]]:
    pools: dict[tuple[str, str], list[str]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = rewrite_order_number(row)
            route = BITEXT_ROUTES.get(row["intent"], SEARCH_KNOWLEDGE)
            for source, pattern, override in BITEXT_OVERRIDES:
                if source == row["intent"] and pattern.search(text.lower()):
                    route = override
            pools[(row["intent"], route)].append(text)
    return [
        {"text": text, "route": route, "source_intent": intent}
        for (intent, route) in sorted(pools)
        for text in pick(pools[(intent, route)], BITEXT_CAP, seen)
    ]


def build_clinc(path: Path, domains_path: Path, seen: set[str]) -> list[dict[str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    smalltalk = set(json.loads(domains_path.read_text(encoding="utf-8"))["small_talk"])
    pools: dict[str, list[str]] = defaultdict(list)
    for text, intent in data["train"] + data["val"] + data["oos_train"] + data["oos_val"]:
        pools[intent].append(text.strip())
    rows = []
    for intent in sorted(pools):
        if intent in CLINC_DROPPED:
            continue
        if intent == "order_status":
            route, cap = LOOKUP_ORDER, CLINC_ORDER_STATUS_CAP
        else:
            route = "none"
            cap = CLINC_SMALLTALK_CAP if intent in smalltalk else CLINC_OOS_CAP if intent == "oos" else CLINC_OTHER_CAP
        rows += [{"text": t, "route": route, "source_intent": intent} for t in pick(pools[intent], cap, seen)]
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row["route"]] += 1
    print(f"{path.name}: {len(rows)} lines {dict(sorted(counts.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bitext_dir", type=Path)
    parser.add_argument("clinc_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    seen = trained_on()
    write(args.out / "bitext_dev.jsonl", build_bitext(args.bitext_dir / "bitext_customer_support_v1.csv", seen))
    clinc = build_clinc(args.clinc_dir / "clinc150_train_val.json", args.clinc_dir / "domains.json", seen)
    write(args.out / "clinc150_dev.jsonl", clinc)
    shutil.copyfile(args.bitext_dir / "LICENSE.txt", args.out / BITEXT_LICENCE)
    shutil.copyfile(args.clinc_dir / "LICENSE", args.out / CLINC_LICENCE)


if __name__ == "__main__":
    main()
