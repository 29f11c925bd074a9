"""Checkpoints: strict msgpack deserialization (a tampered row cannot make the process build arbitrary objects)
and, with `THREADLINE_CHECKPOINT_KEY`, encryption at rest that conversations survive across restarts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel, field_validator
from sqlalchemy import text

from threadline.core.settings import Settings
from threadline.core.types import Channel, InboundMessage
from threadline.memory.checkpoints import make_serializer
from threadline.memory.db import Database
from threadline.product.services import open_services

BUILT: list[str] = []
KEY = "k" * 32
PHRASE = "purple-elephant-4711"
PHONE = "+15557650777"


class Planted(BaseModel):
    """A type no checkpoint of ours holds: building it has a visible side effect."""

    name: str

    @field_validator("name")
    @classmethod
    def _record(cls, value: str) -> str:
        BUILT.append(value)
        return value


def test_strict_deserialization_refuses_types_outside_the_allow_list(caplog: pytest.LogCaptureFixture) -> None:
    permissive = JsonPlusSerializer(allowed_msgpack_modules=True)
    planted = permissive.dumps_typed({"x": Planted(name="planted")})
    BUILT.clear()
    with caplog.at_level(logging.WARNING):
        loaded = make_serializer().loads_typed(planted)
    refused = not isinstance(loaded["x"], Planted) and BUILT == []
    print(
        f"\n[checkpoint serde] planted type built by the strict loader: {not refused}; "
        f"loaded as {type(loaded['x']).__name__}"
    )
    assert refused
    assert any("Blocked deserialization" in r.getMessage() for r in caplog.records)
    permissive.loads_typed(planted)
    assert BUILT == ["planted"]  # the control: without the allow-list the planted type is built


def _settings(db_url: str, data_dir: Path, key: str | None) -> Settings:
    return Settings(data_dir=data_dir, database_url=db_url, load_demo=False, checkpoint_key=key)


def _say(settings: Settings, text_: str) -> tuple[str, list[str]]:
    services = open_services(settings)
    try:
        outcome = services.turns.handle(InboundMessage(channel=Channel.SMS, sender=PHONE, text=text_))
        state = services.threads.values(outcome.customer_id)
        said = [str(m.content) for m in state["messages"] if m.type == "human"]
        return outcome.customer_id, said
    finally:
        services.close()


def _checkpoint_bytes(db_url: str) -> bytes:
    db = Database.from_url(db_url)
    queries = (
        ["SELECT checkpoint FROM checkpoints", "SELECT value FROM writes"]
        if db.backend == "sqlite"
        else [
            "SELECT checkpoint::text FROM checkpoints",
            "SELECT blob FROM checkpoint_blobs WHERE blob IS NOT NULL",
            "SELECT blob FROM checkpoint_writes",
        ]
    )
    chunks: list[bytes] = []
    try:
        with db.engine.connect() as conn:
            for query in queries:
                for (value,) in conn.execute(text(query)):
                    chunks.append(value.encode() if isinstance(value, str) else bytes(value))
    finally:
        db.dispose()
    return b"\n".join(chunks)


def test_checkpoints_are_encrypted_at_rest_and_turns_continue_across_restarts(
    demo_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, backend: str
) -> None:
    plain = _settings(demo_db_url, tmp_path, None)
    _say(plain, "hello, is anyone there?")  # a checkpoint written before the key was set
    in_clear = _checkpoint_bytes(demo_db_url).count(b"anyone there")
    keyed = _settings(demo_db_url, tmp_path, KEY)
    with caplog.at_level(logging.WARNING):
        _say(keyed, f"the code word is {PHRASE}")  # a restart with the key: the old checkpoint still loads
        customer_id, said = _say(keyed, "and what is your return policy?")  # another restart
    raw = _checkpoint_bytes(demo_db_url)
    leaked = raw.count(PHRASE.encode())
    print(f"\n[checkpoint encryption {backend}] plaintext hits before the key {in_clear}; after it {leaked}")
    assert in_clear > 0
    assert leaked == 0
    assert said[0] == "hello, is anyone there?" and PHRASE in said[1] and said[2].startswith("and what")
    assert not [r for r in caplog.records if "Blocked deserialization" in r.getMessage()]
    wrong = _settings(demo_db_url, tmp_path, "w" * 32)
    with pytest.raises(ValueError, match="MAC check failed"):
        _say(wrong, "who am I?")
    assert customer_id
