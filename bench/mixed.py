"""Agents' pages while mail pours in: page latency with inbound messages arriving at a steady rate.

    python bench/mixed.py                         # SQLite, 2 workers, 300 msg/s, 20 agents, 60 s
    python bench/mixed.py --databases sqlite,postgresql --seconds 30
    python bench/mixed.py --rate 500 --agents 40

A Cape is started here (as bench/ingest.py does) and seeded with 5,000 conversations. Then, for
``--seconds``, inbound messages are posted over HTTP on a fixed schedule (a customer's later
messages continue their conversation) while simulated agents, each signed in with a browser
session, load the inbox (a view: all, unassigned or mine), poll it, open a conversation from it,
reply, and now and then assign it to themselves, with a pause of about a second between steps.

Prints the machine reference figure, then p50/p95/p99 of each kind of request and the ratio to
the targets: inbox and conversation page p95 under 50 ms, ingest p99 under 50 ms, together.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import random
import re
import threading
import time
from urllib.parse import urlencode, urlparse

from ingest import percentile, print_reference, run_load, served

TARGET_PAGE_P95_MS = 50.0
TARGET_INGEST_P99_MS = 50.0
PASSWORD = "bench-agent-password"

_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_CONVERSATION_ROW = re.compile(r'data-conversation-id="(\d+)"')


class Browser:
    """One agent's keep-alive connection and session cookie."""

    def __init__(self, url: str):
        parsed = urlparse(url)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        self.cookie = ""
        self.csrf = ""

    def request(self, method: str, path: str, form: dict | None = None, **headers: str) -> tuple[int, str, float]:
        """(status, body, seconds) of one request, cookie kept; redirects are not followed."""
        headers = {"Cookie": self.cookie, "Accept": "text/html", **headers}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        began = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        elapsed = time.perf_counter() - began
        if cookie := response.getheader("set-cookie"):
            self.cookie = cookie.split(";", 1)[0]
        if match := _CSRF_META.search(text):
            self.csrf = match.group(1)
        return response.status, text, elapsed

    def sign_in(self, email: str) -> int:
        """Sign in through the login form; returns the agent's user id."""
        _, page, _ = self.request("GET", "/login")
        token = _CSRF_FIELD.search(page).group(1)
        status, _, _ = self.request("POST", "/login", {"csrf_token": token, "email": email, "password": PASSWORD})
        if status != 303:
            raise RuntimeError(f"sign-in of {email} answered {status}")
        status, me, _ = self.request("GET", "/api/v1/users/me", Accept="application/json")
        return json.loads(me)["id"]


def agent(url: str, email: str, start: threading.Event, until: list[float], think_s: float, out: dict) -> None:
    """One agent's loop: inbox, poll, open a conversation, reply, sometimes take it; pauses between."""
    browser = Browser(url)
    user_id = browser.sign_in(email)
    browser.request("GET", "/inbox")  # the CSRF token of the signed-in session
    rng = random.Random(email)
    start.wait()

    def record(kind: str, status: int, seconds: float) -> None:
        out.setdefault(kind, []).append(seconds)
        if status >= 400:
            out.setdefault("errors", []).append(f"{kind} {status}")

    def pause() -> None:
        time.sleep(think_s * rng.uniform(0.5, 1.5))

    while time.perf_counter() < until[0]:
        view = rng.choice(("all", "all", "unassigned", "mine"))
        status, page, seconds = browser.request("GET", f"/inbox?view={view}&status=open")
        record("inbox page", status, seconds)
        ids = _CONVERSATION_ROW.findall(page)
        pause()
        status, rows, seconds = browser.request("GET", f"/inbox/rows?view={view}&status=open", **{"HX-Request": "true"})
        record("inbox poll", status, seconds)
        ids = ids or _CONVERSATION_ROW.findall(rows)
        if not ids:
            pause()
            continue
        conversation_id = rng.choice(ids)
        status, _, seconds = browser.request("GET", f"/conversations/{conversation_id}")
        record("conversation page", status, seconds)
        pause()
        hx = {"HX-Request": "true", "X-CSRF-Token": browser.csrf}
        reply = {"body": "Thanks for writing! I am looking into it now."}
        status, _, seconds = browser.request("POST", f"/conversations/{conversation_id}/reply", reply, **hx)
        record("reply", status, seconds)
        if rng.random() < 0.3:
            update = {"assignee_id": str(user_id)}
            status, _, seconds = browser.request("POST", f"/conversations/{conversation_id}/update", update, **hx)
            record("assign", status, seconds)
        pause()


