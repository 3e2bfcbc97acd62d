"""HTTP ingress: what one node's API takes in, single messages and batches, in both delivery modes.

A real node process with an echo agent, driven by a real HTTP client (httpx) over
keep-alive connections:
- single: one POST /v1/messages at a time, the acknowledgement's latency (P50, P99);
- single_msgs_per_s: POSTs from `--in-flight` concurrent requests;
- batch_msgs_per_s: POST /v1/messages/batch of `--batch` messages, `--in-flight` at once.
Every throughput figure counts a message when the echo's reply is in the client's
mailbox, not when the POST returns; replies are checked by number (none lost).

    python -m bench.ingress [--messages 20000] [--batch 500] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.echo_load import percentile
from bench.report import Targets, report
from tests.support.agents import build_example_agents
from tests.support.nodes import NodeFactory, NodeProcess

TARGETS: Targets = {
    "at_most_once_batch_msgs_per_s": (">=", 20_000.0),
    "at_most_once_single_p99_ms": ("<=", 2.0),
}


def _message(i: int) -> dict[str, Any]:
    return {"performative": "request", "sender": "bench", "receiver": "echo", "conversation_id": f"c{i % 16}",
            "content": {"n": i}}


def _headers(node: NodeProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.token_file.read_text().strip()}", "Content-Type": "application/json"}


def single_latency(node: NodeProcess, count: int) -> list[float]:
    latencies = []
    with httpx.Client(base_url=node.api, headers=_headers(node), timeout=30) as client:
        for i in range(count):
            body = json.dumps(_message(i)).encode()
            started = time.perf_counter()
            client.post("/v1/messages", content=body).raise_for_status()
            latencies.append(time.perf_counter() - started)
        _drain(client, set(range(count)))
    latencies.sort()
    return latencies


def _drain(client: httpx.Client, expected: set[int], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(expected)} replies missing after {timeout:.0f}s")
        for reply in client.get("/v1/mailboxes/bench", params={"limit": 10_000, "wait": 1}).json():
            expected.discard(reply["content"]["content"]["n"])


async def throughput(node: NodeProcess, messages: int, *, batch: int, in_flight: int,
                     drain_timeout: float = 300) -> float:
    """Messages per second from the first POST to the last reply (batch 0: single POSTs)."""
    groups = [list(range(start, min(start + (batch or 1), messages))) for start in range(0, messages, batch or 1)]
    path = "/v1/messages/batch" if batch else "/v1/messages"
    limits = httpx.Limits(max_connections=in_flight + 1)
    async with httpx.AsyncClient(base_url=node.api, headers=_headers(node), timeout=60, limits=limits) as client:
        gate = asyncio.Semaphore(in_flight)
        missing = set(range(messages))

        async def post(numbers: list[int]) -> None:
            """Sends, and sends again what the node answered 429 (queue full) for, as a client would."""
            for _ in range(1000):
                async with gate:
                    body = [_message(i) for i in numbers] if batch else _message(numbers[0])
                    resp = await client.post(path, content=json.dumps(body).encode())
                if resp.status_code == 429:
                    retried.append(len(numbers))
                    await asyncio.sleep(0.01)
                    continue
                resp.raise_for_status()
                results = resp.json() if batch else [{"status": 202}]
                if any(r["status"] not in (202, 429) for r in results):
                    raise RuntimeError(f"a message was refused: {resp.text[:200]}")
                numbers = [i for i, r in zip(numbers, results, strict=True) if r["status"] == 429]
                if not numbers:
                    return
                retried.append(len(numbers))
                await asyncio.sleep(0.01)
            raise RuntimeError(f"{len(numbers)} messages still refused after 1000 tries")

        async def drain() -> None:
            deadline = time.monotonic() + drain_timeout
            while missing:
                if time.monotonic() > deadline:
                    dead = (await client.get("/v1/dead-letters")).json()
                    reasons = sorted({d.get("reason", "?") for d in dead})
                    raise RuntimeError(f"{len(missing)}/{messages} replies missing after {drain_timeout:.0f}s; "
                                       f"dead letters: {len(dead)} ({', '.join(reasons)})")
                reply = await client.get("/v1/mailboxes/bench", params={"limit": 10_000, "wait": 1})
                missing.difference_update(m["content"]["content"]["n"] for m in reply.json())

        retried: list[int] = []
        started = time.perf_counter()
        await asyncio.gather(drain(), *(post(g) for g in groups))
        elapsed = time.perf_counter() - started
        if retried:
            print(f"{path}: {sum(retried)} message(s) sent again after 429 queue_full")
        return messages / elapsed


def measure(root: Path, echo: bytes, mode: str, args: argparse.Namespace) -> dict[str, float]:
    factory = NodeFactory(root / mode)
    try:
        node = factory("ingress", agents={"delivery": mode})
        with httpx.Client(base_url=node.api, headers=_headers(node), timeout=30) as client:
            client.post("/v1/agents", json={"id": "echo", "wasm": base64.b64encode(echo).decode(),
                                            "limits": {"deadline": "1s"}}).raise_for_status()
            client.get("/v1/mailboxes/bench")  # open the client's mailbox before the replies come
        key = mode.replace("-", "_")
        latencies = single_latency(node, min(args.messages, 5000))
        return {
            f"{key}_single_p50_ms": percentile(latencies, 0.5) * 1000,
            f"{key}_single_p99_ms": percentile(latencies, 0.99) * 1000,
            f"{key}_single_msgs_per_s": asyncio.run(throughput(node, args.messages, batch=0,
                                                                in_flight=args.in_flight)),
            f"{key}_batch_msgs_per_s": asyncio.run(throughput(node, args.messages, batch=args.batch,
                                                               in_flight=args.in_flight)),
        }
    finally:
        factory.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=250, help="messages per batch request")
    parser.add_argument("--in-flight", type=int, default=4, help="concurrent requests (x batch <= 1024, the queue)")
    parser.add_argument("--modes", default="at-most-once,at-least-once")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    echo = build_example_agents()["echo"]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            figures.update(measure(Path(tmp), echo, mode, args))
    # What uvicorn's "auto" picks in the node, reported with the figures.
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser_name = "httptools" if importlib.util.find_spec("httptools") else "h11"
    report(figures, TARGETS, args.json, settings=[
        f"one node process, one echo agent; client httpx over keep-alive; {args.in_flight} requests in flight",
        f"batches of {args.batch}; a message counts when its reply is read back from the node's mailbox",
        f"server: uvicorn with {loop} and {parser_name}",
    ])


if __name__ == "__main__":
    main()
