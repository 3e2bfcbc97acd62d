"""The API's request and response bodies as pydantic models: the OpenAPI document is made from these.

Response models allow extra keys, so a field the node adds shows up in answers before it
is described here; requests are strict (unknown keys are a 400). The message body is
parsed by hand on the hot path (`caxton_node.messages`); `MessageIn` describes the same
rules for the document, and a test keeps the two in agreement.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from caxton_node import limits as bounds
from caxton_node.jsontext import MAX_DEPTH

SIZE_PATTERN = r"^[0-9]{1,13}(Ki|Mi|Gi|K|M|G|B)?$"
DURATION_PATTERN = r"^([0-9]{1,9}(\.[0-9]{1,9})?(ms|s|m|h)){1,4}$|^[0-9]{1,9}(\.[0-9]{1,9})?$"
# The same set as messages.PERFORMATIVES (a test keeps them equal).
Performative = Literal["accept_proposal", "failure", "inform", "not_understood", "propose", "query",
                       "reject_proposal", "request"]
Priority = Literal["low", "normal", "high"]
Text256 = Annotated[str, Field(max_length=256)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable reason, e.g. unauthorized, invalid_limits")
    message: str = Field(description="what was wrong and what to do")


# -- requests --------------------------------------------------------------------------------------

class DeployLimits(Request):
    # Numbers are bounded here (a 400 when out of range); sizes and durations written as
    # text are checked against the same bounds by the deploy call (422 invalid_limits).
    memory: Annotated[int, Field(ge=bounds.MEMORY_MIN, le=bounds.MEMORY_MAX)] | Annotated[
        str, Field(pattern=SIZE_PATTERN)] | None = Field(
        default=None, description=f"bytes, or a size such as 16Mi; between {bounds.MEMORY_TEXT}")
    fuel: Annotated[int, Field(ge=bounds.FUEL_MIN, le=bounds.FUEL_MAX)] | None = Field(
        default=None, description="Wasm fuel per message; omit for no fuel budget")
    deadline: Annotated[float, Field(ge=bounds.DEADLINE_MIN, le=bounds.DEADLINE_MAX)] | Annotated[
        str, Field(pattern=DURATION_PATTERN)] | None = Field(
        default=None, description=f"seconds, or a duration such as 10ms; between "
                                  f"{bounds.DEADLINE_MIN_TEXT} and {bounds.DEADLINE_MAX_TEXT}")


class DeployRequest(Request):
    id: Annotated[str, Field(pattern=bounds.AGENT_ID_PATTERN, description="the agent's name")]
    wasm: Annotated[str, Field(json_schema_extra={"format": "byte"},
                               description="the binary Wasm module, base64-encoded")]
    limits: DeployLimits = Field(default_factory=DeployLimits)
    priority: Priority = "normal"
    state: Annotated[str, Field(json_schema_extra={"format": "byte"})] | None = Field(
        default=None, description="base64 state from the agent's snapshot on the node it moves from, "
                                  "given to its agent_restore export before its first message")


class FreezeRequest(Request):
    lease: Annotated[str, Field(pattern=DURATION_PATTERN)] = Field(
        default="60s", description="the agent resumes here if it has not been removed (moved) by then")


class DrainRequest(Request):
    timeout: Annotated[str, Field(pattern=DURATION_PATTERN)] = "60s"


class EmergencyStopRequest(Request):
    dump_to: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_./-]+$")] | None = Field(
        default=None, description="a directory under the node's dump root (node.dump_dir, default "
                                  "<data_dir>/dumps), relative or absolute; anything outside it is refused (403)")


class PriorityRequest(Request):
    priority: Priority


class ShedLoadRequest(Request):
    percentage: Annotated[float, Field(gt=0, le=100, description="share of the node's recent message rate to shed")]


class MemoryGcRequest(Request):
    aggressive: StrictBool = Field(default=False, description="restart every idle agent, not only those it shrinks")


class MessageIn(Request):
    performative: Performative
    sender: Annotated[str, Field(min_length=1, max_length=256)]
    receiver: Annotated[str, Field(min_length=1, max_length=256)]
    conversation_id: Text256 | None = Field(default=None, description="a new id if omitted")
    reply_with: Text256 | None = None
    in_reply_to: Text256 | None = None
    content: Any = Field(default=None, description=f"any JSON, nested at most {MAX_DEPTH} deep")
    id: Text256 | None = Field(default=None, description="ignored: the node assigns ids")
    ts_ms: Annotated[int, Field(ge=0)] | None = Field(default=None, description="ignored: the node stamps it")


# -- responses -------------------------------------------------------------------------------------

class AgentLimitsView(Reply):
    memory_bytes: int
    deadline_seconds: float
    fuel: int | None = None


class Agent(Reply):
    id: str
    node: str
    state: Literal["running", "suspended"]
    moving: bool = Field(default=False, description="frozen for a move: it queues, and does not run, here")
    sha256: str
    priority: Priority
    limits: AgentLimitsView
    queue: int
    handled: int
    failures: int
    memoryBytes: int
    avgLatencyMs: float
    p99LatencyMs: float


class Frozen(Reply):
    id: str
    node: str
    queued: int = Field(description="messages waiting for it here; they travel with it on the handoff")
    keepsState: bool = Field(description="whether the module exports agent_snapshot and agent_restore")
    state: str | None = Field(description="base64 snapshot for the deploy on the node it moves to")


class Load(Reply):
    node: str
    agents: int
    messageRate: float | None = Field(description="messages handled per second over windowSeconds; "
                                                   "null until two looks a second apart exist")
    windowSeconds: float
    cpuPercent: float | None = Field(description="CPU this node process used over windowSeconds")
    memoryBytes: int = Field(description="the node process's resident set size")
    memoryLimitBytes: int
    memoryLimitSource: Literal["cgroup", "host", "unknown"]
    memoryFraction: float | None
    agentRates: dict[str, float | None]
    moving: list[str] = Field(description="agents frozen here while they move away")


class ShedAgent(Reply):
    id: str
    priority: Priority
    messageRate: float


class Shed(Reply):
    node: str
    messageRate: float = Field(description="the node's recent rate (messages/s) before shedding")
    goal: float
    shed: float = Field(description="the recent rate of the agents suspended")
    suspended: list[ShedAgent]


class MemoryGc(Reply):
    node: str
    aggressive: bool
    restarted: list[dict[str, Any]] = Field(description="agents given a fresh instance, memory before and after")
    agentMemoryFreedBytes: int = Field(description="Wasm memory given back by the restarted agents")
    walBytesFreed: int = Field(description="disk: what the WAL checkpoint truncated")
    rssBeforeBytes: int
    rssAfterBytes: int
    rssFreedBytes: int


class Accepted(Reply):
    id: str
    conversation_id: str
    routed: Literal["local", "mailbox", "remote"]


class BatchItem(Reply):
    """One message of a batch, in its place: accepted (202, with its id) or not routed (with why)."""

    status: int = Field(description="202 accepted, 404 unknown receiver or 429 queue full")
    id: str | None = None
    conversation_id: str | None = None
    routed: Literal["local", "mailbox", "remote"] | None = None
    code: str | None = Field(None, description="why it was refused, as in ErrorBody")
    message: str | None = None


class MessageOut(Reply):
    id: str
    performative: str
    sender: str
    receiver: str
    conversation_id: str
    reply_with: str
    in_reply_to: str
    content: Any = None
    ts_ms: int


class Conversation(Reply):
    conversation_id: str
    messages: list[MessageOut]


class DeadLetter(Reply):
    id: str
    reason: str
    message: MessageOut
    ts_ms: int


class QueueStats(Reply):
    depth: int
    agents: dict[str, int]
    mailboxes: dict[str, int]
    longPolls: int
    dead_letters: int
    circuit_open: bool
    outbound: int = Field(default=0, description="messages waiting to be sent to other nodes")


class DrainResult(Reply):
    before: int
    processed: int
    deadLettered: int


class MemoryStats(Reply):
    node: str
    agents: int
    agentMemoryBytes: int
    agentMemoryLimitBytes: int
    processRssBytes: int
    processMaxRssBytes: int
    hostAvailableBytes: int
    top: list[Agent]


class EmergencyStopResult(Reply):
    node: str
    suspended: list[str]
    dumpedTo: str | None = None


class Breaker(Reply):
    circuit_open: bool
    rampSeconds: float = Field(default=0.0, description="a gradual reset: how long admission ramps up")
    rampFrom: float = Field(default=0.0, description="messages/s admitted when the ramp starts")
    rampTo: float = Field(default=0.0, description="messages/s at its end (then unlimited)")


class PartitionYield(Reply):
    node: str
    deadLettered: int = Field(description="queued writes dead-lettered with reason partition_resolved")


class BreakerReset(Request):
    gradual: Annotated[bool, Field(strict=True)] = False
    duration: Annotated[str, Field(pattern=DURATION_PATTERN)] | None = None


class Suspended(Reply):
    suspended: list[str]


class Member(Reply):
    id: str
    state: str


class ClusterStatus(Reply):
    node: str
    status: Literal["HEALTHY", "DEGRADED"]
    version: str
    expected: int
    quorum: int
    readOnly: bool


class PartitionView(Reply):
    node: str
    partitioned: bool
    quorum: int
    side: Literal["majority", "minority"]
    reachable: list[str]
    unreachable: list[str]


class Performance(Reply):
    """Figures are null when nothing was measured (no message routed, no gossip probe)."""

    node: str
    routingP50Ms: float | None
    routingP99Ms: float | None
    messagesObserved: int
    gossipRttP50Ms: float | None
    gossipRttP90Ms: float | None
    gossipRttP99Ms: float | None
    gossipProbesObserved: int


class Event(Reply):
    seq: int
    ts: float
    level: str
    message: str


class Ping(Reply):
    node: str
    state: str
    reachable: bool


class ClusterView(Reply):
    """One member's own view, as `cluster verify` compares it with the others'."""

    node: str
    version: str
    agents: list[str]
    mailboxes: list[str]
    members: dict[str, dict[str, str]]
    directory: dict[str, list[str]]


class Verification(Reply):
    node: str
    consistent: bool
    members: int
    agents: dict[str, list[str]]
    differences: list[str]


class Probe(BaseModel):
    status: str


# -- security facts (GET /v1/security): fingerprints and ids, never keys or tokens -------------------

class CertificateFacts(Reply):
    fingerprint: str = Field(description="SHA-256 of the DER encoding, hex")
    subject: str
    issuer: str
    serial: str
    notBefore: str
    notAfter: str


class HandshakeFailures(Reply):
    server: int
    client: int


class TlsFacts(Reply):
    trusted: list[CertificateFacts] = Field(description="the CA bundle the peer port verifies peers against")
    leaf: CertificateFacts = Field(description="the node certificate the peer port presents")
    loadedAt: str
    reloads: int
    handshakeFailures: HandshakeFailures


class GossipFacts(Reply):
    primary: str = Field(description="the id of the key that seals outgoing packets")
    keyIds: list[str] = Field(description="every key that opens packets, in key-file order")


class TokenFacts(Reply):
    id: str = Field(description="a SHA-256 prefix of the token")
    primary: bool = Field(description="the token clients send (the first line of the token file)")
    lastUsedSecondsAgo: float | None


class ApiFacts(Reply):
    tokens: list[TokenFacts]


class SecurityReport(Reply):
    node: str
    tls: TlsFacts | None = Field(description="null when peer mTLS is off")
    gossip: GossipFacts | None = Field(description="null for a single node without a gossip key")
    api: ApiFacts
