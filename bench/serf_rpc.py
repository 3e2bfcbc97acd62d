"""A minimal client for a Serf agent's RPC port (msgpack over TCP), so the benchmark can
join agents and read their member lists over open connections, as cheaply as it asks
its own members, instead of forking a `serf members` CLI for every agent on every poll.

Protocol (serf/client): every request is a header map {Command, Seq} and, for some
commands, a body map; every response is a header {Seq, Error} and, for some, a body.
"""

from __future__ import annotations

import socket
from typing import Any

import msgpack


class SerfError(RuntimeError):
    pass


class SerfRPC:
    def __init__(self, addr: str, *, timeout: float = 30.0) -> None:
        host, port = addr.rsplit(":", 1)
        self._sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._unpacker = msgpack.Unpacker(raw=True)
        self._seq = 0
        self.call("handshake", {"Version": 1})

    def send(self, command: str, body: dict[str, Any] | None = None) -> int:
        """Writes a request without waiting for its answer (see `receive`); returns its Seq."""
        seq = self._seq
        self._seq += 1
        data = msgpack.packb({"Command": command, "Seq": seq}, use_bin_type=False)
        if body is not None:
            data += msgpack.packb(body, use_bin_type=False)
        self._sock.sendall(data)
        return seq

    def _next(self) -> Any:
        for obj in self._unpacker:
            return obj
        while True:
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise SerfError("the agent closed the RPC connection")
            self._unpacker.feed(chunk)
            for obj in self._unpacker:
                return obj

    def receive(self, seq: int, *, has_body: bool) -> Any:
        header = self._next()
        if header.get(b"Seq") != seq:
            raise SerfError(f"answer {header.get(b'Seq')} to request {seq}")
        error = header.get(b"Error") or b""
        if error:
            raise SerfError(error.decode(errors="replace"))
        return self._next() if has_body else None

    def call(self, command: str, body: dict[str, Any] | None = None, *, has_body: bool = False) -> Any:
        return self.receive(self.send(command, body), has_body=has_body)

    def join_send(self, addresses: list[str]) -> int:
        return self.send("join", {"Existing": addresses, "Replay": False})

    def statuses(self) -> list[str]:
        """The status (alive, failed, left...) of every member this agent knows, itself included."""
        body = self.call("members", has_body=True)
        return [m[b"Status"].decode() for m in body[b"Members"]]

    def close(self) -> None:
        self._sock.close()
