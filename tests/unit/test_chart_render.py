"""The Helm chart, rendered by the pinned helm with several value sets.

Asserts what an installer relies on: every manifest validates against the Kubernetes
OpenAPI schemas of the pinned release, the operator pod meets the restricted Pod
Security Standard, RBAC is least-privilege and scoped as asked, the CRD is the generated
one with the keep policy, and the operator is started with the flags and images the
values ask for. The real apiserver's admission of the same chart is
tests/cluster/test_chart_install.py.
"""

from __future__ import annotations

import functools
import pathlib
import subprocess

import jsonschema
import pytest
import yaml

from support.tools import import_tool, tool_missing

kubernetes_validate = import_tool("kubernetes_validate", "kubernetes-validate is in the test extra")

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "trtaoti-operator"
CRD_SOURCE = REPO / "crds" / "trtaotimodels.yaml"
RULES_FILE = CHART / "files" / "clusterrole-rules.yaml"
RELEASE = "trtaoti-operator"  # the name docs/install.md and the GitOps examples use
NAMESPACE = "trtaoti-system"


def versions() -> dict[str, str]:
    pins = {}
    for line in (REPO / "hack" / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


KUBERNETES_VERSION = versions()["KUBERNETES_VERSION"]


@functools.cache
def helm() -> str:
    script = REPO / "hack" / "build-binaries.sh"
    out = subprocess.run(["bash", str(script), "--print-dir"], capture_output=True, text=True, check=True)
    binary = pathlib.Path(out.stdout.strip()) / "helm"
    if not binary.is_file():
        tool_missing(f"helm not built ({binary} missing): run 'make bins'")
    return str(binary)


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def set_args(values: dict) -> list[str]:
    """--set-json per top-level key: exact types, no --set string parsing surprises."""
    import json

    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


@functools.cache
def _render(frozen: str) -> tuple[dict, ...]:
    values = yaml.safe_load(frozen)
    out = run_helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--kube-version", KUBERNETES_VERSION.lstrip("v"), *set_args(values),
    ).stdout  # fmt: skip # argv: flags beside their values
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def render(**values) -> list[dict]:
    return list(_render(yaml.safe_dump(values, sort_keys=True)))


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def operator_container(docs: list[dict]) -> dict:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "operator")


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


VALUE_SETS = {
    "defaults": {},
    "watch-namespaces": {"watchNamespaces": ["team-a", "team-b"]},
    "no-crds": {"crds": {"enabled": False}},
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "podDisruptionBudget": {"enabled": True},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "logLevel": "debug",
    },
    "existing-service-account": {"serviceAccount": {"create": False, "name": "platform-operator"}},
    "image-allow-list": {"allowedImagePrefixes": ["registry.example.com/ml/", "ghcr.io/trtaoti/"]},
}


# --- validity ---------------------------------------------------------------------


def test_helm_lint_strict_passes_for_every_value_set(tmp_path):
    for name, values in VALUE_SETS.items():
        values_file = tmp_path / f"{name}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        proc = run_helm(
            "lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION.lstrip("v"),
            "-f", str(values_file), check=False,
        )  # fmt: skip # argv: flags beside their values
        assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_manifests_validate_against_kubernetes_schemas(name: str):
    validated = 0
    for doc in render(**VALUE_SETS[name]):
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # the Prometheus Operator's CRD schema is not part of Kubernetes
        # strict: unknown fields fail too (the apiserver would silently drop them)
        try:
            used = kubernetes_validate.validate(doc, KUBERNETES_VERSION.lstrip("v"), strict=True)
        except jsonschema.ValidationError as error:
            where = "/".join(str(p) for p in error.path)
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} is invalid at {where}: {error.message}")
        assert used == ".".join(KUBERNETES_VERSION.lstrip("v").split(".")[:2]), f"schemas of {used} used"
        validated += 1
    assert validated >= 4


