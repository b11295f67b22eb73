"""The chart's ClusterRole rules are generated from trtaoti.operator.rbac and least-privilege."""

from pathlib import Path

from trtaoti.operator.rbac import cluster_role_rules, rules_yaml

RULES_FILE = Path(__file__).resolve().parents[2] / "charts" / "trtaoti-operator" / "files" / "clusterrole-rules.yaml"


def test_chart_rules_are_up_to_date():
    assert RULES_FILE.read_text() == rules_yaml(), (
        "stale: python -m trtaoti.operator.rbac -o charts/trtaoti-operator/files/clusterrole-rules.yaml"
    )


def test_least_privilege():
    rules = cluster_role_rules()
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]
        # Patches only, except the grant that blockOwnerDeletion on children requires.
        if "update" in rule["verbs"]:
            assert rule["resources"] == ["trtaotimodels/finalizers"] and rule["verbs"] == ["update"]
    secrets = [r for r in rules if "secrets" in r["resources"]]
    assert secrets and all(r["verbs"] == ["get"] for r in secrets)
    pods = [r for r in rules if "pods" in r["resources"]]
    assert all(set(r["verbs"]) <= {"get", "list"} for r in pods)
