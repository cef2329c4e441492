"""The OCI backend works per batch of hosts: a constant number of oci processes, outcomes per host.

Every test runs the real ansible-playbook on a batch of local hosts; the roles run the real oci
CLI (through a PATH wrapper that counts its processes) against the local Object Storage server.
"""

from __future__ import annotations

import json

import pytest

from tests.support.fixtures import BUCKET
from tests.support.oci_calls import OCICalls
from tests.support.playbook import LOADED, export_task, play, role_task
from tests.support.storage import OCIStorage

PLAY = "Batch"
HOSTS = ("web1", "web2", "web3")
NO_RETRY = ["--no-retry"]


@pytest.fixture
def storage(oci_server, oci_client) -> OCIStorage:
    return OCIStorage(oci_server, oci_client.config_file, oci_client.bucket)


@pytest.fixture
def calls(runner, tmp_path) -> OCICalls:
    return OCICalls(tmp_path / "oci-calls", runner)


def task(storage, role, **inputs):
    values = {key.removeprefix(f"{role}_"): value for key, value in storage.role_vars(role).items()}
    return role_task(role, **{**values, **inputs})


def save(storage, job="deploy", **inputs):
    inputs.setdefault("ansible_job_id", "j1{{ inventory_hostname[-1] }}.1")
    return task(storage, "async_job_save", job_name=job, host="{{ inventory_hostname }}", **inputs)


def load(storage, job="deploy", **inputs):
    return task(storage, "async_job_load", job_name=job, **inputs)


def record(job_id: str, host: str, job: str = "deploy") -> bytes:
    body = {
        "job_name": job,
        "host": host,
        "ansible_job_id": job_id,
        "save_time": "2025-01-02T03:04:05Z",
        "metadata": {},
    }
    return (json.dumps(body, indent=4) + "\n").encode()


def commands_of(runner, calls, tasks, hosts) -> list[str]:
    calls.clear()
    runner.ok([play(tasks, name=PLAY)], hosts=hosts)
    return calls.commands()


# The process budget


@pytest.mark.parametrize("hosts", [HOSTS[:1], HOSTS], ids=["one host", "three hosts"])
def test_every_path_costs_the_same_oci_processes_for_one_host_and_a_batch(runner, storage, calls, hosts):
    # A load that finds nothing also looks for the job under the hosts' other playbook names.
    assert commands_of(runner, calls, [load(storage)], hosts) == ["bulk-download", "bulk-download"]
    assert commands_of(runner, calls, [save(storage)], hosts) == ["bulk-download", "bulk-upload"]
    # A re-save of the same records reads them and uploads nothing.
    assert commands_of(runner, calls, [save(storage)], hosts) == ["bulk-download"]
    assert commands_of(runner, calls, [load(storage)], hosts) == ["bulk-download"]
    # Create-only goes straight to a --no-overwrite upload.
    assert commands_of(runner, calls, [save(storage, job="once", overwrite=False)], hosts) == ["bulk-upload"]
    assert "--no-overwrite" in calls.argvs()[0]
    assert commands_of(runner, calls, [task(storage, "async_job_list")], hosts) == ["bulk-download"]
    forget = task(storage, "async_job_forget", job_name="deploy")
    assert commands_of(runner, calls, [forget], hosts) == ["bulk-download", "bulk-delete"]
    assert storage.names() == sorted(f"{host}/{PLAY}/once.json" for host in hosts)


def test_a_resave_changes_nothing_and_keeps_save_time(runner, storage, calls):
    runner.ok([play([save(storage)], name=PLAY)], hosts=HOSTS)
    before = {host: storage.read(host, PLAY, "deploy") for host in HOSTS}
    calls.clear()
    result = runner.ok([play([save(storage)], name=PLAY)], hosts=HOSTS)

    assert {host: result.changed(host) for host in HOSTS} == dict.fromkeys(HOSTS, 0)
    assert {host: storage.read(host, PLAY, "deploy") for host in HOSTS} == before
    assert calls.commands() == ["bulk-download"]


def test_the_claims_of_a_batch_go_up_in_one_create_only_upload(runner, storage, calls, async_dir):
    run = task(storage, "async_job_run", job_name="sleeper", command="sleep 60")
    calls.clear()
    runner.ok([play([run], name=PLAY)], hosts=HOSTS)

    uploads = [argv for argv in calls.argvs() if "bulk-upload" in argv]
    create_only = [argv for argv in uploads if "--no-overwrite" in argv]
    assert len(create_only) == 1, calls.argvs()
    # The claim of every host is stored, and so is every job's record.
    names = storage.names()
    for host in HOSTS:
        assert f"{host}/{PLAY}/sleeper.json" in names
        assert f"{host}/{PLAY}/.claims/sleeper/new.json" in names
    # The whole run: the load, the claims, and the record's read and upload; the same for one host.
    batch = calls.commands()
    calls.clear()
    runner.ok(
        [play([task(storage, "async_job_run", job_name="other", command="sleep 60")], name=PLAY)], hosts=HOSTS[:1]
    )
    assert calls.commands() == batch


# Outcomes are per host


