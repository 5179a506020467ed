"""The Salesforce sandbox's REST reads: query / queryAll with query locators and pages, describe."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from connector.sandbox._http import Reply
from connector.sandbox.salesforce.org import Org, Row
from connector.sandbox.salesforce.schema import DEFAULT_BATCH, KEY_PREFIX, describe_field, render_row, sf_errors
from connector.sandbox.salesforce.soql import parse_soql, sort_rows


class Queries:
    """Query results held for paging (locator → records, page size, base path); callers hold the sandbox lock."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self._locators: dict[str, tuple[list[dict[str, Any]], int, str]] = {}

    def query(self, text: str, include_deleted: bool, headers: Mapping[str, str], version: str, endpoint: str) -> Reply:
        """GET /services/data/vXX.X/query (or queryAll, which includes deleted and merged rows)."""
        try:
            soql = parse_soql(text, self.org.schemas)
        except LookupError as exc:
            return Reply(400, sf_errors("INVALID_FIELD", str(exc.args[0])))
        except ValueError as exc:
            return Reply(400, sf_errors("MALFORMED_QUERY", str(exc)))
        table = self.org.tables[soql.sobject]
        rows: list[Row] = [r for r in table.values()
                           if (include_deleted or not r.get("IsDeleted")) and (soql.where is None or soql.where(r))]
        sort_rows(rows, soql.order_by, self.org.schemas[soql.sobject])
        if soql.limit is not None:
            rows = rows[: soql.limit]
        records = [render_row(soql.sobject, r, soql.fields, version) for r in rows]
        page = DEFAULT_BATCH
        m = re.search(r"batchSize\s*=\s*(\d+)", headers.get("sforce-query-options", ""))
        if m:
            page = min(DEFAULT_BATCH, max(200, int(m.group(1))))
        locator = f"01g{secrets.token_hex(6).upper()}"
        self._locators[locator] = (records, page, f"/services/data/v{version}/{endpoint}")
        return self._page(locator, 0)

    def query_more(self, ident: str) -> Reply:
        """GET the `nextRecordsUrl` of an earlier page."""
        locator, _, offset = ident.rpartition("-")
        if locator not in self._locators or not offset.isdigit():
            return Reply(400, sf_errors("INVALID_QUERY_LOCATOR", "invalid query locator"))
        return self._page(locator, int(offset))

    def _page(self, locator: str, offset: int) -> Reply:
        records, size, base = self._locators[locator]
        chunk = records[offset: offset + size]
        body: dict[str, Any] = {"totalSize": len(records), "done": offset + size >= len(records), "records": chunk}
        if not body["done"]:
            body["nextRecordsUrl"] = f"{base}/{locator}-{offset + size}"
        return Reply(200, body)


def describe(org: Org, sobject: str) -> Reply:
    """GET /services/data/vXX.X/sobjects/{sobject}/describe."""
    schema = org.schemas.get(sobject)
    if schema is None:
        return Reply(404, sf_errors("NOT_FOUND", f"The requested resource does not exist: {sobject}"))
    fields = []
    for fdef in schema.values():
        values = fdef.picklist
        if fdef.name == "Status" and sobject == "Lead":
            values = tuple(s["ApiName"] for s in sorted(org.tables["LeadStatus"].values(), key=lambda s: s["SortOrder"]))
        fields.append(describe_field(fdef, values))
    return Reply(200, {"name": sobject, "label": sobject, "keyPrefix": KEY_PREFIX[sobject], "custom": False,
                       "updateable": True, "queryable": True, "fields": fields})
