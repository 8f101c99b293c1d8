"""Screenshots of every page, in English, French and Danish, on a laptop and a phone.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--only inbox,conversation]

Seeds the demo into a new data directory, serves it on a free loopback port, signs in as a demo
user of each language (an admin sees everything: the French and Danish admins are made for the
occasion) and saves one JPEG per page, language and width: ``<page>-<language>-<width>.jpg``.
Needs Chromium (Debian's ``chromium``) and Playwright, as the test suite does.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]  # fmt: skip
WIDTHS = {"laptop": (1366, 900), "phone": (390, 844)}
# Signed in as an admin of each language, so every page can be seen.
VIEWERS = {"en": "admin@example.com", "fr": "admin.fr@example.com", "da": "admin.da@example.com"}
PASSWORD = "cape-admin"


def pages(page: Page, base: str) -> dict[str, str]:
    """Page name -> path, finding a conversation and a customer with history in the demo."""
    page.goto(f"{base}/inbox?view=all&status=all")
    conversation = page.locator("tr[data-row]").first.get_attribute("data-href")
    page.goto(base + conversation)
    customer = page.locator("aside.sidebar h2 a").first.get_attribute("href")
    return {
        "login": "/login", "contact": "/contact", "inbox": "/inbox?view=all", "conversation": conversation,
        "customer": customer, "approvals": "/approvals", "review": "/review", "heroes": "/heroes",
        "authority": "/admin/authority", "channels": "/admin/channels", "settings": "/admin/settings",
        "users": "/admin/users", "teams": "/admin/teams", "not-found": "/no-such-page",
    }  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--only", default="", help="comma-separated page names")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cape = str(Path(sys.executable).parent / "cape")
    with tempfile.TemporaryDirectory(prefix="cape-screens-") as data:
        env_args = ["--data-dir", data]
        subprocess.run([cape, "demo", "--no-serve", *env_args], check=True, capture_output=True)
        for language, email in VIEWERS.items():
            if language != "en":
                subprocess.run([cape, "users", "create", "--email", email, "--name", f"Admin {language.upper()}",
                                "--role", "admin", "--password", PASSWORD, "--language", language, *env_args],
                               check=False, capture_output=True)  # fmt: skip
        port = free_port()
        server = subprocess.Popen([cape, "serve", "--port", str(port), *env_args], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            _wait(base)
            _shoot(base, out, args.only.split(",") if args.only else None)
        finally:
            server.terminate()
            server.wait(timeout=20)


def _wait(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("Cape did not start")


def _shoot(base: str, out: Path, only: list[str] | None) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for language, email in VIEWERS.items():
            for width_name, (width, height) in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height}, locale=language)
                page = context.new_page()
                for name in ("login", "contact"):  # before signing in
                    if not only or name in only:
                        _save(page, f"{base}/{name}", out / f"{name}-{language}-{width_name}.jpg")
                page.goto(f"{base}/login")
                page.fill("input[name=email]", email)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/inbox*")
                for name, path in pages(page, base).items():
                    if name in ("login", "contact") or (only and name not in only):
                        continue
                    _save(page, base + path, out / f"{name}-{language}-{width_name}.jpg")
                context.close()
        browser.close()


def _save(page: Page, url: str, path: Path) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=True, type="jpeg", quality=70)
    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
