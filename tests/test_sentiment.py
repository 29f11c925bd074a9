"""The offline sentiment scorer reads support messages as a support desk does: frustration, sarcasm and misspelled
anger score clearly negative; plain requests, courtesy and thanks never do."""

from __future__ import annotations

import pytest

from threadline.agents.sentiment import sentiment

CLEARLY_NEGATIVE = -0.3
"""Below this a message reads as unhappy in the packet's sparkline (the console marks -0.2 and below in red)."""

ANGRY = [
    "this is ridiculous, I've been waiting two weeks... get me a manager",
    "this is ridiculous… get me a manager",  # the typographic ellipsis VADER never stripped
    "this is ridiculous… can you please get me a manager",
    "this is rediculous, been waitng 2 weeks for my package",
    "great, just great. still no package",
    "Perfect. Just perfect. The wrong size AGAIN",
    "unbelievable. worst service ever",
    "im so fed up with this, where is my order",
    "sick and tired of chasing you about #W2611340",
    "wow thanks for nothing",
    "are u kidding me?? this is the third time I ask",
    "this is a joke, 3 weeks and still nothing",
    "what a waste of my time, never ordering from here again",
    "yeah right, 'on its way'. still hasn't shipped",
    "let me talk to your supervisor, you people are useless",
]

CALM = [
    "where is my order #W2611340?",
    "can I return the shoes please",
    "please help me with my order",
    "cancel #W5918442 please, no longer needed",
    "cancel it, I ordered it by mistake",
    "can i talk to a real person please",
    "is the blue one still in stock?",
    "I have been waiting for this jacket for ages, love it",
    "great, thanks!",
    "thanks so much, that helps!",
    "hi",
    "tell me a joke",
]


@pytest.mark.parametrize("text", ANGRY)
def test_angry_and_frustrated_messages_score_clearly_negative(text: str) -> None:
    assert sentiment(text) < CLEARLY_NEGATIVE


@pytest.mark.parametrize("text", CALM)
def test_requests_courtesy_and_thanks_are_never_negative(text: str) -> None:
    assert sentiment(text) >= 0.0


def test_the_reported_message_is_negative_however_its_ellipsis_is_typed() -> None:
    typed = sentiment("this is ridiculous... get me a manager")
    assert typed == sentiment("this is ridiculous… get me a manager") < CLEARLY_NEGATIVE


def test_sarcasm_scores_below_the_same_words_said_plainly() -> None:
    assert sentiment("great, just great") < 0 < sentiment("great")
    assert sentiment("thanks for nothing") < 0 < sentiment("thanks for everything")


def test_caps_still_strengthen_a_complaint() -> None:
    assert sentiment("this is RIDICULOUS") < sentiment("this is ridiculous") < 0


def test_empty_text_is_neutral() -> None:
    assert sentiment("   ") == 0.0