def test_schema_rejects_bad_values_at_template_time():
    proc = run_helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBERNETES_VERSION.lstrip("v"),
        "--set-json", 'watchNamespaces=["Not_A_Namespace"]', check=False,
    )  # fmt: skip # argv: flags beside their values
    assert proc.returncode != 0
    assert "watchNamespaces" in proc.stderr


def test_existing_service_account_requires_a_name():
    proc = run_helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBERNETES_VERSION.lstrip("v"),
        "--set", "serviceAccount.create=false", check=False,
    )  # fmt: skip # argv: flags beside their values
    assert proc.returncode != 0
    assert "serviceAccount.name is required" in proc.stderr


# --- the operator pod -------------------------------------------------------------

RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict) -> list[str]:
    """The checks of the `restricted` Pod Security Standard (Kubernetes docs, v1.37)."""
    pod_sc = pod.get("securityContext", {})
    problems = [f"{field} is set" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.get(field)]
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} uses {kinds}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    for container in pod.get("initContainers", []) + pod["containers"]:
        sc = container.get("securityContext", {})
        name = container["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp!r}")
        problems += [f"{name}: hostPort" for port in container.get("ports", []) if port.get("hostPort")]
    return problems


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_pod_meets_restricted_pod_security(name: str):
    pod = one(render(**VALUE_SETS[name]), "Deployment")["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []


def test_restricted_check_catches_a_privileged_override():
    # The checker itself must see a values override that breaks the standard.
    docs = render(securityContext={"allowPrivilegeEscalation": True, "capabilities": {"add": ["SYS_ADMIN"]}})
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    problems = restricted_violations(pod)
    assert any("allowPrivilegeEscalation" in p for p in problems)
    assert any("SYS_ADMIN" in p for p in problems)


def test_operator_container_hardening_and_probe():
    docs = render()
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(docs)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # the liveness probe hits the endpoint the operator is told to serve
    liveness_flag = next(a for a in container["args"] if a.startswith("--liveness="))
    port = next(p for p in container["ports"] if p["name"] == container["livenessProbe"]["httpGet"]["port"])
    assert (
        liveness_flag
        == f"--liveness=http://0.0.0.0:{port['containerPort']}{container['livenessProbe']['httpGet']['path']}"
    )


def test_single_replica_recreate():
    deployment = one(render(), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_watch_scope_flags():
    cluster_wide = operator_container(render())["args"]
    assert cluster_wide[0] == "operator"
    assert not [a for a in cluster_wide if a.startswith("--namespace")]
    namespaced = operator_container(render(watchNamespaces=["team-a", "team-b"]))["args"]
    assert [a for a in namespaced if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]


def test_images_passed_to_the_operator():
    digest = "sha256:" + "ab" * 32
    container = operator_container(
        render(
            image={"repository": "registry.example/trtaoti/operator", "tag": "9.9.9"},
            compiler={"image": {"repository": "registry.example/trtaoti/compiler", "tag": "1.2.3"}},
            server={"image": {"repository": "registry.example/trtaoti/server", "digest": digest}},
            childImagePullPolicy="Always",
        )
    )
    env = env_of(container)
    assert container["image"] == "registry.example/trtaoti/operator:9.9.9"
    assert env["TRTAOTI_COMPILER_IMAGE"] == "registry.example/trtaoti/compiler:1.2.3"
    assert env["TRTAOTI_SERVER_IMAGE"] == f"registry.example/trtaoti/server@{digest}"
    assert env["TRTAOTI_FETCH_IMAGE"] == container["image"]
    assert env["TRTAOTI_IMAGE_PULL_POLICY"] == "Always"


def test_image_allow_list_reaches_the_operator():
    assert "TRTAOTI_ALLOWED_IMAGE_PREFIXES" not in env_of(operator_container(render()))  # default: any image
    env = env_of(operator_container(render(**VALUE_SETS["image-allow-list"])))
    assert env["TRTAOTI_ALLOWED_IMAGE_PREFIXES"] == "registry.example.com/ml/,ghcr.io/trtaoti/"


def test_default_image_tags_follow_the_chart_app_version():
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    container = operator_container(render())
    env = env_of(container)
    for image in (container["image"], env["TRTAOTI_COMPILER_IMAGE"], env["TRTAOTI_SERVER_IMAGE"]):
        assert image.endswith(f":{app_version}")


def test_operator_reads_the_env_the_chart_sets():
    """Every TRTAOTI_* variable the chart sets is one `trtaoti operator` reads."""
    source = (REPO / "operator" / "trtaoti" / "operator" / "command.py").read_text()
    for name in env_of(operator_container(render())):
        if name.startswith("TRTAOTI_"):
            assert f'"{name}"' in source, f"the chart sets {name}, which trtaoti operator does not read"


def test_scheduling_and_extras_values_reach_the_pod():
    values = VALUE_SETS["monitoring"]
    docs = render(**values)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == values["priorityClassName"]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    container = operator_container(docs)
    assert env_of(container)["HTTPS_PROXY"] == "http://proxy:3128"
    assert "--verbose" in container["args"]


# --- RBAC -------------------------------------------------------------------------


def rules_of(docs: list[dict], kind: str) -> list[dict]:
    return [rule for role in of_kind(docs, kind) for rule in role["rules"]]


def granted(rules: list[dict], group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for rule in rules:
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []):
            verbs |= set(rule["verbs"])
    return verbs


@pytest.mark.parametrize("name", ["defaults", "watch-namespaces"])
def test_rbac_has_no_wildcards_or_escalation(name: str):
    docs = render(**VALUE_SETS[name])
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: wildcard in {field}"
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            assert "nonResourceURLs" not in rule


@pytest.mark.parametrize("name", ["defaults", "watch-namespaces"])
def test_secrets_are_get_only(name: str):
    docs = render(**VALUE_SETS[name])
    for kind in ("ClusterRole", "Role"):
        assert granted(rules_of(docs, kind), "", "secrets") <= {"get"}


def test_cluster_wide_rbac_grants_the_operators_rules():
    docs = render()
    rules = yaml.safe_load(RULES_FILE.read_text())
    operator_role = next(r for r in of_kind(docs, "ClusterRole") if r["rules"] == rules)
    binding = next(
        b for b in of_kind(docs, "ClusterRoleBinding") if b["roleRef"]["name"] == operator_role["metadata"]["name"]
    )
    sa = one(docs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}]
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert not of_kind(docs, "Role")
    # what the operator must be able to do, spelled the way a user would check it
    all_rules = rules_of(docs, "ClusterRole")
    assert {"patch"} <= granted(all_rules, "trtaoti.dev", "trtaotimodels/status")
    assert {"create", "watch"} <= granted(all_rules, "batch", "jobs")
    assert not granted(all_rules, "", "nodes")
    # exactly the operator's rules: one ClusterRole, nothing added by the chart
    assert [r["rules"] for r in of_kind(docs, "ClusterRole")] == [rules]


def test_namespaced_rbac_grants_only_in_watched_namespaces():
    watch = VALUE_SETS["watch-namespaces"]["watchNamespaces"]
    docs = render(watchNamespaces=watch)
    roles = of_kind(docs, "Role")
    bindings = of_kind(docs, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(watch)
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(watch)
    sa_name = one(docs, "ServiceAccount")["metadata"]["name"]
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": NAMESPACE}]
        assert binding["roleRef"]["kind"] == "Role"
    # and no cluster-scoped permission at all
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    rules = yaml.safe_load(RULES_FILE.read_text())
    assert all(role["rules"] == rules for role in roles)


def test_existing_service_account_is_bound_not_created():
    docs = render(**VALUE_SETS["existing-service-account"])
    assert not of_kind(docs, "ServiceAccount")
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-operator"
    for binding in of_kind(docs, "ClusterRoleBinding"):
        assert binding["subjects"][0]["name"] == "platform-operator"


def test_rbac_create_false_renders_no_rbac():
    docs = render(rbac={"create": False})
    assert not [d for d in docs if d["apiVersion"].startswith("rbac.authorization.k8s.io/")]


# --- CRD --------------------------------------------------------------------------


def test_crd_is_the_generated_one_with_keep_policy():
    crd = one(render(), "CustomResourceDefinition")
    source = yaml.safe_load(CRD_SOURCE.read_text())
    assert crd["metadata"]["name"] == source["metadata"]["name"]
    assert crd["spec"] == source["spec"]
    assert source["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_crds_disabled_or_not_kept():
    assert not of_kind(render(crds={"enabled": False}), "CustomResourceDefinition")
    crd = one(render(crds={"enabled": True, "keep": False}), "CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


# --- labels, optional objects -----------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_recommended_labels_on_every_object(name: str):
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for doc in render(**VALUE_SETS[name]):
        labels = doc["metadata"].get("labels", {})
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert labels.get("app.kubernetes.io/instance") == RELEASE, where
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", where
        assert labels.get("app.kubernetes.io/version") == app_version, where
        assert labels.get("app.kubernetes.io/name"), where
        assert labels.get("helm.sh/chart", "").startswith("trtaoti-operator-"), where


def test_deployment_selector_matches_pod_labels():
    deployment = one(render(podLabels={"team": "ml"}), "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert pod_labels["team"] == "ml"
    assert "app.kubernetes.io/version" not in selector  # would break upgrades (immutable)


def test_service_monitor_targets_the_servers_the_operator_creates():
    from trtaoti.resources import names, serving

    cluster_wide = one(render(serviceMonitor={"enabled": True}), "ServiceMonitor")
    labels = names.serving_labels("resnet", "online")
    assert cluster_wide["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert cluster_wide["spec"]["namespaceSelector"] == {"any": True}
    assert cluster_wide["spec"]["endpoints"][0]["port"] == serving.PORT_NAME
    assert set(cluster_wide["spec"]["targetLabels"]) <= set(labels)
    namespaced = one(render(serviceMonitor={"enabled": True}, watchNamespaces=["team-a"]), "ServiceMonitor")
    assert namespaced["spec"]["namespaceSelector"] == {"matchNames": ["team-a"]}
    assert one(render(**VALUE_SETS["monitoring"]), "ServiceMonitor")["metadata"]["labels"]["release"] == "prometheus"


def test_optional_objects_are_off_by_default():
    docs = render()
    assert not of_kind(docs, "ServiceMonitor")
    assert not of_kind(docs, "PodDisruptionBudget")
    pdb = one(render(podDisruptionBudget={"enabled": True}), "PodDisruptionBudget")
    deployment = one(render(podDisruptionBudget={"enabled": True}), "Deployment")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    # one replica: the budget must never block a node drain
    assert pdb["spec"]["maxUnavailable"] >= 1


def test_packaged_chart_carries_rules_and_crd_but_not_the_generator(tmp_path):
    import tarfile

    run_helm("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("trtaoti-operator-*.tgz")
    with tarfile.open(package) as tar:
        names = set(tar.getnames())
    assert "trtaoti-operator/files/clusterrole-rules.yaml" in names
    assert "trtaoti-operator/templates/crds/trtaotimodels.yaml" in names
    assert "trtaoti-operator/values.schema.json" in names
    assert not [n for n in names if "/hack/" in n]


def test_documented_commands_name_the_rendered_objects():
    # docs/install.md installs release "trtaoti-operator" and waits on its Deployment.
    docs = (REPO / "docs" / "install.md").read_text()
    assert f"helm install {RELEASE} charts/trtaoti-operator" in docs
    deployment = one(render(), "Deployment")["metadata"]["name"]
    assert f"rollout status deployment/{deployment}" in docs
