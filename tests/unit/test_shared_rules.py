"""Every rule that guards names and records has one definition, in async_job_common.

The public roles describe their call (names, state directory, OCI inputs) in block variables
and use the rules of roles/async_job_common/vars/main.yml. A role that writes its own copy of a
rule again fails here, with the rule and the place.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMMON = REPO / "roles" / "async_job_common"
PUBLIC_ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir() and p != COMMON)

# What gives a copy of each rule away: a fragment of its definition.
RULES = {
    "the characters a name may not hold": re.compile(r"x00-\\?x1f|x1f\\?x7f"),
    "the shape of an ansible_job_id": re.compile(r"j\?\[0-9\]|\\d\+\\\.\\d"),
    "the shape of a user name": re.compile(r"A-Za-z0-9_\.-"),
    "a relative state directory is relative to the playbook": re.compile(r"playbook_dir"),
    "the OCI inputs required with backend oci": re.compile(r"is required with"),
    "the oci command line": re.compile(r"'--config-file'|'--profile'"),
    "the oci:// URI of a record": re.compile(r"'oci://'\s*~|oci://\{\{"),
    "a record without ansible_job_id": re.compile(r"holds no ansible_job_id"),
    "the longest name": re.compile(r"255|max_bytes"),
    "the auth modes of the OCI CLI": re.compile(r"instance_principal'?, '?resource_principal"),
    "a job's status from its host's answer": re.compile(r"'lost' if|'running' if"),
}


def role_files(role: str) -> list[Path]:
    return sorted(p for p in (REPO / "roles" / role).rglob("*.yml") if "meta" not in p.parts)


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_no_public_role_defines_a_shared_rule_again(role):
    copies = []
    for path in role_files(role):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.lstrip().startswith("#"):
                continue
            for rule, pattern in RULES.items():
                if pattern.search(line):
                    copies.append(f"{path.relative_to(REPO)}:{number}: {rule}: {line.strip()}")
    assert copies == [], "\n".join(copies)


def test_every_rule_is_defined_in_the_shared_role():
    text = (COMMON / "vars" / "main.yml").read_text()
    missing = [
        rule for rule, pattern in RULES.items() if rule != "the oci:// URI of a record" and not pattern.search(text)
    ]
    assert missing == []
    assert "oci://" in text


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_every_public_role_takes_the_shared_rules_as_a_dependency(role):
    meta = yaml.safe_load((REPO / "roles" / role / "meta" / "main.yml").read_text())
    assert meta["dependencies"] == [{"role": "rstyczynski.ansible.async_job_common"}]


def test_the_shared_role_adds_no_task_to_the_roles_that_depend_on_it():
    # A dependency's tasks/main.yml runs before the role's own tasks, at every include.
    assert not (COMMON / "tasks" / "main.yml").exists()


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_every_public_role_describes_its_call_in_block_variables(role):
    # Role variables of another role's prefix would draw ansible-lint's var-naming rule, and an
    # including role's role variables would leak into the roles it includes.
    main = yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text())
    assert len(main) == 1, "tasks/main.yml is one block"
    assert "block" in main[0], "tasks/main.yml is one block"
    described = main[0]["vars"]
    for name in ("__async_job_common_role", "__async_job_common_names", "__async_job_common_backend"):
        assert name in described
    assert described["__async_job_common_role"] == role
    role_vars = yaml.safe_load((REPO / "roles" / role / "vars" / "main.yml").read_text()) or {}
    assert [name for name in role_vars if not name.lstrip("_").startswith(f"{role}_")] == []
