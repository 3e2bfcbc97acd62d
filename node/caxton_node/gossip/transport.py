"""Encrypted gossip packets: msgpack sealed with AES-GCM under the cluster key.

Packet layout: version (1 byte) | key id (4 bytes, sha256 of the key) | nonce
(12 bytes) | ciphertext+tag. The keyring holds the primary key (used to seal)
and older keys (still accepted), so a key rotates without splitting the
cluster: add the new key everywhere, make it primary, then drop the old one.
A packet that fails authentication is dropped and counted, never parsed. The
node re-reads its key file while it runs (membership.py), so rotating needs no restart.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
AAD = b"caxton-gossip-v1"
MAX_PACKET = 65_000


class KeyringError(ValueError):
    pass


class Keyring:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise KeyringError("the gossip keyring is empty")
        for key in keys:
            if len(key) not in (16, 24, 32):
                raise KeyringError(f"gossip keys must be 16, 24 or 32 bytes, not {len(key)}")
        self._primary = AESGCM(keys[0])
        self._primary_id = _key_id(keys[0])
        self._by_id = {_key_id(k): AESGCM(k) for k in keys}
        self._ids = [_key_id(k).hex() for k in keys]

    def describe(self) -> dict[str, Any]:
        """The key ids (never the keys): which one seals, how many open, and each one's id in file order."""
        return {"primary": self._primary_id.hex(), "keys": len(self._by_id), "ids": list(self._ids)}

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        """One base64 key per line; the first is primary (`caxton security gossip-key`)."""
        try:
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except OSError as err:
            raise KeyringError(f"cannot read gossip key file {path}: {err.strerror}") from None
        try:
            return cls([base64.b64decode(line, validate=True) for line in lines])
        except ValueError as err:
            raise KeyringError(f"{path}: {err}") from None

    def seal(self, packet: dict[str, Any]) -> bytes:
        nonce = os.urandom(12)
        body = msgpack.packb(packet, use_bin_type=True)
        return bytes([VERSION]) + self._primary_id + nonce + self._primary.encrypt(nonce, body, AAD)

    def open(self, data: bytes) -> dict[str, Any] | None:
        """The packet, or None if it is not ours (wrong key, tampered, garbage)."""
        if len(data) < 1 + 4 + 12 + 16 or data[0] != VERSION:
            return None
        cipher = self._by_id.get(data[1:5])
        if cipher is None:
            return None
        try:
            body = cipher.decrypt(data[5:17], data[17:], AAD)
            packet = msgpack.unpackb(body, raw=False)
        except (InvalidTag, ValueError, msgpack.ExtraData):
            return None
        return packet if isinstance(packet, dict) else None


def key_id(key: bytes) -> str:
    """A key's public id, as packets, the API and the operator's status name it."""
    return _key_id(key).hex()


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:4]
