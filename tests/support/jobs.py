"""Real async jobs started by the tests: a private async directory, and killing what was started.

Jobs run in an async directory inside the test's temporary directory, set for every host in the
inventory (group_vars next to it), so no test touches the home directory. The async wrapper's
command line names that directory, which is how the jobs of a test are found again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.support.playbook import PlaybookRunner


def use_private_async_dir(runner: PlaybookRunner, root: Path) -> Path:
    """Point every host of the runner's inventory at root/async (and root/remote-tmp); return the former."""
    directory = root / "async"
    group_vars = runner.workdir / "group_vars"
    group_vars.mkdir()
    host_vars = {"ansible_async_dir": str(directory), "ansible_remote_tmp": str(root / "remote-tmp")}
    (group_vars / "all.yml").write_text(yaml.safe_dump(host_vars))
    return directory


def jobs_of(root: Path) -> set[int]:
    """Process groups of the processes whose command line names a path under root (never the test's own)."""
    marker = f"{root}/"
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if marker in cmdline:
                groups.add(os.getpgid(int(entry.name)))
        except OSError:
            continue
    groups.discard(os.getpgrp())
    return groups


def kill_groups(find: Callable[[], set[int]], attempts: int = 3, pause: float = 0.5) -> None:
    """Kill, by process group, what find() names, until it names nothing (at most `attempts` rounds)."""
    for _attempt in range(attempts):
        groups = find()
        if not groups:
            return
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        time.sleep(pause)


def kill_jobs(root: Path) -> None:
    """Kill, by process group, the async wrappers and jobs started under root."""
    kill_groups(lambda: jobs_of(root))
