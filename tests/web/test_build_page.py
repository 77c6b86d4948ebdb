"""The build page in a real browser, against a live server and real `kiteline agent` processes:
states followed live, unblock with fields, retry, cancel, rebuild, trigger links, annotations,
artifact downloads, another organization's build, and every web_url the REST API hands out."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.agent_protocol import ScriptedAgent
from tests.support.processes import kiteline_env, running, wait_until
from tests.support.web import WebUi

Agent = Callable[[], subprocess.Popen[bytes]]
#: How long a page may wait for what agents do (start, run a job, stop one): their processes
#: start slowly on a loaded machine. A bound on waiting, not a timing assertion.
AGENT_WORK_MS = 90_000


@pytest.fixture
def start_agent(web: WebUi, tmp_path: Path) -> Iterator[Agent]:
    """Starts a real agent of `acme` (default queue) on the test's server when called."""
    started: list[Any] = []

    def start() -> subprocess.Popen[bytes]:
        name = f"agent-{len(started)}"
        args = [
            "agent",
            "start",
            "--endpoint",
            web.url,
            "--token",
            web.identity.agent_token,
            "--name",
            name,
            "--tags",
            "queue=default",
            "--build-path",
            str(tmp_path / name / "builds"),
        ]
        context = running(args, kiteline_env(tmp_path / name), tmp_path / f"{name}.log")
        started.append(context)
        return context.__enter__()

    try:
        yield start
    finally:
        for context in reversed(started):
            context.__exit__(None, None, None)


def create_pipeline(web: WebUi, slug: str, steps: str, **fields: Any) -> None:
    response = web.api().post(
        "/v2/organizations/acme/pipelines",
        json={"name": slug.title(), "slug": slug, "configuration": steps, **fields},
    )
    assert response.status_code == 201, response.text


