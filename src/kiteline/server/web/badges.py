"""Build status badges: a build state as the word a badge shows, and that word drawn as an SVG
in the flat look of Buildkite's (and shields.io's) badges. Pure: no I/O."""

from __future__ import annotations

from markupsafe import escape

#: What a badge says for the state of the newest build; no build at all is "unknown".
STATUS_OF_STATE = {
    "passed": "passing",
    "failed": "failing",
    "failing": "failing",
    "running": "running",
    "canceling": "canceling",
    "scheduled": "scheduled",
    "creating": "scheduled",
    "blocked": "blocked",
    "canceled": "canceled",
    "skipped": "skipped",
    "not_run": "not run",
}
UNKNOWN = "unknown"
LABEL = "build"


#: Colours of the status half (shields.io's): green passing, red failing, yellow under way,
#: purple blocked, grey for the rest.
COLORS = {
    "passing": "#44cc11",
    "failing": "#e05d44",
    "running": "#dfb317",
    "scheduled": "#dfb317",
    "canceling": "#dfb317",
    "blocked": "#8250df",
}
OTHER_COLOR = "#9f9f9f"
LABEL_COLOR = "#555555"


def status_of(state: str | None) -> str:
    return STATUS_OF_STATE.get(state or "", UNKNOWN)


# Advance widths of Verdana at 11px, the badges' font, to size each half to its word (the
# words a badge shows are known: lowercase letters and a space).
_WIDTHS = {
    **dict.fromkeys("abdghnopqu", 6.98),
    **dict.fromkeys("ckvxy", 6.2),
    **dict.fromkeys("ijl", 3.0),
    "e": 6.5,
    "f": 3.9,
    "m": 10.7,
    "r": 4.7,
    "s": 5.7,
    "t": 4.3,
    "w": 9.0,
    "z": 5.7,
    " ": 3.9,
}
_PADDING = 10


def text_width(text: str) -> int:
    return round(sum(_WIDTHS.get(character, 7.0) for character in text))


def badge_svg(status: str, *, square: bool = False) -> str:
    """The badge `build | <status>`: a grey label and a coloured status, 20 pixels high, the
    text with a faint shadow; `square` without rounded corners or gradient (`?style=square`)."""
    label_width = text_width(LABEL) + _PADDING
    status_width = text_width(status) + _PADDING
    width = label_width + status_width
    title = escape(f"{LABEL}: {status}")
    label_x = label_width / 2
    status_x = label_width + status_width / 2
    radius = 0 if square else 3
    gradient = (
        ""
        if square
        else '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
    )
    shine = "" if square else f'<rect width="{width}" height="20" fill="url(#s)"/>'
    words = "".join(
        f'<text x="{x:g}" y="15" fill="#010101" fill-opacity=".3">{escape(word)}</text>'
        f'<text x="{x:g}" y="14">{escape(word)}</text>'
        for x, word in ((label_x, LABEL), (status_x, status))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{title}"><title>{title}</title>{gradient}'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="{radius}" fill="#fff"/>'
        f'</clipPath><g clip-path="url(#r)">'
        f'<rect width="{label_width}" height="20" fill="{LABEL_COLOR}"/>'
        f'<rect x="{label_width}" width="{status_width}" height="20" '
        f'fill="{COLORS.get(status, OTHER_COLOR)}"/>{shine}</g>'
        f'<g fill="#fff" text-anchor="middle" '
        f'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">{words}</g></svg>'
    )
