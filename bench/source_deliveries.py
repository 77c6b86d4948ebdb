"""Code-host webhook benchmark: signed GitHub pushes to a pipeline's webhook_url, one after
another, each creating a build; the answer's latency and the server's CPU per delivery.

    python bench/source_deliveries.py [--backend sqlite|postgresql] [--deliveries 300]

The server runs as its own process. Every delivery must be answered 201 (a build); the JSON
line gives p50/p95/p99 of the answer time and `server_cpu_ms_per_delivery`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    argument_parser,
    bench_server,
    cpu_seconds,
    database_info,
    emit,
    exit_on_sigterm,
    progress,
    summary_ms,
)

SECRET = b"bench-secret"
WARM_UP = 20


def _push(number: int) -> bytes:
    sha = f"{number + 1:040x}"  # never all zeros: that is a deleted branch
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "0" * 40,
            "after": sha,
            "deleted": False,
            "head_commit": {
                "id": sha,
                "message": f"Change {number}",
                "author": {"name": "Bench", "email": "bench@example.com", "username": "bench"},
            },
            "repository": {"full_name": "acme/app"},
        }
    ).encode()


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--deliveries", type=int, default=300)
    args = parser.parse_args()
    exit_on_sigterm()
    with (
        bench_server(args.backend, KITELINE_RUN_WORKERS="false") as (url, k),
        k.client() as client,
        httpx.Client(timeout=60) as sender,
    ):
        created = client.post(
            f"/v2/organizations/{ORG}/pipelines",
            json={
                "name": "app",
                "repository": "https://github.com/acme/app.git",
                "configuration": "steps:\n  - command: echo hi\n",
                "provider_settings": {"webhook_secret": SECRET.decode()},
            },
        )
        if created.status_code != 201:
            raise SystemExit(f"creating the pipeline: {created.status_code} {created.text}")
        webhook_url = created.json()["provider"]["webhook_url"]

        def deliver(number: int) -> float:
            body = _push(number)
            signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            started = time.perf_counter()
            answer = sender.post(
                webhook_url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": f"bench-{number}",
                    "X-Hub-Signature-256": signature,
                },
            )
            elapsed = time.perf_counter() - started
            if answer.status_code != 201:
                raise SystemExit(f"delivery {number}: {answer.status_code} {answer.text[:200]}")
            return elapsed

        for number in range(WARM_UP):
            deliver(number)
        progress(f"{args.deliveries} deliveries")
        cpu_before = cpu_seconds(k.server.pid)
        timings = [deliver(WARM_UP + n) for n in range(args.deliveries)]
        cpu = cpu_seconds(k.server.pid) - cpu_before
        emit(
            {
                "benchmark": "source_deliveries",
                "backend": args.backend,
                **database_info(url),
                "deliveries": args.deliveries,
                **summary_ms(timings),
                "deliveries_per_second": round(args.deliveries / sum(timings), 1),
                "server_cpu_ms_per_delivery": round(cpu * 1000 / args.deliveries, 2),
            }
        )


if __name__ == "__main__":
    main()
