"""``make release VERSION=x.y.z`` (tools/release.py), run on a throwaway clone of this checkout:
the version, the changelog section, the artifact checked by Galaxy's importer, the commit and the
tag; and each refusal, which changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "release.py"
BIN = Path(sys.executable).parent
IMPORTER_VENV = REPO / ".venv-importer"
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
CURRENT = str(GALAXY["version"])
MAJOR, MINOR = CURRENT.split(".")[:2]
NEXT = f"{MAJOR}.{int(MINOR) + 1}.0"
TARBALL = f"dist/{GALAXY['namespace']}-{GALAXY['name']}-{NEXT}.tar.gz"
FRAGMENT = "99-release-test.yml"
CHANGE = "async_job_save - a change made for the release test."
TRIVIAL = "Tests - a trivial change, recorded in changelog.yaml and left out of CHANGELOG.md."


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, f"git {args}: {result.stderr}"
    return result.stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A git clone of this checkout, holding its working tree as it is now (committed or not)."""
    path = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", "--no-hardlinks", str(REPO), str(path))
    git(path, "config", "user.name", "Release Test")
    git(path, "config", "user.email", "release-test@example.invalid")
    git(path, "config", "commit.gpgsign", "false")
    git(path, "config", "tag.gpgsign", "false")
    # The files git knows in the checkout (tracked and new, not ignored), as they are on disk.
    for child in path.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    listed = git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() or source.is_symlink():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name, follow_symlinks=False)
    git(path, "add", "--all")
    if git(path, "status", "--porcelain"):
        git(path, "commit", "--quiet", "-m", "The checkout's working tree")
    return path


def add_fragment(clone: Path, commit: bool = True) -> None:
    (clone / "changelogs" / "fragments" / FRAGMENT).write_text(
        yaml.safe_dump({"minor_changes": [CHANGE], "trivial": [TRIVIAL]})
    )
    if commit:
        git(clone, "add", "changelogs/fragments")
        git(clone, "commit", "--quiet", "-m", "A change to release")


def release(clone: Path, *version: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, SCRIPT, "--root", clone, "--importer-venv", IMPORTER_VENV, "release", *version]
    return subprocess.run(
        [str(part) for part in command],
        cwd=clone,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def changelog_tool(clone: Path, *args: str) -> None:
    """antsibull-changelog in the clone, with the clone on a collections path."""
    collections = clone.parent / "collections"
    link = collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(clone, target_is_directory=True)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    command = [str(BIN / "antsibull-changelog"), *args]
    result = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr


def state(clone: Path) -> dict[str, str]:
    """What a refused release must leave as it was."""
    return {
        "head": git(clone, "rev-parse", "HEAD"),
        "tags": git(clone, "tag", "--list"),
        "status": git(clone, "status", "--porcelain", "--untracked-files=all"),
        "galaxy.yml": (clone / "galaxy.yml").read_text(),
        "changelog.yaml": (clone / "changelogs" / "changelog.yaml").read_text(),
    }


def test_the_release_sets_the_version_releases_the_changelog_builds_commits_and_tags(clone):
    add_fragment(clone)
    before = git(clone, "rev-parse", "HEAD").strip()

    result = release(clone, NEXT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "galaxy-importer: the import succeeded with no warning and no error" in result.stdout
    assert f"ansible-galaxy collection publish {TARBALL}" in result.stdout
    galaxy = yaml.safe_load((clone / "galaxy.yml").read_text())
    assert str(galaxy["version"]) == NEXT

    changes = yaml.safe_load((clone / "changelogs" / "changelog.yaml").read_text())["releases"]
    assert changes[NEXT]["fragments"] == [FRAGMENT]
    assert changes[NEXT]["changes"] == {"minor_changes": [CHANGE], "trivial": [TRIVIAL]}
    assert changes[CURRENT] == yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())["releases"][CURRENT]
    changelog_md = (clone / "CHANGELOG.md").read_text()
    assert "## v" + NEXT.replace(".", "\\.") in changelog_md
    assert changelog_md.index(f'<a id="v{NEXT.replace(".", "-")}"></a>') < changelog_md.index(
        f'<a id="v{CURRENT.replace(".", "-")}"></a>'
    )
    assert "a change made for the release test" in changelog_md
    assert "a trivial change" not in changelog_md
    assert (clone / "changelogs" / "fragments" / FRAGMENT).is_file()

    with tarfile.open(clone / TARBALL) as archive:
        names = {m.name.removeprefix("./") for m in archive.getmembers()}
        manifest = json.load(archive.extractfile("MANIFEST.json"))["collection_info"]
    assert manifest["version"] == NEXT
    assert not {name for name in names if name.split("/")[0] in ("dist", "tools", ".venv-importer")}
    assert "roles/async_job_common/README.md" in names

    assert git(clone, "rev-parse", "HEAD^").strip() == before
    assert sorted(git(clone, "show", "--name-only", "--format=", "HEAD").split()) == [
        "CHANGELOG.md",
        "changelogs/changelog.yaml",
        "galaxy.yml",
    ]
    assert git(clone, "describe", "--exact-match", "HEAD").strip() == NEXT
    assert git(clone, "cat-file", "-t", NEXT).strip() == "tag"
    assert git(clone, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(clone, "check-ignore", "dist").strip() == "dist"

    # What the changelog test regenerates from the fragments is what the release committed.
    regenerate = [
        *("release", "--version", NEXT, "--date", str(changes[NEXT]["release_date"])),
        *("--update-existing", "--refresh-fragments", "without-archives"),
    ]
    changelog_tool(clone, *regenerate)
    assert git(clone, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("case", "version", "message"),
    [
        ("no version", [], "VERSION is missing: run `make release VERSION=x.y.z`"),
        ("the current version", [CURRENT], f"VERSION {CURRENT} is not above the current version {CURRENT}"),
        ("an older version", ["0.9.0"], f"VERSION 0.9.0 is not above the current version {CURRENT}"),
        ("not x.y.z", ["1.2"], "version '1.2' is not of the form x.y.z"),
        ("no fragment", [NEXT], "there is no changelog fragment to release"),
        ("a fragment not committed", [NEXT], "the tree is not clean: commit or stash these changes first"),
        ("the tag exists", [NEXT], f"the tag {NEXT} exists already"),
    ],
)
def test_the_release_refuses_and_changes_nothing(clone, case, version, message):
    if case == "a fragment not committed":
        add_fragment(clone, commit=False)
    elif case != "no fragment":
        add_fragment(clone)
    if case == "the tag exists":
        git(clone, "tag", NEXT)
    before = state(clone)

    result = release(clone, *version)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"release: {message}" in result.stderr
    if case == "a fragment not committed":
        assert f"changelogs/fragments/{FRAGMENT}" in result.stderr
    assert state(clone) == before
    assert git(clone, "status", "--porcelain", "--ignored") == git(clone, "status", "--porcelain")
    assert not (clone / "dist").exists()


def test_a_release_whose_artifact_the_importer_refuses_is_put_back(clone):
    add_fragment(clone)
    git(clone, "rm", "--quiet", "roles/async_job_common/README.md")
    git(clone, "commit", "--quiet", "-m", "Lose the internal role's README")
    before = state(clone)

    result = release(clone, NEXT)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "release: galaxy-importer refused the artifact or warned about it" in result.stderr
    assert "ERROR: The import failed for the following reason: No role readme found." in result.stderr
    assert "galaxy.yml and the changelog are back as they were" in result.stderr
    assert state(clone) == before
    assert not (clone / TARBALL).exists()
