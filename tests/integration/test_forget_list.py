"""Behaviour of async_job_forget and async_job_list, run once per backend with real playbooks.

Claims of async_job_run live next to the records (``<host>/<playbook>/.claims/<job>/...``):
forget removes the job's claims, list never shows them.
"""

from __future__ import annotations

import getpass
import json
import re
import stat
from pathlib import Path

import pytest

from tests.support.fixtures import BUCKET
from tests.support.playbook import LOADED, VARIES, export_task, matches, play, refused_name, role_task
from tests.support.storage import DAMAGED_RECORDS, FilesystemStorage, OCIStorage

PLAY = "Deploy the web tier"
FORGOTTEN = {"removed": "async_job_forget_removed"}
LISTED = {"jobs": "async_job_list_jobs"}


# Helpers


@pytest.fixture
def state(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path / "state")


def storage_vars(storage, role, **overrides):
    values = {k.removeprefix(f"{role}_"): v for k, v in storage.role_vars(role).items()}
    return {**values, **overrides}


def save(storage, job="deploy", job_id="j100.1", **extra):
    inputs = {"job_name": job, "ansible_job_id": job_id, "host": "{{ inventory_hostname }}", **extra}
    return role_task("async_job_save", **storage_vars(storage, "async_job_save"), **inputs)


def load(storage, job="deploy", **extra):
    return role_task("async_job_load", **storage_vars(storage, "async_job_load"), job_name=job, **extra)


def forget(storage, job="deploy", **extra):
    oci = {key: extra.pop(key) for key in list(extra) if key.startswith("oci_")}
    return role_task("async_job_forget", **storage_vars(storage, "async_job_forget", **oci), job_name=job, **extra)


def listing(storage, **extra):
    oci = {key: extra.pop(key) for key in list(extra) if key.startswith("oci_")}
    return role_task("async_job_list", **storage_vars(storage, "async_job_list", **oci), **extra)


def record(job_id: str, job: str = "deploy", host: str = "localhost", **fields) -> dict:
    """A record as async_job_save stores it, with optional extra fields."""
    body = {"job_name": job, "host": host, "ansible_job_id": job_id, "save_time": "2025-01-02T03:04:05Z"}
    return {**body, "metadata": {}, **fields}


def plant(storage, key: str, content: bytes | dict) -> None:
    """Store content under key (relative to the storage root or the object prefix)."""
    data = content if isinstance(content, bytes) else (json.dumps(content, indent=4) + "\n").encode()
    if storage.backend == "filesystem":
        path = storage.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        storage.server.put_object(storage.bucket, storage.prefix + key, data)


def plant_record(storage, playbook=PLAY, job="deploy", host="localhost", **fields) -> dict:
    content = record(fields.pop("job_id", "j1.1"), job=job, host=host, **fields)
    plant(storage, f"{host}/{playbook}/{job}.json", content)
    return content


def claim_key(job: str = "deploy", claim: str = "run-1", host: str = "localhost", playbook: str = PLAY) -> str:
    return f"{host}/{playbook}/.claims/{job}/{claim}.json"


def names(storage) -> list[str]:
    """Every stored name relative to the storage root or the object prefix."""
    return [name.removeprefix(getattr(storage, "prefix", "")) for name in storage.names()]


def deletes(storage) -> list:
    return [entry for entry in storage.server.request_log() if entry.method == "DELETE"]


# Forgetting


