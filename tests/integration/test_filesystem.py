"""What only the filesystem backend has: paths, permissions, atomic files, the contract's examples."""

from __future__ import annotations

import getpass
import json
import re
import stat
import threading

from tests.support.contract import BASIC, IDEMPOTENT, example, source
from tests.support.playbook import export_task, play, refused_name, role_task

PLAY = "Filesystem play"


def save(state_dir, job="deploy", job_id="j1.1", **extra):
    inputs = {"job_name": job, "ansible_job_id": job_id, "host": "{{ inventory_hostname }}", **extra}
    return role_task("async_job_save", state_dir=state_dir, **inputs)


def load(state_dir, job="deploy", **extra):
    return role_task("async_job_load", state_dir=state_dir, job_name=job, **extra)


def test_relative_state_dir_is_relative_to_the_playbook(runner, tmp_path):
    project = tmp_path / "project"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    saving = runner.write([play([save("state")], name=PLAY)], name="save.yml", directory=project)
    loading = runner.write(
        [play([load("state"), export_task("loaded", {"id": "async_job_load_ansible_job_id"})], name=PLAY)],
        name="load.yml",
        directory=project,
    )
    runner.ok(saving, cwd=tmp_path)
    result = runner.ok(loading, cwd=elsewhere)

    assert (project / "state" / "localhost" / PLAY / "deploy.json").is_file()
    assert not (tmp_path / "state").exists()
    assert not (elsewhere / "state").exists()
    assert result.value("loaded")["id"] == "j1.1"


def test_directories_are_private_and_records_owner_only(runner, tmp_path):
    state = tmp_path / "state"
    runner.ok([play([save(str(state))], name=PLAY)])

    for directory in (state, state / "localhost", state / "localhost" / PLAY):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    record = state / "localhost" / PLAY / "deploy.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600


def test_a_reader_never_sees_half_a_record(runner, tmp_path):
    state = tmp_path / "state"
    # A large record makes a torn write visible if the role ever wrote in place.
    metadata = {"payload": "x" * 200_000}
    runner.ok([play([save(str(state), job_id="j0.0", metadata=metadata)], name=PLAY)])
    record = state / "localhost" / PLAY / "deploy.json"
    seen, torn = set(), []
    stop = threading.Event()

    def read_continuously():
        while not stop.is_set():
            text = record.read_text()
            try:
                seen.add(json.loads(text)["ansible_job_id"])
            except ValueError:
                torn.append(len(text))

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        tasks = [save(str(state), job_id=f"j{n}.0", metadata=metadata) for n in range(1, 5)]
        runner.ok([play(tasks, name=PLAY)])
    finally:
        stop.set()
        reader.join()

    assert torn == []
    assert "j4.0" in seen
    assert sorted(p.name for p in record.parent.iterdir()) == ["deploy.json"]


def test_directory_names_reach_mkdir_as_text_never_as_shell(runner, tmp_path):
    # The batch's mkdir runs in a shell on the controller (ansible.builtin.raw): every name is quoted.
    state = tmp_path / "state dir 'quoted'"
    playbook = '$(touch pwned) it\'s; `touch pwned2` & "x"'
    runner.ok([play([save(str(state), playbook_name=playbook)], name=PLAY)], cwd=tmp_path)

    for directory in (state, state / "localhost", state / "localhost" / playbook):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert (state / "localhost" / playbook / "deploy.json").is_file()
    assert sorted(p.name for p in tmp_path.rglob("pwned*")) == []


def test_nothing_is_written_outside_the_state_dir(runner, tmp_path):
    state = tmp_path / "state"
    result = runner.fails([play([save(str(state), job="../../../outside")], name=PLAY)])

    assert result.failure() == refused_name("async_job_save_job_name", "../../../outside")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_idempotent_pattern_starts_a_real_job_once_and_reattaches(runner, tmp_path):
    """The contract's idempotent pattern with a real async job, run by two ansible-playbook processes."""
    starts = tmp_path / "starts.log"
    tasks = [
        role_task("async_job_load", playbook_name="app_deployment", job_name="deploy_v3.0.0", state_dir="state"),
        {
            "name": "Start deployment (only if not exists)",
            "ansible.builtin.shell": f"echo started >> {starts}; sleep 4; echo deployed",
            "async": 60,
            "poll": 0,
            "register": "new_deploy",
            "when": "not async_job_load_found",
        },
        {
            **role_task(
                "async_job_save",
                playbook_name="app_deployment",
                job_name="deploy_v3.0.0",
                ansible_job_id="{{ new_deploy.ansible_job_id }}",
                host="{{ inventory_hostname }}",
                state_dir="state",
            ),
            "when": "not async_job_load_found",
        },
        {
            "name": "Wait for the deployment",
            "ansible.builtin.async_status": {
                "jid": "{{ async_job_load_ansible_job_id if async_job_load_found else new_deploy.ansible_job_id }}"
            },
            "register": "status",
            "until": "status.finished",
            "retries": 30,
            "delay": 1,
        },
        export_task(
            "run",
            {
                "found": "async_job_load_found",
                "jid": "status.ansible_job_id",
                "finished": "status.finished",
                "rc": "status.rc",
                "stdout": "status.stdout",
            },
        ),
    ]
    playbook = runner.write([play(tasks, name="Idempotent deployment pattern")], directory=tmp_path / "project")
    first = runner.ok(playbook).value("run")
    second = runner.ok(playbook).value("run")

    assert first["found"] is False
    assert second["found"] is True
    assert second["jid"] == first["jid"]
    assert first["finished"]
    assert second["finished"]
    assert (second["rc"], second["stdout"]) == (0, "deployed")
    assert starts.read_text() == "started\n"


@source
def test_basic_example_runs_as_written(runner, async_dir, tmp_path, host_files, source):
    plays = example(source, BASIC)
    project = tmp_path / "project"
    runner.ok(runner.write(plays, directory=project))

    record = json.loads((project / ".ansible_async_state/localhost/web_deployment/deploy_v2.1.0.json").read_text())
    assert set(record) == {"job_name", "host", "ansible_job_id", "save_time", "metadata"}
    assert (record["job_name"], record["host"]) == ("deploy_v2.1.0", "localhost")
    assert re.match(r"^j\d+\.\d+$", record["ansible_job_id"])
    assert host_files.exists(async_dir / record["ansible_job_id"])
    assert set(record["metadata"]) == {"version", "operator", "timestamp"}
    assert record["metadata"]["version"] == "2.1.0"
    assert record["metadata"]["operator"] == getpass.getuser()
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", record["metadata"]["timestamp"])


@source
def test_idempotent_example_runs_twice_and_reattaches(runner, async_dir, tmp_path, source):
    plays = example(source, IDEMPOTENT)
    plays[0]["tasks"].append(export_task("pattern", {"found": "async_job_load_found", "jid": "status.ansible_job_id"}))
    project = tmp_path / "project"
    playbook = runner.write(plays, directory=project)
    first = runner.ok(playbook).value("pattern")
    second = runner.ok(playbook).value("pattern")
    record = json.loads((project / ".ansible_async_state/localhost/app_deployment/deploy_v3.0.0.json").read_text())

    assert (first["found"], second["found"]) == (False, True)
    assert first["jid"] == second["jid"] == record["ansible_job_id"]
