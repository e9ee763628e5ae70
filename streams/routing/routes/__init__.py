"""The collaboration routes, one module each; ``ROUTE_SPECS`` is the list the routing stage runs."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from streams.routing.claims import Claim, RouteSpec
from streams.routing.routes import (
    chronic_disease,
    death_registration,
    infectious_disease,
    resident_update,
    tumor_registry,
    vaccination,
)

ROUTE_SPECS: tuple[RouteSpec, ...] = (
    chronic_disease.SPEC,
    tumor_registry.SPEC,
    death_registration.SPEC,
    infectious_disease.SPEC,
    vaccination.SPEC,
    resident_update.SPEC,
)
SPEC_BY_NAME: dict[str, RouteSpec] = {s.name: s for s in ROUTE_SPECS}
_BY_EVENT_TYPE: dict[str, tuple[RouteSpec, ...]] = {
    t: tuple(s for s in ROUTE_SPECS if t in s.event_types) for s0 in ROUTE_SPECS for t in s0.event_types
}


def claims_of(event_type: str, event: dict[str, Any], routes: Collection[str] | None = None) -> list[Claim]:
    """Every route's claims of one event (or those of ``routes``): the routing decision, pure; the stage
    and `routing decide` call it."""
    return [
        c
        for s in _BY_EVENT_TYPE.get(event_type, ())
        if routes is None or s.name in routes
        for c in s.claims(event_type, event)
    ]
