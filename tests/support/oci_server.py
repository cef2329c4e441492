"""Local OCI Object Storage server for tests.

It speaks the native Object Storage API the ``oci`` CLI uses (namespace, bucket,
object, list and multipart requests), verifies every request's signature, keeps
objects in memory, records each request and can inject faults.

Control endpoints, outside ``/n`` and unauthenticated, let another process drive it:

* ``GET /_log`` returns the request log as JSON; ``DELETE /_log`` clears it.
* ``POST /_fault`` adds a fault rule from a JSON object with the fields of
  :class:`FaultRule`; ``DELETE /_fault`` removes all rules.
* ``POST /_reset`` removes objects, uploads, fault rules and the log.

Run it by hand with ``python -m tests.support.oci_server --bucket b1``; the first
line printed is the endpoint.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit
from urllib.request import parse_http_list

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REQUIRED_SIGNED_HEADERS = ("date", "(request-target)", "host")

DEFAULT_ERROR_CODES = {
    400: "InvalidParameter",
    401: "NotAuthenticated",
    403: "NotAuthorized",
    404: "NotAuthorizedOrNotFound",
    409: "Conflict",
    412: "PreconditionFailed",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

NOT_AUTHENTICATED = "The required information to complete authentication was not provided or was incorrect."


class SignatureError(Exception):
    """A request signature is missing, malformed or does not verify."""


class ServiceError(Exception):
    """An OCI error answer: HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def response(self, method: str) -> Response:
        """Return the error as a response; HEAD answers carry no body."""
        if method == "HEAD":
            return Response(self.status)
        body = json.dumps({"code": self.code, "message": self.message}).encode()
        return Response(self.status, {"content-type": "application/json"}, body)


@dataclass
class Request:
    """One HTTP request as received."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The raw (still percent-encoded) path without the query string."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """The form-decoded query parameters (first value of each)."""
        parsed = parse_qs(urlsplit(self.target).query, keep_blank_values=True)
        return {name: values[0] for name, values in parsed.items()}


@dataclass
class Response:
    """An HTTP response; ``content-length`` is added when it is written."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class StoredObject:
    """An object and the metadata the server reports for it."""

    data: bytes
    content_type: str
    metadata: dict[str, str]
    etag: str = field(default_factory=lambda: str(uuid.uuid4()))
    version_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    modified: float = field(default_factory=time.time)

    @property
    def md5(self) -> str:
        """Base64 MD5 of the data, as in ``content-md5``."""
        return _b64(hashlib.md5(self.data).digest())

    def headers(self) -> dict[str, str]:
        """Headers describing the object on HEAD and GET."""
        return {
            "etag": self.etag,
            "content-md5": self.md5,
            "content-type": self.content_type,
            "last-modified": formatdate(self.modified, usegmt=True),
            "storage-tier": "Standard",
            "version-id": self.version_id,
            **self.metadata,
        }


@dataclass
class FaultRule:
    """Misbehave on the next ``times`` matching requests (``-1``: forever).

    ``method`` is compared case-insensitively; ``path`` is a regular expression
    searched in the raw request target (path and query); ``object_name`` is
    searched in the object name decoded from the path. The rule waits
    ``delay`` seconds, then closes the connection without answering (``drop``),
    or answers ``status`` with an OCI error body (``code`` and ``message``
    default from the status), or, with neither, handles the request normally.
    With ``drop_after``, it handles the request (a write is stored) and then
    closes the connection without answering: the answer is lost on the way.
    """

    method: str | None = None
    path: str | None = None
    object_name: str | None = None
    status: int | None = None
    code: str | None = None
    message: str | None = None
    delay: float = 0.0
    drop: bool = False
    drop_after: bool = False
    times: int = 1

    def __post_init__(self) -> None:
        for pattern in (self.path, self.object_name):
            if pattern is not None:
                re.compile(pattern)

    def matches(self, method: str, target: str, object_name: str | None) -> bool:
        """Whether the rule applies to this request."""
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is not None and not re.search(self.path, target):
            return False
        if self.object_name is not None:
            return object_name is not None and bool(re.search(self.object_name, object_name))
        return True

    def error(self) -> ServiceError:
        """The error this rule answers with."""
        assert self.status is not None
        code = self.code or DEFAULT_ERROR_CODES.get(self.status, "Error")
        message = self.message or HTTPStatus(self.status).phrase
        return ServiceError(self.status, code, message)


