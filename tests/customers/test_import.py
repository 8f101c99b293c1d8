"""`cape import orders FILE`: CSV or JSON lines, streamed, bad rows reported by line, idempotent when run again."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from cape.customers.imports import detect_format, import_orders
from cape.models import Activity, Order
from tests.fixtures.databases import fresh_database
from tests.test_cli import cape

CSV = """number,customer_email,customer_name,currency,total,status,placed_at,items,carrier,tracking_number
NS-1,lea@example.org,Léa Martin,EUR,89.00,delivered,2026-10-02,"[{""name"": ""Boots"", ""quantity"": 1}]",DAO,T-1
NS-2,lea@example.org,,EURO,10.00,paid,2026-10-03,,,
NS-3,,,EUR,10.00,paid,2026-10-03,,,
NS-4,paul@example.org,"Paul, the
second line",DKK,"1499,00",paid,2026-11-01T10:00:00Z,,,
NS-5,paul@example.org,,DKK,abc,paid,,,,
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request, tmp_path):
    with fresh_database(request.param, tmp_path) as pair:
        yield pair


def _import(session_factory, text: str, kind: str, batch_size: int = 2):
    return import_orders(session_factory, text=io.StringIO(text), kind=kind, batch_size=batch_size)


def test_csv_keeps_good_rows_and_names_the_lines_of_bad_ones(session_factory, db):
    report = _import(session_factory, CSV, "csv")
    assert (report.rows, report.created, report.updated, report.rejected) == (5, 2, 0, 3)
    lines = {line: reason for line, reason in report.rejections}
    assert set(lines) == {3, 4, 7}  # NS-4's quoted name spans lines 5 and 6
    assert "currency" in lines[3] and "customer" in lines[4] and "total" in lines[7]
    orders = {o.number: o for o in db.scalars(select(Order))}
    assert set(orders) == {"NS-1", "NS-4"}
    assert (orders["NS-1"].total_amount, orders["NS-1"].carrier, orders["NS-1"].items) == (
        8900, "DAO", [{"name": "Boots", "quantity": 1}])  # fmt: skip
    assert (orders["NS-4"].total_amount, orders["NS-4"].currency) == (149900, "DKK")

    again = _import(session_factory, CSV, "csv")
    assert (again.created, again.updated, again.rejected) == (0, 2, 3)
    assert db.scalar(select(func.count()).select_from(Order)) == 2
    assert db.scalar(select(func.count()).select_from(Activity).where(Activity.kind == "order_placed")) == 2


def test_json_lines_update_by_number(session_factory, db):
    rows = [
        {"number": "J-1", "customer_email": "j@example.org", "currency": "USD", "total_amount": 500},
        "not json",
        {"number": "J-1", "currency": "USD", "total_amount": 500, "status": "shipped"},
        [1, 2],
    ]
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n\n"
    report = _import(session_factory, text, "jsonl", batch_size=500)
    assert (report.created, report.updated) == (1, 1)
    assert [line for line, _ in report.rejections] == [2, 4]
    assert db.scalar(select(Order.status).where(Order.number == "J-1")) == "shipped"


def test_format_comes_from_the_extension_or_the_content(tmp_path):
    assert detect_format(tmp_path / "a.CSV", b"{") == "csv"
    assert detect_format(tmp_path / "a.ndjson", b"number") == "jsonl"
    assert detect_format(tmp_path / "export", b'\xef\xbb\xbf {"number"') == "jsonl"
    assert detect_format(tmp_path / "export", b"number,currency") == "csv"


def test_the_command_reports_and_exits_by_what_it_could_import(fresh, tmp_path):
    settings, engine = fresh
    good = tmp_path / "orders.csv"
    good.write_text(CSV)
    first = cape(settings, "import", "orders", str(good))
    assert first.returncode == 0, first.stderr
    assert "5 rows: 2 orders created, 0 updated, 3 rejected" in first.stdout
    assert "line 3: currency" in first.stderr and "line 7: total" in first.stderr
    second = cape(settings, "import", "orders", str(good))
    assert "2 updated" in second.stdout and second.returncode == 0
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Order)) == 2

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"number": "X"}\n')
    assert cape(settings, "import", "orders", str(bad)).returncode == 1
    missing = cape(settings, "import", "orders", str(tmp_path / "nowhere.csv"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
