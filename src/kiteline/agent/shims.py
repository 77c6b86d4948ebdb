"""The in-job commands directory (BUILDKITE_BIN_PATH), put first on every job's PATH."""

from __future__ import annotations

from pathlib import Path

# Commands a job can call (a `buildkite-agent` shim speaking the in-job API) are written here
# by prepare_shims; none exist yet, so the directory only reserves the place on PATH.
SHIM_COMMANDS: dict[str, str] = {}


def prepare_shims(directory: Path) -> Path:
    """Create `directory` with every shim in SHIM_COMMANDS, executable; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, script in SHIM_COMMANDS.items():
        path = directory / name
        path.write_text(script)
        path.chmod(0o755)
    return directory