@dataclass(frozen=True)
class LogEntry:
    """What one request looked like and how it was answered.

    ``time`` is when the request arrived (epoch seconds); ``path`` is the raw
    request target including the query string; ``object_name`` is decoded from
    the path (``None`` for namespace, bucket, list and create-multipart
    requests); ``status`` is ``None`` when the connection was dropped.
    """

    time: float
    method: str
    path: str
    object_name: str | None
    headers: dict[str, str]
    body_length: int
    status: int | None


@dataclass(frozen=True)
class _Route:
    kind: str
    namespace: str | None = None
    bucket: str | None = None
    name: str | None = None


@dataclass
class _Bucket:
    objects: dict[str, StoredObject] = field(default_factory=dict)
    etag: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: float = field(default_factory=time.time)


@dataclass
class _Upload:
    bucket: str
    name: str
    content_type: str
    metadata: dict[str, str]
    if_match: str | None
    if_none_match: str | None
    created: float = field(default_factory=time.time)
    parts: dict[int, tuple[str, bytes]] = field(default_factory=dict)


def verify_signature(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: Mapping[str, rsa.RSAPublicKey],
    now: float | None = None,
    max_clock_skew: float = 300.0,
) -> str:
    """Verify an OCI (draft-cavage, rsa-sha256) request signature.

    ``headers`` must have lower-case names and ``target`` is the raw request
    target. Returns the keyId; raises :class:`SignatureError` on any failure.
    """
    params = _parse_authorization(headers.get("authorization", ""))
    signed = params["headers"].lower().split()
    missing = [name for name in REQUIRED_SIGNED_HEADERS if name not in signed]
    if missing:
        raise SignatureError(f"required headers not signed: {missing}")
    body_hash = _b64(hashlib.sha256(body).digest())
    if "x-content-sha256" in signed and headers.get("x-content-sha256") != body_hash:
        raise SignatureError("x-content-sha256 does not match the body")
    if "content-length" in signed and headers.get("content-length") != str(len(body)):
        raise SignatureError("content-length does not match the body")
    try:
        signed_at = parsedate_to_datetime(headers.get("date", ""))
    except (TypeError, ValueError) as error:
        raise SignatureError("date header is missing or malformed") from error
    if signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    if abs(current - signed_at.timestamp()) > max_clock_skew:
        raise SignatureError("date header is outside the allowed clock skew")
    key = keys.get(params["keyid"])
    if key is None:
        raise SignatureError(f"unknown keyId {params['keyid']!r}")
    lines = []
    for name in signed:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        elif name in headers:
            lines.append(f"{name}: {headers[name]}")
        else:
            raise SignatureError(f"signed header {name!r} is missing")
    try:
        signature = base64.b64decode(params["signature"], validate=True)
        key.verify(
            signature,
            "\n".join(lines).encode("utf-8"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, ValueError) as error:
        raise SignatureError("signature does not verify") from error
    return params["keyid"]


def _parse_authorization(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    if scheme != "Signature":
        raise SignatureError("authorization scheme is not Signature")
    params = {}
    for item in parse_http_list(rest):
        name, sep, raw = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed authorization parameter {item!r}")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        params[name.strip().lower()] = raw
    for name in ("keyid", "headers", "signature"):
        if name not in params:
            raise SignatureError(f"authorization lacks {name}")
    if params.get("algorithm", "rsa-sha256") != "rsa-sha256":
        raise SignatureError("only rsa-sha256 is supported")
    return params


def _parse_route(path: str) -> _Route | None:
    """Split the raw path into its parts before percent-decoding them."""
    parts = path.split("/")[1:]
    if parts in (["n"], ["n", ""]):
        return _Route("namespace")
    if len(parts) < 4 or parts[0] != "n" or parts[2] != "b":
        return None
    namespace, bucket = unquote(parts[1]), unquote(parts[3])
    if len(parts) == 4:
        return _Route("bucket", namespace, bucket)
    collection = {"o": "objects", "u": "uploads"}.get(parts[4])
    if collection is None:
        return None
    rest = parts[5:]
    if rest in ([], [""]):
        return _Route(collection, namespace, bucket)
    return _Route(collection[:-1], namespace, bucket, unquote("/".join(rest)))


def _check_write_preconditions(current: StoredObject | None, if_match: str | None, if_none_match: str | None) -> None:
    """Raise 412 unless If-Match / If-None-Match allow replacing ``current``."""
    if if_match is not None and (current is None or if_match not in ("*", current.etag)):
        found = f"is '{current.etag}'" if current else "does not exist"
        raise ServiceError(
            412,
            "IfMatchFailed",
            f"The If-Match header is '{if_match}' but the current entity tag {found}",
        )
    if if_none_match is not None and current is not None and if_none_match in ("*", current.etag):
        raise ServiceError(
            412,
            "IfNoneMatchFailed",
            f"The If-None-Match header is '{if_none_match}' but there is an existing entity",
        )


def _check_content_md5(request: Request) -> None:
    expected = request.headers.get("content-md5")
    actual = _b64(hashlib.md5(request.body).digest())
    if expected is not None and expected != actual:
        raise ServiceError(
            400,
            "UnmatchedContentMD5",
            f"The computed MD5 of the request body ({actual}) does not match the Content-MD5 header ({expected})",
        )


def _metadata(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.startswith("opc-meta-")}


def _json_body(request: Request) -> dict:
    try:
        payload = json.loads(request.body)
    except ValueError as error:
        raise ServiceError(400, "InvalidParameter", "Body is not valid JSON") from error
    if not isinstance(payload, dict):
        raise ServiceError(400, "InvalidParameter", "Body must be a JSON object")
    return payload


def _json_response(payload: object, status: int = 200) -> Response:
    body = json.dumps(payload).encode()
    return Response(status, {"content-type": "application/json"}, body)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sort_key(name: str) -> bytes:
    return name.encode("utf-8")


class OCIServer:
    """An in-memory Object Storage service with one namespace.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    ``keys`` maps each accepted keyId (``tenancy/user/fingerprint``) to a PEM
    public key.
    """

    def __init__(
        self,
        namespace: str = "testns",
        buckets: Iterable[str] = (),
        keys: Mapping[str, str | bytes] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_clock_skew: float = 300.0,
    ) -> None:
        self.namespace = namespace
        self.host = host
        self.max_clock_skew = max_clock_skew
        self._requested_port = port
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._uploads: dict[str, _Upload] = {}
        self._faults: list[FaultRule] = []
        self._log: list[LogEntry] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        for bucket in buckets:
            self.add_bucket(bucket)
        for key_id, pem in (keys or {}).items():
            self.add_key(key_id, pem)

    # Lifecycle

    def start(self) -> Self:
        """Listen and serve in a background thread."""
        self._httpd = _HTTPServer((self.host, self._requested_port), _Handler)
        self._httpd.oci = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oci-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._httpd is None or self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on (after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("server is not started")
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        """The URL to give the CLI as ``--endpoint``."""
        return f"http://{self.host}:{self.port}"

    # Configuration

    def add_bucket(self, name: str) -> None:
        """Create an empty bucket (no-op when it exists)."""
        with self._lock:
            self._buckets.setdefault(name, _Bucket())

    def add_key(self, key_id: str, public_pem: str | bytes) -> None:
        """Accept requests signed by the private key matching ``public_pem``."""
        pem = public_pem.encode() if isinstance(public_pem, str) else public_pem
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("only RSA public keys are supported")
        with self._lock:
            self._keys[key_id] = key

    # Direct access to the store

    def put_object(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Store an object as a PUT would and return its new etag."""
        stored = StoredObject(data, content_type, dict(metadata or {}))
        with self._lock:
            self._buckets[bucket].objects[name] = stored
        return stored.etag

    def object_info(self, bucket: str, name: str) -> StoredObject | None:
        """The stored object with its etag and metadata, or ``None``."""
        with self._lock:
            return self._buckets[bucket].objects.get(name)

    def get_object(self, bucket: str, name: str) -> bytes | None:
        """The object's bytes, or ``None`` when it does not exist."""
        stored = self.object_info(bucket, name)
        return None if stored is None else stored.data

    def list_objects(self, bucket: str, prefix: str = "") -> list[str]:
        """Names in the bucket starting with ``prefix``, sorted."""
        with self._lock:
            names = [n for n in self._buckets[bucket].objects if n.startswith(prefix)]
        return sorted(names, key=_sort_key)

    def delete_object(self, bucket: str, name: str) -> bool:
        """Delete an object; return whether it existed."""
        with self._lock:
            return self._buckets[bucket].objects.pop(name, None) is not None

    # Faults and the request log

    def add_fault(self, **fields: Any) -> FaultRule:
        """Add a :class:`FaultRule` built from ``fields``.

        Only the first matching rule fires for a request.
        """
        rule = FaultRule(**fields)
        with self._lock:
            self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Remove all fault rules."""
        with self._lock:
            self._faults.clear()

    def request_log(self) -> list[LogEntry]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._log.clear()

    def reset(self) -> None:
        """Remove objects, uploads, fault rules and the log; keep buckets and keys."""
        with self._lock:
            for bucket in self._buckets.values():
                bucket.objects.clear()
            self._uploads.clear()
            self._faults.clear()
            self._log.clear()

    # Request handling

    def serve(self, request: Request) -> Response | None:
        """Answer one request; ``None`` means drop the connection."""
        received = time.time()
        if request.path.startswith("/_"):
            try:
                return self._control(request)
            except ServiceError as error:
                return error.response(request.method)
        route = _parse_route(request.path)
        object_name = route.name if route else None
        rule = self._take_fault(request.method, request.target, object_name)
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        response: Response | None
        if rule is not None and rule.drop:
            response = None
        elif rule is not None and rule.status is not None:
            response = rule.error().response(request.method)
        else:
            response = self._dispatch(request, route)
            if rule is not None and rule.drop_after:
                response = None
        if response is not None:
            response.headers["opc-request-id"] = uuid.uuid4().hex.upper()
            client_request_id = request.headers.get("opc-client-request-id")
            if client_request_id is not None:
                response.headers["opc-client-request-id"] = client_request_id
        entry = LogEntry(
            time=received,
            method=request.method,
            path=request.target,
            object_name=object_name,
            headers=dict(request.headers),
            body_length=len(request.body),
            status=None if response is None else response.status,
        )
        with self._lock:
            self._log.append(entry)
        return response

    def _take_fault(self, method: str, target: str, object_name: str | None) -> FaultRule | None:
        with self._lock:
            for rule in self._faults:
                if rule.matches(method, target, object_name):
                    if rule.times > 0:
                        rule.times -= 1
                        if rule.times == 0:
                            self._faults.remove(rule)
                    return rule
        return None

    def _dispatch(self, request: Request, route: _Route | None) -> Response:
        handlers: dict[tuple[str, str], Callable[[Request, _Route], Response]] = {
            ("namespace", "GET"): self._get_namespace,
            ("bucket", "GET"): self._get_bucket,
            ("bucket", "HEAD"): self._get_bucket,
            ("objects", "GET"): self._list_objects,
            ("object", "GET"): self._get_object,
            ("object", "HEAD"): self._get_object,
            ("object", "PUT"): self._put_object,
            ("object", "DELETE"): self._delete_object,
            ("uploads", "POST"): self._create_upload,
            ("upload", "PUT"): self._upload_part,
            ("upload", "POST"): self._commit_upload,
            ("upload", "DELETE"): self._abort_upload,
        }
        try:
            with self._lock:
                keys = dict(self._keys)
            try:
                verify_signature(
                    request.method,
                    request.target,
                    request.headers,
                    request.body,
                    keys,
                    max_clock_skew=self.max_clock_skew,
                )
            except SignatureError as error:
                raise ServiceError(401, "NotAuthenticated", NOT_AUTHENTICATED) from error
            handler = handlers.get((route.kind, request.method)) if route else None
            if route is None or handler is None:
                raise ServiceError(
                    404,
                    "NotAuthorizedOrNotFound",
                    "Authorization failed or requested resource not found.",
                )
            if route.kind != "namespace":
                self._check_bucket(route)
            return handler(request, route)
        except ServiceError as error:
            return error.response(request.method)

    def _check_bucket(self, route: _Route) -> None:
        if route.namespace != self.namespace:
            raise ServiceError(
                404,
                "NamespaceNotFound",
                "You do not have authorization to perform this request, or the requested resource could not be found.",
            )
        with self._lock:
            exists = route.bucket in self._buckets
        if not exists:
            raise ServiceError(
                404,
                "BucketNotFound",
                f"Either the bucket named '{route.bucket}' does not exist in the "
                f"namespace '{self.namespace}' or you are not authorized to access it",
            )

    def _get_namespace(self, request: Request, route: _Route) -> Response:
        return _json_response(self.namespace)

    def _get_bucket(self, request: Request, route: _Route) -> Response:
        assert route.bucket is not None
        with self._lock:
            bucket = self._buckets[route.bucket]
        response = _json_response(
            {
                "namespace": self.namespace,
                "name": route.bucket,
                "compartmentId": "ocid1.compartment.oc1..testcompartment",
                "createdBy": "ocid1.user.oc1..testuser",
                "timeCreated": _iso(bucket.created),
                "etag": bucket.etag,
                "publicAccessType": "NoPublicAccess",
                "storageTier": "Standard",
                "objectEventsEnabled": False,
                "versioning": "Disabled",
            }
        )
        response.headers["etag"] = bucket.etag
        return response

    def _missing_object(self, route: _Route) -> ServiceError:
        return ServiceError(
            404,
            "ObjectNotFound",
            f"The object '{route.name}' was not found in the bucket '{route.bucket}'",
        )

    def _get_object(self, request: Request, route: _Route) -> Response:
        assert route.bucket is not None
        assert route.name is not None
        stored = self.object_info(route.bucket, route.name)
        if stored is None:
            raise self._missing_object(route)
        if_match = request.headers.get("if-match")
        if if_match is not None and if_match not in ("*", stored.etag):
            raise ServiceError(
                412,
                "IfMatchFailed",
                f"The If-Match header is '{if_match}' but the current entity tag is '{stored.etag}'",
            )
        if request.headers.get("if-none-match") in ("*", stored.etag):
            return Response(304, {"etag": stored.etag})
        return Response(200, stored.headers(), stored.data)

    def _put_object(self, request: Request, route: _Route) -> Response:
        assert route.bucket is not None
        assert route.name is not None
        _check_content_md5(request)
        stored = self._store(
            route.bucket,
            route.name,
            StoredObject(
                request.body,
                request.headers.get("content-type", "application/octet-stream"),
                _metadata(request.headers),
            ),
            request.headers.get("if-match"),
            request.headers.get("if-none-match"),
        )
        return Response(
            200,
            {
                "etag": stored.etag,
                "opc-content-md5": stored.md5,
                "last-modified": formatdate(stored.modified, usegmt=True),
                "version-id": stored.version_id,
            },
        )

    def _store(
        self,
        bucket: str,
        name: str,
        stored: StoredObject,
        if_match: str | None,
        if_none_match: str | None,
    ) -> StoredObject:
        """Check the preconditions and write, atomically."""
        with self._lock:
            objects = self._buckets[bucket].objects
            _check_write_preconditions(objects.get(name), if_match, if_none_match)
            objects[name] = stored
        return stored

    def _delete_object(self, request: Request, route: _Route) -> Response:
        assert route.bucket is not None
        assert route.name is not None
        with self._lock:
            objects = self._buckets[route.bucket].objects
            current = objects.get(route.name)
            if current is None:
                raise self._missing_object(route)
            _check_write_preconditions(
                current,
                request.headers.get("if-match"),
                request.headers.get("if-none-match"),
            )
            del objects[route.name]
        return Response(204)

    def _list_objects(self, request: Request, route: _Route) -> Response:
        assert route.bucket is not None
        query = request.query
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter") or None
        fields = set(query.get("fields", "name").split(","))
        try:
            limit = int(query.get("limit", "1000"))
        except ValueError:
            limit = -1
        if not 0 <= limit <= 1000:
            raise ServiceError(400, "InvalidParameter", "limit must be 0 to 1000")
        with self._lock:
            objects = dict(self._buckets[route.bucket].objects)

        def in_range(name: str) -> bool:
            key = _sort_key(name)
            return (
                name.startswith(prefix)
                and ("start" not in query or key >= _sort_key(query["start"]))
                and ("end" not in query or key < _sort_key(query["end"]))
                and ("startAfter" not in query or key > _sort_key(query["startAfter"]))
            )

        summaries: list[dict[str, object]] = []
        prefixes: list[str] = []
        next_start = None
        for name in sorted(filter(in_range, objects), key=_sort_key):
            group = None
            if delimiter is not None:
                rest = name[len(prefix) :]
                if delimiter in rest:
                    group = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if group is not None and prefixes and prefixes[-1] == group:
                continue
            if len(summaries) + len(prefixes) >= limit:
                next_start = name
                break
            if group is not None:
                prefixes.append(group)
                continue
            stored = objects[name]
            summary = {
                "name": name,
                "size": len(stored.data),
                "etag": stored.etag,
                "md5": stored.md5,
                "timeCreated": _iso(stored.modified),
                "timeModified": _iso(stored.modified),
                "storageTier": "Standard",
            }
            summaries.append({k: v for k, v in summary.items() if k == "name" or k in fields})
        payload: dict[str, object] = {"objects": summaries}
        if delimiter is not None:
            payload["prefixes"] = prefixes
        if next_start is not None:
            payload["nextStartWith"] = next_start
        return _json_response(payload)

    def _create_upload(self, request: Request, route: _Route) -> Response:
        assert route.bucket is not None
        details = _json_body(request)
        name = details.get("object")
        if not isinstance(name, str) or not name:
            raise ServiceError(400, "InvalidParameter", "'object' is required")
        upload = _Upload(
            bucket=route.bucket,
            name=name,
            content_type=details.get("contentType") or "application/octet-stream",
            metadata=dict(details.get("metadata") or {}),
            if_match=request.headers.get("if-match"),
            if_none_match=request.headers.get("if-none-match"),
        )
        upload_id = str(uuid.uuid4())
        with self._lock:
            current = self._buckets[route.bucket].objects.get(name)
            _check_write_preconditions(current, upload.if_match, upload.if_none_match)
            self._uploads[upload_id] = upload
        return _json_response(
            {
                "namespace": self.namespace,
                "bucket": route.bucket,
                "object": name,
                "uploadId": upload_id,
                "timeCreated": _iso(upload.created),
                "storageTier": "Standard",
            }
        )

    def _find_upload(self, request: Request, route: _Route) -> tuple[str, _Upload]:
        upload_id = request.query.get("uploadId", "")
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None or (upload.bucket, upload.name) != (route.bucket, route.name):
            raise ServiceError(404, "NoSuchUpload", f"The upload '{upload_id}' does not exist")
        return upload_id, upload

    def _upload_part(self, request: Request, route: _Route) -> Response:
        _, upload = self._find_upload(request, route)
        part_num = request.query.get("uploadPartNum", "")
        if not part_num.isdigit() or not 1 <= int(part_num) <= 10000:
            raise ServiceError(400, "InvalidParameter", "uploadPartNum must be 1 to 10000")
        _check_content_md5(request)
        etag = str(uuid.uuid4())
        with self._lock:
            upload.parts[int(part_num)] = (etag, request.body)
        md5 = _b64(hashlib.md5(request.body).digest())
        return Response(200, {"etag": etag, "opc-content-md5": md5})

    def _commit_upload(self, request: Request, route: _Route) -> Response:
        upload_id, upload = self._find_upload(request, route)
        details = _json_body(request)
        chunks = []
        with self._lock:
            parts = dict(upload.parts)
        try:
            wanted = sorted((int(part["partNum"]), str(part["etag"])) for part in details.get("partsToCommit", []))
        except (KeyError, TypeError, ValueError) as error:
            raise ServiceError(400, "InvalidParameter", "Malformed partsToCommit") from error
        for part_num, etag in wanted:
            if part_num not in parts or parts[part_num][0] != etag:
                raise ServiceError(
                    400,
                    "InvalidParameter",
                    f"Part {part_num} with etag {etag} not found",
                )
            chunks.append(parts[part_num][1])
        stored = self._store(
            upload.bucket,
            upload.name,
            StoredObject(b"".join(chunks), upload.content_type, upload.metadata),
            upload.if_match,
            upload.if_none_match,
        )
        with self._lock:
            self._uploads.pop(upload_id, None)
        part_md5s = b"".join(hashlib.md5(chunk).digest() for chunk in chunks)
        multipart_md5 = f"{_b64(hashlib.md5(part_md5s).digest())}-{len(chunks)}"
        return Response(
            200,
            {
                "etag": stored.etag,
                "opc-multipart-md5": multipart_md5,
                "last-modified": formatdate(stored.modified, usegmt=True),
                "version-id": stored.version_id,
            },
        )

    def _abort_upload(self, request: Request, route: _Route) -> Response:
        upload_id, _ = self._find_upload(request, route)
        with self._lock:
            self._uploads.pop(upload_id, None)
        return Response(204)

    def _control(self, request: Request) -> Response:
        """Answer the unauthenticated test-control endpoints."""
        action = (request.method, request.path)
        if action == ("GET", "/_log"):
            return _json_response([asdict(entry) for entry in self.request_log()])
        if action == ("DELETE", "/_log"):
            self.clear_log()
            return Response(204)
        if action == ("POST", "/_fault"):
            try:
                rule = self.add_fault(**_json_body(request))
            except (TypeError, re.error) as error:
                raise ServiceError(400, "InvalidParameter", str(error)) from error
            return _json_response(asdict(rule))
        if action == ("DELETE", "/_fault"):
            self.clear_faults()
            return Response(204)
        if action == ("POST", "/_reset"):
            self.reset()
            return Response(204)
        raise ServiceError(404, "NotFound", "Unknown control endpoint")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    oci: OCIServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OCITestServer/1.0"
    sys_version = ""
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def send_response(self, code: int, message: str | None = None) -> None:
        """Like the base class, but with lower-case ``server`` and ``date``."""
        self.send_response_only(code, message)
        self.send_header("server", self.version_string())
        self.send_header("date", self.date_time_string())

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet; the request log records everything."""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            error = ServiceError(400, "InvalidParameter", "Malformed request body")
            self._write(error.response(self.command))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.oci.serve(Request(self.command, self.path, headers, body))
        if response is None:
            self.close_connection = True
            return
        self._write(response)

    def _read_body(self) -> bytes:
        """Read the whole body, whether sized by Content-Length or chunked."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("content-length") or 0)
        if length < 0:
            raise ValueError("negative content-length")
        return self.rfile.read(length)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name.lower(), value)
        if response.status not in (204, 304):
            self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; print the endpoint first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--namespace", default="testns")
    parser.add_argument("--bucket", action="append", default=[], help="repeatable")
    parser.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="KEY_ID=PEMFILE",
        help="accept this keyId signed with this public key; repeatable",
    )
    args = parser.parse_args(argv)
    server = OCIServer(namespace=args.namespace, buckets=args.bucket, host=args.host, port=args.port)
    for spec in args.public_key:
        key_id, sep, pem_file = spec.partition("=")
        if not sep:
            parser.error(f"--public-key expects KEY_ID=PEMFILE, got {spec!r}")
        server.add_key(key_id, Path(pem_file).read_bytes())
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with server:
        print(server.endpoint, flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