def test_forget_removes_the_record_and_the_job_claims(runner, storage):
    plant_record(storage, job="deploy", job_id="j1.1")
    plant_record(storage, job="deploy-db", job_id="j2.2")
    plant(storage, claim_key("deploy", "run-1"), {"claimed_by": "one"})
    plant(storage, claim_key("deploy", "run 2 ü"), {"claimed_by": "two"})
    plant(storage, claim_key("deploy-db", "run-1"), {"claimed_by": "three"})
    tasks = [
        forget(storage),
        export_task("forgotten", FORGOTTEN),
        load(storage),
        export_task("loaded", LOADED),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    assert result.value("forgotten") == {"removed": True}
    assert result.changed() == 1
    assert result.value("loaded")["found"] is False
    assert names(storage) == sorted([f"localhost/{PLAY}/deploy-db.json", claim_key("deploy-db", "run-1")])
    if storage.backend == "filesystem":
        assert not (storage.root / "localhost" / PLAY / ".claims" / "deploy").exists()


def test_forget_of_an_absent_job_changes_nothing_and_resets_the_output(runner, storage):
    plant_record(storage, job="present")
    plant_record(storage, job="other", playbook="Another play")
    before = names(storage)
    tasks = [
        forget(storage, job="present"),
        export_task("first", FORGOTTEN),
        forget(storage, job="absent"),
        export_task("second", FORGOTTEN),
    ]
    first_run = runner.ok([play(tasks, name=PLAY)])
    second_run = runner.ok([play(tasks, name=PLAY)])

    assert first_run.value("first") == {"removed": True}
    assert first_run.value("second") == {"removed": False}
    assert second_run.value("first") == {"removed": False}
    assert second_run.changed() == 0
    assert names(storage) == [name for name in before if "/present.json" not in name]


def test_forget_removes_the_claims_of_a_job_that_has_no_record(runner, storage):
    plant(storage, claim_key("deploy", "run-1"), {"claimed_by": "one"})
    result = runner.ok([play([forget(storage), export_task("forgotten", FORGOTTEN)], name=PLAY)])

    assert result.value("forgotten") == {"removed": False}
    # The claims; on the filesystem also the directories they leave empty.
    assert result.changed() == (2 if storage.backend == "filesystem" else 1)
    assert names(storage) == []


def test_forget_in_check_mode_removes_nothing_and_reports_the_change(runner, storage):
    plant_record(storage)
    plant(storage, claim_key(), {"claimed_by": "one"})
    before = names(storage)
    tasks = [
        forget(storage, cleanup=True),
        export_task("forgotten", FORGOTTEN),
        forget(storage, job="absent"),
        export_task("absent", FORGOTTEN),
    ]
    result = runner.ok([play(tasks, name=PLAY)], args=("--check", "--diff"))

    assert result.value("forgotten") == {"removed": True}
    assert result.value("absent") == {"removed": False}
    assert result.changed() == 1
    assert names(storage) == before
    shown = ["Would remove the results file of job j1.1 from the async directory on localhost."]
    if storage.backend == "oci":
        removed = [f"localhost/{PLAY}/deploy.json", claim_key()]
        shown.append(f"Would delete {', '.join(json.dumps(name) for name in removed)} from bucket {storage.bucket}.")
        assert deletes(storage) == []
    assert result.messages() == shown


def test_forget_of_an_absent_job_in_check_mode_reports_no_change(runner, storage):
    result = runner.ok([play([forget(storage)], name=PLAY)], args=("--check",))

    assert result.changed() == 0


def start_sleep(name: str, seconds: int) -> dict:
    """A task that starts `sleep seconds` as a real async job and registers it as started."""
    return {
        "name": name,
        "ansible.builtin.command": {"argv": ["sleep", str(seconds)]},
        "async": seconds + 60,
        "poll": 0,
        "register": "started",
        "changed_when": False,
    }


def finished_async_job(async_dir: Path) -> list[dict]:
    """Tasks that run a short real async job and wait until its results file is complete."""
    return [
        start_sleep("Start a short job", 0),
        {
            "name": "Wait for the job to finish",
            "ansible.builtin.async_status": {"jid": "{{ started.ansible_job_id }}"},
            "register": "waited",
            "until": "waited.finished",
            "retries": 60,
            "delay": 1,
        },
        export_task("started", {"jid": "started.ansible_job_id"}),
    ]


# The results files are checked on the host through Ansible (host_files: pytest-ansible where
# it is installed), the way a playbook would see them.


def test_forget_with_cleanup_removes_the_results_file_of_a_real_job(runner, storage, tmp_path, host_files):
    async_dir = tmp_path / "async"
    private = {"vars": {"ansible_async_dir": str(async_dir)}}
    starting = play([*finished_async_job(async_dir), save(storage, job_id="{{ started.ansible_job_id }}")], name=PLAY)
    started = runner.ok([{**starting, **private}])
    assert host_files.names(async_dir) == [started.value("started")["jid"]]

    forgetting = play([forget(storage, cleanup=True), export_task("forgotten", FORGOTTEN)], name=PLAY)
    result = runner.ok([{**forgetting, **private}])

    assert host_files.names(async_dir) == []
    assert result.value("forgotten") == {"removed": True}
    assert names(storage) == []


def test_cleanup_uses_the_async_dir_named_by_the_record(runner, storage, tmp_path, host_files):
    async_dir = tmp_path / "job-async"
    private = {"vars": {"ansible_async_dir": str(async_dir)}}
    started = runner.ok([{**play(finished_async_job(async_dir), name=PLAY), **private}])
    jid = started.value("started")["jid"]
    plant_record(storage, job_id=jid, async_dir=str(async_dir))
    # The host's own async directory is elsewhere: only the record says where the file is.
    default_dir = tmp_path / "default-async"
    runner.env["ANSIBLE_ASYNC_DIR"] = str(default_dir)

    assert host_files.names(async_dir) == [jid]

    result = runner.ok([play([forget(storage, cleanup=True), export_task("forgotten", FORGOTTEN)], name=PLAY)])

    assert host_files.names(async_dir) == []
    assert result.value("forgotten") == {"removed": True}
    assert not host_files.exists(default_dir)
    assert names(storage) == []


def test_cleanup_becomes_the_user_named_by_the_record(runner, storage, tmp_path, host_files):
    # A stand-in for sudo records how it was called and runs the command as the current user.
    log = tmp_path / "sudo.log"
    fake_sudo = tmp_path / "fake-sudo"
    fake_sudo.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> '{log}'\n"
        'while [ "$#" -gt 0 ]; do case "$1" in -u) shift 2; break ;; *) shift ;; esac; done\n'
        'exec "$@"\n'
    )
    fake_sudo.chmod(fake_sudo.stat().st_mode | stat.S_IXUSR)
    async_dir = tmp_path / "async"
    async_dir.mkdir()
    (async_dir / "j555.42").write_text('{"finished": 1}')
    # Becoming the current user keeps Ansible from handing its temporary files to another user;
    # Ansible skips such a become unless told not to.
    user = getpass.getuser()
    runner.env["ANSIBLE_BECOME_ALLOW_SAME_USER"] = "True"
    plant_record(storage, job_id="j555.42", async_dir=str(async_dir), become_user=user)
    tasks = [forget(storage, cleanup=True), export_task("forgotten", FORGOTTEN)]
    result = runner.ok([{**play(tasks, name=PLAY), "vars": {"ansible_become_exe": str(fake_sudo)}}])

    assert host_files.names(async_dir) == []
    assert result.value("forgotten") == {"removed": True}
    calls = log.read_text().splitlines()
    assert len(calls) == 1, calls
    assert f"-u {user} " in calls[0]


