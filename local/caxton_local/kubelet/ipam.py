"""Hands each pod a loopback address of its own and remembers it across restarts."""

from __future__ import annotations

import ipaddress
import json
import threading
from pathlib import Path


def addresses_with_listeners() -> set[str]:
    """IPv4 addresses some process listens on (TCP) or has bound (UDP), from /proc/net.

    Another local control plane, or anything else on this machine, may already
    serve on an address of our range; handing it to a pod would make the pod's
    bind fail and the pod proxy reach the wrong process.
    """
    found = set()
    for table, wanted_state in (("/proc/net/tcp", "0A"), ("/proc/net/udp", "07")):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == wanted_state:
                hex_ip = fields[1].split(":")[0]
                found.add(str(ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(hex_ip), "little"))))
    return found


class AddressPoolExhausted(RuntimeError):
    pass


class LoopbackIPAM:
    """Allocates addresses from [first, last] by pod UID; the table is kept on disk."""

    def __init__(self, path: Path, first: str, last: str) -> None:
        self._path = path
        self._first = int(ipaddress.IPv4Address(first))
        self._last = int(ipaddress.IPv4Address(last))
        self._lock = threading.Lock()
        try:
            self._by_uid: dict[str, str] = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self._by_uid = {}

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._by_uid, indent=1, sort_keys=True))
        tmp.replace(self._path)

    def claim(self, uid: str, preferred: str | None = None) -> str:
        """The pod's address: its existing one, `preferred` if free, else the lowest free."""
        with self._lock:
            if uid in self._by_uid:
                return self._by_uid[uid]
            used = set(self._by_uid.values()) | addresses_with_listeners()
            if preferred and preferred not in used:
                choice = preferred
            else:
                choice = next(
                    (str(ipaddress.IPv4Address(n)) for n in range(self._first, self._last + 1)
                     if str(ipaddress.IPv4Address(n)) not in used),
                    "",
                )
                if not choice:
                    raise AddressPoolExhausted(
                        f"no free pod address between {ipaddress.IPv4Address(self._first)} and "
                        f"{ipaddress.IPv4Address(self._last)}"
                    )
            self._by_uid[uid] = choice
            self._save()
            return choice

    def release(self, uid: str) -> None:
        with self._lock:
            if self._by_uid.pop(uid, None) is not None:
                self._save()

    def owners(self) -> dict[str, str]:
        with self._lock:
            return dict(self._by_uid)