def agents_worker(url: str, emails: list[str], seconds: float, think_s: float, ready, go, out: mp.Queue) -> None:
    """A process of agent threads: signs them all in, then runs them for ``seconds`` after ``go``."""
    try:
        start = threading.Event()
        until = [0.0]
        results: list[dict] = [{} for _ in emails]
        threads = [
            threading.Thread(target=agent, args=(url, email, start, until, think_s, result), daemon=True)
            for email, result in zip(emails, results, strict=True)
        ]
        for thread in threads:
            thread.start()
        ready.set()
        go.wait()
        until[0] = time.perf_counter() + seconds
        start.set()
        for thread in threads:
            thread.join()
        merged: dict[str, list] = {}
        for result in results:
            for kind, values in result.items():
                merged.setdefault(kind, []).extend(values)
        out.put(merged)
    except Exception as exc:  # the parent must hear of it, not wait for ever
        out.put(exc)


def create_agents(url: str, token: str, count: int) -> list[str]:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    emails = []
    for n in range(count):
        email = f"agent{n}@bench.example.org"
        body = json.dumps({"email": email, "name": f"Agent {n}", "role": "agent", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request("POST", "/api/v1/users", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"creating {email} answered {response.status}")
        emails.append(email)
    conn.close()
    return emails


def run_mixed(url: str, token: str, *, rate: float, agents: int, seconds: float, think_s: float, clients: int) -> dict:
    emails = create_agents(url, token, agents)
    ready, go, queue = mp.Event(), mp.Event(), mp.Queue()
    worker = mp.Process(target=agents_worker, args=(url, emails, seconds, think_s, ready, go, queue))
    worker.start()
    ready.wait()
    go.set()
    ingest = run_load(url, token, int(rate * seconds), clients, rate=rate, follow_up=True)
    pages = queue.get()
    worker.join()
    if isinstance(pages, Exception):
        raise RuntimeError(f"the agents failed: {pages!r}")
    return {"ingest": ingest, "pages": pages}


def report(label: str, result: dict) -> None:
    ingest, pages = result["ingest"], result["pages"]
    print(label)
    print(
        f"  {'ingest':<18} {ingest['messages']:>6} reqs  {ingest['rate']:6.0f} msg/s  "
        f"p50 {ingest['p50_ms']:6.1f}  p95 {ingest['p95_ms']:6.1f}  p99 {ingest['p99_ms']:6.1f} ms  "
        f"errors {ingest['errors']}"
    )
    p95 = {}
    for kind in ("inbox page", "inbox poll", "conversation page", "reply", "assign"):
        ordered = sorted(pages.get(kind, []))
        p95[kind] = percentile(ordered, 0.95)
        print(
            f"  {kind:<18} {len(ordered):>6} reqs  {'':>12}  p50 {percentile(ordered, 0.5):6.1f}  "
            f"p95 {p95[kind]:6.1f}  p99 {percentile(ordered, 0.99):6.1f} ms"
        )
    errors = pages.get("errors", [])
    if errors:
        print(f"  page errors: {len(errors)} (first: {errors[0]})")
    print(
        f"  page p95/target: inbox {p95['inbox page'] / TARGET_PAGE_P95_MS:.2f}  "
        f"poll {p95['inbox poll'] / TARGET_PAGE_P95_MS:.2f}  "
        f"conversation {p95['conversation page'] / TARGET_PAGE_P95_MS:.2f}  "
        f"| ingest p99/target {ingest['p99_ms'] / TARGET_INGEST_P99_MS:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=300.0, help="inbound messages a second")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=1.0, help="mean pause of an agent between steps, seconds")
    parser.add_argument("--clients", type=int, default=3, help="processes posting the inbound messages")
    parser.add_argument("--seed", type=int, default=5000, help="messages ingested before the measurement")
    parser.add_argument("--databases", default="sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    print_reference()
    for kind in args.databases.split(","):
        with served(kind, args.workers, args.postgres_dsn) as (url, token):
            run_load(url, token, args.seed, 4)
            result = run_mixed(
                url, token, rate=args.rate, agents=args.agents, seconds=args.seconds, think_s=args.think,
                clients=args.clients,
            )  # fmt: skip
            report(
                f"{kind} ({args.workers} workers): {args.rate:.0f} msg/s inbound, {args.agents} agents, "
                f"{args.seconds:.0f} s",
                result,
            )


if __name__ == "__main__":
    main()