@pytest.mark.parametrize("placeholder", ["<<Omit>>", "__omit_place_holder__" + "5f" * 20])
def test_cleanup_reads_an_omit_placeholder_as_no_become_user(runner, state, tmp_path, placeholder):
    # async_job_run once stored Ansible's omit placeholder as the become_user of every job it
    # started without become ("<<Omit>>" on ansible-core 2.19+): such a record names no user.
    async_dir = tmp_path / "async"
    private = {"vars": {"ansible_async_dir": str(async_dir)}}
    started = runner.ok([{**play(finished_async_job(async_dir), name=PLAY), **private}])
    jid = started.value("started")["jid"]
    plant_record(state, job_id=jid, async_dir=str(async_dir), become=False, become_user=placeholder)

    result = runner.ok([play([forget(state, cleanup=True), export_task("forgotten", FORGOTTEN)], name=PLAY)])

    assert not (async_dir / jid).exists()
    assert result.value("forgotten") == {"removed": True}
    assert names(state) == []


def test_cleanup_of_a_results_file_already_gone_is_not_an_error(runner, storage, tmp_path):
    plant_record(storage, job_id="j404.1", async_dir=str(tmp_path / "async"))
    result = runner.ok([play([forget(storage, cleanup=True), export_task("forgotten", FORGOTTEN)], name=PLAY)])

    assert result.value("forgotten") == {"removed": True}
    assert names(storage) == []


