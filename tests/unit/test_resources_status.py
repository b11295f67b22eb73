"""Profile phases, Compiled/Ready conditions and the events their transitions post."""

from trtaoti.api.models import Artifact, BatchRange
from trtaoti.resources.status import (
    DeploymentObservation,
    JobObservation,
    Problem,
    ProfileObservation,
    compute_status,
    initial_status,
    known_artifact,
    transitions,
)

KEY = "k" * 32


def art(key=KEY):
    return Artifact(
        uri=f"s3://b/{key}/model.pt2", sha256="a" * 64, bytes=10, key=key, batch=BatchRange(min=1, opt=4, max=16)
    )


def deployment(artifact, ready=2, replicas=2, rolled_out=True):
    return DeploymentObservation("m-p", artifact, replicas, ready, rolled_out)


def cond(status, type_):
    return next(c for c in status.conditions if c.type == type_)


def test_first_visit_is_unknown_not_healthy():
    status = initial_status(1, "2026-01-01T00:00:00Z")
    assert {c.type: c.status for c in status.conditions} == {"Compiled": "Unknown", "Ready": "Unknown"}


def test_compiling_then_compiled_then_ready():
    s0 = initial_status(1, "t0")
    s1 = compute_status(s0, [ProfileObservation("p", KEY, job=JobObservation("job", "Running"))], 1, "t1")
    assert s1.profiles[0].phase == "Compiling" and s1.profiles[0].compile_job == "job"
    assert cond(s1, "Compiled").status == "False" and cond(s1, "Compiled").reason == "Compiling"
    assert cond(s1, "Ready").last_transition_time == "t1"  # Unknown -> False is a transition

    rolling = ProfileObservation("p", KEY, artifact=art(), deployment=deployment(art(), ready=0))
    s2 = compute_status(s1, [rolling], 1, "t2")
    assert s2.profiles[0].phase == "Compiled"
    assert cond(s2, "Compiled").status == "True" and cond(s2, "Compiled").last_transition_time == "t2"
    assert cond(s2, "Ready").status == "False" and cond(s2, "Ready").reason == "RollingOut"
    assert cond(s2, "Ready").last_transition_time == "t1"  # still False: no transition

    ready = ProfileObservation("p", KEY, artifact=art(), deployment=deployment(art()), endpoint="http://x")
    s3 = compute_status(s2, [ready], 1, "t3")
    assert s3.profiles[0].phase == "Ready" and s3.profiles_ready == "1/1"
    assert cond(s3, "Ready").status == "True" and cond(s3, "Ready").last_transition_time == "t3"
    assert s3.observed_generation == 1 and cond(s3, "Ready").observed_generation == 1
    assert cond(s3, "Compiled").last_transition_time == "t2"


def test_failed_compile_carries_the_compilers_message():
    failed = JobObservation("job", "Failed", "BackoffLimitExceeded; compiler: exit code 2: input x: bad dtype")
    status = compute_status(None, [ProfileObservation("p", KEY, job=failed)], 3, "t")
    compiled = cond(status, "Compiled")
    assert compiled.status == "False" and compiled.reason == "CompileFailed"
    assert "input x: bad dtype" in compiled.message and "p:" in compiled.message
    assert status.profiles[0].phase == "Failed"
    events = transitions(None, status)
    assert any(e.type == "Warning" and "bad dtype" in e.message for e in events)


def test_problem_reason_surfaces():
    obs = ProfileObservation("p", KEY, problem=Problem("SecretNotFound", "storage Secret ns/x does not exist"))
    status = compute_status(None, [obs], 1, "t")
    assert cond(status, "Compiled").reason == "SecretNotFound"
    assert cond(status, "Ready").reason == "SecretNotFound"


def test_rejected_serving_fails_ready_but_not_compiled():
    refused = Problem(
        "ServingRejected",
        'Deployment.apps "m-p" is invalid: spec.template...: must be less than or equal to memory limit',
    )
    obs = ProfileObservation("p", KEY, artifact=art(), problem=refused)
    status = compute_status(None, [obs], 1, "t")
    assert status.profiles[0].phase == "Failed" and "memory limit" in status.profiles[0].message
    assert cond(status, "Compiled").status == "True"
    ready = cond(status, "Ready")
    assert (ready.status, ready.reason) == ("False", "ServingRejected") and "memory limit" in ready.message
    assert any(e.type == "Warning" and "memory limit" in e.message for e in transitions(None, status))


def test_a_compile_pod_no_node_can_take_says_why():
    waiting = JobObservation(
        "job",
        "Running",
        "compile pod waiting for a node: 0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector.",
    )
    status = compute_status(None, [ProfileObservation("p", KEY, job=waiting)], 1, "t")
    assert status.profiles[0].phase == "Compiling" and "node affinity" in status.profiles[0].message
    compiled = cond(status, "Compiled")
    assert compiled.reason == "Compiling" and "p: compile pod waiting for a node" in compiled.message


def test_new_artifact_compiling_while_old_serves():
    old = art("o" * 32)
    obs = ProfileObservation("p", KEY, job=JobObservation("job2", "Running"), deployment=deployment(old))
    status = compute_status(None, [obs], 2, "t")
    profile = status.profiles[0]
    assert profile.phase == "Compiling" and profile.artifact.key == old.key and profile.artifact_key == KEY
    assert (
        cond(status, "Ready").status == "False" and "previous artifact still serving" in cond(status, "Ready").message
    )


def test_ready_needs_every_profile():
    ready = ProfileObservation("a", KEY, artifact=art(), deployment=deployment(art()))
    rolling = ProfileObservation("b", KEY, artifact=art(), deployment=deployment(art(), rolled_out=False))
    status = compute_status(None, [ready, rolling], 1, "t")
    assert status.profiles_ready == "1/2" and cond(status, "Ready").status == "False"
    assert "b: rolling out" in cond(status, "Ready").message


