"""Input types shared by API schemas."""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator


def _email(value: str) -> str:
    try:
        # No DNS lookups at request time; the reserved ".test" domain is allowed for staging setups.
        result = validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return result.normalized


EmailAddress = Annotated[str, AfterValidator(_email)]
