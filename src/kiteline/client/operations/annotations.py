"""A build's annotations: list, create (or append to) by context, delete."""

# No `from __future__ import annotations` here: it would clash with the `annotations` call.

from kiteline.client._effects import Op, Stream, write, write_model
from kiteline.client._pages import paginate
from kiteline.client.config import ClientConfig
from kiteline.client.models import Annotation
from kiteline.client.operations.builds import build_url


def annotations(
    config: ClientConfig,
    pipeline: str,
    number: int,
    *,
    org: str | None = None,
    scope: str | None = None,
) -> Stream[Annotation]:
    """The build's annotations; `scope` is `build` (the default), `job` or `all`."""
    url = build_url(config, org, pipeline, number, "annotations")
    yield from paginate(config, url, Annotation, {"scope": scope})


def annotate(
    config: ClientConfig,
    pipeline: str,
    number: int,
    body: str,
    *,
    style: str | None = None,
    context: str | None = None,
    priority: int | None = None,
    append: bool = False,
    org: str | None = None,
) -> Op[Annotation]:
    """Annotate the build with Markdown `body`; one annotation per `context`, which this
    replaces, or extends with `append=True`."""
    given = {"body": body, "style": style, "context": context, "priority": priority}
    fields = {key: value for key, value in given.items() if value is not None}
    url = build_url(config, org, pipeline, number, "annotations")
    return (yield from write_model(config, "POST", url, Annotation, {**fields, "append": append}))


def delete_annotation(
    config: ClientConfig, pipeline: str, number: int, annotation: str, *, org: str | None = None
) -> Op[None]:
    """Remove an annotation, named by its id (Kiteline also takes its context)."""
    yield from write(
        config, "DELETE", build_url(config, org, pipeline, number, "annotations", annotation)
    )
