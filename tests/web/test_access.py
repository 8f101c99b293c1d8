"""Every route, page and API alike, answers each role as its entry in the access table says.

The table classifies every path and method the app serves. A new route fails this test until it
is added, so no page or endpoint goes out without someone deciding who may use it.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from cape.actions import service as actions_service
from cape.auth.service import create_team
from cape.channels.email.service import attachment_path, create_email_channel
from cape.models import ActionType, Attachment, Conversation, Message
from tests.fixtures.factories import make_inbound
from tests.fixtures.web import form_csrf, sign_in

PUBLIC = "anyone"
SIGNED_IN = "any signed-in user"
SUPERVISOR = "supervisors and admins"
ADMIN = "admins"
# The chat widget's visitor, by the visitor token it was given (a bearer header, never a cookie):
# no one else, signed-in agents included, gets in without one.
VISITOR = "a chat visitor with its token"
RANK = {PUBLIC: 0, VISITOR: 0, SIGNED_IN: 1, SUPERVISOR: 2, ADMIN: 3}

# (method, path) -> who may use it. Paths under /api/ are the API (tokens); the rest are pages
# (cookies). HEAD is answered like GET. A mount is listed with the method "MOUNT".
ACCESS: dict[tuple[str, str], str] = {
    # Service and documentation
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("MOUNT", "/static"): PUBLIC,
    ("MOUNT", "/static/api-docs"): PUBLIC,
    ("GET", "/favicon.ico"): PUBLIC,
    # API: conversations and messages
    ("POST", "/api/v1/messages/inbound"): SIGNED_IN,
    ("GET", "/api/v1/messages/{message_id}/raw"): SIGNED_IN,
    ("GET", "/api/v1/messages/{message_id}/attachments"): SIGNED_IN,
    ("GET", "/api/v1/attachments/{attachment_id}"): SIGNED_IN,
    ("GET", "/api/v1/conversations"): SIGNED_IN,
    ("GET", "/api/v1/conversations/{conversation_id}"): SIGNED_IN,
    ("PATCH", "/api/v1/conversations/{conversation_id}"): SIGNED_IN,
    ("POST", "/api/v1/conversations/{conversation_id}/replies"): SIGNED_IN,
    ("POST", "/api/v1/messages/{message_id}/retry"): SIGNED_IN,
    ("POST", "/api/v1/messages/{message_id}/delivery"): SIGNED_IN,
    # API: channels
    ("GET", "/api/v1/channels"): ADMIN,
    ("PUT", "/api/v1/channels/default-outbound"): ADMIN,
    ("PUT", "/api/v1/channels/api/reply-webhook"): ADMIN,
    ("DELETE", "/api/v1/channels/api/reply-webhook"): ADMIN,
    # API: customers
    ("GET", "/api/v1/customers/{customer_id}"): SIGNED_IN,
    ("GET", "/api/v1/customers/{customer_id}/timeline"): SIGNED_IN,
    ("POST", "/api/v1/customers/{customer_id}/merge"): SUPERVISOR,
    ("PATCH", "/api/v1/customers/{customer_id}"): SIGNED_IN,
    ("GET", "/api/v1/customers/{customer_id}/orders"): SIGNED_IN,
    # API: orders, from the shop's integration (an admin's token)
    ("POST", "/api/v1/orders"): ADMIN,
    # API: users and teams
    ("GET", "/api/v1/users"): SIGNED_IN,
    ("GET", "/api/v1/users/me"): SIGNED_IN,
    ("POST", "/api/v1/users"): ADMIN,
    ("PATCH", "/api/v1/users/{user_id}"): ADMIN,
    ("GET", "/api/v1/teams"): SIGNED_IN,
    ("POST", "/api/v1/teams"): ADMIN,
    ("PATCH", "/api/v1/teams/{team_id}"): ADMIN,
    # API: actions, authority, audit, hero moments
    ("POST", "/api/v1/conversations/{conversation_id}/actions"): SIGNED_IN,
    ("GET", "/api/v1/actions"): SIGNED_IN,
    ("GET", "/api/v1/actions/{action_id}"): SIGNED_IN,
    ("POST", "/api/v1/actions/{action_id}/reverse"): SIGNED_IN,
    ("GET", "/api/v1/actions/review"): SUPERVISOR,
    ("POST", "/api/v1/actions/{action_id}/approve"): SUPERVISOR,
    ("POST", "/api/v1/actions/{action_id}/decline"): SUPERVISOR,
    ("GET", "/api/v1/audit.csv"): SUPERVISOR,
    ("GET", "/api/v1/ledger.csv"): SUPERVISOR,
    ("GET", "/api/v1/authority/me"): SIGNED_IN,
    ("GET", "/api/v1/users/{user_id}/authority"): ADMIN,
    ("PUT", "/api/v1/users/{user_id}/authority"): ADMIN,
    ("GET", "/api/v1/roles/{role}/authority"): ADMIN,
    ("PUT", "/api/v1/roles/{role}/authority"): ADMIN,
    ("POST", "/api/v1/conversations/{conversation_id}/hero-moments"): SIGNED_IN,
    ("GET", "/api/v1/hero-moments"): SIGNED_IN,
    # Pages: signing in, the public contact form
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): SIGNED_IN,
    ("GET", "/contact"): PUBLIC,
    ("POST", "/contact"): PUBLIC,
    ("GET", "/invitations/{token}"): PUBLIC,
    ("POST", "/invitations/{token}"): PUBLIC,
    # Pages: the workspace
    ("GET", "/inbox"): SIGNED_IN,
    ("GET", "/inbox/rows"): SIGNED_IN,
    ("GET", "/conversations/{conversation_id}"): SIGNED_IN,
    ("GET", "/conversations/{conversation_id}/messages"): SIGNED_IN,
    ("GET", "/conversations/{conversation_id}/history"): SIGNED_IN,
    ("GET", "/conversations/{conversation_id}/live"): SIGNED_IN,
    ("POST", "/conversations/{conversation_id}/reply"): SIGNED_IN,
    ("POST", "/conversations/{conversation_id}/update"): SIGNED_IN,
    ("POST", "/conversations/{conversation_id}/messages/{message_id}/retry"): SIGNED_IN,
    ("POST", "/conversations/{conversation_id}/actions"): SIGNED_IN,
    ("POST", "/actions/{action_id}/reverse"): SIGNED_IN,
    ("GET", "/customers/{customer_id}"): SIGNED_IN,
    ("GET", "/customers/{customer_id}/conversations"): SIGNED_IN,
    ("POST", "/customers/{customer_id}/merge"): SUPERVISOR,
    ("GET", "/customers/{customer_id}/orders"): SIGNED_IN,
    ("POST", "/customers/{customer_id}/notes"): SIGNED_IN,
    ("GET", "/heroes"): SIGNED_IN,
    ("POST", "/presence"): SIGNED_IN,
    ("WEBSOCKET", "/realtime"): SIGNED_IN,  # the cookie from this host's pages, or a token
    # Pages: supervisors
    ("GET", "/approvals"): SUPERVISOR,
    ("GET", "/approvals/rows"): SUPERVISOR,
    ("GET", "/approvals/count"): SUPERVISOR,
    ("POST", "/approvals/{action_id}/{decision}"): SUPERVISOR,
    ("GET", "/review"): SUPERVISOR,
    # Pages: admins
    ("GET", "/admin/authority"): ADMIN,
    ("POST", "/admin/authority"): ADMIN,
    ("GET", "/admin/channels"): ADMIN,
    ("POST", "/admin/channels/email"): ADMIN,
    ("POST", "/admin/channels/{channel_id}/active"): ADMIN,
    ("POST", "/admin/channels/default-outbound"): ADMIN,
    ("POST", "/admin/channels/reply-webhook"): ADMIN,
    ("GET", "/admin/settings"): ADMIN,
    ("POST", "/admin/settings"): ADMIN,
    ("POST", "/admin/channels/chat"): ADMIN,
    ("POST", "/admin/channels/chat/{channel_id}"): ADMIN,
    ("POST", "/admin/channels/chat/{channel_id}/secret"): ADMIN,
    # The chat widget on other sites (docs/chat.md)
    ("GET", "/widget.js"): PUBLIC,
    ("GET", "/widget/demo"): PUBLIC,
    ("GET", "/widget/api/config"): PUBLIC,
    ("POST", "/widget/api/session"): PUBLIC,
    ("GET", "/widget/api/files/{signed}"): PUBLIC,  # the link is the permission: signed, given to the visitor
    ("GET", "/widget/api/messages"): VISITOR,
    ("POST", "/widget/api/upload"): VISITOR,
    ("POST", "/widget/api/email"): VISITOR,
    ("WEBSOCKET", "/widget/ws"): VISITOR,
    ("GET", "/admin/users"): ADMIN,
    ("POST", "/admin/users"): ADMIN,
    ("POST", "/admin/users/{user_id}"): ADMIN,
    ("POST", "/admin/users/{user_id}/active"): ADMIN,
    ("POST", "/admin/users/{user_id}/invitation"): ADMIN,
    ("GET", "/admin/teams"): ADMIN,
    ("POST", "/admin/teams"): ADMIN,
    ("POST", "/admin/teams/{team_id}"): ADMIN,
    ("POST", "/admin/teams/{team_id}/active"): ADMIN,
    ("POST", "/admin/teams/{team_id}/members"): ADMIN,
}
# Routes that never read the session cookie (the widget sends none; CORS without credentials), so
# a forged cross-site request carries nothing to abuse: no CSRF token is asked of them.
COOKIELESS = {path for (_, path) in ACCESS if path.startswith("/widget/")}

SAFE = {"GET", "HEAD"}


def served_routes(app) -> list[tuple[str, str]]:
    """(method, path) for everything the app serves; HEAD only where it is not a copy of GET."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.route
        if isinstance(route, Mount):
            found.append(("MOUNT", route.path))
        elif isinstance(route, APIRoute | Route):
            methods = set(context.methods or ())
            if "GET" in methods:
                methods.discard("HEAD")
            found += [(method, context.path) for method in methods]
        elif isinstance(route, APIWebSocketRoute | WebSocketRoute):
            found.append(("WEBSOCKET", route.path))
        else:  # something new: classify it here and teach this test to check it
            found.append((type(route).__name__, getattr(route, "path", repr(route))))
    return sorted(found, key=lambda key: (key[1] == "/logout", key[1], key[0]))  # signing out last


