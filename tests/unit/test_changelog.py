"""CHANGELOG.md, which the artifact ships, is the one antsibull-changelog generates from the
fragments for the version in galaxy.yml (``make changelog``), and the fragments are kept. Once
that version is released (tagged), new fragments wait for the next ``make release``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHANGELOG_TOOL = BIN / "antsibull-changelog"
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
VERSION = str(GALAXY["version"])
FRAGMENTS = sorted(p.name for p in (REPO / "changelogs" / "fragments").glob("*.y*ml"))


def changes() -> dict:
    return yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())


def pending_fragments() -> list[str]:
    """The fragments that no release lists yet."""
    recorded = {name for release in changes()["releases"].values() for name in release.get("fragments", [])}
    return sorted(set(FRAGMENTS) - recorded)


def released(version: str) -> bool:
    """Whether the version is tagged: tools/release.py tags every release."""
    command = ["git", "rev-parse", "--quiet", "--verify", f"refs/tags/{version}"]
    return subprocess.run(command, cwd=REPO, capture_output=True, check=False, timeout=60).returncode == 0


def test_fragments_are_kept_after_a_release():
    config = yaml.safe_load((REPO / "changelogs" / "config.yaml").read_text())
    assert config["keep_fragments"] is True
    assert any(output["file"] == "CHANGELOG.md" for output in config["output"])


def test_the_version_of_galaxy_yml_is_in_the_changelog():
    release = changes()["releases"].get(VERSION)
    assert release, f"changelogs/changelog.yaml has no release {VERSION}: run `make changelog`"


def test_every_fragment_belongs_to_a_release_or_waits_for_the_next():
    missing = pending_fragments()
    assert not missing or released(VERSION), f"fragments not in CHANGELOG.md yet: {missing}; run `make changelog`"


def test_changelog_md_is_generated_from_the_fragments(tmp_path):
    copy = tmp_path / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    copy.mkdir(parents=True)
    shutil.copy2(REPO / "galaxy.yml", copy)
    shutil.copy2(REPO / "CHANGELOG.md", copy)
    shutil.copytree(REPO / "changelogs", copy / "changelogs")
    (copy / "changelogs" / ".plugin-cache.yaml").unlink(missing_ok=True)
    # Fragments that wait for the next release are not part of the released CHANGELOG.md.
    pending = pending_fragments()
    for name in pending:
        (copy / "changelogs" / "fragments" / name).unlink()
    date = changes()["releases"][VERSION]["release_date"]
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(tmp_path),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    command = [
        str(CHANGELOG_TOOL),
        "release",
        "--version",
        VERSION,
        "--date",
        str(date),
        "--update-existing",
        "--refresh-fragments",
        "without-archives",
    ]
    result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr

    for name in ("CHANGELOG.md", "changelogs/changelog.yaml"):
        assert (copy / name).read_text() == (REPO / name).read_text(), f"{name} is stale: run `make changelog`"
    assert sorted(p.name for p in (copy / "changelogs" / "fragments").iterdir()) == sorted(
        set(FRAGMENTS) - set(pending)
    )
