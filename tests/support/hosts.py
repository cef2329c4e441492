"""Ask a managed host about its files through Ansible, as a playbook would.

Where pytest-ansible is installed (requirements.txt: ``make test``, ``tox -e py``), its
``ansible_adhoc`` fixture runs the module in the test process. pytest-ansible refuses
ansible-core 2.17, so the tox matrix (requirements-test.txt) goes without it: there the same
module runs through the ``ansible`` command of the series under test. Both ask the host the same
question and read the same answer, so a test that uses HostFiles runs on every series.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.playbook import BIN, PlaybookRunner


class HostFiles:
    """The files of the hosts in a runner's inventory, seen through ansible.builtin modules."""

    def __init__(self, runner: PlaybookRunner, adhoc: Callable[..., Any] | None = None):
        self.runner = runner
        self.adhoc = adhoc

    @property
    def through(self) -> str:
        """What asks the host: pytest-ansible or the ansible command."""
        return "pytest-ansible" if self.adhoc else "ansible"

    def module(self, host: str, name: str, **args: Any) -> dict[str, Any]:
        """The result of one module run on host; a failed run fails the test."""
        inventory = self.runner.inventory((host,))
        if self.adhoc:
            with warnings.catch_warnings():
                # pytest-ansible marks its host manager deprecated, with no replacement yet, and
                # sets up Ansible's collection finder again on every run, which Ansible warns of.
                warnings.filterwarnings("ignore", "Host management is deprecated", DeprecationWarning)
                warnings.filterwarnings("ignore", "AnsibleCollectionFinder has already been configured", UserWarning)
                hosts = self.adhoc(inventory=str(inventory), connection="local")
                result = dict(getattr(hosts[host], name)(**args)[host])
        else:
            # The tree callback (ansible.builtin) writes each host's result as JSON to a file.
            tree = Path(tempfile.mkdtemp(prefix="host-files-", dir=self.runner.workdir))
            env = {
                **self.runner.environment(),
                "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
                "ANSIBLE_CALLBACK_TREE_DIR": str(tree),
            }
            command = [str(BIN / "ansible"), host, "-i", str(inventory), "-m", name, "-a", json.dumps(args)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
            assert (tree / host).is_file(), done.stdout + done.stderr
            result = json.loads((tree / host).read_text())
            shutil.rmtree(tree)
        assert not result.get("failed"), result
        assert not result.get("unreachable"), result
        return result

    def exists(self, path: Path | str, host: str = "localhost") -> bool:
        """Whether path exists on host (ansible.builtin.stat)."""
        return self.module(host, "stat", path=str(path))["stat"]["exists"]

    def names(self, directory: Path | str, host: str = "localhost") -> list[str]:
        """The names of the files in directory on host, hidden ones included (ansible.builtin.find)."""
        found = self.module(host, "find", paths=str(directory), hidden=True, file_type="any")["files"]
        return sorted(Path(entry["path"]).name for entry in found)
