"""The job lifecycle on real remote hosts: host1..host3 reached over SSH (sshd on 127.0.0.1, see
tests/support/sshd.py) as the unprivileged user fleet, who may become the service user svc with
sudo. The controller side of the roles (records, claims, the oci CLI) stays on the controller, as
the test's own user.

Jobs run in the remote users' own async directories (``~/.ansible_async``, expanded on the host),
or in a directory of the test in fleet's home. Several behaviours share one playbook run, because
every run over SSH costs seconds. Every test kills, with its remote fixture, what it started there.
"""

from __future__ import annotations

import json
import pwd
import time
from pathlib import Path

import pytest

from tests.support.playbook import export_task, play, role_task
from tests.support.storage import FilesystemStorage

PLAY = "Remote jobs"
HOSTS = ("host1", "host2", "host3")
RAN = {
    "ansible_job_id": "async_job_run_ansible_job_id",
    "started": "async_job_run_started",
    "status": "async_job_run_status",
    "result": "async_job_run_result",
}
CHECKED = {
    "found": "async_job_load_found",
    "ansible_job_id": "async_job_load_ansible_job_id",
    "status": "async_job_load_status",
    "result": "async_job_load_result",
}
# What each host's job "work" does: one of each status the host can report.
WORK = {"host1": "sleep 600", "host2": "echo done", "host3": "echo failing >&2; exit 3"}
WORK_COMMAND = f"{{{{ {WORK}[inventory_hostname] }}}}"
WORK_STATUS = {"host1": "running", "host2": "succeeded", "host3": "failed"}


# Helpers


def storage_vars(storage, role: str) -> dict:
    return {k.removeprefix(f"{role}_"): v for k, v in storage.role_vars(role).items()}


def run(storage, job: str, key: str, **inputs) -> list[dict]:
    """async_job_run on the job, then an export of its outputs under key."""
    return [
        role_task("async_job_run", f"Run {job}", **storage_vars(storage, "async_job_run"), job_name=job, **inputs),
        export_task(key, RAN),
    ]


def check(storage, job: str, key: str | None = None) -> list[dict]:
    """async_job_load with check_status, then an export of what it set under key (default: job)."""
    load = role_task("async_job_load", **storage_vars(storage, "async_job_load"), job_name=job, check_status=True)
    return [load, export_task(key or job, CHECKED)]


def forget(storage, job: str, **extra) -> dict:
    return role_task(
        "async_job_forget", **storage_vars(storage, "async_job_forget"), job_name=job, cleanup=True, **extra
    )


def stored(storage, host: str, job: str) -> dict:
    return json.loads(storage.read(host, PLAY, job))


