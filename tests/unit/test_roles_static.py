"""Static checks that keep the roles consistent: spec versus defaults, one backend file per
choice, documentation that renders with ansible-doc."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))


def spec(role: str) -> dict:
    return yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def defaults(role: str) -> dict:
    path = REPO / "roles" / role / "defaults" / "main.yml"
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def test_public_roles_are_found():
    assert {"async_job_save", "async_job_load"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_and_defaults_agree(role):
    options = spec(role)["main"]["options"]
    role_defaults = defaults(role)

    for name, value in role_defaults.items():
        assert name in options, f"{name} is in defaults/main.yml but not in the argument spec"
        assert options[name].get("default") == value, f"{name}: spec default differs from defaults/main.yml"
    for name, option in options.items():
        assert name.startswith(f"{role}_"), f"{name} does not carry the role prefix"
        assert option.get("type"), f"{name} has no type"
        assert option.get("description"), f"{name} has no description"
        if option.get("required"):
            assert "default" not in option, f"{name} is required and has a spec default"
            assert name not in role_defaults, f"{name} is required and has a default in defaults/main.yml"
        elif "default" in option:
            assert name in role_defaults, f"{name} has a spec default but none in defaults/main.yml"


# The task files a role includes by backend name. async_job_run stores through async_job_load
# and async_job_save; only its wait for another run's record is backend-specific.
BACKEND_SWITCH = {"async_job_run": "follow_"}


@pytest.mark.parametrize("role", ROLES)
def test_every_backend_choice_has_its_task_file(role):
    choices = spec(role)["main"]["options"][f"{role}_backend"]["choices"]
    prefix = BACKEND_SWITCH.get(role, "backend_")
    files = {p.stem.removeprefix(prefix) for p in (REPO / "roles" / role / "tasks").glob(f"{prefix}*.yml")}
    assert set(choices) == files


# The keys of a task that hold more tasks.
TASK_LISTS = ("block", "rescue", "always")


def tasks_in(tasks: list[dict] | None) -> Iterator[dict]:
    """Every task of a task list, also those inside block, rescue and always, at any depth."""
    for task in tasks or []:
        yield task
        for key in TASK_LISTS:
            yield from tasks_in(task.get(key))


def public_facts(role: str) -> set[str]:
    """The facts the role's task files set with set_fact that are not internal (``__`` names)."""
    facts = set()
    for path in (REPO / "roles" / role / "tasks").glob("*.yml"):
        for task in tasks_in(yaml.safe_load(path.read_text())):
            facts.update(k for k in task.get("ansible.builtin.set_fact") or {} if not k.startswith("__"))
    return facts


def test_facts_set_inside_blocks_are_found():
    nested = [
        {"ansible.builtin.set_fact": {"top": 1, "__internal": 2}},
        {
            "block": [{"block": [{"ansible.builtin.set_fact": {"deep": 1}}]}],
            "rescue": [{"ansible.builtin.set_fact": {"rescued": 1}}],
            "always": [{"ansible.builtin.debug": {"msg": "x"}}, {"ansible.builtin.set_fact": {"always": 1}}],
        },
    ]
    found = {k for task in tasks_in(nested) for k in task.get("ansible.builtin.set_fact") or {}}
    assert found == {"top", "__internal", "deep", "rescued", "always"}


@pytest.mark.parametrize("role", ROLES)
def test_description_names_every_fact_the_role_sets(role):
    description = " ".join(spec(role)["main"]["description"])
    readme = (REPO / "roles" / role / "README.md").read_text()
    facts = public_facts(role)
    assert facts, f"no task file of {role} sets a public fact"
    for fact in facts:
        assert fact in description, f"{fact} is not named in the spec description"
        assert fact in readme, f"{fact} is not named in the role README"


@pytest.fixture(scope="module")
def doc_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "rstyczynski").mkdir(parents=True)
    (root / "ansible_collections" / "rstyczynski" / "ansible").symlink_to(REPO)
    return {"ANSIBLE_COLLECTIONS_PATH": str(root), "PATH": str(Path(sys.executable).parent), "ANSIBLE_NOCOLOR": "1"}


def ansible_doc(env, *args):
    command = [str(Path(sys.executable).parent / "ansible-doc"), "-t", "role", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ansible_doc_lists_every_public_role(doc_env):
    listing = ansible_doc(doc_env, "-l", "rstyczynski.ansible")
    for role in ROLES:
        assert f"rstyczynski.ansible.{role}" in listing
        # ansible-doc before 2.17 cuts descriptions in the listing to about 33 characters.
        assert spec(role)["main"]["short_description"][:30] in listing


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_renders_every_option(doc_env, role):
    text = ansible_doc(doc_env, f"rstyczynski.ansible.{role}")
    for name in spec(role)["main"]["options"]:
        assert name in text
