"""The one settings object, read from ``THREADLINE_*`` environment variables (and ``.env``)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from threadline.core.errors import ConfigurationError

_SUPPORTED_DB_PREFIXES = ("sqlite", "postgres")


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches only this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Everything a deployment can change; the defaults are the embedded product."""

    model_config = SettingsConfigDict(
        env_prefix="THREADLINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(Path(".threadline"), description="Holds the SQLite database and the knowledge index.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; unset means SQLite at DATA_DIR/threadline.db. postgresql+psycopg://…"
    )
    model: str = Field("offline", description="'offline' or 'openai:<model name>'.")
    openai_base_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server.")
    openai_api_key: SecretStr | None = Field(
        None, description="API key for the OpenAI-compatible server (OPENAI_API_KEY is read too)."
    )
    embeddings: Literal["local", "openai"] = Field("local", description="Local MiniLM or OpenAIEmbeddings.")
    host: str = Field("127.0.0.1", description="Address `threadline serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `threadline serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="API worker processes for `threadline serve`.")
    load_demo: bool = Field(True, description="Load the demo store into an empty database at start-up.")
    demo_page_public: bool = Field(
        False, description="Allow the /demo page when the server binds beyond loopback (it speaks as demo customers)."
    )
    demo_page: bool = Field(
        False,
        description="Serve /demo, a chat page that speaks as the demo customers and fictional numbers (`make run` "
        "turns it on); only on a loopback address unless THREADLINE_DEMO_PAGE_PUBLIC is true.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    db_pool_size: int = Field(10, ge=1, le=200, description="Connection pool size for Postgres.")
    admin_api_key: SecretStr | None = Field(
        None, description="An admin API key (the same as an `admin` key from THREADLINE_BOOTSTRAP_KEYS); unset = none."
    )
    web_identity_secret: SecretStr | None = Field(
        None,
        description="Per-site secret: the site signs the signed-in customer's handle with HMAC-SHA256 so chat "
        "messages carry a strong identity.",
    )
    cache_dir: Path | None = Field(
        None, description="Embedding cache shared by workers and restarts; unset means DATA_DIR/cache."
    )
    verification_ttl_hours: float = Field(
        24, ge=0, le=24 * 90, description="How long verification earned in a conversation holds on that handle."
    )
    pending_sweep_s: float = Field(
        60,
        ge=0,
        le=3600,
        description="A message accepted this many seconds ago and still unanswered (its turn died, nobody "
        "redelivered) is answered by a sweep in every worker; 0 turns the sweep off.",
    )
    verified_idle_minutes: float = Field(
        30,
        gt=0,
        le=24 * 60,
        description="On a handle anyone can forge (caller id, SMS sender, email From), verification lasts for the "
        "conversation: it lapses after this many minutes without a message from the handle.",
    )
    kb_refresh_s: float = Field(
        0.5, gt=0, le=60, description="How often each worker checks the knowledge-base version in the database."
    )
    hnsw_threshold: int = Field(
        50_000, ge=1, description="Chunks beyond which the knowledge index switches from exact search to HNSW."
    )
    bootstrap_keys: SecretStr | None = Field(
        None,
        description="API keys created at start-up if missing, as 'role:key,role:key' (roles: channel, agent, admin, "
        "qa, associate).",
    )
    twilio_auth_token: SecretStr | None = Field(None, description="Twilio auth token: checks X-Twilio-Signature.")
    public_url: str | None = Field(
        None, description="The public base URL providers call (Twilio signs it); unset means the request URL."
    )
    email_signing_key: SecretStr | None = Field(None, description="Inbound-email webhook signing key (Mailgun style).")
    meta_app_secret: SecretStr | None = Field(None, description="Meta app secret: checks X-Hub-Signature-256.")
    meta_verify_token: SecretStr | None = Field(None, description="Meta webhook subscription verify token.")
    webhook_reply_budget_ms: int = Field(
        5000,
        ge=0,
        le=60_000,
        description="How long a provider webhook waits for its turn before answering without the reply (empty TwiML, "
        "200); the reply then goes out through the outbox. Twilio gives up after 15 s and Meta after 20 s.",
    )
    outbox_dispatch: bool = Field(
        True, description="Run the outbox dispatcher in this process (every API worker runs one by default)."
    )
    outbox_poll_s: float = Field(
        1.0, gt=0, le=60, description="How often an idle dispatcher looks for due deliveries (a new one wakes it)."
    )
    outbox_max_attempts: int = Field(
        6, ge=1, le=50, description="Attempts of a delivery that fails transiently before it is dead."
    )
    outbox_backoff_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Wait before the first retry; doubled each retry, with jitter (the defaults retry for about a "
        "quarter of an hour: a provider's outage or a greylisting mail server passes).",
    )
    outbox_backoff_max_s: float = Field(900.0, gt=0, le=86_400, description="The longest wait between retries.")
    outbox_lease_s: float = Field(
        180.0,
        ge=150,
        le=3600,
        description="A delivery claimed this long ago and still `sending` (its dispatcher died mid-call) is sent again "
        "with the same idempotency key.",
    )
    twilio_account_sid: str | None = Field(None, description="Twilio account SID: sends SMS (and voice follow-ups).")
    twilio_from_number: str | None = Field(
        None, description="The Twilio number replies come from, unless the customer wrote to another of ours."
    )
    twilio_messaging_service_sid: str | None = Field(
        None, description="A Twilio Messaging Service to send from instead of one number."
    )
    twilio_api_base_url: str = Field("https://api.twilio.com", description="Base URL of Twilio's REST API.")
    smtp_url: SecretStr | None = Field(
        None,
        description="Sends email replies: smtp://user:pass@host:587 (STARTTLS when offered), smtps://… (TLS from the "
        "start); unset means email replies are not sent.",
    )
    email_from: str | None = Field(
        None, description="From address of email replies, e.g. 'Demo Store <support@example.com>'."
    )
    meta_page_access_token: SecretStr | None = Field(
        None, description="Page access token for the Messenger/Instagram Send API."
    )
    meta_graph_base_url: str = Field("https://graph.facebook.com", description="Base URL of Meta's Graph API.")
    meta_graph_version: str = Field("v23.0", pattern=r"^v\d+\.\d+$", description="Graph API version.")
    whatsapp_access_token: SecretStr | None = Field(None, description="WhatsApp Cloud API access token.")
    whatsapp_phone_number_id: str | None = Field(
        None, description="The WhatsApp business phone number id replies are sent from."
    )
    whatsapp_templates: str = Field(
        "",
        description="Approved templates used outside the 24-hour window, per purpose: "
        "'agent_reply:support_followup:en_US,queue_timeout:queue_update:en_US' "
        "(purposes: reply, agent_reply, queue_timeout).",
    )
    store_name: str = Field("The Threadline Demo Store", description="Signs email replies.")
    max_body_bytes: int = Field(65_536, ge=1024, le=10_000_000, description="Largest request body accepted (413).")
    rate_per_key_per_minute: int = Field(1200, ge=1, description="Requests per minute per API key (429 beyond).")
    rate_per_sender_per_minute: int = Field(30, ge=1, description="Messages per minute per sender handle (429).")
    rate_anonymous_search_per_minute: int = Field(
        120, ge=1, description="Knowledge searches per minute per client address without a key (429)."
    )
    model_timeout_s: float = Field(30, gt=0, le=600, description="Timeout of every model call, in seconds.")
    burst_window_ms: int = Field(
        0, ge=0, le=10_000, description="Wait this long before a turn so a burst of messages becomes one turn."
    )
    escalation_sentiment: float = Field(
        -0.5, ge=-1, le=0, description="A customer turn scoring below this (VADER compound) counts as negative."
    )
    escalation_negative_turns: int = Field(
        2, ge=1, le=20, description="Negative turns in a row (or a steady fall in sentiment) that escalate."
    )
    escalation_failed_answers: int = Field(
        2, ge=1, le=20, description="Unusable answers in a row (no knowledge answer, the same question again)."
    )
    high_value_spend: float = Field(
        1000, ge=0, description="Lifetime spend from which a complaint goes straight to a person."
    )
    queue_timeout_minutes: float = Field(
        30, gt=0, le=24 * 60, description="How long a queued case waits for an agent before it times out."
    )
    turn_lease_s: float = Field(120, gt=0, le=3600, description="How long a turn's per-customer lease lasts (SQLite).")
    redact_handoff_transcripts: bool = Field(
        True, description="Redact card numbers, emails and phone numbers in the customer text a handoff packet quotes."
    )
    checkpoint_key: SecretStr | None = Field(
        None, description="AES key (16, 24 or 32 bytes) that encrypts conversation checkpoints at rest; unset = plain."
    )
    retention_messages_days: float = Field(
        0, ge=0, description="Delete messages older than this many days (0 = keep forever)."
    )
    checkpoint_history: int = Field(
        2, ge=0, description="Checkpoints each conversation thread keeps after every turn (0 = keep all)."
    )
    retention_checkpoints_keep: int = Field(
        0, ge=0, description="Keep only this many latest checkpoints per conversation thread (0 = keep all)."
    )
    retention_threads_idle_days: float = Field(
        0, ge=0, description="Delete conversation threads idle for longer than this many days (0 = keep)."
    )
    retention_at_startup: bool = Field(
        False, description="Run the retention job once in the background when the API starts."
    )
    queue_ack_minutes: float = Field(
        30.0,
        ge=0,
        description="A customer who writes while their case waits for a person hears at most once per this many "
        "minutes that their message reached the team.",
    )
    business_timezone: str = Field("UTC", description="IANA time zone of the business hours (analytics).")
    business_hours: str = Field(
        "09:00-18:00", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$", description="Opening hours, local time, HH:MM-HH:MM."
    )
    business_days: str = Field(
        "mon,tue,wed,thu,fri",
        pattern=r"^(mon|tue|wed|thu|fri|sat|sun)(,(mon|tue|wed|thu|fri|sat|sun))*$",
        description="Opening days, comma-separated (mon … sun).",
    )
    conversation_gap_minutes: float = Field(
        30, gt=0, le=24 * 60, description="Silence after which a customer's next message starts a new conversation."
    )
    fcr_window_days: float = Field(
        7, ge=0, le=90, description="A case that comes back on any channel within this many days is not first-contact."
    )
    reopen_window_hours: float = Field(
        48,
        ge=0,
        le=24 * 90,
        description="A conversation the customer comes back after (any channel) within this many hours is reopened.",
    )
    attribution_window_days: float = Field(
        7, ge=0, le=90, description="How long before a purchase an AI conversation counts towards it."
    )

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(_SUPPORTED_DB_PREFIXES):
            raise ValueError(f"unsupported database URL scheme in {value.split(':', 1)[0]!r}; use sqlite or postgresql")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("demo_page")
    @classmethod
    def _demo_page_on_loopback(cls, value: bool, info: ValidationInfo) -> bool:
        host = str(info.data.get("host", "127.0.0.1"))
        if value and not is_loopback(host) and not info.data.get("demo_page_public"):
            raise ValueError(
                f"the /demo page speaks as demo customers, so it is served only on a loopback address, not {host!r}; "
                "set THREADLINE_DEMO_PAGE_PUBLIC=true to serve it there anyway"
            )
        return value

    @field_validator("business_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Paris") from exc
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value != "offline" and not (value.startswith("openai:") and len(value) > len("openai:")):
            raise ValueError("model must be 'offline' or 'openai:<model name>'")
        return value

    @field_validator("checkpoint_key")
    @classmethod
    def _aes_key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if len(value.get_secret_value().encode()) not in (16, 24, 32):
            raise ValueError("the checkpoint key must be 16, 24 or 32 bytes (AES-128, -192 or -256)")
        return value

    @model_validator(mode="after")
    def _openai_key_fallback(self) -> Settings:
        if self.openai_api_key is None:
            import os

            key = os.environ.get("OPENAI_API_KEY")
            if key:
                self.openai_api_key = SecretStr(key)
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL actually used: the configured one, else SQLite in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'threadline.db').resolve()}"

    @property
    def is_postgres(self) -> bool:
        """Whether the domain store (and the checkpoints) live in Postgres."""
        return self.sqlalchemy_url.startswith("postgresql")

    @property
    def cache_path(self) -> Path:
        """Where derived, rebuildable caches (embeddings, the classifier's example matrix) live."""
        return (self.cache_dir or self.data_dir / "cache").resolve()

    @property
    def index_dir(self) -> Path:
        """Where the knowledge index files live."""
        return self.data_dir / "index"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus overrides, turning validation errors into one clear error."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"THREADLINE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import time)."""
    return load_settings()
