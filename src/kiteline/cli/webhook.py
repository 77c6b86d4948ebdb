"""`kiteline webhook …`: create and list webhooks, read their deliveries, redeliver one — over
the REST API of a running server (`--url`, `--token`), like any other API client."""

from __future__ import annotations

import os
from typing import Any

import httpx
import typer
from rich.markup import escape

from kiteline.cli import api as rest
from kiteline.cli import credentials
from kiteline.cli.output import emit, fail

app = typer.Typer(
    rich_markup_mode=None,
    help="Webhooks (notification services) and their deliveries, over the REST API",
    no_args_is_help=True,
)

SERVER = rest.URL
TOKEN = rest.TOKEN
ORG = rest.ORG
JSON_OPTION = rest.JSON_OPTION


def _target(server: str | None, token: str | None, org: str | None) -> tuple[str, str, str]:
    """The server, token and organization, found as every API command finds them."""
    found = credentials.resolve(server, token, org)
    url = found.url or os.environ.get("KITELINE_URL")
    api_token = found.token or os.environ.get("KITELINE_TOKEN")
    slug = found.org or os.environ.get("KITELINE_ORG")
    if not url or not api_token or not slug:
        raise fail(
            "no Kiteline server, token or organization: run `kiteline up` here first, or "
            "`kiteline login URL`, or pass --url, --token and --org"
        )
    return url, api_token, slug


def _request(server: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    """The answer's JSON; an error answer or an unreachable server ends the command."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(headers=headers, timeout=30) as client:
            url = path if path.startswith("http") else f"{server.rstrip('/')}/v2/{path}"
            response = client.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        raise fail(f"could not reach {server}: {error}") from error
    if response.status_code >= 400:
        raise fail(_error_text(response))
    return response.json()


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    details = "; ".join(f"{e.get('field')} {e.get('code')}" for e in body.get("errors", []))
    message = str(body.get("message", f"HTTP {response.status_code}"))
    return f"{message}: {details}" if details else message


def _describe(webhook: dict[str, Any]) -> str:
    settings = webhook["settings"]
    status = "enabled" if webhook["enabled"] else f"disabled ({webhook['disabled_reason']})"
    return (
        f"[bold]{webhook['id']}[/bold] {escape(settings['url'])} {status}, "
        f"{settings['token_mode']}, {len(settings['events'])} event(s)"
    )


@app.command("create")
def create(
    target: str = typer.Argument(..., help="The receiver's URL (http:// or https://)."),
    event: list[str] | None = typer.Option(
        None, "--event", help="An event to send (repeat it); every event when left out."
    ),
    pipeline: list[str] | None = typer.Option(
        None, "--pipeline", help="Only this pipeline's builds and jobs (a slug; repeat it)."
    ),
    mode: str = typer.Option(
        "sha256", "--mode", help="Signature: sha256 (default), signature (timestamped), token."
    ),
    secret: str | None = typer.Option(
        None, "--secret", help="The signing secret (a random one when left out)."
    ),
    description: str = typer.Option("", "--description", help="What the webhook is for."),
    org: str | None = ORG,
    server: str | None = SERVER,
    token: str | None = TOKEN,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a webhook; the server sends it a `ping` at once."""
    server, token, org = _target(server, token, org)
    settings: dict[str, Any] = {"url": target, "token_mode": mode}
    if secret is not None:
        settings["token"] = secret
    if event:
        settings["events"] = event
    body: dict[str, Any] = {"provider": "webhook", "description": description, "settings": settings}
    if pipeline:
        found = [
            _request(server, token, "GET", f"organizations/{org}/pipelines/{slug}")
            for slug in pipeline
        ]
        body |= {"scope": "some_projects", "scope_uuids": [p["id"] for p in found]}
    webhook = _request(server, token, "POST", f"organizations/{org}/services", json=body)
    emit(
        webhook,
        as_json=as_json,
        text=f"created {_describe(webhook)}\nsecret: {escape(webhook['settings']['token'])}",
    )


@app.command("list")
def list_webhooks(
    org: str | None = ORG,
    server: str | None = SERVER,
    token: str | None = TOKEN,
    as_json: bool = JSON_OPTION,
) -> None:
    """Every webhook of the organization."""
    server, token, org = _target(server, token, org)
    items: list[dict[str, Any]] = []
    page: str | None = f"organizations/{org}/services?per_page=100"
    while page is not None:
        answer = _request(server, token, "GET", page)
        items += answer["items"]
        page = answer["links"].get("next")
    text = "\n".join(_describe(webhook) for webhook in items) or "no webhooks"
    emit({"items": items}, as_json=as_json, text=text)


@app.command("deliveries")
def deliveries(
    webhook: str = typer.Argument(..., help="The webhook's id."),
    state: str | None = typer.Option(None, help="pending, succeeded or failed."),
    limit: int = typer.Option(30, min=1, max=100, help="How many, newest first."),
    org: str | None = ORG,
    server: str | None = SERVER,
    token: str | None = TOKEN,
    as_json: bool = JSON_OPTION,
) -> None:
    """A webhook's newest deliveries, with their attempts."""
    server, token, org = _target(server, token, org)
    params: dict[str, Any] = {"per_page": limit} | ({"state": state} if state else {})
    answer = _request(
        server, token, "GET", f"organizations/{org}/services/{webhook}/deliveries", params=params
    )
    lines = []
    for delivery in answer["items"]:
        last = delivery["attempts"][-1] if delivery["attempts"] else None
        outcome = (
            "" if last is None else f", last: {last['status_code'] or escape(str(last['error']))}"
        )
        lines.append(
            f"[bold]{delivery['id']}[/bold] {delivery['event']} {delivery['state']}, "
            f"{delivery['attempts_count']} attempt(s){outcome}"
        )
    emit(answer, as_json=as_json, text="\n".join(lines) or "no deliveries")


@app.command("redeliver")
def redeliver(
    webhook: str = typer.Argument(..., help="The webhook's id."),
    delivery: str = typer.Argument(..., help="The delivery's id (its X-Buildkite-Request)."),
    org: str | None = ORG,
    server: str | None = SERVER,
    token: str | None = TOKEN,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a delivery's body again, as a new delivery."""
    server, token, org = _target(server, token, org)
    path = f"organizations/{org}/services/{webhook}/deliveries/{delivery}/redeliver"
    again = _request(server, token, "POST", path)
    emit(again, as_json=as_json, text=f"queued [bold]{again['id']}[/bold] ({again['event']})")
