"""What only the OCI backend does, seen on the wire of the local Object Storage server.

Each test runs the real ansible-playbook with the collection's roles; the roles run the real
oci CLI against the local server, whose request log shows what was sent. The behaviour both
backends share (round trip, re-save, create-only, races, bad names, damaged records) is in
test_save_load.py.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.contract import OCI, example, source
from tests.support.fixtures import BUCKET
from tests.support.playbook import LOADED, SAVE_TIME, export_task, play, role_task
from tests.support.storage import OCIStorage

PLAY = "Deploy the web tier"
# Failure tests must not wait for the CLI's default retries (8 attempts, about 94 s).
NO_RETRY = ["--no-retry"]
TWO_ATTEMPTS = ["--max-retries", "2"]


# Helpers


@pytest.fixture
def storage(oci_server, oci_client) -> OCIStorage:
    """The test bucket, reached with profile DEFAULT (whose key the server knows).

    Overrides the two-backend fixture of conftest.py: every test here is about OCI only.
    """
    return OCIStorage(oci_server, oci_client.config_file, oci_client.bucket)


@pytest.fixture
def refused_endpoint() -> Iterator[str]:
    """An endpoint on 127.0.0.1 that refuses connections: a bound port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def inputs(storage: OCIStorage, role: str, **overrides) -> dict:
    """The role's OCI inputs, without the role prefix, pointing at the test bucket."""
    values = {key.removeprefix(f"{role}_"): value for key, value in storage.role_vars(role).items()}
    return {**values, **overrides}


def save(storage, job="deploy", job_id="j100.1", **extra):
    task_inputs = {"job_name": job, "ansible_job_id": job_id, "host": "{{ inventory_hostname }}"}
    oci = {key: extra.pop(key) for key in list(extra) if key.startswith("oci_")}
    return role_task("async_job_save", **inputs(storage, "async_job_save", **oci), **task_inputs, **extra)


def load(storage, job="deploy", **extra):
    oci = {key: extra.pop(key) for key in list(extra) if key.startswith("oci_")}
    return role_task("async_job_load", **inputs(storage, "async_job_load", **oci), job_name=job, **extra)


def record(job_id: str, job: str = "deploy", host: str = "localhost", **metadata) -> bytes:
    """A record as the roles store it."""
    body = {"job_name": job, "host": host, "ansible_job_id": job_id, "save_time": "2025-01-02T03:04:05Z"}
    return (json.dumps({**body, "metadata": metadata}, indent=4) + "\n").encode()


def methods(server) -> list[str]:
    return [entry.method for entry in server.request_log()]


def writes(server) -> list:
    """Requests that change a bucket: PutObject, multipart uploads and deletes."""
    return [entry for entry in server.request_log() if entry.method in ("PUT", "POST", "DELETE")]


def leftovers(runner) -> list[str]:
    """Whatever a run left in its private TMPDIR."""
    return sorted(str(p.relative_to(runner.tmpdir)) for p in runner.tmpdir.rglob("*"))


# Saving


def test_save_puts_one_json_object_and_resave_puts_nothing(runner, oci_server, storage):
    key = f"localhost/{PLAY}/deploy.json"
    tasks = [
        save(storage, job_id="j11.22", metadata={"version": "2.1.0"}),
        export_task("saved", {"state_file": "async_job_save_state_file"}),
    ]
    first = runner.ok([play(tasks, name=PLAY)])

    assert first.value("saved")["state_file"] == f"oci://{BUCKET}/{key}"
    assert oci_server.list_objects(BUCKET) == [key]
    stored = oci_server.object_info(BUCKET, key)
    assert stored.content_type == "application/json"
    content = json.loads(stored.data)
    assert set(content) == {"job_name", "host", "ansible_job_id", "save_time", "metadata"}
    assert content["job_name"] == "deploy"
    assert content["host"] == "localhost"
    assert content["ansible_job_id"] == "j11.22"
    assert SAVE_TIME.match(content["save_time"])
    assert content["metadata"] == {"version": "2.1.0"}
    puts = [entry for entry in oci_server.request_log() if entry.method == "PUT"]
    assert len(puts) == 1, oci_server.request_log()
    assert puts[0].object_name == key
    # Overwriting is allowed: the upload sends no HEAD and no precondition.
    assert puts[0].headers.get("if-none-match") is None
    assert puts[0].status == 200
    assert len(writes(oci_server)) == 1
    assert first.changed() == 1
    assert leftovers(runner) == []

    oci_server.clear_log()
    second = runner.ok([play(tasks, name=PLAY)])

    assert writes(oci_server) == [], oci_server.request_log()
    assert set(methods(oci_server)) == {"GET"}
    assert second.changed() == 0
    assert oci_server.object_info(BUCKET, key).etag == stored.etag
    assert leftovers(runner) == []


