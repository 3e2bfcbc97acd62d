"""The node's HTTP API on :8080 (FastAPI; OpenAPI at /docs).

Every /v1 call needs `Authorization: Bearer <token>`; without the right token the
answer is 401 and nothing else happens. Probes (/healthz, /readyz) and the API
docs are open. Errors are JSON `{code, message}` with a fitting status.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from caxton_node.config import parse_duration
from caxton_node.messages import MessageError, decode_message
from caxton_node.node import Node, NodeError
from caxton_node.routing.router import QueueFull, UnknownReceiver
from caxton_node.verify import verify_cluster

MAX_MODULE_BYTES = 32 * 2**20


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    wasm: str = Field(description="the module, base64-encoded")
    limits: dict[str, Any] = Field(default_factory=dict, description="memory (16Mi), fuel (int), deadline (10ms)")
    priority: str = "normal"


class DrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: str = "60s"


class EmergencyStopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dump_to: str | None = None


class PriorityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: str


def create_app(node: Node, token: str | None) -> FastAPI:
    app = FastAPI(title="Caxton node API", version=node.version)
    max_bytes = node.config.agents.max_message_bytes
    at_least_once = node.config.agents.delivery == "at-least-once"

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"code": err.code, "message": err.message}, status_code=err.status)

    @app.exception_handler(NodeError)
    async def node_error(_request: Request, err: NodeError) -> JSONResponse:
        return JSONResponse({"code": err.code, "message": str(err)}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in err.errors()
        )
        return JSONResponse({"code": "invalid_request", "message": problems}, status_code=400)

    def authorized(request: Request) -> None:
        # Through the API server's pod proxy the Authorization header is the proxy's own, so the
        # token may also come as X-Caxton-Token.
        presented = request.headers.get("x-caxton-token", "")
        if not presented:
            scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
            presented = bearer if scheme.lower() == "bearer" else ""
        if token is None or not presented or not hmac.compare_digest(presented.strip(), token):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token")

    auth = [Depends(authorized)]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready = node.router._thread.is_alive()
        return JSONResponse({"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503)

    # -- agents ---------------------------------------------------------------------------

    @app.get("/v1/agents", dependencies=auth)
    def list_agents() -> list[dict[str, Any]]:
        return node.agents()

    @app.post("/v1/agents", dependencies=auth, status_code=201)
    def deploy(body: DeployRequest) -> dict[str, Any]:
        try:
            wasm = base64.b64decode(body.wasm, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "invalid_module", "wasm must be base64") from None
        if len(wasm) > MAX_MODULE_BYTES:
            raise ApiError(413, "module_too_large", f"module exceeds {MAX_MODULE_BYTES} bytes")
        return node.deploy(body.id, wasm, limits=body.limits, priority=body.priority)

    @app.get("/v1/agents/{agent_id}", dependencies=auth)
    def get_agent(agent_id: str) -> dict[str, Any]:
        return node.describe(agent_id)

    @app.get("/v1/agents/{agent_id}/module", dependencies=auth, response_class=Response,
             responses={200: {"content": {"application/wasm": {}}}})
    def agent_module(agent_id: str) -> Response:
        return Response(node.module(agent_id), media_type="application/wasm")

    @app.delete("/v1/agents/{agent_id}", dependencies=auth, status_code=204)
    def remove_agent(agent_id: str) -> None:
        node.remove(agent_id)

    @app.post("/v1/agents/{agent_id}/suspend", dependencies=auth)
    def suspend(agent_id: str) -> dict[str, Any]:
        return node.set_suspended(agent_id, True)

    @app.post("/v1/agents/{agent_id}/resume", dependencies=auth)
    def resume(agent_id: str) -> dict[str, Any]:
        return node.set_suspended(agent_id, False)

    @app.post("/v1/suspend-by-priority", dependencies=auth)
    def suspend_priority(body: PriorityRequest) -> dict[str, Any]:
        return {"suspended": node.suspend_by_priority(body.priority)}

    @app.get("/v1/slow-agents", dependencies=auth)
    def slow_agents(threshold: str = "100ms") -> list[dict[str, Any]]:
        try:
            seconds = parse_duration(threshold)
        except ValueError as err:
            raise ApiError(400, "invalid_threshold", str(err)) from None
        return node.slow_agents(seconds)

    # -- messages -----------------------------------------------------------------------------

    def accept(raw: bytes) -> dict[str, Any]:
        accepted = time.perf_counter()
        if node.router.circuit_open:
            raise ApiError(503, "circuit_open", "the circuit breaker is active: caxton circuit-breaker reset")
        try:
            msg = decode_message(raw, max_bytes=max_bytes)
        except MessageError as err:
            status = 413 if "exceeds the limit" in str(err) else 400
            raise ApiError(status, "invalid_message", str(err)) from None
        node.router.open_mailbox(msg.sender)
        try:
            where = node.router.route(msg, accepted_at=accepted)
        except QueueFull as err:
            raise ApiError(429, "queue_full", str(err)) from None
        except UnknownReceiver as err:
            raise ApiError(404, "unknown_receiver", str(err)) from None
        if at_least_once:
            node.store.flush()  # the 202 is the acknowledgement: the message is on disk
        return {"id": msg.id, "conversation_id": msg.conversation_id, "routed": where}

    @app.post("/v1/messages", dependencies=auth, status_code=202)
    async def send(request: Request) -> dict[str, Any]:
        return accept(await request.body())

    @app.get("/v1/mailboxes/{name}", dependencies=auth)
    def mailbox(name: str, limit: int = 1000, wait: float = 0.0) -> list[dict[str, Any]]:
        """Messages addressed to `name` (a client), waiting up to `wait` seconds for the first."""
        node.router.open_mailbox(name)
        taken = node.router.take_mailbox(name, min(max(limit, 1), 10_000), timeout=min(max(wait, 0.0), 30.0))
        return [m.to_dict() for m in taken]

    @app.get("/v1/conversations/{conversation_id}", dependencies=auth)
    def conversation(conversation_id: str) -> dict[str, Any]:
        messages = node.store.trace(conversation_id)
        if not messages:
            raise ApiError(404, "conversation_not_found", f"no messages recorded for {conversation_id}")
        return {"conversation_id": conversation_id, "messages": messages}

    @app.get("/v1/dead-letters", dependencies=auth)
    def dead_letters(limit: int = 100) -> list[dict[str, Any]]:
        return node.store.dead_letters(min(max(limit, 1), 10_000))

    # -- queue, memory, emergency ---------------------------------------------------------------

    @app.get("/v1/queue", dependencies=auth)
    def queue_stats() -> dict[str, Any]:
        return node.router.stats()

    @app.post("/v1/queue/drain", dependencies=auth)
    def drain(body: DrainRequest) -> dict[str, Any]:
        try:
            timeout = parse_duration(body.timeout)
        except ValueError as err:
            raise ApiError(400, "invalid_timeout", str(err)) from None
        return node.drain(timeout)

    @app.get("/v1/memory", dependencies=auth)
    def memory() -> dict[str, Any]:
        return node.memory_stats()

    @app.post("/v1/emergency/stop", dependencies=auth)
    def emergency_stop(body: EmergencyStopRequest) -> dict[str, Any]:
        return node.emergency_stop(Path(body.dump_to) if body.dump_to else None)

    @app.post("/v1/circuit-breaker/activate", dependencies=auth)
    def breaker_on() -> dict[str, Any]:
        node.router.set_circuit(True)
        return {"circuit_open": True}

    @app.post("/v1/circuit-breaker/reset", dependencies=auth)
    def breaker_off() -> dict[str, Any]:
        node.router.set_circuit(False)
        return {"circuit_open": False}

    @app.get("/v1/config", dependencies=auth)
    def effective_config() -> dict[str, Any]:
        return node.config.model_dump(mode="json")

    @app.get("/v1/cluster/members", dependencies=auth)
    def members() -> list[dict[str, Any]]:
        return node.members()

    @app.get("/v1/cluster/status", dependencies=auth)
    def status() -> dict[str, Any]:
        return node.cluster_status()

    @app.get("/v1/cluster/partition", dependencies=auth)
    def partition() -> dict[str, Any]:
        return node.partition_view()

    @app.get("/v1/cluster/performance", dependencies=auth)
    def performance() -> dict[str, Any]:
        return node.performance()

    @app.get("/v1/cluster/events", dependencies=auth)
    def events(since: int = 0) -> list[dict[str, Any]]:
        return node.events.since(since)

    @app.post("/v1/cluster/ping/{member_id}", dependencies=auth)
    def ping(member_id: str) -> dict[str, Any]:
        member = next((m for m in node.members() if m["id"] == member_id), None)
        if member is None:
            raise ApiError(404, "member_not_found", f"{member_id} is not a member known to {node.id}")
        result: dict[str, Any] = {"node": member_id, "state": member["state"], "reachable": False}
        if member.get("api"):
            started = time.perf_counter()
            try:
                with node.peer_http(timeout=2) as http:
                    ok = http.get(f"{member['api']}/healthz").status_code == 200
                result.update(reachable=ok, rttMs=round((time.perf_counter() - started) * 1000, 3))
            except httpx.HTTPError as err:
                result["error"] = str(err)
        return result

    @app.get("/v1/cluster/verify", dependencies=auth)
    def verify() -> dict[str, Any]:
        return verify_cluster(node, token)

    return app
