"""`kubectl caxton security rotate-certs|rotate-gossip-key|rotate-token`: ask the operator
for a rotation and follow it to the end.

Each verb only changes the CaxtonCluster (an annotation; for a user CA, a Secret and
`spec.tls.caSecretName`), so the operator stays the one writer; the operator carries the
rotation out phase by phase, confirmed by every node, and reports it in status. Exit codes:
0 done, 1 refused (the reason is printed), 2 bad input, 3 timed out (the status message
names what holds it), 4 not found.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
import time
from pathlib import Path
from typing import Any

from caxton_cli.client import ClusterRef
from caxton_cli.declarative import MANAGER, _api_errors
from caxton_cli.errors import CommandError
from caxton_cli.output import emit

ANNOTATIONS = {"certificates": "caxton.dev/rotate-certs", "gossipKey": "caxton.dev/rotate-gossip-key",
               "apiToken": "caxton.dev/rotate-token"}
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise CommandError(f"cannot read {what} {path}: {err.strerror}", exit_code=2) from None


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the first certificate's DER (what the nodes report), without a crypto library."""
    found = _PEM.search(cert_pem)
    if found is None:
        raise CommandError("--ca-cert holds no PEM certificate", exit_code=2)
    return hashlib.sha256(base64.b64decode(b"".join(found.group(1).split()))).hexdigest()


def _request_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}"


def _status(ref: ClusterRef) -> tuple[dict[str, Any], dict[str, Any]]:
    cluster = ref.kube.get(ref.path(name=ref.name))
    return cluster, dict(cluster.get("status") or {})


def _follow(ref: ClusterRef, key: str, done: Any, *, timeout: float, what: str) -> dict[str, Any]:
    """Polls status.<key> until `done(status)`; a refusal exits 1, a timeout 3, both with the message."""
    started = last_note = time.monotonic()
    last_message = ""
    while True:
        _, status = _status(ref)
        current = dict(status.get(key) or {})
        if current.get("phase") == "Refused":
            raise CommandError(f"refused: {current.get('message')}", exit_code=1)
        if done(current):
            return current
        now = time.monotonic()
        message = str(current.get("message") or "")
        if now - started > timeout:
            raise CommandError(f"timed out after {timeout:.0f}s waiting for {what}: {message}", exit_code=3)
        if message != last_message or now - last_note >= 10:
            print(f"{current.get('phase', '?')}: {message}", file=sys.stderr, flush=True)
            last_message, last_note = message, now
        time.sleep(1.0)


def _annotate(ref: ClusterRef, annotation: str, request: str, spec: dict[str, Any] | None = None) -> None:
    patch: dict[str, Any] = {"metadata": {"annotations": {annotation: request}}}
    if spec:
        patch["spec"] = spec
    ref.kube.patch(ref.path(name=ref.name), patch, kind="merge")


@_api_errors
def rotate_certs(args: argparse.Namespace) -> None:
    if bool(args.ca_cert) != bool(args.ca_key):
        raise CommandError("--ca-cert and --ca-key go together (or leave both out for a fresh operator CA)",
                           exit_code=2)
    ref = ClusterRef.from_args(args)
    cluster, status = _status(ref)
    if not ((cluster.get("spec") or {}).get("tls") or {}).get("enabled", True):
        raise CommandError(f"CaxtonCluster {ref.name} has tls.enabled false: there is no CA to rotate", exit_code=1)
    before = dict(status.get("certificates") or {})
    request = _request_id()
    if args.ca_cert:
        cert, key = _read(args.ca_cert, "--ca-cert"), _read(args.ca_key, "--ca-key")
        expected = fingerprint(cert)
        name = f"{ref.name[:40]}-ca-{expected[:10]}"
        meta = cluster["metadata"]
        ref.kube.apply(f"/api/v1/namespaces/{ref.namespace}/secrets/{name}", {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": ref.namespace,
                         "labels": {"app.kubernetes.io/managed-by": MANAGER, "caxton.dev/cluster": ref.name},
                         "ownerReferences": [{"apiVersion": cluster["apiVersion"], "kind": cluster["kind"],
                                              "name": meta["name"], "uid": meta["uid"]}]},
            "data": {"ca.crt": base64.b64encode(cert).decode(), "ca.key": base64.b64encode(key).decode()},
        }, manager=MANAGER)
        _annotate(ref, ANNOTATIONS["certificates"], request, {"tls": {"caSecretName": name}})
        print(f"CA {expected[:16]} stored in Secret {name}; tls.caSecretName points at it", file=sys.stderr)

        def done(current: dict[str, Any]) -> bool:
            return current.get("phase") == "Ready" and current.get("caFingerprint") == expected
    else:
        _annotate(ref, ANNOTATIONS["certificates"], request, {"tls": {"caSecretName": ""}})
        generation = int(before.get("caGeneration") or 1)

        def done(current: dict[str, Any]) -> bool:
            return current.get("phase") == "Ready" and int(current.get("caGeneration") or 1) > generation
    result: dict[str, Any] = {"cluster": ref.name, "request": request}
    if not args.no_wait:
        result["certificates"] = _follow(ref, "certificates", done, timeout=args.timeout,
                                         what="every node to trust and serve the new CA only")
    final: dict[str, Any] = result.get("certificates") or {}
    emit(result, args.output, text=f"caxtoncluster/{ref.name}: CA rotated to {final.get('caFingerprint', '')[:16]} "
                                   f"(generation {final.get('caGeneration')})" if final else
         f"caxtoncluster/{ref.name}: CA rotation requested ({request})")


def _rotate_ring(args: argparse.Namespace, key: str, what: str) -> None:
    ref = ClusterRef.from_args(args)
    _, status = _status(ref)
    before = str((status.get(key) or {}).get("primary") or "")
    request = _request_id()
    _annotate(ref, ANNOTATIONS[key], request)
    result: dict[str, Any] = {"cluster": ref.name, "request": request}
    if not args.no_wait:
        result[key] = _follow(ref, key, lambda c: c.get("phase") == "Ready" and c.get("primary") not in ("", before)
                              and len(c.get("ids") or ()) == 1, timeout=args.timeout,
                              what=f"every node to use only the new {what}")
    final: dict[str, Any] = result.get(key) or {}
    emit(result, args.output, text=f"caxtoncluster/{ref.name}: {what} rotated to {final.get('primary')}" if final
         else f"caxtoncluster/{ref.name}: {what} rotation requested ({request})")


@_api_errors
def rotate_gossip_key(args: argparse.Namespace) -> None:
    _rotate_ring(args, "gossipKey", "gossip key")


@_api_errors
def rotate_token(args: argparse.Namespace) -> None:
    _rotate_ring(args, "apiToken", "API token")