def test_every_route_is_classified(app):
    served = served_routes(app)
    missing = [f"{method} {path}" for method, path in served if (method, path) not in ACCESS]
    assert not missing, f"routes with no entry in ACCESS (decide who may use them): {missing}"
    gone = sorted(set(ACCESS) - set(served))
    assert not gone, f"ACCESS lists routes the app no longer serves: {gone}"


@pytest.fixture
def rows(db, settings, alice_agent):
    """Ids of real rows for every path parameter."""
    inbound = make_inbound(db, email="walk@example.org", name="Walk Customer")
    conversation = db.get(Conversation, inbound.conversation_id)
    content = b"receipt"
    sha256 = hashlib.sha256(content).hexdigest()
    path = attachment_path(settings.data_dir, sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    attachment = Attachment(message_id=inbound.message_id, filename="receipt.txt", content_type="text/plain",
                            size=len(content), sha256=sha256)  # fmt: skip
    db.add(attachment)
    action = actions_service.take_action(
        db, conversation=conversation, actor=alice_agent.user, action_type=ActionType.goodwill,
        amount=9_999_00, currency="USD", reason="other",
    )  # fmt: skip
    team = create_team(db, name="Walkers", member_ids=[alice_agent.user.id])
    channel = create_email_channel(db, address="walk@example.com", app_secret=settings.resolved_secret_key)
    db.commit()
    assert db.get(Message, inbound.message_id).raw_source_id is not None
    return {
        "conversation_id": inbound.conversation_id, "customer_id": inbound.customer_id,
        "message_id": inbound.message_id, "attachment_id": attachment.id, "action_id": action.id,
        "user_id": alice_agent.user.id, "team_id": team.id, "channel_id": channel.id, "role": "agent",
        "decision": "decline", "signed": "not-a-signed-link", "token": "1-not-a-real-invitation-link",
    }  # fmt: skip


def url_for(method: str, path: str, rows: dict) -> str:
    if method == "MOUNT":
        return path + ("/swagger-ui.css" if path.endswith("api-docs") else "/cape.css")

    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in rows, f"no row for the path parameter {name!r} of {path}: add one to the rows fixture"
        return str(rows[name])

    return re.sub(r"\{([^}]+)\}", value, path)


def request(client, method: str, path: str, rows: dict, *, token: str | None = None, csrf: str | None = None):
    """One request as a browser (cookies, HTML) for pages, as an integration (token) for the API."""
    url = url_for(method, path, rows)
    if method == "WEBSOCKET":
        return _socket(client, url, token)
    http_method = "GET" if method == "MOUNT" else method
    headers = {} if path.startswith("/api/") else {"accept": "text/html"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if csrf is not None and http_method not in SAFE:
        headers["x-csrf-token"] = csrf
    if http_method in SAFE:
        return client.request(http_method, url, headers=headers, follow_redirects=False)
    if path.startswith("/api/"):
        return client.request(http_method, url, json={}, headers=headers, follow_redirects=False)
    return client.request(http_method, url, data={}, headers=headers, follow_redirects=False)


class _Handshake:
    """A socket's opening answered as a response would be: 101 (open) or 403 (refused)."""

    def __init__(self, status_code: int):
        self.status_code, self.text, self.headers = status_code, "", {}


def _socket(client, url: str, token: str | None) -> _Handshake:
    headers = {"origin": "http://testserver"} if token is None else {"authorization": f"Bearer {token}"}
    try:
        with client.websocket_connect(url, headers=headers):
            return _Handshake(101)
    except WebSocketDisconnect:
        return _Handshake(403)


def _says_forbidden(response, path: str) -> bool:
    """The API answers the JSON error; a browser gets the page that says who it is for."""
    if path.startswith("/api/"):
        return response.json()["error"]["code"] == "forbidden"
    return 'data-error-status="403"' in response.text


def _says_csrf_failed(response, path: str) -> bool:
    if path.startswith("/api/"):
        return response.json()["error"]["code"] == "csrf_failed"
    return 'data-error-code="csrf_failed"' in response.text


def sent_to_sign_in(response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/login?next=")


def refused_as_anonymous(response, path: str) -> bool:
    if isinstance(response, _Handshake):
        return response.status_code == 403
    return response.status_code == 401 if path.startswith("/api/") else sent_to_sign_in(response)


def test_each_role_gets_what_the_table_says_everywhere(app, client, rows, alice_agent, bob_supervisor, carol_admin):
    routes = served_routes(app)
    integration = TestClient(app, base_url="http://testserver")
    wrong = []

    def check(who: str, rank: int, method: str, path: str, response) -> None:
        needed = RANK[ACCESS[(method, path)]]
        status = response.status_code
        if ACCESS[(method, path)] == VISITOR:
            refused = 403 if method == "WEBSOCKET" else 401  # a socket's opening is refused, not answered
            if status != refused:  # cookies and agents' tokens are no visitor token
                wrong.append(f"{who} {method} {path}: {status}, expected {refused} without a visitor token")
            return
        if response.status_code >= 500:
            wrong.append(f"{who} {method} {path}: {status} (a server error)")
        elif who == "anonymous" and needed > RANK[PUBLIC]:
            if not refused_as_anonymous(response, path):
                wrong.append(f"{who} {method} {path}: {status}, expected to be sent to sign in")
        elif rank < needed:
            if status != 403 or not _says_forbidden(response, path):
                wrong.append(f"{who} {method} {path}: {status}, expected 403")
        elif status in (401, 403) or sent_to_sign_in(response):
            wrong.append(f"{who} {method} {path}: {status} {response.text[:200]}, expected to be let in")

    sockets = [(m, p) for m, p in routes if m == "APIWebSocketRoute"]
    routes = [route for route in routes if route not in sockets]
    anonymous_csrf = form_csrf(client)  # public forms need the session's token, signed in or not
    for method, path in routes:
        check("anonymous", 0, method, path, request(client, method, path, rows, csrf=anonymous_csrf))

    for rank, actor in enumerate((alice_agent, bob_supervisor, carol_admin), start=1):
        client.cookies.clear()
        csrf = sign_in(client, actor)["X-CSRF-Token"]
        for method, path in routes:
            if path.startswith("/api/"):  # as an integration calls it: a token, no cookie
                response = request(integration, method, path, rows, token=actor.token)
            else:
                response = request(client, method, path, rows, csrf=csrf)
            check(actor.user.name, rank, method, path, response)
        for _, path in sockets:  # signed in, with the cookie and a token: still no visitor
            try:
                with client.websocket_connect(path, headers=actor.headers):
                    wrong.append(f"{actor.user.name} {path}: accepted without a visitor token")
            except WebSocketDisconnect as closed:
                if closed.code != 1008:
                    wrong.append(f"{actor.user.name} {path}: closed with {closed.code}, expected 1008")
    assert not wrong, "\n".join(wrong)


def test_changes_with_the_session_cookie_need_its_csrf_token_everywhere(app, client, rows, carol_admin):
    sign_in(client, carol_admin)
    unsafe = [(m, p) for m, p in served_routes(app) if m not in SAFE | {"MOUNT", "WEBSOCKET"} and p not in COOKIELESS]
    wrong = []
    for method, path in unsafe:
        response = request(client, method, path, rows)  # the cookie, no token
        if response.status_code != 403 or not _says_csrf_failed(response, path):
            wrong.append(f"{method} {path}: {response.status_code}")
    assert not wrong, "changes accepted without the CSRF token:\n" + "\n".join(wrong)
