"""Count the oci processes a playbook run starts.

An executable named ``oci``, first on the PATH of the runs, notes its arguments and then runs
the real CLI: the roles still talk to the local Object Storage server through the real oci CLI,
and the test reads which commands they ran and how many.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from tests.support.fixtures import find_oci_cli
from tests.support.playbook import BIN, PlaybookRunner

WRAPPER = """#!{python}
import json, os, sys
with open({log!r}, "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
os.execv({real!r}, [{real!r}] + sys.argv[1:])
"""


class OCICalls:
    """The oci processes of the runs of one runner, in the order they started."""

    def __init__(self, directory: Path, runner: PlaybookRunner):
        real = find_oci_cli()
        assert real is not None, "the oci CLI is not installed"
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "calls.jsonl"
        wrapper = directory / "oci"
        wrapper.write_text(WRAPPER.format(python=sys.executable, log=str(self.log), real=str(real)))
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        runner.env["PATH"] = os.pathsep.join([str(directory), str(BIN), os.environ.get("PATH", "")])

    def argvs(self) -> list[list[str]]:
        """The arguments of every oci process started since the last clear()."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[str]:
        """The object command of each process ("bulk-download", "bulk-upload", ...)."""
        commands = []
        for argv in self.argvs():
            index = argv.index("object")
            commands.append(argv[index + 1])
        return commands

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)
