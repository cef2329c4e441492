"""The local Object Storage server, exercised with the real ``oci`` CLI."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.support.fixtures import BUCKET, OCIClient
from tests.support.oci_env import OCIConfig, OCIProfile, sign_request
from tests.support.oci_server import (
    LogEntry,
    OCIServer,
    SignatureError,
    verify_signature,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def cli_error(stderr: str) -> tuple[str, dict[str, Any]]:
    """The error class and JSON details the CLI printed on stderr."""
    match = re.search(r"^(\w+):\n(?=\{)", stderr, re.MULTILINE)
    assert match, stderr
    details, _ = json.JSONDecoder().raw_decode(stderr, match.end())
    return match.group(1), details


def requests_by(server: OCIServer, method: str) -> list[LogEntry]:
    """The logged requests with this method, oldest first."""
    return [entry for entry in server.request_log() if entry.method == method]


def signed_request(
    server: OCIServer,
    profile: OCIProfile,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    sign_body: bool = False,
    date: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send one signed request from Python; return status, headers and body."""
    host = f"127.0.0.1:{server.port}"
    signed = sign_request(profile, method, target, host, body if sign_body else None, date)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, target, body, {**signed, **(headers or {})})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def control(server: OCIServer, method: str, path: str, payload: object = None) -> Any:
    """Call a control endpoint over HTTP and decode its JSON answer, if any."""
    body = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(server.endpoint + path, body, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        data = response.read()
    return json.loads(data) if data else None


def test_namespace_get(oci_client: OCIClient, oci_server: OCIServer) -> None:
    result = oci_client.run("os", "ns", "get")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"data": "testns"}
    [entry] = oci_server.request_log()
    assert (entry.method, entry.path, entry.status) == ("GET", "/n", 200)


def test_put_force_then_get_is_byte_exact(oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path) -> None:
    content = b'{"job": "abc"}\n\x00\xff\r\n'
    source = tmp_path / "job.json"
    source.write_bytes(content)

    put = oci_client.os_object("put", "--name", "job.json", "--file", str(source), "--force")
    got = oci_client.os_object("get", "--name", "job.json", "--file", "-", text=False)

    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["etag"] == oci_server.object_info(BUCKET, "job.json").etag
    assert got.returncode == 0, got.stderr
    assert got.stdout == content
    [put_request] = requests_by(oci_server, "PUT")
    assert "if-none-match" not in put_request.headers
    assert put_request.body_length == len(content)


def test_head_reports_object_headers(oci_client: OCIClient, oci_server: OCIServer) -> None:
    etag = oci_server.put_object(
        BUCKET,
        "job.json",
        b"{}",
        content_type="application/json",
        metadata={"opc-meta-owner": "tests"},
    )

    result = oci_client.os_object("head", "--name", "job.json")

    assert result.returncode == 0, result.stderr
    headers = json.loads(result.stdout)
    assert headers["etag"] == etag
    assert headers["content-length"] == "2"
    assert headers["content-type"] == "application/json"
    assert headers["content-md5"] == "mZFLkyvTelC5g8XnyQrpOw=="
    assert headers["opc-meta-owner"] == "tests"
    assert all(name == name.lower() for name in headers)
    assert headers["date"].count("GMT") == 1


def test_put_no_overwrite(oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path) -> None:
    source = tmp_path / "new.json"
    source.write_text('{"new": true}')
    oci_server.put_object(BUCKET, "old.json", b"old")

    kept = oci_client.os_object("put", "--name", "old.json", "--file", str(source), "--no-overwrite")
    created = oci_client.os_object("put", "--name", "new.json", "--file", str(source), "--no-overwrite")

    assert kept.returncode == 0, kept.stderr
    assert "already exists" in kept.stderr
    assert kept.stdout == ""
    assert oci_server.get_object(BUCKET, "old.json") == b"old"
    assert created.returncode == 0, created.stderr
    assert oci_server.get_object(BUCKET, "new.json") == b'{"new": true}'
    [put_request] = requests_by(oci_server, "PUT")
    assert put_request.object_name == "new.json"
    assert put_request.headers["if-none-match"] == "*"


