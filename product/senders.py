"""The outbox's senders, built from settings: a provider is on when its credentials are set."""

from __future__ import annotations

from typing import Any

from threadline.core.delivery import Purpose, Sender
from threadline.core.errors import ConfigurationError
from threadline.core.settings import Settings

TWILIO_STATUS_PATH = "/v1/channels/twilio/status"
SEND_TIMEOUT_S = 10.0
"""Per provider call: well inside the outbox lease, so a slow provider never has a row claimed twice."""


def build_senders(settings: Settings) -> dict[str, Sender]:
    """One sender per provider whose settings are complete, by provider name."""
    senders: dict[str, Sender] = {}
    if settings.twilio_account_sid and settings.twilio_auth_token:
        from threadline.channels.senders.twilio import TwilioSender

        callback = settings.public_url.rstrip("/") + TWILIO_STATUS_PATH if settings.public_url else None
        senders["twilio"] = TwilioSender(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            base_url=settings.twilio_api_base_url,
            status_callback_url=callback,
            timeout_s=SEND_TIMEOUT_S,
        )
    if settings.smtp_url:
        from threadline.channels.senders.smtp import SmtpSender

        if not settings.email_from:
            raise ConfigurationError(
                "THREADLINE_SMTP_URL is set: set THREADLINE_EMAIL_FROM, the address replies come from"
            )
        from_address = settings.email_from
        senders["smtp"] = SmtpSender(
            settings.smtp_url.get_secret_value(), from_address=from_address, timeout_s=SEND_TIMEOUT_S
        )
    from threadline.channels.senders.meta import messenger_sender, whatsapp_sender

    if (messenger := messenger_sender(settings)) is not None:
        senders["messenger"] = messenger
    if (whatsapp := whatsapp_sender(settings)) is not None:  # checks the templates setting too
        senders["whatsapp"] = whatsapp
    return senders


def whatsapp_templates(settings: Settings) -> dict[Purpose, dict[str, Any]]:
    """The configured WhatsApp template per purpose, as the outbox payload carries it."""
    if not settings.whatsapp_templates.strip():
        return {}
    from threadline.channels.senders.meta import parse_templates

    return {
        purpose: template.as_payload() for purpose, template in parse_templates(settings.whatsapp_templates).items()
    }
