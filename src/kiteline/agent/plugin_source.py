"""Plugin sources as buildkite-agent reads them: `BUILDKITE_PLUGINS` to plugins, with their
names, checkout directory ids and git repositories.

Sources are first expanded as Buildkite's pipeline parser expands them (`docker-compose#v5`
-> `github.com/buildkite-plugins/docker-compose-buildkite-plugin#v5`, `org/thing` ->
`github.com/org/thing-buildkite-plugin`), since Kiteline passes `plugins:` on as written; then
read as buildkite-agent reads them, Go's URL parsing included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from kiteline.agent.plugin_config import JsonNumber, JsonValue, load_json

DEFAULT_PLUGINS_BASE_URL = "https://github.com"
"""Where scheme-less `github.com/<org>/<repo>` sources (the shorthand ones too) are cloned from."""

_NON_ID_CHARACTERS = re.compile(r"[^a-zA-Z0-9]")
_CONSECUTIVE_HYPHENS = re.compile(r"-+")
_WHITESPACE_RUNS = re.compile(r"[\t\n\f\r ]+")
_SCHEME_CHARACTERS = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*")


class PluginSourceError(ValueError):
    """BUILDKITE_PLUGINS, or one source in it, is not something buildkite-agent can run."""


@dataclass(frozen=True)
class _Url:
    scheme: str = ""
    opaque: str = ""
    user: str = ""
    host: str = ""
    path: str = ""
    fragment: str = ""


def _parse_url(raw: str) -> _Url:
    """Go's `url.Parse`, for the parts plugin sources use. Raises PluginSourceError as it
    returns an error (an empty scheme, a colon in a relative path's first segment)."""
    rest, _, fragment = raw.partition("#")
    scheme = ""
    match = _SCHEME_CHARACTERS.match(rest)
    if rest.startswith(":"):
        raise PluginSourceError(f'parse "{raw}": missing protocol scheme')
    if match and rest[match.end() : match.end() + 1] == ":":
        scheme, rest = match.group().lower(), rest[match.end() + 1 :]
    rest = rest.partition("?")[0]
    if not rest.startswith("/"):
        if scheme:
            return _Url(scheme=scheme, opaque=rest, fragment=unquote(fragment))
        if ":" in rest.partition("/")[0]:
            raise PluginSourceError(
                f'parse "{raw}": first path segment in URL cannot contain colon'
            )
    user = host = ""
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        userinfo, at, hostname = authority.rpartition("@")
        user, host = (userinfo, hostname) if at else ("", authority)
        port = host.rpartition("]")[2].partition(":")
        if port[1] and not port[2].isdigit() and port[2]:
            raise PluginSourceError(f'parse "{raw}": invalid port ":{port[2]}" after host')
    return _Url(
        scheme=scheme, user=user, host=unquote(host), path=unquote(rest), fragment=unquote(fragment)
    )


def expand_source(source: str) -> str:
    """A source in full form, as Buildkite's pipeline parser writes it (idempotent)."""
    if not source or source.startswith(("/", ".", "\\")):
        return source
    try:
        url = _parse_url(source)
    except PluginSourceError:
        return source
    if url.scheme or url.opaque:
        return source

    def last_segment(name: str) -> str:
        name += "-buildkite-plugin"
        return f"{name}#{url.fragment}" if url.fragment else name

    parts = url.path.removeprefix("/").split("/")
    if len(parts) == 1:
        return f"github.com/buildkite-plugins/{last_segment(parts[0])}"
    if len(parts) == 2:
        return f"github.com/{parts[0]}/{last_segment(parts[1])}"
    return source


@dataclass(frozen=True)
class Plugin:
    """One entry of a step's `plugins:` (buildkite-agent's `plugin.Plugin`)."""

    location: str
    """Host and path (`github.com/org/thing-buildkite-plugin`, `/srv/x`, `./.buildkite/x`)."""
    version: str = ""
    """The ref after `#`: a tag, branch or commit; empty for the default branch."""
    scheme: str = ""
    authentication: str = ""
    configuration: dict[str, JsonValue] = field(default_factory=dict)

    @property
    def vendored(self) -> bool:
        """A path inside the build's checkout (`./.buildkite/plugins/x`)."""
        return self.location.startswith(".")

    @property
    def label(self) -> str:
        return f"{self.location}#{self.version}" if self.version else self.location

    @property
    def name(self) -> str:
        """`github.com/org/docker-compose-buildkite-plugin` -> `docker-compose`; the NAME in
        `BUILDKITE_PLUGIN_<NAME>_…`."""
        if not self.location:
            return ""
        location = self.location.replace("\\", "/").rstrip("/")
        name = location.split("/")[-1].lstrip(".").lower()
        name = _NON_ID_CHARACTERS.sub("-", _WHITESPACE_RUNS.sub(" ", name))
        return name.replace("-buildkite-plugin-git", "").replace("-buildkite-plugin", "")

    @property
    def identifier(self) -> str:
        """The checkout directory's name: the label with every run of other characters `-`."""
        return _CONSECUTIVE_HYPHENS.sub("-", _NON_ID_CHARACTERS.sub("-", self.label)).strip("-")

    @property
    def display_name(self) -> str:
        """How the log names the plugin: the repository's name (and subdirectory), or the
        path's last part for local plugins."""
        if self.location.startswith(("/", ".")) or "\\" in self.location:
            return self.name
        try:
            host = self._repository_path()
        except PluginSourceError:
            return self.name
        repository = host.split("/")[-1].removesuffix(".git")
        subdirectory = self.subdirectory
        return f"{repository}/{subdirectory}" if subdirectory else repository

    def repository(self, base_url: str = DEFAULT_PLUGINS_BASE_URL) -> str:
        """What `git clone` is given. Scheme-less `github.com/…` sources are cloned from
        `base_url` (a mirror or internal host); a source with a scheme is taken as written."""
        path = self._repository_path()
        if not self.scheme and path.startswith("github.com/"):
            return f"{base_url.rstrip('/')}/{path.removeprefix('github.com/')}"
        if self.authentication:
            path = f"{self.authentication}@{path}"
        if path.startswith("/"):
            return path
        return f"{self.scheme or 'https'}://{path}"

    @property
    def subdirectory(self) -> str:
        """Where in the repository the plugin lives (`github.com/org/repo/sub/dir`)."""
        return (
            self.location.removeprefix(self._repository_path())
            .removeprefix("/")
            .removesuffix(".git")
        )

    def _repository_path(self) -> str:
        if not self.location:
            raise PluginSourceError("missing plugin location")
        parts = self.location.split("/")
        if len(parts) < 2:
            raise PluginSourceError(f'incomplete plugin path "{self.location}"')
        if parts[0] in ("github.com", "bitbucket.org"):
            if len(parts) < 3:
                raise PluginSourceError(f'incomplete plugin path "{self.location}"')
            return "/".join(parts[:3])
        if parts[0] == "gitlab.com":
            if len(parts) < 3:
                raise PluginSourceError(f'incomplete plugin path "{self.location}"')
            return self.location
        repository: list[str] = []
        for part in parts:
            repository.append(part)
            if part.endswith(".git"):
                break
        return "/".join(repository)


def plugin_from_source(source: str, configuration: dict[str, JsonValue] | None = None) -> Plugin:
    """One plugin from its source as written in pipeline.yml (expanded first)."""
    url = _parse_url(expand_source(source))
    if "#" in url.fragment:
        raise PluginSourceError(f"too many '#'s in \"{expand_source(source)}\"")
    return Plugin(
        location=url.host + url.path,
        version=url.fragment,
        scheme=url.scheme,
        authentication=url.user,
        configuration=configuration or {},
    )


def parse_plugins(text: str) -> list[Plugin]:
    """`BUILDKITE_PLUGINS`: a JSON list of `"source"` or `{"source": configuration}`."""
    try:
        entries = load_json(text)
    except ValueError as error:
        raise PluginSourceError(f"BUILDKITE_PLUGINS is not valid JSON: {error}") from error
    if not isinstance(entries, list):
        raise PluginSourceError("JSON structure was not an array")
    plugins: list[Plugin] = []
    for entry in entries:
        if isinstance(entry, str) and not isinstance(entry, JsonNumber):
            plugins.append(plugin_from_source(entry))
        elif isinstance(entry, dict):
            for source, configuration in entry.items():
                plugins.append(plugin_from_source(source, _configuration(source, configuration)))
        else:
            raise PluginSourceError(f"unknown type in plugin definition ({entry})")
    return plugins


def _configuration(source: str, configuration: JsonValue) -> dict[str, JsonValue]:
    # Buildkite's pipeline parser writes an empty map or list as null: no configuration.
    if configuration is None or configuration == [] or configuration == {}:
        return {}
    if not isinstance(configuration, dict):
        raise PluginSourceError(f'configuration for "{expand_source(source)}" is not a hash')
    return configuration