def finished(results_file: Path, timeout: float = 60) -> dict:
    """The final content of a job's results file (read as root on the host), once the job ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = json.loads(results_file.read_text())
        except (OSError, ValueError):
            answer = {}
        if answer and "started" not in answer:
            return answer
        time.sleep(0.3)
    raise AssertionError(f"{results_file} did not get a final result within {timeout} s")


def owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


@pytest.fixture
def state(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path / "state")


# The lifecycle, on both backends


def test_the_job_lifecycle_over_ssh(runner, storage, remote):
    """Save and load, async_job_run (start, re-attach, restart policy), every status, forget
    with cleanup and list, on three hosts reached over SSH as an unprivileged user."""
    saving = [
        {
            "name": "Start a job by hand",
            "ansible.builtin.shell": "true",
            "async": 600,
            "poll": 0,
            "register": "by_hand",
        },
        role_task(
            "async_job_save",
            **storage_vars(storage, "async_job_save"),
            job_name="by_hand",
            ansible_job_id="{{ by_hand.ansible_job_id }}",
            host="{{ inventory_hostname }}",
        ),
        role_task("async_job_load", **storage_vars(storage, "async_job_load"), job_name="by_hand"),
        export_task("by_hand", {"started": "by_hand.ansible_job_id", "loaded": "async_job_load_ansible_job_id"}),
    ]
    # The backend changes only where the records are. With OCI every call costs oci processes per
    # host on the controller, so one host (the one whose job fails) keeps the suite in its budget.
    hosts = HOSTS if storage.backend == "filesystem" else ("host3",)
    first = runner.ok([play([*run(storage, "work", "work", command=WORK_COMMAND), *saving], name=PLAY)], hosts=hosts)

    work = {host: first.value("work", host)["ansible_job_id"] for host in hosts}
    by_hand = {host: first.value("by_hand", host) for host in hosts}
    for host in hosts:
        remote.remove_later(remote.results_file(work[host]), remote.results_file(by_hand[host]["started"]))
    for host in hosts:
        assert (first.value("work", host)["started"], first.value("work", host)["status"]) == (True, "running")
        record = stored(storage, host, "work")
        assert record["ansible_job_id"] == work[host]
        # The login user's async directory, "~" expanded on the host; no become, so no become_user.
        assert record["async_dir"] == str(remote.home / ".ansible_async")
        assert record["become"] is False
        assert "become_user" not in record
        assert owner(remote.results_file(work[host])) == remote.user
        assert by_hand[host]["loaded"] == by_hand[host]["started"]
    # Let host2's and host3's jobs end; by_hand ended too: its results file goes, the job is lost.
    for host in {"host2", "host3"} & set(hosts):
        finished(remote.results_file(work[host]))
    for host in hosts:
        lost = remote.results_file(by_hand[host]["started"])
        finished(lost)
        lost.unlink()

    second_run = [
        *run(storage, "work", "work", command=WORK_COMMAND, restart_on=["lost"]),
        *check(storage, "by_hand", "lost"),
        *run(storage, "by_hand", "restarted", command="sleep 600", restart_on=["lost"]),
        # host1's job still runs: forgetting it takes force (async_job_forget keeps a running job's record).
        forget(storage, "work", force=True),
        role_task("async_job_list", **storage_vars(storage, "async_job_list")),
        export_task("listed", {"jobs": "async_job_list_jobs | map(attribute='job_name') | list"}),
    ]
    second = runner.ok([play(second_run, name=PLAY)], hosts=hosts)

    for host in hosts:
        restarted = second.value("restarted", host)
        remote.remove_later(remote.results_file(restarted["ansible_job_id"]))
        again = second.value("work", host)
        assert (again["ansible_job_id"], again["started"]) == (work[host], False), host
        assert again["status"] == WORK_STATUS[host], host
        lost = second.value("lost", host)
        assert (lost["status"], lost["result"]["msg"]) == ("lost", "could not find job")
        assert (restarted["started"], restarted["status"]) == (True, "running")
        assert restarted["ansible_job_id"] != by_hand[host]["started"]
        assert stored(storage, host, "by_hand")["ansible_job_id"] == restarted["ansible_job_id"]
        # Forget removed the results file on the host, as the user that owns it.
        assert not remote.results_file(work[host]).exists()
        assert second.value("listed", host)["jobs"] == ["by_hand"]
    if "host2" in hosts:
        assert second.value("work", "host2")["result"]["stdout"] == "done"
    assert second.value("work", "host3")["result"]["rc"] == 3
    # Failed and lost are answers: an operator reading the log sees no "fatal:" line.
    assert "fatal:" not in second.output
    assert sum(stats["failed"] for stats in second.stats.values()) == 0


def test_become_and_a_custom_async_dir_over_ssh(runner, state, remote):
    """A job started as the service user (sudo from the login user), whose status check and
    cleanup run as that user too; a job in an async directory of the remote user's choosing."""
    custom_dir = f"async-{remote.token}"
    remote.remove_later(remote.home / custom_dir)
    waiting = {"wait": True, "wait_retries": 60, "wait_delay": 1}
    # ansible_async_dir is a variable of the role's tasks: "~" is the remote user's home.
    custom = run(state, "custom", "custom", command="true", **waiting)
    custom[0]["vars"]["ansible_async_dir"] = f"~/{custom_dir}"
    keep = {"record": f"lookup('ansible.builtin.file', '{state.root}/host1/{PLAY}/' ~ job ~ '.json') | from_json"}
    tasks = [
        *run(
            state,
            "as_svc",
            "as_svc",
            command="id -un; sleep 1",
            become=True,
            become_user=remote.service_user,
            **waiting,
        ),
        *custom,
        *({**export_task(f"{job}_record", keep), "vars": {"job": job}} for job in ("as_svc", "custom")),
        *check(state, "as_svc", "checked"),
        forget(state, "as_svc"),
        forget(state, "custom"),
    ]
    result = runner.run([play(tasks, name=PLAY)], hosts=("host1",))
    exported = result.exported.get("host1", {})
    for job, directory in (("as_svc", remote.service_home / ".ansible_async"), ("custom", remote.home / custom_dir)):
        if job in exported:
            remote.remove_later(directory / exported[job]["ansible_job_id"])
    assert result.rc == 0, result.output

    as_svc, custom = result.value("as_svc", "host1"), result.value("custom", "host1")
    assert (as_svc["started"], as_svc["status"]) == (True, "succeeded")
    assert as_svc["result"]["stdout"] == remote.service_user
    record = result.value("as_svc_record", "host1")["record"]
    assert (record["become"], record["become_user"]) == (True, remote.service_user)
    assert record["async_dir"] == str(remote.service_home / ".ansible_async")
    # The check found the results file in the service user's home, which only that user reads.
    checked = result.value("checked", "host1")
    assert (checked["status"], checked["result"]["stdout"]) == ("succeeded", remote.service_user)
    assert not (remote.service_home / ".ansible_async" / as_svc["ansible_job_id"]).exists()
    assert (custom["started"], custom["status"]) == (True, "succeeded")
    assert result.value("custom_record", "host1")["record"]["async_dir"] == str(remote.home / custom_dir)
    assert (remote.home / custom_dir).is_dir()
    assert not (remote.home / custom_dir / custom["ansible_job_id"]).exists()
    assert state.names() == []


