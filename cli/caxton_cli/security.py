"""`caxton security init-ca|issue-cert|gossip-key`: the cluster's PKI and gossip key.

The operator does the same for a CaxtonCluster; these commands serve bare-metal
clusters (the runbook's First-Time Bootstrap) and the tests.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
from pathlib import Path

from caxton_node import pki

from caxton_cli.errors import CommandError
from caxton_cli.output import emit


def init_ca(args: argparse.Namespace) -> None:
    out = Path(args.ca_dir)
    cert, key = out / "ca.crt", out / "ca.key"
    if cert.exists() and not args.force:
        raise CommandError(f"{cert} exists; use --force to replace the CA (every node certificate must be reissued)")
    ca = pki.new_ca(args.common_name, valid_for=dt.timedelta(days=args.days))
    ca.write(cert, key)
    emit({"caCert": str(cert), "caKey": str(key), "expires": ca.cert.not_valid_after_utc.isoformat()},
         getattr(args, "output_format", None) or args.output,
         text=f"CA written to {cert} and {key} (expires {ca.cert.not_valid_after_utc:%Y-%m-%d})")


def issue_cert(args: argparse.Namespace) -> None:
    ca_dir = Path(args.ca_dir)
    try:
        ca = pki.KeyPair.read(ca_dir / "ca.crt", ca_dir / "ca.key")
    except OSError as err:
        raise CommandError(f"cannot read the CA in {ca_dir}: {err.strerror} (run caxton security init-ca)") from None
    out = Path(args.output)
    pair = pki.issue(ca, args.node_id, dns_names=tuple(args.dns or ()), ip_addresses=tuple(args.ip or ()),
                     valid_for=dt.timedelta(days=args.days))
    cert, key = out / f"{args.node_id}.crt", out / f"{args.node_id}.key"
    pair.write(cert, key)
    emit({"cert": str(cert), "key": str(key)}, args.output_format,
         text=f"certificate for {args.node_id} written to {cert} and {key}")


def gossip_key(args: argparse.Namespace) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    if args.output:
        path = Path(args.output)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(key + "\n")
        print(f"gossip key written to {path}")
    else:
        print(key)
