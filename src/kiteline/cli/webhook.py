"""`kiteline webhook …`: create and list webhooks, read their deliveries, redeliver one — over
the REST API of a running server, through the SDK like every other API command."""

from __future__ import annotations

from itertools import islice
from typing import Any

import typer
from rich.markup import escape

from kiteline.cli.api import Api, api_command

app = typer.Typer(
    rich_markup_mode=None,
    help="Webhooks (notification services) and their deliveries, over the REST API",
    no_args_is_help=True,
)

WEBHOOK = typer.Argument(..., help="The webhook's id.")


def _describe(webhook: dict[str, Any]) -> str:
    settings = webhook["settings"]
    status = "enabled" if webhook["enabled"] else f"disabled ({webhook['disabled_reason']})"
    return (
        f"[bold]{webhook['id']}[/bold] {escape(settings['url'])} {status}, "
        f"{settings['token_mode']}, {len(settings['events'])} event(s)"
    )


def _delivery(delivery: dict[str, Any]) -> str:
    last = delivery["attempts"][-1] if delivery["attempts"] else None
    outcome = "" if last is None else f", last: {last['status_code'] or escape(str(last['error']))}"
    return (
        f"[bold]{delivery['id']}[/bold] {delivery['event']} {delivery['state']}, "
        f"{delivery['attempts_count']} attempt(s){outcome}"
    )


@app.command("create")
@api_command()
def create(
    api: Api,
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
) -> None:
    """Create a webhook; the server sends it a `ping` at once."""
    with api.connect() as client:
        webhook = client.create_webhook(
            target,
            events=event,
            token_mode=mode,
            secret=secret,
            description=description,
            pipeline_ids=[str(client.pipeline(slug).id) for slug in pipeline or []],
        )
    api.show(
        webhook,
        view=lambda: (
            f"created {_describe(webhook)}\nsecret: {escape(webhook['settings']['token'])}"
        ),
    )


@app.command("list")
@api_command()
def list_webhooks(api: Api) -> None:
    """Every webhook of the organization."""
    with api.connect() as client:
        items = list(client.webhooks(per_page=100))
    api.show(
        {"items": items},
        view=lambda: "\n".join(_describe(webhook) for webhook in items) or "no webhooks",
    )


@app.command("deliveries")
@api_command()
def deliveries(
    api: Api,
    webhook: str = WEBHOOK,
    state: str | None = typer.Option(None, help="pending, succeeded or failed."),
    limit: int = typer.Option(30, min=1, max=100, help="How many, newest first."),
) -> None:
    """A webhook's newest deliveries, with their attempts."""
    with api.connect() as client:
        found = client.webhook_deliveries(webhook, state=state, per_page=limit)
        items = list(islice(found, limit))
    api.show(
        {"items": items},
        view=lambda: "\n".join(_delivery(delivery) for delivery in items) or "no deliveries",
    )


@app.command("redeliver")
@api_command()
def redeliver(
    api: Api,
    webhook: str = WEBHOOK,
    delivery: str = typer.Argument(..., help="The delivery's id (its X-Buildkite-Request)."),
) -> None:
    """Send a delivery's body again, as a new delivery."""
    with api.connect() as client:
        again = client.redeliver(webhook, delivery)
    api.show(again, view=lambda: f"queued [bold]{again['id']}[/bold] ({again['event']})")
