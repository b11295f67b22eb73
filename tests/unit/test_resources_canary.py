"""Canary rollouts between artifacts: the split, the plan, the canary Deployment and
the status of an open canary (trtaoti.resources.canary, serving, status)."""

import copy
import datetime

import pytest
from pydantic import ValidationError
from test_resources_builders import BASE, OWNER, SETTINGS, artifact, make_spec, target

from trtaoti.api.models import CanarySpec, TrtAotiModelSpec
from trtaoti.resources import canary, names, serving
from trtaoti.resources.status import CanaryObservation, DeploymentObservation, ProfileObservation, compute_status

OLD, NEW = "0" * 32, "1" * 32
NOW = datetime.datetime(2026, 12, 2, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("replicas", "percent", "stable", "on_canary"),
    [(10, 10, 9, 1), (10, 25, 7, 3), (4, 50, 2, 2), (1, 10, 1, 1), (2, 99, 1, 2), (3, 1, 2, 1), (0, 50, 0, 0)],
)
def test_split_rounds_the_canary_up_and_keeps_one_replica_per_track(replicas, percent, stable, on_canary):
    split = canary.split(replicas, percent)
    assert (split.stable, split.canary) == (stable, on_canary)
    assert str(split) == f"{stable}/{on_canary}"


def manual(percent=10):
    return CanarySpec(percent=percent)


def after(seconds):
    return CanarySpec(percent=10, promotion="AfterHealthySeconds", healthy_seconds=seconds)


def test_a_new_artifact_opens_a_canary_beside_the_stable_one():
    plan = canary.plan(manual(), artifact(key=OLD), artifact(key=NEW), None, NOW)
    assert plan.stable.key == OLD and plan.canary.key == NEW and not plan.promoted


def test_without_a_canary_or_at_100_percent_the_new_artifact_rolls_straight_in():
    for spec in (None, manual(100)):
        plan = canary.plan(spec, artifact(key=OLD), artifact(key=NEW), None, NOW)
        assert plan.stable.key == NEW and plan.canary is None and plan.promoted


def test_rollback_and_compiling_keep_the_stable_artifact_alone():
    assert canary.plan(manual(), artifact(key=OLD), artifact(key=OLD), None, NOW) == canary.Plan(
        artifact(key=OLD), None
    )
    assert canary.plan(manual(), artifact(key=OLD), None, None, NOW) == canary.Plan(artifact(key=OLD), None)


def test_the_first_artifact_is_served_without_a_canary():
    assert canary.plan(manual(), None, artifact(key=NEW), None, NOW) == canary.Plan(artifact(key=NEW), None)
    assert canary.plan(manual(), None, None, None, NOW) is None


def test_manual_promotion_never_happens_by_itself():
    plan = canary.plan(manual(), artifact(key=OLD), artifact(key=NEW), "2026-01-01T00:00:00Z", NOW)
    assert plan.canary is not None and not plan.promoted and plan.recheck_after is None


def test_after_healthy_seconds_promotes_once_the_canary_was_available_long_enough():
    stable, new = artifact(key=OLD), artifact(key=NEW)
    assert canary.plan(after(60), stable, new, None, NOW).canary is not None  # not Available yet
    waiting = canary.plan(after(60), stable, new, "2026-12-02T11:59:30Z", NOW)
    assert waiting.canary is not None and waiting.recheck_after == 30
    promoted = canary.plan(after(60), stable, new, "2026-12-02T11:59:00Z", NOW)
    assert promoted.stable.key == NEW and promoted.canary is None and promoted.promoted


def test_canary_spec_validation_and_default_period():
    assert CanarySpec(percent=5, promotion="AfterHealthySeconds").healthy_period == 300
    with pytest.raises(ValidationError):
        CanarySpec(percent=0)
    with pytest.raises(ValidationError):
        CanarySpec(percent=101)