def create_build(web: WebUi, slug: str, **fields: Any) -> dict[str, Any]:
    response = web.api().post(
        f"/v2/organizations/acme/pipelines/{slug}/builds",
        json={"commit": "HEAD", "branch": "main", "message": "Hello", **fields},
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def run_and_open(
    web: WebUi, page: Any, start_agent: Agent, slug: str, steps: str, **build_fields: Any
) -> dict[str, Any]:
    """A pipeline of `steps`, a build of it that an agent runs, and the build's page open."""
    create_pipeline(web, slug, steps)
    build = create_build(web, slug, **build_fields)
    start_agent()
    page.goto(f"/acme/{slug}/builds/{build['number']}")
    return build


#: One job that runs until canceled.
SLOW = "steps:\n  - label: Slow\n    command: sleep 300\n"


def rest_build(web: WebUi, slug: str, number: int) -> dict[str, Any]:
    response = web.api().get(
        f"/v2/organizations/acme/pipelines/{slug}/builds/{number}",
        params={"include_retried_jobs": "true"},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def header_state(page: Any) -> Any:
    return page.locator("#build-header [data-build-state]")


def test_a_build_is_followed_live_until_it_passes(
    web: WebUi, signed_in_page: Any, start_agent: Agent
) -> None:
    create_pipeline(web, "hello", "steps:\n  - label: Greet\n    command: echo hello\n")
    create_build(web, "hello")
    page = signed_in_page
    page.goto("/acme/hello/builds/1")
    expect(header_state(page)).to_have_text("Scheduled")
    expect(page).to_have_title("Scheduled · Hello #1")
    row = page.locator(".job-row", has_text="Greet")
    expect(row.locator(".state")).to_have_text("Scheduled")
    expect(page.locator("body[data-live-connected]")).to_have_count(1)
    page.evaluate("window.__sameDocument = true")

    start_agent()

    expect(header_state(page)).to_have_text("Passed", timeout=AGENT_WORK_MS)
    expect(row.locator(".state")).to_have_text("Passed")
    expect(row).to_contain_text("exit 0")
    expect(page).to_have_title("Passed · Hello #1")
    expect(page.locator("#favicon")).to_have_attribute(
        "href", re.compile(r"build-favicon-passed\.svg")
    )
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded
    expect(page.get_by_role("button", name="Rebuild")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)


def test_a_job_row_opens_and_asks_for_its_log(
    web: WebUi, signed_in_page: Any, start_agent: Agent
) -> None:
    create_pipeline(web, "hello", "steps:\n  - label: Greet\n    command: echo hello\n")
    build = create_build(web, "hello")
    job_id = build["jobs"][0]["id"]
    page = signed_in_page
    page.goto("/acme/hello/builds/1")
    log_url = f"/acme/hello/builds/1/jobs/{job_id}/log"
    with page.expect_request(lambda request: request.url.endswith(log_url)):
        page.get_by_role("button", name=re.compile("Greet")).click()
    expect(page.locator(f"#job-body-{job_id}")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Greet"))).to_have_attribute(
        "aria-expanded", "true"
    )
    page.locator(f'[id="{job_id}"]').get_by_text("Environment").click()
    expect(page.locator(f'[id="{job_id}"] .job-environment')).to_contain_text(
        f"BUILDKITE_JOB_ID{job_id}"
    )


def test_an_open_row_keeps_its_log_while_its_job_changes_state(
    web: WebUi, signed_in_page: Any, start_agent: Agent, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    page = signed_in_page
    run_and_open(
        web,
        page,
        start_agent,
        "hold",
        f'steps:\n  - label: Hold\n    command: "while [ ! -e {release} ]; do sleep 0.1; done"\n'
        '  - label: Other\n    command: "true"\n',
    )
    row = page.locator(".job-row", has_text="Hold")
    expect(row.locator(".state")).to_have_text("Running", timeout=AGENT_WORK_MS)
    row.get_by_role("button", name=re.compile("Hold")).click()
    # What the log viewer will have put there: it must survive the row being re-rendered.
    row.locator(".job-log").evaluate("log => { log.kept = true; }")
    # And so must an opened environment.
    row.get_by_text("Environment").click()
    expect(row.locator(".job-environment")).to_contain_text("BUILDKITE_JOB_ID")
    page.get_by_role("tab", name="Waterfall").click()
    running_bar = page.locator(".waterfall[data-running] rect.bar-running")
    expect(running_bar).to_have_count(1)
    width = running_bar.get_attribute("width")
    page.wait_for_function(  # the running bar follows the clock between events
        "w => document.querySelector('.waterfall rect.bar-running').getAttribute('width') !== w",
        arg=width,
    )
    page.get_by_role("tab", name="Jobs").click()

    release.touch()

    expect(header_state(page)).to_have_text("Passed", timeout=AGENT_WORK_MS)
    expect(row.locator(".state")).to_have_text("Passed")
    expect(row.locator(".job-toggle")).to_have_attribute("aria-expanded", "true")
    expect(row.locator(".job-body")).to_be_visible()
    assert row.locator(".job-log").evaluate("log => log.kept") is True
    assert page.locator(".job-log").count() == 2
    expect(row.locator(".job-environment")).to_contain_text("BUILDKITE_JOB_ID")
    expect(row.locator("details.job-env")).to_have_attribute("open", "")


def test_unblock_validates_fields_as_the_api_and_the_build_continues(
    web: WebUi, signed_in_page: Any, start_agent: Agent
) -> None:
    create_pipeline(
        web,
        "release",
        """\
steps:
  - block: Release
    prompt: Ship it?
    fields:
      - text: Version
        key: version
        format: "v[0-9]+"
        hint: Like v12
      - select: Region
        key: region
        options:
          - {label: Europe, value: eu}
          - {label: America, value: us}
  - label: Deploy
    command: echo deploying
""",
    )
    create_build(web, "release")
    page = signed_in_page
    page.goto("/acme/release/builds/1")
    expect(header_state(page)).to_have_text("Blocked")
    page.get_by_role("button", name="Unblock").click()
    dialog = page.get_by_role("dialog", name="Ship it?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("Like v12")).to_be_visible()
    dialog.get_by_role("button", name="Continue").click()

    dialog = page.get_by_role("dialog", name="Ship it?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("Version is required")).to_be_visible()
    expect(dialog.get_by_text("Region is required")).to_be_visible()
    dialog.get_by_label("Version").fill("12")
    dialog.get_by_label("Region").select_option("eu")
    dialog.get_by_role("button", name="Continue").click()

    dialog = page.get_by_role("dialog", name="Ship it?")
    expect(dialog.get_by_text("Version must match the format v[0-9]+")).to_be_visible()
    expect(dialog.get_by_label("Region")).to_have_value("eu")  # kept as given
    expect(dialog.get_by_label("Version")).to_have_value("12")
    assert rest_build(web, "release", 1)["meta_data"] == {}
    dialog.get_by_label("Version").fill("v12")
    dialog.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("dialog")).to_have_count(0)
    start_agent()
    expect(header_state(page)).to_have_text("Passed", timeout=AGENT_WORK_MS)
    page.get_by_role("tab", name="Environment & Meta-data").click()
    meta_data = page.locator("[data-meta-data]")
    expect(meta_data).to_contain_text("version")
    expect(meta_data).to_contain_text("v12")
    assert rest_build(web, "release", 1)["meta_data"] == {"version": "v12", "region": "eu"}


def test_a_failed_job_is_retried(
    web: WebUi, signed_in_page: Any, start_agent: Agent, tmp_path: Path
) -> None:
    marker = tmp_path / "failed-once"
    page = signed_in_page
    run_and_open(
        web,
        page,
        start_agent,
        "flaky",
        "steps:\n  - label: Flaky\n    command: "
        f'"if [ -e {marker} ]; then exit 0; else touch {marker}; exit 3; fi"\n',
    )
    expect(header_state(page)).to_have_text("Failed", timeout=AGENT_WORK_MS)
    first = page.locator(".job-row", has_text="Flaky").first
    expect(first).to_contain_text("exit 3")
    first.get_by_role("button", name="Retry").click()

    expect(header_state(page)).to_have_text("Passed", timeout=AGENT_WORK_MS)
    rows = page.locator(".job-row", has_text="Flaky")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("retried")
    expect(rows.nth(1)).to_contain_text("attempt 2")
    expect(rows.nth(1).locator(".state")).to_have_text("Passed")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    jobs = rest_build(web, "flaky", 1)["jobs"]
    assert [(job["retried"], job["state"], job["retry_type"]) for job in jobs] == [
        (True, "failed", None),
        (False, "passed", "manual"),
    ]


def test_a_running_build_is_canceled_and_rebuilt(
    web: WebUi, signed_in_page: Any, start_agent: Agent
) -> None:
    page = signed_in_page
    run_and_open(web, page, start_agent, "slow", SLOW, env={"GREETING": "hi"})
    expect(header_state(page)).to_have_text("Running", timeout=AGENT_WORK_MS)
    expect(page.locator(".job-row", has_text="Slow").locator(".state")).to_have_text("Running")
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(header_state(page)).to_have_text("Canceled", timeout=AGENT_WORK_MS)
    expect(page.locator(".job-row", has_text="Slow").locator(".state")).to_have_text("Canceled")

    page.get_by_role("button", name="Rebuild").click()
    page.wait_for_url(re.compile(r".*/acme/slow/builds/2$"))
    expect(page.get_by_role("link", name="#1")).to_have_attribute("href", "/acme/slow/builds/1")
    rebuilt = rest_build(web, "slow", 2)
    assert rebuilt["env"] == {"GREETING": "hi"}
    assert rebuilt["rebuilt_from"]["number"] == 1


def test_a_running_job_is_canceled_alone(
    web: WebUi, signed_in_page: Any, start_agent: Agent
) -> None:
    page = signed_in_page
    run_and_open(web, page, start_agent, "slow", SLOW)
    row = page.locator(".job-row", has_text="Slow")
    expect(row.locator(".state")).to_have_text("Running", timeout=AGENT_WORK_MS)
    row.get_by_role("button", name="Cancel Job").click()
    expect(row.locator(".state")).to_have_text("Canceled", timeout=AGENT_WORK_MS)
    expect(header_state(page)).to_have_text("Canceled")


def test_a_trigger_step_links_to_its_build_and_back(web: WebUi, signed_in_page: Any) -> None:
    create_pipeline(web, "child", "steps:\n  - command: echo child\n")
    create_pipeline(
        web, "parent", "steps:\n  - trigger: child\n    label: Start child\n    async: true\n"
    )
    parent = create_build(web, "parent")
    trigger_id = parent["jobs"][0]["id"]
    page = signed_in_page
    page.goto("/acme/parent/builds/1")
    page.locator(".job-row", has_text="Start child").get_by_role("link", name="Child #1").click()
    page.wait_for_url(re.compile(r".*/acme/child/builds/1$"))
    expect(page.get_by_text("Trigger step")).to_be_visible()
    page.get_by_role("link", name="Parent #1").click()
    page.wait_for_url(re.compile(rf".*/acme/parent/builds/1#{trigger_id}$"))
    expect(page.locator(f'[id="{trigger_id}"]')).to_have_class(re.compile("targeted"))


def test_annotations_are_styled_and_their_scripts_inert(web: WebUi, signed_in_page: Any) -> None:
    create_pipeline(web, "hello", "steps:\n  - command: echo hi\n")
    create_build(web, "hello")
    api = web.api()
    for body in (
        {"context": "coverage", "style": "success", "body": "**Coverage** 93%"},
        {
            "context": "danger",
            "style": "error",
            "body": "<script>window.__injected = 1</script>\n\n"
            'Tests **failed** <img src=x onerror="window.__injected = 2">',
        },
    ):
        created = api.post("/v2/organizations/acme/pipelines/hello/builds/1/annotations", json=body)
        assert created.status_code == 201, created.text
    page = signed_in_page
    page.goto("/acme/hello/builds/1")
    coverage = page.get_by_role("region", name="Annotation coverage")
    expect(coverage).to_have_class(re.compile(r"\bannotation-success\b"))
    expect(coverage.locator("strong")).to_have_text("Coverage")
    danger = page.get_by_role("region", name="Annotation danger")
    expect(danger).to_have_class(re.compile(r"\bannotation-error\b"))
    expect(danger).to_contain_text("Tests failed")
    assert danger.locator("script").count() == 0
    assert danger.locator("img").get_attribute("onerror") is None
    assert page.evaluate("window.__injected") is None


def test_an_uploaded_artifact_downloads(
    web: WebUi, signed_in_page: Any, start_agent: Agent
) -> None:
    create_pipeline(
        web,
        "report",
        "steps:\n  - label: Report\n    command: echo 'all good' > report.txt\n"
        "    artifact_paths: report.txt\n",
    )
    create_build(web, "report")
    start_agent()
    wait_until(lambda: rest_build(web, "report", 1)["state"] == "passed", what="the build")
    page = signed_in_page
    page.goto("/acme/report/builds/1")
    page.get_by_role("tab", name=re.compile("Artifacts")).click()
    link = page.get_by_role("link", name="report.txt")
    expect(page.get_by_role("row", name=re.compile("report.txt"))).to_contain_text("9 B")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_text() == "all good\n"


def test_another_organizations_build_page_is_a_404(web: WebUi, signed_in_page: Any) -> None:
    other = web.server.identity("globex")
    api = web.server.client(other.api_token)
    api.post(
        "/v2/organizations/globex/pipelines",
        json={"name": "Secret", "configuration": "steps:\n  - command: echo hi\n"},
    ).raise_for_status()
    api.post(
        "/v2/organizations/globex/pipelines/secret/builds",
        json={"commit": "HEAD", "branch": "main"},
    ).raise_for_status()
    response = signed_in_page.goto("/globex/secret/builds/1")
    assert response.status == 404
    expect(signed_in_page.get_by_role("heading", name="Page Not Found")).to_be_visible()
    assert "Secret" not in signed_in_page.content()


def test_every_web_url_of_a_build_and_its_jobs_opens_the_page(
    web: WebUi, signed_in_page: Any
) -> None:
    create_pipeline(
        web,
        "tour",
        """\
steps:
  - group: Checks
    steps:
      - label: Unit
        command: echo unit
        matrix: ["a", "b"]
  - wait
  - block: Approve
  - trigger: tour
    label: Again
    async: true
""",
    )
    build = create_build(web, "tour")
    page = signed_in_page
    page.goto(build["web_url"])
    expect(page.get_by_role("heading", name="Hello")).to_be_visible()
    jobs = rest_build(web, "tour", 1)["jobs"]
    assert [job["type"] for job in jobs] == ["script", "script", "waiter", "manual", "trigger"]
    for job in jobs:
        page.goto(job["web_url"])
        row = page.locator(f'[id="{job["id"]}"]')
        expect(row).to_have_class(re.compile(r"\btargeted\b"))
        expect(row).to_be_in_viewport()
        if job["type"] == "script":
            expect(row.locator(".job-toggle")).to_have_attribute("aria-expanded", "true")
            expect(row.locator(".job-values")).to_have_text(re.compile(r"^[ab]$"))


def test_a_jobs_log_follows_the_tail_with_sections_and_inert_scripts(
    web: WebUi, signed_in_page: Any, start_agent: Agent, tmp_path: Path
) -> None:
    release = tmp_path / "release-log"
    script = tmp_path / "log-job.sh"
    script.write_text(
        'echo "--- Setup"\n'
        'echo "setup details"\n'
        'echo "+++ Run"\n'
        "echo '<script>window.__logInjected = 1</script>'\n"
        'printf "\\033[31mred\\033[0m\\n"\n'
        'echo "waiting for release"\n'
        f"while [ ! -e {release} ]; do sleep 0.1; done\n"
        'echo "released"\n'
    )
    page = signed_in_page
    build = run_and_open(
        web, page, start_agent, "logs", f"steps:\n  - label: Logs\n    command: sh {script}\n"
    )
    job_id = build["jobs"][0]["id"]
    row = page.locator(".job-row", has_text="Logs")
    expect(row.locator(".state")).to_have_text("Running", timeout=AGENT_WORK_MS)
    row.get_by_role("button", name=re.compile("Logs")).click()
    viewer = row.locator(".log-viewer")
    expect(viewer).to_contain_text("waiting for release", timeout=AGENT_WORK_MS)
    expect(row.locator(".state")).to_have_text("Running")  # shown while the job still runs

    expect(viewer.locator(".ansi-fg-1")).to_have_text("red")
    expect(viewer.get_by_text("<script>window.__logInjected = 1</script>")).to_be_visible()
    assert viewer.locator("script").count() == 0
    assert page.evaluate("window.__logInjected") is None

    setup = viewer.locator("details.log-section", has_text="Setup")
    expect(setup.get_by_text("setup details")).to_be_hidden()  # `---`: collapsed
    setup.locator("summary").click()
    expect(setup.get_by_text("setup details")).to_be_visible()
    setup.locator("summary").click()
    expect(setup.get_by_text("setup details")).to_be_hidden()
    expect(viewer.get_by_role("link", name="Download")).to_have_attribute(
        "href", f"/acme/logs/builds/1/jobs/{job_id}/log.txt"
    )

    release.touch()

    expect(viewer).to_contain_text("released", timeout=AGENT_WORK_MS)  # the tail, followed
    expect(header_state(page)).to_have_text("Passed", timeout=AGENT_WORK_MS)
    line = viewer.locator(".log-line", has_text="released")
    expect(line).to_have_id(re.compile(rf"^{job_id}-L\d+$"))
    line.locator(".log-number").click()
    expect(page).to_have_url(re.compile(rf"#{job_id}-L\d+$"))


def test_a_long_log_is_paged_with_a_bounded_page_and_a_line_anchor_opens_it(
    web: WebUi, signed_in_page: Any
) -> None:
    # A queue of its own: the server is shared, and other tests leave jobs scheduled.
    create_pipeline(
        web,
        "long",
        "steps:\n  - label: Long\n    command: make long\n    agents: {queue: paging}\n",
    )
    create_build(web, "long")
    agent = ScriptedAgent.register(web.url, web.identity.agent_token, meta_data=["queue=paging"])
    job = agent.take_job()
    # A `+++` section every 500 lines: windows end inside sections, continued in the next.
    log = "".join(
        (f"+++ Part {n // 500}\n" if n % 500 == 0 else f"line {n:05d} " + "x" * 90 + "\n")
        for n in range(1, 8001)
    ).encode()
    half = len(log) // 2
    assert agent.log(job, 0, 0, log[:half]).status_code < 300
    assert agent.log(job, 1, half, log[half:]).status_code < 300
    agent.finish(job, "0").raise_for_status()
    page = signed_in_page
    page.goto(f"/acme/long/builds/1#{job['id']}-L40")
    expect(page.locator(f'[id="{job["id"]}-L40"]')).to_be_in_viewport()
    viewer = page.locator(".log-viewer")
    earlier = viewer.get_by_role("button", name="Show earlier lines")
    later = viewer.get_by_role("button", name="Show later lines")
    expect(earlier).to_be_hidden()

    def last_line() -> int:
        return int(viewer.locator(".log-line").last.get_attribute("id").rsplit("-L", 1)[1])

    while earlier.is_hidden():
        before = last_line()
        later.click()
        expect(viewer.locator(f'[id="{job["id"]}-L{before + 1}"]')).to_have_count(1)
    assert viewer.locator(".log-line").count() <= 5000
    expect(viewer.locator(f'[id="{job["id"]}-L1"]')).to_have_count(0)
    first = int(viewer.locator(".log-line").first.get_attribute("id").rsplit("-L", 1)[1])
    earlier.click()
    expect(viewer.locator(f'[id="{job["id"]}-L{first - 1}"]')).to_have_count(1)
    shown = [
        int(line_id.rsplit("-L", 1)[1])
        for line_id in viewer.locator(".log-line").evaluate_all("lines => lines.map(l => l.id)")
    ]
    # Every line once, in order, however windows came and went (sections joined across them).
    assert shown == list(range(shown[0], shown[0] + len(shown)))
    assert len(shown) <= 5000
