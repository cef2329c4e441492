"""Every bad input is refused up front, by name, on every role and both backends.

One table lists, for every input of every role, values a user or a script could pass by mistake.
Each (role, backend) pair is one ansible-playbook run in which every row is a host of its own: the
row's bad value is that host's inventory variable, which outranks the good values of the group.
Every row must fail for its host, with a message that names the variable and shows the value,
with no traceback, and leave the storage byte for byte as it was (a record is planted for every
host first); async_job_run must start nothing. A static test checks that every input of every
argument spec has at least one row.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.playbook import play

REPO = Path(__file__).resolve().parents[2]
ROLES = ("async_job_save", "async_job_load", "async_job_run", "async_job_forget", "async_job_list")
BOTH = ("filesystem", "oci")
PLAY = "Bad input"
BOOLEAN = "is not a valid boolean"


@dataclass(frozen=True)
class Row:
    role: str
    input: str  # without the role's prefix
    value: object
    backends: tuple[str, ...] = BOTH
    shows: str | None = None  # what of the value the message shows, when not its JSON

    @property
    def variable(self) -> str:
        return f"{self.role}_{self.input}"


def name_rows(role: str, name: str) -> list[Row]:
    """The values no name may take: one path component, a string, not reserved, not too long."""
    return [
        Row(role, name, "   "),
        Row(role, name, ""),
        Row(role, name, ["a", "b"]),
        Row(role, name, ".claims"),
        Row(role, name, "a/b"),
        Row(role, name, "x" * 300, shows="x" * 60),
    ]


def storage_rows(role: str) -> list[Row]:
    """The storage settings every role takes."""
    return [
        Row(role, "backend", "s3", shows="got: s3"),
        Row(role, "state_dir", "", backends=("filesystem",)),
        Row(role, "state_dir", "{file}", backends=("filesystem",)),
        Row(role, "state_dir", "{file}/records", backends=("filesystem",)),
        Row(role, "oci_bucket", "jobs/x", backends=("oci",)),
        Row(role, "oci_bucket", "", backends=("oci",), shows="is required"),
        Row(role, "oci_namespace", "a/b", backends=("oci",)),
        Row(role, "oci_profile", "NOPE", backends=("oci",)),
        Row(role, "oci_config_file", "{missing}", backends=("oci",)),
        Row(role, "oci_auth", "password", backends=("oci",)),
        Row(role, "oci_region", "eu frankfurt", backends=("oci",)),
        Row(role, "oci_endpoint", "not a url", backends=("oci",)),
        Row(role, "oci_prefix", "/jobs/", backends=("oci",)),
        Row(role, "oci_prefix", "a/../b/", backends=("oci",)),
        Row(role, "oci_cli_args", "--no-retry", backends=("oci",)),
    ]


ROWS: list[Row] = [
    *name_rows("async_job_save", "job_name"),
    *name_rows("async_job_save", "playbook_name"),
    *name_rows("async_job_save", "host"),
    Row("async_job_save", "ansible_job_id", ""),
    Row("async_job_save", "ansible_job_id", "../../etc/passwd"),
    Row("async_job_save", "ansible_job_id", "/etc/hostname"),
    Row("async_job_save", "ansible_job_id", "j1 ; rm -rf /"),
    Row("async_job_save", "ansible_job_id", 12345),
    Row("async_job_save", "ansible_job_id", {"ansible_job_id": "j1.1", "started": 1}, shows='"ansible_job_id"'),
    Row("async_job_save", "metadata", [1], shows="of type list"),
    Row("async_job_save", "overwrite", "maybe", shows=BOOLEAN),
    Row("async_job_save", "become", "maybe", shows=BOOLEAN),
    Row("async_job_save", "become_user", "root; id"),
    Row("async_job_save", "become_user", "app user"),
    Row("async_job_save", "async_dir", "../x"),
    Row("async_job_save", "async_dir", "tmp/async"),
    *storage_rows("async_job_save"),
    *name_rows("async_job_load", "job_name"),
    *name_rows("async_job_load", "playbook_name"),
    *name_rows("async_job_load", "host_filter"),
    Row("async_job_load", "check_status", "maybe", shows=BOOLEAN),
    *storage_rows("async_job_load"),
    *name_rows("async_job_run", "job_name"),
    *name_rows("async_job_run", "playbook_name"),
    Row("async_job_run", "command", ["ls", "-l"]),
    Row("async_job_run", "command", "   "),
    Row("async_job_run", "argv", "ls -l"),
    Row("async_job_run", "argv", []),
    Row("async_job_run", "timeout", 0),
    Row("async_job_run", "timeout", "abc", shows="'abc'"),
    Row("async_job_run", "metadata", [1], shows="of type list"),
    Row("async_job_run", "restart_on", ["never"], shows="never"),
    Row("async_job_run", "wait", "maybe", shows=BOOLEAN),
    Row("async_job_run", "wait_retries", -1),
    Row("async_job_run", "wait_delay", -1),
    Row("async_job_run", "become", "maybe", shows=BOOLEAN),
    Row("async_job_run", "become_user", "root; id"),
    Row("async_job_run", "claim_ttl", 0),
    *storage_rows("async_job_run"),
    *name_rows("async_job_forget", "job_name"),
    *name_rows("async_job_forget", "playbook_name"),
    *name_rows("async_job_forget", "host"),
    Row("async_job_forget", "cleanup", "maybe", shows=BOOLEAN),
    Row("async_job_forget", "force", "maybe", shows=BOOLEAN),
    *storage_rows("async_job_forget"),
    *name_rows("async_job_list", "host"),
    Row("async_job_list", "playbook_name", ".claims"),
    Row("async_job_list", "playbook_name", "a/b"),
    Row("async_job_list", "playbook_name", ["a", "b"]),
    Row("async_job_list", "playbook_name", "x" * 300, shows="x" * 60),
    *storage_rows("async_job_list"),
]


def good_inputs(role: str, storage, marker_dir: Path) -> dict[str, object]:
    """The inputs of a call that works, for every host (the group's variables)."""
    inputs = {f"{role}_{key}": value for key, value in {"job_name": "deploy", "playbook_name": PLAY}.items()}
    if role == "async_job_save":
        inputs.update(async_job_save_host="{{ inventory_hostname }}", async_job_save_ansible_job_id="j1.1")
    if role == "async_job_run":
        inputs["async_job_run_command"] = f"touch {marker_dir}/{{{{ inventory_hostname }}}}"
    if role == "async_job_list":
        del inputs["async_job_list_job_name"]
    return {**inputs, **storage.role_vars(role)}


def shown(row: Row, places: dict[str, str]) -> str:
    if row.shows is not None:
        return row.shows
    value = row.value.format(**places) if isinstance(row.value, str) else row.value
    return json.dumps(value)[:60]


@pytest.mark.parametrize("role", ROLES)
def test_every_bad_input_is_refused_before_anything_is_written(runner, storage, tmp_path, role):
    rows = [row for row in ROWS if row.role == role and storage.backend in row.backends]
    hosts = {f"row{number:03d}": row for number, row in enumerate(rows)}
    marker_dir = tmp_path / "started"
    marker_dir.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    places = {"file": str(a_file), "missing": str(tmp_path / "absent" / "config")}

    for host in hosts:
        storage.write(
            host, PLAY, "deploy", json.dumps({"job_name": "deploy", "host": host, "ansible_job_id": "j7.7"}).encode()
        )
    stored = {host: storage.read(host, PLAY, "deploy") for host in hosts}
    names = storage.names()

    inventory = {
        "rows": {
            "vars": {
                **good_inputs(role, storage, marker_dir),
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
            },
            "hosts": {
                host: {row.variable: row.value.format(**places) if isinstance(row.value, str) else row.value}
                for host, row in hosts.items()
            },
        }
    }
    inventory_file = tmp_path / "rows.yml"
    inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    runner.env["ANSIBLE_FORKS"] = "10"
    task = {"name": f"Run {role}", "ansible.builtin.include_role": {"name": f"rstyczynski.ansible.{role}"}}
    result = runner.run([play([task], name=PLAY, hosts="rows")], args=("-i", str(inventory_file)))

    assert "Traceback" not in result.output, result.output
    wrong = []
    for host, row in hosts.items():
        if result.stats.get(host, {}).get("failed") != 1:
            wrong.append(f"{row.variable}={row.value!r}: not refused")
            continue
        message = result.failure(host)
        if row.variable not in message or shown(row, places) not in message:
            wrong.append(f"{row.variable}={row.value!r}: {message}")
    assert wrong == [], "\n".join(wrong)
    assert storage.names() == names
    assert {host: storage.read(host, PLAY, "deploy") for host in hosts} == stored
    assert list(marker_dir.iterdir()) == []


def argument_spec_inputs(role: str) -> set[str]:
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return {name.removeprefix(f"{role}_") for name in spec["argument_specs"]["main"]["options"]}


@pytest.mark.parametrize("role", ROLES)
def test_every_input_of_every_argument_spec_has_a_bad_value_in_the_table(role):
    covered = {row.input for row in ROWS if row.role == role}
    assert argument_spec_inputs(role) - covered == set()
    assert covered - argument_spec_inputs(role) == set()
