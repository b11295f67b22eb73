"""`helm install` of the chart on the real control plane.

The release namespace enforces the `restricted` Pod Security Standard: the operator's
pod must be admitted (KWOK runs no containers, but admission is the real apiserver's).
Then, authenticated as the chart's ServiceAccount with a TokenRequest token (not
impersonation), the operator may do exactly what it needs: patch TrtAotiModel status,
create Jobs, read the Secret a model names; and nothing more: no listing Secrets, no
touching nodes, no RBAC, and with watchNamespaces nothing outside those namespaces.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from operator_support import (
    Models,
    OperatorProcess,
    model_manifest,
    storage_secret,
    storage_uri,
    upload_model,
)
from support.binaries import versions
from support.credentials import service_account_kubeconfig

pytestmark = pytest.mark.cluster

CHART = "charts/trtaoti-operator"
DEADLINE_SECONDS = 60


# How a refused API call shows in the operator's log, and nothing else: the kubernetes
# client's ApiException ("(403)", then "Reason: Forbidden"), the Status it or kopf
# carries ("code": 403, "reason": "Forbidden", as JSON or a Python dict), the
# apiserver's message ("... is forbidden: User ..."), kopf's APIForbiddenError and its
# "Not enough permissions" warnings. Not a bare " 403": artifact keys are hex and
# appear in log lines ("... for key 4033d3a5..."), which made the test fail at random.
PERMISSION_DENIED = re.compile(
    r"\(403\)|Reason: Forbidden|[\"']code[\"']:\s*403\b|[\"']reason[\"']:\s*[\"']Forbidden[\"']"
    r"|\bis forbidden\b|APIForbiddenError|Not enough permissions"
)


def release_name(namespace: str) -> str:
    # Unique per test: the chart's cluster-scoped RBAC objects are named after the release.
    return "op-" + namespace[-6:]


@pytest.fixture
def installed(cluster, restricted_namespace) -> Iterator[callable]:
    """install(values) -> (release, helm stdout); every release is uninstalled afterwards."""
    releases: list[str] = []

    def install(values: dict) -> tuple[str, str]:
        release = release_name(restricted_namespace) + (f"-{len(releases)}" if releases else "")
        # The CRD is cluster-wide and shared with other tests: installing it from the chart
        # would make this release its owner. Its rendering is checked with a server-side
        # dry run instead (test_chart_crd_is_accepted_by_the_apiserver).
        args = ["install", release, CHART, "--namespace", restricted_namespace, "--set", "crds.enabled=false"]
        for key, value in values.items():
            args += ["--set-json", f"{key}={json.dumps(value)}"]
        out = cluster.helm(*args)
        releases.append(release)
        return release, out

    yield install
    for release in releases:
        cluster.helm(
            "uninstall", release, "--namespace", restricted_namespace, "--wait", "--timeout", "60s", check=False
        )


def wait_for(predicate, what: str, timeout: float = DEADLINE_SECONDS):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def operator_pods(core: client.CoreV1Api, namespace: str, release: str) -> list:
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/name=trtaoti-operator"
    return core.list_namespaced_pod(namespace, label_selector=selector).items


def replica_set_failures(cluster, namespace: str) -> str:
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    return "; ".join(e["message"] for e in events if e.get("reason") == "FailedCreate")


def service_account_api(cluster, namespace: str, service_account: str) -> client.ApiClient:
    """An API client authenticated only by a TokenRequest token of the ServiceAccount."""
    with cluster.api_client() as admin:
        token = (
            client.CoreV1Api(admin)
            .create_namespaced_service_account_token(
                service_account,
                namespace,
                client.AuthenticationV1TokenRequest(
                    spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
                ),
            )
            .status.token
        )
        admin_config = admin.configuration
    config = client.Configuration()
    config.host = admin_config.host
    config.ssl_ca_cert = admin_config.ssl_ca_cert
    config.verify_ssl = admin_config.verify_ssl
    config.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(config)


def can_i(
    api: client.ApiClient,
    verb: str,
    resource: str,
    namespace: str | None = None,
    group: str = "",
    subresource: str | None = None,
) -> bool:
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, group=group, namespace=namespace, subresource=subresource
            )
        )
    )
    return client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed


def whoami(api: client.ApiClient) -> str:
    review = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
    return review.status.user_info.username


def test_operator_pod_is_admitted_under_restricted(cluster, restricted_namespace, installed):
    release, notes = installed({})
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)

        def admitted() -> list:
            pods = operator_pods(core, restricted_namespace, release)
            if not pods and (failures := replica_set_failures(cluster, restricted_namespace)):
                raise AssertionError(f"the operator pod was rejected: {failures}")
            return pods

        pod = wait_for(admitted, "the ReplicaSet to create the operator pod")[0]
        assert pod.spec.security_context.run_as_non_root is True
        assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
    assert restricted_namespace in notes and "every namespace" in notes


def test_namespace_really_enforces_restricted(cluster, restricted_namespace, installed):
    """Guards the test above: the namespace rejects the chart's own pod once it is made
    to escalate privileges, so an admitted pod means a compliant pod."""
    release, _ = installed({})
    deployment = json.loads(
        cluster.kubectl("get", "deployment", f"{release}-trtaoti-operator", "-n", restricted_namespace, "-o", "json")
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "guard", "namespace": restricted_namespace},
        "spec": deployment["spec"]["template"]["spec"],
    }
    cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod))  # admitted as installed
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(subprocess.CalledProcessError) as rejected:
        cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    assert "violates PodSecurity" in rejected.value.stderr
    assert "allowPrivilegeEscalation" in rejected.value.stderr


def test_cluster_wide_permissions_are_exactly_the_operators(cluster, restricted_namespace, namespace, installed):
    release, _ = installed({})
    service_account = f"{release}-trtaoti-operator"
    with service_account_api(cluster, restricted_namespace, service_account) as api:
        assert whoami(api) == f"system:serviceaccount:{restricted_namespace}:{service_account}"
        # what the operator does, in any namespace
        assert can_i(api, "watch", "trtaotimodels", namespace, group="trtaoti.dev")
        assert can_i(api, "patch", "trtaotimodels", namespace, group="trtaoti.dev", subresource="status")
        assert can_i(api, "create", "jobs", namespace, group="batch")
        assert can_i(api, "patch", "deployments", namespace, group="apps")
        assert can_i(api, "create", "events", namespace)
        assert can_i(api, "get", "secrets", namespace)
        # and nothing more
        assert not can_i(api, "list", "secrets", namespace)
        assert not can_i(api, "watch", "secrets", namespace)
        assert not can_i(api, "delete", "nodes")
        assert not can_i(api, "create", "pods", namespace)
        assert not can_i(api, "update", "trtaotimodels", namespace, group="trtaoti.dev")
        assert not can_i(api, "create", "customresourcedefinitions", group="apiextensions.k8s.io")
        assert not can_i(api, "list", "namespaces")
        assert not can_i(api, "create", "clusterrolebindings", group="rbac.authorization.k8s.io")
        assert not can_i(api, "create", "serviceaccounts", namespace, subresource="token")
        # a real call, not only a review: listing Secrets is refused by the apiserver
        with pytest.raises(client.ApiException) as refused:
            client.CoreV1Api(api).list_namespaced_secret(namespace)
        assert refused.value.status == 403


def test_watch_namespaces_confines_permissions(cluster, restricted_namespace, namespace, installed):
    release, notes = installed({"watchNamespaces": [namespace]})
    service_account = f"{release}-trtaoti-operator"
    with service_account_api(cluster, restricted_namespace, service_account) as api:
        assert can_i(api, "create", "jobs", namespace, group="batch")
        assert can_i(api, "patch", "trtaotimodels", namespace, group="trtaoti.dev", subresource="status")
        # outside the watched namespace: nothing, not even in the operator's own namespace
        for elsewhere in (restricted_namespace, "default"):
            assert not can_i(api, "create", "jobs", elsewhere, group="batch")
            assert not can_i(api, "get", "secrets", elsewhere)
            assert not can_i(api, "list", "trtaotimodels", elsewhere, group="trtaoti.dev")
        assert not can_i(api, "list", "trtaotimodels", None, group="trtaoti.dev")  # cluster-wide list
        assert not can_i(api, "list", "customresourcedefinitions", group="apiextensions.k8s.io")
    with cluster.api_client() as admin:
        pod = wait_for(lambda: operator_pods(client.CoreV1Api(admin), restricted_namespace, release), "operator pod")[0]
        assert f"--namespace={namespace}" in pod.spec.containers[0].args
    assert namespace in notes


def test_chart_crd_is_accepted_by_the_apiserver(cluster, restricted_namespace):
    """The chart's CRD, as rendered, passes the apiserver's CRD validation (server-side dry run)."""
    # --kube-version: offline rendering must not depend on the helm build's default.
    rendered = cluster.helm(
        "template", "crdcheck", CHART, "--namespace", restricted_namespace,
        "--kube-version", versions()["KUBERNETES_VERSION"].lstrip("v"),
        "--show-only", "templates/crds/trtaotimodels.yaml",
    )  # fmt: skip # argv: flags beside their values
    chart_crd = yaml.safe_load(rendered)
    assert chart_crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    try:
        cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "--field-manager=chart-test",
            "--dry-run=server", "-f", "-", input=json.dumps(chart_crd),
        )  # fmt: skip # argv: flags beside their values
    except subprocess.CalledProcessError as rejected:
        pytest.fail(f"the apiserver rejects the chart's CRD: {rejected.stderr.strip()}", pytrace=False)


def test_uninstall_removes_cluster_scoped_rbac(cluster, restricted_namespace, installed):
    release, _ = installed({})
    names = f"{release}-trtaoti-operator"
    assert cluster.kubectl("get", "clusterrole", names, "-o", "name").strip()
    cluster.helm("uninstall", release, "--namespace", restricted_namespace, "--wait", "--timeout", "60s")
    leftover = cluster.kubectl(
        "get", "clusterroles,clusterrolebindings", "-l", f"app.kubernetes.io/instance={release}", "-o", "name"
    )
    assert leftover.strip() == ""


@pytest.mark.parametrize("scope", ["namespaced", "cluster-wide"])
def test_operator_reconciles_with_the_charts_rbac(
    cluster, crd, restricted_namespace, namespace, installed, tmp_path, scope
):
    """The real `trtaoti operator`, authenticated as the chart's ServiceAccount, in both
    of the chart's scopes: with watchNamespaces the per-namespace Role alone, and by
    default (every namespace, cluster-wide watches) the ClusterRole alone, is enough to
    watch, create the compile Job and write status, with no permission errors in its log."""
    watched = [namespace] if scope == "namespaced" else []
    release, _ = installed({"watchNamespaces": watched} if watched else {})
    kubeconfig = service_account_kubeconfig(
        cluster, restricted_namespace, f"{release}-trtaoti-operator", tmp_path / "kubeconfig"
    )
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", watched)
    storage_secret(cluster, namespace)
    manifest = model_manifest(
        "chartrbac",
        namespace,
        upload_model(cluster, namespace),
        storage_uri(cluster, namespace),
        profiles=[{"name": "online", "min": 1, "opt": 4, "max": 16}],
    )
    models = Models(cluster, namespace)
    operator.start()
    try:
        models.apply(manifest)

        def compiling() -> bool:
            # A refused call fails the test at once rather than at the deadline.
            if "is forbidden" in operator.log():
                pytest.fail(f"the operator was refused a call:\n{operator.log()[-4000:]}", pytrace=False)
            condition = models.condition("chartrbac", "Compiled")
            return bool(condition and condition["status"] == "False" and condition["reason"] == "Compiling")

        try:
            wait_for(compiling, "the operator to start compiling (Compiled=False, reason Compiling)", timeout=180)
        except AssertionError as error:
            pytest.fail(f"{error}\noperator log:\n{operator.log()[-4000:]}", pytrace=False)
        assert models.jobs("chartrbac"), "the operator wrote status but created no compile Job"
        operator.assert_running()
    finally:
        operator.stop()
        models.close()
    log = operator.log()
    # Any refusal means the chart's RBAC misses a rule the operator uses.
    denied = [line for line in log.splitlines() if PERMISSION_DENIED.search(line)]
    assert not denied, "\n".join(denied[:10])


def test_upgrade_to_watch_namespaces_withdraws_cluster_wide_rights(cluster, restricted_namespace, namespace, installed):
    """Narrowing the scope on `helm upgrade` takes the cluster-wide grant away at once."""
    release, _ = installed({})
    service_account = f"{release}-trtaoti-operator"
    other = "default"
    with service_account_api(cluster, restricted_namespace, service_account) as api:
        assert can_i(api, "create", "jobs", other, group="batch")
    cluster.helm(
        "upgrade", release, CHART, "--namespace", restricted_namespace, "--reuse-values",
        "--set-json", f'watchNamespaces=["{namespace}"]',
    )  # fmt: skip # argv: flags beside their values
    with service_account_api(cluster, restricted_namespace, service_account) as api:
        assert can_i(api, "create", "jobs", namespace, group="batch")
        assert not can_i(api, "create", "jobs", other, group="batch")
    cluster_scoped = cluster.kubectl(
        "get", "clusterroles,clusterrolebindings", "-o", "name", "-l", f"app.kubernetes.io/instance={release}"
    )
    assert cluster_scoped.strip() == ""
    with cluster.api_client() as admin:
        deployment = client.AppsV1Api(admin).read_namespaced_deployment(service_account, restricted_namespace)
    assert f"--namespace={namespace}" in deployment.spec.template.spec.containers[0].args
