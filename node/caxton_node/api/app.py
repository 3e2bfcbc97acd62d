"""The node's HTTP API on :8080 (FastAPI; OpenAPI at /docs and /openapi.json).

Every /v1 call needs `Authorization: Bearer <token>` (or `X-Caxton-Token`); without the
right token the answer is 401 before the body is read (see `edge.py`). Probes
(/healthz, /readyz) and the API description are open. Errors are JSON `{code, message}`
with the status the OpenAPI document lists for each operation: 400 bad input, 401, 403,
404, 409, 413 body too large, 422 a module that cannot run, 429 full, 503 refused for
now (circuit breaker, read-only). FastAPI's 422 for validation is a 400 here.

Long polls (`GET /v1/mailboxes/{name}?wait=`) and the probes are coroutines on the event
loop: waiting clients hold no thread, so they cannot starve the thread pool that runs
the other calls, and the probes never queue behind it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from caxton_node import integrity as state_integrity
from caxton_node import security
from caxton_node.agents.module_format import not_wasm
from caxton_node.api import models
from caxton_node.api.dump_paths import DumpForbidden, dump_target, prepare
from caxton_node.api.edge import ApiError, Edge, EdgeJSONResponse, EdgeRoute
from caxton_node.api.tokens import TokenSet
from caxton_node.backup import snapshot
from caxton_node.config import parse_duration, parse_size
from caxton_node.limits import BATCH_BODY_BYTES, BATCH_MESSAGES_MAX, check_deadline, check_memory
from caxton_node.messages import Message, MessageError, MessageTooLarge, decode_batch, decode_message
from caxton_node.node import Node, NodeError
from caxton_node.routing.mailboxes import TooManyLongPolls
from caxton_node.routing.router import QueueFull, UnknownReceiver
from caxton_node.verify import local_view, verify_cluster

MAX_MODULE_BYTES = 32 * 2**20
# The deploy body carries the module in base64 (4/3 of its size) plus a little JSON.
DEPLOY_BODY_BYTES = MAX_MODULE_BYTES * 4 // 3 + 64 * 2**10

_DESCRIPTIONS = {
    400: "bad input: the message says which field and why",
    401: "missing or wrong token",
    403: "not allowed here",
    404: "no such agent, mailbox, conversation or member",
    409: "conflicts with the current state",
    413: "the body exceeds this operation's limit",
    422: "well-formed but refused: the module is not binary Wasm, has bad imports or exports or fails "
         "to start, or a limit written as text is out of bounds",
    429: "full: retry later",
    503: "refused for now: circuit breaker active, or the node is read-only",
    507: "agents were suspended but the dump could not be written",
}
Name = Annotated[str, Path(min_length=1, max_length=256)]


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and (part.startswith(("constrained-", "function-")) or part in ("int", "float", "str"))


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": models.ErrorBody, "description": _DESCRIPTIONS[status]}
            for status in (401, *statuses)}


def create_app(node: Node, tokens: TokenSet | str | None) -> Edge:
    """The ASGI application: the FastAPI app behind its edge (token check, body cap).
    `tokens`: the accepted tokens (a single string or None for tests and tools)."""
    if not isinstance(tokens, TokenSet):
        tokens = TokenSet([tokens.encode()] if tokens else [])
    node.tokens = tokens
    app = FastAPI(title="Caxton node API", version=node.version, redirect_slashes=False,
                  default_response_class=EdgeJSONResponse)
    app.router.route_class = EdgeRoute
    max_bytes = node.config.agents.max_message_bytes
    at_least_once = node.config.agents.delivery == "at-least-once"
    node.router.mailboxes.idle_expiry = node.config.agents.mailbox_idle_expiry

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, err: HTTPException) -> JSONResponse:
        headers = dict(err.headers or {})
        if isinstance(err, ApiError):
            code, message = err.code, err.message
        else:  # routing: 404 for an unknown path, 405 for a wrong method
            code, message = err.detail.lower().replace(" ", "_"), err.detail
        if err.status_code == 405:  # Starlette names only the first matching route's methods
            path = _request.url.path
            headers["Allow"] = ", ".join(sorted({
                method for route in app.routes if isinstance(route, APIRoute) and route.path_regex.match(path)
                for method in route.methods or () if method != "HEAD"}))
        return EdgeJSONResponse({"code": code, "message": message}, status_code=err.status_code,
                                headers=headers)

    @app.exception_handler(NodeError)
    async def node_error(_request: Request, err: NodeError) -> JSONResponse:
        return EdgeJSONResponse({"code": err.code, "message": str(err)}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        # One line per field: for a union (a number or a text) the first alternative's reason.
        problems: dict[str, str] = {}
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"] if p != "body" and not _is_union_tag(p))
            problems.setdefault(where, e["msg"])
        message = "; ".join(f"{where}: {msg}" if where else msg for where, msg in problems.items())
        return EdgeJSONResponse({"code": "invalid_request", "message": message}, status_code=400)

    # -- probes: coroutines, so a busy thread pool cannot delay them ------------------------

    @app.get("/healthz", response_model=models.Probe)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=models.Probe,
             responses={503: {"model": models.Probe, "description": "the dispatcher has stopped"}})
    async def readyz() -> JSONResponse:
        ready = node.router.dispatching
        return EdgeJSONResponse({"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503)

    # -- agents ---------------------------------------------------------------------------

    @app.get("/v1/agents", response_model=list[models.Agent], responses=_errors())
    def list_agents() -> list[dict[str, Any]]:
        return node.agents()

    @app.post("/v1/agents", status_code=201, response_model=models.Agent,
              responses=_errors(400, 409, 413, 422, 503))
    def deploy(body: models.DeployRequest) -> dict[str, Any]:
        try:
            wasm = base64.b64decode(body.wasm, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "invalid_module", "wasm must be base64") from None
        if len(wasm) > MAX_MODULE_BYTES:
            raise ApiError(413, "module_too_large", f"module exceeds {MAX_MODULE_BYTES} bytes")
        problem = not_wasm(wasm)
        if problem:
            raise ApiError(422, "invalid_module", f"not a binary Wasm module: {problem}")
        limits = body.limits.model_dump(exclude_none=True)
        try:
            check_memory(parse_size(limits.get("memory", node.config.agents.memory)))
            check_deadline(parse_duration(limits.get("deadline", node.config.agents.deadline)))
        except ValueError as err:
            raise ApiError(422, "invalid_limits", str(err)) from None
        state = None
        if body.state is not None:
            try:
                state = base64.b64decode(body.state, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "invalid_state", "state must be base64") from None
        return node.deploy(body.id, wasm, limits=limits, priority=body.priority, state=state)

    @app.get("/v1/agents/{agent_id}", response_model=models.Agent, responses=_errors(400, 404))
    def get_agent(agent_id: Name) -> dict[str, Any]:
        return node.describe(agent_id)

    @app.get("/v1/agents/{agent_id}/module", response_class=Response, responses={
        200: {"content": {"application/wasm": {"schema": {"type": "string", "format": "binary"}}},
              "description": "the module as deployed"}, **_errors(400, 404)})
    def agent_module(agent_id: Name) -> Response:
        return Response(node.module(agent_id), media_type="application/wasm")

    @app.delete("/v1/agents/{agent_id}", status_code=204, response_class=Response,
                responses=_errors(400, 404, 409, 503))
    def remove_agent(agent_id: Name, handoff: bool = False,
                     to: Annotated[str, Query(max_length=253)] = "") -> Response:
        """`?handoff=true`: the agent has moved (copy, then remove); the messages still queued for it
        here go to the node now serving it (`to`, when given: what arrives later goes there too).
        409 `no_other_copy` until gossip shows that node."""
        node.remove(agent_id, handoff=handoff, to=to)
        return Response(status_code=204)

    @app.get("/v1/load", response_model=models.Load, responses=_errors())
    def load() -> dict[str, Any]:
        """Agents, recent message rate, CPU and memory against the limit: what rebalancing weighs."""
        return node.load()

    @app.post("/v1/agents/{agent_id}/freeze", response_model=models.Frozen,
              responses=_errors(400, 404, 409, 413, 503))
    def freeze(agent_id: Name, body: models.FreezeRequest | None = None) -> dict[str, Any]:
        """First step of a move (docs/rebalance.md): the agent stops running here, its messages queue,
        and its snapshot comes back for the copy. `resume`, or the lease running out, undoes it."""
        lease = parse_duration((body or models.FreezeRequest()).lease)
        frozen = node.freeze(agent_id, lease)
        state = frozen["state"]
        return dict(frozen, state=base64.b64encode(state).decode() if state is not None else None)

    @app.post("/v1/agents/{agent_id}/suspend", response_model=models.Agent, responses=_errors(400, 404))
    def suspend(agent_id: Name) -> dict[str, Any]:
        return node.set_suspended(agent_id, True)

    @app.post("/v1/agents/{agent_id}/resume", response_model=models.Agent, responses=_errors(400, 404))
    def resume(agent_id: Name) -> dict[str, Any]:
        return node.set_suspended(agent_id, False)

    @app.post("/v1/suspend-by-priority", response_model=models.Suspended, responses=_errors(400, 413))
    def suspend_priority(body: models.PriorityRequest) -> dict[str, Any]:
        return {"suspended": node.suspend_by_priority(body.priority)}

    @app.post("/v1/resume-by-priority", response_model=models.Suspended, responses=_errors(400, 413))
    def resume_priority(body: models.PriorityRequest) -> dict[str, Any]:
        """Undoes suspend-by-priority and shed-load for one priority (`suspended` lists those resumed)."""
        return {"suspended": node.resume_by_priority(body.priority)}

    @app.post("/v1/memory/gc", response_model=models.MemoryGc, responses=_errors(400, 413))
    def memory_gc(body: models.MemoryGcRequest | None = None) -> dict[str, Any]:
        """Idle agents' instances restarted (with their snapshot), the WAL truncated, free pages returned."""
        return node.memory_gc(aggressive=(body or models.MemoryGcRequest()).aggressive)

    @app.post("/v1/shed-load", response_model=models.Shed, responses=_errors(400, 413))
    def shed_load(body: models.ShedLoadRequest) -> dict[str, Any]:
        """Suspends agents, low priority and busiest first, until their recent rate is the share asked."""
        return node.shed_load(body.percentage)

    @app.get("/v1/slow-agents", response_model=list[models.Agent], responses=_errors(400))
    def slow_agents(threshold: Annotated[str, Query(pattern=models.DURATION_PATTERN)] = "100ms",
                    ) -> list[dict[str, Any]]:
        try:
            seconds = parse_duration(threshold)
        except ValueError as err:
            raise ApiError(400, "invalid_threshold", str(err)) from None
        return node.slow_agents(seconds)

    # -- messages -----------------------------------------------------------------------------

    def refused(err: MessageError) -> ApiError:
        return ApiError(413 if isinstance(err, MessageTooLarge) else 400, "invalid_message", str(err))

    def check_circuit() -> None:
        if node.router.circuit_open:
            raise ApiError(503, "circuit_open", "the circuit breaker is active: caxton circuit-breaker reset")

    def route(msg: Message, accepted: float) -> dict[str, Any]:
        if not node.ramp.admit():  # per message, so a batch is admitted as its messages would be
            raise ApiError(429, "circuit_ramping", f"the circuit breaker is ramping up after a reset: "
                           f"{node.ramp.rate() or 0:.0f} messages/s admitted now; retry later")
        node.router.open_mailbox(msg.sender)
        try:
            where = node.router.route(msg, accepted_at=accepted)
        except QueueFull as err:
            raise ApiError(429, "queue_full", str(err)) from None
        except UnknownReceiver as err:
            raise ApiError(404, "unknown_receiver", str(err)) from None
        return {"id": msg.id, "conversation_id": msg.conversation_id, "routed": where}

    def accept(raw: bytes) -> Response:
        accepted = time.perf_counter()
        check_circuit()
        try:
            msg = decode_message(raw, max_bytes=max_bytes)
        except MessageError as err:
            raise refused(err) from None
        routed = route(msg, accepted)
        if at_least_once:
            node.store.flush()  # the 202 is the acknowledgement: the message is on disk
        return EdgeJSONResponse(routed, status_code=202)

    def accept_batch(raw: bytes) -> Response:
        accepted = time.perf_counter()
        check_circuit()
        try:
            items = decode_batch(raw, max_bytes=max_bytes, max_count=BATCH_MESSAGES_MAX)
        except MessageError as err:
            raise refused(err) from None
        results: list[dict[str, Any]] = []
        for item in items:
            try:
                results.append({"status": 202, **route(item, accepted)})
            except ApiError as err:
                results.append({"status": err.status, "code": err.code, "message": err.message})
        if at_least_once and any(r["status"] == 202 for r in results):
            node.store.flush()  # one write for the whole batch, before the acknowledgement
        return EdgeJSONResponse(results, status_code=202)

    @app.post("/v1/messages", status_code=202, response_model=models.Accepted,
              responses=_errors(400, 404, 413, 429, 503),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/MessageIn"}}}}})
    async def send(request: Request) -> Response:
        # Parsed by hand (messages.decode_message), not by pydantic: this is the hot path.
        return accept(await request.body())

    @app.post("/v1/messages/batch", status_code=202, response_model=list[models.BatchItem],
              responses=_errors(400, 413, 503),
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "array", "minItems": 1, "maxItems": BATCH_MESSAGES_MAX,
                  "items": {"$ref": "#/components/schemas/MessageIn"}}}}}})
    async def send_batch(request: Request) -> Response:
        """Up to 1000 messages in one request, routed in order, with one acknowledgement. A
        malformed or oversized message refuses the whole batch (400/413, naming it), so nothing
        is routed; otherwise each message gets its own result in its place: 202 with its id, or
        404 (unknown receiver) or 429 (queue full) as a single POST would have had, without
        holding back the others."""
        return accept_batch(await request.body())

    @app.get("/v1/mailboxes/{name}", response_model=list[models.MessageOut], responses=_errors(400, 429))
    async def mailbox(name: Name, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                      wait: Annotated[float, Query(ge=0, le=30)] = 0.0) -> Response:
        """Messages addressed to `name` (a client), waiting up to `wait` seconds for the first."""
        boxes = node.router.mailboxes
        if name in node.router.agents:
            return Response(b"[]", media_type="application/json")
        boxes.open(name)
        body = boxes.take_encoded(name, limit)
        if body is None and wait > 0:
            body = await _long_poll(name, limit, wait)
        return Response(body or b"[]", media_type="application/json")

    async def _long_poll(name: str, limit: int, wait: float) -> bytes | None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        deadline = loop.time() + wait
        try:
            stop = node.router.mailboxes.watch(name, lambda: loop.call_soon_threadsafe(woken.set))
        except TooManyLongPolls as err:
            raise ApiError(429, "too_many_long_polls", str(err)) from None
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    await asyncio.wait_for(woken.wait(), remaining)
                except TimeoutError:
                    return None
                woken.clear()
                body = node.router.mailboxes.take_encoded(name, limit)
                if body is not None:
                    return body
            return None
        finally:
            stop()

    @app.get("/v1/conversations/{conversation_id}", response_model=models.Conversation,
             responses=_errors(400, 404))
    def conversation(conversation_id: Name) -> Response:
        messages = node.store.trace(conversation_id)
        if not messages:
            raise ApiError(404, "conversation_not_found", f"no messages recorded for {conversation_id}")
        return EdgeJSONResponse({"conversation_id": conversation_id, "messages": messages})

    @app.get("/v1/dead-letters", response_model=list[models.DeadLetter], responses=_errors(400))
    def dead_letters(limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> Response:
        return EdgeJSONResponse(node.store.dead_letters(limit))

    # -- queue, memory, emergency ---------------------------------------------------------------

    @app.get("/v1/queue", response_model=models.QueueStats, responses=_errors())
    def queue_stats() -> dict[str, Any]:
        # outbound: messages waiting to be sent to other nodes (part of the backlog a drain empties)
        return {**node.router.stats(), "outbound": node.forwarder.queued() if node.forwarder else 0}

    @app.post("/v1/queue/drain", response_model=models.DrainResult, responses=_errors(400, 413))
    def drain(body: models.DrainRequest) -> dict[str, Any]:
        try:
            timeout = parse_duration(body.timeout)
        except ValueError as err:
            raise ApiError(400, "invalid_timeout", str(err)) from None
        return node.drain(min(timeout, 600.0))

    @app.get("/v1/memory", response_model=models.MemoryStats, responses=_errors())
    def memory() -> dict[str, Any]:
        return node.memory_stats()

    @app.post("/v1/emergency/stop", response_model=models.EmergencyStopResult,
              responses=_errors(400, 403, 409, 413, 507))
    def emergency_stop(body: models.EmergencyStopRequest) -> dict[str, Any]:
        target = None
        if body.dump_to:
            try:
                target = dump_target(node.config.node.dump_root, body.dump_to)
                prepare(target)  # before anything is suspended: an unwritable dump stops nothing
            except DumpForbidden as err:
                raise ApiError(403, "dump_forbidden", str(err)) from None
            except OSError as err:
                raise ApiError(409, "dump_unwritable",
                               f"cannot write a dump to {body.dump_to}: {err.strerror or err}; "
                               "no agent was suspended") from None
        try:
            return node.emergency_stop(target)
        except OSError as err:
            raise ApiError(507, "dump_failed", f"agents were suspended, but the dump to {target} failed: "
                           f"{err.strerror or err}") from None

    @app.post("/v1/circuit-breaker/activate", response_model=models.Breaker, responses=_errors())
    def breaker_on() -> dict[str, Any]:
        node.ramp.cancel()
        node.router.set_circuit(True)
        return {"circuit_open": True}

    @app.post("/v1/circuit-breaker/reset", response_model=models.Breaker, responses=_errors(400, 413))
    def breaker_off(body: models.BreakerReset | None = None) -> dict[str, Any]:
        """With `gradual`, new messages are admitted at a rate rising over `duration` (429 above
        it); caxton_circuit_breaker_admitted_rate shows the ramp."""
        ramp_seconds = 0.0
        if body is not None and body.gradual:
            try:
                ramp_seconds = parse_duration(body.duration or "10m")
            except ValueError as err:
                raise ApiError(400, "invalid_duration", str(err)) from None
            node.ramp.begin(ramp_seconds)
        else:
            node.ramp.cancel()
        node.router.set_circuit(False)
        return {"circuit_open": False, "rampSeconds": ramp_seconds, "rampFrom": node.ramp.start_rate,
                "rampTo": node.ramp.full_rate}

    @app.get("/v1/config", responses=_errors())
    def effective_config() -> dict[str, Any]:
        return node.config.model_dump(mode="json")

    @app.get("/v1/cluster/members", response_model=list[models.Member], responses=_errors())
    def members() -> list[dict[str, Any]]:
        return node.members()

    @app.get("/v1/cluster/status", response_model=models.ClusterStatus, responses=_errors())
    def status() -> dict[str, Any]:
        return node.cluster_status()

    @app.get("/v1/cluster/partition", response_model=models.PartitionView, responses=_errors())
    def partition() -> dict[str, Any]:
        return node.partition_view()

    @app.post("/v1/cluster/partition/yield", response_model=models.PartitionYield, responses=_errors())
    def partition_yield() -> dict[str, Any]:
        """This node is on the side a partition was resolved against: its queued writes (messages
        held for peers) become dead letters, reason `partition_resolved`, instead of being replayed."""
        given_up = node.forwarder.give_up_queued("partition_resolved") if node.forwarder else 0
        return {"node": node.id, "deadLettered": given_up}

    @app.get("/v1/cluster/performance", response_model=models.Performance, responses=_errors())
    def performance() -> dict[str, Any]:
        return node.performance()

    @app.get("/v1/cluster/events", response_model=list[models.Event], responses=_errors(400))
    def events(since: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0) -> list[dict[str, Any]]:
        return node.events.since(since)

    @app.post("/v1/cluster/members/{member_id}/force-leave", response_model=list[models.Member],
              responses=_errors(400, 404, 409))
    def force_leave(member_id: Name) -> list[dict[str, Any]]:
        """`cluster remove --force`: a failed member that will not come back is gossiped as left, so it
        no longer counts toward the quorum. 409 unless this node sees it failed."""
        member = next((m for m in node.members() if m["id"] == member_id), None)
        if member is None:
            raise ApiError(404, "member_not_found", f"{member_id} is not a member known to {node.id}")
        if node.membership is None or not node.membership.force_leave(member_id):
            raise ApiError(409, "member_not_failed", f"{node.id} sees {member_id} {member['state']}, not failed: "
                           "remove it without --force (its agents are drained first)")
        return node.members()

    @app.post("/v1/cluster/ping/{member_id}", response_model=models.Ping, responses=_errors(400, 404))
    def ping(member_id: Name) -> dict[str, Any]:
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

    @app.get("/v1/cluster/view", response_model=models.ClusterView, responses=_errors())
    def view() -> dict[str, Any]:
        """What this member runs and sees: what `cluster verify` compares across members."""
        return local_view(node)

    @app.get("/v1/cluster/verify", response_model=models.Verification, responses=_errors())
    def verify() -> dict[str, Any]:
        return verify_cluster(node, tokens.primary)

    @app.get("/v1/security", response_model=models.SecurityReport, responses=_errors())
    def security_facts() -> dict[str, Any]:
        """What this node trusts and presents, by fingerprint and id only (never keys or tokens):
        the operator confirms each rotation phase from it; `cert-status` reads expiry from it."""
        return security.report(node, tokens)

    @app.post("/v1/hibernate", responses=_errors())
    def hibernate() -> dict[str, Any]:
        """The cluster is about to stop as a whole (`cluster stop --all`): a drain (the preStop
        hook) keeps the queues, which are durable and come back when the node starts again."""
        node.hibernating = True
        return {"node": node.id, "hibernating": True}

    @app.get("/v1/state/integrity", responses=_errors())
    def integrity() -> dict[str, Any]:
        """SQLite's integrity check of the state on disk and each module against its sha256."""
        return state_integrity.check(node)

    @app.get("/v1/backup/snapshot", response_class=Response, responses={
        **_errors(), 200: {"description": "a tar: caxton.db (SQLite online backup), agents.json, messages.json, "
                                          "node.json and modules/<sha256>.wasm, all of one instant",
                           "content": {"application/x-tar": {}}}})
    def backup_snapshot() -> Response:
        """A consistent online snapshot of this node's state, for `CaxtonBackup` (docs/backup.md)."""
        return Response(snapshot.take(node), media_type="application/x-tar")

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return Edge(app, tokens=tokens, body_limits={
        ("POST", "/v1/agents"): DEPLOY_BODY_BYTES, ("POST", "/v1/messages"): max_bytes,
        ("POST", "/v1/messages/batch"): max(BATCH_BODY_BYTES, max_bytes),
    })


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, made true: the token as a security scheme on every /v1 call,
    the message body's schema, and no 422 for validation (the API answers 400)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes,
                         description=(__doc__ or "").split("\n\n")[1])
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    message = models.MessageIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(message.pop("$defs", {}))
    schemas["MessageIn"] = message
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "the node's API token"},
        "caxtonToken": {"type": "apiKey", "in": "header", "name": "X-Caxton-Token",
                        "description": "the same token, for calls through the API server's pod proxy"},
    }
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            for status in [s for s, r in operation["responses"].items() if s == "422" and "Validation" in str(r)]:
                del operation["responses"][status]
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}, {"caxtonToken": []}]
    app.openapi_schema = schema
    return schema
