"""Sensitive topics recognised by meaning (`agents.concerns`), measured on sentences written apart from the
labelled examples and from the set the threshold and margin were chosen on: none of these is in
`agents/data/concerns.jsonl`, and most use words the policy's rules do not list."""

from __future__ import annotations

import pytest

from threadline.agents.concerns import TOPICS, ConcernDetector, load_examples, sentences
from threadline.core.settings import Settings
from threadline.graphs.policy import SENSITIVE_TOPICS
from threadline.memory.embeddings import make_embeddings

HELD_OUT_TOPICS = [
    ("omg the curling iron's plastic casing cracked n it singed my neck", "safety"),
    ("My father tripped over the loose cable of the lamp and he's at the ER with a broken arm", "safety"),
    ("the e-scooter's brakes failed going downhill, my son has scrapes all over", "safety"),
    ("after 10 mins the humidifier was hissing and the plug was black and charred", "safety"),
    ("my puppy chewed the toy and a chunk got lodged in her throat, we rushed her to the vet", "safety"),
    ("the dresser drawer came out and the whole thing fell forward onto my 4 yr old", "safety"),
    ("i got a really bad shock off the metal frame of the desk lamp", "safety"),
    ("package gone from outside my flat, neighbours saw a van guy pick it up after the driver left", "theft"),
    (
        "it was delivered to the porch at 11 and at 12 it had vanished. third time this month someone takes my stuff",
        "theft",
    ),
    ("the tape was resealed and my earbuds werent in the box, someone helped themselves", "theft"),
    ("my mailbox was broken into and the parcel with the camera is gone", "theft"),
    (
        "There are three orders on my account that I have never seen before, I think someone got into my account",
        "fraud_or_legal",
    ),
    ("fine, I'll let my credit card company sort this out then and get my money back from them", "fraud_or_legal"),
    ("I have contacted my solicitor and will be pursuing this", "fraud_or_legal"),
    ("someone charged $400 to my card at your store and it wasn't me", "fraud_or_legal"),
    ("Expect to hear from consumer affairs, this is a rip off and probably illegal", "fraud_or_legal"),
    ("the installer kept staring at me and asked if i lived alone, i was terrified", "harassment"),
    ("your courier called me a stupid cow when I asked him to bring it to the door", "harassment"),
    ("since the delivery your driver has sent me five texts asking to meet up", "harassment"),
    ("the guy on your phone line made a disgusting joke about my wife", "harassment"),
]
HELD_OUT_ORDINARY = [
    "hey is the electric kettle ok to leave plugged in all the time",
    "what age is the trampoline for",
    "can i get the desk lamp with a warmer bulb",
    "my package says out for delivery since 6am lol, any eta",
    "the parcel was left with my neighbour, thats fine, just letting you know",
    "do you deliver on saturdays",
    "can i change the card i paid with",
    "the refund went to my old card which is closed, what happens now",
    "i have a question about your privacy policy",
    "my order was split into two packages, is the second one coming",
    "the store assistant was really patient with my mum, please thank her",
    "the installer was late and left a mess",
    "the driver left it at the back door which is perfect thanks",
    "Hi, I bought a stroller from you last month and I'd like to buy the rain cover for it",
    "I'm a bit annoyed, the table has a scratch on the top",
    "is the candle scent strong",
    "can you send me an invoice for my company",
    "i entered my card wrong at checkout, did the order go through",
    "how do i know if a text from you is real",
    "the heater works great but its a bit noisy",
    "why does my order say 'pending' still",
    "the bike helmet is too small, can i swap for a medium",
    "can i pay half on a gift card and half on my visa",
    "I'd like to close my account",
    "the box was huge and the driver had to leave it in the hallway",
    "do you price match amazon",
    "my son wants the red one instead, can we exchange",
    "what's the weight limit of the office chair",
    "the order confirmation had my name spelled wrong",
    "were closed on mondays so please dont deliver then",
]


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> ConcernDetector:
    settings = Settings(data_dir=tmp_path_factory.mktemp("concerns"))
    return ConcernDetector(make_embeddings(settings), cache_dir=settings.cache_path)


def test_the_labelled_examples_cover_every_topic_and_ordinary_questions() -> None:
    examples = load_examples()
    counts = {topic: sum(1 for _, t in examples if t == topic) for topic in (*TOPICS, "none")}
    assert all(n >= 15 for n in counts.values()), counts
    assert counts["none"] >= sum(counts[t] for t in TOPICS) * 0.8  # near-misses weigh as much as the topics
    texts = {text.lower() for text, _ in examples}
    assert not texts & {t.lower() for t, _ in HELD_OUT_TOPICS} and not texts & {t.lower() for t in HELD_OUT_ORDINARY}


def test_sentences_keep_the_longest_and_drop_fragments() -> None:
    email = "Hi.\nI bought the heater in May. It sparked and burned my hand! Ok. Can I get a refund? Thanks"
    assert sentences(email) == ["I bought the heater in May.", "It sparked and burned my hand!"]  # not the question
    assert sentences("is the space heater safe around kids?") == []  # asking about safety is not an incident
    assert sentences("is it normal that it sparked? my husband got burnt") == ["my husband got burnt"]
    long = ". ".join(f"sentence number {n} " + "word " * n for n in range(10))
    assert len(sentences(long)) == 6 and sentences(long)[-1].startswith("sentence number 9")


def _by_rules(text: str) -> str | None:
    return next((topic for topic, (pattern, _) in SENSITIVE_TOPICS.items() if pattern.search(text)), None)


def test_held_out_sensitive_sentences_are_recognised_with_their_topic(detector: ConcernDetector) -> None:
    found = [(text, topic, detector.detect(text)) for text, topic in HELD_OUT_TOPICS]
    right = [t for t, topic, c in found if c is not None and c.topic == topic]
    wrong_topic = [(t, c.topic) for t, topic, c in found if c is not None and c.topic != topic]
    # What the policy does: its rules first, then the examples.
    either = [t for t, topic, c in found if (_by_rules(t) or (c.topic if c else None)) == topic]
    rules = [t for t, topic, _ in found if _by_rules(t) == topic]
    print(
        f"\n[concerns] held-out recall: examples {len(right)}/{len(found)}, rules {len(rules)}/{len(found)}, "
        f"rules then examples {len(either)}/{len(found)}; wrong topic {wrong_topic}"
    )
    assert not wrong_topic
    assert len(right) / len(found) >= 0.7
    assert len(either) / len(found) >= 0.7 and len(either) > len(rules)


def test_held_out_ordinary_questions_are_left_alone(detector: ConcernDetector) -> None:
    raised = [(t, c.topic, c.score) for t in HELD_OUT_ORDINARY if (c := detector.detect(t)) is not None]
    print(f"\n[concerns] held-out false alarms {len(raised)}/{len(HELD_OUT_ORDINARY)}: {raised}")
    assert len(raised) <= 2, raised


def test_a_long_email_is_read_sentence_by_sentence(detector: ConcernDetector) -> None:
    email = (
        "Hello,\n\nI ordered the 2-slice toaster (order #W1234567) a couple of weeks ago and it arrived fine. "
        "Yesterday morning the thing started crackling and the cord went up in smoke while my daughter was next to "
        "it, she has a red mark on her arm. Could you also tell me whether your stores are open on Sunday?"
        "\n\nBest,\nAna"
    )
    concern = detector.detect(email)
    assert concern is not None and concern.topic == "safety" and "smoke" in concern.sentence
