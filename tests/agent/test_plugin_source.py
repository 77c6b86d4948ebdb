"""Plugin sources read as buildkite-agent reads them. The expectations are buildkite-agent's
own (agent/plugin/plugin_test.go) and its pipeline parser's (go-pipeline plugin_test.go)."""

from __future__ import annotations

import pytest

from kiteline.agent.plugin_source import (
    Plugin,
    PluginSourceError,
    expand_source,
    parse_plugins,
)


@pytest.mark.parametrize(
    ("source", "expanded"),
    [
        ("thing", "github.com/buildkite-plugins/thing-buildkite-plugin"),
        ("thing#main", "github.com/buildkite-plugins/thing-buildkite-plugin#main"),
        ("my-org/thing", "github.com/my-org/thing-buildkite-plugin"),
        ("my-org/thing#v1.2.0", "github.com/my-org/thing-buildkite-plugin#v1.2.0"),
        ("./.buildkite/plugins/llamas/rock", "./.buildkite/plugins/llamas/rock"),
        (r".\.buildkite\plugins\llamas\rock", r".\.buildkite\plugins\llamas\rock"),
        (r"C:\llamas\rock", r"C:\llamas\rock"),
        ("/a-plugin", "/a-plugin"),
        ("/my-org/a-plugin", "/my-org/a-plugin"),
        ("https://my-plugin.git", "https://my-plugin.git"),
        ("file:///Users/user/Desktop/my-plugin.git", "file:///Users/user/Desktop/my-plugin.git"),
        (
            "git@github.com:buildkite/private-buildkite-plugin.git",
            "git@github.com:buildkite/private-buildkite-plugin.git",
        ),
        ("my:plugin", "my:plugin"),
        (
            "github.com/buildkite-plugins/docker-compose-buildkite-plugin#v5.0.0",
            "github.com/buildkite-plugins/docker-compose-buildkite-plugin#v5.0.0",
        ),
    ],
)
def test_sources_expand_as_buildkites_pipeline_parser_expands_them(
    source: str, expanded: str
) -> None:
    assert expand_source(source) == expanded
    assert expand_source(expanded) == expanded


@pytest.mark.parametrize(
    ("plugins_json", "plugin"),
    [
        (
            '[{"https://github.com/buildkite-plugins/docker-compose#a34fa34":{"container":"app"}}]',
            Plugin(
                location="github.com/buildkite-plugins/docker-compose",
                version="a34fa34",
                scheme="https",
                configuration={"container": "app"},
            ),
        ),
        (
            '[{"github.com/buildkite-plugins/docker-compose#a34fa34":{}}]',
            Plugin(location="github.com/buildkite-plugins/docker-compose", version="a34fa34"),
        ),
        (
            '[{"http://github.com/buildkite-plugins/docker-compose#a34fa34":{}}]',
            Plugin(
                location="github.com/buildkite-plugins/docker-compose",
                version="a34fa34",
                scheme="http",
            ),
        ),
        (
            '[{"https://gitlab.example.com/path/to/repo#main":{}}]',
            Plugin(location="gitlab.example.com/path/to/repo", version="main", scheme="https"),
        ),
        (
            '["ssh://git:foo@github.com/buildkite-plugins/docker-compose#a34fa34"]',
            Plugin(
                location="github.com/buildkite-plugins/docker-compose",
                version="a34fa34",
                scheme="ssh",
                authentication="git:foo",
            ),
        ),
        (
            '["file://github.com/buildkite-plugins/docker-compose#a34fa34"]',
            Plugin(
                location="github.com/buildkite-plugins/docker-compose",
                version="a34fa34",
                scheme="file",
            ),
        ),
        (
            '["github.com/buildkite-plugins/fake-plugin#main"]',
            Plugin(location="github.com/buildkite-plugins/fake-plugin", version="main"),
        ),
        ('[{"./.buildkite/plugins/llamas":{}}]', Plugin(location="./.buildkite/plugins/llamas")),
        (
            '["file:///srv/plugins/acme/lint-buildkite-plugin#v2"]',
            Plugin(location="/srv/plugins/acme/lint-buildkite-plugin", version="v2", scheme="file"),
        ),
        # As written in pipeline.yml (Kiteline passes `plugins:` on unexpanded).
        (
            '[{"docker-compose#v5.0.0":{"run":"app"}}]',
            Plugin(
                location="github.com/buildkite-plugins/docker-compose-buildkite-plugin",
                version="v5.0.0",
                configuration={"run": "app"},
            ),
        ),
        (
            '[{"acme/lint#v2": null}]',
            Plugin(location="github.com/acme/lint-buildkite-plugin", version="v2"),
        ),
    ],
)
def test_plugins_are_read_from_buildkite_plugins_json(plugins_json: str, plugin: Plugin) -> None:
    assert parse_plugins(plugins_json) == [plugin]


def test_a_list_keeps_its_order_and_vendored_plugins_are_marked() -> None:
    plugins = parse_plugins('["a#v1", {"./.buildkite/plugins/b": {"x": 1}}, {"c/d": null}]')
    assert [(p.label, p.vendored) for p in plugins] == [
        ("github.com/buildkite-plugins/a-buildkite-plugin#v1", False),
        ("./.buildkite/plugins/b", True),
        ("github.com/c/d-buildkite-plugin", False),
    ]


