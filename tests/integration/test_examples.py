"""The example playbooks of playbooks/, run the way the patterns guide runs them.

Each example is run twice or more with short durations: the first run starts its job, a later
run re-attaches to the same job (same id, ``started`` false). A test runs the example file as it
is, imported by a small wrapper playbook whose second play exports the facts the example left,
so the assertions are on values rather than on the printed report. Every run uses a private
async directory, remote temporary directory, state directory and log directory (no file in the
home directory or the repository), and each test kills, by process group, the jobs it started.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fixtures import BUCKET
from tests.support.jobs import kill_jobs, use_private_async_dir
from tests.support.playbook import PlaybookResult, PlaybookRunner, export_task, play

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
EXAMPLES = [
    "building_blocks.yml",
    "idempotent_job.yml",
    "parameterised_job.yml",
    "wait_for_job.yml",
    "crash_recovery.yml",
    "live_output.yml",
    "oci_backend.yml",
]
JOB_ID = re.compile(r"^j\d+\.\d+$")
# What every example leaves from rstyczynski.ansible.async_job_run.
RUN = {
    "job_id": "async_job_run_ansible_job_id",
    "started": "async_job_run_started",
    "status": "async_job_run_status",
    "result": "async_job_run_result",
}
# What playbooks/building_blocks.yml leaves: it does without async_job_run.
BLOCKS = {
    "found": "async_job_load_found",
    "job_id": "blocks_status.ansible_job_id",
    "finished": "blocks_status.finished | bool",
    "rc": "blocks_status.rc | default(None)",
    "stdout": "blocks_status.stdout | default(None)",
    "msg": "blocks_status.msg | default(None)",
}


class Examples:
    """Runs the example playbooks with private directories, and reads what they left."""

    def __init__(self, runner: PlaybookRunner, root: Path):
        self.runner = runner
        self.async_dir = root / "async"
        self.state_dir = root / "state"
        self.log_dir = root / "logs"

    def run(
        self,
        example: str,
        exports: dict[str, str] | None = None,
        fails: bool = False,
        uses_run: bool = True,
        **extra_vars: object,
    ) -> PlaybookResult:
        """Run an example with extra vars; its facts (RUN, unless it does not use async_job_run, plus
        exports) end up in result.value("run")."""
        facts = {**(RUN if uses_run else {}), **(exports or {})}
        wrapper = [
            {"import_playbook": str(PLAYBOOKS / example)},
            play([export_task("run", facts)], name="Export the facts", hosts="localhost"),
        ]
        playbook = self.runner.write(wrapper, name=f"run-{example}")
        variables = {"state_dir": str(self.state_dir), **extra_vars}
        if fails:
            return self.runner.fails(playbook, extra_vars=variables)
        return self.runner.ok(playbook, extra_vars=variables)

    def record(self, play_name: str, job: str) -> dict:
        """The record an example saved with the filesystem backend."""
        return json.loads((self.state_dir / "localhost" / play_name / f"{job}.json").read_text())

    def wait_until_finished(self, job_id: str, timeout: float = 120) -> dict:
        """The job's final results file, once the job has finished."""
        results = self.async_dir / job_id
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answer = json.loads(results.read_text())
            except (OSError, ValueError):
                answer = {}
            if "rc" in answer or answer.get("failed"):
                return answer
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} did not finish within {timeout} s")


@pytest.fixture
def examples(runner: PlaybookRunner, tmp_path: Path) -> Iterator[Examples]:
    """The examples with a private async and remote temporary directory, set in the inventory."""
    helper = Examples(runner, tmp_path)
    assert use_private_async_dir(runner, tmp_path) == helper.async_dir
    yield helper
    kill_jobs(tmp_path)


# Static checks


