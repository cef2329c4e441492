"""Throwaway OCI CLI set-ups for tests: API keys, a config file, the environment."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TENANCY = "ocid1.tenancy.oc1..aaaaaaaatesttenancy"


@dataclass(frozen=True)
class OCIProfile:
    """One config-file profile and the API key it signs with."""

    name: str
    user: str
    fingerprint: str
    key_file: Path
    public_pem: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    tenancy: str = TENANCY

    @property
    def key_id(self) -> str:
        """The keyId the CLI signs with, to register in the server."""
        return f"{self.tenancy}/{self.user}/{self.fingerprint}"


@dataclass(frozen=True)
class OCIConfig:
    """An OCI config file and its profiles by name."""

    path: Path
    profiles: dict[str, OCIProfile]


def fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """MD5 of the DER SubjectPublicKeyInfo as lower-case colon-separated hex."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.md5(der).digest().hex(":")


def create_config(
    directory: Path,
    profiles: Iterable[str] = ("DEFAULT",),
    region: str = "us-ashburn-1",
) -> OCIConfig:
    """Write a config file with one new RSA 2048 key per profile into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    created = {}
    sections = []
    for name in profiles:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file = directory / f"{name.lower()}_api_key.pem"
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(key_file, pem.decode() + "OCI_API_KEY\n")
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        profile = OCIProfile(
            name=name,
            user=f"ocid1.user.oc1..aaaaaaaa{uuid.uuid4().hex}",
            fingerprint=fingerprint(key.public_key()),
            key_file=key_file,
            public_pem=public_pem.decode(),
            private_key=key,
        )
        created[name] = profile
        sections.append(
            f"[{name}]\n"
            f"user={profile.user}\n"
            f"fingerprint={profile.fingerprint}\n"
            f"tenancy={profile.tenancy}\n"
            f"region={region}\n"
            f"key_file={key_file}\n"
        )
    config_file = directory / "config"
    _write_private(config_file, "\n".join(sections))
    return OCIConfig(config_file, created)


def cli_environment(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A complete environment for an ``oci`` subprocess, isolated from the user.

    Starts from ``base`` (default: this process's environment) without any
    ``OCI_*`` variables, points ``HOME`` at ``home`` (created) and
    ``OCI_CLI_RC_FILE`` at an empty file there, and silences the CLI's
    key-file warnings.
    """
    home.mkdir(parents=True, exist_ok=True)
    rc_file = home / "oci_cli_rc"
    rc_file.touch()
    source = os.environ if base is None else base
    env = {name: value for name, value in source.items() if not name.startswith("OCI_")}
    env.update(
        HOME=str(home),
        OCI_CLI_RC_FILE=str(rc_file),
        OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING="True",
        SUPPRESS_LABEL_WARNING="True",
    )
    return env


def sign_request(
    profile: OCIProfile,
    method: str,
    target: str,
    host: str,
    body: bytes | None = None,
    date: str | None = None,
) -> dict[str, str]:
    """Headers that sign a request the way the OCI SDK does.

    ``target`` is the encoded path and query, ``host`` includes the port. With a
    ``body`` the JSON body headers are signed too, as for a multipart POST.
    """
    headers = {"date": date or formatdate(usegmt=True), "host": host}
    names = ["date", "(request-target)", "host"]
    if body is not None:
        headers["content-length"] = str(len(body))
        headers["content-type"] = "application/json"
        headers["x-content-sha256"] = _b64(hashlib.sha256(body).digest())
        names += ["content-length", "content-type", "x-content-sha256"]
    lines = [
        f"(request-target): {method.lower()} {target}" if name == "(request-target)" else f"{name}: {headers[name]}"
        for name in names
    ]
    signature = profile.private_key.sign("\n".join(lines).encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    headers["authorization"] = (
        f'Signature algorithm="rsa-sha256",headers="{" ".join(names)}",'
        f'keyId="{profile.key_id}",signature="{_b64(signature)}",version="1"'
    )
    return headers


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
