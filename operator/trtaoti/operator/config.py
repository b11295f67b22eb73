"""The operator process' configuration (from `trtaoti operator` flags and env)."""

from __future__ import annotations

import dataclasses

from trtaoti.resources.config import ChildSettings


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    children: ChildSettings = dataclasses.field(default_factory=ChildSettings)
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    kubeconfig: str | None = None  # None: in-cluster, else $KUBECONFIG
    resync_seconds: float = 300.0
    concurrency: int = 32  # reconciles wait on the apiserver, rarely on CPU
