"""Remote hosts for the integration tests: Debian's sshd on 127.0.0.1, reached over SSH as an
unprivileged user who may become a service user with sudo.

``start_remote`` (the session fixture ``remote_server``) makes the users when they are missing
(``fleet``, who logs in, and ``svc``, whom fleet may become through passwordless sudo), a host
key and a user key, a sudoers drop-in and an sshd config of its own, then starts sshd in the
foreground (``-D``) as a child on a free port of 127.0.0.1. ``stop()`` ends it and removes what it
added for the session. Several sessions (pytest-xdist workers) share the users; each has its own
sshd, keys, authorized keys file and drop-in.

Every remote process of a test carries ``ASYNC_JOB_TEST=<token>`` in its environment: ssh sends
it (SendEnv), sshd accepts it (AcceptEnv) and sudo keeps it (env_keep), so ``kill_remote_jobs``
finds the async jobs of that test, detached as they are, and nothing else.

Run by hand (as root) to get a host to try playbooks against; Ctrl-C ends it::

    python -m tests.support.sshd
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.jobs import kill_groups, kill_jobs
from tests.support.playbook import PlaybookRunner

LOGIN_USER = "fleet"
SERVICE_USER = "svc"
MARKER = "ASYNC_JOB_TEST"
SUDOERS_DIR = Path("/etc/sudoers.d")
# The temporary directory a module runs from, as it appears in an async wrapper's command line.
TMP_DIR = re.compile(r"/\S*/ansible-tmp-[^/\s]+")
# sshd is in sbin, which is not on every PATH.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def unavailable() -> str | None:
    """Why remote hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return (
            "the remote-host tests need root: they create the users fleet and svc and a sudo rule "
            "(CI runs as root; `make test` run as root installs what they need)"
        )
    tools = {
        "sshd": "openssh-server",
        "ssh": "openssh-client",
        "ssh-keygen": "openssh-client",
        "sudo": "sudo",
        "visudo": "sudo",
        "setfacl": "acl",
        "useradd": "passwd",
    }
    missing = sorted({package for tool, package in tools.items() if shutil.which(tool, path=SBIN_PATH) is None})
    if missing:
        return (
            f"the remote-host tests need the Debian packages {', '.join(missing)} "
            "(`make test` installs them when run as root with apt-get)"
        )
    return None


