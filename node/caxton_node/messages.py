"""FIPA-ACL messages (the JSON subset agents and clients exchange).

Messages cross the hot path many times, so they are slotted dataclasses checked
by hand rather than pydantic models; `parse_message` is the one gate every
message from outside (API or agent) passes, and it says exactly what is wrong.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from caxton_node import jsontext

PERFORMATIVES = frozenset({
    "request", "inform", "query", "propose", "accept_proposal", "reject_proposal",
    "failure", "not_understood",
})
_FIELDS = frozenset({
    "id", "performative", "sender", "receiver", "conversation_id", "reply_with",
    "in_reply_to", "content",
})
_ids = itertools.count(1)
_prefix = uuid.uuid4().hex[:8]


class MessageError(ValueError):
    """A message was refused; the text says which field and why."""


class MessageTooLarge(MessageError):
    """A message larger than the node's max_message_bytes (HTTP 413 rather than 400)."""


def new_message_id() -> str:
    return f"{_prefix}-{next(_ids)}"


@dataclass(slots=True)
class Message:
    performative: str
    sender: str
    receiver: str
    conversation_id: str
    content: Any = None
    reply_with: str = ""
    in_reply_to: str = ""
    id: str = field(default_factory=new_message_id)
    ts_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    _encoded: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "performative": self.performative, "sender": self.sender,
            "receiver": self.receiver, "conversation_id": self.conversation_id,
            "reply_with": self.reply_with, "in_reply_to": self.in_reply_to,
            "content": self.content, "ts_ms": self.ts_ms,
        }

    def encode(self) -> bytes:
        """The JSON an agent receives (cached: a message is encoded once)."""
        if self._encoded is None:
            self._encoded = json.dumps(self.to_dict(), separators=(",", ":")).encode()
        return self._encoded


def _text(data: dict[str, Any], key: str, *, required: bool) -> str:
    value = data.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise MessageError(f"{key} must be a string, not {type(value).__name__}")
    if required and not value:
        raise MessageError(f"{key} is required")
    if len(value) > 256:
        raise MessageError(f"{key} is longer than 256 characters")
    return value


def parse_message(
    data: Any, *, sender: str | None = None, defaults: Message | None = None,
) -> Message:
    """Validates a message dict. `sender` overrides the claimed sender (agents cannot
    spoof); `defaults` is the message being handled, whose sender, conversation and
    reply_with fill the receiver, conversation_id and in_reply_to an agent leaves out."""
    if not isinstance(data, dict):
        raise MessageError("a message must be a JSON object")
    unknown = set(data) - _FIELDS - {"ts_ms"}
    if unknown:
        raise MessageError(f"unknown field(s): {', '.join(sorted(unknown))}")
    _text(data, "id", required=False)  # ignored (the node assigns ids), but it must be a string
    ts_ms = data.get("ts_ms")
    # JSON Schema's integer includes 5.0: what the schema allows, the parser takes.
    if isinstance(ts_ms, float) and ts_ms.is_integer():
        ts_ms = int(ts_ms)
    if ts_ms is not None and (type(ts_ms) is not int or ts_ms < 0):
        raise MessageError("ts_ms must be a non-negative integer (it is set by the node anyway)")
    performative = _text(data, "performative", required=True)
    if performative not in PERFORMATIVES:
        raise MessageError(
            f"performative {performative!r} is not one of {', '.join(sorted(PERFORMATIVES))}"
        )
    receiver = _text(data, "receiver", required=defaults is None)
    conversation_id = _text(data, "conversation_id", required=False)
    in_reply_to = _text(data, "in_reply_to", required=False)
    if defaults is not None:
        receiver = receiver or defaults.sender
        conversation_id = conversation_id or defaults.conversation_id
        in_reply_to = in_reply_to or defaults.reply_with
    return Message(
        performative=performative,
        sender=sender if sender is not None else _text(data, "sender", required=True),
        receiver=receiver,
        conversation_id=conversation_id or uuid.uuid4().hex,
        content=data.get("content"),
        reply_with=_text(data, "reply_with", required=False),
        in_reply_to=in_reply_to,
    )


def decode_message(raw: bytes, *, max_bytes: int, **kwargs: Any) -> Message:
    if len(raw) > max_bytes:
        raise MessageTooLarge(f"message of {len(raw)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        data = jsontext.loads(raw)
    except jsontext.JsonRejected as err:
        raise MessageError(f"message refused: {err}") from None
    return parse_message(data, **kwargs)


def decode_batch(raw: bytes, *, max_bytes: int, max_count: int) -> list[Message]:
    """A JSON array of messages. It is refused whole if any message is malformed or too large,
    naming the first one (a client bug, not a condition to retry), so nothing of it is routed."""
    try:
        data = jsontext.loads(raw)
    except jsontext.JsonRejected as err:
        raise MessageError(f"batch refused: {err}") from None
    if not isinstance(data, list):
        raise MessageError("a batch must be a JSON array of messages")
    if not data:
        raise MessageError("a batch must hold at least one message")
    if len(data) > max_count:
        raise MessageError(f"a batch of {len(data)} messages exceeds the limit of {max_count}")
    out: list[Message] = []
    for index, item in enumerate(data):
        try:
            msg = parse_message(item)
        except MessageError as err:
            raise MessageError(f"message {index} of the batch: {err}") from None
        size = len(msg.encode())
        if size > max_bytes:
            raise MessageTooLarge(f"message {index} of the batch: message of {size} bytes exceeds the limit of "
                               f"{max_bytes} bytes")
        out.append(msg)
    return out
