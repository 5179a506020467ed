"""The Salesforce sandbox: a loopback org that simple-salesforce and the Pub/Sub client talk to (see `server`)."""

from __future__ import annotations

from connector.sandbox.salesforce.schema import REQUEST_LINE_MAX, FieldDef, format_value, sf_id
from connector.sandbox.salesforce.server import SalesforceSandbox
from connector.sandbox.salesforce.soql import Soql, decode_string_literal, like_regex, parse_soql, tokenize

__all__ = ["REQUEST_LINE_MAX", "FieldDef", "SalesforceSandbox", "Soql", "decode_string_literal", "format_value", "like_regex",
           "parse_soql", "sf_id", "tokenize"]
