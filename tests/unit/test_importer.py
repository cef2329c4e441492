"""Galaxy's importer, the program that Galaxy and Automation Hub run on every uploaded collection,
accepts the artifact built from this checkout with no warning and no error. It runs offline and
without its ansible-test step (tools/release.py), in its own virtualenv (.venv-importer)."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from pathlib import Path

import pytest
import yaml

from tools import release as release_tool

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
INTERNAL_ROLE = REPO / "roles" / "async_job_common"


@pytest.fixture(scope="session")
def import_report(tmp_path_factory: pytest.TempPathFactory) -> release_tool.ImportReport:
    """One importer run per test session, shared by the pytest-xdist workers through a file."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "galaxy-import"
    shared.mkdir(exist_ok=True)
    saved = shared / "report.json"
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not saved.is_file():
            tarball = release_tool.build(REPO, shared / "dist")
            saved.write_text(json.dumps(dataclasses.asdict(release_tool.run_importer(tarball))))
    return release_tool.ImportReport(**json.loads(saved.read_text()))


def test_the_importer_accepts_the_artifact_with_no_warning_and_no_error(import_report):
    assert import_report.returncode == 0, import_report.output
    assert release_tool.IMPORTER_DONE in import_report.output
    assert import_report.problems == [], import_report.output
    assert import_report.ok


def test_the_importer_loaded_every_role_and_linted_the_collection(import_report):
    roles = sorted(c["name"] for c in import_report.result["contents"] if c["content_type"] == "role")
    assert roles == ROLES
    assert import_report.result["metadata"]["version"] == str(GALAXY["version"])
    # The lint ran (an importer without ansible-lint only warns that it skipped it).
    assert "Linting collection via ansible-lint" in import_report.output
    assert "...ansible-lint run complete" in import_report.output
    assert "ansible-test" not in import_report.output


def test_galaxy_shows_the_internal_role_as_internal(import_report):
    internal = next(c for c in import_report.result["contents"] if c["name"] == INTERNAL_ROLE.name)
    assert "Not for use in playbooks" in internal["description"]


def test_the_internal_role_has_a_readme_and_no_metadata_that_ansible_doc_lists():
    readme = (INTERNAL_ROLE / "README.md").read_text()
    assert "Internal role: not for use in playbooks" in readme
    # ansible-doc lists every role with meta/main.* or meta/argument_specs.*; the importer also
    # reads the description from meta.yml at the role's root, which ansible-doc ignores.
    listed = [p.name for p in (INTERNAL_ROLE / "meta").glob("*")] if (INTERNAL_ROLE / "meta").exists() else []
    assert not [name for name in listed if name.split(".")[0] in ("main", "argument_specs")]
    meta = yaml.safe_load((INTERNAL_ROLE / "meta.yml").read_text())
    assert "Not for use in playbooks" in meta["galaxy_info"]["description"]


def test_the_check_fails_on_any_warning_or_error_line():
    done = release_tool.IMPORTER_DONE
    output = f"Loading role x\nWARNING: No role description found\n[WARNING]: Skipping\n{done}\n"
    assert release_tool.problems(output) == ["WARNING: No role description found", "[WARNING]: Skipping"]
    assert not release_tool.ImportReport(0, output).ok
    assert not release_tool.ImportReport(1, "ERROR: The import failed for the following reason: x\n").ok
    assert not release_tool.ImportReport(0, "Loading role x\n").ok
    assert release_tool.ImportReport(0, f"Loading role x\n{done}\n").ok
