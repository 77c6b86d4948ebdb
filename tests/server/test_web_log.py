"""The job log viewer's fragments over HTTP: a window of lines with their colours, sections,
times and anchors, everything the log holds escaped; long logs paged by windows both ways; the
tail held back until its line ends; the raw log downloaded."""

from __future__ import annotations

import re
from typing import Any

from tests.support.agent_protocol import ScriptedAgent
from tests.support.web import Site

HX = {"HX-Request": "true"}


def running_job(site: Site) -> tuple[ScriptedAgent, dict[str, Any], str]:
    agent, job = site.running_job("app", "steps:\n  - label: Test\n    command: make test\n")
    return agent, job, f"/acme/app/builds/1/jobs/{job['id']}"


def window_attributes(html: str) -> dict[str, str]:
    found = re.search(r'<div class="log-window"([^>]*)>', html)
    assert found is not None, html
    return dict(re.findall(r'(data-[\w-]+)(?:="([^"]*)")?', found.group(1)))


def line_ids(html: str, job_id: str) -> list[int]:
    return [int(n) for n in re.findall(rf'class="log-line" id="{job_id}-L(\d+)"', html)]


def t(seconds: int) -> str:
    return f"\x1b_bk;t={1_700_000_000_000 + seconds * 1000}\x07"


def test_a_window_shows_colours_sections_times_and_escapes_everything(site: Site) -> None:
    agent, job, path = running_job(site)
    log = (
        f"{t(0)}--- :one: Setup\n"
        f"{t(1)}setup line\n"
        f"{t(65)}+++ \x1b[1mRun\x1b[0m tests\n"
        f"{t(66)}\x1b[31m<script>alert(1)</script>\x1b[0m\n"
        "~~~ Quiet\n"
        "done\n"
        "partial"
    ).encode()
    assert agent.log(job, 0, 0, log).status_code < 300

    fragment = site.client.get(path + "/log", headers=HX)
    assert fragment.status_code == 200
    html = fragment.text
    assert html.startswith('<div class="log-viewer"')
    assert "<script>" not in html
    assert '<span class="ansi-fg-1">&lt;script&gt;alert(1)&lt;/script&gt;</span>' in html
    sections = re.findall(
        r'<details class="log-section log-section-(\w+)"( open)?>\s*<summary>.*?'
        r'<span class="log-text">([^<]*)</span></span>(?:<span class="log-duration">([^<]*))?',
        html,
    )
    assert sections == [
        ("collapsed", "", ":one: Setup", "1m 5s"),
        ("expanded", " open", "Run tests", "1s"),  # to its last line: Quiet has no time
        ("quiet", "", "Quiet", ""),
    ]
    assert line_ids(html, job["id"]) == [1, 2, 3, 4, 5, 6]
    assert f'id="{job["id"]}-L1"' in html and f'href="#{job["id"]}-L1"' in html
    assert '<time class="log-time" datetime="2023-11-14T22:13:21.000Z">22:13:21</time>' in html
    assert "partial" not in html  # the line has not ended yet
    attributes = window_attributes(html)
    assert attributes["data-to"] == str(len(log) - len("partial"))
    assert attributes["data-next-line"] == "7"
    assert "data-complete" not in attributes
    assert "data-following" in html
    assert f'href="{path}/log.txt" download' in html

    assert agent.finish(job, "0").status_code < 300
    tail = site.client.get(path + "/log", params={"after": attributes["data-to"], "line": 7})
    assert tail.text.startswith('<div class="log-window"')
    assert line_ids(tail.text, job["id"]) == [7]
    assert '<span class="log-text">partial</span>' in tail.text
    assert "data-complete" in window_attributes(tail.text)


def test_a_long_log_is_paged_by_windows_and_downloads_whole(site: Site) -> None:
    agent, job, path = running_job(site)
    lines = [f"line {n:05d} " + "x" * 90 + "\n" for n in range(1, 3001)]
    log = "".join(lines).encode()
    third = len(log) // 3
    for sequence, start in enumerate((0, third, 2 * third)):
        end = len(log) if sequence == 2 else start + third
        assert agent.log(job, sequence, start, log[start:end]).status_code < 300
    assert agent.finish(job, "0").status_code < 300

    first = site.client.get(path + "/log", headers=HX).text
    attributes = window_attributes(first)
    assert attributes["data-from"] == "0" and attributes["data-size"] == str(len(log))
    shown = line_ids(first, job["id"])
    assert shown == list(range(1, int(attributes["data-next-line"])))
    assert 100 < len(shown) < 3000
    assert int(attributes["data-to"]) == len("".join(lines[: len(shown)]))
    assert "line 03000" not in first

    windows = [attributes]
    seen = list(shown)
    while int(windows[-1]["data-to"]) < len(log):
        html = site.client.get(
            path + "/log",
            params={"after": windows[-1]["data-to"], "line": windows[-1]["data-next-line"]},
        ).text
        windows.append(window_attributes(html))
        ids = line_ids(html, job["id"])
        assert ids[0] == seen[-1] + 1
        assert f"line {ids[0]:05d} " in html
        seen += ids
    assert seen == list(range(1, 3001))

    second = windows[1]
    back = site.client.get(
        path + "/log", params={"before": second["data-from"], "line": second["data-line"]}
    ).text
    assert line_ids(back, job["id"]) == shown

    download = site.client.get(path + "/log.txt")
    assert download.status_code == 200
    assert download.content == log
    assert download.headers["content-disposition"] == f'attachment; filename="{job["id"]}.log"'


def test_a_log_window_refuses_what_is_not_an_offset_and_unknown_jobs(site: Site) -> None:
    _, job, path = running_job(site)
    refused = site.client.get(path + "/log", params={"after": "-5"})
    assert refused.status_code == 400
    assert "after must be a non-negative integer" in refused.text
    other = path.replace(job["id"], "00000000-0000-0000-0000-000000000000")
    assert site.client.get(other + "/log").status_code == 404
    assert site.client.get(other + "/log.txt").status_code == 404


def test_a_job_without_output_yet_has_an_empty_window_that_follows(site: Site) -> None:
    _, job, path = running_job(site)
    html = site.client.get(path + "/log", headers=HX).text
    assert window_attributes(html) == {
        "data-from": "0",
        "data-to": "0",
        "data-size": "0",
        "data-line": "1",
        "data-next-line": "1",
    }
    assert "data-following" in html
    assert line_ids(html, job["id"]) == []
