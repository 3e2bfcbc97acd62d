"""A small S3 client: the five calls a backup needs (put, get, head, list, delete),
signed with AWS Signature Version 4 over httpx.

Why not boto3: the node image would carry ~80 MB of SDK for five requests, and
every S3-compatible server (AWS, versitygw, MinIO, Ceph RGW) speaks these calls
the same way. Path-style addressing (`<endpoint>/<bucket>/<key>`) works on all
of them. Every S3 error is raised as `S3Error` carrying the server's own code
and message, so a Failed backup can say exactly what the server refused.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote

import httpx

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class S3Error(RuntimeError):
    """The server refused a call (`code` from its XML error, e.g. InvalidAccessKeyId), or
    could not be reached (`code` "Unreachable")."""

    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature_headers(method: str, url: httpx.URL, payload_sha256: str, creds: Credentials,
                      region: str, now: datetime.datetime) -> dict[str, str]:
    """The SigV4 headers for one request (pure: the time is an argument, so it is testable)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    host = url.netloc.decode()
    headers = {"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(url.params.multi_items())
    )
    canonical = "\n".join([
        method, quote(url.path, safe="/-_.~"), query,
        "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload_sha256,
    ])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(f"AWS4{creds.secret_access_key}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/{scope}, "
                         f"SignedHeaders={signed}, Signature={signature}",
    }


def _error(resp: httpx.Response) -> S3Error:
    code, message = f"HTTP{resp.status_code}", resp.reason_phrase
    try:
        root = ET.fromstring(resp.content)
        code = root.findtext("Code") or code
        message = root.findtext("Message") or message
    except ET.ParseError:
        pass
    return S3Error(code, message, resp.status_code)


class S3Client:
    def __init__(self, endpoint: str, creds: Credentials, *, region: str = "us-east-1",
                 timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.creds = creds
        self.region = region
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, bucket: str, key: str = "", *, body: bytes = b"",
                 params: dict[str, str] | None = None, ok: tuple[int, ...] = (200,)) -> httpx.Response:
        url = httpx.URL(f"{self.endpoint}/{quote(bucket)}/{quote(key, safe='/-_.~')}", params=params or {})
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        headers = signature_headers(method, url, payload, self.creds, self.region,
                                    datetime.datetime.now(datetime.UTC))
        try:
            resp = self._http.request(method, url, content=body or None, headers=headers)
        except httpx.HTTPError as err:
            raise S3Error("Unreachable", f"{self.endpoint}: {err or type(err).__name__}") from err
        if resp.status_code not in ok:
            raise _error(resp)
        return resp

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self._request("PUT", bucket, key, body=data)

    def get(self, bucket: str, key: str) -> bytes:
        return self._request("GET", bucket, key).content

    def exists(self, bucket: str, key: str) -> bool:
        return self._request("HEAD", bucket, key, ok=(200, 404)).status_code == 200

    def delete(self, bucket: str, key: str) -> None:
        self._request("DELETE", bucket, key, ok=(200, 204))

    def list(self, bucket: str, prefix: str = "") -> list[tuple[str, int]]:
        """(key, size) of every object under `prefix`, following continuation tokens."""
        found: list[tuple[str, int]] = []
        token = ""
        for _ in range(100_000):  # bounded: 1000 keys a page
            params = {"list-type": "2", "prefix": prefix}
            if token:
                params["continuation-token"] = token
            root = ET.fromstring(self._request("GET", bucket, params=params).content)
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            for item in root.iter(f"{ns}Contents"):
                found.append((item.findtext(f"{ns}Key") or "", int(item.findtext(f"{ns}Size") or 0)))
            token = root.findtext(f"{ns}NextContinuationToken") or ""
            if root.findtext(f"{ns}IsTruncated") != "true" or not token:
                break
        return found

    def create_bucket(self, bucket: str) -> None:
        self._request("PUT", bucket)