def test_create_race_has_exactly_one_winner(oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path) -> None:
    # Both CLIs see 404 on HEAD before either PUT is applied.
    oci_server.add_fault(method="PUT", delay=3, times=2)
    sources = [tmp_path / f"racer{racer}.json" for racer in range(2)]
    for racer, source in enumerate(sources):
        source.write_text(f'{{"racer": {racer}}}')

    def race(source: Path) -> subprocess.CompletedProcess[str]:
        return oci_client.os_object("put", "--name", "race.json", "--file", str(source), "--no-overwrite")

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(race, sources))

    winners = [index for index, result in enumerate(results) if result.returncode == 0]
    assert len(winners) == 1, [result.stderr for result in results]
    winner, loser = results[winners[0]], results[1 - winners[0]]
    kind, details = cli_error(loser.stderr)
    assert (kind, details["status"], details["code"]) == (
        "ServiceError",
        412,
        "IfNoneMatchFailed",
    )
    stored = oci_server.object_info(BUCKET, "race.json")
    assert stored.etag == json.loads(winner.stdout)["etag"]
    assert stored.data == sources[winners[0]].read_bytes()
    assert sorted(entry.status for entry in requests_by(oci_server, "PUT")) == [
        200,
        412,
    ]


def test_put_if_match(oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path) -> None:
    stale = oci_server.put_object(BUCKET, "job.json", b"v1")
    current = oci_server.put_object(BUCKET, "job.json", b"v2")
    source = tmp_path / "v3.json"
    source.write_text("v3")

    rejected = oci_client.os_object(
        "put",
        "--name",
        "job.json",
        "--file",
        str(source),
        "--force",
        "--if-match",
        stale,
    )
    accepted = oci_client.os_object(
        "put",
        "--name",
        "job.json",
        "--file",
        str(source),
        "--force",
        "--if-match",
        current,
    )

    assert rejected.returncode == 1
    _, details = cli_error(rejected.stderr)
    assert (details["status"], details["code"]) == (412, "IfMatchFailed")
    assert accepted.returncode == 0, accepted.stderr
    assert oci_server.get_object(BUCKET, "job.json") == b"v3"


def test_delete_force(oci_client: OCIClient, oci_server: OCIServer) -> None:
    etag = oci_server.put_object(BUCKET, "job.json", b"{}")

    stale = oci_client.os_object("delete", "--name", "job.json", "--force", "--if-match", "stale")
    deleted = oci_client.os_object("delete", "--name", "job.json", "--force", "--if-match", etag)
    missing = oci_client.os_object("delete", "--name", "job.json", "--force")

    assert cli_error(stale.stderr)[1]["code"] == "IfMatchFailed"
    assert (deleted.returncode, deleted.stdout, deleted.stderr) == (0, "", "")
    assert oci_server.get_object(BUCKET, "job.json") is None
    _, details = cli_error(missing.stderr)
    assert (details["status"], details["code"]) == (404, "ObjectNotFound")
    assert [entry.status for entry in requests_by(oci_server, "DELETE")] == [
        412,
        204,
        404,
    ]


def test_list_with_prefix_pages(oci_client: OCIClient, oci_server: OCIServer) -> None:
    names = [f"jobs/job{number}.json" for number in range(5)]
    for name in [*names, "other.json"]:
        oci_server.put_object(BUCKET, name, b"{}")

    every = oci_client.os_object("list", "--prefix", "jobs/", "--all", "--page-size", "2")
    first = oci_client.os_object("list", "--prefix", "jobs/", "--limit", "2")

    assert every.returncode == 0, every.stderr
    assert [item["name"] for item in json.loads(every.stdout)["data"]] == names
    queries = [parse_qs(urlsplit(entry.path).query) for entry in requests_by(oci_server, "GET")]
    assert len(queries) == 4
    assert [query.get("start") for query in queries[:3]] == [
        None,
        ["jobs/job2.json"],
        ["jobs/job4.json"],
    ]
    assert all(query["limit"] == ["2"] for query in queries)
    listed = json.loads(first.stdout)
    assert [item["name"] for item in listed["data"]] == names[:2]
    assert listed["next-start-with"] == "jobs/job2.json"


def test_list_delimiter_and_ranges(oci_server: OCIServer, oci_config: OCIConfig) -> None:
    for name in ["a/1", "a/2", "b", "c/1", "d", "e"]:
        oci_server.put_object(BUCKET, name, b"x")
    profile = oci_config.profiles["DEFAULT"]

    def listing(query: str) -> dict[str, Any]:
        status, _, body = signed_request(oci_server, profile, "GET", f"/n/testns/b/ansible-state/o?{query}")
        assert status == 200, body
        return json.loads(body)

    assert listing("delimiter=%2F&limit=3") == {
        "objects": [{"name": "b"}],
        "prefixes": ["a/", "c/"],
        "nextStartWith": "d",
    }
    assert listing("startAfter=b&end=e&fields=name%2Csize") == {
        "objects": [
            {"name": "c/1", "size": 1},
            {"name": "d", "size": 1},
        ]
    }
    assert listing("prefix=zzz") == {"objects": []}


