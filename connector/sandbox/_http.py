"""The sandboxes' one loopback HTTP(S) server: lifecycle, replies, fault switches, request log and call counters."""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import socket
import ssl
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connector.core.clock import Clock, SystemClock

# The logs keep the newest entries only, so a long-running `connector sandbox` stays bounded.
LOG_MAX = 1_000_000
CERT_FILE, KEY_FILE = "sandbox-cert.pem", "sandbox-key.pem"

LogEntryT = TypeVar("LogEntryT")
FailureT = TypeVar("FailureT")


@dataclass
class Reply:
    """One HTTP reply: a JSON body (dict / list), a text body (str) or none; `content_type` None means JSON."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


class SlidingWindow:
    """Monotonic times of the requests in the last `seconds`: a rolling rate limit's memory."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._times: deque[float] = deque()

    def count(self, now: float) -> int:
        """How many requests fall in the window ending at `now` (older ones are forgotten)."""
        times = self._times
        while times and times[0] <= now - self.seconds:
            times.popleft()
        return len(times)

    def add(self, now: float) -> None:
        self._times.append(now)

    def retry_after(self, now: float) -> float:
        """Seconds until the oldest request in the window leaves it."""
        return self._times[0] + self.seconds - now if self._times else 0.0


class SandboxServer(ABC, Generic[LogEntryT, FailureT]):
    """A sandbox CRM served from a daemon thread on loopback, with the fault switches every sandbox has.

    Fault switches are attributes, changeable while the server runs: `latency_seconds` (plus a uniform
    ± `latency_jitter_seconds`, from a seeded generator), `error_rate_5xx` (rolled by `is_failing_5xx`)
    and `fail_write_ids` (id → the CRM's per-record error for writes to it). Every request is counted in
    `calls` (by endpoint label) and appended to `request_log` in the sandbox's own entry shape.
    """

    thread_name: ClassVar[str] = "sandbox"
    json_content_type: ClassVar[str] = "application/json;charset=utf-8"

    def __init__(self, *, seed: int, clock: Clock | None, host: str = "127.0.0.1", port: int = 0, tls: bool = False) -> None:
        self.host = host
        self.port = port
        self.base_url = ""
        self.ca_file = ""  # with tls: the self-signed certificate, which is also the CA file clients trust
        self._tls = tls
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.request_log: list[LogEntryT] = []
        self.fail_write_ids: dict[str, FailureT] = {}
        self.error_rate_5xx: float = 0.0
        self.latency_seconds: float = 0.0
        self.latency_jitter_seconds: float = 0.0
        self._fault_rng = random.Random(seed)
        # Its own generator: latency draws never shift the sequence of injected faults.
        self._latency_rng = random.Random(seed)
        self._arrival = threading.local()  # the request in hand's arrival time, per server thread
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None

    def start(self) -> str:
        """Serve on host:port (0 = a free port) in a daemon thread; returns the base URL."""
        context = None
        if self._tls:
            self._tmpdir = tempfile.mkdtemp(prefix=f"{self.thread_name}-")
            cert_file, key_file = write_certificate(Path(self._tmpdir))
            self.ca_file = str(cert_file)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
        server = _Server((self.host, self.port), _Handler, context)
        server.sandbox = self
        self._server = server
        self.base_url = f"{'https' if self._tls else 'http'}://{self.host}:{server.server_address[1]}"
        # A short poll interval keeps stop() fast (shutdown waits for the serve loop to notice).
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.request_log.clear()

    def forced_failure(self, *record_ids: str) -> FailureT | None:
        """The configured write failure for the first of these ids that has one."""
        for record_id in record_ids:
            failure = self.fail_write_ids.get(record_id)
            if failure is not None:
                return failure
        return None

    def is_failing_5xx(self) -> bool:
        """Roll the 5xx switch for one request."""
        return bool(self.error_rate_5xx) and self._fault_rng.random() < self.error_rate_5xx

    def delay_seconds(self) -> float:
        """The simulated network latency of one request."""
        delay = self.latency_seconds
        if self.latency_jitter_seconds > 0:
            delay += self._latency_rng.uniform(-self.latency_jitter_seconds, self.latency_jitter_seconds)
        return max(0.0, delay)

    def serve_request(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """One request through the switches and the sandbox's `handle`, counted and logged."""
        delay = self.delay_seconds()
        received = self._clock.monotonic()
        if delay > 0:
            time.sleep(delay)  # simulated network latency, outside the data lock
        # It reaches the CRM when the network's delay is over, however late this process's thread wakes up.
        self._arrival.at = received + delay
        try:
            with self._lock:
                label, reply = self.handle(method, raw_path, headers, body)
                self.calls[label] += 1
                self.request_log.append(self.log_entry(method, raw_path, label, reply.status))
                for log in self.bounded_logs():
                    if len(log) > LOG_MAX:
                        del log[: LOG_MAX // 2]
        finally:
            self._arrival.at = None
        return reply

    def arrived_at(self) -> float:
        """When the request in hand arrived: its network delay over, before it queued for the sandbox's one data
        lock. Rate limits count it then, as a CRM's gateway does at arrival (the data lock is the sandbox's own
        queue, not the CRM's); a request handled outside `serve_request` counts at the time it is handled."""
        at: float | None = getattr(self._arrival, "at", None)
        return self._clock.monotonic() if at is None else at

    def bounded_logs(self) -> list[list[Any]]:
        """The logs trimmed to LOG_MAX after each request."""
        return [self.request_log]

    @abstractmethod
    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> tuple[str, Reply]:
        """One request (lower-case header names) → (endpoint label, reply); called with the lock held."""

    @abstractmethod
    def log_entry(self, method: str, raw_path: str, label: str, status: int) -> LogEntryT:
        """The request log's entry for one served request."""


def write_certificate(directory: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1 / localhost; it is also the CA file clients trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "salesforce-sandbox.localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / CERT_FILE, directory / KEY_FILE
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: SandboxServer[Any, Any]

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None) -> None:
        self.context = context
        super().__init__(address, handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        if self.context is None:
            return sock, addr
        # The TLS handshake runs in the request thread, so one slow client cannot stall accept().
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive so clients pool connections (every reply carries Content-Length).
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        # Headers and body go out as separate writes; without TCP_NODELAY every keep-alive
        # request waits ~40 ms on Nagle + delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.context is not None:
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.close_connection = True
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def _serve(self) -> None:
        sandbox = self.server.sandbox
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = sandbox.serve_request(self.command, self.path, headers, body)
        payload = b""
        if reply.body is not None:
            text = reply.body if isinstance(reply.body, str) else json.dumps(reply.body, separators=(",", ":"))
            payload = text.encode()
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", reply.content_type or sandbox.json_content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve
