"""Security contexts that satisfy the `restricted` Pod Security Standard.

Every pod the operator creates (compile Jobs, serving Deployments) runs as a numeric
non-root user with the RuntimeDefault seccomp profile and no capabilities, so the
operator works in namespaces labelled `pod-security.kubernetes.io/enforce=restricted`.
"""

from __future__ import annotations

from typing import Any


def pod_security_context(run_as_user: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "runAsGroup": run_as_user,
        "fsGroup": run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(read_only_root: bool = True) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
