"""People get pages, API callers get JSON: errors in the viewer's language, with what to do next."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.fixtures.web import sign_in

HTML = {"accept": "text/html,application/xhtml+xml"}


def test_a_missing_page_is_a_translated_page_for_browsers_and_json_for_the_api(client):
    french = client.get("/admin", headers={**HTML, "accept-language": "fr-FR,fr;q=0.9"})
    assert french.status_code == 404 and french.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in french.text and "Page introuvable" in french.text
    api = client.get("/api/v1/nothing-here", headers=HTML)
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    malformed = client.get("/conversations/not-a-number", headers=HTML, follow_redirects=False)
    assert malformed.status_code in (303, 404)  # anonymous: sign in first; never JSON for a browser


def test_a_page_above_the_agents_role_says_who_it_is_for(client, db, alice_agent):
    alice_agent.user.language = "da"
    db.commit()
    sign_in(client, alice_agent)
    page = client.get("/approvals", headers=HTML)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "supervisorer" in page.text and "Ingen adgang" in page.text
    assert ">forbidden<" not in page.text and "this needs the" not in page.text  # no internal code or English shown
    nowhere = client.get("/no-such-page", headers=HTML)  # no route ran, the navigation stays all the same
    assert nowhere.status_code == 404 and "Log ud" in nowhere.text
    unknown = client.get("/conversations/999999999", headers=HTML)
    assert unknown.status_code == 404 and "Siden findes ikke" in unknown.text
    assert "Log ud" in unknown.text and "Gå til indbakken" in unknown.text  # signed in: the navigation stays


def test_an_unexpected_error_gives_a_reference_on_the_page_and_in_the_api(app, caplog):
    def broken():
        raise RuntimeError("boom")

    app.add_api_route("/broken", broken)
    app.add_api_route("/api/v1/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get("/broken", headers=HTML)
        api = client.get("/api/v1/broken")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    reference = re.search(r"<code data-reference>([0-9a-f]{12})</code>", page.text).group(1)
    assert reference in caplog.text  # the log line an administrator looks for
    assert api.status_code == 500 and len(api.json()["error"]["reference"]) == 12


def test_api_errors_are_json_with_the_field_and_its_limit(client, alice_agent):
    too_big = client.post(
        "/api/v1/messages/inbound", content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
        headers={**alice_agent.headers, "content-type": "application/json"},
    )  # fmt: skip
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
    long_subject = client.post(
        "/api/v1/messages/inbound", headers=alice_agent.headers,
        json={"from": {"email": "a@example.org"}, "subject": "x" * 2000, "body": "hi"},
    )  # fmt: skip
    assert long_subject.status_code == 422
    assert long_subject.json()["error"]["message"] == "subject: at most 998 characters"


def test_api_docs_and_the_icon_need_no_internet(client):
    docs = client.get("/docs")
    assert docs.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text) + re.findall(r"url: '([^']+)'", docs.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    for source in sources:
        assert client.get(source).status_code == 200, source
    assert client.get("/redoc").status_code == 200
    assert client.get("/favicon.ico").headers["content-type"].startswith("image/svg")
