"""Behaviour of async_job_save and async_job_load, run once per backend with real playbooks."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.playbook import (
    LOADED,
    SAVE_TIME,
    VARIES,
    export_task,
    matches,
    play,
    refused_name,
    role_task,
    unsafe,
)
from tests.support.storage import DAMAGED_RECORDS, damaged_record

PLAY = "Deploy the web tier"
# The changes a first save reports in the play recap: the filesystem backend creates the
# record's directories (one task) and the record; the OCI backend uploads the record.
FIRST_SAVE_CHANGES = {"filesystem": 2, "oci": 1}
# After a damaged record's problem (storage.damaged_record), the load says:
KEPT = " Nothing was written."


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


def conflict(storage, job: str, stored_id: str, save_time: str, refused_id: str) -> str:
    """What a create-only save says when another job holds the name."""
    return (
        f"async_job_save_overwrite is false and {storage.state_file('localhost', PLAY, job)} already holds job"
        f" '{job}' with ansible_job_id '{stored_id}' (saved {save_time}), not '{refused_id}'. Re-attach to the"
        " stored job with async_job_load, or choose another async_job_save_job_name. Nothing was written."
    )


def shown_record(result, storage, job="deploy") -> dict:
    """The record a save in check mode shows it would write under a new name: as a message
    (OCI; the filesystem backend when the record's directory is missing too), else as a diff."""
    state_file = storage.state_file("localhost", PLAY, job)
    prefixes = (f"{state_file} would be created with: ", f"{state_file} would change from (absent) to ")
    messages = [json.loads(text) for text in re.findall(r'^    "msg": (".*")$', result.stdout, re.M)]
    shown = [message.removeprefix(prefix) for message in messages for prefix in prefixes if message.startswith(prefix)]
    diffs = re.findall(rf"^\+\+\+ after: {re.escape(state_file)}\n@@ [^\n]* @@\n((?:\+.*\n)+)", result.stdout, re.M)
    shown += ["".join(line[1:] + "\n" for line in diff.splitlines()) for diff in diffs]
    assert len(shown) == 1, result.output
    return json.loads(shown[0])


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

    assert first.changed() == FIRST_SAVE_CHANGES[storage.backend]
    assert second.changed() == 0
    assert storage.read("localhost", PLAY, "deploy") == before


def test_saving_another_id_replaces_the_record(runner, storage):
    runner.ok([play([save(storage, job_id="j1.1")], name=PLAY)])
    result = runner.ok([play([save(storage, job_id="j2.2")], name=PLAY)])

    assert result.changed() == 1
    assert stored(storage)["ansible_job_id"] == "j2.2"


def test_create_only_refuses_another_id_and_keeps_the_record(runner, storage):
    runner.ok([play([save(storage, job_id="j1.1")], name=PLAY)])
    before = storage.read("localhost", PLAY, "deploy")
    result = runner.fails([play([save(storage, job_id="j2.2", overwrite=False)], name=PLAY)])

    assert result.failure() == conflict(storage, "deploy", "j1.1", json.loads(before)["save_time"], "j2.2")
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
    record = stored(storage, job=job)
    assert record["ansible_job_id"] == f"j{winners[0]}.{round_}"
    for n, result in enumerate(results):
        if n != winners[0]:
            refusal = conflict(storage, job, record["ansible_job_id"], record["save_time"], f"j{n}.{round_}")
            assert result.failure() == refusal
    assert storage.names() == [storage.key("localhost", PLAY, job)]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("job_name", ""),
        ("job_name", "   "),
        ("job_name", "."),
        ("job_name", ".."),
        ("job_name", ".hidden"),
        ("job_name", "../../escape"),
        ("job_name", "a\\b"),
        ("job_name", "line\nbreak"),
        ("job_name", "tab\there"),
        ("job_name", "nul\x00byte"),
        ("job_name", "x" * 201),
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

    assert result.failure() == refused_name(f"async_job_save_{variable}", value)
    assert storage.names() == []


def test_a_name_too_long_for_a_file_leaves_no_directory_behind(runner, storage):
    # 201 two-byte characters: 402 bytes of UTF-8 in a name of 201 characters.
    task = save(storage, job="é" * 201)
    result = runner.fails([play([task], name=PLAY)])

    assert result.failure() == refused_name("async_job_save_job_name", "é" * 201)
    assert storage.names() == []
    if storage.backend == "filesystem":
        assert not storage.root.exists()


@pytest.mark.parametrize(("variable", "value"), [("job_name", "a/b"), ("host_filter", ".."), ("playbook_name", "")])
def test_load_rejects_a_bad_name(runner, storage, variable, value):
    task = load(storage)
    task["vars"][f"async_job_load_{variable}"] = "{{ bad_value }}"
    result = runner.fails([play([task], name=PLAY)], extra_vars={"bad_value": value})

    # The refused read shows as a rescued failure first; the last failure is the explanation.
    assert result.failure() == refused_name(f"async_job_load_{variable}", value)


@pytest.mark.parametrize("content", [content for content, _reason in DAMAGED_RECORDS])
def test_a_damaged_record_fails_the_load_and_is_kept(runner, storage, content):
    storage.write("localhost", PLAY, "deploy", content)
    result = runner.fails([play([load(storage), export_task("loaded", LOADED)], name=PLAY)])

    problem = damaged_record(storage.state_file("localhost", PLAY, "deploy"), content)
    assert matches(result.failure(), *problem, KEPT), result.failure()
    assert "loaded" not in result.exported.get("localhost", {})
    assert storage.read("localhost", PLAY, "deploy") == content


def test_a_damaged_record_also_stops_a_save(runner, storage):
    storage.write("localhost", PLAY, "deploy", b"{broken")
    result = runner.fails([play([save(storage, job_id="j3.3")], name=PLAY)])

    ending = {
        "filesystem": "). Inspect or remove it; it was left untouched. Nothing was written.",
        "oci": "). Inspect or remove it; it was left untouched. Nothing was written.",
    }[storage.backend]
    state_file = storage.state_file("localhost", PLAY, "deploy")
    assert matches(result.failure(), f"The job record {state_file} exists but is not valid JSON (", VARIES, ending)
    assert storage.read("localhost", PLAY, "deploy") == b"{broken"


def test_check_mode_writes_nothing_and_reports_the_change(runner, storage):
    result = runner.ok([play([save(storage, job_id="j4.4")], name=PLAY)], args=("--check", "--diff"))

    assert result.changed() == 1
    shown = shown_record(result, storage)
    assert SAVE_TIME.match(shown.pop("save_time")), shown
    assert shown == {"ansible_job_id": "j4.4", "host": "localhost", "job_name": "deploy", "metadata": {}}
    assert storage.names() == []


def test_check_mode_on_an_existing_record_shows_the_diff(runner, storage):
    runner.ok([play([save(storage, job_id="j1.1")], name=PLAY)])
    before = storage.read("localhost", PLAY, "deploy")
    result = runner.ok([play([save(storage, job_id="j2.2")], name=PLAY)], args=("--check", "--diff"))

    assert result.changed() == 1
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


# What ansible-core's argument spec validation says; VARIES is the type name (its spelling
# changed in 2.17) and the list of booleans (in no fixed order).
SPEC_FAILED = "Validation of arguments failed:\n"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "metadata",
            "not a dict",
            [
                f"{SPEC_FAILED}argument 'async_job_save_metadata' is of type ",
                VARIES,
                " and we were unable to convert to dict: dictionary requested, could not parse JSON or key=value",
            ],
        ),
        ("backend", "nfs", [f"{SPEC_FAILED}value of async_job_save_backend must be one of: filesystem, oci, got: nfs"]),
        (
            "overwrite",
            "perhaps",
            [
                f"{SPEC_FAILED}argument 'async_job_save_overwrite' is of type ",
                VARIES,
                " and we were unable to convert to bool: The value 'perhaps' is not a valid boolean. ",
                VARIES,
            ],
        ),
    ],
)
def test_argument_spec_rejects_wrong_types_by_name(runner, storage, variable, value, message):
    task = save(storage)
    task["vars"][f"async_job_save_{variable}"] = value
    result = runner.fails([play([task], name=PLAY)])

    assert matches(result.failure(), *message), result.failure()
    assert storage.names() == []


def test_missing_required_input_is_named(runner, storage):
    task = save(storage)
    del task["vars"]["async_job_save_ansible_job_id"]
    result = runner.fails([play([task], name=PLAY)])

    assert result.failure() == f"{SPEC_FAILED}missing required arguments: async_job_save_ansible_job_id"


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
