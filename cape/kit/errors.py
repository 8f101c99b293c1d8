"""Typed errors raised by services and mapped to HTTP in one place (``cape.app``)."""

from __future__ import annotations


class CapeError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotAuthenticated(CapeError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(CapeError):
    status_code = 403
    code = "forbidden"

    def __init__(self, message: str, *, code: str | None = None, required_role: str | None = None):
        super().__init__(message, code=code)
        self.required_role = required_role


class NotFound(CapeError):
    status_code = 404
    code = "not_found"


class Conflict(CapeError):
    status_code = 409
    code = "conflict"


class InvalidInput(CapeError):
    status_code = 422
    code = "invalid_input"

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class OverAuthority(CapeError):
    status_code = 403
    code = "over_authority"


class DatabaseBusy(CapeError):
    """Another writer kept the database for longer than a request may wait; a retry will do."""

    status_code = 503
    code = "busy"
    retry_after_s = 1


class TooManyAttempts(CapeError):
    """A rate limit was reached (sign-in guesses, contact-form posts); try again after a while."""

    status_code = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooLarge(CapeError):
    """A body or file over the limit of what the endpoint takes."""

    status_code = 413
    code = "too_large"


class UnsupportedType(CapeError):
    """A file of a type the endpoint does not take."""

    status_code = 415
    code = "unsupported_type"
