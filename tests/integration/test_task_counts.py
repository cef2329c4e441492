"""The task counts of docs/DEVELOPING.md are what a run costs.

Every task costs about 0.4 s of wall time per batch of 40 hosts, run or skipped, so a change that
adds a task to a path must say so in the contributor guide: this test runs each path of its table
on two local hosts and compares the play recap with the table. "per host" counts the task results
of the second host (every task it ran or skipped, includes too); "per batch" the tasks that ran
once for the whole batch (run_once), which the recap shows on the first host only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.playbook import RECAP, play, role_task

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "DEVELOPING.md"
HOSTS = ("one", "two")
PLAY = "Counted"
ROW = re.compile(r"^\| `(async_job_\w+)` \| (filesystem|oci) \| ([^|]+?) \| (\d+) \| (\d+) \|$", re.M)
RECAP_FULL = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=\d+\s+unreachable=\d+\s+failed=(\d+)\s+skipped=(\d+)", re.M)


def table() -> dict[tuple[str, str, str], tuple[int, int]]:
    rows = {
        (role, backend, path.strip()): (int(host), int(batch))
        for role, backend, path, host, batch in ROW.findall(GUIDE.read_text())
    }
    assert rows, f"no task count table in {GUIDE}"
    return rows


def inputs(storage, role: str, **values) -> dict:
    return {**{k.removeprefix(f"{role}_"): v for k, v in storage.role_vars(role).items()}, **values}


def save(storage, job_id="j1.1", **extra):
    return role_task(
        "async_job_save",
        **inputs(
            storage,
            "async_job_save",
            job_name="deploy",
            ansible_job_id=job_id,
            host="{{ inventory_hostname }}",
            **extra,
        ),
    )


def run(storage):
    return role_task("async_job_run", **inputs(storage, "async_job_run", job_name="sleeper", command="sleep 60"))


# What each path of the table runs: the tasks to prepare it (not counted), then the counted call.
PATHS = {
    "async_job_save": {
        "new job": lambda s: ([], save(s)),
        "re-save": lambda s: ([save(s)], save(s)),
        "create-only": lambda s: ([], save(s, overwrite=False)),
    },
    "async_job_load": {
        "found": lambda s: ([save(s)], role_task("async_job_load", **inputs(s, "async_job_load", job_name="deploy"))),
        "not found": lambda s: ([], role_task("async_job_load", **inputs(s, "async_job_load", job_name="deploy"))),
        "check status": lambda s: (
            [save(s)],
            role_task("async_job_load", **inputs(s, "async_job_load", job_name="deploy", check_status=True)),
        ),
    },
    "async_job_run": {
        "start": lambda s: ([], run(s)),
        "re-attach": lambda s: ([run(s)], run(s)),
    },
    "async_job_forget": {
        "stored": lambda s: (
            [save(s)],
            role_task("async_job_forget", **inputs(s, "async_job_forget", job_name="deploy")),
        ),
    },
    "async_job_list": {
        "one record": lambda s: ([save(s)], role_task("async_job_list", **inputs(s, "async_job_list"))),
    },
}


def test_the_table_covers_every_path():
    assert set(table()) == {
        (role, backend, path) for role, paths in PATHS.items() for path in paths for backend in ("filesystem", "oci")
    }


@pytest.mark.parametrize(("role", "path"), [(role, path) for role, paths in PATHS.items() for path in paths], ids=str)
def test_a_path_costs_the_tasks_the_guide_says(runner, storage, async_dir, role, path):
    per_host, per_batch = table()[(role, storage.backend, path)]
    prepare, counted = PATHS[role][path](storage)
    if prepare:
        runner.ok([play(prepare, name=PLAY)], hosts=HOSTS)
    result = runner.ok([play([counted], name=PLAY)], hosts=HOSTS)

    tasks = {host: int(ok) + int(skipped) for host, ok, failed, skipped in RECAP_FULL.findall(result.stdout)}
    assert RECAP.findall(result.stdout)
    assert (tasks["two"], tasks["one"] - tasks["two"]) == (per_host, per_batch), result.stdout
