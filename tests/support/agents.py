"""Example agents built from source (examples/agents/build.sh), and the API calls tests make with them."""

from __future__ import annotations

import base64
import functools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

AGENTS_DIR = Path(__file__).resolve().parents[2] / "examples" / "agents"


@functools.cache
def build_example_agents() -> dict[str, bytes]:
    """Every example agent by name (file stem), compiled from its WAT or C source."""
    subprocess.run(
        ["bash", str(AGENTS_DIR / "build.sh")], check=True, capture_output=True, timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    return {path.stem: path.read_bytes() for path in (AGENTS_DIR / "build").glob("*.wasm")}


# -- talking to a node's API about agents and messages ------------------------------------------

def deploy(client: httpx.Client, agent_id: str, wasm: bytes, **limits: Any) -> httpx.Response:
    return client.post("/v1/agents", json={"id": agent_id, "wasm": base64.b64encode(wasm).decode(), "limits": limits})


def send(client: httpx.Client, receiver: str, content: Any, *, sender: str = "tester",
         conversation: str = "") -> dict[str, Any]:
    message = {"performative": "request", "sender": sender, "receiver": receiver, "content": content}
    if conversation:
        message["conversation_id"] = conversation
    resp = client.post("/v1/messages", json=message)
    assert resp.status_code == 202, resp.text
    result: dict[str, Any] = resp.json()
    return result


def collect(client: httpx.Client, mailbox: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Replies in `mailbox` until `count` have arrived or `timeout` seconds passed."""
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(replies) < count and time.monotonic() < deadline:
        replies += client.get(f"/v1/mailboxes/{mailbox}", params={"wait": 1, "limit": 10000}).json()
    return replies


def dead_letters(client: httpx.Client, limit: int = 100) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = client.get("/v1/dead-letters", params={"limit": limit}).json()
    return result


def agent(client: httpx.Client, agent_id: str) -> dict[str, Any]:
    resp = client.get(f"/v1/agents/{agent_id}")
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result
