"""Each inbox view, page query and periodic scan reads through an index, not the whole table.

The statements are the ones the services really run (captured from the connection); the
database's own planner explains each. On PostgreSQL, sequential scans (and, where the order
matters, sorts) are priced out first, so that a plan still showing one has no index to use.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event

from cape.actions.fulfilment import stale_deliveries
from cape.auth import throttle
from cape.auth.service import create_team
from cape.channels.email.send import stalled_sends
from cape.conversations import service
from cape.customers.orders import customer_orders, customer_value
from cape.customers.service import customer_timeline, get_customer
from cape.kit.clock import utcnow
from cape.models import Base, ConversationStatus
from tests.fixtures.factories import make_inbound

OPEN = ConversationStatus.open


@pytest.fixture
def data(db, alice_agent):
    """A few conversations: one assigned to Alice, one of her team's, one unassigned."""
    team = create_team(db, name="Returns desk", member_ids=[alice_agent.user.id])
    mine, teams, _ = (make_inbound(db, email="olivia@example.org") for _ in range(3))
    actor = alice_agent.user
    for result, change in ((mine, {"assignee_id": actor.id}), (teams, {"team_id": team.id})):
        conversation = service.get_conversation(db, conversation_id=result.conversation_id, with_messages=False)
        service.update_conversation(db, conversation=conversation, actor=actor, **change)
    db.commit()
    return {
        "user_id": actor.id, "team_id": team.id, "customer_id": mine.customer_id,
        "conversation_id": mine.conversation_id,
    }  # fmt: skip


# Each view's filter, and the column it is on.
INBOX_VIEWS = {
    "all": (lambda d: {}, None),
    "mine": (lambda d: {"assignee_id": d["user_id"]}, "assignee_id"),
    "unassigned": (lambda d: {"unassigned": True}, "assignee_id"),
    "team": (lambda d: {"team_id": d["team_id"]}, "team_id"),
}


@pytest.mark.parametrize("status", [OPEN, None], ids=["open", "any status"])
@pytest.mark.parametrize("view", INBOX_VIEWS)
def test_inbox_views_read_their_page_from_an_index_in_order(db, connection, data, view, status):
    filters, column = INBOX_VIEWS[view]
    with captured(connection) as statements:
        rows, _ = service.list_conversations(db, status=status, limit=50, preview=True, **filters(data))
    assert rows and all(row.preview for row in rows)
    # The index answers every condition (no row is read to be dropped) and yields the order;
    # only the unfiltered view walks an index from its start (in order, it stops after a page).
    # Each row's preview is in the same statement: a search of the messages' index by the
    # conversation, in its order (no sort), from the newest message down to the customer's.
    columns = {c for c in (column, "status" if status else None) if c}
    assert_reads_through_indexes(
        connection, statements, ordered=True, walk=not columns, conditions=columns, table="conversations"
    )
    assert "messages" in statements[0][0]  # the preview is read with the page, not row by row after it


def test_the_customer_pages_conversations_come_from_an_index_in_order(db, connection, data):
    with captured(connection) as statements:
        rows, _ = service.list_conversations(db, customer_id=data["customer_id"], limit=20)
    assert rows
    assert_reads_through_indexes(connection, statements, ordered=True, walk=False, conditions={"customer_id"})


PAGE_QUERIES = {
    "conversation messages": lambda db, d: service.conversation_messages(
        db, conversation_id=d["conversation_id"], limit=30
    ),
    "conversation history": lambda db, d: service.conversation_activities(
        db, conversation_id=d["conversation_id"], limit=30
    ),
    "customer timeline": lambda db, d: customer_timeline(
        db, customer=get_customer(db, customer_id=d["customer_id"]), limit=100
    ),
    "customer orders": lambda db, d: customer_orders(db, customer_id=d["customer_id"], limit=20),
    "customer value and tier": lambda db, d: customer_value(db, customer_id=d["customer_id"], currency="EUR"),
}


@pytest.mark.parametrize("query", PAGE_QUERIES)
def test_page_queries_read_through_indexes(db, connection, data, query):
    with captured(connection) as statements:
        PAGE_QUERIES[query](db, data)
    assert_reads_through_indexes(connection, statements, ordered=False, walk=False)


