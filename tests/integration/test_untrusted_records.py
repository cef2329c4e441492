"""A record is untrusted input: every role judges it by the one record rule before using it.

Someone who can write the state directory or the bucket plants a record; each role that acts on
records (load, its status check, forget with and without cleanup, list, run) must refuse it with
the record, the field and the value, and ask nothing of the host. Text in a record is never
evaluated, also after it went through set_fact.
"""

from __future__ import annotations

import json

import pytest

from tests.support.playbook import export_task, play, role_task, unsafe

PLAY = "Planted"
FIELD_RULE = {
    "ansible_job_id": "an id as Ansible writes it (digits, a dot, digits, with an optional leading j)",
    "become_user": "a plain user name",
    "async_dir": "an absolute directory, or one below ~, without a '..' component",
    "become": "true or false",
}
# Jinja text whose evaluation would print EVALUATED, a word the text itself does not hold.
JINJA = "{{ 'EVAL' ~ 'UATED' }}{% if true %}!{% endif %}"


def inputs(storage, role: str, **values) -> dict:
    return {**{k.removeprefix(f"{role}_"): v for k, v in storage.role_vars(role).items()}, **values}


def guarded(name: str, task: dict) -> dict:
    """The role call in a block whose rescue exports the failure message (the play goes on)."""
    return {
        "name": f"Try {name}",
        "block": [task, export_task(name, {"failed": "false"})],
        "rescue": [export_task(name, {"failed": "true", "msg": "ansible_failed_result.msg"})],
    }


def every_reading_role(storage) -> list[dict]:
    return [
        guarded("load", role_task("async_job_load", **inputs(storage, "async_job_load", job_name="deploy"))),
        guarded(
            "status",
            role_task("async_job_load", **inputs(storage, "async_job_load", job_name="deploy", check_status=True)),
        ),
        guarded("list", role_task("async_job_list", **inputs(storage, "async_job_list"))),
        guarded(
            "run",
            role_task("async_job_run", **inputs(storage, "async_job_run", job_name="deploy", command="echo started")),
        ),
        guarded("forget", role_task("async_job_forget", **inputs(storage, "async_job_forget", job_name="deploy"))),
        guarded(
            "cleanup",
            role_task("async_job_forget", **inputs(storage, "async_job_forget", job_name="deploy", cleanup=True)),
        ),
    ]


def plant(storage, **fields) -> bytes:
    body = {"job_name": "deploy", "host": "localhost", "ansible_job_id": "j1.1", "save_time": "2025-01-02T03:04:05Z"}
    data = (json.dumps({**body, "metadata": {}, **fields}, indent=4) + "\n").encode()
    storage.write("localhost", PLAY, "deploy", data)
    return data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ansible_job_id", "/srv/app/config.json"),
        ("ansible_job_id", "../../app/config.json"),
        ("ansible_job_id", 12345),
        ("ansible_job_id", 1.5),
        ("ansible_job_id", JINJA),
        ("become_user", "root; id"),
        ("become_user", JINJA),
        ("async_dir", "/tmp/../etc"),
        ("async_dir", "relative/dir"),
        ("become", "yes"),
    ],
    ids=lambda value: str(value)[:24],
)
def test_every_role_refuses_a_planted_field_the_same_way(runner, storage, async_dir, tmp_path, field, value):
    # A real JSON file where the planted path points, so a role that trusted the id would read it.
    target = tmp_path / "srv" / "app" / "config.json"
    target.parent.mkdir(parents=True)
    target.write_text('{"finished": 1, "rc": 0, "secret": "must not leak"}')
    planted = plant(storage, **{field: str(target) if value == "/srv/app/config.json" else value})
    stored = json.loads(planted)[field]
    result = runner.ok([play(every_reading_role(storage), name=PLAY)])

    location = storage.state_file("localhost", PLAY, "deploy")
    expected = (
        f"The job record {location} has {field} {json.dumps(stored)}, which is not {FIELD_RULE[field]}."
        " Inspect or remove the record; it was left untouched. Nothing was written."
    )
    for role in ("load", "status", "list", "run", "forget", "cleanup"):
        assert result.value(role) == {"failed": True, "msg": expected}, role
    assert storage.read("localhost", PLAY, "deploy") == planted
    assert "must not leak" not in result.output
    assert "EVALUATED" not in result.output


def test_a_legacy_omit_placeholder_reads_as_no_become_user(runner, storage, async_dir):
    # async_job_run of earlier releases stored "<<Omit>>" for "no become user".
    plant(storage, become=False, become_user="<<Omit>>")
    tasks = [
        role_task("async_job_load", **inputs(storage, "async_job_load", job_name="deploy", check_status=True)),
        export_task("status", {"status": "async_job_load_status"}),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    assert result.value("status") == {"status": "lost"}


def test_text_of_a_record_comes_back_literally_also_after_set_fact(runner, storage):
    fields = {"job_name": JINJA, "host": JINJA, "save_time": JINJA, "metadata": {"note": JINJA, JINJA: [JINJA]}}
    plant(storage, **fields)
    tasks = [
        role_task("async_job_load", **inputs(storage, "async_job_load", job_name="deploy")),
        {
            "name": "Keep what was loaded",
            "ansible.builtin.set_fact": {
                "kept_host": "{{ async_job_load_host }}",
                "kept_metadata": "{{ async_job_load_metadata }}",
                "kept_time": "{{ async_job_load_save_time }}",
            },
        },
        export_task("kept", {"host": "kept_host", "metadata": "kept_metadata", "save_time": "kept_time"}),
        role_task("async_job_list", **inputs(storage, "async_job_list")),
        {"name": "Keep the list", "ansible.builtin.set_fact": {"kept_jobs": "{{ async_job_list_jobs }}"}},
        export_task("listed", {"jobs": "kept_jobs"}),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    assert result.value("kept") == {"host": JINJA, "metadata": fields["metadata"], "save_time": JINJA}
    [job] = result.value("listed")["jobs"]
    assert job["host"] == JINJA
    assert job["metadata"] == fields["metadata"]
    assert "EVALUATED" not in result.output


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("ansible_job_id", "/etc/hostname", "ansible_job_id"),
        ("ansible_job_id", "../../etc/passwd", "ansible_job_id"),
        ("ansible_job_id", "j1 ; rm -rf /", "ansible_job_id"),
        ("ansible_job_id", "", "ansible_job_id"),
        ("become_user", "root; id", "become_user"),
        ("become_user", "app user", "become_user"),
        ("async_dir", "../x", "async_dir"),
        ("async_dir", "tmp/async", "async_dir"),
    ],
)
def test_save_refuses_a_field_by_the_same_rule_before_writing(runner, storage, variable, value, rule):
    task = role_task(
        "async_job_save",
        **inputs(storage, "async_job_save", job_name="deploy", host="{{ inventory_hostname }}", ansible_job_id="j1.1"),
    )
    task["vars"][f"async_job_save_{variable}"] = unsafe(value) if value else value
    result = runner.fails([play([task], name=PLAY)])

    assert result.failure() == (
        f"async_job_save_{variable} is {json.dumps(value)}: it must be {FIELD_RULE[rule]}. Nothing was written."
    )
    assert storage.names() == []
