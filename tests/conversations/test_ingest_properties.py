"""Whatever text customers send, it is stored and shown back exactly."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=300)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=text, subject=st.one_of(st.none(), text), name=st.one_of(st.none(), text.map(lambda s: s[:200])))
def test_any_text_round_trips_through_the_api(client, alice_agent, body, subject, name):
    if not body.strip():
        body = body + "x"
    response = client.post(
        "/api/v1/messages/inbound",
        json={"from": {"email": "prop@example.org", "name": name}, "subject": subject, "body": body},
        headers=alice_agent.headers,
    )
    assert response.status_code == 201, response.text
    detail = client.get(f"/api/v1/conversations/{response.json()['conversation_id']}", headers=alice_agent.headers)
    message = detail.json()["messages"][-1]
    assert message["body"] == body
    assert detail.json()["subject"] == ((subject or "").strip()[:998] or None)
