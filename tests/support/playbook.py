"""Run the real ansible-playbook against the collection, as users address it.

Playbooks are built as Python data and dumped with PyYAML. A play exports the values a
test asserts on with ``export_task``; the runner collects them per host from JSON files.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent
COLLECTION = "rstyczynski.ansible"
# What a save stores as save_time, and an export of every fact async_job_load sets.
SAVE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
LOADED = {
    "found": "async_job_load_found",
    "ansible_job_id": "async_job_load_ansible_job_id",
    "host": "async_job_load_host",
    "metadata": "async_job_load_metadata",
    "save_time": "async_job_load_save_time",
    "state_file": "async_job_load_state_file",
}
# Why every role refuses a name (the shared name rule of async_job_common), in the user's words.
EMPTY = "it must not be empty or only white space."
DOT = "it must not begin with '.': such names are kept for the collection's own files."
SEPARATOR = "it must not contain '/', '\\', NUL or control characters."


def refused_name(variable: str, value: str) -> str:
    """The whole message with which every role refuses a name that cannot be a path component."""
    size = len(value.encode())
    if not value.strip():
        reason = EMPTY
    elif value.startswith("."):
        reason = DOT
    elif re.search(r"[/\\\x00-\x1f\x7f-\x9f]", value):
        reason = SEPARATOR
    else:
        assert size > 200, value
        reason = f"it is {size} bytes long in UTF-8, more than the 200 a name may have"
        reason += " (it is one component of the record path)."
    shown = json.dumps(value)
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return f"{variable} is {shown}: {reason} Nothing was written."


RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# "ok: [host] => {" then the msg of a debug task as JSON: a string on one line, or a list of them.
SHOWN = re.compile(
    r'^(?:ok|changed): \[(?P<host>[^\]\s]+)\] => \{\n    "msg": '
    r'(?P<msg>".*"|\[\n(?:        ".*",?\n)*    \])\n\}$',
    re.M,
)
# "fatal: [host]: FAILED! => {...}", or "failed: [host] (item=...) => {...}" for a loop.
FATAL = re.compile(r"^(?:fatal|failed): \[(?P<host>[^\]\s]+)[^\]]*\].*? => (?P<result>\{.*\})$", re.M)


# In a message pattern of matches(): text that the version of Ansible or Python writes in its
# own words (a type name, a JSON parser's error), which the roles pass on as it comes.
VARIES = None


def matches(message: str, *parts: str | None) -> bool:
    """Whether message is exactly the parts in order: each string as written, VARIES any text."""
    pattern = "".join(".+?" if part is VARIES else re.escape(part) for part in parts)
    return re.fullmatch(pattern, message, re.S) is not None


class Unsafe(str):
    """A string Ansible must never template: dumped with the !unsafe tag."""


yaml.SafeDumper.add_representer(Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value)))


def unsafe(value: Any) -> Any:
    """Mark every string inside value as !unsafe, so a playbook stores Jinja text literally."""
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, dict):
        return {key: unsafe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unsafe(item) for item in value]
    return value


@dataclass
class PlaybookResult:
    """What one ansible-playbook process did."""

    rc: int
    stdout: str
    stderr: str
    exported: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def says(self, text: str) -> bool:
        """Whether the output holds text, as printed or inside a JSON result (before 2.19)."""
        return text in self.output or json.dumps(text)[1:-1] in self.output

    def failure(self, host: str = "localhost") -> str:
        """The msg of the last task that failed on host, as the user reads it. A rescued failure
        may come before it (a refused read), and so may an ignored one (a lost job's status)."""
        # A failed item of a loop may carry no msg (ansible-core 2.16).
        results = [json.loads(m["result"]) for m in FATAL.finditer(self.stdout) if m["host"] == host]
        messages = [result["msg"] for result in results if "msg" in result]
        assert messages, f"no failed task for {host}:\n{self.output}"
        return messages[-1]

    def messages(self, host: str = "localhost") -> list[str | list[str]]:
        """The msg of every task that showed one for host (ansible.builtin.debug), in order."""
        return [json.loads(m["msg"]) for m in SHOWN.finditer(self.stdout) if m["host"] == host]

    def changed(self, host: str = "localhost") -> int:
        return self.stats[host]["changed"]

    def value(self, key: str, host: str = "localhost") -> Any:
        return self.exported[host][key]


def role_task(role: str, name: str | None = None, **role_vars: Any) -> dict[str, Any]:
    """An include_role task for one role of the collection; role_vars without the role prefix."""
    return {
        "name": name or f"Run {role}",
        "ansible.builtin.include_role": {"name": f"{COLLECTION}.{role}"},
        "vars": {f"{role}_{key}": value for key, value in role_vars.items()},
    }


def export_task(key: str, values: dict[str, str]) -> dict[str, Any]:
    """A task writing the given Jinja expressions, evaluated per host, to the export file `key`."""
    body = "{{ {" + ", ".join(f"{json.dumps(k)}: ({v})" for k, v in values.items()) + "} | to_json }}"
    return {
        "name": f"Export {key}",
        "ansible.builtin.copy": {
            "content": body,
            "dest": "{{ export_dir }}/{{ inventory_hostname }}/" + key + ".json",
            "mode": "0600",
        },
        "delegate_to": "localhost",
        "changed_when": False,
        "check_mode": False,
    }


def play(
    tasks: list[dict[str, Any]],
    name: str = "Test play",
    hosts: str = "all",
    **extra: Any,
) -> dict:
    return {
        "name": name,
        "hosts": hosts,
        "gather_facts": False,
        "tasks": tasks,
        **extra,
    }


class PlaybookRunner:
    """Writes playbooks and inventories into a work directory and runs them."""

    def __init__(
        self,
        workdir: Path,
        collections_path: Path,
        hosts: tuple[str, ...] = ("localhost",),
    ):
        self.workdir = workdir
        self.collections_path = collections_path
        self.hosts = hosts
        self.export_dir = workdir / "export"
        self.env: dict[str, str] = {}
        self.tmpdir: Path = workdir
        # Inventory variables of hosts that are not local (remote hosts reached over SSH).
        self.host_vars: dict[str, dict[str, str]] = {}
        self._count = 0

    def inventory(self, hosts: tuple[str, ...]) -> Path:
        local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        lines = [
            " ".join([h, *(f"{k}={shlex.quote(v)}" for k, v in self.host_vars.get(h, local).items())]) for h in hosts
        ]
        path = self.workdir / "inventory-{}.ini".format("-".join(hosts)[:60])
        path.write_text("\n".join(lines) + "\n")
        return path

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(self.collections_path),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_STDOUT_CALLBACK="default",
            ANSIBLE_LOCAL_TEMP=str(self.workdir / "ansible-local-tmp"),
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        env.update(self.env)
        return env

    def write(self, plays: list[dict], name: str | None = None, directory: Path | None = None) -> Path:
        self._count += 1
        directory = directory or self.workdir
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / (name or f"playbook-{self._count}.yml")
        path.write_text(yaml.safe_dump(plays, sort_keys=False, allow_unicode=True, width=1000))
        return path

    def start(
        self,
        plays: list[dict] | Path,
        *,
        hosts: tuple[str, ...] | None = None,
        args: tuple[str, ...] = (),
        cwd: Path | None = None,
        extra_vars: dict[str, Any] | None = None,
    ) -> subprocess.Popen:
        """Start ansible-playbook without waiting (for races); finish() collects it."""
        playbook = plays if isinstance(plays, Path) else self.write(plays)
        for host in hosts or self.hosts:
            (self.export_dir / host).mkdir(parents=True, exist_ok=True)
        variables = {"export_dir": str(self.export_dir), **(extra_vars or {})}
        command = [
            str(BIN / "ansible-playbook"),
            "-i",
            str(self.inventory(hosts or self.hosts)),
            "-e",
            json.dumps(variables),
            *args,
            str(playbook),
        ]
        return subprocess.Popen(
            command,
            cwd=cwd or self.workdir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, process: subprocess.Popen, timeout: float = 300) -> PlaybookResult:
        stdout, stderr = process.communicate(timeout=timeout)
        result = PlaybookResult(process.returncode, stdout, stderr)
        for match in RECAP.finditer(stdout):
            host, ok, changed, unreachable, failed = match.groups()
            result.stats[host] = {
                "ok": int(ok),
                "changed": int(changed),
                "unreachable": int(unreachable),
                "failed": int(failed),
            }
        if self.export_dir.is_dir():
            for host_dir in self.export_dir.iterdir():
                result.exported[host_dir.name] = {f.stem: json.loads(f.read_text()) for f in host_dir.glob("*.json")}
        return result

    def run(self, plays: list[dict] | Path, **kwargs: Any) -> PlaybookResult:
        """Run ansible-playbook to the end; exported values of earlier runs are cleared first."""
        if self.export_dir.is_dir():
            for f in self.export_dir.glob("*/*.json"):
                f.unlink()
        return self.finish(self.start(plays, **kwargs))

    def ok(self, plays: list[dict] | Path, **kwargs: Any) -> PlaybookResult:
        """Run and require success, showing the output when it failed."""
        result = self.run(plays, **kwargs)
        assert result.rc == 0, result.output
        return result

    def fails(self, plays: list[dict] | Path, **kwargs: Any) -> PlaybookResult:
        """Run and require failure."""
        result = self.run(plays, **kwargs)
        assert result.rc != 0, result.output
        return result
