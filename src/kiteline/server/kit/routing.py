"""Routing by path shape: each of the app's top-level routes (an included router, a route, a
mount) answers "no match" at once to a path it cannot match, judged by the path's segments.

FastAPI matches a request against the app's routes one at a time, in order, and an included
router against each of its own routes, with bookkeeping per route (about 2 µs each, and an
included router's routes are matched again when it handles the request): a `/v2/meta` or a
web page, after some 150 routes, paid about 0.3 ms for it. Here every top-level route's paths
are read once, when the app is built, as sequences of literal and wildcard segments; a request
splits its path into segments once (kept in the scope), and a top-level route none of whose
paths fits them returns `Match.NONE` without FastAPI's matching. Those that might fit match as
before, in the same order, so the route chosen, its parameters, 405s, redirects and 404s are
exactly FastAPI's (decision 0047; `tests/server/test_routing_shapes.py` compares every route).

The shapes are a superset: a segment with any parameter is a wildcard, a `{name:path}`
parameter (a mount's, too) matches any rest, and a route whose paths cannot be read (a host,
an unknown kind) is always tried. Routes must not be added once `index_routes` ran: a route
added later to an indexed router would not be tried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette._utils import get_route_path
from starlette.convertors import PathConvertor
from starlette.routing import BaseRoute, Match, Router
from starlette.types import Scope

#: Where a request's path segments are kept: (the route path, its segments). A redirect's
#: look-up copies the scope with another path: split anew.
_SCOPE_KEY = "kiteline.route_shapes"

Shape = tuple[tuple[str | None, ...], bool]  # segments (None: any one), then any rest


def _shape(path_format: str, convertors: dict[str, Any]) -> Shape | None:
    """The shape of a route's path template, or None if it cannot be read."""
    if not path_format.startswith("/"):
        return None
    segments: list[str | None] = []
    for segment in path_format[1:].split("/"):
        if "{" not in segment:
            segments.append(segment)
            continue
        names = [part.split("}", 1)[0].split(":", 1)[0] for part in segment.split("{")[1:]]
        if any(isinstance(convertors.get(name), PathConvertor) for name in names):
            return tuple(segments), True
        segments.append(None)
    return tuple(segments), False


def _leaves(route: BaseRoute) -> Iterable[Any] | None:
    """The routes a top-level route stands for: itself, or an included router's routes."""
    contexts: Callable[[], Iterable[Any]] | None = getattr(route, "effective_route_contexts", None)
    if contexts is not None:  # FastAPI's included router (0.120 on)
        return [getattr(context, "starlette_route", None) or context for context in contexts()]
    if hasattr(route, "path_format"):
        return [route]
    return None


def _shapes(route: BaseRoute) -> list[Shape] | None:
    leaves = _leaves(route)
    if leaves is None:
        return None
    shapes = []
    for leaf in leaves:
        path_format = getattr(leaf, "path_format", None)
        shape = _shape(path_format, getattr(leaf, "param_convertors", {})) if path_format else None
        if shape is None:
            return None
        shapes.append(shape)
    return shapes


Literals = tuple[tuple[int, str], ...]  # (position, text) of a shape's literal segments


def _literals(fixed: tuple[str | None, ...], start: int) -> Literals:
    return tuple((i, text) for i, text in enumerate(fixed) if text is not None and i >= start)


def _all_there(literals: Literals, segments: list[str]) -> bool:
    # Loops, not all()/any(): no generator per call, on every request's path.
    for i, text in literals:  # noqa: SIM110
        if segments[i] != text:
            return False
    return True


class RouteShapes:
    """One top-level route's shapes, indexed by the number of segments and the first one."""

    def __init__(self, shapes: list[Shape]) -> None:
        # (segment count, first segment or None) → the other literals of each shape of that
        # length and first segment; shapes with a rest are kept apart: (their fixed part's
        # length, its literals).
        self.exact: dict[tuple[int, str | None], list[Literals]] = {}
        self.open: list[tuple[int, Literals]] = []
        for fixed, rest in shapes:
            if rest:
                self.open.append((len(fixed), _literals(fixed, 0)))
            else:
                first = fixed[0] if fixed else ""
                key = (len(fixed), first)
                self.exact.setdefault(key, []).append(_literals(fixed, 1))

    def fit(self, segments: list[str]) -> bool:
        """Whether a path of these segments may match the route."""
        count = len(segments)
        exact = self.exact
        for key in ((count, segments[0]), (count, None)):
            for literals in exact.get(key, ()):
                if _all_there(literals, segments):
                    return True
        for size, literals in self.open:  # noqa: SIM110
            if count >= size and _all_there(literals, segments):
                return True
        return False


def index_routes(router: Router) -> int:
    """Make each of `router`'s routes skip, at once, the paths its shapes do not fit; returns
    how many do (the others are tried for every path)."""
    indexed = 0
    for route in router.routes:
        shapes = _shapes(route)
        if shapes is not None:
            # An attribute of this route object: its class, and other apps, keep theirs.
            setattr(route, "matches", _shaped(route, RouteShapes(shapes)))  # noqa: B010
            indexed += 1
    return indexed


def _segments(scope: Scope) -> list[str]:
    """The request path's segments, split once per request (and per redirect look-up)."""
    path = get_route_path(scope)
    kept = scope.get(_SCOPE_KEY)
    if kept is None or kept[0] != path:
        kept = scope[_SCOPE_KEY] = (path, path[1:].split("/") if path.startswith("/") else [path])
    segments: list[str] = kept[1]
    return segments


def _shaped(route: BaseRoute, shapes: RouteShapes) -> Callable[[Scope], tuple[Match, Scope]]:
    matches = route.matches

    def shaped_matches(scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] in ("http", "websocket") and not shapes.fit(_segments(scope)):
            return Match.NONE, {}
        return matches(scope)

    return shaped_matches
