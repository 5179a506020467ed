"""Salesforce sandbox sign-in: OAuth token grants (client credentials, password, JWT bearer), SOAP login, sessions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape

import jwt

from connector.sandbox._http import Reply
from connector.sandbox.salesforce.org import Org
from connector.sandbox.salesforce.schema import ORG_ID

XML = "text/xml;charset=UTF-8"
SOAP_ENVELOPE = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                 'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ')


@dataclass
class Credentials:
    """The connected app's and the admin user's secrets (the sandbox's attributes of the same names)."""

    client_id: str
    client_secret: str
    password: str
    security_token: str


class Sessions:
    """Issued access tokens and registered JWT keys; callers hold the sandbox lock."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.tokens: dict[str, tuple[datetime, str]] = {}  # token -> (issued_at, user id)
        self.jwt_keys: dict[str, tuple[bytes, str]] = {}  # client id -> (public key PEM, username)

    def issue(self, user_id: str, instance_url: str, client_secret: str) -> dict[str, Any]:
        token = f"00D!{secrets.token_urlsafe(24)}"
        issued = self.org.clock.now()
        self.tokens[token] = (issued, user_id)
        issued_ms = str(int(issued.timestamp() * 1000))
        signature = base64.b64encode(hmac.new(client_secret.encode(), f"{instance_url}{issued_ms}".encode(),
                                              hashlib.sha256).digest()).decode()
        return {"access_token": token, "instance_url": instance_url,
                "id": f"{instance_url}/id/{ORG_ID}/{user_id}", "token_type": "Bearer",
                "issued_at": issued_ms, "signature": signature}

    def authenticate(self, headers: Mapping[str, str], ttl_seconds: int) -> str | None:
        """The user of the request's live Bearer / OAuth token, or None."""
        auth = headers.get("authorization", "")
        if not auth.startswith(("Bearer ", "OAuth ")):
            return None
        entry = self.tokens.get(auth.split(" ", 1)[1].strip())
        if entry is None:
            return None
        issued, user_id = entry
        if self.org.clock.now() >= issued + timedelta(seconds=ttl_seconds):
            return None
        return user_id

    def token(self, headers: Mapping[str, str], body: bytes, creds: Credentials, instance_url: str) -> Reply:
        """POST /services/oauth2/token."""
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        grant = form.get("grant_type", "")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_grant(form.get("assertion", ""), instance_url, creds.client_secret)
        if grant not in ("client_credentials", "password"):
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        if client_id != creds.client_id or client_secret != creds.client_secret:
            return Reply(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        if grant == "client_credentials":
            return Reply(200, self.issue(self.org.admin_user_id, instance_url, creds.client_secret))
        user = self.org.user_by_username(form.get("username", ""))
        if user is None or form.get("password") not in (creds.password, creds.password + creds.security_token):
            return Reply(400, {"error": "invalid_grant", "error_description": "authentication failure"})
        return Reply(200, self.issue(user["Id"], instance_url, creds.client_secret))

    def _jwt_grant(self, assertion: str, instance_url: str, client_secret: str) -> Reply:
        bad = Reply(400, {"error": "invalid_grant", "error_description": "invalid assertion"})
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return bad
        entry = self.jwt_keys.get(str(claims.get("iss")))
        if entry is None:
            return Reply(400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
        key, username = entry
        try:
            # Expiry is checked against the sandbox clock (tests freeze it), not the wall clock.
            verified = jwt.decode(assertion, key, algorithms=["RS256"], audience=instance_url,
                                  issuer=claims["iss"], options={"verify_exp": False, "require": ["exp", "iss", "sub", "aud"]})
        except jwt.PyJWTError:
            return bad
        if verified["sub"] != username or float(verified["exp"]) <= self.org.clock.now().timestamp():
            return bad
        user = self.org.user_by_username(username)
        if user is None:
            return bad
        return Reply(200, self.issue(user["Id"], instance_url, client_secret))

    def soap_login(self, body: bytes, creds: Credentials, instance_url: str) -> Reply:
        """POST /services/Soap/u/{version}: the partner API login legacy orgs use."""
        ns = {"n": "urn:partner.soap.sforce.com"}
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            return _soap_fault("INVALID_LOGIN", "INVALID_LOGIN: malformed request")
        username = root.findtext(".//n:username", default="", namespaces=ns)
        password = root.findtext(".//n:password", default="", namespaces=ns)
        user = self.org.user_by_username(username)
        if user is None or password != creds.password + creds.security_token:
            return _soap_fault("INVALID_LOGIN", "INVALID_LOGIN: Invalid username, password, security token; or user locked out.")
        token = self.issue(user["Id"], instance_url, creds.client_secret)["access_token"]
        server_url = f"{instance_url}/services/Soap/u/62.0/{ORG_ID}"
        xml = (SOAP_ENVELOPE + 'xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>'
               f"<passwordExpired>false</passwordExpired><sandbox>true</sandbox><serverUrl>{xml_escape(server_url)}</serverUrl>"
               f"<sessionId>{xml_escape(token)}</sessionId><userId>{user['Id']}</userId>"
               "</result></loginResponse></soapenv:Body></soapenv:Envelope>")
        return Reply(200, xml, content_type=XML)


def _soap_fault(code: str, message: str) -> Reply:
    xml = (SOAP_ENVELOPE + 'xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
           f"<faultcode>sf:{code}</faultcode><faultstring>{xml_escape(message)}</faultstring>"
           "</soapenv:Fault></soapenv:Body></soapenv:Envelope>")
    return Reply(500, xml, content_type=XML)
