"""API keys: only each key's SHA-256 (and a short prefix to recognise it by) is ever stored."""

from __future__ import annotations

import builtins
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from threadline.core.auth import ApiKey, Role, key_problem
from threadline.core.errors import ConflictError, InvalidInputError, NotFoundError
from threadline.memory.db import Database
from threadline.memory.ids import new_id
from threadline.memory.schema import ApiKeyRow, utcnow

GENERATED_PREFIX = "tl_"
_SHOWN_OF_GENERATED = 8  # "tl_" plus 5 random characters: enough to tell keys apart, nothing to guess from
_SHOWN_OF_SUPPLIED = 4  # a supplied key may be short (16 characters; the legacy admin key any), so show less


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex. Keys are long random tokens, so a fast hash is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A fresh key: ``tl_`` and 32 random bytes, URL-safe."""
    return GENERATED_PREFIX + secrets.token_urlsafe(32)


class SqlApiKeyRepository:
    """API keys with roles over the domain store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, role: Role, name: str, *, created_by: str, key: str | None = None) -> tuple[ApiKey, str]:
        """Store a new key (a generated one unless `key` is given); returns the record and the raw key,
        which is never retrievable again."""
        if key is not None and (problem := key_problem(key)):
            raise InvalidInputError(f"cannot use that key: {problem}")
        raw = generate_key() if key is None else key
        return self._insert(role, name, raw, created_by=created_by, generated=key is None), raw

    def _insert(self, role: Role, name: str, raw: str, *, created_by: str, generated: bool) -> ApiKey:
        if not name.strip():
            raise InvalidInputError("a key needs a name (who or what uses it)")
        shown = _SHOWN_OF_GENERATED if generated else min(_SHOWN_OF_SUPPLIED, len(raw) // 4)
        row = ApiKeyRow(
            id=new_id("key"),
            name=name.strip(),
            role=Role(role).value,
            prefix=raw[:shown],
            key_hash=hash_key(raw),
            created_by=created_by,
            created_at=utcnow(),
        )
        try:
            with self._db.session() as s:
                s.add(row)
                s.flush()
                return ApiKey.model_validate(row)
        except IntegrityError:
            raise ConflictError("that key is already on file") from None

    def ensure(self, role: Role, key: str, *, name: str, created_by: str) -> ApiKey:
        """The key's record, created if missing (idempotent by hash, safe when several workers start at once).
        A key on file with another role is a conflict; a revoked key stays revoked."""
        if not key:
            raise InvalidInputError(f"key {name!r} is empty")
        digest = hash_key(key)
        for _ in range(2):
            with self._db.session() as s:
                row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest))
                if row is not None:
                    wanted = Role(role).value
                    if row.role != wanted:
                        raise ConflictError(f"key {name!r} is on file as a {row.role} key ({row.id}), not {wanted}")
                    return ApiKey.model_validate(row)
            try:
                return self._insert(role, name, key, created_by=created_by, generated=False)
            except ConflictError:
                continue  # another process stored it first: read it back
        raise ConflictError(f"could not store key {name!r}")  # pragma: no cover - only under a pathological race

    def authenticate(self, key: str) -> ApiKey | None:
        """The active (not revoked) key with this value, if any."""
        if not key:
            return None
        with self._db.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key), ApiKeyRow.revoked_at.is_(None)))
            return ApiKey.model_validate(row) if row else None

    def get(self, key_id: str) -> ApiKey | None:
        with self._db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            return ApiKey.model_validate(row) if row else None

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key for good (revoking it again keeps the first time)."""
        with self._db.session() as s:
            row = s.get(ApiKeyRow, key_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no API key {key_id}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            s.flush()
            return ApiKey.model_validate(row)

    def list(self, include_revoked: bool = False) -> builtins.list[ApiKey]:
        """Every key, oldest first; revoked ones only when asked."""
        with self._db.session() as s:
            query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
            if not include_revoked:
                query = query.where(ApiKeyRow.revoked_at.is_(None))
            return [ApiKey.model_validate(r) for r in s.scalars(query)]
