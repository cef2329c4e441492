"""Behaviour of async_job_run with real async jobs on localhost, once per backend where it matters.

Every job appends a line to a counter file when it starts, so a test counts the starts on the
host instead of trusting what the role says. Jobs run in a private async directory set in the
inventory (group_vars next to it); every test kills what it started.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.playbook import PlaybookResult, export_task, play, refused_name, role_task
from tests.support.storage import FilesystemStorage

PLAY = "Run the jobs"
RAN = {
    "ansible_job_id": "async_job_run_ansible_job_id",
    "started": "async_job_run_started",
    "status": "async_job_run_status",
    "result": "async_job_run_result",
}
JOB_ID = re.compile(r"^j\d+\.\d+$")
STATUSES = ("failed", "lost", "succeeded")
# The changes of a run that starts a job, in the play recap: the claim, the start and the record;
# the filesystem backend also creates the record's directories (one task).
START_CHANGES = {"filesystem": 4, "oci": 3}


# Helpers


def storage_vars(storage, role: str) -> dict:
    return {k.removeprefix(f"{role}_"): v for k, v in storage.role_vars(role).items()}


def run(storage, job: str = "deploy", key: str = "ran", **inputs) -> list[dict]:
    """async_job_run on the job, then an export of its outputs under key."""
    return [
        role_task("async_job_run", f"Run {job}", **storage_vars(storage, "async_job_run"), job_name=job, **inputs),
        export_task(key, RAN),
    ]


def waiting(**inputs) -> dict:
    """Inputs that make async_job_run wait for the job, polling every second."""
    return {"wait": True, "wait_retries": 120, "wait_delay": 1, **inputs}


def stored(storage, job: str = "deploy", host: str = "localhost") -> dict | None:
    data = storage.read(host, PLAY, job)
    return None if data is None else json.loads(data)


def claim_name(storage, key: str, job: str = "deploy", host: str = "localhost") -> str:
    """The name of a claim as storage.names() lists it."""
    prefix = getattr(storage, "prefix", "")
    return f"{prefix}{host}/{PLAY}/.claims/{job}/{key}.json"


def starts(counter: Path) -> int:
    """How many times a job appended its line to the counter file."""
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def wait_for_starts(counter: Path, expected: int, timeout: float = 60) -> int:
    """The number of starts once it reached expected (jobs write the counter asynchronously)."""
    deadline = time.monotonic() + timeout
    while starts(counter) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return starts(counter)


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    return tmp_path / "starts.log"


@pytest.fixture
def state(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path / "state")


# Start once, re-attach


def test_first_run_starts_and_the_next_run_reattaches(runner, storage, async_dir, counter):
    metadata = {"ticket": "CHG-42", "params": {"version": "3.0.0", "hosts": [1, 2]}}
    playbook = runner.write(
        [play(run(storage, command=f"echo x >> {counter}; sleep 600", metadata=metadata), name=PLAY)]
    )
    first = runner.ok(playbook)

    ran = first.value("ran")
    assert ran["started"] is True
    assert ran["status"] == "running"
    assert JOB_ID.match(ran["ansible_job_id"]), ran
    assert ran["result"]["ansible_job_id"] == ran["ansible_job_id"]
    assert first.changed() == START_CHANGES[storage.backend]
    record = stored(storage)
    assert record["ansible_job_id"] == ran["ansible_job_id"]
    assert (record["job_name"], record["host"], record["metadata"]) == ("deploy", "localhost", metadata)
    assert record["async_dir"] == str(async_dir)
    assert record["become"] is False
    assert "become_user" not in record  # started without become: no user, and never a placeholder
    before = storage.read("localhost", PLAY, "deploy")

    second = runner.ok(playbook)

    again = second.value("ran")
    assert again["started"] is False
    assert again["ansible_job_id"] == ran["ansible_job_id"]
    assert again["status"] == "running"
    assert again["result"]["ansible_job_id"] == ran["ansible_job_id"]
    assert again["result"]["finished"] == 0
    # Re-attaching reads the record and asks the host: nothing changes.
    assert second.changed() == 0, second.output
    assert storage.read("localhost", PLAY, "deploy") == before
    assert wait_for_starts(counter, 1) == 1
    time.sleep(1)
    assert starts(counter) == 1


def test_wait_reports_how_the_job_ended(runner, storage, async_dir, counter):
    tasks = run(storage, command=f"echo x >> {counter}; echo hello | tr h H; echo warn >&2", **waiting())
    first = runner.ok([play(tasks, name=PLAY)]).value("ran")
    second = runner.ok([play(tasks, name=PLAY)]).value("ran")

    assert first["started"] is True
    assert first["status"] == "succeeded"
    assert (first["result"]["rc"], first["result"]["stdout"], first["result"]["stderr"]) == (0, "Hello", "warn")
    assert first["ansible_job_id"] == stored(storage)["ansible_job_id"]
    # A succeeded job is reported, never started again, by default.
    assert second["started"] is False
    assert (second["ansible_job_id"], second["status"]) == (first["ansible_job_id"], "succeeded")
    assert second["result"]["stdout"] == "Hello"
    assert starts(counter) == 1


def test_argv_is_run_without_a_shell(runner, state, async_dir):
    argv = ["printf", "%s|", "two words", "$HOME", "~", "*", "; echo injected", "`id`"]
    result = runner.ok([play(run(state, argv=argv, **waiting()), name=PLAY)])

    ran = result.value("ran")
    assert ran["status"] == "succeeded"
    # Every argument reaches the program as given: no shell, and no expansion by Ansible either.
    assert ran["result"]["stdout"] == "two words|$HOME|~|*|; echo injected|`id`|"


def test_a_command_is_run_by_sh_as_written(runner, state, async_dir):
    command = "printf '%s|' \"$0\" '$HOME' \"$((6 * 7))\""
    result = runner.ok([play(run(state, command=command, **waiting()), name=PLAY)])

    # sh expands what it should ($0, arithmetic) and nothing expands the single-quoted $HOME.
    assert result.value("ran")["result"]["stdout"] == "/bin/sh|$HOME|42|"


# Restarting a finished or lost job


def finish_job(runner, storage, async_dir, counter, outcome: str) -> str:
    """Run a job to the given outcome with async_job_run; return its id."""
    command = f"echo x >> {counter}; exit 3" if outcome == "failed" else f"echo x >> {counter}"
    ran = runner.ok([play(run(storage, command=command, **waiting()), name=PLAY)]).value("ran")
    assert ran["status"] == ("failed" if outcome == "failed" else "succeeded"), ran
    if outcome == "lost":
        (async_dir / ran["ansible_job_id"]).unlink()
    return ran["ansible_job_id"]


def restart_scenario(runner, storage, async_dir, counter, outcome: str) -> None:
    command = f"echo x >> {counter}; exit 3" if outcome == "failed" else f"echo x >> {counter}"
    job_id = finish_job(runner, storage, async_dir, counter, outcome)
    others = [status for status in STATUSES if status != outcome]
    reporting = [
        *run(storage, key="default", command=command),
        *run(storage, key="others", command=command, restart_on=others),
    ]
    reported = runner.ok([play(reporting, name=PLAY)])

    for key in ("default", "others"):
        ran = reported.value(key)
        assert (ran["started"], ran["ansible_job_id"], ran["status"]) == (False, job_id, outcome), (key, ran)
    assert reported.changed() == 0
    assert starts(counter) == 1

    restarted = runner.ok([play(run(storage, command=command, restart_on=[outcome], **waiting()), name=PLAY)])

    ran = restarted.value("ran")
    assert ran["started"] is True
    assert JOB_ID.match(ran["ansible_job_id"])
    assert ran["ansible_job_id"] != job_id
    assert ran["status"] == ("failed" if outcome == "failed" else "succeeded")
    assert stored(storage)["ansible_job_id"] == ran["ansible_job_id"]
    assert starts(counter) == 2


def test_restart_on_failed_restarts_a_failed_job_and_the_default_only_reports_it(runner, storage, async_dir, counter):
    restart_scenario(runner, storage, async_dir, counter, "failed")


@pytest.mark.parametrize("outcome", ["lost", "succeeded"])
def test_restart_on_restarts_only_the_listed_status(runner, state, async_dir, counter, outcome):
    restart_scenario(runner, state, async_dir, counter, outcome)


def test_a_running_job_is_never_restarted(runner, state, async_dir, counter):
    tasks = run(state, command=f"echo x >> {counter}; sleep 600", restart_on=list(STATUSES))
    first = runner.ok([play(tasks, name=PLAY)]).value("ran")
    second = runner.ok([play(tasks, name=PLAY)]).value("ran")

    assert (first["started"], second["started"]) == (True, False)
    assert second["ansible_job_id"] == first["ansible_job_id"]
    assert second["status"] == "running"
    assert wait_for_starts(counter, 1) == 1


# Check mode


def test_check_mode_starts_nothing_and_reports_the_change(runner, storage, async_dir, counter):
    command = f"echo x >> {counter}; exit 3"
    would_start = runner.ok([play(run(storage, command=command), name=PLAY)], args=("--check",))

    ran = would_start.value("ran")
    assert would_start.changed() == 1
    assert would_start.messages() == [f"Would start job deploy on localhost (no record): /bin/sh -c {command}"]
    assert (ran["started"], ran["ansible_job_id"], ran["status"]) == (False, "", "absent")
    assert storage.names() == []
    assert not async_dir.exists() or not any(async_dir.iterdir())

    job_id = runner.ok([play(run(storage, command=command, **waiting()), name=PLAY)]).value("ran")["ansible_job_id"]
    names = storage.names()
    before = storage.read("localhost", PLAY, "deploy")
    checked = [
        *run(storage, key="report", command=command),
        *run(storage, key="restart", command=command, restart_on=["failed"]),
    ]
    would_restart = runner.ok([play(checked, name=PLAY)], args=("--check",))

    report, restart = would_restart.value("report"), would_restart.value("restart")
    assert (report["started"], report["ansible_job_id"], report["status"]) == (False, job_id, "failed")
    assert (restart["started"], restart["ansible_job_id"], restart["status"]) == (False, job_id, "failed")
    assert would_restart.changed() == 1, would_restart.output
    # Only the run told to restart a failed job would start it again.
    shown = f"Would start job deploy on localhost (its job {job_id} is failed): /bin/sh -c {command}"
    assert would_restart.messages() == [shown]
    assert storage.names() == names
    assert storage.read("localhost", PLAY, "deploy") == before
    time.sleep(1)
    assert starts(counter) == 1


# Refusals


ONE_COMMAND = "Give exactly one of async_job_run_command (a shell string) and async_job_run_argv (a list); got"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"command": "true", "argv": ["true"]}, f"{ONE_COMMAND} both. Nothing was written."),
        ({}, f"{ONE_COMMAND} neither. Nothing was written."),
        ({"command": "true", "job": "a/b"}, refused_name("async_job_run_job_name", "a/b")),
        ({"command": "true", "job": ".."}, refused_name("async_job_run_job_name", "..")),
        (
            {"command": "true", "restart_on": ["failed", "crashed"]},
            "Validation of arguments failed:\nvalue of async_job_run_restart_on must be one or more of:"
            " failed, lost, succeeded. Got no match for: crashed",
        ),
    ],
    ids=["both", "neither", "slash-in-name", "dot-dot-name", "unknown-restart-status"],
)
def test_refuses_bad_input_before_anything_is_stored_or_started(runner, state, async_dir, inputs, message):
    task = run(state, **inputs)[0]
    result = runner.fails([play([task], name=PLAY)])

    assert result.failure() == message
    assert state.names() == []
    assert not async_dir.exists() or not any(async_dir.iterdir())


# Concurrent runs


def race(runner, storage, job: str, command: str, racers: int, tmp_path: Path) -> list[PlaybookResult]:
    """Start racers ansible-playbook processes on the same job; each exports into its own directory."""
    playbook = runner.write([play(run(storage, job=job, command=command), name=PLAY)])
    exports = [tmp_path / f"export-{job}-{n}" for n in range(racers)]
    for directory in exports:
        (directory / "localhost").mkdir(parents=True)
    processes = [runner.start(playbook, extra_vars={"export_dir": str(directory)}) for directory in exports]
    results = [runner.finish(process, timeout=1200) for process in processes]
    for result, directory in zip(results, exports, strict=True):
        exported = directory / "localhost" / "ran.json"
        result.exported = {"localhost": {"ran": json.loads(exported.read_text())}} if exported.is_file() else {}
    return results


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_runs_start_the_job_exactly_once(runner, storage, async_dir, tmp_path, round_):
    racers = 6
    job = f"race{round_}"
    counter = tmp_path / f"starts-{job}.log"
    results = race(runner, storage, job, f"echo x >> {counter}; sleep 600", racers, tmp_path)

    assert [r.rc for r in results] == [0] * racers, [r.output[-2000:] for r in results if r.rc]
    ran = [r.value("ran") for r in results]
    assert len({r["ansible_job_id"] for r in ran}) == 1, ran
    assert [r["started"] for r in ran].count(True) == 1, ran
    assert {r["status"] for r in ran} == {"running"}
    assert stored(storage, job=job)["ansible_job_id"] == ran[0]["ansible_job_id"]
    assert wait_for_starts(counter, 1) == 1
    time.sleep(1)
    assert starts(counter) == 1


# A claim whose owner died


@pytest.mark.parametrize("age", [3600, 0], ids=["expired", "expiring"])
def test_a_dead_claim_is_taken_over_once_it_expires(runner, storage, async_dir, counter, age):
    ttl = 5
    made = (datetime.now(UTC) - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    claim = {
        "job_name": "new",
        "host": "localhost",
        "ansible_job_id": "c123456789",
        "save_time": made,
        "metadata": {"claim_of": "deploy", "replaces": "", "ttl": ttl, "controller_user": "someone"},
    }
    key = f"localhost/{PLAY}/.claims/deploy/new.json"
    if storage.backend == "filesystem":
        path = storage.root / key
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(claim))
    else:
        storage.server.put_object(storage.bucket, storage.prefix + key, json.dumps(claim).encode())

    result = runner.ok([play(run(storage, command=f"echo x >> {counter}; sleep 600", claim_ttl=ttl), name=PLAY)])

    ran = result.value("ran")
    assert ran["started"] is True
    assert ran["status"] == "running"
    assert stored(storage)["ansible_job_id"] == ran["ansible_job_id"]
    # The next claim is keyed on the dead claim's token, so again exactly one run takes over.
    assert claim_name(storage, "c123456789") in storage.names()
    assert wait_for_starts(counter, 1) == 1
