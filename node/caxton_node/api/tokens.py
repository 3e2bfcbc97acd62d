"""The API tokens a node accepts, re-read from the token file while it runs.

The file holds one token per line. The first is the one clients send (the operator, the
plugin and `caxton ...` read the first line); every line is accepted. So a token rotates
without a restart or a refused call: add the new token as a second line, move it first
once every node accepts it, drop the old one once no client sends it. Each token is known
outside this module only by its id (a SHA-256 prefix) and when it was last presented.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("caxton.api")
CHECK_INTERVAL = 2.0  # seconds between looks at the token file
MIN_LENGTH = 16


class TokenError(ValueError):
    pass


def token_id(token: bytes) -> str:
    """What the API and metrics show for a token: enough to tell tokens apart, useless to a thief."""
    return hashlib.sha256(token).hexdigest()[:12]


def first_line(text: str) -> str:
    """The token a client sends, from a token file or Secret value that may hold several."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def parse(text: str, where: str) -> list[bytes]:
    tokens = [line.strip().encode() for line in text.splitlines() if line.strip()]
    for token in tokens:
        if len(token) < MIN_LENGTH:
            raise TokenError(f"an API token in {where} is shorter than {MIN_LENGTH} characters")
    return tokens


class TokenSet:
    """Accepted tokens; `path` None means no file: every call is refused."""

    def __init__(self, tokens: list[bytes], path: Path | None = None) -> None:
        self.path = path
        self._tokens = tokens
        self._stamp = hashlib.sha256(b"\n".join(tokens)).digest()
        self._checked = time.monotonic()
        self._last_used: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path | None) -> TokenSet:
        if path is None:
            return cls([])
        try:
            text = path.read_text()
        except OSError as err:
            raise TokenError(f"cannot read security.api.token_file {path}: {err.strerror}") from None
        tokens = parse(text, str(path))
        if not tokens:
            raise TokenError(f"security.api.token_file {path} holds no token")
        return cls(tokens, path)

    @property
    def primary(self) -> str | None:
        """The token this node itself sends (to its peers' APIs)."""
        self._maybe_reload()
        return self._tokens[0].decode() if self._tokens else None

    def accepts(self, presented: bytes) -> bool:
        """Constant-time against every accepted token: no early exit, so timing tells nothing."""
        self._maybe_reload()
        tokens = self._tokens
        match = -1
        for i, token in enumerate(tokens):
            if hmac.compare_digest(presented, token):
                match = i
        if match < 0:
            return False
        self._last_used[token_id(tokens[match])] = time.monotonic()
        return True

    def report(self) -> list[dict[str, Any]]:
        """Each accepted token by id, whether clients send it, and how long since one did."""
        self._maybe_reload()
        now = time.monotonic()
        out = []
        for i, token in enumerate(self._tokens):
            ident = token_id(token)
            used = self._last_used.get(ident)
            out.append({"id": ident, "primary": i == 0,
                        "lastUsedSecondsAgo": round(now - used, 1) if used is not None else None})
        return out

    def _maybe_reload(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if now - self._checked < CHECK_INTERVAL:
            return
        with self._lock:
            if now - self._checked < CHECK_INTERVAL:
                return
            self._checked = now
            try:
                tokens = parse(self.path.read_text(), str(self.path))
            except (OSError, TokenError) as err:
                log.warning("the API token file changed but cannot be used, keeping the current tokens: %s", err)
                return
            stamp = hashlib.sha256(b"\n".join(tokens)).digest()
            if not tokens or stamp == self._stamp:
                return
            self._tokens, self._stamp = tokens, stamp
            log.info("reloaded the API tokens from %s: %s accepted, %s sent", self.path,
                     ", ".join(token_id(t) for t in tokens), token_id(tokens[0]))
