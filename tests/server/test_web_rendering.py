"""What the web UI puts on a page from text users wrote: terminal output and annotation Markdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiteline.server.web import ansi
from kiteline.server.web.ansi import ansi_lines_to_html, ansi_to_html, nearest_palette_colour
from kiteline.server.web.markup import markdown_to_safe_html


def test_plain_text_is_escaped() -> None:
    assert ansi_to_html("<script>alert('x')</script> & more") == (
        "&lt;script&gt;alert('x')&lt;/script&gt; &amp; more"
    )


def test_colours_and_styles_become_classes() -> None:
    assert ansi_to_html("\x1b[1;31mfailed\x1b[0m ok") == (
        '<span class="ansi-bold ansi-fg-1">failed</span> ok'
    )
    assert ansi_to_html("\x1b[92mbright\x1b[39m \x1b[44mblue bg") == (
        '<span class="ansi-fg-10">bright</span> <span class="ansi-bg-4">blue bg</span>'
    )


def test_256_and_24_bit_colours_use_the_palette() -> None:
    assert ansi_to_html("\x1b[38;5;208mx") == '<span class="ansi-fg-208">x</span>'
    assert ansi_to_html("\x1b[48;2;255;0;0mx") == '<span class="ansi-bg-196">x</span>'
    assert nearest_palette_colour(128, 128, 128) == 244


def test_a_style_carries_across_lines_until_reset() -> None:
    lines, style = ansi_lines_to_html("\x1b[32mone\ntwo\x1b[0m\nthree\n")
    assert lines == [
        '<span class="ansi-fg-2">one</span>',
        '<span class="ansi-fg-2">two</span>',
        "three",
    ]
    assert style == ansi.PLAIN


def test_the_style_at_the_end_carries_into_the_next_window() -> None:
    _, style = ansi_lines_to_html("\x1b[33mstill yellow")
    lines, _ = ansi_lines_to_html("next window", style)
    assert lines == ['<span class="ansi-fg-3">next window</span>']


def test_a_carriage_return_overwrites_the_line_as_a_terminal_does() -> None:
    assert ansi_to_html("progress 10%\rprogress 100%") == "progress 100%"
    assert ansi_to_html("abcdef\rXY") == "XYcdef"
    assert ansi_to_html("windows line\r\nnext") == "windows line\nnext"
    assert ansi_to_html("abc\x1b[K\rX\x1b[K") == "X"


def test_other_escape_sequences_are_dropped() -> None:
    text = "\x1b_bk;t=1700000000000\x07\x1b]0;title\x07\x1b[2J\x1b[1Aline\x1b(B"
    assert ansi_to_html(text) == "line"


def test_the_committed_palette_css_is_the_generated_one() -> None:
    committed = Path(ansi.__file__).parent / "static" / "ansi.css"
    regenerate = "python -m kiteline.server.web.ansi > src/kiteline/server/web/static/ansi.css"
    assert committed.read_text() == ansi.palette_css(), f"regenerate it: {regenerate}"


def test_markdown_is_rendered() -> None:
    html = markdown_to_safe_html("**Tests** passed\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<strong>Tests</strong>" in html
    assert "<td>1</td>" in html


@pytest.mark.parametrize(
    "body",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        '<div style="background:url(javascript:alert(1))">x</div>',
        "<iframe src=https://evil.example></iframe>",
        '<form action="https://evil.example"><input name=x></form>',
        "<svg onload=alert(1)>",
    ],
)
def test_markdown_loses_everything_that_could_run(body: str) -> None:
    html = str(markdown_to_safe_html(body)).lower()
    for dangerous in (
        "<script",
        "onerror",
        "onload",
        '="javascript:',
        "<iframe",
        "<form",
        "style=",
    ):
        assert dangerous not in html


def test_markdown_keeps_buildkite_annotation_classes_and_safe_links() -> None:
    html = markdown_to_safe_html('<span class="term">x</span> [docs](https://example.com)')
    assert '<span class="term">x</span>' in html
    assert 'href="https://example.com"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
