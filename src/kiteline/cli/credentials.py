"""Where the API commands find their server, token and organization: the flags, else
`KITELINE_URL`/`KITELINE_TOKEN`/`KITELINE_ORG`, else the `credentials.json` that `kiteline up`
keeps in the data directory, else the file `kiteline login` writes, else api.buildkite.com
with `BUILDKITE_API_TOKEN`.

A token always travels with the URL it came with: a stored token is never sent to a server
named somewhere else (only the flags may pair them as they like).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The file `kiteline up` writes in its data directory on first start.
CREDENTIALS_FILE = "credentials.json"
DEFAULT_DATA_DIR = ".kiteline"
#: Where `kiteline up` serves unless told otherwise (and where older credentials point).
DEFAULT_LOCAL_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Found:
    """What a command connects with, and where each part came from (for `-v`)."""

    url: str | None
    """A Kiteline server's root; None lets the SDK choose (api.buildkite.com)."""
    token: str | None
    org: str | None
    source: str


@dataclass(frozen=True)
class _Stored:
    url: str
    token: str
    org: str | None
    path: Path


def data_dir(env: Mapping[str, str]) -> Path:
    """The data directory the CLI reads: `--data-dir` (exported as KITELINE_DATA_DIR), else
    `./.kiteline`, as every other command."""
    return Path(env.get("KITELINE_DATA_DIR") or DEFAULT_DATA_DIR)


def login_file(env: Mapping[str, str]) -> Path:
    """`kiteline login`'s file: `$KITELINE_CONFIG`, else under `$XDG_CONFIG_HOME` (or
    `~/.config`)."""
    if env.get("KITELINE_CONFIG"):
        return Path(env["KITELINE_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kiteline" / "login.json"


def resolve(
    url: str | None, token: str | None, org: str | None, env: Mapping[str, str] | None = None
) -> Found:
    """The server, token and organization for one command (see the module's docstring)."""
    env = os.environ if env is None else env
    if url:
        stored = _stored_for(url, env)
        chosen_token = token or env.get("KITELINE_TOKEN") or (stored.token if stored else None)
        chosen_org = org or env.get("KITELINE_ORG") or (stored.org if stored else None)
        return Found(url, chosen_token, chosen_org, "--url")
    if env.get("KITELINE_URL"):
        # The SDK reads KITELINE_URL, KITELINE_TOKEN and KITELINE_ORG itself.
        return Found(None, token, org, "KITELINE_URL, KITELINE_TOKEN and KITELINE_ORG")
    stored = next(iter(_stored(env)), None)
    if stored is not None:
        chosen_org = org or env.get("KITELINE_ORG") or stored.org
        return Found(stored.url, token or stored.token, chosen_org, str(stored.path))
    return Found(None, token, org, "BUILDKITE_API_TOKEN (api.buildkite.com)")


def _stored(env: Mapping[str, str]) -> list[_Stored]:
    """The stored credentials, in the order they are tried."""
    found = []
    credentials = _read(data_dir(env) / CREDENTIALS_FILE)
    if credentials is not None and credentials.get("api_token"):
        found.append(
            _Stored(
                url=str(credentials.get("url") or DEFAULT_LOCAL_URL),
                token=str(credentials["api_token"]),
                org=_text(credentials.get("organization")),
                path=data_dir(env) / CREDENTIALS_FILE,
            )
        )
    login = _read(login_file(env))
    if login is not None and login.get("url") and login.get("token"):
        found.append(
            _Stored(
                url=str(login["url"]),
                token=str(login["token"]),
                org=_text(login.get("org")),
                path=login_file(env),
            )
        )
    return found


def _stored_for(url: str, env: Mapping[str, str]) -> _Stored | None:
    """Stored credentials for exactly this server, if any."""
    return next((s for s in _stored(env) if s.url.rstrip("/") == url.rstrip("/")), None)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _text(value: object) -> str | None:
    return str(value) if value else None


def write_login(path: Path, *, url: str, token: str, org: str | None) -> None:
    """Write `kiteline login`'s file, readable by its owner only from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({"url": url, "token": token, "org": org}, file, indent=2)
        file.write("\n")
    path.chmod(0o600)