def test_a_failed_cleanup_keeps_the_record(runner, storage, tmp_path):
    plant_record(storage, job_id="j1.1", host="ghost.invalid")
    # Forced: without it the forget fails earlier, when it asks the host whether the job runs.
    tasks = [forget(storage, host="ghost.invalid", cleanup=True, force=True)]
    result = runner.fails([play(tasks, name=PLAY)])

    # The cleanup runs on the record's host, which cannot be reached; ssh and the resolver word why.
    assert (result.stats["localhost"]["unreachable"], result.stats["localhost"]["failed"]) == (1, 0)
    assert re.search(r"^fatal: \[localhost -> ghost\.invalid\]: UNREACHABLE! => ", result.stdout, re.M), result.output
    assert matches(result.failure(), VARIES, "Could not resolve hostname ghost.invalid: ", VARIES), result.failure()
    assert names(storage) == [f"ghost.invalid/{PLAY}/deploy.json"]


# A job that still runs keeps its record: it is the job's only handle.


def test_forget_keeps_the_record_of_a_running_job_unless_forced(runner, storage, async_dir):
    # The job runs until the teardown of the async_dir fixture kills it.
    runner.ok(
        [
            play(
                [
                    start_sleep("Start a job that keeps running", 600),
                    save(storage, job_id="{{ started.ansible_job_id }}"),
                ],
                name=PLAY,
            )
        ]
    )
    stored = storage.read("localhost", PLAY, "deploy")
    jid = json.loads(stored)["ansible_job_id"]

    refused = runner.fails([play([forget(storage, cleanup=True)], name=PLAY)])

    assert refused.failure() == (
        f"Could not forget {storage.state_file('localhost', PLAY, 'deploy')}: Job deploy (ansible_job_id {jid})"
        " is still running on localhost: its record is its only handle, so it was kept. Wait for the job to end,"
        " or set async_job_forget_force: true to forget it anyway. Nothing was written."
    )
    assert storage.read("localhost", PLAY, "deploy") == stored
    assert (async_dir / jid).is_file()

    forced = runner.ok([play([forget(storage, force=True), export_task("forgotten", FORGOTTEN)], name=PLAY)])

    assert forced.value("forgotten") == {"removed": True}
    assert names(storage) == []


def test_forget_of_a_job_whose_host_cannot_be_asked_keeps_the_record(runner, storage):
    plant_record(storage, job_id="j1.1", host="ghost.invalid")
    result = runner.fails([play([forget(storage, host="ghost.invalid")], name=PLAY)])

    assert (result.stats["localhost"]["unreachable"], result.stats["localhost"]["failed"]) == (0, 1)
    assert matches(
        result.failure(),
        f"Could not forget {storage.state_file('ghost.invalid', PLAY, 'deploy')}: Could not ask ghost.invalid whether"
        " job deploy (ansible_job_id j1.1) still runs: ",
        VARIES,
        "Could not resolve hostname ghost.invalid",
        VARIES,
        ". A job whose host cannot be asked is taken as running, so its record was kept. Set async_job_forget_force:"
        " true to forget it anyway. Nothing was written.",
    ), result.failure()
    assert names(storage) == [f"ghost.invalid/{PLAY}/deploy.json"]


def test_forget_of_a_job_that_ended_asks_its_host_and_removes_the_record(runner, storage, async_dir):
    starting = play([*finished_async_job(async_dir), save(storage, job_id="{{ started.ansible_job_id }}")], name=PLAY)
    runner.ok([starting])

    result = runner.ok([play([forget(storage), export_task("forgotten", FORGOTTEN)], name=PLAY)])

    assert result.value("forgotten") == {"removed": True}
    assert names(storage) == []


def test_forget_removes_the_directories_it_leaves_empty(runner, state):
    plant_record(state, playbook="first play", job="one")
    plant_record(state, playbook="second play", job="two")
    plant(state, claim_key("two", "run-1", playbook="second play"), {"claimed_by": "one"})

    runner.ok([play([forget(state, job="one", playbook_name="first play")], name=PLAY)])

    assert sorted(path.relative_to(state.root).as_posix() for path in state.root.rglob("*")) == [
        "localhost",
        "localhost/second play",
        "localhost/second play/.claims",
        "localhost/second play/.claims/two",
        "localhost/second play/.claims/two/run-1.json",
        "localhost/second play/two.json",
    ]

    result = runner.ok([play([forget(state, job="two", playbook_name="second play")], name=PLAY)])

    assert result.changed() == 2  # the record and its claims, then the directories
    assert state.root.is_dir()
    assert list(state.root.iterdir()) == []


