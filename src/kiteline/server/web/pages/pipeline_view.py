"""What the pipeline page shows of each build, from the build's REST JSON (the same rendering,
and cache, the REST build list uses), and the forms of the pipeline's pages. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from kiteline.server.builds.query import STATE_FILTERS
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.web.pages.formatting import SOURCES, commit_url, duration_text

#: The state filter's choices, in the order a reader looks for them.
STATE_CHOICES = (
    "running",
    "scheduled",
    "blocked",
    "failing",
    "failed",
    "passed",
    "canceling",
    "canceled",
    "finished",
    "skipped",
    "not_run",
    "creating",
)
assert set(STATE_CHOICES) == STATE_FILTERS, "every state the REST list filters by is offered"


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _name(person: Any) -> str:
    if not isinstance(person, Mapping):
        return ""
    return str(person.get("name") or person.get("email") or person.get("username") or "")


@dataclass(frozen=True)
class BuildRow:
    """One build in the pipeline's list."""

    number: int
    state: str
    blocked: bool
    path: str
    title: str
    branch: str
    commit: str
    short_commit: str
    commit_url: str | None
    author: str
    creator: str
    source: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    #: How long it ran, or has been running when the page was rendered.
    duration: str


def build_row(body: Mapping[str, Any], *, repository: str, now: datetime) -> BuildRow:
    """A build's row from its REST JSON (`web_url` gives its page)."""
    message = str(body.get("message") or "")
    commit = str(body.get("commit") or "")
    started, finished = _time(body.get("started_at")), _time(body.get("finished_at"))
    sha = commit_url(repository, commit) is not None or len(commit) == 40
    return BuildRow(
        number=int(body["number"]),
        state=str(body["state"]),
        blocked=bool(body.get("blocked")),
        path=urlsplit(str(body["web_url"])).path,
        title=message.strip().splitlines()[0] if message.strip() else "",
        branch=str(body.get("branch") or ""),
        commit=commit,
        short_commit=commit[:7] if sha else commit,
        commit_url=commit_url(repository, commit),
        author=_name(body.get("author")),
        creator=_name(body.get("creator")),
        source=SOURCES.get(str(body.get("source") or ""), str(body.get("source") or "")),
        created_at=_time(body.get("created_at")),
        started_at=started,
        finished_at=finished,
        duration=duration_text(((finished or now) - started).total_seconds()) if started else "",
    )


@dataclass(frozen=True)
class Listing:
    """The list's filters and page, and the links that keep them."""

    base: str
    branch: str
    state: str
    page: int
    per_page: int
    has_next: bool

    def url(self, page: int | None = None) -> str:
        params = [("branch", self.branch), ("state", self.state)]
        number = self.page if page is None else page
        if number > 1:
            params.append(("page", str(number)))
        if self.per_page != DEFAULT_PER_PAGE:
            params.append(("per_page", str(self.per_page)))
        query = urlencode([(key, value) for key, value in params if value])
        return f"{self.base}?{query}" if query else self.base

    @property
    def filtered(self) -> bool:
        return bool(self.branch or self.state)

    @property
    def newer(self) -> str | None:
        return self.url(self.page - 1) if self.page > 1 else None

    @property
    def older(self) -> str | None:
        return self.url(self.page + 1) if self.has_next else None


DEFAULT_PER_PAGE = 30


@dataclass
class NewBuildForm:
    """The "New Build" dialog's values and what was wrong with them (per field; `message` for
    a refusal that names no field)."""

    message: str = ""
    commit: str = "HEAD"
    branch: str = ""
    env: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.error)


def env_lines(text: str) -> list[str]:
    """The "Environment Variables" box: one KEY=VALUE a line, blank lines ignored."""
    return [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


@dataclass
class SettingsForm:
    """The settings form's values (as typed, when refused) and the API's errors per field."""

    name: str
    description: str
    repository: str
    default_branch: str
    configuration: str
    errors: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of(cls, pipeline: Pipeline) -> SettingsForm:
        return cls(
            name=pipeline.name,
            description=pipeline.description or "",
            repository=pipeline.repository,
            default_branch=pipeline.default_branch,
            configuration=pipeline.configuration,
        )

    def changes(self) -> dict[str, Any]:
        """The PATCH these values make (REST's `pipelines.service.update` takes it)."""
        return {
            "name": self.name,
            "description": self.description.strip() or None,
            "repository": self.repository.strip(),
            "default_branch": self.default_branch.strip(),
            "configuration": self.configuration,
        }


#: The settings form's fields, each error of the API shown beside its own.
SETTINGS_FIELDS = ("name", "description", "repository", "default_branch", "configuration")


def field_errors(
    errors: list[dict[str, str]], known: tuple[str, ...]
) -> tuple[dict[str, list[str]], str | None]:
    """A ValidationFailed's `{field, code}` list as messages per known field, and the rest as
    one message."""
    by_field: dict[str, list[str]] = {}
    other: list[str] = []
    for item in errors:
        name, code = item.get("field", ""), item.get("code", "")
        if name in known:
            by_field.setdefault(name, []).append(code)
        else:
            other.append(f"{name}: {code}" if name else code)
    return by_field, "; ".join(other) or None
