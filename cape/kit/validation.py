"""Input types shared by API schemas."""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from fastapi import Path, Query
from pydantic import AfterValidator, Field


def _email(value: str) -> str:
    try:
        # No DNS lookups at request time; the reserved ".test" domain is allowed for staging setups.
        result = validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return result.normalized


EmailAddress = Annotated[str, AfterValidator(_email)]


# Ids are 64-bit in the database: a larger number is bad input, not a server error.
MAX_ID = 2**63 - 1
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Text stored in the database: PostgreSQL cannot store NUL characters in text columns.
Text = Annotated[str, AfterValidator(_no_nul)]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