def test_job_succeeded_without_manifest_is_a_failure():
    obs = ProfileObservation("p", KEY, job=JobObservation("job", "Succeeded"))
    status = compute_status(None, [obs], 1, "t")
    assert status.profiles[0].phase == "Failed" and "no manifest" in status.profiles[0].message


def test_no_events_without_transitions():
    obs = [ProfileObservation("p", KEY, artifact=art(), deployment=deployment(art()))]
    first = compute_status(None, obs, 1, "t1")
    again = compute_status(first, obs, 1, "t2")
    assert transitions(first, again) == []
    assert again.to_wire() == first.to_wire()  # nothing to patch on a no-op reconcile


def test_superseded_keys_are_remembered_for_retention_delete():
    old, new, newer = "o" * 32, "n" * 32, "w" * 32
    serving_old = compute_status(
        None, [ProfileObservation("p", old, artifact=art(old), deployment=deployment(art(old)))], 1
    )
    assert serving_old.superseded_artifact_keys == []
    # A new spec compiles while the old artifact still serves: nothing superseded yet.
    compiling = compute_status(
        serving_old,
        [ProfileObservation("p", new, job=JobObservation("j", "Running"), deployment=deployment(art(old)))],
        2,
    )
    assert compiling.superseded_artifact_keys == []
    served_new = compute_status(
        compiling, [ProfileObservation("p", new, artifact=art(new), deployment=deployment(art(new)))], 2
    )
    assert served_new.superseded_artifact_keys == [old]
    # Reverting to the old spec brings its key back into use: no longer superseded.
    reverted = compute_status(
        served_new, [ProfileObservation("p", old, artifact=art(old), deployment=deployment(art(old)))], 3
    )
    assert reverted.superseded_artifact_keys == [new]
    third = compute_status(
        reverted, [ProfileObservation("p", newer, artifact=art(newer), deployment=deployment(art(newer)))], 4
    )
    assert third.superseded_artifact_keys == [new, old]


def test_a_fleet_reads_per_product_and_a_product_without_nodes_holds_only_itself():
    """Three products of one profile: two serve, one has no node for its compile pod."""
    waiting = JobObservation("m-p-3", "Running", "compile pod waiting for a node: 0/5 nodes are available: "
                             "5 node(s) didn't match Pod's node affinity/selector")  # fmt: skip

    def on(product, **fields):
        return ProfileObservation("p", f"key-{product}", product=product, label=f"p on {product}", **fields)

    serving = [on(p, artifact=art(f"key-{p}"), deployment=deployment(art(f"key-{p}"))) for p in ("H100", "A100")]
    before = compute_status(None, [*serving, on("L4", job=JobObservation("m-p-3", "Running"))], 1, "t1")
    status = compute_status(before, [*serving, on("L4", job=waiting)], 1, "t2")
    assert [(p.name, p.gpu_product, p.phase) for p in status.profiles] == [
        ("p", "H100", "Ready"),
        ("p", "A100", "Ready"),
        ("p", "L4", "Compiling"),
    ]
    assert status.profiles_ready == "2/3"
    ready = cond(status, "Ready")
    assert (ready.status, ready.reason) == ("False", "Compiling")  # GitOps tools read it as progressing
    assert "compiling: p on L4" in ready.message and "p on L4: compile pod waiting for a node" in ready.message
    (event,) = transitions(before, status)
    assert (event.type, event.reason) == ("Warning", "WaitingForNode")
    assert event.message.startswith("profile p on L4: compile Job m-p-3: compile pod waiting for a node: 0/5 nodes")
    assert transitions(status, compute_status(status, [*serving, on("L4", job=waiting)], 1, "t3")) == []


def test_an_artifact_found_for_this_generation_stays_known_while_the_store_is_unreadable():
    """What the reconciler may keep serving, Ready, when the store cannot be read: only
    the artifact this very generation already found under the same key."""
    ready = compute_status(None, [ProfileObservation("p", KEY, artifact=art(), deployment=deployment(art()))], 4, "t")
    assert ready.profiles[0].phase == "Ready"
    assert known_artifact(ready, 4, "p", KEY) == art()
    rolling_out = ProfileObservation("p", KEY, artifact=art(), deployment=deployment(art(), ready=0))
    rolling = compute_status(None, [rolling_out], 4, "t")
    assert rolling.profiles[0].phase == "Compiled" and known_artifact(rolling, 4, "p", KEY) == art()

    assert known_artifact(ready, 5, "p", KEY) is None  # a newer spec: its key is not known yet
    assert known_artifact(ready, 4, "p", "o" * 32) is None  # another key
    assert known_artifact(ready, 4, "q", KEY) is None  # another profile
    assert known_artifact(ready, 4, "p", None) is None  # no key (the ETag was never read)

    # A profile that could not be checked at this generation (e.g. the spec changed while
    # the store was down) stays unknown until the store answers, whatever it serves.
    unreadable = Problem("StorageUnavailable", "reading model.exportedProgram: connection refused")
    stuck = compute_status(
        ready, [ProfileObservation("p", KEY, deployment=deployment(art()), problem=unreadable)], 5, "t"
    )
    assert stuck.profiles[0].phase == "Failed" and known_artifact(stuck, 5, "p", KEY) is None
    # Serving an older artifact while the new one compiles: not this key's.
    old = art("o" * 32)
    compiling = compute_status(ready, [ProfileObservation("p", KEY, job=JobObservation("job", "Running"),
                                                          deployment=deployment(old))], 5, "t")  # fmt: skip
    assert known_artifact(compiling, 5, "p", KEY) is None
