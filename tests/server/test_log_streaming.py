"""A job's log over REST: streamed text with byte ranges, and the JSON and HTML forms."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import pytest

from tests.support.agent_protocol import ScriptedAgent, running_job
from tests.support.live_server import LiveServer

BUILD = "/v2/organizations/acme/pipelines/p/builds/1"
MIB = 1024 * 1024
# Sent out of order: the log is "hello, " + "wide " + "world\n".
CHUNKS = [(2, 7, b"wide "), (1, 0, b"hello, "), (3, 12, b"world\n")]
LOG = b"hello, wide world\n"


@dataclass
class RunningJob:
    client: httpx.Client
    agent: ScriptedAgent
    job: dict

    @property
    def url(self) -> str:
        return f"{BUILD}/jobs/{self.job['id']}/log"

    def send(self, chunks: list[tuple[int, int, bytes]]) -> None:
        for sequence, offset, data in chunks:
            assert self.agent.log(self.job, sequence, offset, data).status_code == 201

    def finish(self) -> None:
        assert self.agent.finish(self.job, "0").status_code == 200

    def text(self, **headers: str) -> httpx.Response:
        return self.client.get(f"{self.url}.txt", headers=headers)


def _running_job(server: LiveServer) -> RunningJob:
    return RunningJob(*running_job(server, "steps:\n  - command: echo hi\n"))


def _finished_job(server: LiveServer, chunks: list[tuple[int, int, bytes]]) -> RunningJob:
    job = _running_job(server)
    job.send(chunks)
    job.finish()
    return job


def _as_json_response(content: bytes, url: str) -> bytes:
    """The body the log's JSON form has always had: a JSONResponse of the decoded log."""
    body = {
        "url": url,
        "content": content.decode("utf-8", "replace"),
        "size": len(content),
        "header_times": [],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def test_the_whole_text_log_is_sent_with_its_length(server: LiveServer) -> None:
    job = _finished_job(server, CHUNKS)
    response = job.text()
    assert response.status_code == 200
    assert response.content == LOG
    assert response.headers["content-length"] == str(len(LOG))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    by_accept = job.client.get(job.url, headers={"Accept": "text/plain"})
    assert (by_accept.status_code, by_accept.content) == (200, LOG)


@pytest.mark.parametrize(
    ("wanted", "content", "sent"),
    [
        pytest.param("bytes=5-13", b", wide wo", "5-13", id="across-chunks"),
        pytest.param("bytes=12-1000", b"world\n", "12-17", id="past-the-end-is-cut"),
        pytest.param("bytes=7-", b"wide world\n", "7-17", id="open-ended-to-the-end"),
        pytest.param("bytes=-8", b"e world\n", "10-17", id="suffix-the-last-bytes"),
        pytest.param("bytes=-1000", LOG, "0-17", id="suffix-longer-than-the-log"),
    ],
)
def test_a_satisfiable_byte_range_is_sent_alone(
    server: LiveServer, wanted: str, content: bytes, sent: str
) -> None:
    job = _finished_job(server, CHUNKS)
    response = job.text(Range=wanted)
    assert response.status_code == 206
    assert response.content == content
    assert response.headers["content-range"] == f"bytes {sent}/{len(LOG)}"
    assert response.headers["content-length"] == str(len(content))
    assert response.headers["accept-ranges"] == "bytes"


def test_a_range_starting_past_the_end_is_not_satisfiable(server: LiveServer) -> None:
    job = _finished_job(server, CHUNKS)
    for wanted in (f"bytes={len(LOG)}-", f"bytes={len(LOG) + 5}-{len(LOG) + 9}", "bytes=-0"):
        response = job.text(Range=wanted)
        assert response.status_code == 416, wanted
        assert response.headers["content-range"] == f"bytes */{len(LOG)}"
        assert response.json() == {
            "message": f"Range not satisfiable: the log has {len(LOG)} bytes"
        }


def test_several_ranges_or_a_malformed_one_get_the_whole_log(server: LiveServer) -> None:
    job = _finished_job(server, CHUNKS)
    for wanted in ("bytes=0-1,4-5", "bytes=5-2", "bytes=-", "lines=1-2", "bytes=a-b", "5-9"):
        response = job.text(Range=wanted)
        assert (response.status_code, response.content) == (200, LOG), wanted
        assert "content-range" not in response.headers


def test_a_conditional_range_gets_the_whole_log(server: LiveServer) -> None:
    job = _finished_job(server, CHUNKS)
    response = job.text(Range="bytes=0-4", **{"If-Range": '"some-etag"'})
    assert (response.status_code, response.content) == (200, LOG)


def test_a_running_jobs_log_stops_at_the_first_missing_chunk(server: LiveServer) -> None:
    job = _running_job(server)
    job.send([(1, 0, b"one\n"), (3, 8, b"three\n")])  # sequence 2 has not come yet
    response = job.text()
    assert (response.status_code, response.content) == (200, b"one\n")
    assert response.headers["content-length"] == "4"
    assert job.text(Range="bytes=4-").status_code == 416
    assert job.client.get(job.url).json()["content"] == "one\n"
    job.send([(2, 4, b"two\n")])
    assert job.text().content == b"one\ntwo\nthree\n"
    assert job.text(Range="bytes=4-").content == b"two\nthree\n"


def test_a_finished_jobs_log_keeps_what_came_past_a_gap(server: LiveServer) -> None:
    job = _running_job(server)
    job.send([(1, 0, b"one\n"), (3, 8, b"three\n")])
    job.finish()
    response = job.text()
    assert (response.status_code, response.content) == (200, b"one\nthree\n")
    assert response.headers["content-length"] == "10"
    assert job.text(Range="bytes=-6").content == b"three\n"


def test_a_chunk_over_earlier_text_overwrites_it(server: LiveServer) -> None:
    job = _finished_job(server, [(1, 0, b"abcdef"), (2, 6, b"ghij"), (3, 4, b"XYZ")])
    # Chunks are placed in offset order, so the third comes down before the second.
    assert job.text().content == b"abcdXYghij"
    assert job.text(Range="bytes=5-7").content == b"Ygh"
    assert job.client.get(job.url).json()["content"] == "abcdXYghij"


def test_a_log_of_many_chunks_is_sent_whole_and_by_range(server: LiveServer) -> None:
    lines = b"".join(b"line %08d of the build output\n" % n for n in range(200_000))
    chunks = [
        (n + 1, offset, lines[offset : offset + MIB])
        for n, offset in enumerate(range(0, len(lines), MIB))
    ]
    assert len(chunks) > 5  # more than one batch of reads
    job = _finished_job(server, chunks)
    assert job.text().content == lines
    start, end = 3 * MIB - 10, 5 * MIB + 10
    ranged = job.text(Range=f"bytes={start}-{end}")
    assert ranged.status_code == 206
    assert ranged.content == lines[start : end + 1]
    assert job.text(Range="bytes=-100").content == lines[-100:]
    assert job.client.get(job.url).content == _as_json_response(lines, f"{server.url}{job.url}")


def test_the_json_form_is_unchanged(server: LiveServer) -> None:
    # A character split between chunks, bytes that are not UTF-8, and text JSON must escape.
    euro = "€".encode()
    content = b'say "hi"\\\t\x1b[31m' + euro[:1] + euro[1:] + b"\xff\x00\n\xf0\x9f\x98\x80 done"
    cut = content.index(euro) + 1
    job = _finished_job(server, [(1, 0, content[:cut]), (2, cut, content[cut:])])
    response = job.client.get(job.url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == _as_json_response(content, f"{server.url}{job.url}")
    assert job.client.get(f"{job.url}.json").content == response.content


def test_the_html_form_drops_escapes_even_split_between_chunks(server: LiveServer) -> None:
    content = b"\x1b[31mred\x1b[0m <b>&\x1b_bk;t=1\x07 plain \x1b[1"
    rest = b"mbold\x1b[0m\n"
    job = _finished_job(server, [(1, 0, content), (2, len(content), rest)])
    response = job.client.get(job.url, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == '<pre class="term-container">red &lt;b&gt;&amp; plain bold\n</pre>'


def test_refusals_are_json_errors_even_with_a_range(server: LiveServer) -> None:
    job = _finished_job(server, CHUNKS)
    limited = server.client(server.identity("acme", scopes=["read_builds"]).api_token)
    refused = limited.get(f"{job.url}.txt", headers={"Range": "bytes=0-4"})
    assert refused.status_code == 403
    assert refused.json() == {"message": "Your access token doesn't have the read_build_logs scope"}
    missing = job.client.get(f"{BUILD}/jobs/{job.agent.id}/log.txt", headers={"Range": "bytes=0-4"})
    assert (missing.status_code, missing.json()) == (404, {"message": "No job found"})
    assert job.client.get(f"{job.url}.xml").json() == {"message": "No log format found"}
