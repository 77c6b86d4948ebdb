"""`/metrics` across processes: with `PROMETHEUS_MULTIPROC_DIR` shared, the webhook attempts a
`kiteline worker` process makes show in the `kiteline server` process's scrape."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_webhooks import FAST, _webhook
from tests.support.processes import wait_until
from tests.support.stack import stack
from tests.support.webhook_receiver import receiver


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = httpx.get(f"{url}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_a_workers_webhook_attempts_show_in_the_servers_metrics(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))  # inherited by the processes
    succeeded = ("kiteline_webhook_attempts_total", frozenset({("outcome", "succeeded")}))
    with (
        receiver() as hook,
        stack(database_url, tmp_path, run_workers="false", **FAST) as s,
    ):
        s.start_worker()
        _webhook(s.client, hook.url)  # its ping is the one delivery
        hook.wait_for_accepted(1, what="the ping")
        samples = wait_until(
            lambda: (found := _samples(s.url)).get(succeeded) == 1 and found,
            what="the worker's attempt in the server's metrics",
        )
        processes = {path.name.split("_")[-1] for path in shared.glob("*.db")}
    assert samples[succeeded] == 1
    assert not [name for name, _ in samples if name.startswith("process_")]
    created = (
        "kiteline_http_request_duration_seconds_count",
        frozenset(
            {("method", "POST"), ("route", "/v2/organizations/{org}/services"), ("status", "201")}
        ),
    )
    assert samples[created] == 1
    assert len(processes) == 2  # the server's files and the worker's
