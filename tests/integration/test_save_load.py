"""Behaviour of async_job_save and async_job_load, run once per backend with real playbooks."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.playbook import LOADED, SAVE_TIME, export_task, play, role_task, unsafe
from tests.support.storage import DAMAGED_RECORDS

PLAY = "Deploy the web tier"


def storage_vars(storage, role):
    return {k.removeprefix(f"{role}_"): v for k, v in storage.role_vars(role).items()}


def save(storage, job="deploy", job_id="j100.1", **extra):
    inputs = {"job_name": job, "ansible_job_id": job_id, "host": "{{ inventory_hostname }}", **extra}
    return role_task("async_job_save", **storage_vars(storage, "async_job_save"), **inputs)


def load(storage, job="deploy", **extra):
    return role_task("async_job_load", **storage_vars(storage, "async_job_load"), job_name=job, **extra)


def stored(storage, job="deploy", host="localhost", playbook=PLAY):
    data = storage.read(host, playbook, job)
    return None if data is None else json.loads(data)


def test_save_then_load_round_trips_every_string(runner, storage):
    metadata = {
        "quotes": "it's \"quoted\" and 'single'",
        "newlines": "line 1\nline 2\n",
        "unicode": "zażółć gęślą jaźń ✓ 日本",
        "jinja": "{{ lookup('pipe', 'echo EVALUATED') }} {% if true %}x{% endif %}",
        "nested": {"list": [1, "two", None, True], "number": 3.5},
    }
    job = "déploiement v2 'rc1' ü"
    tasks = [
        save(storage, job=job, job_id="j123.456", metadata=unsafe(metadata)),
        export_task("saved", {"state_file": "async_job_save_state_file"}),
        load(storage, job=job),
        export_task("loaded", LOADED),
        export_task("used", {"jinja": "async_job_load_metadata.jinja"}),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    loaded = result.value("loaded")
    assert loaded["found"] is True
    assert loaded["ansible_job_id"] == "j123.456"
    assert loaded["host"] == "localhost"
    assert loaded["metadata"] == metadata
    assert SAVE_TIME.match(loaded["save_time"])
    assert result.value("used")["jinja"] == metadata["jinja"]
    assert loaded["state_file"] == result.value("saved")["state_file"]
    assert loaded["state_file"] == storage.state_file("localhost", PLAY, job)

    record = stored(storage, job=job)
    assert record == {
        "job_name": job,
        "host": "localhost",
        "ansible_job_id": "j123.456",
        "save_time": loaded["save_time"],
        "metadata": metadata,
    }


def test_default_playbook_name_is_the_play_name_and_needs_no_facts(runner, storage):
    saving = play([save(storage, job_id="j1.1")], name=PLAY)
    loading = play([load(storage), export_task("loaded", LOADED)], name=PLAY)
    other = play([load(storage), export_task("other", LOADED)], name="Another play")
    result = runner.ok([saving, loading, other])

    assert result.value("loaded")["found"] is True
    assert result.value("loaded")["ansible_job_id"] == "j1.1"
    assert result.value("other")["found"] is False
    assert stored(storage, playbook=PLAY)["ansible_job_id"] == "j1.1"


def test_not_found_load_resets_every_output(runner, storage):
    tasks = [
        save(storage, job="present", job_id="j7.7", metadata={"a": 1}),
        load(storage, job="present"),
        export_task("first", LOADED),
        load(storage, job="absent"),
        export_task("second", LOADED),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    assert result.value("first")["ansible_job_id"] == "j7.7"
    second = result.value("second")
    assert second["found"] is False
    assert second["ansible_job_id"] == ""
    assert second["host"] == ""
    assert second["metadata"] == {}
    assert second["save_time"] == ""


def test_load_reads_the_record_of_another_host(runner, storage):
    tasks = [
        save(storage, job_id="j5.5", host="db01"),
        load(storage, host_filter="db01"),
        export_task("loaded", LOADED),
    ]
    result = runner.ok([play(tasks, name=PLAY)])

    assert result.value("loaded")["found"] is True
    assert result.value("loaded")["host"] == "db01"
    assert stored(storage, host="db01")["ansible_job_id"] == "j5.5"


def test_resaving_the_same_id_changes_nothing(runner, storage):
    first = runner.ok([play([save(storage, job_id="j9.9", metadata={"v": "1"})], name=PLAY)])
    before = storage.read("localhost", PLAY, "deploy")
    second = runner.ok([play([save(storage, job_id="j9.9", metadata={"v": "1"})], name=PLAY)])

    assert first.changed() >= 1
    assert second.changed() == 0
    assert storage.read("localhost", PLAY, "deploy") == before


def test_saving_another_id_replaces_the_record(runner, storage):
    runner.ok([play([save(storage, job_id="j1.1")], name=PLAY)])
    result = runner.ok([play([save(storage, job_id="j2.2")], name=PLAY)])

    assert result.changed() >= 1
    assert stored(storage)["ansible_job_id"] == "j2.2"


def test_create_only_refuses_another_id_and_keeps_the_record(runner, storage):
    runner.ok([play([save(storage, job_id="j1.1")], name=PLAY)])
    before = storage.read("localhost", PLAY, "deploy")
    result = runner.fails([play([save(storage, job_id="j2.2", overwrite=False)], name=PLAY)])

    assert "async_job_save_overwrite is false" in result.output
    assert "'deploy'" in result.output
    assert "'j1.1'" in result.output
    assert storage.read("localhost", PLAY, "deploy") == before


def test_create_only_accepts_the_stored_id(runner, storage):
    runner.ok([play([save(storage, job_id="j1.1", overwrite=False)], name=PLAY)])
    before = storage.read("localhost", PLAY, "deploy")
    result = runner.ok([play([save(storage, job_id="j1.1", overwrite=False)], name=PLAY)])

    assert result.changed() == 0
    assert storage.read("localhost", PLAY, "deploy") == before


@pytest.mark.parametrize("round_", range(3))
def test_create_only_race_has_exactly_one_winner(runner, storage, round_):
    racers = 8
    job = f"race{round_}"
    processes = [
        runner.start([play([save(storage, job=job, job_id=f"j{n}.{round_}", overwrite=False)], name=PLAY)])
        for n in range(racers)
    ]
    results = [runner.finish(p) for p in processes]

    winners = [n for n, r in enumerate(results) if r.rc == 0]
    assert len(winners) == 1, [r.output[-400:] for r in results]
    for n, result in enumerate(results):
        if n != winners[0]:
            assert "async_job_save_overwrite is false" in result.output, result.output
    assert stored(storage, job=job)["ansible_job_id"] == f"j{winners[0]}.{round_}"
    assert storage.names() == [storage.key("localhost", PLAY, job)]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("job_name", ""),
        ("job_name", "."),
        ("job_name", ".."),
        ("job_name", "../../escape"),
        ("job_name", "a\\b"),
        ("job_name", "line\nbreak"),
        ("job_name", "tab\there"),
        ("job_name", "nul\x00byte"),
        ("playbook_name", ".."),
        ("playbook_name", "a/b"),
        ("host", "../etc"),
        ("host", "bell\x07"),
    ],
)
def test_save_rejects_a_bad_name_before_writing(runner, storage, variable, value):
    task = save(storage)
    task["vars"][f"async_job_save_{variable}"] = "{{ bad_value }}"
    result = runner.fails([play([task], name=PLAY)], extra_vars={"bad_value": value})

    assert result.says(f"async_job_save_{variable} is {json.dumps(value)}"), result.output
    assert storage.names() == []
    message = result.failure()
    assert message.startswith(f"async_job_save_{variable} is {json.dumps(value)}: a name must be non-empty"), message
    assert "  " not in message, message


@pytest.mark.parametrize(("variable", "value"), [("job_name", "a/b"), ("host_filter", ".."), ("playbook_name", "")])
def test_load_rejects_a_bad_name(runner, storage, variable, value):
    task = load(storage)
    task["vars"][f"async_job_load_{variable}"] = "{{ bad_value }}"
    result = runner.fails([play([task], name=PLAY)], extra_vars={"bad_value": value})

    assert result.says(f"async_job_load_{variable} is {json.dumps(value)}"), result.output
    # The refused read shows as a rescued failure first; the last failure is the explanation.
    message = result.failure()
    assert message.startswith(f"async_job_load_{variable} is {json.dumps(value)}: a name must be non-empty"), message
    assert "  " not in message, message


@pytest.mark.parametrize(
    ("content", "reason"),
    DAMAGED_RECORDS,
)
def test_a_damaged_record_fails_the_load_and_is_kept(runner, storage, content, reason):
    storage.write("localhost", PLAY, "deploy", content)
    result = runner.fails([play([load(storage), export_task("loaded", LOADED)], name=PLAY)])

    assert reason in result.output
    assert storage.state_file("localhost", PLAY, "deploy") in result.output
    assert result.failure().startswith(f"The job record {storage.state_file('localhost', PLAY, 'deploy')} exists but ")
    assert "loaded" not in result.exported.get("localhost", {})
    assert storage.read("localhost", PLAY, "deploy") == content


def test_a_damaged_record_also_stops_a_save(runner, storage):
    storage.write("localhost", PLAY, "deploy", b"{broken")
    result = runner.fails([play([save(storage, job_id="j3.3")], name=PLAY)])

    assert "is not valid JSON" in result.output
    assert storage.read("localhost", PLAY, "deploy") == b"{broken"


def test_check_mode_writes_nothing_and_reports_the_change(runner, storage):
    result = runner.ok([play([save(storage, job_id="j4.4")], name=PLAY)], args=("--check", "--diff"))

    assert result.changed() >= 1
    assert "j4.4" in result.output
    assert storage.names() == []


def test_check_mode_on_an_existing_record_shows_the_diff(runner, storage):
    runner.ok([play([save(storage, job_id="j1.1")], name=PLAY)])
    before = storage.read("localhost", PLAY, "deploy")
    result = runner.ok([play([save(storage, job_id="j2.2")], name=PLAY)], args=("--check", "--diff"))

    assert result.changed() >= 1
    assert storage.read("localhost", PLAY, "deploy") == before
    if storage.backend == "filesystem":
        assert re.search(r'^-\s+"ansible_job_id": "j1\.1"', result.output, re.M), result.output
        assert re.search(r'^\+\s+"ansible_job_id": "j2\.2"', result.output, re.M), result.output
    else:
        # Nothing is downloaded to a file in check mode, so the change is shown as a message.
        assert re.search(r"would change from.*j1\.1.* to .*j2\.2", result.output, re.S), result.output


def test_load_works_in_check_mode(runner, storage):
    runner.ok([play([save(storage, job_id="j1.1")], name=PLAY)])
    result = runner.ok([play([load(storage), export_task("loaded", LOADED)], name=PLAY)], args=("--check",))

    assert result.value("loaded")["ansible_job_id"] == "j1.1"
    assert result.changed() == 0


def test_a_fleet_gets_one_record_per_host(runner, storage):
    hosts = tuple(f"node{n}" for n in range(1, 6))
    tasks = [
        save(storage, job_id="j{{ inventory_hostname[-1] }}.0"),
        load(storage),
        export_task("loaded", LOADED),
    ]
    result = runner.ok([play(tasks, name=PLAY)], hosts=hosts)

    for host in hosts:
        assert result.value("loaded", host)["ansible_job_id"] == f"j{host[-1]}.0"
        assert stored(storage, host=host)["host"] == host
    assert len(storage.names()) == len(hosts)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("metadata", "not a dict", "async_job_save_metadata"),
        ("backend", "nfs", "async_job_save_backend"),
        ("overwrite", "perhaps", "async_job_save_overwrite"),
    ],
)
def test_argument_spec_rejects_wrong_types_by_name(runner, storage, variable, value, message):
    task = save(storage)
    task["vars"][f"async_job_save_{variable}"] = value
    result = runner.fails([play([task], name=PLAY)])

    assert message in result.output
    assert storage.names() == []


def test_missing_required_input_is_named(runner, storage):
    task = save(storage)
    del task["vars"]["async_job_save_ansible_job_id"]
    result = runner.fails([play([task], name=PLAY)])

    assert "async_job_save_ansible_job_id" in result.output


def test_omit_or_an_empty_string_is_not_stored(runner, storage):
    # A playbook that passes omit to a role variable hands it the placeholder as text: a record
    # must never hold it, nor an empty value.
    unset = "{{ '' if false else omit }}"
    tasks = [
        save(storage, job="omitted", become=unset, become_user=unset, async_dir=unset),
        save(storage, job="empty", become_user="", async_dir=""),
        save(storage, job="given", become=False, become_user="app", async_dir="~app/.ansible_async"),
    ]
    runner.ok([play(tasks, name=PLAY)])

    common = {"job_name", "host", "ansible_job_id", "save_time", "metadata"}
    assert set(stored(storage, job="omitted")) == common
    assert set(stored(storage, job="empty")) == common
    given = stored(storage, job="given")
    assert (given["become"], given["become_user"], given["async_dir"]) == (False, "app", "~app/.ansible_async")