def test_missing_bucket(oci_client: OCIClient) -> None:
    result = replace(oci_client, bucket="no-such-bucket").os_object("list")

    assert result.returncode == 1
    kind, details = cli_error(result.stderr)
    assert (kind, details["status"], details["code"]) == (
        "ServiceError",
        404,
        "BucketNotFound",
    )


def test_wrong_namespace(oci_client: OCIClient) -> None:
    result = replace(oci_client, namespace="otherns").os_object("list")

    assert result.returncode == 1
    _, details = cli_error(result.stderr)
    assert (details["status"], details["code"]) == (404, "NamespaceNotFound")


def test_unregistered_key_is_rejected(oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path) -> None:
    source = tmp_path / "job.json"
    source.write_text("{}")

    result = replace(oci_client, profile="OTHER").os_object(
        "put", "--name", "job.json", "--file", str(source), "--force"
    )

    assert result.returncode == 1
    _, details = cli_error(result.stderr)
    assert (details["status"], details["code"]) == (401, "NotAuthenticated")
    assert oci_server.get_object(BUCKET, "job.json") is None
    assert [entry.status for entry in oci_server.request_log()] == [401]


def test_clock_skew_is_rejected(oci_server: OCIServer, oci_config: OCIConfig) -> None:
    profile = oci_config.profiles["DEFAULT"]
    keys = {profile.key_id: profile.private_key.public_key()}
    target = "/n/testns/b/ansible-state/o"
    host = f"127.0.0.1:{oci_server.port}"
    old = formatdate(time.time() - 400, usegmt=True)
    recent = formatdate(time.time() - 200, usegmt=True)

    with pytest.raises(SignatureError, match="clock skew"):
        verify_signature(
            "GET",
            target,
            sign_request(profile, "GET", target, host, date=old),
            b"",
            keys,
        )
    assert (
        verify_signature(
            "GET",
            target,
            sign_request(profile, "GET", target, host, date=recent),
            b"",
            keys,
        )
        == profile.key_id
    )
    status, headers, body = signed_request(oci_server, profile, "GET", target, date=old)
    assert status == 401
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "NotAuthenticated"


def test_verifier_rejects_tampering(oci_config: OCIConfig) -> None:
    profile = oci_config.profiles["DEFAULT"]
    keys = {profile.key_id: profile.private_key.public_key()}
    target = "/n/testns/b/ansible-state/u"
    body = b'{"object": "job.json"}'
    headers = sign_request(profile, "POST", target, "127.0.0.1:1", body)

    assert verify_signature("POST", target, headers, body, keys) == profile.key_id
    with pytest.raises(SignatureError, match="x-content-sha256"):
        verify_signature("POST", target, headers, body.replace(b"job", b"jab"), keys)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature("POST", target + "x", headers, body, keys)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature("POST", target, {**headers, "host": "127.0.0.1:2"}, body, keys)
    unsigned_host = headers["authorization"].replace("(request-target) host", "")
    with pytest.raises(SignatureError, match="not signed"):
        verify_signature("POST", target, {**headers, "authorization": unsigned_host}, body, keys)
    with pytest.raises(SignatureError, match="unknown keyId"):
        verify_signature("POST", target, headers, body, {})


def test_transient_503_is_retried(oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path) -> None:
    source = tmp_path / "job.json"
    source.write_text("{}")
    oci_server.add_fault(method="PUT", status=503, times=1)

    result = oci_client.os_object("put", "--name", "job.json", "--file", str(source), "--force")

    assert result.returncode == 0, result.stderr
    attempts = requests_by(oci_server, "PUT")
    assert [entry.status for entry in attempts] == [503, 200]
    assert all(entry.headers["opc-client-retries"] == "true" for entry in attempts)
    assert oci_server.get_object(BUCKET, "job.json") == b"{}"


