"""Loopback receivers for notifications: an SMTP server (aiosmtpd) for the e-mail channel and an HTTP server standing
in for Slack, Microsoft Teams and generic webhooks. Each records what arrives, so tests and the demo can show it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# aiosmtpd warns on every AUTH that a legacy session attribute it sets itself is deprecated: noise here.
logging.getLogger("mail.log").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Post:
    """One POST the HTTP receiver answered 2xx."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """A loopback HTTP server recording each POST. It answers the way the services it stands in for do: paths under
    /api/ like Slack's Web API ({"ok": true}), anything else like a Slack incoming webhook ("ok", 200).

    `failures` answers that many 500s first; `status` (path -> HTTP status, or None for the default) can answer more.
    """

    def __init__(self, failures: int = 0, status: Callable[[str], int | None] | None = None) -> None:
        self.posts: list[Post] = []
        self.answers: list[int] = []
        self.failures = failures
        self.status = status
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code, reply, kind = receiver._answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-http-receiver", daemon=True)
        self._thread.start()

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        with self._lock:
            code = self.status(path) if self.status is not None else None
            if code is None and self.failures > 0:
                self.failures -= 1
                code = 500
            code = code or 200
            self.answers.append(code)
            if code < 300:
                self.posts.append(Post(path, headers, body))
        if path.startswith("/api/"):  # Slack's Web API: a JSON envelope with "ok"
            return code, json.dumps({"ok": code < 300, "channel": "D0SANDBOX", "ts": "1.000100"}).encode(), "application/json"
        return code, (b"ok" if code < 300 else b"error"), "text/plain"

    def messages(self) -> list[Any]:
        """The JSON bodies received, in order."""
        return [post.json() for post in self.posts]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Mail:
    """One message the SMTP receiver accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def text(self) -> str:
        """The plain-text body (the first text part of a multipart message)."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        return str(part.get_content()) if part is not None else ""


class SmtpReceiver:
    """A loopback SMTP server (aiosmtpd) recording each message; with `user`/`password` it requires AUTH LOGIN/PLAIN,
    allowed without TLS (loopback only). Point an apprise e-mail channel at it with `mailto_url`."""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.mails: list[Mail] = []
        self.user, self.password = user, password
        self._loop = asyncio.new_event_loop()
        auth = self._authenticate if user is not None else None
        factory = lambda: SMTP(_Handler(self), hostname="127.0.0.1", authenticator=auth, auth_require_tls=False)  # noqa: E731
        self._server = self._loop.run_until_complete(self._loop.create_server(factory, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox-smtp-receiver", daemon=True)
        self._thread.start()

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login.decode() == self.user and data.password.decode() == self.password
        return AuthResult(success=ok)

    def mailto_url(self, to: str, sender: str = "connector@example.com") -> str:
        """An apprise URL for plain SMTP on this port (mode=insecure: no TLS), sending from `sender` to `to`."""
        credentials = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@" if self.user is not None else ""
        query = urlencode({"mode": "insecure", "from": sender, "to": to})
        return f"mailto://{credentials}127.0.0.1:{self.port}?{query}"

    def close(self) -> None:
        def stop() -> None:
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Handler:
    """aiosmtpd's handler: parse and record each message."""

    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.receiver.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message))
        return "250 OK"
