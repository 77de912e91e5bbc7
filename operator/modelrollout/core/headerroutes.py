"""Header routes: named rules that send matching requests to the canary whatever its weight.

Rules:
- A `setHeaderRoute` step with `match` adds (or replaces) the route `name`; without `match` it removes
  it. Routes are intent: they change only when such a step completes, and end with the rollout (an
  abort or a promotion removes them all in the same decision).
- A route's matches all have to hold (AND). A header matches exactly, by prefix or by a regular
  expression; a cookie matches its value exactly, rendered as an expression on the `Cookie` header
  (no data plane has a cookie match of its own that every router shares).
- The expressions made for prefixes and cookies are anchored at both ends, so a data plane that
  matches a whole value (Envoy: Istio, most Gateway API implementations) and one that searches
  (Traefik, NGINX) agree. A user's `regex` is passed as written: anchor it for the same reason.
- A regex is refused while parsing (InvalidSpec) when it is none, or needs what RE2 lacks.
- A route never reaches a canary with no available pod: the plan renders none then (see `plan`), and
  adding one needs a canary pod (the step waits for it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

COOKIE_HEADER = "Cookie"
RE2_LACKS = re.compile(r"\(\?<?[=!]|\\[1-9]")  # lookahead, lookbehind, backreferences


class MatchKind(StrEnum):
    """How a header's value is compared (`headerValue.exact|prefix|regex`)."""

    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"


@dataclass(frozen=True)
class HeaderMatch:
    """One condition of a header route: a header's value, or a cookie's value (`cookie` True)."""

    name: str  # the header's name, or the cookie's
    value: str
    kind: MatchKind = MatchKind.EXACT
    cookie: bool = False

    @property
    def header(self) -> str:
        """The request header this condition reads."""
        return COOKIE_HEADER if self.cookie else self.name

    @property
    def exact(self) -> bool:
        """Whether the data plane compares the header's whole value with `value` as written."""
        return self.kind is MatchKind.EXACT and not self.cookie

    def regex(self) -> str:
        """The condition as one anchored expression on the value of `header`."""
        if self.cookie:
            return rf"^(.*;\s*)?{re.escape(self.name)}={re.escape(self.value)}(;.*)?$"
        match self.kind:
            case MatchKind.EXACT:
                return f"^{re.escape(self.value)}$"
            case MatchKind.PREFIX:
                return f"^{re.escape(self.value)}.*$"
        return self.value

    def describe(self) -> str:
        if self.cookie:
            return f"cookie {self.name}={self.value}"
        return f"header {self.name} {self.kind} {self.value!r}"


@dataclass(frozen=True)
class HeaderRoute:
    """Requests matching every one of `matches` go to the canary."""

    name: str
    matches: tuple[HeaderMatch, ...]

    def describe(self) -> str:
        return f"{self.name} ({' and '.join(match.describe() for match in self.matches)})"


@dataclass(frozen=True)
class SetHeaderRoute:
    """Add the route `name` (with `matches`) or, with none, remove it. Needs a router."""

    name: str
    matches: tuple[HeaderMatch, ...] = ()

    @property
    def adds(self) -> bool:
        return bool(self.matches)

    def describe(self) -> str:
        return f"setHeaderRoute {self.route().describe()}" if self.adds else f"remove header route {self.name}"

    def route(self) -> HeaderRoute:
        return HeaderRoute(self.name, self.matches)

    def apply(self, routes: tuple[HeaderRoute, ...]) -> tuple[HeaderRoute, ...]:
        """`routes` after this step: the route replaced in place, appended, or removed."""
        if not self.adds:
            return tuple(route for route in routes if route.name != self.name)
        if any(route.name == self.name for route in routes):
            return tuple(self.route() if route.name == self.name else route for route in routes)
        return (*routes, self.route())


def parse_match(body: Mapping[str, Any]) -> HeaderMatch:
    """One `match[]` entry: `{headerName, headerValue: {exact|prefix|regex}}` or `{cookie: {name, value}}`."""
    if "cookie" in body:
        cookie = body["cookie"] or {}
        return HeaderMatch(str(cookie["name"]), str(cookie.get("value", "")), cookie=True)
    value = body.get("headerValue") or {}
    kind = next((kind for kind in MatchKind if kind.value in value), MatchKind.EXACT)
    match = HeaderMatch(str(body["headerName"]), str(value.get(kind.value, "")), kind)
    if kind is MatchKind.REGEX:
        _check_expression(match)
    return match


def _check_expression(match: HeaderMatch) -> None:
    """Refuse what no data plane would take: not an expression at all, or one RE2 (Envoy, Traefik) lacks."""
    where = f"setHeaderRoute header {match.name}: headerValue.regex {match.value!r}"
    try:
        re.compile(match.value)
    except re.error as error:
        fix = "fix it in spec.strategy.canary.steps"
        raise ValueError(f"{where} is not a regular expression ({error}); {fix}") from None
    if RE2_LACKS.search(match.value):
        raise ValueError(
            f"{where} uses lookaround or a backreference, which RE2 (Envoy, Traefik) lacks; "
            "write it without them in spec.strategy.canary.steps"
        )


def parse_set_header_route(body: Mapping[str, Any]) -> SetHeaderRoute:
    return SetHeaderRoute(str(body["name"]), tuple(parse_match(match) for match in body.get("match") or []))


def load_routes(items: list[Mapping[str, Any]] | None) -> tuple[HeaderRoute, ...]:
    """Routes as `status.intent.headerRoutes` holds them (the spec's own shape)."""
    return tuple(parse_set_header_route(item).route() for item in items or [])


def dump_match(match: HeaderMatch) -> dict[str, Any]:
    if match.cookie:
        return {"cookie": {"name": match.name, "value": match.value}}
    return {"headerName": match.name, "headerValue": {match.kind.value: match.value}}


def dump_routes(routes: tuple[HeaderRoute, ...]) -> list[dict[str, Any]]:
    return [{"name": route.name, "match": [dump_match(match) for match in route.matches]} for route in routes]
