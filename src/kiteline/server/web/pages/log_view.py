"""A window of a job's log as the log viewer shows it: lines numbered and rendered from their
ANSI codes, grouped under Buildkite's section headers (`--- ` closed, `+++ ` open, `~~~ `
closed and de-emphasized, `^^^ +++` opening the section it ends), each line's time from the
`ESC _ bk;t=<ms> BEL` marker the agent may write, and each section's duration from them.

A long log is never rendered whole: a window is at most `WINDOW_BYTES` of it, cut at line ends,
and the viewer asks for the next or previous window by byte offset (carrying the line number).
Pure: the route reads the bytes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from markupsafe import Markup, escape

from kiteline.server.web.ansi import PLAIN, ansi_lines_to_html
from kiteline.server.web.pages.formatting import duration_text

#: Bytes of log per window: a few thousand lines of usual output, rendered in milliseconds.
WINDOW_BYTES = 64 * 1024

_TIME = re.compile(r"\x1b_bk;t=(\d+)\x07")
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[\]_P^X][^\x07\x1b]*(?:\x07|\x1b\\)?")
_HEADER = re.compile(r"^(---|\+\+\+|~~~) (.*)$")
_EXPAND_PREVIOUS = "^^^ +++"

SectionKind = Literal["---", "+++", "~~~"]
_SECTION_CLASSES = {"---": "collapsed", "+++": "expanded", "~~~": "quiet"}


@dataclass(frozen=True)
class LogLine:
    number: int
    html: Markup
    time: datetime | None

    @property
    def clock(self) -> str:
        return self.time.strftime("%H:%M:%S") if self.time else ""


@dataclass
class Section:
    """A header and the lines under it; `header` None: lines before any header in the window
    (at its start, the rest of a section the previous window began)."""

    kind: SectionKind | None
    header: LogLine | None
    title: Markup
    lines: list[LogLine] = field(default_factory=list)
    open: bool = False
    duration: str = ""

    @property
    def css_class(self) -> str:
        return _SECTION_CLASSES[self.kind] if self.kind else ""


@dataclass(frozen=True)
class LogWindow:
    """Bytes `start..end` of a log of `size` bytes so far, its first line numbered
    `first_line`; `complete`: the job has finished, nothing more will come."""

    start: int
    end: int
    size: int
    first_line: int
    next_line: int
    complete: bool
    sections: list[Section]

    @property
    def more_before(self) -> bool:
        return self.start > 0

    @property
    def more_after(self) -> bool:
        return self.end < self.size

    @property
    def empty(self) -> bool:
        return self.start == self.end


def forward_bounds(data: bytes, *, start: int, size: int, complete: bool) -> int:
    """Where a window read from `start` (`data`: up to WINDOW_BYTES of the log from there)
    ends: after its last whole line, or at the log's end once the job has finished. A single
    line longer than a window is cut."""
    end = start + len(data)
    if end >= size and complete:
        return end
    last = data.rfind(b"\n")
    if last < 0:
        return end if len(data) >= WINDOW_BYTES else start
    return start + last + 1


def backward_start(data: bytes, *, start: int) -> int:
    """Where a window read backwards (`data` starts at `start`) begins: at its first whole
    line (the log's start is one)."""
    if start == 0:
        return 0
    first = data.find(b"\n")
    return start + first + 1 if 0 <= first < len(data) - 1 else start


def line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _time(raw: str) -> datetime | None:
    found = _TIME.search(raw)
    if found is None:
        return None
    try:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _visible(raw: str) -> str:
    """A line's text without escape sequences, as a terminal would end up showing it (near
    enough to recognise a section header)."""
    text = _ESCAPES.sub("", raw).rstrip("\r")
    return text.rsplit("\r", 1)[-1]


def render_window(
    data: bytes, *, start: int, size: int, first_line: int, complete: bool
) -> LogWindow:
    """The window of `data` (whole lines of the log from byte `start`)."""
    text = data.decode("utf-8", errors="replace")
    raws = text.split("\n") if text else []
    if text.endswith("\n"):
        raws.pop()
    htmls, _ = ansi_lines_to_html(text, PLAIN)
    sections: list[Section] = [Section(None, None, Markup(""))]
    number = first_line
    for raw, html in zip(raws, htmls, strict=True):
        line = LogLine(number, html, _time(raw))
        number += 1
        visible = _visible(raw)
        if visible.startswith(_EXPAND_PREVIOUS):
            sections[-1].open = sections[-1].kind is not None
            continue
        header = _HEADER.match(visible)
        if header is not None:
            kind: SectionKind = header.group(1)  # type: ignore[assignment]
            sections.append(Section(kind, line, escape(header.group(2)), open=kind == "+++"))
            continue
        sections[-1].lines.append(line)
    if not sections[0].lines:
        sections.pop(0)
    end = start + len(data)
    at_end = complete and end >= size
    if at_end and not any(section.open for section in sections if section.kind):
        # As Buildkite: when no section is expanded, the last `---` one opens.
        for section in reversed(sections):
            if section.kind == "---":
                section.open = True
                break
    _durations(sections)
    return LogWindow(start, end, size, first_line, number, complete, sections)


def _durations(sections: list[Section]) -> None:
    """A section lasts from its header's time to the next header's (or its last line's)."""
    for index, section in enumerate(sections):
        if section.header is None or section.header.time is None:
            continue
        following = next(
            (later.header.time for later in sections[index + 1 :] if later.header is not None),
            None,
        )
        if following is None:
            following = next(
                (line.time for line in reversed(section.lines) if line.time is not None), None
            )
        if following is not None:
            section.duration = duration_text((following - section.header.time).total_seconds())
