"""Plain DB-API statements on a session's own connection, for the few hottest paths.

SQLAlchemy Core spends about 100 µs of Python on each statement it runs on our 2-core reference
machine, where the driver itself needs 5 to 20 µs; ingest runs about ten statements a message. So
the ingest path speaks to the driver directly, inside the session's transaction, and writes
values exactly as the models' column types store them (UTC datetimes, string enums, JSON), so
that everything else reads them back through the ORM. Tests round-trip through both.

Statements are written once with ``:name`` placeholders; PostgreSQL's driver gets ``%(name)s``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cape.db import WriteInReadOnlySession, is_read_only

# How SQLAlchemy's SQLite DATETIME stores a value: the models' UTC datetimes, made naive.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
_PLACEHOLDER = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=256)
def _for_postgres(sql: str) -> str:
    if "%" in sql:
        raise ValueError("a literal % would need escaping for psycopg; pass it as a parameter")
    return _PLACEHOLDER.sub(r"%(\1)s", sql)


def in_list(name: str, values: list[Any]) -> tuple[str, dict[str, Any]]:
    """``(:name_0, :name_1, ...)`` and its parameters, for ``column IN (...)``."""
    keys = [f"{name}_{n}" for n in range(len(values))]
    return "(" + ", ".join(f":{key}" for key in keys) + ")", dict(zip(keys, values, strict=True))


_CURRENT = "cape.rawsql"


class RawSql:
    """Statements run by the driver in the session's current transaction (begun if needed)."""

    __slots__ = ("cursor", "driver_error", "postgres", "read_only", "savepoint")

    @classmethod
    def of(cls, session: Session) -> RawSql:
        """The session's statements for its current transaction (asking for its connection costs)."""
        raw = session.info.get(_CURRENT)
        if raw is None:
            raw = session.info[_CURRENT] = cls(session)
        elif (savepoint := session.get_nested_transaction()) is not raw.savepoint:
            # SQLAlchemy emits a savepoint's SAVEPOINT when the session next asks for its
            # connection; statements that bypass it would otherwise run outside the savepoint.
            session.connection()
            raw.savepoint = savepoint
        return raw

    def __init__(self, session: Session):
        connection = session.connection()
        self.postgres = connection.dialect.name == "postgresql"
        self.driver_error = connection.dialect.loaded_dbapi.Error
        self.cursor = connection.connection.driver_connection.cursor()
        self.savepoint = session.get_nested_transaction()
        self.read_only = is_read_only(session)

    def _run(self, sql: str, params: dict[str, Any]):
        if self.read_only and not sql.lstrip()[:6].upper() == "SELECT":
            raise WriteInReadOnlySession(f"a write in a read-only session: {sql.split(None, 3)[:3]}")
        cursor = self.cursor
        statement = _for_postgres(sql) if self.postgres else sql
        try:
            cursor.execute(statement, params)
        except self.driver_error as exc:
            # The same exception classes as through SQLAlchemy (IntegrityError, OperationalError...).
            raise DBAPIError.instance(statement, params, exc, self.driver_error, hide_parameters=True) from exc
        return cursor

    def execute(self, sql: str, params: dict[str, Any]) -> int:
        """Run a statement; the number of rows it changed."""
        return self._run(sql, params).rowcount

    def first(self, sql: str, params: dict[str, Any]) -> tuple | None:
        return self._run(sql, params).fetchone()

    def all(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        return self._run(sql, params).fetchall()

    def scalar(self, sql: str, params: dict[str, Any]) -> Any:
        row = self.first(sql, params)
        return None if row is None else row[0]

    # Values, stored as the models' column types store them.
    def datetime(self, value: datetime | None) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if self.postgres else value.astimezone(UTC).strftime(_SQLITE_DATETIME)

    def json(self, value: Any) -> Any:
        if self.postgres:
            from psycopg.types.json import Jsonb

            return Jsonb(value)
        return json.dumps(value)

    @staticmethod
    def enum(value: Enum | None) -> str | None:
        return None if value is None else value.value

    # Values read back.
    @staticmethod
    def read_datetime(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, transaction) -> None:
    # The next transaction may run on another pooled connection.
    if transaction.parent is None:
        session.info.pop(_CURRENT, None)
