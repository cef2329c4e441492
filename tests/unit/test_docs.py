"""The documentation users find with ansible-doc: every public role is listed with its short
description, and each role's page shows its examples and the facts it sets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.release import __version__ as ANSIBLE_CORE_VERSION

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COLLECTION = "rstyczynski.ansible"
# The internal role that holds what the public roles share; every other role is public.
INTERNAL_ROLES = {"async_job_common"}
PUBLIC_ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir() and p.name not in INTERNAL_ROLES)
# ansible-doc renders the examples of a role's entry point in its text output from 2.18 on;
# older releases keep them only in the JSON output.
CORE = tuple(int(part) for part in ANSIBLE_CORE_VERSION.split(".")[:2])
RENDERS_ROLE_EXAMPLES = CORE >= (2, 18)
# The text listing cuts long descriptions (after about 33 characters in 2.16).
LISTED_PREFIX = 30


def entry_point(role: str) -> dict:
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]


def facts_named_in_description(role: str) -> set[str]:
    """The role's variables that the description names and that are not inputs: the facts it sets."""
    spec = entry_point(role)
    description = " ".join(spec["description"])
    return set(re.findall(rf"C\(({role}_\w+)\)", description)) - set(spec.get("options", {}))


@pytest.fixture(scope="module")
def doc_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "rstyczynski").mkdir(parents=True)
    (root / "ansible_collections" / "rstyczynski" / "ansible").symlink_to(REPO, target_is_directory=True)
    return {
        "ANSIBLE_COLLECTIONS_PATH": str(root),
        "ANSIBLE_NOCOLOR": "1",
        "HOME": os.environ.get("HOME", str(root)),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def ansible_doc(env: dict[str, str], *args: str) -> str:
    command = [str(BIN / "ansible-doc"), "-t", "role", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_public_role_has_an_argument_spec():
    assert PUBLIC_ROLES
    for role in PUBLIC_ROLES:
        assert (REPO / "roles" / role / "meta" / "argument_specs.yml").is_file(), role


def test_the_listing_shows_exactly_the_five_public_roles(doc_env):
    listing = json.loads(ansible_doc(doc_env, "-l", "-j", COLLECTION))
    assert sorted(listing) == [
        f"{COLLECTION}.{role}"
        for role in ("async_job_forget", "async_job_list", "async_job_load", "async_job_run", "async_job_save")
    ]
    text = ansible_doc(doc_env, "-l", COLLECTION)
    assert set(re.findall(rf"{re.escape(COLLECTION)}\.\w+", text)) == set(listing)
    assert "async_job_common" not in text


def test_the_listing_names_every_public_role_with_its_short_description(doc_env):
    listing = ansible_doc(doc_env, "-l", COLLECTION)
    for role in PUBLIC_ROLES:
        short = entry_point(role)["short_description"]
        assert f"{COLLECTION}.{role}" in listing
        assert short[:LISTED_PREFIX] in listing, f"{role}: {short!r} not in\n{listing}"


def test_the_json_listing_carries_the_full_short_descriptions(doc_env):
    listing = json.loads(ansible_doc(doc_env, "-l", "-j", COLLECTION))
    for role in PUBLIC_ROLES:
        assert listing[f"{COLLECTION}.{role}"]["entry_points"]["main"] == entry_point(role)["short_description"]


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_the_role_page_shows_its_examples(doc_env, role):
    examples = entry_point(role).get("examples", "")
    assert examples.strip(), f"{role} has no examples in meta/argument_specs.yml"
    # The first task of the examples, as users would copy it.
    first_task = yaml.safe_load(examples)[0]["name"]

    document = json.loads(ansible_doc(doc_env, "-j", f"{COLLECTION}.{role}"))
    assert first_task in document[f"{COLLECTION}.{role}"]["entry_points"]["main"]["examples"]

    text = ansible_doc(doc_env, f"{COLLECTION}.{role}")
    if RENDERS_ROLE_EXAMPLES:
        assert "EXAMPLES" in text
        assert first_task in text
        assert f"{COLLECTION}.{role}" in text.split("EXAMPLES", 1)[1]


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_the_role_page_names_the_facts_the_role_sets(doc_env, role):
    facts = facts_named_in_description(role)
    assert facts, f"the description of {role} names no fact it sets"
    text = ansible_doc(doc_env, f"{COLLECTION}.{role}")
    missing = sorted(fact for fact in facts if fact not in text)
    assert not missing, f"ansible-doc does not show {missing}"
