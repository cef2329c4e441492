"""The contract the collection was built to, and the project's own copy of its examples.

The contract is the README of async_job_save kept in ``../shared/seed/`` beside the checkout,
in the workspace where the collection is developed. A clone of the repository has no such
directory. So the playbook examples of the contract are also copied here, as the project's
own test data (EXAMPLES): the tests run each example from this copy everywhere, and from the
contract itself when it is present (``source`` "contract", skipped with the reason when it is
absent). While the contract is present, a test checks that the copy still equals its examples.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO.parent / "shared" / "seed" / "async_job_save.README.md"
CONTRACT_NAME = "../shared/seed/async_job_save.README.md"

BASIC = "Basic Usage (Filesystem Backend)"
OCI = "OCI Backend Usage"
IDEMPOTENT = "Idempotent Pattern (with async_job_load)"

# The three playbook examples of the contract, as it writes them (its comments left out).
EXAMPLES: dict[str, list[dict]] = {
    BASIC: [
        {
            "name": "Deploy application with persistent job tracking",
            "hosts": "web_servers",
            "gather_facts": True,
            "tasks": [
                {
                    "name": "Start long-running deployment",
                    "ansible.builtin.shell": "/opt/deploy/deploy.sh",
                    "async": 3600,
                    "poll": 0,
                    "register": "deploy_task",
                },
                {
                    "name": "Save deployment job metadata",
                    "ansible.builtin.include_role": {"name": "rstyczynski.ansible.async_job_save"},
                    "vars": {
                        "async_job_save_playbook_name": "web_deployment",
                        "async_job_save_job_name": "deploy_v2.1.0",
                        "async_job_save_ansible_job_id": "{{ deploy_task.ansible_job_id }}",
                        "async_job_save_host": "{{ inventory_hostname }}",
                        "async_job_save_metadata": {
                            "version": "2.1.0",
                            "operator": "{{ ansible_user_id }}",
                            "timestamp": "{{ ansible_date_time.iso8601 }}",
                        },
                    },
                },
            ],
        }
    ],
    OCI: [
        {
            "name": "Deploy with OCI-based job tracking",
            "hosts": "production_servers",
            "gather_facts": True,
            "tasks": [
                {
                    "name": "Get OCI namespace",
                    "ansible.builtin.command": "oci os ns get --query data --raw-output",
                    "register": "oci_ns",
                    "delegate_to": "localhost",
                    "changed_when": False,
                },
                {
                    "name": "Start deployment task",
                    "ansible.builtin.shell": "/opt/deploy/deploy.sh",
                    "async": 7200,
                    "poll": 0,
                    "register": "deploy_task",
                },
                {
                    "name": "Save job to OCI Object Storage",
                    "ansible.builtin.include_role": {"name": "rstyczynski.ansible.async_job_save"},
                    "vars": {
                        "async_job_save_backend": "oci",
                        "async_job_save_playbook_name": "production_deployment",
                        "async_job_save_job_name": "prod_deploy_{{ ansible_date_time.date }}",
                        "async_job_save_ansible_job_id": "{{ deploy_task.ansible_job_id }}",
                        "async_job_save_host": "{{ inventory_hostname }}",
                        "async_job_save_oci_bucket": "ansible-prod-state",
                        "async_job_save_oci_namespace": "{{ oci_ns.stdout }}",
                        "async_job_save_metadata": {"environment": "production", "ticket": "DEPLOY-12345"},
                    },
                },
            ],
        }
    ],
    IDEMPOTENT: [
        {
            "name": "Idempotent deployment pattern",
            "hosts": "app_servers",
            "gather_facts": True,
            "vars": {"deployment_id": "deploy_v3.0.0"},
            "tasks": [
                {
                    "name": "Check if deployment already running",
                    "ansible.builtin.include_role": {"name": "rstyczynski.ansible.async_job_load"},
                    "vars": {
                        "async_job_load_playbook_name": "app_deployment",
                        "async_job_load_job_name": "{{ deployment_id }}",
                    },
                },
                {
                    "name": "Start deployment (only if not exists)",
                    "ansible.builtin.shell": "/opt/deploy/deploy.sh",
                    "async": 3600,
                    "poll": 0,
                    "register": "new_deploy",
                    "when": "not async_job_load_found",
                },
                {
                    "name": "Save deployment job",
                    "ansible.builtin.include_role": {"name": "rstyczynski.ansible.async_job_save"},
                    "vars": {
                        "async_job_save_playbook_name": "app_deployment",
                        "async_job_save_job_name": "{{ deployment_id }}",
                        "async_job_save_ansible_job_id": "{{ new_deploy.ansible_job_id }}",
                        "async_job_save_host": "{{ inventory_hostname }}",
                    },
                    "when": "not async_job_load_found",
                },
                {
                    "name": "Check deployment status",
                    "ansible.builtin.async_status": {
                        "jid": "{{ async_job_load_ansible_job_id if async_job_load_found"
                        " else new_deploy.ansible_job_id }}"
                    },
                    "register": "status",
                    "ignore_errors": True,
                },
                {
                    "name": "Display deployment status",
                    "ansible.builtin.debug": {
                        "msg": "Deployment {{ 'completed' if status.finished else 'in progress' }}"
                    },
                },
            ],
        }
    ],
}

# Why a test that reads the contract skips in a clone.
ABSENT = (
    f"the contract {CONTRACT_NAME} is not beside this checkout (a clone has none);"
    " the same example runs from the project's copy (tests/support/contract.py)"
)
needs_contract = pytest.mark.skipif(not CONTRACT.is_file(), reason=ABSENT)
# The parameter of a test run once from the project's copy and once from the contract.
source = pytest.mark.parametrize("source", ["project", pytest.param("contract", marks=needs_contract)])


def contract_examples() -> dict[str, list[dict] | dict]:
    """The first YAML block under each ``###`` heading of the contract, by heading."""
    examples = {}
    for section in re.split(r"^### ", CONTRACT.read_text(), flags=re.M)[1:]:
        heading, _newline, body = section.partition("\n")
        block = re.search(r"^```yaml\n(.*?)^```", body.split("\n## ")[0], re.M | re.S)
        if block:
            examples[heading.strip()] = yaml.safe_load(block.group(1))
    return examples


def example(source: str, heading: str, hosts: str = "localhost") -> list[dict]:
    """The plays of one example, from the project's copy or from the contract, aimed at hosts."""
    plays = copy.deepcopy(EXAMPLES[heading]) if source == "project" else contract_examples()[heading]
    for each in plays:
        each["hosts"] = hosts
    return plays
