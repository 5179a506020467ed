"""Salesforce access tokens: OAuth client credentials, JWT bearer, password (OAuth or SOAP login) or a static token."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape

import jwt
import requests

from connector.core.clock import Clock
from connector.config import SalesforceSettings
from connector.core.errors import AuthError, ConfigError, ConfigProblem, TransientError

CRM = "salesforce"
# The JWT bearer assertion may live at most 3 minutes (simple-salesforce uses the same)
# [crm-behaviour: Salesforce authentication modes].
JWT_LIFETIME = timedelta(minutes=3)
SOAP_NS = {"soapenv": "http://schemas.xmlsoap.org/soap/envelope/", "p": "urn:partner.soap.sforce.com"}
# The config key an admin must fix when a mode's credentials are refused.
CREDENTIAL_KEYS = {
    "token": "salesforce.access_token",
    "client_credentials": "salesforce.client_id / salesforce.client_secret",
    "jwt": "salesforce.private_key_file / salesforce.client_id / salesforce.username",
    "password": "salesforce.username / salesforce.password / salesforce.security_token",
}


@dataclass(frozen=True, slots=True)
class SalesforceToken:
    """An access token and the instance it is valid for; the token never appears in repr or logs."""

    access_token: str = field(repr=False)
    instance_url: str
    org_id: str | None = None  # the tenant id the Pub/Sub API asks for [crm-behaviour: Salesforce Pub/Sub API calls]


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL (the JWT audience and the token endpoint's base)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def org_id_of(identity_url: object, access_token: str) -> str | None:
    """The org id: from the OAuth identity URL (`…/id/<orgId>/<userId>`), else the session id's `<orgId>!` prefix."""
    if isinstance(identity_url, str):
        parts = urlsplit(identity_url).path.strip("/").split("/")
        if len(parts) >= 3 and parts[-3] == "id" and parts[-2]:
            return parts[-2]
    prefix, bang, _ = access_token.partition("!")
    # Session ids start with the 15-character org id (key prefix 00D) and "!".
    return prefix if bang and prefix.startswith("00D") and len(prefix) in (15, 18) else None


