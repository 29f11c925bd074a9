"""Twilio adapter: the documented signature vector, SMS and voice webhook parsing, SMS splitting and TwiML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.channels import LIMITS
from threadline.channels.twilio import (
    SmsMessage,
    VoiceNoSpeech,
    VoiceSpeech,
    parse_sms,
    parse_voice,
    sms_segments,
    sms_twiml,
    split_sms,
    twilio_signature,
    verify_twilio,
    voice_twiml,
)
from threadline.core.errors import AuthenticationError, InvalidInputError, UsageError
from threadline.core.sms import sms_segments as core_sms_segments
from threadline.core.types import Channel

# The worked example of Twilio's webhook-security documentation.
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="

TOKEN = "f3c9a1b2c3d4e5f60718293a4b5c6d7e"
SMS_URL = "https://support.example-shop.com/twilio/sms"
SMS_PARAMS = {
    "ToCountry": "US",
    "SmsMessageSid": "SM5f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "NumMedia": "0",
    "SmsSid": "SM5f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "SmsStatus": "received",
    "Body": "Where is my order #W2611340?",
    "To": "+18005550100",
    "NumSegments": "1",
    "MessageSid": "SM5f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "From": "+14155550123",
    "ApiVersion": "2010-04-01",
}
VOICE_PARAMS = {
    "CallSid": "CA9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "From": "+14155550123",
    "To": "+18005550100",
    "CallStatus": "in-progress",
    "SpeechResult": "I want to return my water bottle.",
    "Confidence": "0.92",
}
SENTENCES = " ".join(f"Sentence number {i} tells you something useful about your order." for i in range(40))


# --- signatures ---------------------------------------------------------------------------------------------


def test_signature_matches_twilio_documented_example() -> None:
    assert twilio_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS) == DOC_SIGNATURE


def test_signature_does_not_depend_on_parameter_order() -> None:
    reversed_params = dict(reversed(list(DOC_PARAMS.items())))
    assert twilio_signature(DOC_TOKEN, DOC_URL, reversed_params) == DOC_SIGNATURE
    assert twilio_signature(DOC_TOKEN, DOC_URL, list(reversed_params.items())) == DOC_SIGNATURE


def test_documented_example_verifies() -> None:
    verify_twilio(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


def test_valid_sms_signature_passes() -> None:
    verify_twilio(TOKEN, SMS_URL, SMS_PARAMS, twilio_signature(TOKEN, SMS_URL, SMS_PARAMS))


@pytest.mark.parametrize(
    ("token", "url", "params"),
    [
        ("wrong-token", SMS_URL, SMS_PARAMS),
        (TOKEN, SMS_URL, {**SMS_PARAMS, "Body": "Refund everything"}),
        (TOKEN, SMS_URL, {**SMS_PARAMS, "Extra": "1"}),
        (TOKEN, "https://evil.example.com/twilio/sms", SMS_PARAMS),
        (TOKEN, SMS_URL + "?x=1", SMS_PARAMS),
    ],
    ids=["token", "tampered-body", "added-param", "other-host", "other-query"],
)
def test_forged_signature_is_refused(token: str, url: str, params: dict[str, str]) -> None:
    forged = twilio_signature(token, url, params)
    with pytest.raises(AuthenticationError, match="X-Twilio-Signature header does not match the request"):
        verify_twilio(TOKEN, SMS_URL, SMS_PARAMS, forged)


@pytest.mark.parametrize("signature", [None, "", "   "])
def test_missing_signature_is_refused(signature: str | None) -> None:
    with pytest.raises(AuthenticationError, match="X-Twilio-Signature header is missing"):
        verify_twilio(TOKEN, SMS_URL, SMS_PARAMS, signature)


def test_truncated_signature_is_refused() -> None:
    with pytest.raises(AuthenticationError):
        verify_twilio(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE[:-1])


def test_signature_made_with_the_default_port_verifies_without_it_and_vice_versa() -> None:
    with_port = "https://support.example-shop.com:443/twilio/sms"
    verify_twilio(TOKEN, SMS_URL, SMS_PARAMS, twilio_signature(TOKEN, with_port, SMS_PARAMS))
    verify_twilio(TOKEN, with_port, SMS_PARAMS, twilio_signature(TOKEN, SMS_URL, SMS_PARAMS))
    other_port = "https://support.example-shop.com:8443/twilio/sms"
    with pytest.raises(AuthenticationError):
        verify_twilio(TOKEN, SMS_URL, SMS_PARAMS, twilio_signature(TOKEN, other_port, SMS_PARAMS))


def test_no_auth_token_configured_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="auth token"):
        verify_twilio("", SMS_URL, SMS_PARAMS, "anything")


# --- SMS parsing --------------------------------------------------------------------------------------------


def test_parse_sms_reads_a_twilio_webhook() -> None:
    sms = parse_sms(SMS_PARAMS)
    assert sms == SmsMessage(
        message_sid="SM5f1e2d3c4b5a69788796a5b4c3d2e1f0",
        sender="+14155550123",
        to="+18005550100",
        body="Where is my order #W2611340?",
    )
    inbound = sms.to_inbound()
    assert inbound.channel is Channel.SMS
    assert inbound.sender == "+14155550123"
    assert inbound.text == "Where is my order #W2611340?"
    assert inbound.provider_message_id == "SM5f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert inbound.metadata["to"] == "+18005550100"
    assert inbound.vouched is False


@pytest.mark.parametrize("field", ["MessageSid", "From", "Body"])
def test_parse_sms_names_a_missing_field(field: str) -> None:
    params = {k: v for k, v in SMS_PARAMS.items() if k != field}
    with pytest.raises(InvalidInputError, match=f"^{field} is missing"):
        parse_sms(params)


@pytest.mark.parametrize("sender", ["4155550123", "+0123456789", "+1415", "hello", "+1415555012345678"])
def test_parse_sms_refuses_a_sender_that_is_not_e164(sender: str) -> None:
    with pytest.raises(InvalidInputError, match=r"From is not an E\.164 phone number"):
        parse_sms({**SMS_PARAMS, "From": sender})


def test_parse_sms_reads_mms_media_and_allows_an_empty_body() -> None:
    params = {
        **SMS_PARAMS,
        "Body": "",
        "NumMedia": "2",
        "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        "MediaContentType0": "image/jpeg",
        "MediaUrl1": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
    }
    sms = parse_sms(params)
    assert not sms.has_text
    assert [m.url.rsplit("/", 1)[1] for m in sms.media] == ["ME1", "ME2"]
    assert [m.content_type for m in sms.media] == ["image/jpeg", None]
    assert len(sms.to_inbound().metadata["media"]) == 2


@pytest.mark.parametrize(("count", "message"), [("x", "NumMedia"), ("11", "NumMedia"), ("1", "MediaUrl0")])
def test_parse_sms_refuses_inconsistent_media(count: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_sms({**SMS_PARAMS, "NumMedia": count})


def test_parse_sms_cuts_an_over_long_body_and_says_so() -> None:
    limit = LIMITS[Channel.SMS].max_inbound_chars
    sms = parse_sms({**SMS_PARAMS, "Body": "word " * 1000})
    assert len(sms.body) <= limit
    assert sms.truncated
    assert sms.to_inbound().metadata["truncated"] is True
    assert not parse_sms(SMS_PARAMS).truncated


# --- voice parsing ------------------------------------------------------------------------------------------


def test_parse_voice_reads_speech() -> None:
    turn = parse_voice(VOICE_PARAMS, turn="3")
    assert isinstance(turn, VoiceSpeech)
    assert turn.text == "I want to return my water bottle."
    assert turn.confidence == pytest.approx(0.92)
    inbound = turn.to_inbound()
    assert inbound.channel is Channel.VOICE
    assert inbound.sender == "+14155550123"
    assert inbound.provider_message_id == "CA9f8e7d6c5b4a39281706f5e4d3c2b1a0:3"
    assert inbound.metadata["call_sid"] == "CA9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def test_voice_turns_of_one_call_do_not_share_a_message_id() -> None:
    first = parse_voice(VOICE_PARAMS, turn="1")
    second = parse_voice(VOICE_PARAMS, turn="2")
    assert isinstance(first, VoiceSpeech)
    assert isinstance(second, VoiceSpeech)
    assert first.to_inbound().provider_message_id != second.to_inbound().provider_message_id
    unnumbered = parse_voice(VOICE_PARAMS)
    assert isinstance(unnumbered, VoiceSpeech)
    assert unnumbered.to_inbound().provider_message_id is None


@pytest.mark.parametrize("speech", [None, "", "   "])
def test_parse_voice_without_speech_is_a_typed_result_not_an_error(speech: str | None) -> None:
    params = {k: v for k, v in VOICE_PARAMS.items() if k not in ("SpeechResult", "Confidence")}
    if speech is not None:
        params["SpeechResult"] = speech
    result = parse_voice(params)
    assert result == VoiceNoSpeech(call_sid=VOICE_PARAMS["CallSid"], sender="+14155550123", to="+18005550100")


@pytest.mark.parametrize("field", ["CallSid", "From"])
def test_parse_voice_names_a_missing_field(field: str) -> None:
    with pytest.raises(InvalidInputError, match=f"^{field} is missing"):
        parse_voice({k: v for k, v in VOICE_PARAMS.items() if k != field})


@pytest.mark.parametrize("confidence", ["high", "1.5", "-0.1", "nan"])
def test_parse_voice_refuses_an_invalid_confidence(confidence: str) -> None:
    with pytest.raises(InvalidInputError, match="Confidence"):
        parse_voice({**VOICE_PARAMS, "Confidence": confidence})


def test_parse_voice_confidence_is_optional() -> None:
    result = parse_voice({k: v for k, v in VOICE_PARAMS.items() if k != "Confidence"})
    assert isinstance(result, VoiceSpeech)
    assert result.confidence is None


# --- SMS segments and splitting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "segments"),
    [("", 1), ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("€" * 80, 1), ("€" * 81, 2)],
)
def test_sms_segments_gsm7(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


@pytest.mark.parametrize(("text", "segments"), [("é" + "’" * 69, 1), ("’" * 71, 2), ("😀" * 35, 1), ("😀" * 36, 2)])
def test_sms_segments_ucs2(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_sms_segments_is_the_shared_counter(text: str) -> None:
    assert sms_segments(text) == core_sms_segments(text)


def test_a_thousand_character_reply_splits_into_parts_of_at_most_two_segments() -> None:
    reply = SENTENCES[:1000]
    parts = split_sms(reply)
    assert len(parts) > 1
    assert all(sms_segments(part) <= 2 for part in parts)
    assert len(parts) <= LIMITS[Channel.SMS].max_reply_messages
    # More than three messages' worth: the reply ends at the last whole sentence that fits, without an ellipsis.
    assert parts[-1].endswith("about your order.")


def test_split_keeps_everything_when_it_fits_and_cuts_between_sentences() -> None:
    reply = SENTENCES[:600].rsplit(".", 1)[0] + "."
    parts = split_sms(reply, max_messages=10)
    assert " ".join(parts) == reply
    assert all(part.endswith(".") for part in parts)


def test_split_unicode_reply_respects_the_ucs2_limit() -> None:
    reply = "Your parcel 📦 is on its way — it’ll arrive Tuesday. " * 12
    parts = split_sms(reply, max_messages=10)
    assert all(sms_segments(part) <= 2 for part in parts)
    assert " ".join(parts) == reply.strip()


def test_split_breaks_an_unbroken_word() -> None:
    parts = split_sms("x" * 700, max_messages=5)
    assert "".join(parts) == "x" * 700
    assert all(sms_segments(part) <= 2 for part in parts)


def test_split_shortens_the_last_message_when_more_would_be_needed() -> None:
    reply = "word " * 400
    parts = split_sms(reply, max_messages=2)
    assert len(parts) == 2
    assert parts[-1].endswith("...")
    assert all(sms_segments(part) <= 2 for part in parts)


def test_split_short_and_empty_replies() -> None:
    assert split_sms("Thanks!") == ["Thanks!"]
    assert split_sms("   ") == []
    with pytest.raises(UsageError):
        split_sms("hi", max_segments=0)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=1500), st.integers(min_value=1, max_value=3), st.integers(min_value=1, max_value=4))
def test_split_always_respects_the_limits(text: str, max_segments: int, max_messages: int) -> None:
    parts = split_sms(text, max_segments, max_messages=max_messages)
    assert len(parts) <= max_messages
    assert all(part and sms_segments(part) <= max_segments for part in parts)


# --- TwiML --------------------------------------------------------------------------------------------------


def test_sms_twiml_is_well_formed_and_escaped() -> None:
    twiml = sms_twiml(["Tom & Jerry <3 > all", "Part two"])
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert "&amp;" in twiml
    assert "&lt;3" in twiml
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    assert [(el.tag, el.text) for el in root] == [("Message", "Tom & Jerry <3 > all"), ("Message", "Part two")]


def test_sms_twiml_without_parts_is_an_empty_response() -> None:
    for parts in ([], ["", "  "]):
        root = ET.fromstring(sms_twiml(parts))
        assert root.tag == "Response"
        assert list(root) == []


def test_sms_twiml_drops_characters_xml_cannot_carry() -> None:
    root = ET.fromstring(sms_twiml(["bell\x07 and nul\x00 gone"]))
    assert root[0].text == "bell and nul gone"


def test_split_then_twiml_round_trip() -> None:
    parts = split_sms(SENTENCES[:1000] + " & <done>")
    root = ET.fromstring(sms_twiml(parts))
    assert [el.text for el in root] == parts


def test_voice_twiml_gathers_speech_after_saying_the_reply() -> None:
    action = "https://support.example-shop.com/twilio/voice?turn=2&call=CA1"
    root = ET.fromstring(voice_twiml("Your order & <refund> are on the way.", action, language="en-GB"))
    assert root.tag == "Response"
    [gather] = list(root)
    assert gather.tag == "Gather"
    assert gather.attrib["input"] == "speech"
    assert gather.attrib["action"] == action
    assert gather.attrib["method"] == "POST"
    assert gather.attrib["speechTimeout"] == "auto"
    assert gather.attrib["language"] == "en-GB"
    [say] = list(gather)
    assert (say.tag, say.text) == ("Say", "Your order & <refund> are on the way.")


def test_voice_twiml_hangup_variant() -> None:
    root = ET.fromstring(voice_twiml("Goodbye & thanks.", "", hangup=True))
    assert [el.tag for el in root] == ["Say", "Hangup"]
    assert root[0].text == "Goodbye & thanks."


def test_voice_twiml_keeps_say_within_its_limit() -> None:
    root = ET.fromstring(voice_twiml(SENTENCES * 3, "/voice"))
    text = root[0][0].text or ""
    assert 0 < len(text.encode()) <= (LIMITS[Channel.VOICE].max_reply_chars or 0)
    assert text.endswith(".")


def test_voice_twiml_that_listens_needs_an_action_url() -> None:
    with pytest.raises(UsageError, match="action URL"):
        voice_twiml("Hello", " ")
