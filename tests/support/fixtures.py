"""Pytest fixtures: a local Object Storage server and the real ``oci`` CLI aimed at it.

Register them with ``pytest_plugins = ["tests.support.fixtures"]`` or
``from tests.support.fixtures import *`` (``oci_server`` and ``oci_client``
need ``oci_config`` as well).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.oci_env import OCIConfig, cli_environment, create_config
from tests.support.oci_server import OCIServer

__all__ = ["OCIClient", "oci_client", "oci_config", "oci_server"]

NAMESPACE = "testns"
BUCKET = "ansible-state"


def find_oci_cli() -> Path | None:
    """The ``oci`` next to this Python interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "oci"
    if beside.exists():
        return beside
    found = shutil.which("oci")
    return Path(found) if found else None


@dataclass(frozen=True)
class OCIClient:
    """How to run the real ``oci`` CLI against the test server."""

    executable: Path
    config_file: Path
    profile: str
    env: dict[str, str]
    endpoint: str
    namespace: str
    bucket: str

    def run(
        self,
        *args: str,
        stdin_data: str | bytes | None = None,
        text: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``oci ARGS`` with this config, profile and endpoint.

        stdin is empty unless ``stdin_data`` is given; with ``text=False``
        stdout and stderr are bytes.
        """
        command = [
            str(self.executable),
            "--config-file",
            str(self.config_file),
            "--profile",
            self.profile,
            "--endpoint",
            self.endpoint,
            *args,
        ]
        return subprocess.run(
            command,
            input=stdin_data,
            stdin=subprocess.DEVNULL if stdin_data is None else None,
            capture_output=True,
            text=text,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def os_object(self, command: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run ``oci os object COMMAND`` in this namespace and bucket."""
        return self.run(
            "os",
            "object",
            command,
            "-ns",
            self.namespace,
            "-bn",
            self.bucket,
            *args,
            **kwargs,
        )


@pytest.fixture(scope="session")
def oci_config(tmp_path_factory: pytest.TempPathFactory) -> OCIConfig:
    """An OCI config file with profiles DEFAULT and OTHER, each with its own key.

    Only DEFAULT's key is registered in ``oci_server``.
    """
    return create_config(tmp_path_factory.mktemp("oci"), ("DEFAULT", "OTHER"))


@pytest.fixture
def oci_server(oci_config: OCIConfig) -> Iterator[OCIServer]:
    """A started server: namespace ``testns``, bucket ``ansible-state``."""
    default = oci_config.profiles["DEFAULT"]
    with OCIServer(
        namespace=NAMESPACE,
        buckets=[BUCKET],
        keys={default.key_id: default.public_pem},
    ) as server:
        yield server


@pytest.fixture
def oci_client(oci_server: OCIServer, oci_config: OCIConfig, tmp_path: Path) -> OCIClient:
    """The real ``oci`` CLI set up for ``oci_server`` with profile DEFAULT."""
    executable = find_oci_cli()
    if executable is None:
        pytest.skip("the oci CLI is not installed")
    return OCIClient(
        executable=executable,
        config_file=oci_config.path,
        profile="DEFAULT",
        env=cli_environment(tmp_path / "oci-home"),
        endpoint=oci_server.endpoint,
        namespace=NAMESPACE,
        bucket=BUCKET,
    )