def test_forget_keeps_a_directory_that_is_not_empty(runner, state):
    plant_record(state, job="one")
    plant(state, f"localhost/{PLAY}/notes.txt", b"kept by the operator")

    runner.ok([play([forget(state, job="one")], name=PLAY)])

    assert sorted(path.relative_to(state.root).as_posix() for path in state.root.rglob("*")) == [
        "localhost",
        f"localhost/{PLAY}",
        f"localhost/{PLAY}/notes.txt",
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    DAMAGED_RECORDS,
)
@pytest.mark.parametrize("cleanup", [False, True])
def test_forget_of_a_damaged_record_fails_and_keeps_it(runner, storage, content, reason, cleanup):
    plant(storage, f"localhost/{PLAY}/deploy.json", content)
    plant(storage, claim_key(), {"claimed_by": "one"})
    before = names(storage)
    result = runner.fails([play([forget(storage, cleanup=cleanup), export_task("forgotten", FORGOTTEN)], name=PLAY)])

    message = result.failure()
    assert reason in message
    assert storage.state_file("localhost", PLAY, "deploy") in message
    assert "forgotten" not in result.exported.get("localhost", {})
    assert names(storage) == before
    assert storage.read("localhost", PLAY, "deploy") == content


@pytest.mark.parametrize("cleanup", [True, False])
def test_forget_refuses_a_record_whose_job_id_is_a_path(runner, storage, cleanup):
    plant_record(storage, job_id="../../etc/passwd")
    result = runner.fails([play([forget(storage, cleanup=cleanup)], name=PLAY)])

    assert result.failure() == (
        f'The job record {storage.state_file("localhost", PLAY, "deploy")} has ansible_job_id "../../etc/passwd",'
        " which is not an id as Ansible writes it (digits, a dot, digits, with an optional leading j)."
        " Inspect or remove the record; it was left untouched. Nothing was written."
    )
    assert names(storage) == [f"localhost/{PLAY}/deploy.json"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("job_name", "a/b"), ("job_name", ".."), ("playbook_name", ""), ("host", "../etc"), ("host", "tab\there")],
)
def test_forget_refuses_a_bad_name_before_touching_anything(runner, storage, variable, value):
    plant_record(storage)
    before = names(storage)
    task = forget(storage)
    task["vars"][f"async_job_forget_{variable}"] = "{{ bad_value }}"
    result = runner.fails([play([task], name=PLAY)], extra_vars={"bad_value": value})

    assert result.failure() == refused_name(f"async_job_forget_{variable}", value)
    assert names(storage) == before
    if storage.backend == "oci":
        assert storage.server.request_log() == []


def test_forget_missing_required_input_is_named(runner, storage):
    task = forget(storage)
    del task["vars"]["async_job_forget_job_name"]
    result = runner.fails([play([task], name=PLAY)])

    assert result.failure() == "Validation of arguments failed:\nmissing required arguments: async_job_forget_job_name"


# Listing


