"""Screenshots of every web UI page into docs/ui/, shown by docs/ui.md.

Starts a Kiteline server on a throwaway SQLite database, seeds it through the REST API, signs
in with Debian's Chromium (driven by Playwright) and photographs each page of SHOTS, in the
light and dark themes and at phone width where asked. A page helper adds a line to SHOTS
(and what its page needs to `seed`), reruns `.venv/bin/python scripts/ui_screenshots.py`, and
looks at the pictures.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from kiteline.server import admin
from kiteline.server.app import create_app
from kiteline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "ui"
EMAIL = "admin@kiteline.local"
PASSWORD = "screenshots only"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class Shot:
    name: str  # docs/ui/<name>.png
    path: str
    signed_in: bool = True
    dark: bool = False
    phone: bool = False
    full_page: bool = False
    click: str | None = None  # the accessible name of a control to click first (a menu)


SHOTS = [
    Shot("login", "/login", signed_in=False),
    Shot("pipelines", "/default"),
    Shot("pipelines-dark", "/default", dark=True),
    Shot("pipelines-phone", "/default", phone=True),
    Shot("user-menu", "/default", click="User menu"),
    Shot("not-found", "/another-organization"),
    Shot("api-docs", "/v2/docs", signed_in=False),
]

STEPS = """\
steps:
  - label: ":hammer: Build"
    command: make build
  - wait
  - label: ":test_tube: Test"
    command: make test
"""


def seed(api: httpx.Client) -> None:
    """What the pages show: pipelines, builds in several states (no agent runs them)."""
    pipelines = [
        ("Kiteline", "The CI server itself: lint, types, tests on SQLite and PostgreSQL"),
        ("Website", "Static site, deployed on merge to main"),
        ("Mobile App", "iOS and Android builds"),
        ("Infrastructure", None),
    ]
    for name, description in pipelines:
        body: dict[str, Any] = {"name": name, "configuration": STEPS}
        if description:
            body["description"] = description
        api.post("/v2/organizations/default/pipelines", json=body).raise_for_status()
    for slug, builds in (("kiteline", 3), ("website", 1)):
        for number in range(builds):
            api.post(
                f"/v2/organizations/default/pipelines/{slug}/builds",
                json={"commit": "HEAD", "branch": "main", "message": f"Change {number + 1}"},
            ).raise_for_status()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path) -> tuple[str, Callable[[], None]]:
    port = free_port()
    settings = Settings(data_dir=data_dir, host="127.0.0.1", port=port, rate_limit_org_per_minute=0)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return f"http://127.0.0.1:{port}", stop


def create_credentials(data_dir: Path) -> str:
    settings = Settings(data_dir=data_dir)
    created = asyncio.run(admin.run_in_transaction(settings, admin.first_start))
    asyncio.run(
        admin.run_in_transaction(settings, lambda s: admin.set_password(s, EMAIL, PASSWORD))
    )
    token: str = created["api_token"]
    return token


def take(url: str, shots: list[Shot]) -> None:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        for shot in shots:
            context = browser.new_context(
                base_url=url,
                viewport=PHONE if shot.phone else DESKTOP,
                color_scheme="dark" if shot.dark else "light",
                device_scale_factor=1,
            )
            page = context.new_page()
            if shot.signed_in:
                page.goto("/login")
                page.get_by_label("Email").fill(EMAIL)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign In").click()
                page.wait_for_url("**/default")
            page.goto(shot.path)
            page.wait_for_load_state("networkidle")
            if shot.click:
                page.get_by_label(shot.click).click()
            page.screenshot(path=str(OUT / f"{shot.name}.png"), full_page=shot.full_page)
            print(f"docs/ui/{shot.name}.png  {shot.path}")
            context.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these shots (default: all)")
    chosen = parser.parse_args().names
    shots = [shot for shot in SHOTS if not chosen or shot.name in chosen]
    with tempfile.TemporaryDirectory(prefix="kiteline-screenshots-") as directory:
        data_dir = Path(directory)
        token = create_credentials(data_dir)
        url, stop = start_server(data_dir)
        try:
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as api:
                seed(api)
            take(url, shots)
        finally:
            stop()


if __name__ == "__main__":
    sys.exit(main())
