"""The evaluation suite format: versioned YAML, validated by these pydantic models (`threadline eval schema`).

A suite holds scenarios; a scenario is a persona and a list of customer turns, each on its own channel, with its
own sender handle (identity), test clock and expectations. Scenario-level expectations look at the whole run:
the order system's final state, the same facts across channels, the same outcome after hours as at noon.
Text fields may name the persona: `{email}`, `{name}`, `{first_name}`, `{last_name}`, `{zip}`, `{user_id}`.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from threadline.core.errors import InvalidInputError

SUITE_VERSION = 1
SUITES_DIR = Path(__file__).resolve().parent / "suites"
SCHEMA_PATH = Path(__file__).resolve().parent / "suite.schema.json"
CHANNELS = ("web", "sms", "voice", "email", "social", "store", "whatsapp")
BUSINESS_HOURS_AT = time(12, 0)
AFTER_HOURS_AT = time(23, 0)
DEFAULT_START = datetime(2026, 3, 2, 12, 0)  # a Monday: the suites' test clock starts here unless told otherwise
PERSONA_FIELDS = ("email", "name", "first_name", "last_name", "zip", "user_id")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArgMatcher(_Strict):
    """How one tool argument is matched: exactly, by substring, by regular expression, or present at all."""

    equals: Any = None
    contains: str | None = None
    regex: str | None = None
    present: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ArgMatcher:
        given = [k for k in ("equals", "contains", "regex", "present") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("an argument matcher takes exactly one of equals, contains, regex, present")
        if self.regex is not None:
            re.compile(self.regex)
        return self


class ToolCall(_Strict):
    """An expected tool call: its name and, optionally, matchers for some of its arguments (a bare value is
    an exact match); arguments not named are not checked."""

    name: str
    args: dict[str, ArgMatcher | str | int | float | bool | None] = Field(default_factory=dict)


class ToolExpectation(_Strict):
    """The tools a turn called, matched as a trajectory: `strict` (same calls, same order), `unordered` (same
    calls, any order), `subset` (every actual call is expected), `superset` (every expected call happened)."""

    match: Literal["strict", "unordered", "subset", "superset"] = "strict"
    calls: list[ToolCall] = Field(default_factory=list)


class TextPattern(_Strict):
    """Text to find: a case-insensitive substring, or a regular expression."""

    text: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TextPattern:
        if (self.text is None) == (self.regex is None):
            raise ValueError("a text pattern takes exactly one of text, regex")
        if self.regex is not None:
            re.compile(self.regex)
        return self


class HandoffExpectation(_Strict):
    """The handoff packet a turn produced: its stall type, fields that must be filled in, exact values (dotted
    paths into the packet)."""

    stall: str | None = None
    required: list[str] = Field(default_factory=list)
    equals: dict[str, Any] = Field(default_factory=dict)


class TurnExpectation(_Strict):
    """What must hold after one turn; every field is optional."""

    tools: ToolExpectation | None = None
    tool_results_contain: list[str | TextPattern] = Field(default_factory=list)
    """Text the turn's tool results must hold (what the assistant had to work with)."""
    reply_contains: list[str | TextPattern] = Field(default_factory=list)
    reply_excludes: list[str | TextPattern] = Field(default_factory=list)
    silent: bool | None = None
    """True: no reply at all (a human owns the case); False: some reply."""
    owner: str | None = None
    handoff: HandoffExpectation | None = None
    cites: list[str] = Field(default_factory=list)
    """Knowledge article titles the reply must cite."""
    no_foreign_data: bool = True
    """The reply holds no order id, tracking number, email or address of any other customer."""
    grounded: bool = True
    """Every status, date, price, tracking number and policy statement in the reply comes from a tool result."""
    error: str | None = None
    """The turn must be refused with this error code (e.g. `invalid_input`)."""
    max_sms_segments: int | None = None
    judge: str | None = None
    """A rubric for the LLM judge (checked only when a judge model is configured)."""


class Turn(_Strict):
    """One customer message."""

    channel: Literal["web", "sms", "voice", "email", "social", "store", "whatsapp"]
    sender: str = Field(min_length=1)
    """The sender handle on that channel: a phone number, an email, a visitor id; may name the persona."""
    vouched: bool = False
    """Whether the channel vouches for the sender (a signed-in web session, an associate's check)."""
    text: str = ""
    repeat: int = Field(1, ge=1, le=10_000)
    """The text is repeated this many times (joined by spaces): huge inputs without huge files."""
    after_days: float = Field(0, ge=0, le=365)
    """Days of test clock between the previous turn and this one."""
    at: Literal["business_hours", "after_hours"] | None = None
    """Move the test clock to noon or to 11 PM of its current day before this turn."""
    expect: TurnExpectation = Field(default_factory=TurnExpectation)
    label: str | None = None
    """A name other expectations refer to (consistency pairs)."""