def test_every_example_is_listed_here():
    assert sorted(p.name for p in PLAYBOOKS.glob("*.yml")) == sorted(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_says_how_to_run_it_and_is_in_the_patterns_guide(example):
    header = (PLAYBOOKS / example).read_text().split("\n- name:", 1)[0]
    assert f"ansible-playbook -i playbooks/inventory.ini playbooks/{example}" in header
    assert f"playbooks/{example}" in (REPO / "docs" / "patterns.md").read_text()


# The examples, run


def test_building_blocks_start_once_then_reattach_and_report(examples):
    first = examples.run("building_blocks.yml", BLOCKS, uses_run=False, job_seconds=600)
    second = examples.run("building_blocks.yml", BLOCKS, uses_run=False, job_seconds=600)
    started, attached = first.value("run"), second.value("run")

    assert JOB_ID.match(started["job_id"])
    running = {"finished": False, "rc": None, "stdout": "", "msg": None}
    assert started == {"found": False, "job_id": started["job_id"], **running}
    assert attached == {"found": True, "job_id": started["job_id"], **running}
    # The first run creates the record's directories, starts the job and saves it; the second reads.
    assert (first.changed(), second.changed()) == (3, 0)
    assert first.messages()[-1] == [f"Started job blocks_demo: {started['job_id']}", "Status: running"]
    assert second.messages()[-1] == [f"Re-attached to job blocks_demo: {started['job_id']}", "Status: running"]
    record = examples.record("Building blocks", "blocks_demo")
    assert (record["ansible_job_id"], record["metadata"]) == (started["job_id"], {"seconds": 600})


def test_building_blocks_report_how_the_job_ended_and_start_nothing(examples):
    started = examples.run("building_blocks.yml", BLOCKS, uses_run=False, job_seconds=1).value("run")
    examples.wait_until_finished(started["job_id"])
    ended = examples.run("building_blocks.yml", BLOCKS, uses_run=False, job_seconds=1)

    assert ended.value("run") == {
        "found": True,
        "job_id": started["job_id"],
        "finished": True,
        "rc": 0,
        "stdout": "finished after 1 seconds",
        "msg": "",
    }
    assert ended.changed() == 0
    status = "Status: ended, rc 0, output: finished after 1 seconds"
    assert ended.messages()[-1] == [f"Re-attached to job blocks_demo: {started['job_id']}", status]

    # The host forgets the job (a reboot, a cleared async directory): reported, still not started.
    (examples.async_dir / started["job_id"]).unlink()
    lost = examples.run("building_blocks.yml", BLOCKS, uses_run=False, job_seconds=1)
    assert (lost.value("run")["found"], lost.value("run")["job_id"]) == (True, started["job_id"])
    assert lost.value("run")["msg"] == "could not find job"
    status = "Status: no results on the host (could not find job)"
    assert lost.messages()[-1] == [f"Re-attached to job blocks_demo: {started['job_id']}", status]
    assert examples.record("Building blocks", "blocks_demo")["ansible_job_id"] == started["job_id"]


def test_idempotent_job_starts_once_then_reattaches(examples):
    first = examples.run("idempotent_job.yml", job_seconds=2).value("run")
    second = examples.run("idempotent_job.yml", job_seconds=2).value("run")

    assert JOB_ID.match(first["job_id"])
    assert (first["started"], first["status"]) == (True, "running")
    assert (second["job_id"], second["started"]) == (first["job_id"], False)
    assert second["status"] in ("running", "succeeded")
    record = examples.record("Idempotent long-running job", "demo_long_job")
    assert record["ansible_job_id"] == first["job_id"]
    assert record["metadata"] == {"seconds": 2}

    examples.wait_until_finished(first["job_id"])
    third = examples.run("idempotent_job.yml", job_seconds=2).value("run")
    assert (third["job_id"], third["started"], third["status"]) == (first["job_id"], False, "succeeded")
    assert (third["result"]["rc"], third["result"]["stdout"]) == (0, "finished after 2 seconds")

    again = examples.run("idempotent_job.yml", job_seconds=2, restart_on="succeeded").value("run")
    assert (again["started"], again["status"]) == (True, "running")
    assert again["job_id"] != first["job_id"]
    assert examples.record("Idempotent long-running job", "demo_long_job")["ansible_job_id"] == again["job_id"]


def test_parameterised_job_keeps_the_parameters_it_was_started_with(examples):
    exports = {"saved": "job_saved_parameters"}
    data = {"job": "verify", "target": "/srv/data", "seconds": 2}
    first = examples.run("parameterised_job.yml", exports, job="verify", target="/srv/data", job_seconds=2)
    second = examples.run("parameterised_job.yml", exports, job="verify", target="/srv/other", job_seconds=2)
    started, attached = first.value("run"), second.value("run")

    assert (started["started"], started["status"]) == (True, "running")
    assert started["saved"] == data
    assert (attached["job_id"], attached["started"]) == (started["job_id"], False)
    assert attached["saved"] == data
    # The message the operator reads when asking for other parameters than the job runs with.
    assert (
        "This run asked for job=verify seconds=2 target=/srv/other, but job verify was started with job=verify"
        " seconds=2 target=/srv/data; nothing was started. Use another job_name for a second job or, once this"
        " one has ended, run again with -e restart_on=succeeded,failed,lost to start it with the parameters of"
        " this run."
    ) in second.messages()
    metadata = examples.record("Parameterised job", "verify")["metadata"]
    assert {key: metadata[key] for key in data} == data
    assert set(metadata) == {"job", "target", "seconds", "requested_by", "requested_at"}

    finished = examples.wait_until_finished(started["job_id"])
    assert finished["stdout"] == "verifying /srv/data\n/srv/data verified"

    # Once the job has ended, restart_on starts it again with the parameters of the new run.
    again = examples.run(
        "parameterised_job.yml", exports, job="verify", target="/srv/other", job_seconds=2, restart_on="succeeded"
    ).value("run")
    assert (again["started"], again["saved"]) == (True, {**data, "target": "/srv/other"})
    assert again["job_id"] != started["job_id"]
    assert examples.record("Parameterised job", "verify")["metadata"]["target"] == "/srv/other"


def test_parameterised_job_refuses_a_job_it_does_not_know(examples):
    result = examples.run("parameterised_job.yml", fails=True, job="format_disk")

    assert result.failure() == "job is format_disk: use one of backup, verify."
    assert not examples.state_dir.exists()


def test_wait_for_job_blocks_until_the_job_has_ended(examples):
    exports = {"waited": "job_wait"}
    short = {"job_seconds": 2, "wait_delay": 1, "wait_retries": 120}
    first = examples.run("wait_for_job.yml", exports, **short).value("run")
    second = examples.run("wait_for_job.yml", exports, **short).value("run")

    assert first["started"] is True
    assert (second["job_id"], second["started"], second["status"]) == (first["job_id"], False, "succeeded")
    for run in (first, second):
        waited = run["waited"]
        assert waited["ansible_job_id"] == first["job_id"]
        assert waited["finished"]
        assert (waited["rc"], waited["stdout_lines"]) == (0, ["working for 2 seconds", "done"])


def test_crash_recovery_reports_failed_and_lost_jobs_and_restarts_them_when_told(examples):
    exports = {"before": "recovery_previous_status"}
    failing = examples.run("crash_recovery.yml", exports, job_seconds=1, job_exit_code=3).value("run")
    assert (failing["started"], failing["before"]) == (True, "absent")
    examples.wait_until_finished(failing["job_id"])

    # Re-attached: the failure is reported, the play fails, nothing is restarted.
    reported = examples.run("crash_recovery.yml", fails=True, job_seconds=1)
    message = reported.failure()
    assert message.startswith(f"Job recovery_demo ({failing['job_id']}) is failed: rc 3, last output: exiting with 3.")
    assert "Run again with -e restart_on=failed to start it again." in message
    assert examples.record("Crash recovery", "recovery_demo")["ansible_job_id"] == failing["job_id"]

    restarted = examples.run("crash_recovery.yml", exports, job_seconds=1, restart_on="failed,lost").value("run")
    assert (restarted["before"], restarted["started"], restarted["status"]) == ("failed", True, "running")
    assert restarted["job_id"] != failing["job_id"]
    assert examples.record("Crash recovery", "recovery_demo")["ansible_job_id"] == restarted["job_id"]
    assert examples.wait_until_finished(restarted["job_id"])["rc"] == 0

    # The host forgets the job (a reboot, a cleared async directory): lost.
    (examples.async_dir / restarted["job_id"]).unlink()
    lost = examples.run("crash_recovery.yml", fails=True, job_seconds=1)
    assert lost.failure().startswith(f"Job recovery_demo ({restarted['job_id']}) is lost: could not find job.")

    recovered = examples.run("crash_recovery.yml", exports, job_seconds=1, restart_on=["lost"]).value("run")
    assert (recovered["before"], recovered["started"]) == ("lost", True)
    assert recovered["job_id"] not in (failing["job_id"], restarted["job_id"])


def test_crash_recovery_reattaches_to_a_running_job(examples):
    # Long enough to outlast both runs on a busy machine; the fixture kills it afterwards.
    first = examples.run("crash_recovery.yml", job_seconds=600).value("run")
    second = examples.run("crash_recovery.yml", job_seconds=600, restart_on="failed,lost").value("run")

    assert (first["started"], first["status"]) == (True, "running")
    assert (second["job_id"], second["started"], second["status"]) == (first["job_id"], False, "running")


def test_live_output_shows_the_tail_of_the_log_until_the_job_ends(examples):
    exports = {
        "shown": "live_tail.results | reject('skipped') | map(attribute='stdout_lines') | list",
        "rounds": "live_tail.results | length",
        "final": "async_job_load_status",
        "log_file": "live_log_file",
    }
    short = {"job_steps": 3, "step_seconds": 1, "monitor_delay": 1, "monitor_rounds": 60}
    short["log_dir"] = str(examples.log_dir)
    first = examples.run("live_output.yml", exports, **short).value("run")
    end = ["step 2 of 3", "step 3 of 3", "== job ended =="]

    assert first["started"] is True
    assert first["log_file"] == str(examples.log_dir / "live_demo.log")
    assert first["rounds"] == 60
    assert first["shown"][-1] == end, first["shown"]
    assert all(len(lines) <= 3 for lines in first["shown"])
    assert first["final"] == "succeeded"
    assert (examples.log_dir / "live_demo.log").read_text().splitlines() == ["step 1 of 3", *end]

    # The job has ended: a later run re-attaches and shows the end of the log once.
    second = examples.run("live_output.yml", exports, **short).value("run")
    assert (second["job_id"], second["started"], second["status"]) == (first["job_id"], False, "succeeded")
    assert (second["rounds"], second["shown"], second["final"]) == (1, [end], "succeeded")


def test_oci_example_keeps_the_record_in_the_bucket(examples, oci_server, oci_client):
    oci = {
        "oci_bucket": BUCKET,
        "oci_namespace": oci_server.namespace,
        "oci_config_file": str(oci_client.config_file),
        "oci_endpoint": oci_server.endpoint,
        "oci_prefix": "team-a/",
        "job_seconds": 2,
    }
    exports = {"state_file": "async_job_load_state_file"}
    first = examples.run("oci_backend.yml", exports, **oci).value("run")
    second = examples.run("oci_backend.yml", exports, **oci).value("run")

    key = "team-a/localhost/Idempotent job with OCI records/oci_demo.json"
    assert (first["started"], first["status"]) == (True, "running")
    assert (second["job_id"], second["started"]) == (first["job_id"], False)
    assert second["status"] in ("running", "succeeded")
    assert second["state_file"] == f"oci://{BUCKET}/{key}"
    assert key in oci_server.list_objects(BUCKET)
    assert json.loads(oci_server.get_object(BUCKET, key))["ansible_job_id"] == first["job_id"]
    assert not examples.state_dir.exists()


def test_oci_example_asks_for_the_bucket_and_namespace(examples):
    result = examples.run("oci_backend.yml", fails=True, oci_bucket="ansible-state")

    assert result.failure().startswith("Give the bucket and its namespace: -e oci_bucket=<bucket>")
