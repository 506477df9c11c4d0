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


class Unauthenticated(SpaneError):
    """A request without the credentials its resource needs, such as a webhook's signature (HTTP 401)."""


class MethodNotAllowed(SpaneError):
    """A method the resource does not answer (HTTP 405); ``allowed`` are those it does."""

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


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


class StorageUnavailable(StorageError):
    """Redis or Postgres could not be reached for a moment (a dropped connection, a timeout, a pool that stayed
    full). Transient: the work that met it is retried in place after a short backoff."""


class PayloadsUnavailable(StorageUnavailable):
    """Postgres could not be reached to store or fetch payloads; what needed them is retried later."""


class PayloadMissing(SpaneError):
    """A reference names a payload that is not stored: the value is lost, and retrying will not bring it back."""


class EmbeddedServerError(SpaneError):
    """A local server (``spane dev``'s Redis or Postgres) could not be found, started or stopped."""


class PluginError(SpaneError):
    """A plugin module or entry point could not be loaded."""


# What a node's try can end with, besides what its executor raises itself.


class NodeTimeout(SpaneError):
    """The node ran longer than its ``timeoutMs``; retried like any other failure."""


class UnknownNodeType(NonRetryableError):
    """No executor is registered in this worker for the node's type."""


class UnstorableOutput(NonRetryableError):
    """The executor returned a value that cannot be stored (not JSON-like data)."""


class InvalidResult(NonRetryableError):
    """An executor returned a value that names its next nodes in a way SPANE does not understand."""


class HttpStatusError(SpaneError):
    """An ``http`` node got a retryable answer (5xx, 408, 429)."""


class HttpClientError(NonRetryableError):
    """An ``http`` node got a 4xx answer that a retry would not change."""


class BlockedAddress(NonRetryableError):
    """The http node's URL leads to a network this deployment does not let nodes reach."""


class HttpCallTooSlow(SpaneError):
    """An ``http`` node's call (its answer read whole) took longer than ``SPANE_HTTP_MAX_CALL_S``; retried."""


class HttpResponseTooLarge(NonRetryableError):
    """An ``http`` node's answer is larger than ``SPANE_HTTP_MAX_RESPONSE_BYTES``: read no further, fail for good."""
