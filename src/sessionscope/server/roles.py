"""Who is calling: the organisation, role and name of the key a request presented."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    org: str
    #: How records name the key: never the key itself (see ``key_name``).
    key_name: str
    #: One of ``settings.ROLES``; None for a key with every right.
    role: str | None

    @property
    def role_name(self) -> str:
        return self.role or "full"

    def audit(self) -> dict[str, str]:
        """What a record of this caller's action says about it."""
        return {"key": self.key_name, "role": self.role_name}


def key_name(key: str) -> str:
    """A key's name in records and replies: a short fingerprint of it. Keys have no names of
    their own, and a record must never hold the secret."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]
