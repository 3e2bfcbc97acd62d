"""The node API client behind every direct-mode command (`caxton ... --api URL`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import httpx

from caxton_cli.output import CommandError


class NodeClient:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
             timeout: float | None = None) -> Any:
        try:
            resp = self._http.request(method, path, json=json, params=params,
                                      timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as err:
            raise CommandError(f"cannot reach the node API at {self.base_url}: {err}", exit_code=2) from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
                message = f"{body.get('code', resp.status_code)}: {body.get('message', resp.text)}"
            except ValueError:
                message = f"HTTP {resp.status_code}: {resp.text.strip()[:200]}"
            raise CommandError(message, exit_code=4 if resp.status_code == 404 else 1)
        return resp.json() if resp.content else None


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=os.environ.get("CAXTON_API", "http://127.0.0.1:8080"),
                        help="node API URL (default: $CAXTON_API or %(default)s)")
    parser.add_argument("--token-file", type=Path, default=os.environ.get("CAXTON_TOKEN_FILE"),
                        help="file holding the API bearer token (default: $CAXTON_TOKEN_FILE; or set $CAXTON_TOKEN)")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def client_from_args(args: argparse.Namespace) -> NodeClient:
    token = os.environ.get("CAXTON_TOKEN")
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as err:
            raise CommandError(f"cannot read token file {args.token_file}: {err.strerror}") from None
    return NodeClient(args.api, token)
