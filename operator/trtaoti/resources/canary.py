"""Canary rollouts between artifacts: the pure rules.

While a target's wanted artifact differs from the one its stable Deployment serves and
`serving.canary` asks for it, a second Deployment (`<name>-canary`) serves the new
artifact on a share of the replicas. Both carry the profile's Service selector labels,
so the Service spreads connections over both by endpoint count: the split is per
connection and approximate (docs/architecture.md, "Canary").

The Deployments themselves are the state: the stable one's artifact annotation says
what is stable, the canary's what is on trial. Promotion rolls the stable Deployment to
the new artifact and deletes the canary; a rollback is an edit of the spec back to the
stable artifact's inputs, whose key then equals the stable key: the canary goes, and
no compile Job starts (the manifest is still in storage).
"""

from __future__ import annotations

import dataclasses
import datetime
import math

from trtaoti.api.models import Artifact, CanaryPromotion, CanarySpec


@dataclasses.dataclass(frozen=True)
class Split:
    stable: int
    canary: int

    def __str__(self) -> str:
        return f"{self.stable}/{self.canary}"


def split(replicas: int, percent: int) -> Split:
    """Replicas per track for `percent` on the canary: the canary's share rounded up, and
    at least one replica on each track while a canary is open (so 1 replica at 10% runs
    1 + 1). Zero replicas serve nothing on either track."""
    if replicas <= 0:
        return Split(0, 0)
    canary = max(1, math.ceil(replicas * percent / 100))
    return Split(max(1, replicas - canary), canary)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to serve for one target."""

    stable: Artifact  # what the stable Deployment serves
    canary: Artifact | None  # what the canary Deployment serves; None: no canary Deployment
    promoted: bool = False  # the stable Deployment takes the canary's artifact now
    recheck_after: float | None = None  # seconds until an AfterHealthySeconds promotion is due


def _seconds_since(timestamp: str, now: datetime.datetime) -> float:
    then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return (now - then).total_seconds()


def plan(
    canary: CanarySpec | None,
    stable: Artifact | None,
    wanted: Artifact | None,
    healthy_since: str | None,
    now: datetime.datetime,
) -> Plan | None:
    """The plan for a target whose stable Deployment serves `stable` (None: there is none
    yet) and whose spec wants `wanted` (None: not compiled yet). `healthy_since`: since
    when a canary Deployment already serving `wanted` has been Available (None: it is
    not, or there is none). None when there is nothing to serve at all."""
    if stable is None:
        return Plan(wanted, None) if wanted is not None else None
    if wanted is None or wanted.key == stable.key:
        # Still compiling (the old artifact serves alone), or rolled back / promoted.
        return Plan(stable, None)
    if canary is None or not canary.opens:
        return Plan(wanted, None, promoted=True)
    if canary.promotion == CanaryPromotion.after_healthy_seconds and healthy_since is not None:
        remaining = canary.healthy_period - _seconds_since(healthy_since, now)
        if remaining <= 0:
            return Plan(wanted, None, promoted=True)
        return Plan(stable, wanted, recheck_after=remaining)
    return Plan(stable, wanted)