class Persona(_Strict):
    """Who writes: a customer of the demo store (`user_id`) or an unknown person; a short description."""

    user_id: str | None = None
    description: str = ""


class OrderState(_Strict):
    """An order's expected final state in the order system."""

    status: str | None = None
    item_count: int | None = None


class ScenarioExpectation(_Strict):
    """What must hold over the whole scenario."""

    orders: dict[str, OrderState] = Field(default_factory=dict)
    consistent: list[list[str]] = Field(default_factory=list)
    """Groups of turn labels whose replies must state the same facts (cross-channel consistency)."""
    after_hours_parity: bool = False
    """Run the scenario again at 11 PM and at noon: the same tools, owner and facts each time."""


class Article(_Strict):
    """A knowledge article the scenario publishes before its first turn (a promotion, a product notice, …)."""

    id: str = Field(pattern=r"^[a-z0-9_\-]+$")
    kind: Literal["policy", "faq", "promotion", "product_notice"]
    title: str = Field(min_length=1)
    body: str = Field(min_length=1)
    product_ids: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)


class Setup(_Strict):
    """State the scenario needs beyond the demo store."""

    articles: list[Article] = Field(default_factory=list)
    order_notes: dict[str, str] = Field(default_factory=dict)
    """Notes written on orders in the order system (e.g. text that tries to instruct the assistant)."""


class Scenario(_Strict):
    """A persona, turns and expectations."""

    id: str = Field(pattern=r"^[a-z0-9_\-]+$")
    description: str = ""
    persona: Persona = Field(default_factory=Persona)
    setup: Setup = Field(default_factory=Setup)
    start: datetime = DEFAULT_START
    turns: list[Turn] = Field(min_length=1)
    expect: ScenarioExpectation = Field(default_factory=ScenarioExpectation)

    @model_validator(mode="after")
    def _labels_exist(self) -> Scenario:
        labels = [t.label for t in self.turns if t.label]
        if len(labels) != len(set(labels)):
            raise ValueError(f"scenario {self.id}: turn labels must be unique")
        for group in self.expect.consistent:
            missing = set(group) - set(labels)
            if missing or len(group) < 2:
                raise ValueError(f"scenario {self.id}: consistency group {group} needs two or more known labels")
        return self


class Thresholds(_Strict):
    """The suite passes when its pass^k rate and every evaluator's score reach these."""

    pass_rate: float = Field(1.0, ge=0, le=1)
    evaluators: dict[str, float] = Field(default_factory=dict)


class Suite(_Strict):
    """A named, versioned set of scenarios with pass thresholds."""

    version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9_\-]+$")
    description: str = ""
    offline: bool = True
    """Whether CI runs this suite with the offline model."""
    thresholds: Thresholds = Field(default_factory=Thresholds)
    scenarios: list[Scenario] = Field(min_length=1)

    @field_validator("scenarios")
    @classmethod
    def _unique_ids(cls, scenarios: list[Scenario]) -> list[Scenario]:
        ids = [s.id for s in scenarios]
        if len(ids) != len(set(ids)):
            raise ValueError("scenario ids must be unique within a suite")
        return scenarios


def load_suite(path: Path) -> Suite:
    """Read and validate one suite file; a clear `InvalidInputError` on bad YAML or a schema violation."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InvalidInputError(f"cannot read suite {path}: {error}") from error
    if not isinstance(raw, dict):
        raise InvalidInputError(f"suite {path} must be a mapping with version, name and scenarios")
    if raw.get("version") != SUITE_VERSION:
        raise InvalidInputError(f"suite {path}: unsupported version {raw.get('version')!r} (expected {SUITE_VERSION})")
    try:
        return Suite.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInputError(f"suite {path}: {where}: {first['msg']} ({error.error_count()} errors)") from error


def suite_paths(names: list[str] | None = None, directory: Path = SUITES_DIR) -> list[Path]:
    """The suite files to run: the named files or shipped suite names, else every shipped suite."""
    if not names:
        return sorted(directory.glob("*.yaml"))
    paths = []
    for name in names:
        path = Path(name)
        if not path.exists():
            path = directory / f"{name.removesuffix('.yaml')}.yaml"
        if not path.exists():
            raise InvalidInputError(f"no suite file or shipped suite named {name!r}")
        paths.append(path)
    return paths


def json_schema() -> str:
    """The suite format as JSON Schema (what `threadline eval schema` prints and `suite.schema.json` holds)."""
    schema = Suite.model_json_schema()
    schema["$id"] = "https://threadline.dev/schemas/eval-suite-v1.json"
    schema["title"] = "Threadline evaluation suite"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
