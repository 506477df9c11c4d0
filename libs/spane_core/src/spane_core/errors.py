"""The one error tree. The API maps these to HTTP statuses in a single table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    path: str
    message: str


class SpaneError(Exception):
    """Root of every error SPANE raises on purpose."""


class InvalidInput(SpaneError):
    """Input that parses but breaks a rule (HTTP 422). Carries one entry per broken rule."""

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class MalformedInput(SpaneError):
    """Input of the wrong shape or type (HTTP 400)."""

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class NotFound(SpaneError):
    """An unknown id (HTTP 404)."""


class StateConflict(SpaneError):
    """The current state does not allow the command (HTTP 409)."""


class ConcurrencyError(SpaneError):
    """The execution moved on while a transition was being decided; reload and decide again."""


class NonRetryableError(SpaneError):
    """Raised by an executor to fail its node at once, skipping the remaining retries."""


class StorageError(SpaneError):
    """A backing store (Redis, Postgres) failed or is unreachable."""


class ConfigurationError(SpaneError):
    """A setting is missing or wrong, so a service cannot start; the message says which and how to set it."""


class InternalError(SpaneError):
    """A bug: the rules could not decide on one execution (HTTP 500). Logged with its traceback; it fails that
    execution's transition only, never the others committed with it."""