def test_persistent_503_without_retry(oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path) -> None:
    source = tmp_path / "job.json"
    source.write_text("{}")
    oci_server.add_fault(method="PUT", status=503, times=-1)

    result = oci_client.os_object("put", "--name", "job.json", "--file", str(source), "--force", "--no-retry")

    assert result.returncode == 1
    kind, details = cli_error(result.stderr)
    assert (kind, details["status"], details["code"]) == (
        "TransientServiceError",
        503,
        "ServiceUnavailable",
    )
    assert len(requests_by(oci_server, "PUT")) == 1
    assert oci_server.get_object(BUCKET, "job.json") is None


def test_dropped_connection(oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path) -> None:
    source = tmp_path / "job.json"
    source.write_text("{}")
    oci_server.add_fault(method="PUT", object_name="^job", drop=True, times=-1)

    result = oci_client.os_object("put", "--name", "job.json", "--file", str(source), "--force", "--no-retry")

    assert result.returncode == 1
    kind, details = cli_error(result.stderr)
    assert kind == "RequestException"
    assert "status" not in details
    assert [entry.status for entry in oci_server.request_log()] == [None]


def test_an_answer_lost_after_a_create_only_write_comes_back_412(
    oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path
) -> None:
    # bulk-upload retries its single-part PUTs even under --no-retry: the retry of a create-only
    # PUT whose answer was lost meets the object it stored itself.
    source = tmp_path / "up" / "h1"
    source.mkdir(parents=True)
    (source / "job.json").write_text('{"ansible_job_id": "j1.1"}')
    oci_server.add_fault(method="PUT", object_name="^h1/job", drop_after=True, times=1)

    result = oci_client.os_object("bulk-upload", "--src-dir", str(tmp_path / "up"), "--no-overwrite", "--no-retry")

    assert result.returncode == 1
    failures = json.loads(result.stdout)["upload-failures"]
    assert list(failures) == ["h1/job.json"]
    assert "'status': 412" in failures["h1/job.json"]
    assert [(entry.method, entry.status) for entry in requests_by(oci_server, "PUT")] == [("PUT", None), ("PUT", 412)]
    assert oci_server.get_object(BUCKET, "h1/job.json") == b'{"ansible_job_id": "j1.1"}'


def test_special_object_names_round_trip(oci_client: OCIClient, oci_server: OCIServer, tmp_path: Path) -> None:
    names = ["host/play book/ünïcødé €+1.json", "a+b=c&d?#%.txt"]
    for index, name in enumerate(names):
        source = tmp_path / f"{index}.txt"
        source.write_text(name)
        put = oci_client.os_object("put", "--name", name, "--file", str(source), "--force")
        assert put.returncode == 0, put.stderr

    listed = oci_client.os_object("list", "--all")
    got = [oci_client.os_object("get", "--name", name, "--file", "-") for name in names]

    assert oci_server.list_objects(BUCKET) == sorted(names)
    assert [item["name"] for item in json.loads(listed.stdout)["data"]] == sorted(names)
    assert [result.stdout for result in got] == names
    paths = [entry.path for entry in requests_by(oci_server, "PUT")]
    assert paths == [f"/n/testns/b/ansible-state/o/{quote(n, safe='')}" for n in names]
    assert "%2F" in paths[0]


def test_put_from_stdin_uses_multipart(oci_client: OCIClient, oci_server: OCIServer) -> None:
    result = oci_client.os_object("put", "--name", "job.json", "--file", "-", "--force", stdin_data='{"a":1}')
    empty = oci_client.os_object("put", "--name", "empty.json", "--file", "-", "--force", stdin_data="")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["opc-multipart-md5"].endswith("-1")
    assert oci_server.get_object(BUCKET, "job.json") == b'{"a":1}'
    assert empty.returncode == 0, empty.stderr
    assert oci_server.get_object(BUCKET, "empty.json") == b""
    assert [(entry.method, entry.status) for entry in oci_server.request_log()] == [
        ("POST", 200),
        ("PUT", 200),
        ("POST", 200),
        ("POST", 200),
        ("DELETE", 204),
        ("PUT", 200),
    ]


