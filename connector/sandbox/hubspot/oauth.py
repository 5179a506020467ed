"""The sandbox's OAuth app: the refresh-token grant at /oauth/v1/token, access tokens with a set lifetime, expired
ones refused with HubSpot's 401, and refresh tokens optionally rotated on every grant
[crm-behaviour: HubSpot OAuth access tokens expire]."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs

from connector.sandbox._http import Reply
from connector.sandbox.hubspot.wire import error_body


class OAuthApp:
    """One installed OAuth app: its credentials, the refresh tokens it honours and the access tokens it issued."""

    def __init__(self, client_id: str, client_secret: str, refresh_token: str, *, lifetime_seconds: float,
                 rotate_refresh_tokens: bool, monotonic: Callable[[], float]) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.lifetime_seconds = lifetime_seconds
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._refresh = refresh_token
        self._access: dict[str, float] = {}  # access token -> monotonic expiry
        self.grants = 0  # access tokens issued
        self.refusals = 0  # 401s for an expired or revoked token

    @property
    def refresh_token(self) -> str:
        """The refresh token that works now (with rotation, each grant replaces it and the old one is refused)."""
        with self._lock:
            return self._refresh

    def grant(self, body: bytes) -> Reply:
        """POST /oauth/v1/token: form-encoded grant_type=refresh_token, client_id, client_secret, refresh_token."""
        form = form_fields(body)
        if form.get("grant_type") != "refresh_token":
            return Reply(400, {"status": "BAD_GRANT_TYPE", "message": "grant_type must be refresh_token"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return Reply(400, {"status": "BAD_CLIENT_ID", "message": "missing or unknown client id or secret"})
        with self._lock:
            if form.get("refresh_token") != self._refresh:
                return Reply(400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"})
            if self.rotate_refresh_tokens:
                self._refresh = f"sandbox-refresh-{secrets.token_hex(8)}"
            refresh = self._refresh
            access = f"sandbox-access-{secrets.token_hex(12)}"
            self._access[access] = self._monotonic() + self.lifetime_seconds
            self.grants += 1
        return Reply(200, {"token_type": "bearer", "access_token": access, "refresh_token": refresh,
                           "expires_in": self.lifetime_seconds})

    def refuse(self, token: str) -> Reply | None:
        """None for a live access token this app issued; else HubSpot's 401 (expired or unknown)."""
        with self._lock:
            expires = self._access.get(token)
            if expires is not None and self._monotonic() < expires:
                return None
            self.refusals += 1
        if expires is None:
            return Reply(401, error_body("INVALID_AUTHENTICATION", "Authentication credentials not found."))
        minutes = int((self._monotonic() - expires) // 60)
        return Reply(401, error_body("EXPIRED_AUTHENTICATION", f"The OAuth token used to make this call expired {minutes} minute(s) ago."))

    def set_refresh_token(self, token: str) -> None:
        """The app's refresh token is replaced (re-authorised): the old one is refused from now on."""
        with self._lock:
            self._refresh = token

    def revoke_access_tokens(self) -> None:
        """Every issued access token stops working now (HubSpot may invalidate tokens before `expires_in`)."""
        with self._lock:
            self._access = dict.fromkeys(self._access, self._monotonic())


def form_fields(body: bytes) -> Mapping[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
