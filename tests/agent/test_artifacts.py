"""`buildkite-agent artifact upload|download|shasum`: globbing, the register → transfer → settle
conversation, unauthenticated transfers, and checksums on the way back."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from tests.agent.conftest import InJob, write


def test_upload_registers_each_matching_file_with_its_checksums(
    in_job: InJob, tmp_path: Path
) -> None:
    write(tmp_path / "report.txt", b"report\n")
    write(tmp_path / "logs" / "a.log", b"a")
    write(tmp_path / "logs" / "deep" / "b.log", b"bb")
    write(tmp_path / "logs" / "skip.txt", b"not matched")

    result = in_job.run("artifact", "upload", "*.txt;logs/**/*.log")

    assert result.exit_code == 0, result.output
    [create] = in_job.api.calls("create_artifacts")
    assert create.raw_path == f"/v3/jobs/{in_job.job.id}/artifacts"
    body = create.json()
    assert uuid.UUID(body["id"])
    assert body["upload_destination"] == ""
    created_at = body["artifacts"][0]["created_at"]
    assert body["artifacts"] == [
        {
            "id": "",
            "path": path,
            "absolute_path": str(tmp_path / path),
            "glob_path": glob_path,
            "file_size": len(content),
            "sha1sum": hashlib.sha1(content).hexdigest(),
            "sha256sum": hashlib.sha256(content).hexdigest(),
            "md5sum": hashlib.md5(content).hexdigest(),
            "job_id": in_job.job.id,
            "created_at": created_at,
        }
        for path, glob_path, content in [
            ("logs/a.log", "logs/**/*.log", b"a"),
            ("logs/deep/b.log", "logs/**/*.log", b"bb"),
            ("report.txt", "*.txt", b"report\n"),
        ]
    ]
    assert created_at.endswith("Z")


def test_upload_sends_a_multipart_form_to_the_swapped_path_without_authorization(
    in_job: InJob, tmp_path: Path
) -> None:
    write(tmp_path / "out" / "result.txt", b"payload")

    assert in_job.run("artifact", "upload", "out/result.txt").exit_code == 0

    [artifact] = in_job.api.artifacts.values()
    [upload] = in_job.api.calls("store_upload")
    assert upload.raw_path == f"/store/uploads/{artifact.id}"
    assert upload.query == {"token": f"upload-{artifact.id}"}
    assert "authorization" not in upload.headers
    assert upload.form() == [
        ("key", None, b"uploads/out/result.txt"),
        ("acl", None, b"private"),
        ("artifact", "out/result.txt", b"payload"),
    ]
    assert artifact.content == b"payload"


def test_upload_reports_every_artifact_finished(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "a.txt", b"a")
    write(tmp_path / "b.txt", b"b")

    assert in_job.run("artifact", "upload", "*.txt").exit_code == 0

    [update] = in_job.api.calls("update_artifacts")
    assert (update.method, update.raw_path) == ("PUT", f"/v3/jobs/{in_job.job.id}/artifacts")
    assert update.json() == {
        "artifacts": [
            {"id": artifact.id, "state": "finished"} for artifact in in_job.api.artifacts.values()
        ]
    }
    assert [artifact.state for artifact in in_job.api.artifacts.values()] == ["finished"] * 2


def test_upload_registers_at_most_30_artifacts_per_batch(in_job: InJob, tmp_path: Path) -> None:
    for index in range(31):
        write(tmp_path / "many" / f"{index:02}.txt", b"x")

    assert in_job.run("artifact", "upload", "many/*").exit_code == 0

    batches = [call.json() for call in in_job.api.calls("create_artifacts")]
    assert [len(batch["artifacts"]) for batch in batches] == [30, 1]
    assert batches[0]["id"] != batches[1]["id"]
    assert len(in_job.api.calls("store_upload")) == 31
    assert [len(call.json()["artifacts"]) for call in in_job.api.calls("update_artifacts")] == [
        30,
        1,
    ]


def test_upload_falls_back_to_the_shared_upload_instructions(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "one.txt", b"1")
    in_job.api.shared_upload_instructions = True

    assert in_job.run("artifact", "upload", "one.txt").exit_code == 0

    [upload] = in_job.api.calls("store_upload")
    assert upload.raw_path == "/store/uploads/shared"
    assert [artifact.content for artifact in in_job.api.artifacts.values()] == [b"1"]


def test_a_refused_transfer_is_reported_as_error_and_fails_the_command(
    in_job: InJob, tmp_path: Path
) -> None:
    write(tmp_path / "a.txt", b"a")
    in_job.api.fail_next("store_upload", 403)

    result = in_job.run("artifact", "upload", "a.txt")

    assert result.exit_code == 1
    [artifact] = in_job.api.artifacts.values()
    assert in_job.api.calls("update_artifacts")[0].json() == {
        "artifacts": [{"id": artifact.id, "state": "error"}]
    }
    assert "error: 1 of 1 artifacts could not be uploaded: a.txt" in result.stderr


def test_a_transfer_is_retried_after_a_server_error(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "a.txt", b"a")
    in_job.api.fail_next("store_upload", 503)

    assert in_job.run("artifact", "upload", "a.txt").exit_code == 0

    assert len(in_job.api.calls("store_upload")) == 2
    assert [artifact.content for artifact in in_job.api.artifacts.values()] == [b"a"]


def test_upload_skips_directories_and_fails_when_nothing_matches(
    in_job: InJob, tmp_path: Path
) -> None:
    (tmp_path / "only-a-dir").mkdir()

    result = in_job.run("artifact", "upload", "only-a-dir;missing/*.txt")

    assert result.exit_code == 1
    assert result.stderr == f"error: No files matched 'only-a-dir;missing/*.txt' in {tmp_path}\n"
    assert in_job.api.calls("create_artifacts") == []


def test_upload_destinations_are_refused(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "a.txt", b"a")

    result = in_job.run("artifact", "upload", "a.txt", "s3://bucket/path")

    assert result.exit_code == 1
    assert "Uploading artifacts to s3://bucket/path is not supported" in result.stderr
    assert in_job.api.calls("create_artifacts") == []


def test_download_searches_the_build_and_writes_each_artifact_under_its_path(
    in_job: InJob, tmp_path: Path
) -> None:
    in_job.api.add_artifact(in_job.build_id, "out/a.txt", b"alpha")
    in_job.api.add_artifact(in_job.build_id, "out/sub/b.txt", b"beta")
    in_job.api.add_artifact(in_job.build_id, "other/c.txt", b"not matched")

    result = in_job.run("artifact", "download", "out/*", "fetched")

    assert result.exit_code == 0, result.output
    [search] = in_job.api.calls("search_artifacts")
    assert search.raw_path == f"/v3/builds/{in_job.build_id}/artifacts/search"
    assert search.query == {"query": "out/*", "state": "finished"}
    assert search.authorization == f"Token {in_job.job.token}"
    assert (tmp_path / "fetched" / "out" / "a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "fetched" / "out" / "sub" / "b.txt").read_bytes() == b"beta"
    assert not (tmp_path / "fetched" / "other").exists()
    downloads = in_job.api.calls("store_download")
    assert len(downloads) == 2
    assert all("authorization" not in download.headers for download in downloads)


def test_download_scoped_to_a_step_of_another_build(in_job: InJob, tmp_path: Path) -> None:
    other_build = str(uuid.uuid4())
    in_job.api.add_artifact(other_build, "dist/app.tgz", b"app", step="package")

    result = in_job.run(
        "artifact", "download", "dist/*", ".", "--step", "package", "--build", other_build
    )

    assert result.exit_code == 0, result.output
    [search] = in_job.api.calls("search_artifacts")
    assert search.raw_path == f"/v3/builds/{other_build}/artifacts/search"
    assert search.query == {"query": "dist/*", "state": "finished", "scope": "package"}
    assert (tmp_path / "dist" / "app.tgz").read_bytes() == b"app"


def test_a_corrupted_download_fails_and_leaves_no_file(in_job: InJob, tmp_path: Path) -> None:
    in_job.api.add_artifact(in_job.build_id, "out/a.txt", b"tampered", sha256sum="0" * 64)

    result = in_job.run("artifact", "download", "out/a.txt", "fetched")

    assert result.exit_code == 1
    assert (
        f"the downloaded bytes have sha256 {hashlib.sha256(b'tampered').hexdigest()}, "
        f"expected {'0' * 64}"
    ) in result.stderr
    assert list((tmp_path / "fetched" / "out").iterdir()) == []


def test_download_refuses_paths_that_leave_the_destination(in_job: InJob, tmp_path: Path) -> None:
    in_job.api.add_artifact(in_job.build_id, "../escape.txt", b"x")

    result = in_job.run("artifact", "download", "*", "fetched")

    assert result.exit_code == 1
    assert "would land outside fetched" in result.stderr
    assert not (tmp_path / "escape.txt").exists()
    assert in_job.api.calls("store_download") == []


def test_download_of_odd_paths_fails_them_clearly_and_fetches_the_rest(
    in_job: InJob, tmp_path: Path
) -> None:
    """Artifacts stored before the server refused such paths: a NUL, a newline, a drive."""
    for odd in ("out/a\u0000b", "out/line\nbreak", "C:/out/win.txt"):
        in_job.api.add_artifact(in_job.build_id, odd, b"x")
    in_job.api.add_artifact(in_job.build_id, "out/good.txt", b"good")

    result = in_job.run("artifact", "download", "*", "fetched")

    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    for odd in ("out/a\u0000b", "out/line\nbreak", "C:/out/win.txt"):
        assert f"its path {odd!r} can't be a file name here" in result.stderr
    assert "3 of 4 artifacts could not be downloaded" in result.stderr
    assert [p.name for p in (tmp_path / "fetched" / "out").iterdir()] == ["good.txt"]


def test_download_with_no_match_fails(in_job: InJob) -> None:
    result = in_job.run("artifact", "download", "nothing/*", ".")

    assert result.exit_code == 1
    assert result.stderr == "error: No artifacts match 'nothing/*'\n"


def test_shasum_prints_the_sha1_or_sha256_of_the_one_match(in_job: InJob) -> None:
    in_job.api.add_artifact(in_job.build_id, "out/a.txt", b"alpha")

    sha1 = in_job.run("artifact", "shasum", "out/a.txt")
    sha256 = in_job.run("artifact", "shasum", "out/a.txt", "--sha256")

    assert (sha1.exit_code, sha1.stdout) == (0, hashlib.sha1(b"alpha").hexdigest() + "\n")
    assert (sha256.exit_code, sha256.stdout) == (0, hashlib.sha256(b"alpha").hexdigest() + "\n")


def test_shasum_of_several_matches_fails(in_job: InJob) -> None:
    in_job.api.add_artifact(in_job.build_id, "out/a.txt", b"a")
    in_job.api.add_artifact(in_job.build_id, "out/b.txt", b"b")

    result = in_job.run("artifact", "shasum", "out/*")

    assert result.exit_code == 1
    assert result.stderr == "error: 2 artifacts match 'out/*': be more specific, or use --step\n"