@pytest.mark.parametrize(
    ("plugins_json", "message"),
    [
        ("blah", "BUILDKITE_PLUGINS is not valid JSON"),
        ('{"foo": "bar"}', "JSON structure was not an array"),
        (
            '["github.com/buildkite-plugins/ping#main#lololo"]',
            "too many '#'s in \"github.com/buildkite-plugins/ping#main#lololo\"",
        ),
        ('[{"acme/lint#v1": ["not", "a", "map"]}]', 'configuration for "github.com/acme/'),
        (
            '["git@github.com:acme/private-buildkite-plugin.git"]',
            "first path segment in URL cannot contain colon",
        ),
        ('["ssh://git@github.com:acme/x.git"]', 'invalid port ":acme" after host'),
        ("[42]", "unknown type in plugin definition (42)"),
    ],
)
def test_bad_plugin_definitions_are_refused(plugins_json: str, message: str) -> None:
    with pytest.raises(PluginSourceError) as raised:
        parse_plugins(plugins_json)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("location", "name"),
    [
        ("github.com/buildkite-plugins/docker-compose-buildkite-plugin.git", "docker-compose"),
        ("github.com/buildkite-plugins/docker-compose-buildkite-plugin", "docker-compose"),
        ("github.com/my-org/docker-compose-buildkite-plugin", "docker-compose"),
        ("github.com/buildkite/plugins/docker-compose", "docker-compose"),
        ("~/Development/plugins/test", "test"),
        ("~/Development/plugins/UPPER     CASE_party", "upper-case-party"),
        ("vendor/src/vendored with a space", "vendored-with-a-space"),
        ("vendor/src/vendored-with-a-slash/", "vendored-with-a-slash"),
        ("vendor/src/vendored-with-two-slash//", "vendored-with-two-slash"),
        ("./.buildkite/plugins/docker-compose", "docker-compose"),
        (".\\.buildkite\\plugins\\docker-compose", "docker-compose"),
        (".buildkite/plugins/docker-compose", "docker-compose"),
        ("", ""),
    ],
)
def test_names_as_buildkite_agent_derives_them(location: str, name: str) -> None:
    assert Plugin(location=location).name == name


@pytest.mark.parametrize(
    ("location", "version", "identifier"),
    [
        (
            "github.com/buildkite/plugins/docker-compose/beta",
            "main",
            "github-com-buildkite-plugins-docker-compose-beta-main",
        ),
        (
            "github.com/buildkite/plugins/docker-compose/beta",
            "",
            "github-com-buildkite-plugins-docker-compose-beta",
        ),
        ("192.168.0.1/foo.git", "12341234", "192-168-0-1-foo-git-12341234"),
        ("/foo/bar/", "", "foo-bar"),
        ("./.buildkite/plugins/llamas/", "", "buildkite-plugins-llamas"),
    ],
)
def test_checkout_directories_are_named_per_ref(
    location: str, version: str, identifier: str
) -> None:
    assert Plugin(location=location, version=version).identifier == identifier


@pytest.mark.parametrize(
    ("plugin", "repository", "subdirectory"),
    [
        (
            Plugin(location="github.com/buildkite/plugins/docker-compose/beta"),
            "https://github.com/buildkite/plugins",
            "docker-compose/beta",
        ),
        (
            Plugin(location="github.com/buildkite/test-plugin"),
            "https://github.com/buildkite/test-plugin",
            "",
        ),
        (
            Plugin(location="bitbucket.org/user/project/sub/directory"),
            "https://bitbucket.org/user/project",
            "sub/directory",
        ),
        (
            Plugin(
                location="bitbucket.org/user/project/sub/directory",
                scheme="http",
                authentication="foo:bar",
            ),
            "http://foo:bar@bitbucket.org/user/project",
            "sub/directory",
        ),
        (Plugin(location="114.135.234.212/foo.git"), "https://114.135.234.212/foo.git", ""),
        (
            Plugin(location="/Users/keithpitt/Development/plugins.git/test-plugin"),
            "/Users/keithpitt/Development/plugins.git",
            "test-plugin",
        ),
        (
            Plugin(location="gitlab.com/group/team/path/to/repo"),
            "https://gitlab.com/group/team/path/to/repo",
            "",
        ),
    ],
)
def test_repositories_and_subdirectories(
    plugin: Plugin, repository: str, subdirectory: str
) -> None:
    assert plugin.repository() == repository
    assert plugin.subdirectory == subdirectory


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("github.com/buildkite", 'incomplete plugin path "github.com/buildkite"'),
        ("bitbucket.org/buildkite", 'incomplete plugin path "bitbucket.org/buildkite"'),
        ("", "missing plugin location"),
    ],
)
def test_incomplete_locations_have_no_repository(location: str, message: str) -> None:
    with pytest.raises(PluginSourceError) as raised:
        Plugin(location=location).repository()
    assert str(raised.value) == message


def test_the_base_url_serves_scheme_less_github_sources() -> None:
    shorthand, written_out, nested, explicit = parse_plugins(
        '["acme/lint#v2", "github.com/acme/deploy-buildkite-plugin",'
        ' "github.com/acme/monorepo/plugins/x", "https://github.com/acme/y-buildkite-plugin"]'
    )
    base = "file:///srv/mirror/"
    assert shorthand.repository(base) == "file:///srv/mirror/acme/lint-buildkite-plugin"
    assert written_out.repository(base) == "file:///srv/mirror/acme/deploy-buildkite-plugin"
    assert (nested.repository(base), nested.subdirectory) == (
        "file:///srv/mirror/acme/monorepo",
        "plugins/x",
    )
    # A source with a scheme is meant as written.
    assert explicit.repository(base) == "https://github.com/acme/y-buildkite-plugin"


@pytest.mark.parametrize(
    ("source", "display_name"),
    [
        ("github.com/org/repo", "repo"),
        ("github.com/org/repo/.buildkite", "repo/.buildkite"),
        ("file:///path/to/plugin", "plugin"),
        ("docker-compose#v5", "docker-compose-buildkite-plugin"),
    ],
)
def test_display_names(source: str, display_name: str) -> None:
    assert parse_plugins(f'["{source}"]')[0].display_name == display_name
