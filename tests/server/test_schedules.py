"""Pipeline schedules: GraphQL's pipelineSchedule mutations and `pipeline { schedules }` over
HTTP, the `kiteline schedule` commands as real processes, and firing with a controllable clock
(the service's `now`), one build per due time however many workers fire at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gql import Client
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.db import create_engine, create_sessionmaker, transaction
from kiteline.server.schedules import service as schedules
from tests.support.graphql import execute, gql_client
from tests.support.live_server import LiveServer
from tests.support.processes import kiteline_env, run_kiteline
from tests.support.run_async import run_async

PIPELINES = "/v2/organizations/acme/pipelines"
FIELDS = "id uuid label cronline branch commit message env enabled nextBuildAt failedMessage"
CREATE = f"""
mutation Create($input: PipelineScheduleCreateInput!) {{
  pipelineScheduleCreate(input: $input) {{
    pipeline {{ slug }}
    pipelineScheduleEdge {{ node {{ {FIELDS} }} }}
  }}
}}"""
UPDATE = f"""
mutation Update($input: PipelineScheduleUpdateInput!) {{
  pipelineScheduleUpdate(input: $input) {{ pipelineSchedule {{ {FIELDS} }} }}
}}"""
DELETE = """
mutation Delete($input: PipelineScheduleDeleteInput!) {
  pipelineScheduleDelete(input: $input) { deletedPipelineScheduleID pipeline { slug } }
}"""
LIST = f"""
query List($slug: ID!) {{
  pipeline(slug: $slug) {{ schedules(first: 10) {{ count edges {{ node {{ {FIELDS} }} }} }} }}
}}"""
#: Far from any real clock reading: the server's own sweep never finds these due.
FUTURE = datetime(2031, 3, 14, 9, 26, 53, tzinfo=UTC)


class World:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.identity = server.identity("acme")
        self.rest = server.client(self.identity.api_token)
        self.gql: Client = gql_client(server, self.identity.api_token)
        answer = self.rest.post(
            PIPELINES,
            json={
                "name": "nightly",
                "configuration": "steps:\n  - command: echo nightly\n",
                "default_branch": "trunk",
            },
        )
        assert answer.status_code == 201, answer.text
        self.pipeline_id: str = answer.json()["graphql_id"]

    def create(self, **fields: Any) -> dict[str, Any]:
        data = execute(self.gql, CREATE, input={"pipelineID": self.pipeline_id, **fields})
        node: dict[str, Any] = data["pipelineScheduleCreate"]["pipelineScheduleEdge"]["node"]
        return node

    def builds(self) -> list[dict[str, Any]]:
        answer = self.rest.get(f"{PIPELINES}/nightly/builds")
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    def fire_due(self, now: datetime) -> int:
        """What one worker's sweep does at `now`: fire every due schedule."""

        async def sweep(session: AsyncSession) -> int:
            fired = 0
            for schedule_id, due_at in await schedules.due(session, now):
                if await schedules.fire(session, schedule_id, due_at=due_at, now=now):
                    fired += 1
            return fired

        fired: int = self.server.admin(sweep)
        return fired

    def next_build_at(self) -> str:
        data = execute(self.gql, LIST, slug="acme/nightly")
        edges = data["pipeline"]["schedules"]["edges"]
        value: str = edges[0]["node"]["nextBuildAt"]
        return value