def test_the_crd_rule_on_healthy_seconds_tolerates_a_defaulted_canary():
    schema = TrtAotiModelSpec.model_json_schema(by_alias=True)
    rules = [r["rule"] for r in schema["$defs"]["CanarySpec"]["x-kubernetes-validations"]]
    assert all("has(self.healthySeconds)" in r and "has(self.promotion)" in r for r in rules)


def test_the_canary_deployment_has_its_own_name_selector_and_replicas_but_the_services_labels():
    spec = make_spec(serving={"canary": {"percent": 25}})
    online = target(spec)
    built = serving.build_deployment(OWNER, spec, online, artifact(key=NEW), SETTINGS, replicas=1, canary=True)
    assert built["metadata"]["name"] == names.canary_name("resnet", "online") == "resnet-online-canary"
    selector = built["spec"]["selector"]["matchLabels"]
    assert selector[names.LABEL_TRACK] == names.TRACK_CANARY
    pod_labels = built["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[names.LABEL_ARTIFACT_KEY] == NEW and selector.items() <= pod_labels.items()
    service_selector = serving.build_service(OWNER, spec, online.profile)["spec"]["selector"]
    assert service_selector.items() <= pod_labels.items()  # the Service sends it traffic too
    assert built["spec"]["replicas"] == 1

    stable = serving.build_deployment(OWNER, spec, online, artifact(key=OLD), SETTINGS, replicas=1)
    assert names.LABEL_TRACK not in stable["spec"]["selector"]["matchLabels"]
    assert names.LABEL_TRACK not in stable["spec"]["template"]["metadata"]["labels"]
    assert stable["spec"]["replicas"] == 1
    # Without a split the stable Deployment is exactly what it was before canaries existed.
    plain = serving.build_deployment(OWNER, spec, online, artifact(key=OLD), SETTINGS)
    assert plain["spec"]["replicas"] == 2


def test_an_autoscaled_stable_deployment_leaves_replicas_to_the_hpa_but_the_canary_sets_its_own():
    raw = copy.deepcopy(BASE)
    raw["serving"] = {"autoscaling": {"maxReplicas": 4}, "canary": {"percent": 10}}
    spec = TrtAotiModelSpec.model_validate(raw)
    online = target(spec)
    assert "replicas" not in serving.build_deployment(OWNER, spec, online, artifact(), SETTINGS, replicas=1)["spec"]
    built = serving.build_deployment(OWNER, spec, online, artifact(), SETTINGS, replicas=1, canary=True)
    assert built["spec"]["replicas"] == 1


def test_an_open_canary_shows_both_artifacts_and_the_split_and_is_not_ready():
    old, new = artifact(key=OLD), artifact(key=NEW)
    stable = DeploymentObservation("m-online", old, 3, 3, True)
    on_trial = DeploymentObservation("m-online-canary", new, 1, 1, True)
    open_ = ProfileObservation(
        "online", NEW, artifact=new, deployment=stable,
        canary=CanaryObservation(on_trial, percent=25, split="3/1", promotion="Manual"),
    )  # fmt: skip
    status = compute_status(None, [open_], 2, "t1")
    profile = status.profiles[0]
    assert profile.artifact.key == OLD and profile.artifact_key == NEW
    assert profile.canary.artifact.key == NEW and profile.canary.split == "3/1" and profile.canary.percent == 25
    assert profile.canary.deployment == "m-online-canary" and profile.canary.ready_replicas == 1
    assert profile.phase == "Compiled" and "canary open" in profile.message
    ready = next(c for c in status.conditions if c.type == "Ready")
    # RollingOut is what the Argo CD and Flux health checks read as Progressing.
    assert ready.status == "False" and ready.reason == "RollingOut"
    assert {OLD, NEW} <= {profile.artifact.key, profile.canary.artifact.key}

    closed = ProfileObservation(
        "online", NEW, artifact=new, deployment=DeploymentObservation("m-online", new, 4, 4, True)
    )
    after_promotion = compute_status(status, [closed], 2, "t2")
    assert after_promotion.profiles[0].canary is None and after_promotion.profiles[0].phase == "Ready"
    assert next(c for c in after_promotion.conditions if c.type == "Ready").status == "True"
