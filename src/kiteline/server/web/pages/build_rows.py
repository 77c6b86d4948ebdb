"""The build page's job rows as HTML, each rendered once per process for what it shows; and
the waterfall's lanes, written here rather than by a template (500 of them, a few numbers each).

A build of 500 jobs is mostly rows that no longer change: rendering each through its Jinja
macro on every request (and every live refresh) was most of the page's time. A row is keyed
by everything its HTML is made of (`JobRow.cache_key`: the job's revision, bumped by every
change of its row, and what the page adds to it), so a cached row is only reused while equal.
Rows carry no per-session data (their buttons post the page's one `job-actions` form), so one
rendering serves every viewer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from kiteline.server.organizations.service import Organization
from kiteline.server.web.pages.build_view import JobRow, Row, Waterfall
from kiteline.server.web.templating import environment

MAX_BYTES = 16 * 1024 * 1024


class RowCache:
    """Rendered rows, least recently used out first, bounded in bytes."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._rows: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> str | None:
        html = self._rows.get(key)
        if html is None:
            self.misses += 1
        else:
            self.hits += 1
            self._rows.move_to_end(key)
        return html

    def put(self, key: tuple[Any, ...], html: str) -> None:
        old = self._rows.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._rows[key] = html
        self._bytes += len(html)
        while self._bytes > self.max_bytes and self._rows:
            _, evicted = self._rows.popitem(last=False)
            self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._rows)


ROWS = RowCache()


def render_rows(
    rows: Sequence[Row], *, base: str, organization: Organization, cache: RowCache = ROWS
) -> Markup:
    """The rows of the jobs list (`<li>`s), from the cache where a row is unchanged."""
    macros = environment.get_template("build/macros.html").module
    parts = []
    for row in rows:
        if not isinstance(row, JobRow):
            parts.append(str(macros.heading_row(row)))  # type: ignore[attr-defined]
            continue
        key = row.cache_key(base, organization.slug)
        html = cache.get(key)
        if html is None:
            html = str(macros.job_row(row, base, organization))  # type: ignore[attr-defined]
            cache.put(key, html)
        parts.append(html)
    return Markup("".join(parts))


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def render_lanes(chart: Waterfall) -> Markup:
    """One `<li>` per bar: a link to the job's row and an SVG with its waiting bar (runnable →
    started) and running bar (started → finished); `data-from`/`data-to` are seconds on the
    axis (empty: now), which build.js re-scales while the build runs."""
    parts = []
    for bar in chart.bars:
        label = escape(bar.label)
        waiting_end = bar.started if bar.started is not None else bar.finished
        start = chart.position(bar.runnable)
        end = chart.position(waiting_end if waiting_end is not None else chart.span)
        running = ""
        if bar.started is not None:
            began = chart.position(bar.started)
            ended = chart.position(bar.finished if bar.finished is not None else chart.span)
            done = " done" if bar.finished is not None else ""
            running = (
                f'<rect class="bar bar-running state-{escape(bar.state)}{done}" y="0" '
                f'height="10" x="{began:g}" width="{ended - began:.2f}" '
                f'data-from="{_seconds(bar.started)}" data-to="{_seconds(bar.finished)}"></rect>'
            )
        parts.append(
            f'<li class="lane"><a class="lane-label" href="#{bar.job_id}">{label}</a>'
            '<svg class="lane-track" viewBox="0 0 1000 10" preserveAspectRatio="none" '
            f'role="img" aria-label="{label}: {escape(bar.state.replace("_", " "))}">'
            f'<rect class="bar bar-waiting" y="3" height="4" x="{start:g}" '
            f'width="{end - start:.2f}" data-from="{_seconds(bar.runnable)}" '
            f'data-to="{_seconds(waiting_end)}"></rect>{running}</svg></li>'
        )
    return Markup("".join(parts))
