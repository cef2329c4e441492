"""`make demo`, the README's first command, shows the three moments of a job and leaves nothing running.

It runs the real make target in this checkout: three runs of playbooks/idempotent_job.yml with a
45-second job and a temporary state directory (removed afterwards).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEADER = re.compile(r"^=== (.*) ===$", re.M)
REPORT = re.compile(r'^ok: \[localhost\] => \{\n    "msg": (\[\n.*?\n    \])\n\}$', re.M | re.S)


def processes_naming(text: str) -> list[str]:
    """Command lines of the running processes that hold text."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


def test_make_demo_starts_re_attaches_and_reports_the_end(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "MAKE"))}
    # The job's results file goes to a private async directory; everything else is as a user runs it.
    env["ANSIBLE_ASYNC_DIR"] = str(tmp_path / "async")
    result = subprocess.run(
        ["make", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

    assert HEADER.findall(result.stdout) == [
        "First run: the job is not known yet, so it is started and saved",
        "Second run: the job is found by name and re-attached, not started again; it is still running",
        "Third run: re-attached again, waiting for the job to end; it reports how it ended",
    ]
    reports = [json.loads(report) for report in REPORT.findall(result.stdout)]
    assert len(reports) == 3, result.stdout
    job_id = reports[0][0].removeprefix("Started job demo_long_job: ")
    assert re.fullmatch(r"j\d+\.\d+", job_id), reports
    assert reports == [
        [f"Started job demo_long_job: {job_id}", "Started by this run: True", "Status: running"],
        [f"Re-attached to job demo_long_job: {job_id}", "Started by this run: False", "Status: running"],
        [
            f"Re-attached to job demo_long_job: {job_id}",
            "Started by this run: False",
            "Status: succeeded, rc 0, output: finished after 45 seconds",
        ],
    ]
    # Nothing of the job runs on: not its async wrapper (whose command line holds its id).
    assert processes_naming(job_id) == []
    assert "[WARNING]" not in result.stderr
