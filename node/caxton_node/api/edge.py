"""The API's front door: what every request meets before a route sees it.

`Edge` is plain ASGI around the FastAPI app. It checks the token from the headers and
caps the body by its declared length and by what actually arrives, before a single
body byte is parsed (FastAPI reads and parses a model body before its dependencies
run, so a token check as a dependency comes too late: an anonymous 200 MiB POST
would be parsed first). Probes and the API description are open; everything else
needs the token.

`EdgeRoute` parses JSON bodies with `jsontext` (lone surrogates, NaN, deep nesting and
overlong integers are a 400 with the reason), and `EdgeJSONResponse` writes JSON as
ASCII, which every string Python can hold encodes to, so a response never fails to
encode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from caxton_node import jsontext
from caxton_node.api.tokens import TokenSet

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
DEFAULT_BODY_LIMIT = 64 * 2**10


class ApiError(HTTPException):
    """A refused request: `code` and `message` become the JSON error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.status = status
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


class Edge:
    """Token check and body cap, in that order, before the app reads anything."""

    def __init__(self, app: ASGIApp, *, tokens: TokenSet, body_limits: dict[tuple[str, str], int],
                 default_limit: int = DEFAULT_BODY_LIMIT) -> None:
        self.app = app
        self.tokens = tokens
        self.body_limits = body_limits
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        custom = authorization = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"x-caxton-token":
                custom = value
            elif name == b"authorization":
                authorization = value
        if not self._authorized(custom, authorization):
            await _reply(send, 401, "unauthorized", "missing or wrong bearer token",
                         [(b"www-authenticate", b"Bearer")])
            return
        if length is None and not chunked:
            await self.app(scope, receive, send)
            return
        limit = self.body_limits.get((scope["method"], scope["path"]), self.default_limit)
        what = f"{scope['method']} {scope['path']}"
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _reply(send, 400, "invalid_request", "Content-Length is not a number")
                return
            if declared > limit:
                await _reply(send, 413, "body_too_large",
                             f"a body of {declared} bytes exceeds the limit of {limit} bytes for {what}")
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reply(send, 413, "body_too_large", f"the body exceeds the limit of {limit} bytes for {what}")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _authorized(self, custom: bytes, authorization: bytes) -> bool:
        # Through the API server's pod proxy the Authorization header is the proxy's own, so
        # the token may also come as X-Caxton-Token.
        presented = custom.strip()
        if not presented:
            scheme, _, bearer = authorization.partition(b" ")
            presented = bearer.strip() if scheme.lower() == b"bearer" else b""
        return bool(presented) and self.tokens.accepts(presented)


async def _reply(send: Send, status: int, code: str, message: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(code, message)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or []),
    ]})
    await send({"type": "http.response.body", "body": body})


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class EdgeJSONResponse(JSONResponse):
    """JSON as ASCII: lone surrogates in old stored data come out escaped, not as a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
        except ValueError:  # NaN or Infinity stored before the edge refused them: JSON has no such numbers
            return json.dumps(_finite(content), ensure_ascii=True, separators=(",", ":")).encode()


class EdgeRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = jsontext.loads(await self.body())
            except jsontext.JsonRejected as err:
                raise ApiError(400, "invalid_json", f"the request body is refused: {err}") from None
        return self._json


class EdgeRoute(APIRoute):
    """Routes that parse bodies with jsontext and answer with EdgeJSONResponse."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, response_class: Any = None,
                 **kwargs: Any) -> None:
        # An explicit class (not FastAPI's Default) makes FastAPI serialize through it
        # rather than through pydantic's JSON encoder, which fails on lone surrogates.
        if response_class is None or isinstance(response_class, DefaultPlaceholder):
            response_class = EdgeJSONResponse
        super().__init__(path, endpoint, response_class=response_class, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def edge_handler(request: Request) -> Response:
            return await handler(EdgeRequest(request.scope, request.receive))

        return edge_handler