@pytest.fixture
def world(make_server: Callable[..., LiveServer]) -> World:
    return World(make_server())


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def test_a_schedule_is_created_with_its_fields_and_next_build_in_its_time_zone(
    world: World,
) -> None:
    before = datetime.now(UTC)
    created = world.create(
        label="Nightly",
        cronline="30 2 * * * Europe/Berlin",
        branch="release",
        message="Nightly build",
        env="FULL=1\nSUITE=slow",
    )
    assert {k: v for k, v in created.items() if k not in ("id", "uuid", "nextBuildAt")} == {
        "label": "Nightly",
        "cronline": "30 2 * * * Europe/Berlin",
        "branch": "release",
        "commit": "HEAD",
        "message": "Nightly build",
        "env": ["FULL=1", "SUITE=slow"],
        "enabled": True,
        "failedMessage": None,
    }
    due = parse(created["nextBuildAt"])
    assert due == schedules.next_after("30 2 * * * Europe/Berlin", before)
    local = due.astimezone(schedules.parse_cronline("@daily Europe/Berlin")[1])
    assert (local.hour, local.minute) == (2, 30)
    listed = execute(world.gql, LIST, slug="acme/nightly")["pipeline"]["schedules"]
    assert listed["count"] == 1
    assert listed["edges"][0]["node"] == created


@pytest.mark.parametrize(
    ("cronline", "says"),
    [
        ("every night", "'every night' is not a cron line"),
        ("61 * * * *", "'61 * * * *' is not a cron line"),
        ("@nightly", "'@nightly' is not one of @yearly"),
        ("0 3 * * * Mars/Olympus", "'Mars/Olympus' is not a time zone"),
        ("", "cronline can't be blank"),
    ],
)
def test_an_invalid_cronline_is_an_error_naming_the_field(
    world: World, cronline: str, says: str
) -> None:
    answer = world.rest.post(
        "/v1",
        json={
            "query": CREATE,
            "variables": {"input": {"pipelineID": world.pipeline_id, "cronline": cronline}},
        },
    )
    body = answer.json()
    assert body["data"] == {"pipelineScheduleCreate": None}
    (error,) = body["errors"]
    assert error["message"].startswith("Validation Failed: cronline")
    assert says in error["message"]
    assert execute(world.gql, LIST, slug="acme/nightly")["pipeline"]["schedules"]["count"] == 0


def test_named_cronlines_are_understood() -> None:
    moment = datetime(2026, 12, 7, 11, 30, tzinfo=UTC)
    assert schedules.next_after("@hourly", moment) == datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert schedules.next_after("@daily", moment) == datetime(2026, 12, 8, tzinfo=UTC)
    assert schedules.next_after("@weekly", moment) == datetime(2026, 12, 13, tzinfo=UTC)
    assert schedules.next_after("@monthly", moment) == datetime(2027, 1, 1, tzinfo=UTC)
    assert schedules.next_after("@daily America/New_York", moment) == datetime(
        2026, 12, 8, 5, tzinfo=UTC
    )


def test_update_changes_the_timetable_and_disabling_clears_the_next_build(world: World) -> None:
    created = world.create(cronline="@daily")
    updated = execute(world.gql, UPDATE, input={"id": created["id"], "cronline": "@hourly"})
    schedule = updated["pipelineScheduleUpdate"]["pipelineSchedule"]
    assert schedule["cronline"] == "@hourly"
    assert parse(schedule["nextBuildAt"]) - datetime.now(UTC) <= timedelta(hours=1)
    off = execute(world.gql, UPDATE, input={"id": created["id"], "enabled": False})
    assert off["pipelineScheduleUpdate"]["pipelineSchedule"]["nextBuildAt"] is None
    refused = world.rest.post(
        "/v1",
        json={"query": UPDATE, "variables": {"input": {"id": created["id"], "cronline": "* *"}}},
    ).json()
    assert refused["errors"][0]["message"].startswith("Validation Failed: cronline")
    assert world.next_build_at() is None  # unchanged by the refused update
    deleted = execute(world.gql, DELETE, input={"id": created["id"]})
    assert deleted["pipelineScheduleDelete"] == {
        "deletedPipelineScheduleID": created["id"],
        "pipeline": {"slug": "nightly"},
    }
    assert execute(world.gql, LIST, slug="acme/nightly")["pipeline"]["schedules"]["count"] == 0


