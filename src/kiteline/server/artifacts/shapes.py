"""The Artifact JSON of REST."""

from __future__ import annotations

import posixpath
from typing import Any

from kiteline.server.artifacts.models import Artifact
from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.urls import Urls


def artifact_json(
    urls: Urls, org: str, pipeline: str, number: int, artifact: Artifact
) -> dict[str, Any]:
    url = f"{urls.build(org, pipeline, number)}/jobs/{artifact.job_id}/artifacts/{artifact.id}"
    return {
        "id": str(artifact.id),
        "graphql_id": graphql_id("Artifact", artifact.id),
        "job_id": str(artifact.job_id),
        "url": url,
        "download_url": f"{url}/download",
        "state": artifact.state,
        "path": artifact.path,
        "dirname": posixpath.dirname(artifact.path) or ".",
        "filename": posixpath.basename(artifact.path),
        "mime_type": artifact.mime_type,
        "file_size": artifact.file_size,
        "sha1sum": artifact.sha1sum,
        "glob_path": None,
        "original_path": None,
    }
