"""Inbound ingestion over HTTP: N messages from C concurrent clients against a running Cape.

    python bench/ingest.py                       # SQLite and PostgreSQL, servers started here (2 workers)
    python bench/ingest.py --workers 1           # one server process
    python bench/ingest.py --databases sqlite --messages 5000
    python bench/ingest.py --url http://127.0.0.1:8000 --token cape_...   # an existing server

Prints messages/s and latency percentiles, and the ratio to the target (1,000 msg/s, p99 < 50 ms),
after a machine reference figure: the same code measured on hosts of one kind has differed by a
factor of three, and the reference tells such hosts apart.
Each client is its own process with a keep-alive connection, so the load generator's own Python
does not share a GIL with itself; on a 2-core machine client and server still share the CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATE = 1000.0
TARGET_P99_MS = 50.0


def client_worker(url: str, token: str, start: int, count: int, run_id: str, out: mp.Queue, **options) -> None:
    try:
        out.put(post_messages(url, token, start, count, run_id, **options))
    except Exception as exc:  # the parent must hear of it, not wait for ever
        out.put(exc)


def inbound_body(run_id: str, n: int, *, conversation_id: int | None = None) -> str:
    """Message ``n`` of a run: from one of 5,000 customers, in ``conversation_id`` if given."""
    body = {
        "channel": "api",
        "external_id": f"{run_id}-{n}",
        "from": {"email": f"customer{n % 5000}@bench.example.org", "name": f"Customer {n % 5000}"},
        "subject": f"Order question {n}",
        "body": "Hello, my parcel has not arrived yet. Could you check where it is? Thanks!",
    }
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    return json.dumps(body)


def post_messages(
    url: str, token: str, start: int, count: int, run_id: str, *, rate: float | None = None, follow_up: bool = False
) -> tuple[list[float], int]:
    """Post messages ``start`` to ``start + count`` on one keep-alive connection: back to back, or
    ``rate`` a second on a fixed schedule. With ``follow_up``, a customer's later messages continue
    the conversation their first one opened. Returns each request's latency and the error count."""
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conversations: dict[int, int] = {}  # customer number -> their conversation
    latencies = []
    errors = 0
    schedule = time.perf_counter()
    for i in range(start, start + count):
        if rate is not None:
            schedule += 1 / rate
            if (wait := schedule - time.perf_counter()) > 0:
                time.sleep(wait)
        body = inbound_body(run_id, i, conversation_id=conversations.get(i % 5000) if follow_up else None)
        began = time.perf_counter()
        conn.request("POST", "/api/v1/messages/inbound", body=body, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        latencies.append(time.perf_counter() - began)
        if response.status not in (200, 201):
            errors += 1
        elif follow_up:
            conversations[i % 5000] = json.loads(answer)["conversation_id"]
    conn.close()
    return latencies, errors


def percentile(ordered: list[float], p: float) -> float:
    """The ``p`` quantile (0 to 1) of sorted seconds, in milliseconds."""
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")


def run_load(url: str, token: str, messages: int, clients: int, **options) -> dict:
    """``messages`` posted by ``clients`` processes (``options`` as for ``post_messages``)."""
    run_id = uuid.uuid4().hex[:8]
    queue: mp.Queue = mp.Queue()
    per_client = messages // clients
    if options.get("rate"):
        options["rate"] /= clients
    procs = [
        mp.Process(target=client_worker, args=(url, token, n * per_client, per_client, run_id, queue), kwargs=options)
        for n in range(clients)
    ]
    began = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    elapsed = time.perf_counter() - began
    for proc in procs:
        proc.join()
    if failed := [r for r in results if isinstance(r, Exception)]:
        raise RuntimeError(f"{len(failed)} client(s) failed: {failed[0]!r}")
    latencies = sorted(lat for lats, _ in results for lat in lats)
    errors = sum(e for _, e in results)
    return {
        "messages": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def start_server(
    database_url: str | None, data_dir: Path, port: int, workers: int, *, prepare: Callable | None = None
) -> subprocess.Popen:
    env = {**os.environ, "CAPE_DATA_DIR": str(data_dir), "CAPE_LOG_LEVEL": "WARNING", "CAPE_PORT": str(port)}
    if database_url:
        env["CAPE_DATABASE_URL"] = database_url
    cape = shutil.which("cape") or str(Path(sys.executable).parent / "cape")
    subprocess.run([cape, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([cape, "users", "create", "--email", "bench@example.org", "--name", "Bench", "--role", "admin"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    if prepare is not None:
        prepare(database_url, data_dir)
    proc = subprocess.Popen([cape, "serve", "--no-migrate", "--workers", str(workers)], env=env)
    import urllib.request

    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def make_token(database_url: str | None, data_dir: Path) -> str:
    env = {**os.environ, "CAPE_DATA_DIR": str(data_dir)}
    if database_url:
        env["CAPE_DATABASE_URL"] = database_url
    cape = shutil.which("cape") or str(Path(sys.executable).parent / "cape")
    out = subprocess.run([cape, "token", "create", "--email", "bench@example.org"], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip()


def machine_reference_ms() -> float:
    """Milliseconds for a fixed pure-Python workload, so figures from different hosts compare:
    a host twice as slow here serves about half the messages a second."""
    payload = {"channel": "api", "from": {"email": "someone@example.org"}, "body": "Hello! " * 20}
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for n in range(20_000):
            payload["external_id"] = str(n)
            json.loads(json.dumps(payload))
        best = min(best, time.perf_counter() - began)
    return best * 1000


def print_reference() -> None:
    """The machine reference figure and the load average, printed before any figures."""
    print(f"machine reference: {machine_reference_ms():.0f} ms (a fixed Python workload; lower is faster)")
    print("load average before: " + " ".join(f"{n:.2f}" for n in os.getloadavg()) + " (1, 5, 15 min)")


@contextmanager
def serving(
    kind: str, workers: int, postgres_dsn: str, *, prepare: Callable[[str | None, Path], None] | None = None
) -> Iterator[tuple[str, str, subprocess.Popen]]:
    """(url, admin token, server process) of a Cape started here on a fresh ``kind`` database.

    ``prepare(database_url, data_dir)`` runs after the migrations, before the server starts.
    """
    data_dir = Path(tempfile.mkdtemp(prefix=f"cape-bench-{kind}-"))
    database_url = None
    db_name = f"cape_bench_{uuid.uuid4().hex[:8]}"
    if kind == "postgresql":
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        database_url = postgres_dsn.rsplit("/", 1)[0] + "/" + db_name
    port = 18000 + os.getpid() % 1000
    server = None
    try:
        server = start_server(database_url, data_dir, port, workers, prepare=prepare)
        yield f"http://127.0.0.1:{port}", make_token(database_url, data_dir), server
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        shutil.rmtree(data_dir, ignore_errors=True)
        if kind == "postgresql":
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@contextmanager
def served(kind: str, workers: int, postgres_dsn: str) -> Iterator[tuple[str, str]]:
    """(url, admin token) of a Cape started here on a fresh ``kind`` database, stopped afterwards."""
    with serving(kind, workers, postgres_dsn) as (url, token, _):
        yield url, token


def report(label: str, result: dict) -> None:
    print(
        f"{label:<28} {result['messages']:>6} msgs  {result['rate']:>8.0f} msg/s  "
        f"p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  errors {result['errors']}  "
        f"| rate/target {result['rate'] / TARGET_RATE:.2f}  p99/target {result['p99_ms'] / TARGET_P99_MS:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes (default: one per core of the 2-core target)"
    )
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    print_reference()
    if args.url:
        report("given server", run_load(args.url, args.token, args.messages, args.clients))
        return

    for kind in args.databases.split(","):
        with served(kind, args.workers, args.postgres_dsn) as (url, token):
            run_load(url, token, min(1000, args.messages), args.clients)  # warm-up
            label = f"{kind} ({args.workers} worker{'s' if args.workers > 1 else ''}, {args.clients} clients)"
            report(label, run_load(url, token, args.messages, args.clients))


if __name__ == "__main__":
    main()
