"""The in-job commands directory (BUILDKITE_BIN_PATH), put first on every job's PATH."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path


def buildkite_agent_shim(python: str) -> str:
    """`buildkite-agent X` runs `kiteline agent X` with the agent's own interpreter, so a job
    needs no virtualenv on its PATH."""
    return f'#!/bin/sh\nexec {shlex.quote(python)} -m kiteline agent "$@"\n'


SHIM_COMMANDS: dict[str, str] = {"buildkite-agent": buildkite_agent_shim(sys.executable)}


def prepare_shims(directory: Path) -> Path:
    """Create `directory` with every shim in SHIM_COMMANDS, executable; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, script in SHIM_COMMANDS.items():
        # Written aside and renamed, so a job of another agent sharing the directory never
        # runs a half-written shim.
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        with os.fdopen(handle, "w") as file:
            file.write(script)
        os.chmod(temporary, 0o755)
        os.replace(temporary, directory / name)
    return directory
