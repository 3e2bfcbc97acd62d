"""A real S3-compatible server for the backup tests: versitygw (posix backend), built
from its pinned Go module like etcd, on a loopback address of this run's slot."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from caxton_local import toolchain
from caxton_node.backup.s3 import Credentials, S3Client

from tests.support.addresses import test_network
from tests.support.waiting import wait_for


@dataclass
class S3Server:
    endpoint: str
    root: Path  # the posix backend's top directory: <root>/<bucket>/<key>
    creds: Credentials
    region: str = "us-east-1"

    def client(self) -> S3Client:
        return S3Client(self.endpoint, self.creds, region=self.region)

    def object_path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def s3_server(root: Path, *, buckets: tuple[str, ...] = ("backups",)) -> Iterator[S3Server]:
    """Starts versitygw on 127.<slot>.254.1 with fresh credentials and `buckets`; stops it after."""
    binary = toolchain.build(toolchain.VERSITYGW) / "versitygw"
    host = f"{test_network()}.254.1"
    port = free_port(host)
    data = root / "s3"
    data.mkdir(parents=True, exist_ok=True)
    creds = Credentials(access_key_id="caxton" + secrets.token_hex(4), secret_access_key=secrets.token_hex(20))
    log = (root / "versitygw.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), "--access", creds.access_key_id, "--secret", creds.secret_access_key,
         "--port", f"{host}:{port}", "posix", "--nometa", str(data)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = S3Server(endpoint=f"http://{host}:{port}", root=data, creds=creds)
    try:
        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"versitygw exited {proc.returncode}: {(root / 'versitygw.log').read_text()}")
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for(answers, timeout=30, what="versitygw to listen")
        client = server.client()
        for bucket in buckets:
            client.create_bucket(bucket)
        client.close()
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
