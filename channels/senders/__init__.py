"""Senders: one per provider, each behind `core.delivery.Sender`. A sender turns a queued `Delivery` into one provider
call (Twilio's Messages API, SMTP, Meta's Send API, the WhatsApp Cloud API) and maps the provider's answer to a
receipt, a transient failure (retried with backoff) or a permanent one. Base URLs come from settings, so tests point
the real clients at local servers."""