def test_list_returns_the_records_of_the_host_sorted_without_claims(runner, storage):
    stored = {
        ("web deploy", "b-job"): plant_record(storage, playbook="web deploy", job="b-job", job_id="j2.1"),
        ("web deploy", "A-job"): plant_record(storage, playbook="web deploy", job="A-job", job_id="j2.2"),
        ("Zeta", "zz"): plant_record(storage, playbook="Zeta", job="zz", job_id="j3.1", metadata={"k": "{{ v }}"}),
        ("déploiement ü", "tâche 1"): plant_record(
            storage, playbook="déploiement ü", job="tâche 1", job_id="j4.1", become_user="app", async_dir="/tmp/a"
        ),
    }
    # Names that begin with "." are kept for the collection's own files: no role reads them as records.
    plant_record(storage, playbook=".hidden play", job="dot", job_id="j5.1")
    plant_record(storage, playbook="web deploy", job=".dot job", job_id="j5.2")
    plant_record(storage, playbook="web deploy", job="elsewhere", host="db01", job_id="j9.9")
    plant(storage, claim_key("b-job", "run-1", playbook="web deploy"), record("j0.0", job="b-job"))
    plant(storage, "localhost/web deploy/.claims/b-job.json", record("j0.1"))
    plant(storage, "localhost/stray.json", record("j0.2"))
    plant(storage, "localhost/web deploy/notes.txt", b"not a record")
    plant(storage, "localhost/web deploy/nested/deeper.json", record("j0.3"))
    tasks = [
        listing(storage),
        export_task("all", LISTED),
        listing(storage, playbook_name="web deploy"),
        export_task("one", LISTED),
        listing(storage, host="db01"),
        export_task("db01", LISTED),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    order = sorted(stored)
    expected = [{**stored[key], "playbook_name": key[0]} for key in order]
    assert result.value("all")["jobs"] == expected
    assert [(job["playbook_name"], job["job_name"]) for job in result.value("all")["jobs"]] == [
        ("Zeta", "zz"),
        ("déploiement ü", "tâche 1"),
        ("web deploy", "A-job"),
        ("web deploy", "b-job"),
    ]
    assert [job["job_name"] for job in result.value("one")["jobs"]] == ["A-job", "b-job"]
    assert [job["ansible_job_id"] for job in result.value("db01")["jobs"]] == ["j9.9"]
    assert result.value("db01")["jobs"][0]["host"] == "db01"
    assert result.changed() == 0


def test_list_of_a_host_without_records_is_empty_and_resets_the_output(runner, storage):
    plant_record(storage, job="deploy")
    tasks = [
        listing(storage),
        export_task("first", LISTED),
        listing(storage, host="nobody"),
        export_task("nobody", LISTED),
        listing(storage, playbook_name="No such play"),
        export_task("no_play", LISTED),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    assert len(result.value("first")["jobs"]) == 1
    assert result.value("nobody") == {"jobs": []}
    assert result.value("no_play") == {"jobs": []}


def test_list_sees_what_save_stored_and_not_what_forget_removed(runner, storage):
    tasks = [
        save(storage, job="one", job_id="j1.1", metadata={"tier": "web"}),
        save(storage, job="two", job_id="j2.2"),
        forget(storage, job="one"),
        listing(storage, playbook_name=PLAY),
        export_task("listed", LISTED),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    jobs = result.value("listed")["jobs"]
    assert [job["job_name"] for job in jobs] == ["two"]
    assert jobs[0]["ansible_job_id"] == "j2.2"
    assert jobs[0]["playbook_name"] == PLAY
    assert set(jobs[0]) == {"job_name", "host", "ansible_job_id", "save_time", "metadata", "playbook_name"}


def test_list_works_in_check_mode(runner, storage):
    plant_record(storage, job="deploy", job_id="j7.7")
    result = runner.ok([play([listing(storage), export_task("listed", LISTED)], name=PLAY)], args=("--check",))

    assert [job["ansible_job_id"] for job in result.value("listed")["jobs"]] == ["j7.7"]
    assert result.changed() == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"{not json", "is not valid JSON"), (b'{"host": "localhost"}', "holds no ansible_job_id")],
)
def test_list_fails_naming_every_damaged_record(runner, storage, content, reason):
    plant_record(storage, job="fine")
    plant(storage, f"localhost/{PLAY}/broken.json", content)
    plant(storage, "localhost/Another play/also broken.json", content)
    result = runner.fails([play([listing(storage), export_task("listed", LISTED)], name=PLAY)])

    message = result.failure()
    assert reason in message
    assert storage.state_file("localhost", PLAY, "broken") in message
    assert storage.state_file("localhost", "Another play", "also broken") in message
    assert storage.state_file("localhost", PLAY, "fine") not in message
    assert "listed" not in result.exported.get("localhost", {})


@pytest.mark.parametrize(("variable", "value"), [("host", "../etc"), ("host", ""), ("playbook_name", "a/b")])
def test_list_refuses_a_bad_name(runner, storage, variable, value):
    task = listing(storage)
    task["vars"][f"async_job_list_{variable}"] = "{{ bad_value }}"
    result = runner.fails([play([task], name=PLAY)], extra_vars={"bad_value": value})

    assert result.failure() == refused_name(f"async_job_list_{variable}", value)


# What only the OCI backend does


