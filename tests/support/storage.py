"""Where a backend keeps records, seen from the tests.

Each class gives the role variables that point a role at the storage, and direct access to
the stored bytes so tests can check what was written and plant damaged records.
"""

from __future__ import annotations

import json
from pathlib import Path

# Stored bytes that are not a usable record, and what the failure says about them.
DAMAGED_RECORDS = [
    (b"{not json", "is not valid JSON"),
    (b"", "is not valid JSON"),
    (b'{"job_name": "deploy", "host": "localhost"}', "holds no ansible_job_id"),
    (b'["j1.1"]', "is not a JSON object"),
]


def damaged_record(state_file: str, content: bytes) -> tuple[str | None, ...]:
    """What a role's failure says first about the damaged record content stored at state_file,
    as parts for tests.support.playbook.matches(): the JSON parser's own words vary."""
    try:
        stored = json.loads(content)
    except ValueError:
        return (
            f"The job record {state_file} exists but is not valid JSON (",
            None,
            "). Inspect or remove it; it was left untouched.",
        )
    # The shared record rule of async_job_common.
    if isinstance(stored, dict):
        problem = f"The job record {state_file} holds no ansible_job_id (keys found: {json.dumps(list(stored))})."
    else:
        problem = f"The job record {state_file} is not a JSON object but {json.dumps(stored)}."
    return (problem + " Inspect or remove the record; it was left untouched.",)


class FilesystemStorage:
    """Records in a state directory on the controller."""

    backend = "filesystem"

    def __init__(self, root: Path):
        self.root = root

    def role_vars(self, role: str) -> dict[str, str]:
        return {f"{role}_backend": self.backend, f"{role}_state_dir": str(self.root)}

    def key(self, host: str, playbook: str, job: str) -> str:
        return f"{host}/{playbook}/{job}.json"

    def state_file(self, host: str, playbook: str, job: str) -> str:
        return str(self.root / self.key(host, playbook, job))

    def read(self, host: str, playbook: str, job: str) -> bytes | None:
        path = self.root / self.key(host, playbook, job)
        return path.read_bytes() if path.is_file() else None

    def write(self, host: str, playbook: str, job: str, data: bytes) -> None:
        path = self.root / self.key(host, playbook, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def names(self) -> list[str]:
        """Every file stored, temporary files included, relative to the storage root."""
        if not self.root.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if not p.is_dir())


class OCIStorage:
    """Records in a bucket of the local Object Storage server, reached through the real oci CLI."""

    backend = "oci"

    def __init__(self, server, config_file: Path, bucket: str, prefix: str = ""):
        self.server = server
        self.config_file = config_file
        self.bucket = bucket
        self.prefix = prefix

    def role_vars(self, role: str) -> dict[str, object]:
        inputs = {
            f"{role}_backend": self.backend,
            f"{role}_oci_bucket": self.bucket,
            f"{role}_oci_namespace": self.server.namespace,
            f"{role}_oci_config_file": str(self.config_file),
            f"{role}_oci_endpoint": self.server.endpoint,
        }
        if self.prefix:
            inputs[f"{role}_oci_prefix"] = self.prefix
        return inputs

    def key(self, host: str, playbook: str, job: str) -> str:
        return f"{self.prefix}{host}/{playbook}/{job}.json"

    def state_file(self, host: str, playbook: str, job: str) -> str:
        return f"oci://{self.bucket}/{self.key(host, playbook, job)}"

    def read(self, host: str, playbook: str, job: str) -> bytes | None:
        return self.server.get_object(self.bucket, self.key(host, playbook, job))

    def write(self, host: str, playbook: str, job: str, data: bytes) -> None:
        self.server.put_object(self.bucket, self.key(host, playbook, job), data)

    def names(self) -> list[str]:
        return sorted(self.server.list_objects(self.bucket))