class SalesforceAuth:
    """Obtains access tokens for one org in the configured mode; `fetch()` again to refresh."""

    def __init__(self, settings: SalesforceSettings, http: requests.Session, clock: Clock) -> None:
        mode = settings.auth_mode
        if mode is None:
            raise ConfigError([ConfigProblem(
                "salesforce", "no usable auth: set access_token + instance_url, client_id + client_secret, "
                "client_id + username + private_key_file (JWT), or username + password (+ security_token)",
            )])
        self.mode = mode
        self.credential = CREDENTIAL_KEYS[mode]
        self._settings = settings
        self._http = http
        self._clock = clock
        try:
            self._login_origin = origin(settings.login_url)
        except ValueError as exc:
            raise ConfigError([ConfigProblem("salesforce.login_url", str(exc))]) from None

    @property
    def can_refresh(self) -> bool:
        """A static token cannot be renewed by the connector: a 401 on it needs a new token from the admin."""
        return self.mode != "token"

    def fetch(self) -> SalesforceToken:
        """A fresh token. AuthError: credentials refused; TransientError: the login service failed, retry."""
        s = self._settings
        if self.mode == "token":
            assert s.access_token is not None and s.instance_url  # guaranteed by auth_mode
            token = s.access_token.get_secret_value()
            return SalesforceToken(token, s.instance_url.rstrip("/"), org_id_of(None, token))
        if self.mode == "client_credentials":
            assert s.client_id and s.client_secret is not None
            return self._oauth({"grant_type": "client_credentials", "client_id": s.client_id,
                                "client_secret": s.client_secret.get_secret_value()})
        if self.mode == "jwt":
            return self._oauth({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self._assertion()})
        assert s.username and s.password is not None
        password = s.password.get_secret_value() + (s.security_token.get_secret_value() if s.security_token else "")
        if s.client_id and s.client_secret is not None:
            return self._oauth({"grant_type": "password", "client_id": s.client_id,
                                "client_secret": s.client_secret.get_secret_value(), "username": s.username,
                                "password": password})
        # Legacy SOAP login(): retired in Summer '27 and off by default in new orgs; kept for old orgs
        # [crm-behaviour: Salesforce authentication modes].
        return self._soap_login(s.username, password)

    def _assertion(self) -> str:
        s = self._settings
        assert s.client_id and s.username and s.private_key_file
        try:
            key = Path(s.private_key_file).read_bytes()
        except OSError as exc:
            raise ConfigError([ConfigProblem("salesforce.private_key_file", f"cannot read {s.private_key_file}: {exc.strerror}")]) from None
        claims = {
            "iss": s.client_id,
            "sub": s.username,
            # The audience is the login service itself (login / test / My Domain), not the instance.
            "aud": self._login_origin,
            "exp": int((self._clock.now() + JWT_LIFETIME).timestamp()),
        }
        try:
            return jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigError([ConfigProblem("salesforce.private_key_file", f"not a usable RSA private key: {type(exc).__name__}")]) from None

    def _post(self, url: str, **kwargs: object) -> requests.Response:
        try:
            return self._http.post(url, **kwargs)  # type: ignore[arg-type]
        except requests.exceptions.SSLError as exc:
            raise ConfigError([ConfigProblem("salesforce.ca_bundle", f"TLS verification of {origin(url)} failed; "
                                              "set ca_bundle to the CA file that signs it")]) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(f"salesforce login: cannot reach {origin(url)} ({type(exc).__name__})",
                                 crm=CRM, endpoint="oauth2.token") from exc

    def _oauth(self, form: dict[str, str]) -> SalesforceToken:
        url = f"{self._login_origin}/services/oauth2/token"
        response = self._post(url, data=form)
        if response.status_code >= 500:
            raise TransientError(f"salesforce login: HTTP {response.status_code} from {url}", crm=CRM,
                                 endpoint="oauth2.token", status=response.status_code)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error", "no token") if isinstance(body, dict) else "no token"
            raise AuthError(f"the {self.mode} login at {self._login_origin} was refused ({error}, HTTP {response.status_code})",
                            crm=CRM, credential=self.credential)
        instance = body.get("instance_url") or self._settings.instance_url
        if not instance:
            raise AuthError("the token response names no instance_url; set salesforce.instance_url", crm=CRM,
                            credential="salesforce.instance_url")
        return SalesforceToken(str(body["access_token"]), origin(str(instance)), org_id_of(body.get("id"), str(body["access_token"])))

    def _soap_login(self, username: str, password: str) -> SalesforceToken:
        url = f"{self._login_origin}/services/Soap/u/{self._settings.api_version}"
        envelope = (
            '<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:urn="urn:partner.soap.sforce.com"><env:Body><urn:login>'
            f"<urn:username>{xml_escape(username)}</urn:username><urn:password>{xml_escape(password)}</urn:password>"
            "</urn:login></env:Body></env:Envelope>"
        )
        response = self._post(url, data=envelope.encode("utf-8"),
                              headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": "login"})
        try:
            root = ElementTree.fromstring(response.content)
        except ElementTree.ParseError:
            root = None
        fault = root.findtext(".//faultcode") if root is not None else None
        if response.status_code >= 500 and not fault:
            raise TransientError(f"salesforce login: HTTP {response.status_code} from {url}", crm=CRM,
                                 endpoint="soap.login", status=response.status_code)
        session_id = root.findtext(".//p:sessionId", namespaces=SOAP_NS) if root is not None else None
        server_url = root.findtext(".//p:serverUrl", namespaces=SOAP_NS) if root is not None else None
        if fault or not session_id or not server_url:
            raise AuthError(f"the SOAP login at {self._login_origin} was refused ({fault or 'no session'})",
                            crm=CRM, credential=self.credential)
        org_id = root.findtext(".//p:userInfo/p:organizationId", namespaces=SOAP_NS) if root is not None else None
        return SalesforceToken(session_id, origin(server_url), org_id or org_id_of(None, session_id))