# The two defects the remote hosts showed


def test_a_record_with_a_placeholder_become_user_still_works_over_ssh(runner, state, remote):
    """async_job_run once stored Ansible's omit placeholder as become_user of every job started
    without become; the cleanup then tried to become that "user". Such a record names no user."""
    # The record as async_job_run once stored it, for a job that really ran on the host: on
    # ansible-core 2.19 and later (host1), and before (host2).
    placeholders = {"host1": "<<Omit>>", "host2": "__omit_place_holder__" + "0f" * 20}
    record = (
        "{'job_name': 'legacy', 'host': inventory_hostname, 'ansible_job_id': legacy.ansible_job_id,"
        " 'save_time': '2025-01-02T03:04:05Z', 'metadata': {}, 'become': false,"
        f" 'become_user': {json.dumps(placeholders)}[inventory_hostname], 'async_dir': legacy.results_file | dirname}}"
    )
    tasks = [
        {"name": "Start a job", "ansible.builtin.command": "true", "async": 60, "poll": 0, "register": "legacy"},
        {
            "name": "Wait for the job to end",
            "ansible.builtin.async_status": {"jid": "{{ legacy.ansible_job_id }}"},
            "register": "legacy_done",
            "until": "legacy_done.finished",
            "retries": 60,
            "delay": 1,
        },
        {
            "name": "Store the record as async_job_run once did",
            "ansible.builtin.copy": {
                "content": "{{ " + record + " | to_nice_json }}",
                "dest": f"{state.root}/{{{{ inventory_hostname }}}}/{PLAY}/legacy.json",
                "mode": "0600",
            },
            "delegate_to": "localhost",
        },
        export_task("legacy", {"jid": "legacy.ansible_job_id"}),
        *check(state, "legacy", "checked"),
        forget(state, "legacy"),
        export_task("forgotten", {"removed": "async_job_forget_removed"}),
    ]
    for host in placeholders:
        (state.root / host / PLAY).mkdir(parents=True)
    result = runner.run([play(tasks, name=PLAY)], hosts=tuple(placeholders))
    for host in placeholders:
        if "legacy" in result.exported.get(host, {}):
            remote.remove_later(remote.results_file(result.value("legacy", host)["jid"]))
    assert result.rc == 0, result.output

    for host in placeholders:
        assert result.value("checked", host)["status"] == "succeeded"
        assert result.value("forgotten", host) == {"removed": True}
        assert not remote.results_file(result.value("legacy", host)["jid"]).exists()
    assert state.names() == []


def test_the_demo_runs_unchanged_against_an_ssh_host(runner, remote, tmp_path):
    """make demo's playbook, aimed at host1 instead of localhost (its only change), run twice:
    the job starts once on the host, the second run re-attaches to it."""
    demo = (Path(__file__).resolve().parents[2] / "playbooks" / "idempotent_job.yml").read_text()
    assert demo.count("\n  hosts: localhost\n") == 1
    playbook = tmp_path / "idempotent_job.yml"
    playbook.write_text(demo.replace("\n  hosts: localhost\n", "\n  hosts: host1\n"))
    exports = play([export_task("run", RAN)], name="Export the facts", hosts="host1")
    wrapper = runner.write([{"import_playbook": str(playbook)}, exports], name="demo.yml")
    state_dir = tmp_path / "state"

    first = runner.ok(wrapper, hosts=("host1",), extra_vars={"state_dir": str(state_dir), "job_seconds": 600})
    started = first.value("run", "host1")
    remote.remove_later(remote.results_file(started["ansible_job_id"]))
    second = runner.ok(wrapper, hosts=("host1",), extra_vars={"state_dir": str(state_dir), "job_seconds": 600})

    assert (started["started"], started["status"]) == (True, "running")
    again = second.value("run", "host1")
    assert (again["ansible_job_id"], again["started"], again["status"]) == (started["ansible_job_id"], False, "running")
    record = json.loads((state_dir / "host1" / "Idempotent long-running job" / "demo_long_job.json").read_text())
    assert record["async_dir"] == str(remote.home / ".ansible_async")
    assert "become_user" not in record
    assert remote.results_file(started["ansible_job_id"]).is_file()
