"""One error taxonomy with stable codes; only `api` and `cli` map it to HTTP statuses and exit codes."""

from __future__ import annotations


class ThreadlineError(Exception):
    """Base of every error the product raises on purpose."""

    code = "threadline_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RecoverableError(ThreadlineError):
    """A failure the model can recover from; becomes a tool message, never a stack trace."""

    code = "recoverable"


class NotFoundError(RecoverableError):
    """The thing asked for does not exist, or is not the caller's to see (the two are indistinguishable)."""

    code = "not_found"


class VerificationRequiredError(RecoverableError):
    """The customer's verification level is too low for what was asked."""

    code = "verification_required"


class UsageError(ThreadlineError):
    """A caller (developer, operator, API client) used the product wrongly."""

    code = "usage_error"


class AuthenticationError(UsageError):
    """A credential or signature did not verify."""

    code = "unauthenticated"


class PermissionDeniedError(UsageError):
    """The caller is known but not allowed to do this."""

    code = "forbidden"


class InvalidInputError(UsageError):
    """A request or file does not have the expected shape."""

    code = "invalid_input"


class ConflictError(UsageError):
    """The request conflicts with the current state (duplicate key, stale version)."""

    code = "conflict"


class RateLimitedError(UsageError):
    """Too many requests for a key or a sender; retry after `retry_after_s` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ConfigurationError(UsageError):
    """The settings are invalid or inconsistent."""

    code = "configuration_error"


class OperationalError(ThreadlineError):
    """The environment failed: a database down, a model server unreachable."""

    code = "operational_error"


class StoreUnavailableError(OperationalError):
    """The domain store cannot be reached or is not migrated."""

    code = "store_unavailable"