def _run(*argv: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def ensure_user(name: str) -> pwd.struct_passwd:
    """The user, created with a home directory when missing. Its password is '*': no password
    login, but not a locked account (sshd refuses a locked one even with a key)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        _run(shutil.which("useradd", path=SBIN_PATH) or "useradd", "--create-home", "--shell", "/bin/sh", name)
    _run(shutil.which("usermod", path=SBIN_PATH) or "usermod", "--password", "*", name)
    return pwd.getpwnam(name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write(path: Path, text: str, mode: int, owner: pwd.struct_passwd | None = None) -> None:
    path.write_text(text)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


@dataclass
class RemoteServer:
    """One sshd and what it needs, for a test session."""

    workdir: Path
    token: str
    port: int = 0
    user: pwd.struct_passwd | None = None
    service_user: pwd.struct_passwd | None = None
    process: subprocess.Popen | None = None
    added: list[Path] = field(default_factory=list)

    @property
    def key(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def log(self) -> Path:
        return self.workdir / "sshd.log"

    @property
    def home(self) -> Path:
        return Path(self.user.pw_dir)

    @property
    def service_home(self) -> Path:
        return Path(self.service_user.pw_dir)

    def host_vars(self) -> dict[str, str]:
        """Inventory variables of a host reached over SSH as the login user. ssh sends the
        controller's ASYNC_JOB_TEST to every remote process of the run."""
        return {
            "ansible_host": "127.0.0.1",
            "ansible_port": str(self.port),
            "ansible_user": self.user.pw_name,
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_common_args": (
                f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes -o SendEnv={MARKER}"
            ),
            "ansible_python_interpreter": "auto_silent",
            "ansible_become_method": "sudo",
        }

    def ssh(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on the host as the login user (argv is quoted for its shell)."""
        command = [
            "ssh",
            "-i",
            str(self.key),
            "-p",
            str(self.port),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"{self.user.pw_name}@127.0.0.1",
            shlex.join(argv),
        ]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)

    def start(self, lock_dir: Path) -> RemoteServer:
        with _users_lock(lock_dir):
            self.user = ensure_user(LOGIN_USER)
            self.service_user = ensure_user(SERVICE_USER)
        self._keys()
        self._sudo_rule()
        for _attempt in range(5):
            self.port = free_port()
            self._config()
            if self._spawn():
                break
        else:
            raise RuntimeError(f"sshd did not start:\n{self.log.read_text()}")
        login = self.ssh("id", "-un", check=False)
        if login.returncode != 0 or login.stdout.strip() != self.user.pw_name:
            raise RuntimeError(f"cannot log in over SSH: {login.stderr}\n{self.log.read_text()}")
        return self

    def _keys(self) -> None:
        keygen = shutil.which("ssh-keygen") or "ssh-keygen"
        host_key = self.workdir / "ssh_host_ed25519_key"
        _run(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "async-job-tests host", "-f", str(host_key))
        _run(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "async-job-tests user", "-f", str(self.key))
        # sshd reads the authorized keys as the user, from a file of this session in its home.
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(ssh_dir, self.user.pw_uid, self.user.pw_gid)
        authorized = ssh_dir / f"authorized_keys.{self.token}"
        _write(authorized, self.key.with_suffix(".pub").read_text(), 0o600, self.user)
        self.added.append(authorized)

    def _sudo_rule(self) -> None:
        # fleet may run anything as svc, without a password, and keeps the test's marker.
        login, service = self.user.pw_name, self.service_user.pw_name
        rule = (
            "# rstyczynski.ansible remote-host tests (one test session); removed when it ends.\n"
            f'Defaults:{login} env_keep += "{MARKER}"\n'
            f"{login} ALL=({service}) NOPASSWD: ALL\n"
        )
        draft = self.workdir / "sudoers"
        _write(draft, rule, 0o440)
        _run(shutil.which("visudo", path=SBIN_PATH) or "visudo", "-c", "-q", "-f", str(draft))
        # A name without a dot: sudo skips files in sudoers.d whose name holds one.
        target = SUDOERS_DIR / f"async-job-tests-{self.token}"
        shutil.copyfile(draft, target)
        target.chmod(0o440)
        self.added.append(target)

    def _config(self) -> None:
        host_key = self.workdir / "ssh_host_ed25519_key"
        (self.workdir / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {self.workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile .ssh/authorized_keys.{self.token}",
                    f"AllowUsers {self.user.pw_name}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin no",
                    "UsePAM no",
                    f"AcceptEnv {MARKER}",
                    # Ansible opens several sessions at once on one multiplexed connection.
                    "MaxSessions 50",
                    "MaxStartups 100",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        known = self.workdir / "ssh_host_ed25519_key.pub"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {known.read_text()}")

    def _spawn(self) -> bool:
        """Start sshd; False when it could not listen on the port (taken meanwhile)."""
        sshd = shutil.which("sshd", path=SBIN_PATH) or "sshd"
        # sshd needs its privilege separation directory, which the system service would create.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        config = str(self.workdir / "sshd_config")
        _run(sshd, "-t", "-f", config)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
            time.sleep(0.05)
        self._end_sshd()
        return False

    def _end_sshd(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        """End sshd and every session it started, and remove the drop-in and the authorized keys."""
        if self.process is not None:
            # Each connection is a child of the listener, in a session of its own.
            for pid in _descendants(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._end_sshd()
        for path in self.added:
            path.unlink(missing_ok=True)
        self.added.clear()


class _users_lock(contextlib.AbstractContextManager):
    """Serialises user creation between the sessions of one pytest run (xdist workers)."""

    def __init__(self, directory: Path):
        self.path = directory / "remote-users.lock"

    def __enter__(self):
        self.handle = self.path.open("w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def start_remote(workdir: Path, lock_dir: Path) -> RemoteServer:
    """A started RemoteServer whose files live in workdir (private to root); lock_dir is shared by
    every session that may start one at the same time."""
    server = RemoteServer(workdir=workdir, token=secrets.token_hex(6))
    try:
        return server.start(lock_dir)
    except BaseException:
        server.stop()
        raise


def _processes() -> dict[int, Path]:
    return {int(entry.name): entry for entry in Path("/proc").iterdir() if entry.name.isdigit()}


def _descendants(root: int) -> list[int]:
    """The processes below root, children first found first."""
    parents = {}
    for pid, entry in _processes().items():
        with contextlib.suppress(OSError, IndexError, ValueError):
            # The parent is the second field after the command name, which may hold spaces.
            parents[pid] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found.extend(children)
        frontier = children
    return found


def _marked(token: str) -> dict[int, str]:
    """Processes whose environment holds ASYNC_JOB_TEST=token, with their command lines."""
    marker = f"{MARKER}={token}".encode()
    found = {}
    for pid, entry in _processes().items():
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found[pid] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return found


def remote_jobs(token: str) -> set[int]:
    """Process groups of the remote processes of the test with this token (never pytest's own)."""
    groups = set()
    for pid in _marked(token):
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())
    return groups


def kill_remote_jobs(token: str) -> None:
    """Kill, by process group, the async wrappers and jobs a test started on the remote host, and
    remove the temporary directories their modules ran from (a killed wrapper leaves its own)."""
    leftovers = set()

    def find() -> set[int]:
        marked = _marked(token)
        leftovers.update(match.group(0) for line in marked.values() for match in TMP_DIR.finditer(line))
        return remote_jobs(token)

    kill_groups(find, attempts=5, pause=0.3)
    for directory in leftovers:
        shutil.rmtree(directory, ignore_errors=True)


# Fixtures (registered in tests/conftest.py)

HOSTS = ("host1", "host2", "host3")


@dataclass
class Remote:
    """The remote hosts of one test: host1..host3, all reached over SSH as fleet on one sshd."""

    server: RemoteServer
    token: str
    hosts: tuple[str, ...] = HOSTS
    leftovers: list[Path] = field(default_factory=list)

    @property
    def user(self) -> str:
        return self.server.user.pw_name

    @property
    def service_user(self) -> str:
        return self.server.service_user.pw_name

    @property
    def home(self) -> Path:
        return self.server.home

    @property
    def service_home(self) -> Path:
        return self.server.service_home

    def results_file(self, jid: str, service: bool = False) -> Path:
        """Where a job's results file is in the default async directory (~/.ansible_async)."""
        return (self.service_home if service else self.home) / ".ansible_async" / jid

    def remove_later(self, *paths: Path) -> None:
        """Remove these paths on the host (results files, async directories) after the test."""
        self.leftovers.extend(paths)


@pytest.fixture(scope="session")
def remote_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteServer]:
    """sshd on 127.0.0.1 for the session, or a skip that says what is missing."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    server = start_remote(tmp_path_factory.mktemp("sshd"), tmp_path_factory.getbasetemp().parent)
    yield server
    server.stop()


@pytest.fixture
def remote(runner: PlaybookRunner, remote_server: RemoteServer) -> Iterator[Remote]:
    """The runner's hosts become host1..host3 over SSH; what the test starts there is killed after."""
    token = secrets.token_hex(6)
    runner.env[MARKER] = token
    # The connections ssh keeps open between tasks (ControlPersist) live under the test's own
    # directory, so they are found and ended with the test.
    runner.env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(runner.tmpdir / "cp")
    # Ansible's temporary files on the host go to a directory of the test under /var/tmp, which
    # is also the system directory Ansible uses to become another unprivileged user: an async job
    # started with such a become leaves its directory there, which the job cannot remove.
    remote_tmp = Path("/var/tmp") / f"async-job-tests-{token}"
    remote_tmp.mkdir()
    remote_tmp.chmod(0o1777)  # as /var/tmp itself: Ansible makes each directory in it private
    for host in HOSTS:
        runner.host_vars[host] = {
            **remote_server.host_vars(),
            "ansible_remote_tmp": str(remote_tmp),
            "ansible_system_tmpdirs": json.dumps([str(remote_tmp)]),
        }
    runner.hosts = HOSTS
    remote = Remote(remote_server, token)
    remote.remove_later(remote_tmp)
    yield remote
    kill_remote_jobs(token)
    kill_jobs(runner.tmpdir)
    for path in remote.leftovers:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def main() -> None:
    import tempfile

    reason = unavailable()
    if reason:
        raise SystemExit(reason)
    workdir = Path(tempfile.mkdtemp(prefix="sshd-"))
    server = start_remote(workdir, workdir)
    print(f"sshd on 127.0.0.1 port {server.port}; an inventory line:")
    variables = " ".join(f"{k}={shlex.quote(v)}" for k, v in server.host_vars().items())
    print(f"host1 {variables}")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
