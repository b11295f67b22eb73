"""Every test in tests/cluster needs the real control plane: mark them `cluster`
(`pytest -m 'not cluster'` deselects the tier). Fixtures the test modules share are
re-exported here, so no module imports a fixture by name (which linters read as an
unused import shadowed by a parameter)."""

import pytest

from operator_support import (
    crd,
    models,
    operator,
    operator_identity,
    restricted_models,
    restricted_operator,
)

__all__ = ["crd", "models", "operator", "operator_identity", "restricted_models", "restricted_operator"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in item.nodeid or item.nodeid.startswith("cluster/"):
            item.add_marker(pytest.mark.cluster)
