"""The agent's configuration: what `kiteline agent start` was told, resolved to plain values."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from kiteline.agent.plugin_source import DEFAULT_PLUGINS_BASE_URL
from kiteline.pairs import split_pair

DEFAULT_NAME = "%hostname-%spawn"
DEFAULT_SHELL = "/bin/bash -e -c"
DEFAULT_PING_WAIT_SECONDS = 10.0
DEFAULT_CANCEL_GRACE_PERIOD_SECONDS = 9.0


@dataclass(frozen=True)
class AgentConfig:
    """Everything one agent process needs; `spawn` workers share it."""

    endpoint: str
    """The Agent API URL including `/v3`, e.g. `http://127.0.0.1:8080/v3`."""
    token: str
    """The registration token; only `POST register` sends it."""
    build_path: Path
    name: str = DEFAULT_NAME
    tags: tuple[str, ...] = ()
    spawn: int = 1
    hooks_path: Path | None = None
    bin_path: Path | None = None
    """Directory of in-job commands put first on PATH; `<build_path>/.bin` when unset."""
    plugins_path: Path | None = None
    """Where plugins are checked out (`<plugins_path>/<agent name>/<plugin id>`);
    `<build_path>/.plugins` when unset."""
    plugins_base_url: str = DEFAULT_PLUGINS_BASE_URL
    """Where scheme-less `github.com/<org>/<repo>` plugin sources are cloned from."""
    plugins_enabled: bool = True
    plugins_always_clone_fresh: bool = False
    local_hooks_enabled: bool = True
    strict_single_hooks: bool = False
    shell: str = DEFAULT_SHELL
    cancel_grace_period: float = DEFAULT_CANCEL_GRACE_PERIOD_SECONDS
    ping_wait: float = DEFAULT_PING_WAIT_SECONDS
    """How long the server may hold a ping open (the `wait` query parameter)."""
    hostname: str = field(default_factory=socket.gethostname)

    @property
    def resolved_bin_path(self) -> Path:
        # Agent directories under build_path are sanitised names (no leading dot), so `.bin`
        # can never collide with one.
        return self.bin_path or self.build_path / ".bin"

    @property
    def resolved_plugins_path(self) -> Path:
        return self.plugins_path or self.build_path / ".plugins"

    @property
    def meta_data(self) -> list[str]:
        """Tags as sent on register: `queue=default` is added when no queue tag is given."""
        tags = list(self.tags)
        if not any(tag.partition("=")[0] == "queue" for tag in tags):
            tags.append("queue=default")
        return tags

    def worker_name(self, index: int) -> str:
        """The name worker `index` (1-based) registers with, as buildkite-agent derives it."""
        name = self.name.replace("%hostname", self.hostname)
        if "%spawn" in name:
            return name.replace("%spawn", str(index))
        if self.spawn > 1:
            return f"{name}-{index}"
        return name


def agent_api_endpoint(base_url: str) -> str:
    """The /v3 endpoint for a server base URL (`http://host:8080` -> `http://host:8080/v3`)."""
    trimmed = base_url.rstrip("/")
    return trimmed if trimmed.endswith("/v3") else f"{trimmed}/v3"


def parse_tags(text: str) -> tuple[str, ...]:
    """Split `queue=default,os=linux` (commas or newlines) into `key=value` tags; a tag
    without `=` or a key is refused as every `KEY=VALUE` option refuses it."""
    tags = tuple(part.strip() for part in text.replace("\n", ",").split(",") if part.strip())
    for tag in tags:
        split_pair(tag)
    return tags
