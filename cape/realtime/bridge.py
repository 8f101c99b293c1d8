"""Committed domain events, told to the screens that show what changed (through the hub's topics).

Topics carry what changed, not the change itself: a screen that hears "conversation 42 has a new
message" fetches what it shows through the same endpoints (and permission checks) as a page load.

Topics:
- ``inbox``: a conversation was created or changed (status, assignment, priority, tags, a message).
- ``conversation:<id>``: something in that conversation changed (a message, its delivery, an action).
- ``approvals``: the queue of actions waiting for a supervisor changed.
- ``presence``: a colleague came online, went away, or went offline (``user_id``, ``user_name``, ``status``).
"""

from __future__ import annotations

from cape.events import DomainEvent, subscribe
from cape.realtime.hub import publish

_APPROVALS = {"action.requested", "action.approved", "action.declined"}
_subscribed = False


def relay(event: DomainEvent) -> None:
    """Publish ``event`` on the topics of the screens that show it."""
    data = event.payload
    conversation_id = data.get("conversation_id")
    if conversation_id is not None:
        publish(f"conversation:{conversation_id}", event.name, data)
        if event.name.startswith(("conversation.", "message.created")):
            publish("inbox", event.name, data)
    if event.name in _APPROVALS:
        publish("approvals", event.name, data)
    if event.name.startswith("presence."):
        publish("presence", event.name, data)


def install() -> None:
    """Relay domain events from this process (once, however many apps it builds)."""
    global _subscribed
    if not _subscribed:
        subscribe(relay)
        _subscribed = True
