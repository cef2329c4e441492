"""async_job_load with async_job_load_check_status: every status, reached with real async jobs.

Jobs run on localhost (and on local "hosts" of a fleet) in a private async directory set in the
inventory (group_vars next to it), so no test touches the home directory; every test kills what
it started.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.jobs import jobs_of, kill_jobs
from tests.support.playbook import export_task, play, role_task
from tests.support.storage import FilesystemStorage

PLAY = "Check the jobs"
CHECKED = {
    "found": "async_job_load_found",
    "ansible_job_id": "async_job_load_ansible_job_id",
    "status": "async_job_load_status",
    "result": "async_job_load_result",
}


# Helpers


def storage_vars(storage, role: str) -> dict:
    return {k.removeprefix(f"{role}_"): v for k, v in storage.role_vars(role).items()}


def start(storage, job: str, command: str, timeout: int = 3600, task_vars: dict | None = None, **save) -> list[dict]:
    """Start a shell command as an async job (poll 0) registered as `started_<job>`, and save its id."""
    task = {
        "name": f"Start {job}",
        "ansible.builtin.shell": command,
        "async": timeout,
        "poll": 0,
        "register": f"started_{job}",
    }
    if task_vars:
        task["vars"] = task_vars
    inputs = {
        "job_name": job,
        "ansible_job_id": f"{{{{ started_{job}.ansible_job_id }}}}",
        "host": "{{ inventory_hostname }}",
    }
    return [task, role_task("async_job_save", **storage_vars(storage, "async_job_save"), **inputs, **save)]


def wait_finished(job: str) -> dict:
    """Poll the job started by start() until it finished (whatever its outcome)."""
    return {
        "name": f"Wait for {job} to finish",
        "ansible.builtin.async_status": {"jid": f"{{{{ started_{job}.ansible_job_id }}}}"},
        "register": f"finished_{job}",
        "until": f"finished_{job}.finished | default(false) | bool",
        "retries": 60,
        "delay": 1,
        "failed_when": False,
    }


def check(storage, job: str, key: str | None = None, **extra) -> list[dict]:
    """Load the job with check_status and export what the role set under key (default: job)."""
    load = role_task("async_job_load", **storage_vars(storage, "async_job_load"), job_name=job, check_status=True)
    load["vars"].update({f"async_job_load_{k}": v for k, v in extra.items()})
    return [load, export_task(key or job, CHECKED)]


def wait_for_file(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.2)
    raise AssertionError(f"{path} was not written within {timeout} s")


@pytest.fixture
def state(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path / "state")


# Every status, on both backends


def test_every_status_of_a_real_job(runner, storage, async_dir):
    starting = [
        *start(storage, "long", "sleep 600"),
        *start(storage, "ok", "echo done"),
        *start(storage, "bad", "echo failing >&2; exit 3"),
        *start(storage, "gone", "true"),
        wait_finished("ok"),
        wait_finished("bad"),
        wait_finished("gone"),
        export_task("ids", {job: f"started_{job}.ansible_job_id" for job in ("long", "ok", "bad", "gone")}),
    ]
    ids = runner.ok([play(starting, name=PLAY)]).value("ids")
    (async_dir / ids["gone"]).unlink()

    checking = [*check(storage, "never"), *(task for job in ids for task in check(storage, job))]
    result = runner.ok([play(checking, name=PLAY)])

    never = result.value("never")
    assert (never["found"], never["ansible_job_id"], never["status"], never["result"]) == (False, "", "absent", {})
    statuses = {job: result.value(job)["status"] for job in ids}
    assert statuses == {"long": "running", "ok": "succeeded", "bad": "failed", "gone": "lost"}
    for job, job_id in ids.items():
        assert result.value(job)["ansible_job_id"] == job_id
        assert result.value(job)["result"]["ansible_job_id"] == job_id
    assert not result.value("long")["result"]["finished"]
    ok = result.value("ok")["result"]
    assert (ok["finished"], ok["rc"], ok["stdout"]) == (1, 0, "done")
    bad = result.value("bad")["result"]
    assert (bad["finished"], bad["rc"], bad["stderr"]) == (1, 3, "failing")
    assert "could not find job" in result.value("gone")["result"]["msg"]
    assert (result.value("bad")["result"]["failed"], result.value("gone")["result"]["failed"]) == (True, True)
    assert (result.value("ok")["result"]["failed"], result.value("long")["result"]["failed"]) == (False, False)
    assert result.changed() == 0
    # Failed and lost are answers, not errors: the log of the check shows no "fatal:" line.
    assert "fatal:" not in result.output
    assert result.stats["localhost"]["failed"] == 0


# Failures that are not an exit code


def test_a_job_killed_by_sigkill_is_failed(runner, state, async_dir, tmp_path):
    pidfile = tmp_path / "job.pid"
    # exec: the killed process is the job's command itself, so the command module reports rc -9.
    runner.ok([play(start(state, "victim", f"echo $$ > {pidfile}; exec sleep 1000"), name=PLAY)])
    os.kill(int(wait_for_file(pidfile)), signal.SIGKILL)

    loading = role_task("async_job_load", **storage_vars(state, "async_job_load"), job_name="victim")
    waiting = {
        "name": "Wait for the killed job to be reported",
        "ansible.builtin.async_status": {"jid": "{{ async_job_load_ansible_job_id }}"},
        "register": "finished_victim",
        "until": "finished_victim.finished | default(false) | bool",
        "retries": 60,
        "delay": 1,
        "failed_when": False,
    }
    result = runner.ok([play([loading, waiting, *check(state, "victim")], name=PLAY)])

    checked = result.value("victim")
    assert checked["status"] == "failed"
    assert checked["result"]["rc"] == -9


def test_a_module_that_failed_without_an_exit_code_is_failed(runner, state, async_dir, tmp_path):
    missing = tmp_path / "missing"
    task = {
        "name": "Start a module that fails without an exit code",
        "ansible.builtin.file": {"path": str(missing), "state": "file"},
        "async": 60,
        "poll": 0,
        "register": "started_broken",
    }
    save = role_task(
        "async_job_save",
        **storage_vars(state, "async_job_save"),
        job_name="broken",
        ansible_job_id="{{ started_broken.ansible_job_id }}",
        host="{{ inventory_hostname }}",
    )
    result = runner.ok([play([task, save, wait_finished("broken"), *check(state, "broken")], name=PLAY)])

    checked = result.value("broken")
    assert checked["status"] == "failed"
    assert "rc" not in checked["result"]
    assert checked["result"]["failed"] is True
    assert str(missing) in checked["result"]["msg"]
    assert "fatal:" not in result.output.split("Wait for broken to finish")[1]


def test_a_job_past_its_async_timeout_is_failed(runner, state, async_dir, tmp_path):
    marker = tmp_path / "slow-job"
    tasks = [*start(state, "slow", f"sleep 600; : {marker}", timeout=2), wait_finished("slow"), *check(state, "slow")]
    result = runner.ok([play(tasks, name=PLAY)])

    checked = result.value("slow")
    assert checked["status"] == "failed"
    assert "Timeout exceeded" in checked["result"]["msg"]
    assert jobs_of(marker) == set(), "the async wrapper left the job running"


# Outputs, check mode, where to ask


def test_without_check_status_the_status_outputs_are_reset(runner, state, async_dir):
    plain = role_task("async_job_load", **storage_vars(state, "async_job_load"), job_name="ok")
    tasks = [
        *start(state, "ok", "true"),
        wait_finished("ok"),
        *check(state, "ok", key="checked"),
        plain,
        export_task("plain", CHECKED),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    assert result.value("checked")["status"] == "succeeded"
    plain = result.value("plain")
    assert plain["found"] is True
    assert plain["ansible_job_id"] == result.value("checked")["ansible_job_id"]
    assert (plain["status"], plain["result"]) == ("", {})


def test_a_status_check_works_in_check_mode_and_changes_nothing(runner, state, async_dir):
    runner.ok(
        [play([*start(state, "long", "sleep 600"), *start(state, "bad", "exit 3"), wait_finished("bad")], name=PLAY)]
    )
    before = state.names(), sorted(p.name for p in async_dir.iterdir())
    tasks = [*check(state, "long"), *check(state, "bad"), *check(state, "never")]
    result = runner.ok([play(tasks, name=PLAY)], args=("--check",))

    assert result.value("long")["status"] == "running"
    assert result.value("bad")["status"] == "failed"
    assert result.value("bad")["result"]["rc"] == 3
    assert result.value("never")["status"] == "absent"
    assert result.changed() == 0
    assert (state.names(), sorted(p.name for p in async_dir.iterdir())) == before


def test_the_async_dir_of_the_record_is_where_the_host_is_asked(runner, state, async_dir, tmp_path):
    elsewhere = tmp_path / "other-async"
    in_other_dir = {"ansible_async_dir": str(elsewhere)}
    tasks = [
        *start(state, "noted", "sleep 600", task_vars=in_other_dir, async_dir=str(elsewhere)),
        *start(state, "unnoted", "sleep 600", task_vars=in_other_dir),
        *check(state, "noted"),
        *check(state, "unnoted"),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    noted = result.value("noted")
    assert noted["status"] == "running"
    assert noted["result"]["results_file"] == str(elsewhere / noted["ansible_job_id"])
    # Without async_dir in the record the host's async directory (the inventory's) is asked.
    assert result.value("unnoted")["status"] == "lost"
    assert not any(async_dir.glob(result.value("unnoted")["ansible_job_id"]))


def test_without_async_dir_in_the_record_the_inventory_async_dir_is_asked(runner, state, async_dir):
    result = runner.ok([play([*start(state, "plain", "sleep 600"), *check(state, "plain")], name=PLAY)])

    plain = result.value("plain")
    assert plain["status"] == "running"
    assert plain["result"]["results_file"] == str(async_dir / plain["ansible_job_id"])


def test_without_any_async_dir_variable_the_configured_one_is_asked(runner, state, tmp_path):
    configured = tmp_path / "configured-async"
    runner.env["ANSIBLE_ASYNC_DIR"] = str(configured)
    # The job's command lines then name the test's directory, so kill_jobs finds the job: the
    # configured async directory reaches the wrapper through its environment, not its arguments.
    runner.env["ANSIBLE_REMOTE_TMP"] = str(tmp_path / "remote-tmp")
    try:
        result = runner.ok([play([*start(state, "plain", "sleep 600"), *check(state, "plain")], name=PLAY)])
    finally:
        kill_jobs(tmp_path)

    plain = result.value("plain")
    assert plain["status"] == "running"
    assert plain["result"]["results_file"] == str(configured / plain["ansible_job_id"])


def test_each_host_of_a_fleet_gets_its_own_status(runner, state, async_dir):
    hosts = ("node1", "node2", "node3")
    commands = {"node1": "sleep 600", "node2": "echo on node2", "node3": "exit 3"}
    tasks = [
        *start(state, "job", f"{{{{ {commands}[inventory_hostname] }}}}"),
        {**wait_finished("job"), "when": "inventory_hostname != 'node1'"},
        *check(state, "job"),
        export_task("started", {"ansible_job_id": "started_job.ansible_job_id"}),
    ]
    result = runner.ok([play(tasks, name=PLAY)], hosts=hosts)

    expected = {"node1": "running", "node2": "succeeded", "node3": "failed"}
    assert {host: result.value("job", host)["status"] for host in hosts} == expected
    for host in hosts:
        job_id = result.value("started", host)["ansible_job_id"]
        assert result.value("job", host)["ansible_job_id"] == job_id
        assert result.value("job", host)["result"]["ansible_job_id"] == job_id
    assert len({result.value("job", host)["ansible_job_id"] for host in hosts}) == 3
    assert result.value("job", "node2")["result"]["stdout"] == "on node2"
    assert result.value("job", "node3")["result"]["rc"] == 3
