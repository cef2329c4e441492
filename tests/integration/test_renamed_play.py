"""A renamed play must not start a job a second time without a word (both backends).

The playbook name of a record defaults to the play's name. When a load (or async_job_run) finds
nothing under its playbook name, it looks for a record of the same job name under the host's
other playbook names, on that path only, and warns.
"""

from __future__ import annotations

import re

from tests.support.playbook import LOADED, export_task, play, role_task

ORIGINAL = "Deploy the web tier"
RENAMED = "Deploy the web tier (renamed)"
HOSTS = ("one", "two")
WARNING = re.compile(r"^\[WARNING\]: (.*?)(?=^\[|\Z)", re.M | re.S)


def squeezed(text: str) -> str:
    """Text without white space: ansible-core before 2.19 wraps a warning at 80 columns, in words too."""
    return "".join(text.split())


def warnings(result) -> list[str]:
    """The warnings of a run (on stderr), without white space."""
    return [squeezed(text) for text in WARNING.findall(result.stderr)]


def inputs(storage, role: str, **values) -> dict:
    return {**{k.removeprefix(f"{role}_"): v for k, v in storage.role_vars(role).items()}, **values}


def save(storage, playbook_name: str, job_id: str = "j1.1") -> dict:
    values = {"job_name": "deploy", "ansible_job_id": job_id, "host": "{{ inventory_hostname }}"}
    return role_task("async_job_save", **inputs(storage, "async_job_save", playbook_name=playbook_name, **values))


def expected(storage, host: str, variable: str = "async_job_load_playbook_name") -> str:
    return squeezed(
        f'Job "deploy" was not found for host "{host}" under playbook name "{RENAMED}", but that host has a record'
        f' of it under playbook name "{ORIGINAL}" ({storage.state_file(host, ORIGINAL, "deploy")}). If it is the'
        f' same job (the play was renamed), set {variable} to "{ORIGINAL}" and keep it pinned, as the playbook name'
        " defaults to the play's name; if two playbooks use this job name on purpose, ignore this warning."
    )


def test_a_load_that_finds_nothing_warns_about_the_job_under_another_playbook_name(runner, storage):
    # Host one also has the job under the new name: it finds it, and nothing is said about it.
    runner.ok([play([save(storage, ORIGINAL)], name=ORIGINAL)], hosts=HOSTS)
    runner.ok([play([save(storage, RENAMED, job_id="j2.2")], name=RENAMED, hosts="one")], hosts=HOSTS)

    load = role_task("async_job_load", **inputs(storage, "async_job_load", job_name="deploy"))
    result = runner.ok([play([load, export_task("loaded", LOADED)], name=RENAMED)], hosts=HOSTS)

    assert result.value("loaded", "one")["ansible_job_id"] == "j2.2"
    assert result.value("loaded", "two")["found"] is False
    assert warnings(result) == [expected(storage, "two")]


def test_a_load_that_finds_its_job_says_nothing_of_other_playbooks(runner, storage):
    runner.ok([play([save(storage, ORIGINAL), save(storage, RENAMED, job_id="j2.2")], name=ORIGINAL)], hosts=HOSTS)

    load = role_task("async_job_load", **inputs(storage, "async_job_load", job_name="deploy"))
    result = runner.ok([play([load, export_task("loaded", LOADED)], name=RENAMED)], hosts=HOSTS)

    assert [result.value("loaded", host)["ansible_job_id"] for host in HOSTS] == ["j2.2", "j2.2"]
    assert warnings(result) == []


def test_a_load_that_finds_the_job_nowhere_says_nothing(runner, storage):
    runner.ok([play([save(storage, ORIGINAL)], name=ORIGINAL)], hosts=("one",))

    load = role_task("async_job_load", **inputs(storage, "async_job_load", job_name="other"))
    result = runner.ok([play([load, export_task("loaded", LOADED)], name=RENAMED)], hosts=HOSTS)

    assert [result.value("loaded", host)["found"] for host in HOSTS] == [False, False]
    assert warnings(result) == []


def test_async_job_run_warns_and_still_starts_the_job(runner, storage, async_dir):
    run = role_task("async_job_run", **inputs(storage, "async_job_run", job_name="deploy", command="sleep 600"))
    started = {"started": "async_job_run_started", "ansible_job_id": "async_job_run_ansible_job_id"}
    first = runner.ok([play([run, export_task("run", started)], name=ORIGINAL)])
    assert warnings(first) == []

    second = runner.ok([play([run, export_task("run", started)], name=RENAMED)])

    assert second.value("run")["started"] is True
    assert second.value("run")["ansible_job_id"] != first.value("run")["ansible_job_id"]
    assert warnings(second) == [expected(storage, "localhost", variable="async_job_run_playbook_name")]
