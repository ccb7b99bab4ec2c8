"""API keys: read from ``DRUGSLM_API_KEYS`` (comma-separated) or the file ``DRUGSLM_API_KEYS_FILE``
(keys one a line or comma-separated, ``#`` comments: a Kubernetes Secret key mounted as a file
holds the same comma-separated value as the variable), kept only as sha256 digests, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
HOW_TO_SET_KEYS = (
    "set DRUGSLM_API_KEYS=key1,key2 (or DRUGSLM_API_KEYS_FILE=/path/to/keys, one key a line) "
    "before starting the server"
)


class ApiKeys:
    def __init__(self, keys: list[str]) -> None:
        self._digests = [_digest(key) for key in keys if key]

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ApiKeys:
        env = os.environ if environ is None else environ
        keys = [key.strip() for key in env.get("DRUGSLM_API_KEYS", "").split(",") if key.strip()]
        keys_file = env.get("DRUGSLM_API_KEYS_FILE")
        if keys_file:
            path = Path(keys_file)
            if not path.is_file():
                raise FileNotFoundError(f"DRUGSLM_API_KEYS_FILE names {path}, which is not a file")
            for line in path.read_text(encoding="utf-8").splitlines():
                keys.extend(key.strip() for key in line.split("#", 1)[0].split(",") if key.strip())
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries a configured key (always, with no key configured)."""
        if not self.enabled:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        digest = _digest(token.strip())
        # compare against every digest (no early exit) so timing says nothing about which matched
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(digest, known)
        return found


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()
