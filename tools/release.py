"""Release tooling for this collection: Galaxy's importer check, and a release in one command.

    python tools/release.py setup-importer     make the importer's virtualenv (.venv-importer)
    python tools/release.py check [TARBALL]    build the artifact into dist/ (unless given) and
                                               run galaxy-importer on it
    python tools/release.py release VERSION    set the version, release the changelog, build and
                                               check the artifact, commit and tag

galaxy-importer is the program that Galaxy and Automation Hub run on every uploaded collection.
It runs here offline, without its ansible-test step (that step needs a container runtime), in a
virtualenv of its own made from tools/requirements-importer.txt, with a longer time limit for its
ansible-lint step (IMPORTER_MAIN). An import passes only when it completes with no WARNING and no
ERROR line. ansible-galaxy and antsibull-changelog are the ones
installed beside the Python that runs this script. Publishing stays a separate step: it needs the
maintainer's Galaxy token.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
IMPORTER_REQUIREMENTS = ROOT / "tools" / "requirements-importer.txt"
IMPORTER_VENV = ROOT / ".venv-importer"
DIST = "dist"
BIN = Path(sys.executable).parent
VERSION_RE = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
# What a release changes; everything else stays as it was committed.
RELEASE_FILES = ("galaxy.yml", "CHANGELOG.md", "changelogs/changelog.yaml")
# The importer's settings: offline, no ansible-test (it needs a container runtime), every check
# that Galaxy runs on an upload otherwise.
IMPORTER_CONFIG = """\
[galaxy-importer]
run_ansible_test = False
run_ansible_doc = True
run_ansible_lint = True
offline_ansible_lint = True
run_flake8 = False
check_changelog = True
log_level_main = INFO
ansible_local_tmp = {tmp}/ansible-local-tmp
tmp_root_dir = {tmp}
"""
IMPORTER_DONE = "Importer processing completed successfully"
# galaxy-importer's command line, with one change: the importer gives its ansible-lint run
# 180 s, a limit sized for Galaxy's servers. On a machine busy with other test runs ansible-lint
# can need longer, and its timeout is an ERROR that says nothing about the artifact, so the run
# gets LINT_SECONDS here. Everything else is the importer's own code.
LINT_SECONDS = 900
IMPORTER_MAIN = f"""\
import subprocess
import sys

from galaxy_importer import main
from galaxy_importer.loaders import collection


class Popen(subprocess.Popen):
    def communicate(self, input=None, timeout=None):
        return super().communicate(input, None if timeout is None else max(timeout, {LINT_SECONDS}))