def test_commit_rechecks_create_precondition(oci_server: OCIServer, oci_config: OCIConfig) -> None:
    profile = oci_config.profiles["DEFAULT"]
    uploads = "/n/testns/b/ansible-state/u"
    details = json.dumps({"object": "job.json"}).encode()
    status, _, body = signed_request(
        oci_server,
        profile,
        "POST",
        uploads,
        details,
        {"if-none-match": "*"},
        sign_body=True,
    )
    assert status == 200, body
    upload_id = json.loads(body)["uploadId"]
    part_target = f"{uploads}/job.json?uploadId={upload_id}&uploadPartNum=1"
    status, part_headers, _ = signed_request(oci_server, profile, "PUT", part_target, b"mine")
    assert status == 200
    oci_server.put_object(BUCKET, "job.json", b"theirs")

    commit = json.dumps({"partsToCommit": [{"partNum": 1, "etag": part_headers["etag"]}]}).encode()
    status, _, body = signed_request(
        oci_server,
        profile,
        "POST",
        f"{uploads}/job.json?uploadId={upload_id}",
        commit,
        sign_body=True,
    )

    assert status == 412
    assert json.loads(body)["code"] == "IfNoneMatchFailed"
    assert oci_server.get_object(BUCKET, "job.json") == b"theirs"


def test_conditional_requests_and_content_md5(oci_server: OCIServer, oci_config: OCIConfig) -> None:
    profile = oci_config.profiles["DEFAULT"]
    target = "/n/testns/b/ansible-state/o/job.json"
    etag = oci_server.put_object(BUCKET, "job.json", b"{}")

    not_modified = signed_request(oci_server, profile, "GET", target, headers={"if-none-match": etag})
    mismatch = signed_request(oci_server, profile, "GET", target, headers={"if-match": "x"})
    head_missing = signed_request(oci_server, profile, "HEAD", target + "x")
    bad_md5 = signed_request(
        oci_server,
        profile,
        "PUT",
        target,
        b"new",
        {"content-md5": "1B2M2Y8AsgTpgAmY7PhCfg=="},
    )

    assert not_modified[0] == 304
    assert "content-length" not in not_modified[1]
    assert mismatch[0] == 412
    assert json.loads(mismatch[2])["code"] == "IfMatchFailed"
    assert head_missing[0] == 404
    assert head_missing[2] == b""
    assert "content-type" not in head_missing[1]
    assert bad_md5[0] == 400
    assert json.loads(bad_md5[2])["code"] == "UnmatchedContentMD5"
    assert oci_server.get_object(BUCKET, "job.json") == b"{}"


def test_control_endpoints(oci_server: OCIServer, oci_config: OCIConfig) -> None:
    profile = oci_config.profiles["DEFAULT"]
    oci_server.put_object(BUCKET, "job.json", b"{}")

    rule = control(
        oci_server,
        "POST",
        "/_fault",
        {"method": "GET", "status": 429, "times": 1},
    )
    throttled = signed_request(oci_server, profile, "GET", "/n")
    passed = signed_request(oci_server, profile, "GET", "/n")
    log = control(oci_server, "GET", "/_log")

    assert rule["times"] == 1
    assert throttled[0] == 429
    assert json.loads(throttled[2])["code"] == "TooManyRequests"
    assert passed[0] == 200
    assert [(entry["method"], entry["status"]) for entry in log] == [
        ("GET", 429),
        ("GET", 200),
    ]
    assert control(oci_server, "DELETE", "/_log") is None
    assert oci_server.request_log() == []
    control(oci_server, "POST", "/_fault", {"path": "^/n$", "status": 500, "times": -1})
    control(oci_server, "POST", "/_reset")
    assert signed_request(oci_server, profile, "GET", "/n")[0] == 200
    assert oci_server.list_objects(BUCKET) == []


def test_server_runs_from_the_command_line(oci_config: OCIConfig, tmp_path: Path) -> None:
    profile = oci_config.profiles["DEFAULT"]
    pem_file = tmp_path / "default.pub.pem"
    pem_file.write_text(profile.public_pem)
    command = [
        sys.executable,
        "-m",
        "tests.support.oci_server",
        "--port",
        "0",
        "--bucket",
        "b1",
        "--public-key",
        f"{profile.key_id}={pem_file}",
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = process.stdout.readline().strip()
        port = int(endpoint.rsplit(":", 1)[1])
        host = f"127.0.0.1:{port}"
        target = "/n/testns/b/b1"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", target, headers=sign_request(profile, "GET", target, host))
        response = connection.getresponse()
        bucket = json.loads(response.read())
        connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.stdout.close()

    assert endpoint == f"http://127.0.0.1:{port}"
    assert response.status == 200
    assert bucket["name"] == "b1"