@pytest.fixture
def oci_storage(oci_server, oci_client) -> OCIStorage:
    return OCIStorage(oci_server, oci_client.config_file, oci_client.bucket)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"oci_bucket": "no-such-bucket"}, ["status 404", "code BucketNotFound", "bucket does not exist"]),
        ({"oci_namespace": "wrongns"}, ["status 404", "code NamespaceNotFound"]),
        ({"oci_profile": "OTHER"}, ["status 401"]),
    ],
)
@pytest.mark.parametrize("role", ["async_job_list", "async_job_forget"])
def test_oci_store_that_cannot_be_used_fails_loudly(runner, oci_storage, role, overrides, expected):
    plant_record(oci_storage)
    oci = {"oci_cli_args": ["--no-retry"], **overrides}
    task = listing(oci_storage, **oci) if role == "async_job_list" else forget(oci_storage, **oci)
    export = export_task("out", LISTED if role == "async_job_list" else FORGOTTEN)
    result = runner.fails([play([task, export], name=PLAY)])

    message = result.failure()
    for fragment in expected:
        assert fragment.lower() in message.lower(), (fragment, message)
    assert "out" not in result.exported.get("localhost", {})
    assert deletes(oci_storage) == []
    assert names(oci_storage) == [f"localhost/{PLAY}/deploy.json"]


def test_oci_list_reads_each_record_once_under_the_prefix(runner, oci_server, oci_client):
    storage = OCIStorage(oci_server, oci_client.config_file, oci_client.bucket, prefix="team-a/")
    plant_record(storage, job="one", job_id="j1.1")
    plant_record(storage, job="two", job_id="j2.2")
    plant(storage, claim_key("one"), record("j0.0"))
    oci_server.put_object(BUCKET, f"localhost/{PLAY}/unprefixed.json", json.dumps(record("j3.3")).encode())
    result = runner.ok([play([listing(storage), export_task("listed", LISTED)], name=PLAY)])

    assert [job["job_name"] for job in result.value("listed")["jobs"]] == ["one", "two"]
    log = [(entry.method, entry.object_name) for entry in oci_server.request_log()]
    downloads = sorted(name for method, name in log if method == "GET" and name)
    # Everything below the host's prefix comes in the one bulk-download: the claim too.
    assert downloads == sorted(
        [f"team-a/localhost/{PLAY}/one.json", f"team-a/localhost/{PLAY}/two.json", f"team-a/{claim_key('one')}"]
    )
    listings = [entry for entry in oci_server.request_log() if entry.object_name is None and entry.method == "GET"]
    assert len(listings) == 1
    assert "prefix=team-a%2Flocalhost%2F" in listings[0].path


def test_oci_forget_a_delete_lost_to_another_run_is_no_change(runner, oci_server, oci_storage):
    plant_record(oci_storage)
    oci_server.add_fault(method="DELETE", object_name="deploy.json", status=404, code="ObjectNotFound")
    result = runner.ok([play([forget(oci_storage), export_task("forgotten", FORGOTTEN)], name=PLAY)])

    assert result.value("forgotten") == {"removed": False}
    assert result.changed() == 0
    assert [entry.status for entry in deletes(oci_storage)] == [404]


def test_oci_forget_fails_loudly_when_a_delete_is_refused(runner, oci_server, oci_storage):
    plant_record(oci_storage)
    oci_server.add_fault(method="DELETE", object_name="deploy.json", status=403)
    result = runner.fails([play([forget(oci_storage), export_task("forgotten", FORGOTTEN)], name=PLAY)])

    message = result.failure()
    assert "delete of object" in message
    assert f"localhost/{PLAY}/deploy.json" in message
    assert "status 403" in message
    assert names(oci_storage) == [f"localhost/{PLAY}/deploy.json"]


def test_oci_list_skips_a_record_removed_while_listing_and_fails_on_other_errors(runner, oci_server, oci_storage):
    plant_record(oci_storage, job="kept", job_id="j1.1")
    plant_record(oci_storage, job="gone", job_id="j2.2")
    oci_server.add_fault(method="GET", object_name="gone.json", status=404, code="ObjectNotFound")
    result = runner.ok([play([listing(oci_storage), export_task("listed", LISTED)], name=PLAY)])

    assert [job["job_name"] for job in result.value("listed")["jobs"]] == ["kept"]

    oci_server.add_fault(method="GET", object_name="gone.json", status=403)
    tasks = [listing(oci_storage, oci_cli_args=["--no-retry"]), export_task("listed", LISTED)]
    result = runner.fails([play(tasks, name=PLAY)])

    message = result.failure()
    assert f"download of object 'localhost/{PLAY}/gone.json'" in message
    assert "status 403" in message
    assert "listed" not in result.exported.get("localhost", {})