PERIODIC_SCANS = {
    "stalled email sends": lambda db: stalled_sends(db, older_than=timedelta(minutes=30)),
    "stale action deliveries": lambda db: stale_deliveries(db, older_than=utcnow() - timedelta(minutes=10)),
    "rate-limit prune": throttle.prune,
}


@pytest.mark.parametrize("scan", PERIODIC_SCANS)
def test_periodic_scans_read_through_indexes(db, connection, data, scan):
    with captured(connection) as statements:
        PERIODIC_SCANS[scan](db)
    assert statements
    assert_reads_through_indexes(connection, statements, ordered=False, walk=False)


class captured:
    """The statements (and parameters) run on ``connection`` within the block."""

    def __init__(self, connection):
        self.connection = connection
        self.statements: list[tuple[str, object]] = []

    def _capture(self, _conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE")):
            self.statements.append((statement, parameters))

    def __enter__(self):
        event.listen(self.connection, "before_cursor_execute", self._capture)
        return self.statements

    def __exit__(self, *exc):
        event.remove(self.connection, "before_cursor_execute", self._capture)


def assert_reads_through_indexes(
    connection, statements, *, ordered: bool, walk: bool, conditions: set[str] = frozenset(), table: str | None = None
) -> None:
    """No statement reads a whole table. Of the first (the page itself): with ``ordered``, it
    needs no sort; with ``walk``, it may read an index from its start (it stops after a page);
    the index it reads (of ``table``, when given) answers its ``conditions`` (columns), by its
    keys or by being partial."""
    for n, (statement, parameters) in enumerate(statements):
        main = n == 0
        problems = _plan_problems(
            connection, statement, parameters, ordered=ordered and main, walk=walk and main,
            conditions=conditions if main else set(), table=table,
        )  # fmt: skip
        assert not problems, f"{problems} in the plan of {statement}"


# A partial index holds only the rows its condition selects, which a query must select as well
# for the planner to use it: reading all of it reads no more than the query's rows.
PARTIAL_INDEXES = {
    index.name: str(index.dialect_options["sqlite"]["where"])
    for table in Base.metadata.tables.values()
    for index in table.indexes
    if index.dialect_options["sqlite"]["where"] is not None
}


def _plan_problems(
    connection, statement: str, parameters, *, ordered: bool, walk: bool, conditions, table: str | None
) -> list[str]:
    if connection.dialect.name == "sqlite":
        details = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        problems = [d for d in details if re.fullmatch(r"SCAN \w+", d)]  # a whole table
        for detail in details:
            used = re.match(r"(SCAN|SEARCH) (\w+) USING (?:COVERING )?INDEX (\w+)(?: \((.*)\))?", detail)
            if used is None:
                continue
            how, read, index, keys = used.groups()
            if how == "SCAN" and not walk and index not in PARTIAL_INDEXES:  # a whole index
                problems.append(detail)
            if table is not None and read != table:
                continue
            answered = set(re.findall(r"(\w+)[=<>]", keys or ""))
            answered |= set(re.findall(r"\w+", PARTIAL_INDEXES.get(index, "")))
            problems += [f"{detail}: {c} checked row by row" for c in sorted(set(conditions) - answered)]
        if ordered:
            problems += [d for d in details if "TEMP B-TREE FOR ORDER BY" in d]
        return problems
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    connection.exec_driver_sql(f"SET LOCAL enable_sort = {'off' if ordered else 'on'}")
    connection.exec_driver_sql(f"SET LOCAL enable_incremental_sort = {'off' if ordered else 'on'}")
    try:
        plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
    finally:
        connection.exec_driver_sql("RESET enable_seqscan")
        connection.exec_driver_sql("RESET enable_sort")
        connection.exec_driver_sql("RESET enable_incremental_sort")
    problems = []
    for node in _nodes(plan[0]["Plan"]):
        kind = node["Node Type"]
        if kind == "Seq Scan":
            problems.append(f"Seq Scan on {node['Relation Name']}")
        elif (
            kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
            and not walk and "Index Cond" not in node and node["Index Name"] not in PARTIAL_INDEXES
        ):  # fmt: skip
            problems.append(f"{kind} of all of {node['Index Name']}")
        elif ordered and "Sort" in kind:
            problems.append(kind)
        if conditions and "Filter" in node and (table is None or node.get("Relation Name", table) == table):
            problems.append(f"{kind} checks {node['Filter']} row by row")
    return problems


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)
