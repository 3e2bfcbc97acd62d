"""The REST verbs both clients share (`Kube` over httpx for long-lived processes,
`OneShotKube` over http.client for quick commands), written once on top of the one
`raw` request each transport provides."""

from __future__ import annotations

import json
from typing import Any, Protocol

from caxton_kube.errors import KubeError, Obj

PATCH_TYPES = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json",
               "json": "application/json-patch+json"}


class Answer(Protocol):
    """What a transport's `raw` returns (httpx.Response has it)."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class RestVerbs:
    def raw(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None, content: bytes | None = None) -> Answer:
        raise NotImplementedError

    @staticmethod
    def _check(resp: Answer) -> Obj:
        if resp.status_code >= 400:
            try:
                body = resp.json()
                raise KubeError(resp.status_code, body.get("message", resp.text), body.get("reason", ""))
            except (ValueError, AttributeError):
                raise KubeError(resp.status_code, resp.text) from None
        result: Obj = resp.json() if resp.content else {}
        return result

    def get(self, path: str, **params: Any) -> Obj:
        return self._check(self.raw("GET", path, params=params))

    def get_or_none(self, path: str, **params: Any) -> Obj | None:
        try:
            return self.get(path, **params)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def create(self, path: str, body: Obj) -> Obj:
        return self._check(self.raw("POST", path, json=body))

    def patch(self, path: str, body: Obj | list[Obj], *, kind: str = "merge") -> Obj:
        return self._check(self.raw("PATCH", path, content=json.dumps(body).encode(),
                                    headers={"Content-Type": PATCH_TYPES[kind]}))

    def apply(self, path: str, body: Obj, *, manager: str) -> Obj:
        """Server-side apply: only the fields `manager` sets are touched, and re-applying the
        same object changes nothing."""
        return self._check(self.raw("PATCH", path, content=json.dumps(body).encode(),
                                    params={"fieldManager": manager, "force": "true"},
                                    headers={"Content-Type": "application/apply-patch+yaml"}))

    def put(self, path: str, body: Obj) -> Obj:
        return self._check(self.raw("PUT", path, json=body))

    def delete(self, path: str, body: Obj | None = None) -> Obj | None:
        resp = self.raw("DELETE", path, json=body)
        if resp.status_code == 404:
            return None
        return self._check(resp)
