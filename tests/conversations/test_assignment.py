"""Assigning a conversation: two agents at the same moment get one winner and one clear conflict."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from cape.models import Activity, Conversation, Priority, Role, User
from tests.fixtures.browser import serving
from tests.fixtures.factories import make_inbound, make_token, make_user
from tests.fixtures.web import sign_in

AGENTS = 8


@pytest.fixture(params=["postgresql", "sqlite"])
def live(request, tmp_path):
    with serving(request.param, tmp_path) as server:
        yield server


@dataclass
class Agent:
    user: User
    token: str


def _agents_and_conversation(session_factory, count: int) -> tuple[list[Agent], int]:
    with session_factory() as session:
        agents = []
        for n in range(count):
            user = make_user(session, role=Role.agent, name=f"Agent {n}", language="fr" if n % 2 else "en")
            agents.append(Agent(user, make_token(session, user)))
        conversation_id = make_inbound(session).conversation_id
        session.commit()
        return agents, conversation_id


def _assignments(session_factory, conversation_id: int) -> tuple[int | None, int]:
    with session_factory() as session:
        assignee_id = session.get(Conversation, conversation_id).assignee_id
        count = session.scalar(
            select(func.count()).where(Activity.conversation_id == conversation_id, Activity.kind == "assigned")
        )
        return assignee_id, count


def test_agents_taking_the_same_conversation_at_once_over_the_api_get_one_winner(live):
    agents, conversation_id = _agents_and_conversation(live.session_factory, AGENTS)
    barrier = threading.Barrier(AGENTS)

    def take(agent: Agent) -> httpx.Response:
        body = {"assignee_id": agent.user.id, "expected_assignee_id": None, "priority": "high"}
        barrier.wait(timeout=30)
        return httpx.patch(f"{live.url}/api/v1/conversations/{conversation_id}", json=body,
                           headers={"Authorization": f"Bearer {agent.token}"}, timeout=60)  # fmt: skip

    with ThreadPoolExecutor(AGENTS) as pool:
        responses = list(pool.map(take, agents))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (AGENTS - 1), [r.text for r in responses]
    [winner] = [agent for agent, r in zip(agents, responses, strict=True) if r.status_code == 200]
    losers = [r.json()["error"] for r in responses if r.status_code == 409]
    assert {e["code"] for e in losers} == {"conflict"}
    assert all(winner.user.name in e["message"] for e in losers)
    assert _assignments(live.session_factory, conversation_id) == (winner.user.id, 1)


def test_agents_taking_the_same_conversation_at_once_on_the_page_get_one_winner(live):
    agents, conversation_id = _agents_and_conversation(live.session_factory, 2)
    clients = [httpx.Client(base_url=live.url, timeout=60) for _ in agents]
    try:
        csrf = [sign_in(client, agent) for client, agent in zip(clients, agents, strict=True)]
        for client in clients:  # both see it unassigned
            assert 'name="assignee_seen" value="none"' in client.get(f"/conversations/{conversation_id}").text
        barrier = threading.Barrier(len(agents))

        def take(n: int) -> httpx.Response:
            form = {"assignee_id": str(agents[n].user.id), "assignee_seen": "none", "priority": "normal", "tags": ""}
            barrier.wait(timeout=30)
            return clients[n].post(f"/conversations/{conversation_id}/update", data=form,
                                   headers={**csrf[n], "HX-Request": "true"})  # fmt: skip

        with ThreadPoolExecutor(len(agents)) as pool:
            responses = list(pool.map(take, range(len(agents))))
    finally:
        for client in clients:
            client.close()
    assert [r.status_code for r in responses] == [200, 200]
    lost = [n for n, r in enumerate(responses) if "data-assign-conflict" in r.text]
    assert len(lost) == 1
    winner = agents[1 - lost[0]]
    loser, page = agents[lost[0]], responses[lost[0]].text
    expected = {
        "en": f"Someone else assigned this conversation to {winner.user.name} meanwhile. Nothing was changed.",
        "fr": f"Quelqu\u2019un d\u2019autre a attribué cette conversation à {winner.user.name} entre-temps.",
    }[loser.user.language]
    assert expected in page
    assert _assignments(live.session_factory, conversation_id) == (winner.user.id, 1)


def test_a_refused_assignment_changes_nothing_else(client, db, alice_agent, bob_supervisor):
    conversation_id = make_inbound(db).conversation_id
    url = f"/api/v1/conversations/{conversation_id}"
    assert client.patch(url, json={"assignee_id": bob_supervisor.user.id}, headers=bob_supervisor.headers).is_success
    stale = {"assignee_id": alice_agent.user.id, "expected_assignee_id": None, "priority": "urgent",
             "status": "pending", "tags": ["vip"]}  # fmt: skip
    refused = client.patch(url, json=stale, headers=alice_agent.headers)
    assert refused.status_code == 409, refused.text
    assert "Bob Supervisor" in refused.json()["error"]["message"]
    after = client.get(url, headers=alice_agent.headers).json()
    assert (after["assignee"]["id"], after["priority"], after["status"], after["tags"]) == (
        bob_supervisor.user.id, "normal", "open", [],
    )  # fmt: skip
    kinds = db.scalars(select(Activity.kind).where(Activity.conversation_id == conversation_id)).all()
    assert kinds == ["conversation_opened", "assigned"]

    # What the caller saw still holds: the change goes through.
    seen = stale | {"expected_assignee_id": bob_supervisor.user.id}
    assert client.patch(url, json=seen, headers=alice_agent.headers).json()["assignee"]["id"] == alice_agent.user.id
    # Asking for what already holds is no conflict, whatever the caller saw.
    again = client.patch(url, json=stale | {"expected_assignee_id": None}, headers=alice_agent.headers)
    assert again.status_code == 200


def test_saving_the_details_form_keeps_a_colleagues_assignment_made_meanwhile(client, db, alice_agent, bob_supervisor):
    conversation_id = make_inbound(db).conversation_id
    headers = sign_in(client, alice_agent) | {"HX-Request": "true"}
    page = client.get(f"/conversations/{conversation_id}").text
    assert 'name="assignee_seen" value="none"' in page
    # Meanwhile Bob takes it; Alice, whose page still shows nobody, only raises the priority.
    url = f"/api/v1/conversations/{conversation_id}"
    assert client.patch(url, json={"assignee_id": bob_supervisor.user.id}, headers=bob_supervisor.headers).is_success
    form = {"assignee_id": "none", "assignee_seen": "none", "priority": "high", "tags": ""}
    saved = client.post(f"/conversations/{conversation_id}/update", data=form, headers=headers)
    assert saved.status_code == 200 and "data-assign-conflict" not in saved.text
    conversation = db.get(Conversation, conversation_id)
    db.refresh(conversation)
    assert (conversation.assignee_id, conversation.priority) == (bob_supervisor.user.id, Priority.high)

    # Choosing herself over the nobody she saw is refused, with the reason, and nothing is saved.
    form = {"assignee_id": str(alice_agent.user.id), "assignee_seen": "none", "priority": "urgent", "tags": "vip"}
    refused = client.post(f"/conversations/{conversation_id}/update", data=form, headers=headers)
    assert "Someone else assigned this conversation to Bob Supervisor meanwhile." in refused.text
    assert f'name="assignee_seen" value="{bob_supervisor.user.id}"' in refused.text  # the form now shows Bob
    db.refresh(conversation)
    assert (conversation.assignee_id, conversation.priority) == (bob_supervisor.user.id, Priority.high)
    plain = client.post(f"/conversations/{conversation_id}/update", data=form,
                        headers={"X-CSRF-Token": headers["X-CSRF-Token"]})  # fmt: skip
    assert plain.status_code == 409  # without HTMX, the error itself

    # Now that her page shows Bob, she may take the conversation away from him, or leave it with nobody.
    unassign = {"assignee_id": "none", "assignee_seen": str(bob_supervisor.user.id)}
    assert client.post(f"/conversations/{conversation_id}/update", data=unassign, headers=headers).status_code == 200
    db.refresh(conversation)
    assert conversation.assignee_id is None
