"""End to end: jobs call `buildkite-agent` (the agent's shim) against a real server: a dynamic
pipeline upload whose steps share meta-data, annotations, artifacts and step outcomes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.stack import ORG, stack

# The first step writes and uploads the rest of the pipeline. These saved steps are interpolated
# when the build is created, as on Buildkite, so dynamic.yml gets ${…} from `$${…}` (then filled
# in by `pipeline upload` from the job's env) and `$$` from `$$$$` (a `$` for the shell).
DYNAMIC = """
steps:
  - label: generate
    key: generate
    command: |
      cat > dynamic.yml <<'YAML'
      steps:
        - label: produce
          key: produce
          artifact_paths: "out/*.txt"
          command: |
            mkdir -p out
            echo "artifact-content-$${BUILDKITE_BUILD_NUMBER}" > out/result.txt
            buildkite-agent meta-data set release-name "kite-$${BUILDKITE_BUILD_NUMBER}"
            echo "**Released** kite-$${BUILDKITE_BUILD_NUMBER}" |
              buildkite-agent annotate --style success --context release
        - wait
        - label: consume
          command: |
            name="$$$$(buildkite-agent meta-data get release-name)"
            echo "meta-data says $$$$name"
            buildkite-agent artifact download "out/*.txt" downloaded
            content="$$$$(cat downloaded/out/result.txt)"
            echo "artifact says $$$$content"
            test "$$$$content" = "artifact-content-1"
            echo "produce outcome: $$$$(buildkite-agent step get outcome --step produce)"
      YAML
      buildkite-agent pipeline upload dynamic.yml
"""

# One upload the agent rejects itself; one only the server can (no step "nope" in the build).
INVALID_UPLOADS = r"""
steps:
  - label: invalid locally
    command: |
      printf 'steps:\n  - key: broken\n    command: make\n' > bad.yml
      printf '    timeout_in_minutes: soon\n' >> bad.yml
      buildkite-agent pipeline upload bad.yml
  - label: refused by the server
    command: |
      printf 'steps:\n  - command: make\n    depends_on: nope\n' > dangling.yml
      buildkite-agent pipeline upload dangling.yml
"""


def test_a_dynamic_pipeline_shares_meta_data_annotations_and_artifacts(
    database_url: str, tmp_path: Path
) -> None:
    with stack(database_url, tmp_path) as s:
        slug = s.pipeline("Dynamic", DYNAMIC)
        s.start_agent("runner")
        s.trigger(slug)
        build = s.finished(slug, 1)
        base = f"/v2/organizations/{ORG}/pipelines/{slug}/builds/1"
        annotations = s.client.get(f"{base}/annotations").json()
        artifacts = s.client.get(f"{base}/artifacts").json()
        meta_data = s.client.get(f"{base}/meta-data").json()
        logs = {job["name"]: s.log(job) for job in build["jobs"] if job["type"] == "script"}

    assert build["state"] == "passed", logs
    assert [(job.get("name"), job["state"]) for job in build["jobs"]] == [
        ("generate", "passed"),
        ("produce", "passed"),
        (None, "passed"),
        ("consume", "passed"),
    ]
    assert [(a["context"], a["style"], a["body_html"]) for a in annotations] == [
        ("release", "success", "<p><strong>Released</strong> kite-1</p>\n")
    ]
    assert [(a["path"], a["state"], a["file_size"], a["sha1sum"]) for a in artifacts] == [
        (
            "out/result.txt",
            "finished",
            len(b"artifact-content-1\n"),
            hashlib.sha1(b"artifact-content-1\n").hexdigest(),
        )
    ]
    assert meta_data == {"release-name": "kite-1"}
    assert "Uploaded the pipeline from dynamic.yml" in logs["generate"]
    assert "~~~ Uploading artifacts" in logs["produce"]
    assert "meta-data says kite-1" in logs["consume"]
    assert "artifact says artifact-content-1" in logs["consume"]
    assert "produce outcome: passed" in logs["consume"]


def test_an_invalid_pipeline_upload_fails_the_uploading_job_with_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    with stack(database_url, tmp_path) as s:
        slug = s.pipeline("Invalid", INVALID_UPLOADS)
        s.start_agent("runner")
        s.trigger(slug)
        build = s.finished(slug, 1)
        logs = {job["name"]: s.log(job) for job in build["jobs"]}

    assert build["state"] == "failed"
    assert [(job["name"], job["state"], job["exit_status"]) for job in build["jobs"]] == [
        ("invalid locally", "failed", 1),
        ("refused by the server", "failed", 1),
    ]
    assert (
        "error: The pipeline in bad.yml is invalid:\n"
        '  Step 1 ("broken"): timeout_in_minutes must be a positive integer\n'
    ) in logs["invalid locally"]
    assert (
        "error: The server refused the pipeline: Validation Failed: configuration: "
        'Step 1: depends_on names "nope", but no step has that key\n'
    ) in logs["refused by the server"]