def test_a_mixed_batch_is_judged_host_by_host(runner, storage, calls):
    storage.write("web1", PLAY, "deploy", record("j1.1", "web1"))
    storage.write("web3", PLAY, "deploy", b"{not json")
    tasks = [load(storage), export_task("loaded", LOADED)]
    result = runner.run([play(tasks, name=PLAY)], hosts=HOSTS)

    # The second looks for web2's job under its other playbook names.
    assert calls.commands() == ["bulk-download", "bulk-download"]
    assert result.value("loaded", "web1")["ansible_job_id"] == "j1.1"
    assert result.value("loaded", "web2")["found"] is False
    assert result.stats["web3"]["failed"] == 1
    assert result.failure("web3").startswith(
        f"The job record oci://{BUCKET}/web3/{PLAY}/deploy.json exists but is not valid JSON ("
    )
    assert "loaded" not in result.exported.get("web3", {})


def test_faults_on_two_hosts_objects_fail_those_hosts_alone(runner, oci_server, storage):
    for host in HOSTS:
        storage.write(host, PLAY, "deploy", record(f"j{host[-1]}.1", host))
    oci_server.add_fault(method="GET", object_name="^web1/", status=403, times=-1)
    oci_server.add_fault(method="GET", object_name="^web2/", status=500, times=-1)
    tasks = [load(storage, oci_cli_args=NO_RETRY), export_task("loaded", LOADED)]
    result = runner.run([play(tasks, name=PLAY)], hosts=HOSTS)

    assert result.value("loaded", "web3")["ansible_job_id"] == "j3.1"
    for host, status, code in (("web1", 403, "NotAuthorized"), ("web2", 500, "InternalServerError")):
        message = result.failure(host)
        where = f"object '{host}/{PLAY}/deploy.json' in bucket '{BUCKET}' (namespace 'testns')"
        assert message.startswith(f"OCI Object Storage download of {where}"), message
        assert f"status {status} code {code}" in message, message
        assert "not found" not in message.lower()
        assert "loaded" not in result.exported.get(host, {})


def test_a_failed_upload_of_one_host_leaves_the_others_saved(runner, oci_server, storage):
    oci_server.add_fault(method="PUT", object_name="^web2/", status=403, times=-1)
    exports = export_task("saved", {"state_file": "async_job_save_state_file"})
    result = runner.run([play([save(storage, oci_cli_args=NO_RETRY), exports], name=PLAY)], hosts=HOSTS)

    message = result.failure("web2")
    assert message.startswith(f"OCI Object Storage upload of object 'web2/{PLAY}/deploy.json' in bucket '{BUCKET}'"), (
        message
    )
    assert "status 403 code NotAuthorized" in message
    assert storage.read("web2", PLAY, "deploy") is None
    for host in ("web1", "web3"):
        assert json.loads(storage.read(host, PLAY, "deploy"))["ansible_job_id"] == f"j1{host[-1]}.1"
        assert result.value("saved", host)["state_file"] == storage.state_file(host, PLAY, "deploy")


def test_a_create_only_write_whose_answer_was_lost_is_this_saves_own(runner, oci_server, storage, calls):
    # The server stores web1's record and drops the answer; the CLI retries the PUT, which meets
    # the record it stored itself (412). Reading it back shows the save's own record: a change,
    # not a conflict.
    oci_server.add_fault(method="PUT", object_name="^web1/", drop_after=True, times=1)
    result = runner.ok([play([save(storage, overwrite=False)], name=PLAY)], hosts=HOSTS)

    assert calls.commands() == ["bulk-upload", "bulk-download"]
    assert {host: result.changed(host) for host in HOSTS} == dict.fromkeys(HOSTS, 1)
    assert json.loads(storage.read("web1", PLAY, "deploy"))["ansible_job_id"] == "j11.1"


def test_create_only_refuses_another_jobs_record_host_by_host(runner, storage):
    storage.write("web2", PLAY, "deploy", record("j9.9", "web2"))
    result = runner.run([play([save(storage, overwrite=False)], name=PLAY)], hosts=HOSTS)

    assert result.failure("web2").startswith(
        f"async_job_save_overwrite is false and oci://{BUCKET}/web2/{PLAY}/deploy.json already holds job 'deploy'"
        " with ansible_job_id 'j9.9'"
    )
    assert json.loads(storage.read("web2", PLAY, "deploy"))["ansible_job_id"] == "j9.9"
    assert [result.changed(host) for host in ("web1", "web3")] == [1, 1]


@pytest.mark.parametrize("role", ["async_job_save", "async_job_load", "async_job_list", "async_job_forget"])
def test_a_bucket_that_cannot_be_listed_fails_every_host_of_the_batch(runner, storage, calls, role):
    inputs = {"oci_bucket": "no-such-bucket", "oci_cli_args": NO_RETRY}
    step = {
        "async_job_save": lambda: save(storage, **inputs),
        "async_job_load": lambda: load(storage, **inputs),
        "async_job_list": lambda: task(storage, role, **inputs),
        "async_job_forget": lambda: task(storage, role, job_name="deploy", **inputs),
    }[role]()
    result = runner.run([play([step], name=PLAY)], hosts=HOSTS)

    assert calls.commands() == ["bulk-download"]
    for host in HOSTS:
        message = result.failure(host)
        assert "in bucket 'no-such-bucket'" in message, message
        assert "status 404 code BucketNotFound" in message, message
        assert result.stats[host]["failed"] == 1
