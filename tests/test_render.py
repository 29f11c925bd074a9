"""Channel rendering: SMS segment counting and fitting, voice, email and the per-channel dispatch."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.agents.replies import order_reply
from threadline.core.types import Channel
from threadline.graphs.render import SMS_MAX_SEGMENTS, email_body, fit_sms, plain, render, sms_segments, speakable

SENTENCES = [f"Sentence number {i} tells you something useful about your order." for i in range(20)]
MARKDOWN = (
    "## Your order\n"
    "**Status:** delivered, see [the tracking page](https://track.example.com/W2611340).\n"
    "- Water Bottle\n"
    "* Office Chair\n"
    "  - nested note with `code`\n"
    "1. Check the box\n"
    "2) Keep the receipt\n"
    "More at https://shop.example.com/help?x=1 any time."
)


def _sms_safe_text() -> st.SearchStrategy[str]:
    return st.text(max_size=1200).filter(lambda s: s.strip() != "")


# --- sms_segments -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),  # 2 x 153
        ("a" * 307, 3),
        ("a" * 459, 3),  # 3 x 153
        ("a" * 460, 4),
    ],
)
def test_sms_segments_gsm7_uses_160_single_and_153_per_concatenated_part(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


@pytest.mark.parametrize("marker", ["’", "ł", "✓"])
@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3)],
)
def test_sms_segments_ucs2_uses_70_single_and_67_per_concatenated_part(marker: str, length: int, segments: int) -> None:
    text = marker + "a" * (length - 1)
    assert sms_segments(text) == segments


@pytest.mark.parametrize(
    ("text", "segments"), [("😀", 1), ("Great 😀", 1), ("😀" + "a" * 100, 2), ("😀" + "a" * 199, 3)]
)
def test_sms_segments_an_emoji_switches_to_ucs2(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


def test_sms_segments_gsm7_accented_letters_and_symbols_stay_gsm7() -> None:
    prefix = "Ça à Zürich? Ñoño ¿¡ @£$¥ é € ΔΩ {[]} "
    text = prefix + "a" * (160 - len(prefix) - 5)  # €, {, [, ], } take two septets each
    assert sms_segments(text) == 1
    assert sms_segments(text + "a") == 2
    assert sms_segments(text + "’") == 3  # 156 chars, now UCS-2: ceil(156 / 67)
    assert sms_segments(text.replace("é", "ú")) == 3  # ú is not in the GSM-7 alphabet


def test_sms_segments_counts_astral_emoji_as_two_ucs2_units() -> None:
    assert sms_segments("😀" * 70) == 3


def test_sms_segments_counts_gsm7_extension_characters_as_two_septets() -> None:
    assert sms_segments("€" * 100) == 2


# --- fit_sms ------------------------------------------------------------------------------------------------


@settings(deadline=None)
@given(_sms_safe_text())
def test_fit_sms_never_exceeds_two_segments(text: str) -> None:
    assert sms_segments(fit_sms(text)) <= SMS_MAX_SEGMENTS


@settings(deadline=None)
@given(st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=20))
def test_fit_sms_keeps_only_whole_sentences_and_as_many_as_fit(chosen: list[str]) -> None:
    text = " ".join(chosen)
    out = fit_sms(text)
    assert sms_segments(out) <= SMS_MAX_SEGMENTS
    assert text.startswith(out)
    kept = len(re.findall(r"[.!?](?=\s|$)", out))
    assert out == " ".join(chosen[:kept])
    if kept < len(chosen):  # the next sentence really would not have fitted
        assert sms_segments(" ".join(chosen[: kept + 1])) > SMS_MAX_SEGMENTS


def test_fit_sms_short_text_is_returned_whole() -> None:
    text = "Your order #W2611340 is delivered. Anything else?"
    assert fit_sms(text) == text


def test_fit_sms_cuts_long_text_at_a_sentence_boundary() -> None:
    text = " ".join(SENTENCES)
    out = fit_sms(text)
    assert sms_segments(out) <= 2
    assert out.endswith(".")
    assert out in {" ".join(SENTENCES[:n]) for n in range(1, len(SENTENCES))}
    assert sms_segments(" ".join(SENTENCES[: out.count(".") + 1])) > 2


def test_fit_sms_cuts_one_overlong_sentence_at_a_word_with_an_ellipsis() -> None:
    words = [f"word{i}" for i in range(200)]
    out = fit_sms(" ".join(words) + ".")
    assert sms_segments(out) <= 2
    assert out.endswith("…")
    assert " ".join(words).startswith(out[:-1])
    assert out[:-1].split()[-1] in words  # cut between words, never inside one


def test_fit_sms_with_an_unbreakable_token_still_fits() -> None:
    out = fit_sms("x" * 1000)
    assert sms_segments(out) <= 2


def test_fit_sms_strips_markdown_and_joins_lines() -> None:
    out = fit_sms(MARKDOWN)
    assert "\n" not in out
    for marker in ("**", "`", "](", "- ", "* ", "1. ", "2) ", "##"):
        assert marker not in out
    assert "the tracking page" in out
    assert "Water Bottle" in out
    assert out.startswith("Your order Status: delivered")


def test_plain_keeps_link_text_and_drops_markup() -> None:
    assert plain("**Order** is [delivered](https://x.example/y) `now`") == "Order is delivered now"


# --- speakable ----------------------------------------------------------------------------------------------


def test_speakable_has_no_urls_list_markers_or_markdown() -> None:
    out = speakable(MARKDOWN)
    assert "http" not in out
    assert "*" not in out
    assert "#" not in out
    assert "`" not in out
    assert "\n" not in out
    assert not re.search(r"(^|\. )(?:[-*•]|\d+[.)])\s", out)
    assert "our website" in out
    assert "Water Bottle" in out
    assert out.endswith(".")


@settings(deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "- item",
                "* star item",
                "• dot item",
                "1. first",
                "2) second",
                "## Heading",
                "**bold** text",
                "see https://example.com/a?b=c",
                "[link](https://example.com)",
                "Order #W2611340 shipped",
                "plain line.",
            ]
        ),
        min_size=1,
        max_size=8,
    )
)
def test_speakable_property_no_urls_markers_stars_or_hashes(lines: list[str]) -> None:
    out = speakable("\n".join(lines))
    assert "http" not in out
    assert "*" not in out
    assert "#" not in out
    assert "•" not in out
    assert not re.search(r"(^|\. )(?:[-*•]|\d+[.)])\s", out)
    assert "\n" not in out


def test_speakable_reads_order_ids_aloud_digit_by_digit() -> None:
    assert "order is W 2 6 1 1 3 4 0" in speakable("Your order is #W2611340.")


def test_speakable_does_not_double_the_word_order() -> None:
    payload = {
        "order_id": "#W2611340",
        "status": "processed",
        "items": [{"name": "Water Bottle"}],
        "shipments": [],
        "refunded": "0.00",
    }
    assert "order order" not in speakable(order_reply(payload)).lower()


def test_speakable_drops_a_mid_line_hash() -> None:
    assert "#" not in speakable("Your ticket #4521 is open.")


def test_speakable_drops_scheme_less_urls() -> None:
    assert "www." not in speakable("You can read more at www.AcmeBrands.com/faq/subscription.")


# --- email --------------------------------------------------------------------------------------------------


def test_email_body_greets_by_name_and_signs_off() -> None:
    out = email_body("  Your order shipped.  ", "James")
    assert out.startswith("Hi James,\n\n")
    assert "\n\nYour order shipped.\n\n" in out
    assert out.endswith("Best regards,\nCustomer Care")


def test_email_body_without_name_uses_a_neutral_greeting() -> None:
    out = email_body("Your order shipped.", None)
    assert out.startswith("Hello,\n\n")
    assert out.endswith("Best regards,\nCustomer Care")


# --- render -------------------------------------------------------------------------------------------------


LONG = " ".join(SENTENCES) + "\n- **bold** [link](https://x.example)"


def test_render_sms_fits_and_strips_markdown() -> None:
    out = render(LONG, Channel.SMS)
    assert out == fit_sms(LONG)
    assert sms_segments(out) <= 2


def test_render_voice_is_speakable() -> None:
    assert render(MARKDOWN, Channel.VOICE) == speakable(MARKDOWN)


def test_render_email_wraps_with_greeting_and_sign_off() -> None:
    assert render("Done.", Channel.EMAIL, name="Ana") == email_body("Done.", "Ana")
    assert render("Done.", Channel.EMAIL).startswith("Hello,")


def test_render_social_is_plain_and_capped() -> None:
    out = render("**hi** " + "x" * 5000, Channel.SOCIAL)
    assert out.startswith("hi x")
    assert len(out) == 2000
    assert "*" not in out


@pytest.mark.parametrize("channel", [Channel.WEB, Channel.STORE])
def test_render_web_and_store_keep_markdown(channel: Channel) -> None:
    assert (
        render("  **Order** [link](https://x.example)\n- item  ", channel)
        == "**Order** [link](https://x.example)\n- item"
    )
