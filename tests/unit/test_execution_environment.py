"""The execution environment files: what ansible-builder reads from the collection
(meta/execution-environment.yml) and the example definition that builds an image for AWX / AAP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
META = REPO / "meta" / "execution-environment.yml"
EXAMPLE = REPO / "docs" / "ee" / "execution-environment.yml"
BUILDER = BIN / "ansible-builder"


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def run(*command: str | Path, cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_collection_declares_its_python_requirements_for_ansible_builder():
    definition = yaml.safe_load(META.read_text())
    assert definition["version"] == 3
    python = definition["dependencies"]["python"]
    # ansible-builder reads a collection's requirement files relative to the collection root.
    assert isinstance(python, str)
    assert not Path(python).is_absolute()
    requirements = REPO / python
    assert requirements.is_file(), python
    assert "oci-cli" in requirement_names(requirements)


def test_the_example_definition_installs_this_collection():
    definition = yaml.safe_load(EXAMPLE.read_text())
    assert definition["version"] == 3
    dependencies = definition["dependencies"]
    assert {"ansible_core", "ansible_runner", "galaxy"} <= set(dependencies)
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    names = [c["name"] for c in dependencies["galaxy"]["collections"]]
    assert any(galaxy["repository"] in name for name in names), names


def test_ansible_builder_finds_the_oci_cli_in_the_installed_collection(tmp_path):
    namespace = tmp_path / "ansible_collections" / "rstyczynski"
    namespace.mkdir(parents=True)
    (namespace / "ansible").symlink_to(REPO, target_is_directory=True)
    output = run(BUILDER, "introspect", tmp_path, cwd=tmp_path)
    python = yaml.safe_load(output.split("---", 1)[1])["python"]
    assert any(line.startswith("oci-cli") and "rstyczynski.ansible" in line for line in python), output


def test_ansible_builder_accepts_the_example_definition(tmp_path):
    context = tmp_path / "context"
    run(BUILDER, "create", "-f", EXAMPLE, "--context", context, cwd=tmp_path)
    # Containerfile for podman, Dockerfile when docker is the runtime found.
    containerfile = next(p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()).read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert (context / "_build" / "requirements.yml").is_file()
