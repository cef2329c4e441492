"""Shared fixtures: the collection on a collections path, a playbook runner, and storage
for each backend (one behaviour test body runs once per backend)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hosts import HostFiles
from tests.support.jobs import kill_jobs, use_private_async_dir
from tests.support.playbook import PlaybookRunner
from tests.support.storage import FilesystemStorage, OCIStorage

pytest_plugins = ["tests.support.fixtures", "tests.support.sshd"]

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ["filesystem", "oci"]
# What the oci CLI run by the roles needs: no user rc file, no key-permission warnings.
OCI_CLI_ENV = {"OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING": "True", "SUPPRESS_LABEL_WARNING": "True"}


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collections path where rstyczynski.ansible is this checkout."""
    root = tmp_path_factory.mktemp("collections")
    namespace = root / "ansible_collections" / "rstyczynski"
    namespace.mkdir(parents=True)
    (namespace / "ansible").symlink_to(REPO, target_is_directory=True)
    return root


@pytest.fixture
def runner(tmp_path: Path, collections_path: Path) -> Iterator[PlaybookRunner]:
    """Runs playbooks on localhost; pass hosts=... for a fleet of local hosts."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "oci_cli_rc").touch()
    runner = PlaybookRunner(workdir, collections_path)
    # A private TMPDIR shows what a run leaves behind in the temporary directory. It is kept
    # short: ansible-core 2.20+ puts a Unix socket there, whose path may not exceed 107 bytes.
    runner.tmpdir = Path(tempfile.mkdtemp(prefix="ajt-"))
    runner.env.update(OCI_CLI_ENV, OCI_CLI_RC_FILE=str(workdir / "oci_cli_rc"), TMPDIR=str(runner.tmpdir))
    yield runner
    shutil.rmtree(runner.tmpdir, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> FilesystemStorage | OCIStorage:
    """The storage of one backend; tests that take it run once per backend."""
    if request.param == "filesystem":
        return FilesystemStorage(tmp_path / "state")
    client = request.getfixturevalue("oci_client")
    return OCIStorage(request.getfixturevalue("oci_server"), client.config_file, client.bucket)


@pytest.fixture
def async_dir(runner: PlaybookRunner, tmp_path: Path) -> Iterator[Path]:
    """A private async directory (and remote temp directory) for every host, set in the inventory;
    the jobs started under the test's directory are killed afterwards."""
    yield use_private_async_dir(runner, tmp_path)
    kill_jobs(tmp_path)


@pytest.fixture
def host_files(request: pytest.FixtureRequest, runner: PlaybookRunner) -> HostFiles:
    """Files on the hosts of the runner's inventory, asked through Ansible: with pytest-ansible's
    ansible_adhoc where the plugin is installed, else with the ansible command (the tox matrix,
    whose ansible-core 2.17 pytest-ansible refuses). See docs/DEVELOPING.md."""
    if request.config.pluginmanager.hasplugin("pytest-ansible"):
        return HostFiles(runner, request.getfixturevalue("ansible_adhoc"))
    return HostFiles(runner)
