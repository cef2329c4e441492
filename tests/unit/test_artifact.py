"""The artifact users install: ``ansible-galaxy collection build`` packs what the collection ships
and nothing of the development tree, and the installed copy runs save then load for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.support.playbook import PlaybookRunner, export_task, play, role_task

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
NAME = f"{GALAXY['namespace']}.{GALAXY['name']}"
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"

REQUIRED = [
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "changelogs/changelog.yaml",
    "changelogs/config.yaml",
    "meta/runtime.yml",
    "meta/execution-environment.yml",
    "meta/ee-requirements.txt",
    "docs/docsite/links.yml",
    "docs/ee/execution-environment.yml",
    "playbooks/building_blocks.yml",
    "playbooks/idempotent_job.yml",
    "playbooks/inventory.ini",
]
# Top-level entries of the development tree that must never ship.
FORBIDDEN_TOP = {
    ".ansible",
    ".ansible-lint",
    ".ansible-lint-ignore",
    ".cache",
    ".ci",
    ".git",
    ".gitignore",
    ".github",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".venv",
    ".venv-importer",
    ".yamllint",
    "Makefile",
    "bench",
    "collections",
    "dist",
    "pyproject.toml",
    "requirements-test.txt",
    "requirements.txt",
    "tests",
    "tools",
    "tox.ini",
}
# Anywhere in the tree.
FORBIDDEN_PARTS = {"__pycache__", ".ansible_async_state", ".pytest_cache", ".ruff_cache", "doc-gen"}
FORBIDDEN_SUFFIXES = (".pyc", ".tar.gz", ".retry", ".plugin-cache.yaml")


def tool_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def run(*command: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=tool_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def shipped_role_files() -> list[str]:
    return sorted(
        p.relative_to(REPO).as_posix()
        for p in (REPO / "roles").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection built from this checkout, as users build it."""
    out = tmp_path_factory.mktemp("build")
    run(BIN / "ansible-galaxy", "collection", "build", REPO, "--output-path", out, cwd=out)
    built = list(out.glob("*.tar.gz"))
    assert [p.name for p in built] == [TARBALL]
    return built[0]


@pytest.fixture(scope="module")
def members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as archive:
        return {m.name.removeprefix("./").rstrip("/"): m for m in archive.getmembers()}


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty collections path with the tarball installed into it, and nothing else."""
    root = tmp_path_factory.mktemp("installed")
    collections = root / "collections"
    collections.mkdir()
    # The install target is the only configured path: ansible-galaxy skips a collection it
    # already finds on a configured path (a pytest plugin may add the checkout to it).
    run(
        BIN / "ansible-galaxy",
        "collection",
        "install",
        "--offline",
        "-p",
        collections,
        tarball,
        cwd=root,
        ANSIBLE_COLLECTIONS_PATH=str(collections),
    )
    return collections


def test_the_artifact_holds_what_the_collection_ships(members):
    missing = [name for name in REQUIRED + shipped_role_files() if name not in members]
    assert not missing, f"missing from the artifact: {missing}"


def test_the_artifact_holds_nothing_of_the_development_tree(members):
    forbidden = [
        name
        for name in members
        if name.split("/")[0] in FORBIDDEN_TOP
        or FORBIDDEN_PARTS & set(name.split("/"))
        or name.endswith(FORBIDDEN_SUFFIXES)
    ]
    assert not forbidden, f"the artifact ships development files: {forbidden}"


def test_the_artifact_has_no_symlinks_out_of_it(members):
    links = [name for name, member in members.items() if member.issym() or member.islnk()]
    assert not links


def test_the_manifest_carries_galaxy_yml(members, tarball):
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile(members["MANIFEST.json"]))["collection_info"]
    for key in ("namespace", "name", "version", "repository", "documentation", "issues", "license"):
        assert manifest[key] == GALAXY[key], key
    assert manifest["tags"] == GALAXY["tags"]


def test_the_artifact_carries_the_mit_license_of_galaxy_yml(members, tarball):
    with tarfile.open(tarball) as archive:
        shipped = archive.extractfile(members["LICENSE"]).read()
    assert shipped == (REPO / "LICENSE").read_bytes()
    assert shipped.decode().splitlines()[:3] == ["MIT License", "", "Copyright (c) 2026 rstyczynski"]
    assert GALAXY["license"] == ["MIT"]


def test_the_installed_copy_is_the_one_ansible_finds(installed, tmp_path):
    listing = run(
        BIN / "ansible-galaxy",
        "collection",
        "list",
        NAME,
        cwd=tmp_path,
        ANSIBLE_COLLECTIONS_PATH=str(installed),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
    ).stdout
    assert str(installed) in listing
    assert str(GALAXY["version"]) in listing
    assert (installed / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"] / "MANIFEST.json").is_file()


def test_the_installed_copy_saves_and_loads_a_job_id(installed, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    runner = PlaybookRunner(workdir, installed)
    runner.env.update(ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", TMPDIR=str(tmp_path))
    state_dir = tmp_path / "state"
    job_id = "j123456789.4242"

    result = runner.ok(
        [
            play(
                [
                    role_task(
                        "async_job_save",
                        job_name="artifact check",
                        ansible_job_id=job_id,
                        host="{{ inventory_hostname }}",
                        state_dir=str(state_dir),
                    ),
                    role_task("async_job_load", job_name="artifact check", state_dir=str(state_dir)),
                    export_task(
                        "loaded",
                        {"found": "async_job_load_found", "ansible_job_id": "async_job_load_ansible_job_id"},
                    ),
                ],
                name="Artifact check",
                hosts="localhost",
            )
        ]
    )

    loaded = result.value("loaded")
    assert loaded == {"found": True, "ansible_job_id": job_id}, result.output
    record = json.loads((state_dir / "localhost" / "Artifact check" / "artifact check.json").read_text())
    assert record["ansible_job_id"] == job_id