def test_a_due_schedule_makes_one_build_with_source_schedule(world: World) -> None:
    world.create(
        cronline="0 3 * * *", message="Nightly build", env="FULL=1", commit="abc123", label="N"
    )
    due = parse(world.next_build_at())
    assert world.fire_due(due - timedelta(seconds=1)) == 0
    assert world.builds() == []
    assert world.fire_due(due + timedelta(seconds=5)) == 1
    (build,) = world.builds()
    assert build["source"] == "schedule"
    assert (build["branch"], build["commit"], build["message"]) == (
        "trunk",
        "abc123",
        "Nightly build",
    )
    assert build["env"] == {"FULL": "1"}
    assert parse(world.next_build_at()) == due + timedelta(days=1)
    assert world.fire_due(due + timedelta(seconds=6)) == 0  # that due time is taken


def test_downtime_makes_at_most_one_catch_up_build(world: World) -> None:
    world.create(cronline="@hourly")
    due = parse(world.next_build_at())
    back = due + timedelta(days=3, minutes=20)  # 72 due times missed
    assert world.fire_due(back) == 1
    assert world.fire_due(back) == 0
    assert len(world.builds()) == 1
    assert parse(world.next_build_at()) == back.replace(minute=0, second=0, microsecond=0) + (
        timedelta(hours=1)
    )


def test_workers_firing_at_once_make_one_build_per_due_time(world: World) -> None:
    world.create(cronline="@daily")
    due = parse(world.next_build_at())
    ((schedule_id, _),) = world.server.admin(lambda session: schedules.due(session, due))

    async def fire_once(session: AsyncSession) -> bool:
        built = await schedules.fire(session, schedule_id, due_at=due, now=due)
        return built is not None

    async def worker() -> bool:
        """One worker process's own engine and transaction."""
        engine = create_engine(world.server.settings.resolved_database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await fire_once(session)
        finally:
            await engine.dispose()

    async def race() -> list[bool]:
        return list(await asyncio.gather(*(worker() for _ in range(4))))

    assert sorted(run_async(race)) == [False, False, False, True]
    assert len(world.builds()) == 1


def test_a_schedule_whose_build_cannot_be_made_says_why(world: World) -> None:
    world.create(cronline="@daily")
    due = parse(world.next_build_at())
    assert world.rest.post(f"{PIPELINES}/nightly/archive").status_code == 200
    assert world.fire_due(due) == 0
    data = execute(world.gql, LIST, slug="acme/nightly")
    node = data["pipeline"]["schedules"]["edges"][0]["node"]
    assert node["failedMessage"] == "Builds can't be created for an archived pipeline"
    assert parse(node["nextBuildAt"]) == due + timedelta(days=1)


def test_the_schedule_commands_create_list_update_and_delete(world: World, tmp_path: Any) -> None:
    env = kiteline_env(
        tmp_path,
        KITELINE_URL=world.server.url,
        KITELINE_TOKEN=world.identity.api_token,
        KITELINE_ORG="acme",
    )

    def cli(*args: str) -> Any:
        done = run_kiteline("schedule", *args, "--json", env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    created = cli("create", "nightly", "--cronline", "@daily UTC", "--label", "N", "--env", "A=1")[
        "schedule"
    ]
    assert (created["cronline"], created["label"], created["env"]) == ("@daily UTC", "N", ["A=1"])
    listed = cli("list", "nightly")["schedules"]
    assert [s["uuid"] for s in listed] == [created["uuid"]]
    updated = cli("update", created["uuid"], "--disabled")["schedule"]
    assert (updated["enabled"], updated["nextBuildAt"]) == (False, None)
    refused = run_kiteline("schedule", "create", "nightly", "--cronline", "nope", env=env)
    assert refused.returncode == 1
    assert "Validation Failed: cronline" in refused.stderr
    done = run_kiteline("schedule", "delete", created["uuid"], env=env)
    assert done.returncode == 0, done.stderr
    assert cli("list", "nightly") == {"schedules": []}
