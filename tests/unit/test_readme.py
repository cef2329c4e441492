"""The README's installation section: the commands and requirements.yml entries users type, and a
table of the supported ansible-core series and controller Python versions that matches the test
matrix (tox.ini) and requires_ansible (meta/runtime.yml)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
NAME = f"{GALAXY['namespace']}.{GALAXY['name']}"


def section(text: str, heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#{{1,{len(level)}}} |\Z)", text, re.M | re.S)
    assert match, f"README.md has no section {heading!r}"
    return match.group(1)


INSTALLATION = section(README, "## Installation")


def yaml_blocks(text: str) -> list:
    return [yaml.safe_load(block) for block in re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)]


def readme_matrix() -> list[tuple[str, str, str]]:
    """(ansible-core series, controller Python, tox environment) per row of the README table."""
    rows = []
    for line in section(INSTALLATION, "### Supported versions").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"\d+\.\d+", cells[0]):
            rows.append((cells[0], cells[1], re.match(r"`([^`]+)`", cells[2]).group(1)))
    return rows


def factor_values(value: str) -> dict[str, str]:
    """``core{216,217}: python3.11`` lines of a tox setting, per environment."""
    values = {}
    for line in filter(None, (line.strip() for line in value.splitlines())):
        factors, setting = (part.strip() for part in line.split(":", 1))
        names = re.fullmatch(r"(\w+?)(?:\{([\w,]+)\})?", factors)
        suffixes = names.group(2).split(",") if names.group(2) else [""]
        for suffix in suffixes:
            values[names.group(1) + suffix] = setting
    return values


def tox_matrix() -> list[tuple[str, str, str]]:
    """(series, Python, environment) of every ansible-core environment of tox.ini."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(REPO / "tox.ini")
    [name] = [name for name in tox.sections() if name.startswith("testenv:core{")]
    environments = ["core" + suffix for suffix in re.search(r"\{([\d,]+)\}", name).group(1).split(",")]
    pythons = factor_values(tox[name]["base_python"])
    series = {env: value.split("=")[1].strip() for env, value in factor_values(tox[name]["setenv"]).items()}
    return [(series[env], pythons[env].removeprefix("python"), env) for env in environments]


def test_the_installation_section_shows_the_install_command():
    assert f"ansible-galaxy collection install {NAME}\n" in INSTALLATION


def test_the_installation_section_shows_requirements_yml_from_galaxy_and_from_git():
    entries = [entry for block in yaml_blocks(INSTALLATION) for entry in block["collections"]]
    from_galaxy = [e for e in entries if e["name"] == NAME and "type" not in e]
    from_git = [e for e in entries if e.get("type") == "git"]
    assert from_galaxy, entries
    assert [e["name"] for e in from_git] == [f"{GALAXY['repository']}.git"]
    assert all(e.get("version") for e in from_galaxy + from_git)


def test_the_readme_table_is_the_tox_matrix():
    assert readme_matrix() == tox_matrix()


def test_the_readme_table_starts_at_requires_ansible_and_has_no_gap():
    requires = SpecifierSet(yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"])
    series = [tuple(int(part) for part in row[0].split(".")) for row in readme_matrix()]
    assert series, "the README has no table of supported versions"
    assert all(f"{major}.{minor}.0" in requires for major, minor in series)
    # The oldest series is the oldest that requires_ansible accepts.
    oldest_major, oldest_minor = series[0]
    assert f"{oldest_major}.{oldest_minor - 1}.99" not in requires
    assert series == [(oldest_major, oldest_minor + i) for i in range(len(series))]


@pytest.mark.parametrize("text", ["## Requirements", "## Installation"])
def test_the_readme_states_the_oldest_supported_series(text):
    oldest = readme_matrix()[0][0]
    assert f"ansible-core {oldest} or newer" in section(README, text)
