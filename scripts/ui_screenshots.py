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
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# The repository's root: Chromium is launched as the browser tests launch it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn

from kiteline.server import admin
from kiteline.server.app import create_app
from kiteline.settings import Settings
from tests.support.web import CHROMIUM_ARGS, chromium_path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "ui"
EMAIL = "admin@kiteline.local"
PASSWORD = "screenshots only"
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
    svg: bool = False  # not a page: the SVG the path answers is saved as docs/ui/<name>.svg
    open_job: str | None = None  # a job row to open (its log, timestamps shown)
    fill: tuple[tuple[str, str], ...] = ()  # (field label, value) typed before the click


SHOTS = [
    Shot("login", "/login", signed_in=False),
    Shot("pipelines", "/default"),
    Shot("pipelines-dark", "/default", dark=True),
    Shot("pipelines-phone", "/default", phone=True),
    Shot("pipelines-new", "/organizations/default/pipelines/new", full_page=True),
    Shot("user-menu", "/default", click="User menu"),
    Shot("not-found", "/another-organization"),
    Shot("api-docs", "/v2/docs", signed_in=False),
    Shot("build", "/default/release/builds/1", full_page=True),
    Shot("build-dark", "/default/release/builds/1", dark=True),
    Shot("build-phone", "/default/release/builds/1", phone=True, full_page=True),
    Shot("build-unblock", "/default/release/builds/1", click="Unblock"),
    Shot("build-waterfall", "/default/release/builds/1#waterfall"),
    Shot("pipeline", "/default/backend"),
    Shot("pipeline-dark", "/default/backend", dark=True),
    Shot("pipeline-phone", "/default/backend", phone=True, full_page=True),
    Shot("pipeline-new-build", "/default/backend", click="New Build"),
    Shot("pipeline-filtered", "/default/backend?branch=feature/*&state=failed"),
    Shot("pipeline-settings", "/default/backend/settings", full_page=True),
    Shot("pipeline-settings-dark", "/default/backend/settings", dark=True),
    Shot(
        "pipeline-settings-error",
        "/default/backend/settings",
        fill=(("Steps", "steps:\n  - label: Tests\n    comand: make test\n"),),
        click="Save Pipeline",
    ),
    Shot("badge-passing", "/badges/backend?branch=main", svg=True),
    Shot("badge-failing", "/badges/backend?branch=feature/search", svg=True),
    Shot("badge-running", "/badges/backend?branch=feature/badges", svg=True),
    Shot("badge-unknown", "/badges/backend?branch=nowhere", svg=True),
    Shot("build-log", "/default/release/builds/1", open_job=":broom: Lint"),
    Shot("agents", "/organizations/default/agents"),
    Shot("agents-phone", "/organizations/default/agents", phone=True, full_page=True),
    Shot("agent", "/organizations/default/agents/linux-builder-1", full_page=True),
    Shot("api-tokens", "/user/api-access-tokens"),
    Shot("api-token-new", "/user/api-access-tokens/new", full_page=True),
    Shot("services", "/organizations/default/services"),
    Shot("service", "/organizations/default/services/deploy-bot", full_page=True),
    Shot("service-dark", "/organizations/default/services/deploy-bot", dark=True),
    Shot("service-phone", "/organizations/default/services/deploy-bot", phone=True, full_page=True),
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


RELEASE_STEPS = """\
agents:
  queue: screenshots
steps:
  - group: ":mag: Checks"
    steps:
      - label: ":python: Tests"
        command: "echo running the tests; sleep 2"
        matrix: ["3.11", "3.12"]
      - label: ":broom: Lint"
        command: |
          t() { printf '\\033_bk;t=%s\\007' "$$(date +%s%3N)"; }
          t; echo "--- :pip: Installing the linters"
          t; echo "Collecting ruff==0.8.4"
          t; echo "Successfully installed ruff-0.8.4"
          sleep 1
          t; echo "+++ :broom: Lint"
          t; printf '\\033[1mruff check src tests\\033[0m\\n'
          t; printf 'src/app/cli.py:12:5: \\033[33mW291\\033[0m Trailing whitespace (fixed)\\n'
          t; printf '\\033[32mAll checks passed!\\033[0m\\n'
          t; printf 'progress 10%%\\rprogress 100%%\\n'
          t; echo "~~~ :stopwatch: Timings"
          t; echo "lint took 0.4s"
  - wait
  - label: ":package: Package"
    command: "echo wheel > dist.txt; sleep 1"
    artifact_paths: dist.txt
  - block: ":rocket: Release"
    prompt: "Release this build?"
    fields:
      - text: Version
        key: version
        hint: "Like v1.4.0"
        format: "v[0-9.]+"
      - select: Channel
        key: channel
        default: stable
        options:
          - {label: Stable, value: stable}
          - {label: Beta, value: beta}
  - label: ":ship: Publish"
    command: echo publishing
"""


def seed_build(api: httpx.Client, url: str, agent_token: str, work_dir: Path) -> None:
    """A build page worth showing: a real agent (on a queue of its own, so that the other
    pipelines' builds stay scheduled) runs the `release` pipeline's build up to its block
    step; annotations come through REST. The repository is named afterwards (the agent would
    try to clone it), so that the commit links to it."""
    slug = "default/pipelines/release"
    api.post(
        "/v2/organizations/default/pipelines",
        json={"name": "Release", "configuration": RELEASE_STEPS},
    ).raise_for_status()
    api.post(
        f"/v2/organizations/{slug}/builds",
        json={
            "commit": "4f6c2b9e1d0a7c3b5e8f9a1b2c3d4e5f6a7b8c9d",
            "branch": "main",
            "message": "Build page: waterfall and unblock dialog",
            "env": {"DEPLOY_ENV": "staging"},
        },
    ).raise_for_status()
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kiteline",
            "agent",
            "start",
            "--endpoint",
            url,
            "--token",
            agent_token,
            "--name",
            "screenshots",
            "--tags",
            "queue=screenshots",
            "--build-path",
            str(work_dir / "builds"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not api.get(f"/v2/organizations/{slug}/builds/1").json()["blocked"]:
            if time.monotonic() > deadline:
                raise SystemExit("the release build did not reach its block step")
            time.sleep(0.2)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    api.patch(
        f"/v2/organizations/{slug}", json={"repository": "git@github.com:kiteline/kiteline.git"}
    ).raise_for_status()
    for context, style, body in (
        ("coverage", "success", "**Coverage** 93.4% (+0.2%) · [report](https://example.com)"),
        ("deprecations", "warning", "2 deprecation warnings in `tests/web`"),
    ):
        api.post(
            f"/v2/organizations/{slug}/builds/1/annotations",
            json={"context": context, "style": style, "body": body},
        ).raise_for_status()


class _Receiver(BaseHTTPRequestHandler):
    """Where the screenshots' webhook delivers: answers 200 with a little JSON."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true, "queued": "deploy-42"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def seed_admin(api: httpx.Client, url: str, agent_token: str) -> dict[str, str]:
    """Agents and webhooks pages worth showing: agents connected through the agent API (one
    running a job of the `kiteline` pipeline), a webhook delivering to a local receiver and
    one whose receiver is down. Returns the paths of the agent's and the webhook's pages, by
    the names the shots give them."""
    agent_api = httpx.Client(base_url=f"{url}/v3", timeout=30)
    ids: dict[str, str] = {}
    for name, host, tags in (
        ("linux-builder-1", "ci-linux-1", ["queue=default", "os=linux", "docker=true"]),
        ("linux-builder-2", "ci-linux-2", ["queue=default", "os=linux"]),
        ("mac-mini", "mac-mini.local", ["queue=macos", "os=darwin", "xcode=16"]),
    ):
        registered = agent_api.post(
            "/register",
            json={"name": name, "hostname": host, "version": "3.88.0", "meta_data": tags},
            headers={"Authorization": f"Token {agent_token}"},
        )
        registered.raise_for_status()
        token = {"Authorization": f"Token {registered.json()['access_token']}"}
        agent_api.post("/connect", headers=token).raise_for_status()
        if name == "linux-builder-1":
            ids["/organizations/default/agents/linux-builder-1"] = (
                f"/organizations/default/agents/{registered.json()['id']}"
            )
            job = agent_api.get("/ping", headers=token).json()["job"]
            accepted = agent_api.put(f"/jobs/{job['id']}/accept", headers=token).json()
            agent_api.put(
                f"/jobs/{accepted['id']}/start",
                json={"started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
                headers={"Authorization": f"Token {accepted['token']}"},
            ).raise_for_status()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    for description, hook_url, events in (
        ("Deploy bot", f"http://127.0.0.1:{receiver.server_address[1]}/buildkite", None),
        ("Chat notifications", "http://127.0.0.1:9/down", ["build.finished"]),
    ):
        settings: dict[str, Any] = {"url": hook_url}
        if events:
            settings["events"] = events
        created = api.post(
            "/v2/organizations/default/services",
            json={"provider": "webhook", "description": description, "settings": settings},
        )
        created.raise_for_status()
        ids.setdefault(
            "/organizations/default/services/deploy-bot",
            f"/organizations/default/services/{created.json()['id']}",
        )
    api.post(
        "/v2/organizations/default/pipelines/website/builds",
        json={"commit": "HEAD", "branch": "main", "message": "Events for the webhooks"},
    ).raise_for_status()
    webhook = ids["/organizations/default/services/deploy-bot"].rsplit("/", 1)[1]
    deliveries = f"/v2/organizations/default/services/{webhook}/deliveries"
    deadline = time.monotonic() + 60
    while any(d["state"] == "pending" for d in api.get(deliveries).json()["items"]):
        if time.monotonic() > deadline:
            raise SystemExit("the webhook's deliveries did not settle")
        time.sleep(0.2)
    return ids


BACKEND_STEPS = """\
agents:
  queue: backend
steps:
  - label: ":python: Tests"
    command: make test
  - wait
  - label: ":package: Package"
    command: make dist
"""

#: The `backend` pipeline's builds, oldest first: (branch, message, what becomes of it).
BACKEND_BUILDS = (
    ("main", "Initial import", "passed"),
    ("main", "Add a health check endpoint", "passed"),
    ("feature/search", "Search inside logs", "failed"),
    ("main", "Bump dependencies", "passed"),
    ("fix/login-redirect", "Keep ?next= through sign-in", "canceled"),
    ("feature/badges", "Badges: scope to a branch with ?branch=", "running"),
    ("release/1.4", "Release 1.4.0", "scheduled"),
)


class ScriptedAgent:
    """Just enough of the /v3 agent protocol to move jobs along without running them."""

    def __init__(self, url: str, registration_token: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/v3", timeout=30)
        registered = self.http.post(
            "/register",
            json={
                "name": "backend-agent",
                "hostname": "screenshots",
                "meta_data": ["queue=backend"],
            },
            headers={"Authorization": f"Token {registration_token}"},
        )
        registered.raise_for_status()
        self.token = registered.json()["access_token"]
        self.call("POST", "/connect", self.token)

    def call(self, method: str, path: str, token: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(
            method, path, headers={"Authorization": f"Token {token}"}, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    def run(self, exit_status: str | None) -> None:
        """Take the next job, start it and finish it with `exit_status` (None: leave it running)."""
        job = self.call("GET", "/ping", self.token, params={"wait": 5}).get("job")
        if job is None:
            raise SystemExit("no job for the scripted agent")
        accepted = self.call("PUT", f"/jobs/{job['id']}/accept", self.token)
        self.call("PUT", f"/jobs/{job['id']}/start", accepted["token"], json={})
        if exit_status is not None:
            time.sleep(1.1)  # a duration to show
            self.call(
                "PUT",
                f"/jobs/{job['id']}/finish",
                accepted["token"],
                json={"exit_status": exit_status, "chunks_failed_count": 0},
            )


def seed_pipeline(api: httpx.Client, url: str, agent_token: str) -> str:
    """The `backend` pipeline's page: builds on several branches in every state, moved along
    by a scripted agent on a queue of its own. Returns its badge's path."""
    created = api.post(
        "/v2/organizations/default/pipelines",
        json={
            "name": "Backend",
            "description": "The Python service: tests, then a wheel",
            "repository": "git@github.com:kiteline/backend.git",
            "configuration": BACKEND_STEPS,
        },
    )
    created.raise_for_status()
    agent = ScriptedAgent(url, agent_token)
    builds = "/v2/organizations/default/pipelines/backend/builds"
    for number, (branch, message, outcome) in enumerate(BACKEND_BUILDS, start=1):
        api.post(
            builds,
            json={
                "commit": f"{number:x}" * 40,
                "branch": branch,
                "message": message,
                "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
            },
        ).raise_for_status()
        if outcome == "passed":
            agent.run("0")
            agent.run("0")
        elif outcome == "failed":
            agent.run("1")
        elif outcome == "running":
            agent.run(None)
        elif outcome == "canceled":
            api.put(f"{builds}/{number}/cancel").raise_for_status()
    return "/" + created.json()["badge_url"].split("/", 3)[3]


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


def create_credentials(data_dir: Path) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir)
    created = asyncio.run(admin.run_in_transaction(settings, admin.first_start))
    asyncio.run(
        admin.run_in_transaction(settings, lambda s: admin.set_password(s, EMAIL, PASSWORD))
    )
    return created


def take(url: str, shots: list[Shot], paths: dict[str, str]) -> None:
    """Photographs `shots`; `paths` names the pages whose URL is known once seeded."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    OUT.mkdir(parents=True, exist_ok=True)

    def resolved(path: str) -> str:
        for known, actual in paths.items():
            if path.startswith(known):
                return actual + path[len(known) :]
        return path

    for shot in shots:
        if shot.svg:
            answer = httpx.get(url + resolved(shot.path), timeout=30)
            answer.raise_for_status()
            (OUT / f"{shot.name}.svg").write_text(answer.text)
            print(f"docs/ui/{shot.name}.svg  {shot.path}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        for shot in shots:
            if shot.svg:
                continue
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
            page.goto(resolved(shot.path))
            page.wait_for_load_state("networkidle")
            for label, value in shot.fill:
                page.get_by_label(label, exact=True).fill(value)
            if shot.click:
                control = page.get_by_role("button", name=shot.click, exact=True)
                if control.count() == 0:
                    control = page.get_by_label(shot.click)
                control.first.click()
                page.wait_for_load_state("networkidle")
            if shot.open_job:
                row = page.locator(".job-row", has_text=shot.open_job)
                row.locator(".job-toggle").click()
                row.locator(".log-viewer").wait_for()
                row.get_by_role("button", name="Timestamps").click()
                row.evaluate("row => row.scrollIntoView({block: 'start'})")
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
        created = create_credentials(data_dir)
        url, stop = start_server(data_dir)
        try:
            with httpx.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {created['api_token']}"},
                timeout=30,
            ) as api:
                seed(api)
                if any("/release/" in shot.path for shot in shots):
                    seed_build(api, url, created["agent_token"], data_dir)
                badge = seed_pipeline(api, url, created["agent_token"])
                paths = seed_admin(api, url, created["agent_token"])
                api.get("/v2/user").raise_for_status()  # the token's "last used"
            take(url, shots, {"/badges/backend": badge, **paths})
        finally:
            stop()


if __name__ == "__main__":
    sys.exit(main())
