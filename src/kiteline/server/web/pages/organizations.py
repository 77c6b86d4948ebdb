"""`/` (to the viewer's organization), `/{org}` (its pipelines, each with the states of its last
builds) and `/organizations/{org}/pipelines/new` ("New Pipeline", through REST's create)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response

from kiteline.server.builds import repository as build_repository
from kiteline.server.events import outbox
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import ValidationFailed
from kiteline.server.pipelines import service as pipelines
from kiteline.server.web.auth import page_transaction
from kiteline.server.web.forms import read_form
from kiteline.server.web.pages.pipeline_view import field_errors
from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render

router = page_router()

PIPELINES_PER_PAGE = 100
#: How many of each pipeline's builds the list shows, as Buildkite's row of state bars.
RECENT_BUILDS = 10
NEW_PIPELINE = "/organizations/{org}/pipelines/new"
NEW_PIPELINE_FIELDS = ("name", "repository", "configuration", "description")
DEFAULT_STEPS = 'steps:\n  - label: ":pipeline: Hello"\n    command: echo "Hello, world!"\n'


def ago(moment: datetime, now: datetime) -> str:
    """A time as "3 minutes ago" (the page shows the exact one on hover)."""
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


@dataclass(frozen=True)
class RecentBuildView:
    """One of a pipeline's last builds: a state bar, or the latest build's summary."""

    number: int
    state: str
    path: str
    title: str
    branch: str
    moment: datetime
    moment_label: str
    moment_ago: str

    @property
    def tooltip(self) -> str:
        state = self.state.replace("_", " ")
        return f"#{self.number} {state} {self.title}".rstrip()


def recent_view(build: build_repository.RecentBuild, base: str, now: datetime) -> RecentBuildView:
    message = (build.message or "").strip()
    if build.finished_at is not None:
        moment, label = build.finished_at, "Finished"
    elif build.started_at is not None:
        moment, label = build.started_at, "Started"
    else:
        moment, label = build.created_at, "Created"
    return RecentBuildView(
        number=build.number,
        # A passed build that stopped at a block step shows as Buildkite shows it: blocked.
        state="blocked" if build.blocked and build.state == "passed" else build.state,
        path=f"{base}/builds/{build.number}",
        title=message.splitlines()[0] if message else "",
        branch=build.branch,
        moment=moment,
        moment_label=label,
        moment_ago=ago(moment, now),
    )


@router.get("/")
async def home(request: Request) -> Response:
    async with page_transaction(request) as (_session, viewer):
        if not viewer.organizations:
            return render(request, "no_organization.html", viewer=viewer)
        return RedirectResponse(f"/{viewer.organizations[0].slug}", status_code=303)


@router.get("/{org:org}")
async def pipelines_page(
    request: Request, org: str, name_filter: str = Query("", alias="filter")
) -> Response:
    """The organization's pipelines (the viewer's: 404 for another's), each with its last
    builds read in one statement for all; its `pipelines` block is refreshed live."""
    async with page_transaction(request) as (session, viewer):
        organization = viewer.organization(org)
        # Read before the rows: an event committed in between is replayed to the page.
        position = await outbox.latest_id(session)
        listed, total = await pipelines.list_for_organization(
            session,
            organization_id=organization.id,
            offset=0,
            limit=PIPELINES_PER_PAGE,
            name=name_filter.strip() or None,
        )
        ids = [p.id for p in listed]
        counts = await build_repository.counts_for_pipelines(session, ids)
        recent = await build_repository.recent_for_pipelines(
            session, ids, per_pipeline=RECENT_BUILDS
        )
        now = utcnow()
        last_builds = {
            p.id: [
                recent_view(b, f"/{organization.slug}/{p.slug}", now) for b in recent.get(p.id, [])
            ]
            for p in listed
        }
        return render(
            request,
            "pipelines/index.html",
            viewer=viewer,
            organization=organization,
            pipelines=listed,
            total=total,
            counts=counts,
            no_counts=build_repository.PipelineCounts(),
            last_builds=last_builds,
            name_filter=name_filter,
            live_position=position,
        )


@dataclass
class NewPipelineForm:
    """The "New Pipeline" form's values (as typed, when refused) and the API's errors."""

    name: str = ""
    repository: str = ""
    configuration: str = DEFAULT_STEPS
    description: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


async def _render_new(request: Request, org: str, form: NewPipelineForm, status: int) -> Response:
    async with page_transaction(request, read_only=True) as (_session, viewer):
        organization = viewer.organization(org)
        return render(
            request,
            "pipelines/new.html",
            viewer=viewer,
            organization=organization,
            form=form,
            status=status,
        )


@router.get(NEW_PIPELINE)
async def new_pipeline_page(request: Request, org: str) -> Response:
    return await _render_new(request, org, NewPipelineForm(), 200)


@router.post(NEW_PIPELINE)
async def create_pipeline(request: Request, org: str) -> Response:
    """ "Create Pipeline": as REST's create (the viewer its creator); opens the new pipeline.
    The API's errors are shown beside their fields, with what was typed (422)."""
    submitted = await request.form()
    form = read_form(submitted, NewPipelineForm)
    try:
        async with page_transaction(request) as (session, viewer):
            organization = viewer.organization(org)
            pipeline = await pipelines.create(
                session,
                organization_id=organization.id,
                name=form.name,
                configuration=form.configuration,
                created_by_id=viewer.user.id,
                repository=form.repository.strip(),
                description=form.description.strip() or None,
            )
            path = f"/{organization.slug}/{pipeline.slug}"
    except ValidationFailed as error:
        form.errors, form.error = field_errors(error.errors, NEW_PIPELINE_FIELDS)
        return await _render_new(request, org, form, 422)
    return RedirectResponse(path, status_code=303)
