"""Shared builders for the compiler's unit tests (specs from the examples, plans)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from trtaoti.api.models import TrtAotiModel
from trtaoti.compiler.plan import CompilePlan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_document(name: str, **spec_updates: Any) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / name / "trtaotimodel.yaml").read_text())
    document = copy.deepcopy(document)
    document["spec"].update(spec_updates)
    return document


def example_model(name: str, **spec_updates: Any) -> TrtAotiModel:
    return TrtAotiModel.model_validate(example_document(name, **spec_updates))


def plan_for(model: TrtAotiModel, profile: str | None = None, key: str = "k" * 32) -> CompilePlan:
    chosen = model.spec.profile(profile) if profile else model.spec.batch_profiles[0]
    return CompilePlan.from_spec(model.name, model.spec, chosen, key=key, compiler_image="img:1")


def example_factory(factory: str) -> Callable[[], tuple[Any, ...]]:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    module_name, _, attribute = factory.partition(":")
    module = __import__(module_name, fromlist=[attribute])
    return getattr(module, attribute)
