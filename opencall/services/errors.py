"""Errors that services raise; the REST and socket layers turn them into responses."""

from __future__ import annotations


class ServiceError(Exception):
    """A request that cannot be carried out; ``str(exc)`` is the message shown to the user."""


class InvalidInput(ServiceError):
    """A missing or malformed field."""


class NotAuthenticated(ServiceError):
    """No valid credentials were given."""


class Conflict(ServiceError):
    """The request clashes with existing data (e.g. username taken)."""


class NotFound(ServiceError):
    """The named thing does not exist."""


class Gone(ServiceError):
    """The named thing existed but can no longer be used (expired, already used)."""


class RateLimited(ServiceError):
    """Too many requests; ``retry_after`` is the number of seconds until the next one is allowed."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
