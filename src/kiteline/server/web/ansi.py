"""Terminal output (ANSI escape codes) to HTML, on the server: text escaped, colours and styles
as CSS classes (no inline styles, which the Content-Security-Policy forbids), a carriage return
or backspace overwriting the line as a terminal would, other control sequences dropped.

Colours are classes `ansi-fg-N` / `ansi-bg-N` for the 256-colour palette (24-bit colours are
mapped to its nearest entry); `palette_css()` writes their rules (static/ansi.css).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from html import escape

from markupsafe import Markup

# CSI (ESC [ … final byte), OSC/APC/DCS/PM/SOS strings (ESC ] _ P ^ X … BEL or ESC \), other
# escapes (ESC, intermediate bytes, a final byte: `ESC ( B`, `ESC =`). Buildkite's agent puts
# `ESC _ bk;t=<ms> BEL` timestamps in logs.
_SEQUENCE = re.compile(
    r"\x1b\[(?P<csi>[0-?]*)[ -/]*(?P<final>[@-~])"
    r"|\x1b[\]_P^X][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
)


@dataclass(frozen=True)
class Style:
    bold: bool = False
    faint: bool = False
    italic: bool = False
    underline: bool = False
    foreground: int | None = None
    background: int | None = None

    def classes(self) -> str:
        names = []
        if self.bold:
            names.append("ansi-bold")
        if self.faint:
            names.append("ansi-faint")
        if self.italic:
            names.append("ansi-italic")
        if self.underline:
            names.append("ansi-underline")
        if self.foreground is not None:
            names.append(f"ansi-fg-{self.foreground}")
        if self.background is not None:
            names.append(f"ansi-bg-{self.background}")
        return " ".join(names)


PLAIN = Style()


def nearest_palette_colour(red: int, green: int, blue: int) -> int:
    """The 256-colour palette entry closest to a 24-bit colour (its 6x6x6 cube or grey ramp)."""

    def level(value: int) -> int:
        return 0 if value < 48 else 1 if value < 115 else (value - 35) // 40

    cube = 16 + 36 * level(red) + 6 * level(green) + level(blue)
    grey = sum((red, green, blue)) // 3
    if abs(red - grey) < 10 and abs(green - grey) < 10 and abs(blue - grey) < 10:
        return 232 + min(23, max(0, (grey - 8) // 10))
    return cube


def _apply_sgr(style: Style, parameters: str) -> Style:
    codes = [int(code) if code.isdigit() else 0 for code in parameters.split(";")]
    index = 0
    while index < len(codes):
        code = codes[index]
        index += 1
        if code == 0:
            style = PLAIN
        elif code == 1:
            style = replace(style, bold=True)
        elif code == 2:
            style = replace(style, faint=True)
        elif code == 3:
            style = replace(style, italic=True)
        elif code == 4:
            style = replace(style, underline=True)
        elif code == 22:
            style = replace(style, bold=False, faint=False)
        elif code == 23:
            style = replace(style, italic=False)
        elif code == 24:
            style = replace(style, underline=False)
        elif 30 <= code <= 37 or 90 <= code <= 97:
            style = replace(style, foreground=code - 30 if code < 90 else code - 82)
        elif 40 <= code <= 47 or 100 <= code <= 107:
            style = replace(style, background=code - 40 if code < 100 else code - 92)
        elif code == 39:
            style = replace(style, foreground=None)
        elif code == 49:
            style = replace(style, background=None)
        elif code in (38, 48) and index < len(codes):
            mode = codes[index]
            colour: int | None = None
            if mode == 5 and index + 1 < len(codes):
                colour = min(codes[index + 1], 255)
                index += 2
            elif mode == 2 and index + 3 < len(codes):
                red, green, blue = (min(c, 255) for c in codes[index + 1 : index + 4])
                colour = nearest_palette_colour(red, green, blue)
                index += 4
            else:
                index += 1
            if colour is not None:
                style = (
                    replace(style, foreground=colour)
                    if code == 38
                    else replace(style, background=colour)
                )
    return style


class _Line:
    """One line's cells, written at a cursor as a terminal would."""

    def __init__(self) -> None:
        self.characters: list[str] = []
        self.styles: list[Style] = []
        self.cursor = 0

    def write(self, text: str, style: Style) -> None:
        for character in text:
            if character == "\r":
                self.cursor = 0
            elif character == "\x08":
                self.cursor = max(0, self.cursor - 1)
            elif self.cursor < len(self.characters):
                self.characters[self.cursor] = character
                self.styles[self.cursor] = style
                self.cursor += 1
            else:
                self.characters.append(character)
                self.styles.append(style)
                self.cursor += 1

    def erase_to_end(self) -> None:
        del self.characters[self.cursor :]
        del self.styles[self.cursor :]

    def html(self) -> str:
        parts: list[str] = []
        start = 0
        for end in range(1, len(self.characters) + 1):
            if end == len(self.characters) or self.styles[end] != self.styles[start]:
                text = escape("".join(self.characters[start:end]), quote=False)
                classes = self.styles[start].classes()
                parts.append(f'<span class="{classes}">{text}</span>' if classes else text)
                start = end
        return "".join(parts)


