"""Input piped to an in-job command (`echo body | buildkite-agent annotate`)."""

from __future__ import annotations

import io
import os
import stat
import sys


def piped_stdin() -> str | None:
    """stdin's text when something was piped or redirected into it, else None.

    A terminal, `/dev/null` (jobs run with it), or a pipe that carried nothing but whitespace
    count as no input, so commands fall back to their defaults instead of waiting or failing.
    """
    stream = sys.stdin
    if stream is None or stream.closed:
        return None
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, io.UnsupportedOperation):
        mode = None  # an in-memory stream (a test runner's): its content is the input
    if mode is not None and not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        return None
    text = stream.read()
    return text if text.strip() else None
