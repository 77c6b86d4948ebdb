"""Routing by path shape (`kit/routing.py`, decision 0047): every top-level route of the real
app answers each path as FastAPI's own matching does, and the shapes skip what they should.

A path is made from every route template the app serves (parameters filled in, a trailing
slash added and taken away, a segment more and one less), then asked of each top-level route
with every method: the indexed `matches` must give what the route's class gives, match kind
and path parameters alike. The real requests through these routes are the rest of the suite.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute, Match

from kiteline.server.app import create_app
from kiteline.server.kit.routing import RouteShapes, _shape, index_routes
from kiteline.settings import Settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
JOB_ID = "0b7e2f4c-3c55-4a7e-9a41-6f0d2b1c9e11"
PARAMETER = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")


def _fill(template: str) -> list[str]:
    def value(kind: str | None) -> str:
        return {"int": "12", "uuid": JOB_ID, "path": "a/b.txt", "float": "1.5"}.get(kind or "", "x")

    filled = PARAMETER.sub(lambda m: value(m.group(2)), template)
    plain = PARAMETER.sub(lambda m: JOB_ID if m.group(2) is None else value(m.group(2)), template)
    return [filled, plain]


def _paths(app: Any) -> set[str]:
    templates: set[str] = {"/", "", "/nothing/here", "/v2", "/v3", "/v2/organizations"}
    for route in app.router.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        leaves = (
            [getattr(c, "starlette_route", None) or c for c in contexts()] if contexts else [route]
        )
        for leaf in leaves:
            template = getattr(leaf, "path_format", None)
            if template:
                templates.add(template)
    paths: set[str] = set()
    for template in templates:
        for path in _fill(template):
            paths.update(
                {path, path.rstrip("/") or "/", f"{path}/", f"{path}/extra", path.rsplit("/", 1)[0]}
            )
    return paths


def _scope(app: Any, method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
        "app": app,
    }


def _stock(route: BaseRoute, scope: dict[str, Any]) -> tuple[Match, dict[str, Any]]:
    match, child = type(route).matches(route, scope)
    return match, child


def test_every_route_answers_every_path_as_fastapi_does(tmp_path: Path) -> None:
    app = create_app(
        Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/k.db")
    )
    routes = app.router.routes
    # Each top-level route is indexed (none is tried for every path) ...
    assert all("matches" in vars(route) for route in routes), [
        route for route in routes if "matches" not in vars(route)
    ]
    paths = _paths(app)
    assert len(paths) > 300
    compared = skipped = 0
    for path in sorted(paths):
        for method in METHODS:
            for route in routes:
                indexed = route.matches(_scope(app, method, path))
                stock = _stock(route, _scope(app, method, path))
                assert (indexed[0], _params(indexed[1])) == (stock[0], _params(stock[1])), (
                    method,
                    path,
                    route,
                )
                compared += 1
                skipped += indexed[0] is Match.NONE
    # ... and most answers are "no" (what the index is for).
    assert skipped > compared * 0.8


def _params(child: dict[str, Any]) -> Any:
    return child.get("path_params"), child.get("endpoint")


def test_shapes_of_templates() -> None:
    assert _shape("/v3/jobs/{job_id}/start", {}) == (("v3", "jobs", None, "start"), False)
    assert _shape("/", {}) == (("",), False)
    assert _shape("/{org}/{pipeline}.svg", {}) == ((None, None), False)
    assert _shape("no-slash", {}) is None
    from starlette.convertors import CONVERTOR_TYPES

    assert _shape("/static/{path}", {"path": CONVERTOR_TYPES["path"]}) == (("static",), True)


def test_a_shape_fits_paths_of_its_length_and_literals() -> None:
    shapes = RouteShapes(
        [
            (("v2", "organizations", None, "pipelines"), False),
            ((None, "badge"), False),
            (("static",), True),
        ]
    )
    assert shapes.fit(["v2", "organizations", "acme", "pipelines"])
    assert not shapes.fit(["v2", "organizations", "acme", "pipelines", "x"])
    assert not shapes.fit(["v2", "users", "acme", "pipelines"])
    assert shapes.fit(["acme", "badge"])
    assert not shapes.fit(["acme", "badges"])
    assert shapes.fit(["static", "css", "site.css"])
    assert shapes.fit(["static"])
    assert not shapes.fit(["statics", "x"])


def test_a_route_whose_paths_cannot_be_read_is_tried_for_every_path() -> None:
    from starlette.routing import Host, Router

    router = Router(routes=[Host("example.com", app=Router())])
    assert index_routes(router) == 0
    assert "matches" not in vars(router.routes[0])