def ansi_lines_to_html(text: str, style: Style = PLAIN) -> tuple[list[Markup], Style]:
    """Each line of `text` as safe HTML, and the style in force at its end (to carry into the
    next window of a long log). A trailing newline does not make an empty last line."""
    lines: list[Markup] = []
    for raw in text.split("\n") if text else []:
        if "\x1b" not in raw and "\r" not in raw and "\x08" not in raw:
            # Nothing to interpret: the line is its text in the style in force (most lines).
            plain = escape(raw, quote=False)
            classes = style.classes()
            lines.append(
                Markup(f'<span class="{classes}">{plain}</span>' if classes and raw else plain)
            )
            continue
        line = _Line()
        position = 0
        for match in _SEQUENCE.finditer(raw):
            line.write(raw[position : match.start()], style)
            position = match.end()
            final = match.group("final")
            if final == "m":
                style = _apply_sgr(style, match.group("csi") or "0")
            elif final == "K" and (match.group("csi") or "0") in ("", "0"):
                line.erase_to_end()
        line.write(raw[position:], style)
        lines.append(Markup(line.html()))
    if text.endswith("\n"):
        lines.pop()
    return lines, style


def ansi_to_html(text: str) -> Markup:
    """The whole of `text` as safe HTML, lines joined by newlines (for a <pre>)."""
    lines, _ = ansi_lines_to_html(text)
    return Markup("\n").join(lines)


# The 16 base colours follow the page's theme (static/kiteline.css); the rest are fixed.
_CUBE_LEVELS = (0, 95, 135, 175, 215, 255)


def palette_colour(index: int) -> str:
    if index < 232:
        cube = index - 16
        red, green, blue = (
            _CUBE_LEVELS[(cube // 36) % 6],
            _CUBE_LEVELS[(cube // 6) % 6],
            _CUBE_LEVELS[cube % 6],
        )
    else:
        red = green = blue = 8 + 10 * (index - 232)
    return f"#{red:02x}{green:02x}{blue:02x}"


def palette_css() -> str:
    """The rules of static/ansi.css (a test checks the committed file matches)."""
    rules = [
        "/* Generated by kiteline.server.web.ansi.palette_css(): ANSI styles and colours. */",
        ".ansi-bold { font-weight: bold; }",
        ".ansi-faint { opacity: 0.7; }",
        ".ansi-italic { font-style: italic; }",
        ".ansi-underline { text-decoration: underline; }",
    ]
    for index in range(16):
        rules.append(f".ansi-fg-{index} {{ color: var(--ansi-{index}); }}")
        rules.append(f".ansi-bg-{index} {{ background-color: var(--ansi-{index}); }}")
    for index in range(16, 256):
        colour = palette_colour(index)
        rules.append(f".ansi-fg-{index} {{ color: {colour}; }}")
        rules.append(f".ansi-bg-{index} {{ background-color: {colour}; }}")
    return "\n".join(rules) + "\n"


if __name__ == "__main__":
    print(palette_css(), end="")
