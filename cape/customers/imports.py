"""Importing the shop's orders from a file (CSV with a header, or JSON lines), streamed row by row.

Each row is upserted by its order number like ``POST /api/v1/orders``, so importing a file again
updates what it imported the first time instead of duplicating it. A row that cannot be read or
is refused is reported with its line number and reason; the other rows are kept.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from cape.customers.orders import upsert_order
from cape.customers.schemas import OrderIn
from cape.db import unit_of_work
from cape.kit.errors import CapeError
from cape.kit.money import parse_amount, parse_currency

# Rejections kept with their reason; beyond this many only their number is (a bad file of a million
# rows must not fill the memory with its errors).
MAX_REPORTED = 1000
CSV_EXTENSIONS = (".csv",)
JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".json")


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), the first MAX_REPORTED

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED:
            self.rejections.append((line, reason))


def detect_format(path: Path, head: bytes) -> str:
    """ "csv" or "jsonl": by the file's extension, else by its first character ("{" is JSON)."""
    suffix = path.suffix.lower()
    if suffix in CSV_EXTENSIONS:
        return "csv"
    if suffix in JSONL_EXTENSIONS:
        return "jsonl"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def read_rows(text: IO[str], kind: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the row as fields) for each row, or (line, why it cannot be read); lazily."""
    if kind == "jsonl":
        for line_number, line in enumerate(text, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_number, f"not valid JSON ({exc.msg})"
                continue
            yield (line_number, row) if isinstance(row, dict) else (line_number, "not a JSON object")
        return
    reader = csv.DictReader(text)
    start = 2  # the line after the header (a quoted value may span lines: a row starts after the last)
    try:
        for row in reader:
            if None in row:
                yield start, "more values than the header has columns"
            elif any(value not in (None, "") for value in row.values()):
                yield start, _csv_order(row)
            start = reader.line_num + 1
    except csv.Error as exc:
        yield start, f"not valid CSV ({exc})"


_CSV_SPECIAL = ("items", "total", "carrier", "tracking_number", "delivered_at")


def _csv_order(row: dict[str, str | None]) -> dict[str, Any] | str:
    """A CSV row as an order: empty cells are left out, items are JSON, delivery columns are flat,
    and the total is ``total_amount`` (minor units) or ``total`` (a decimal such as 89.50)."""
    values = {key.strip(): value.strip() for key, value in row.items() if key and value and value.strip()}
    order: dict[str, Any] = {k: v for k, v in values.items() if k not in _CSV_SPECIAL}
    if "items" in values:
        try:
            order["items"] = json.loads(values["items"])
        except json.JSONDecodeError:
            return 'items: a JSON list such as [{"name": "Boots", "quantity": 1, "unit_amount": 8900}]'
    delivery = {k: values[k] for k in ("carrier", "tracking_number", "delivered_at") if k in values}
    if delivery:
        order["delivery"] = delivery
    if "total" in values and "total_amount" not in values:
        try:
            order["total_amount"] = parse_amount(values["total"], parse_currency(values.get("currency", "")),
                                                 field="total")  # fmt: skip
        except CapeError as exc:
            return exc.message
    return order


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "row"
        parts.append(f"{where}: {'required' if error['type'] == 'missing' else error['msg']}")
    return "; ".join(parts)


def import_orders(
    session_factory: sessionmaker[Session],
    *,
    text: IO[str],
    kind: str,
    batch_size: int = 500,
    progress: Callable[[], None] | None = None,
) -> ImportReport:
    """Upsert every order ``text`` holds, committing every ``batch_size`` rows; each row alone in a savepoint,
    so a refused row leaves the rest of its batch."""
    report = ImportReport()
    rows = read_rows(text, kind)
    while True:
        with unit_of_work(session_factory) as session:
            taken = 0
            for line, row in rows:
                report.rows += 1
                taken += 1
                _import_row(session, line=line, row=row, report=report)
                if progress is not None:
                    progress()
                if taken >= batch_size:
                    break
        if taken < batch_size:
            return report


def _import_row(session: Session, *, line: int, row: dict[str, Any] | str, report: ImportReport) -> None:
    if isinstance(row, str):
        report.reject(line, row)
        return
    try:
        data = OrderIn.model_validate(row)
        with session.begin_nested():
            _, created = upsert_order(session, data=data, actor=None)
    except ValidationError as exc:
        report.reject(line, _reason(exc))
        return
    except CapeError as exc:
        report.reject(line, exc.message)
        return
    if created:
        report.created += 1
    else:
        report.updated += 1


def open_text(binary: IO[bytes]) -> io.TextIOWrapper:
    """The file as text: UTF-8 (a byte-order mark is skipped), newlines kept for the CSV reader."""
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