assert collection.Popen is subprocess.Popen, "galaxy_importer.loaders.collection no longer calls Popen"
collection.Popen = Popen
sys.exit(main.main())
"""
# The importer logs "WARNING: ..." and "ERROR: ..."; ansible-core's own messages read "[WARNING]: ...".
PROBLEM_RE = re.compile(r"^\s*\[?(WARNING|ERROR|CRITICAL)\b")


class ReleaseError(Exception):
    """A refusal or a failed step, with the message the maintainer reads."""


def tool(name: str) -> str:
    """The command installed beside this Python, else the one on PATH."""
    beside = BIN / name
    return str(beside) if beside.exists() else shutil.which(name) or name


def run(command: Sequence[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command; its standard output, or a ReleaseError with what it printed."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        shown = " ".join(str(part) for part in command)
        raise ReleaseError(f"`{shown}` failed (exit {result.returncode}):\n{result.stdout}{result.stderr}".rstrip())
    return result.stdout


def tool_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


# --- galaxy-importer -------------------------------------------------------------------------


def importer_python(venv: Path = IMPORTER_VENV) -> Path:
    """The Python of the importer's virtualenv, made (or remade) when it does not hold the pinned
    requirements. A lock lets parallel test workers share one virtualenv."""
    venv = venv.resolve()
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    wanted = IMPORTER_REQUIREMENTS.read_text()
    venv.mkdir(parents=True, exist_ok=True)
    with open(venv / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and stamp.is_file() and stamp.read_text() == wanted:
            return python
        print(f"Making the galaxy-importer virtualenv {venv} from {IMPORTER_REQUIREMENTS.name}", file=sys.stderr)
        for child in venv.iterdir():
            if child.name != ".lock":
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        run([sys.executable, "-m", "venv", venv], cwd=ROOT)
        pip = [python, "-m", "pip", "--disable-pip-version-check", "--quiet"]
        run([*pip, "install", "--upgrade", "pip"], cwd=ROOT)
        run([*pip, "install", "-r", IMPORTER_REQUIREMENTS], cwd=ROOT)
        stamp.write_text(wanted)
    return python


@dataclass
class ImportReport:
    """What galaxy-importer said about an artifact."""

    returncode: int
    output: str
    result: dict = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return problems(self.output)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and IMPORTER_DONE in self.output and not self.problems

    def summary(self) -> str:
        if self.ok:
            return "galaxy-importer: the import succeeded with no warning and no error"
        reasons = self.problems or [f"exit {self.returncode}, no {IMPORTER_DONE!r}"]
        return "galaxy-importer refused the artifact or warned about it:\n  " + "\n  ".join(reasons)


def problems(output: str) -> list[str]:
    """The WARNING and ERROR lines of an importer run."""
    return [line.strip() for line in output.splitlines() if PROBLEM_RE.match(line)]


def run_importer(tarball: Path, venv: Path = IMPORTER_VENV) -> ImportReport:
    """Import the artifact as Galaxy would, offline, in a scratch directory."""
    python = importer_python(venv)
    with tempfile.TemporaryDirectory(prefix="galaxy-importer-") as scratch:
        work = Path(scratch)
        (work / "home").mkdir()
        config = work / "galaxy-importer.cfg"
        config.write_text(IMPORTER_CONFIG.format(tmp=work))
        # Nothing of the caller's Ansible or importer settings: only what the config file says.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ANSIBLE_", "GALAXY_IMPORTER_", "PYTHON")) and key != "VIRTUAL_ENV"
        }
        env.update(
            GALAXY_IMPORTER_CONFIG=str(config),
            HOME=str(work / "home"),
            PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}",
            ANSIBLE_NOCOLOR="1",
        )
        result = subprocess.run(
            [str(python), "-c", IMPORTER_MAIN, str(Path(tarball).resolve())],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=LINT_SECONDS + 600,
            check=False,
        )
        data_file = work / "importer_result.json"
        data = json.loads(data_file.read_text()) if data_file.is_file() else {}
    return ImportReport(result.returncode, result.stdout, data)


# --- the artifact ----------------------------------------------------------------------------


def galaxy(root: Path) -> dict:
    return yaml.safe_load((root / "galaxy.yml").read_text())


def build(root: Path, output: Path) -> Path:
    """``ansible-galaxy collection build`` of the tree at root, into output."""
    meta = galaxy(root)
    output.mkdir(parents=True, exist_ok=True)
    tarball = output / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"
    run([tool("ansible-galaxy"), "collection", "build", root, "--output-path", output, "--force"], cwd=root)
    if not tarball.is_file():
        raise ReleaseError(f"ansible-galaxy did not write {tarball}")
    return tarball


def check(tarball: Path | None, root: Path, venv: Path) -> ImportReport:
    if tarball is None:
        tarball = build(root, root / DIST)
    print(f"Importing {tarball} with galaxy-importer, offline, without ansible-test")
    report = run_importer(tarball, venv)
    print(report.output.rstrip())
    return report


# --- the release -----------------------------------------------------------------------------


def version_key(version: str) -> tuple[int, int, int]:
    match = VERSION_RE.match(version)
    if not match:
        raise ReleaseError(f"version {version!r} is not of the form x.y.z (three numbers, e.g. 1.2.0)")
    return tuple(int(part) for part in match.groups())


def git(root: Path, *args: str) -> str:
    return run(["git", *args], cwd=root)


def pending_fragments(root: Path) -> list[str]:
    """The fragments that no release of changelogs/changelog.yaml lists yet (fragments are kept)."""
    changes = yaml.safe_load((root / "changelogs" / "changelog.yaml").read_text()) or {}
    recorded = {name for release in (changes.get("releases") or {}).values() for name in release.get("fragments", [])}
    fragments = root / "changelogs" / "fragments"
    return sorted(p.name for p in fragments.iterdir() if p.suffix in (".yml", ".yaml") and p.name not in recorded)


def released_versions(root: Path) -> list[str]:
    changes = yaml.safe_load((root / "changelogs" / "changelog.yaml").read_text()) or {}
    return [str(version) for version in changes.get("releases") or {}]


def refuse_unless_releasable(root: Path, version: str) -> list[str]:
    """Every refusal, before anything is changed; the fragments to release."""
    if not version:
        raise ReleaseError("VERSION is missing: run `make release VERSION=x.y.z` with the version to release")
    wanted = version_key(version)
    status = git(root, "status", "--porcelain", "--untracked-files=all")
    if status.strip():
        raise ReleaseError(
            "the tree is not clean: commit or stash these changes first, so that the release commit "
            f"holds only the release:\n{status.rstrip()}"
        )
    current = str(galaxy(root)["version"])
    if wanted <= version_key(current):
        raise ReleaseError(f"VERSION {version} is not above the current version {current} (galaxy.yml)")
    newer = [v for v in released_versions(root) if version_key(v) >= wanted]
    if newer:
        raise ReleaseError(f"VERSION {version} is not above the releases in changelogs/changelog.yaml: {newer}")
    if git(root, "tag", "--list", version).strip():
        raise ReleaseError(f"the tag {version} exists already")
    pending = pending_fragments(root)
    if not pending:
        raise ReleaseError(
            "there is no changelog fragment to release: every fragment in changelogs/fragments/ belongs to an "
            "earlier version in changelogs/changelog.yaml. Add one for the changes of this release first."
        )
    return pending


def set_version(root: Path, version: str) -> None:
    """Set the version in galaxy.yml, keeping the rest of the file (comments, order) as it is."""
    path = root / "galaxy.yml"
    text, count = re.subn(r"(?m)^version:[ \t]*\S+[ \t]*$", f"version: {version}", path.read_text())
    if count != 1:
        raise ReleaseError(f"galaxy.yml has {count} top-level version lines, not one")
    path.write_text(text)
    if str(galaxy(root)["version"]) != version:
        raise ReleaseError(f"galaxy.yml does not read as version {version} after the change")


def release_changelog(root: Path, version: str) -> None:
    """``antsibull-changelog release`` for the version, with the collection on a collections path."""
    meta = galaxy(root)
    with tempfile.TemporaryDirectory(prefix="release-collections-") as collections:
        link = Path(collections) / "ansible_collections" / meta["namespace"] / meta["name"]
        link.parent.mkdir(parents=True)
        link.symlink_to(root.resolve(), target_is_directory=True)
        env = tool_env(ANSIBLE_COLLECTIONS_PATH=collections)
        run([tool("antsibull-changelog"), "lint"], cwd=root, env=env)
        run([tool("antsibull-changelog"), "release", "--version", version], cwd=root, env=env)
        # A new release leaves out the fragments' trivial entries; `make changelog` (which the
        # changelog test repeats) records them. Record them now, so the two agree.
        refresh = ["--update-existing", "--refresh-fragments", "without-archives"]
        run([tool("antsibull-changelog"), "release", "--version", version, *refresh], cwd=root, env=env)


def release(root: Path, version: str, venv: Path = IMPORTER_VENV) -> Path:
    """Cut the release; the artifact. On a failure before the commit the tree is put back."""
    root = root.resolve()
    version = version.strip()
    pending = refuse_unless_releasable(root, version)
    print(f"Releasing {version} with the fragments {', '.join(pending)}")
    tarball: Path | None = None
    try:
        set_version(root, version)
        release_changelog(root, version)
        tarball = build(root, root / DIST)
        print(f"Built {tarball.relative_to(root)}; importing it with galaxy-importer")
        report = run_importer(tarball, venv)
        if not report.ok:
            raise ReleaseError(f"{report.summary()}\n\n{report.output.rstrip()}")
        print(report.summary())
        git(root, "add", "--", *RELEASE_FILES)
        git(root, "commit", "--quiet", "-m", f"Release {version}: version in galaxy.yml and its changelog section")
    except BaseException:
        git(root, "checkout", "HEAD", "--", *RELEASE_FILES)
        if tarball is not None:
            tarball.unlink(missing_ok=True)
        print("The release was not made: galaxy.yml and the changelog are back as they were.", file=sys.stderr)
        raise
    git(root, "tag", "--annotate", version, "-m", f"{galaxy(root)['namespace']}.{galaxy(root)['name']} {version}")
    leftover = git(root, "status", "--porcelain", "--untracked-files=all")
    if leftover.strip():
        raise ReleaseError(f"the release {version} is committed and tagged, but the tree is not clean:\n{leftover}")
    print(
        f"Released {version}: commit {git(root, 'rev-parse', '--short', 'HEAD').strip()}, tag {version}, "
        f"artifact {tarball.relative_to(root)}.\n"
        "To publish (needs your Galaxy API token):\n"
        f"  git push --follow-tags\n"
        f"  ansible-galaxy collection publish {tarball.relative_to(root)} --token <your token>"
    )
    return tarball


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the collection's tree (default: this checkout)")
    parser.add_argument(
        "--importer-venv", type=Path, default=IMPORTER_VENV, help="galaxy-importer's virtualenv (made when needed)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup-importer", help="make galaxy-importer's virtualenv")
    check_parser = commands.add_parser("check", help="run galaxy-importer on an artifact (default: build one)")
    check_parser.add_argument("tarball", nargs="?", type=Path)
    release_parser = commands.add_parser("release", help="cut a release")
    release_parser.add_argument("version", nargs="?", default="")
    args = parser.parse_args(argv)

    try:
        if args.command == "setup-importer":
            print(importer_python(args.importer_venv))
        elif args.command == "check":
            report = check(args.tarball, args.root.resolve(), args.importer_venv)
            print(report.summary())
            return 0 if report.ok else 1
        else:
            release(args.root, args.version, args.importer_venv)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