def test_prefix_is_prepended_to_the_object_name_and_load_needs_the_same_prefix(runner, oci_server, storage):
    key = f"team-a/localhost/{PLAY}/deploy.json"
    tasks = [
        save(storage, job_id="j3.4", oci_prefix="team-a/"),
        export_task("saved", {"state_file": "async_job_save_state_file"}),
        load(storage, oci_prefix="team-a/"),
        export_task("with_prefix", LOADED),
        load(storage),
        export_task("without_prefix", LOADED),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    assert oci_server.list_objects(BUCKET) == [key]
    assert result.value("saved")["state_file"] == f"oci://{BUCKET}/{key}"
    with_prefix = result.value("with_prefix")
    assert with_prefix["found"] is True
    assert with_prefix["ansible_job_id"] == "j3.4"
    assert with_prefix["state_file"] == f"oci://{BUCKET}/{key}"
    without_prefix = result.value("without_prefix")
    assert without_prefix["found"] is False
    assert without_prefix["ansible_job_id"] == ""
    assert without_prefix["state_file"] == f"oci://{BUCKET}/localhost/{PLAY}/deploy.json"


def test_create_only_conflict_stores_nothing_and_leaves_no_temporary_file(runner, oci_server, storage):
    planted = record("j1.1")
    storage.write("localhost", PLAY, "deploy", planted)
    result = runner.fails([play([save(storage, job_id="j2.2", overwrite=False)], name=PLAY)])

    message = result.failure()
    assert "async_job_save_overwrite is false" in message
    assert "'j1.1'" in message
    assert "'j2.2'" in message
    assert writes(oci_server) == []
    assert storage.read("localhost", PLAY, "deploy") == planted
    assert leftovers(runner) == []


def test_check_mode_uploads_nothing_and_load_still_reads(runner, oci_server, storage):
    planted = record("j5.6", job="running", build="42")
    storage.write("localhost", PLAY, "running", planted)
    tasks = [
        save(storage, job="fresh", job_id="j7.8"),
        export_task("saved", {"state_file": "async_job_save_state_file"}),
        load(storage, job="running"),
        export_task("loaded", LOADED),
    ]
    result = runner.ok([play(tasks, name=PLAY)], args=("--check",))

    assert writes(oci_server) == [], oci_server.request_log()
    assert set(methods(oci_server)) <= {"HEAD", "GET"}
    assert result.changed() == 1
    assert result.value("saved")["state_file"] == storage.state_file("localhost", PLAY, "fresh")
    assert oci_server.list_objects(BUCKET) == [storage.key("localhost", PLAY, "running")]
    loaded = result.value("loaded")
    assert loaded["found"] is True
    assert loaded["ansible_job_id"] == "j5.6"
    assert loaded["metadata"] == {"build": "42"}
    assert leftovers(runner) == []


# Loading


def test_missing_object_in_an_existing_bucket_is_the_only_not_found(runner, oci_server, storage):
    storage.write("localhost", PLAY, "present", record("j9.9", job="present", tier="web"))
    tasks = [
        load(storage, job="present"),
        export_task("present", LOADED),
        load(storage, job="absent"),
        export_task("absent", LOADED),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    assert result.value("present")["found"] is True
    assert result.value("present")["metadata"] == {"tier": "web"}
    assert result.value("absent") == {
        "found": False,
        "ansible_job_id": "",
        "host": "",
        "metadata": {},
        "save_time": "",
        "state_file": storage.state_file("localhost", PLAY, "absent"),
    }
    # The listing answers (the bucket exists) and does not show the record: not found.
    absent = [entry for entry in oci_server.request_log() if "absent" in (entry.object_name or entry.path)]
    assert [(entry.method, entry.status, entry.object_name) for entry in absent] == [("GET", 200, None)]
    assert "prefix=" in absent[0].path
    assert writes(oci_server) == []


# Every case of a store that cannot be used: the input overrides, a fault of the server, and
# what the message must carry besides the bucket and the object.
FAILURES = {
    "missing bucket": (
        {"oci_bucket": "no-such-bucket"},
        None,
        ["status 404", "code BucketNotFound", "bucket does not exist"],
    ),
    "wrong namespace": (
        {"oci_namespace": "wrongns"},
        None,
        ["namespace 'wrongns'", "status 404", "code NamespaceNotFound", "namespace is wrong"],
    ),
    "unknown key": ({"oci_profile": "OTHER"}, None, ["status 401", "not authenticated"]),
    "server down": ({"oci_endpoint": "{refused}"}, None, ["RequestException", "could not be reached"]),
    "503 storm": ({"oci_cli_args": TWO_ATTEMPTS}, {"status": 503, "times": -1}, ["status 503", "busy"]),
}


def failure_inputs(case: str, oci_server, refused: str, tmp_path: Path) -> tuple[dict, list[str]]:
    """Set the server up for a failure case; return the role inputs and the expected fragments."""
    overrides, fault, expected = FAILURES[case]
    if fault:
        oci_server.add_fault(**fault)
    places = {"refused": refused, "missing_config": str(tmp_path / "absent" / "config")}
    overrides = {key: value.format(**places) if isinstance(value, str) else value for key, value in overrides.items()}
    return {"oci_cli_args": NO_RETRY, **overrides}, expected


def assert_loud(message: str, bucket: str, key: str, expected: list[str]) -> None:
    assert f"object '{key}'" in message, message
    assert f"bucket '{bucket}'" in message, message
    for fragment in expected:
        assert fragment.lower() in message.lower(), (fragment, message)


@pytest.mark.parametrize("case", list(FAILURES))
def test_load_fails_loudly_when_the_store_cannot_be_read(runner, oci_server, storage, refused_endpoint, tmp_path, case):
    storage.write("localhost", PLAY, "deploy", record("j1.1"))
    overrides, expected = failure_inputs(case, oci_server, refused_endpoint, tmp_path)
    tasks = [load(storage, **overrides), export_task("loaded", LOADED)]
    result = runner.fails([play(tasks, name=PLAY)])

    message = result.failure()
    assert_loud(message, overrides.get("oci_bucket", BUCKET), storage.key("localhost", PLAY, "deploy"), expected)
    # The play stopped at the failure: no value of async_job_load_found was ever exported.
    assert "loaded" not in result.exported.get("localhost", {})
    assert result.stats["localhost"]["failed"] == 1
    assert writes(oci_server) == []
    if case == "503 storm":
        # The role passed its CLI arguments: two attempts at the listing, then the failure.
        assert [(entry.method, entry.status) for entry in oci_server.request_log()] == [("GET", 503)] * 2


@pytest.mark.parametrize("case", ["missing bucket", "unknown key", "503 storm"])
def test_save_fails_loudly_and_stores_nothing(runner, oci_server, storage, refused_endpoint, tmp_path, case):
    overrides, expected = failure_inputs(case, oci_server, refused_endpoint, tmp_path)
    tasks = [save(storage, **overrides), export_task("saved", {"state_file": "async_job_save_state_file"})]
    result = runner.fails([play(tasks, name=PLAY)])

    message = result.failure()
    assert_loud(message, overrides.get("oci_bucket", BUCKET), storage.key("localhost", PLAY, "deploy"), expected)
    assert "saved" not in result.exported.get("localhost", {})
    assert oci_server.list_objects(BUCKET) == []
    assert not [entry for entry in writes(oci_server) if entry.status == 200]
    assert leftovers(runner) == []


def test_one_transient_503_is_retried_by_the_cli(runner, oci_server, storage):
    oci_server.add_fault(method="PUT", object_name="deploy", status=503, times=1)
    oci_server.add_fault(method="GET", object_name="deploy", status=503, times=1)
    tasks = [save(storage, job_id="j4.2"), load(storage), export_task("loaded", LOADED)]
    result = runner.ok([play(tasks, name=PLAY)])

    assert result.value("loaded")["found"] is True
    assert result.value("loaded")["ansible_job_id"] == "j4.2"
    log = [(entry.method, entry.object_name, entry.status) for entry in oci_server.request_log() if entry.object_name]
    key = storage.key("localhost", PLAY, "deploy")
    assert log == [("PUT", key, 503), ("PUT", key, 200), ("GET", key, 503), ("GET", key, 200)]


@pytest.mark.parametrize("role", ["async_job_save", "async_job_load"])
@pytest.mark.parametrize("variable", ["oci_bucket", "oci_namespace"])
def test_missing_bucket_or_namespace_is_named_before_any_request(runner, oci_server, storage, role, variable):
    task = save(storage) if role == "async_job_save" else load(storage)
    del task["vars"][f"{role}_{variable}"]
    result = runner.fails([play([task], name=PLAY)])

    message = result.failure()
    assert f"{role}_{variable} is required with {role}_backend: oci" in message
    assert oci_server.request_log() == []
    assert leftovers(runner) == []


@pytest.mark.parametrize("role", ["async_job_save", "async_job_load"])
def test_an_unknown_auth_mode_is_named_before_any_request(runner, oci_server, storage, role):
    task = save(storage) if role == "async_job_save" else load(storage)
    task["vars"][f"{role}_oci_auth"] = "password"
    result = runner.fails([play([task], name=PLAY)])

    message = result.failure()
    assert f'{role}_oci_auth is "password": it must be one of api_key' in message
    assert oci_server.request_log() == []


@pytest.mark.parametrize("role", ["async_job_save", "async_job_load"])
def test_a_missing_config_file_or_profile_is_named_before_any_request(runner, oci_server, storage, tmp_path, role):
    missing = tmp_path / "absent" / "config"
    tasks = []
    for variable, value in (("oci_config_file", str(missing)), ("oci_profile", "NOPE")):
        task = save(storage) if role == "async_job_save" else load(storage)
        task["vars"][f"{role}_{variable}"] = value
        tasks.append(
            {"name": variable, "block": [task], "rescue": [export_task(variable, {"msg": "ansible_failed_result.msg"})]}
        )
    result = runner.ok([play(tasks, name=PLAY)])

    config = storage.config_file
    assert result.value("oci_config_file")["msg"].startswith(
        f'{role}_oci_config_file is "{missing}": the OCI CLI configuration file {missing} does not exist.'
    )
    assert result.value("oci_profile")["msg"].startswith(
        f'{role}_oci_profile is "NOPE": the OCI CLI configuration file {config} has no [NOPE] profile.'
    )
    assert oci_server.request_log() == []


@pytest.mark.parametrize("role", ["async_job_save", "async_job_load"])
def test_an_empty_auth_mode_adds_no_option(runner, oci_server, storage, role):
    task = save(storage) if role == "async_job_save" else load(storage)
    task["vars"][f"{role}_oci_auth"] = ""
    runner.ok([play([task], name=PLAY)])


# Records outlive the controller


def test_a_record_saved_by_one_run_is_loaded_by_another_from_elsewhere(runner, oci_server, storage):
    first_dir, second_dir = runner.workdir / "first", runner.workdir / "second"
    saving = runner.write(
        [play([save(storage, job_id="j6.1", metadata={"by": "first"})], name=PLAY)], directory=first_dir
    )
    runner.ok(saving, cwd=first_dir)
    # Nothing of the first run stays on the controller: not its directory, its exports or its temp files.
    shutil.rmtree(first_dir)
    shutil.rmtree(runner.export_dir)
    shutil.rmtree(runner.workdir / "ansible-local-tmp", ignore_errors=True)

    loading = runner.write([play([load(storage), export_task("loaded", LOADED)], name=PLAY)], directory=second_dir)
    result = runner.ok(loading, cwd=second_dir)

    loaded = result.value("loaded")
    assert loaded["found"] is True
    assert loaded["ansible_job_id"] == "j6.1"
    assert loaded["metadata"] == {"by": "first"}
    assert list(runner.workdir.rglob(".ansible_async_state")) == []


# The contract's example


@source
def test_oci_example_runs_as_written(runner, oci_server, oci_client, refused_endpoint, host_files, source):
    oci_server.add_bucket("ansible-prod-state")
    # The example runs `oci os ns get` itself and gives the role no config file or endpoint:
    # both come from the environment, as the OCI CLI documents. Should the CLI ignore them, the
    # proxy makes it fail here instead of reaching the real service.
    runner.env.update(
        OCI_CLI_CONFIG_FILE=str(oci_client.config_file),
        OCI_CLI_ENDPOINT=oci_server.endpoint,
        HTTPS_PROXY=refused_endpoint,
        HTTP_PROXY=refused_endpoint,
        NO_PROXY="127.0.0.1",
        ANSIBLE_ASYNC_DIR=str(runner.workdir / "async"),
    )
    before = datetime.date.today()
    runner.ok(runner.write(example(source, OCI), name="oci-example.yml"))
    dates = {before, datetime.date.today()}

    assert ("GET", "/n") in [(entry.method, entry.path) for entry in oci_server.request_log()]
    names = oci_server.list_objects("ansible-prod-state")
    assert names in [[f"localhost/production_deployment/prod_deploy_{date.isoformat()}.json"] for date in dates]
    content = json.loads(oci_server.get_object("ansible-prod-state", names[0]))
    assert set(content) == {"job_name", "host", "ansible_job_id", "save_time", "metadata"}
    assert content["job_name"] == names[0].rsplit("/", 1)[-1].removesuffix(".json")
    assert content["host"] == "localhost"
    assert re.match(r"^j\d+\.\d+$", content["ansible_job_id"]), content
    assert host_files.exists(runner.workdir / "async" / content["ansible_job_id"])
    assert content["metadata"] == {"environment": "production", "ticket": "DEPLOY-12345"}
