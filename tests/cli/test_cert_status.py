"""cert-status judges what the nodes serve: OK, WARNING inside renewBefore, EXPIRED, a row per
trusted CA, and a node that did not answer named. (Against a live cluster: the security e2e.)"""

from __future__ import annotations

import time

from caxton_cli.cert_status import expires_in, rows_of, seconds
from caxton_cli.client import Answer
from caxton_cli.errors import CommandError

NOW = time.time()


def stamp(offset: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + offset))


def node(leaf_in: float, cas: dict[str, float]) -> dict[str, object]:
    return {"tls": {"leaf": {"notAfter": stamp(leaf_in), "fingerprint": "ff" * 32, "issuer": "CN=ca"},
                    "trusted": [{"fingerprint": fp, "subject": f"CN={fp[:2]}", "notAfter": stamp(left)}
                                for fp, left in cas.items()]}}


def test_each_node_is_judged_against_renew_before_and_each_ca_gets_a_row() -> None:
    day = 86400.0
    answers = [Answer("demo-0", node(60 * day, {"aa" * 32: 3000 * day})),
               Answer("demo-1", node(25 * day, {"aa" * 32: 3000 * day, "bb" * 32: 20 * day})),
               Answer("demo-2", node(-60, {"aa" * 32: 3000 * day})),
               Answer("demo-3", error=CommandError("HTTP 503"))]
    report = rows_of(answers, seconds("720h"), NOW)
    assert [(n["node"], n["status"]) for n in report["nodes"]] == [
        ("demo-0", "OK"), ("demo-1", "WARNING"), ("demo-2", "EXPIRED"), ("demo-3", "UNREACHABLE")]
    assert [(c["fingerprint"][:2], c["status"], c["trustedBy"]) for c in report["cas"]] == [
        ("aa", "OK", ["demo-0", "demo-1", "demo-2"]), ("bb", "WARNING", ["demo-1"])]
    assert expires_in(25 * day) == "25 days" and expires_in(-60).startswith("expired")


def test_a_bad_window_is_bad_input() -> None:
    assert seconds("1h30m") == 5400
    try:
        seconds("soon")
    except CommandError as err:
        assert err.exit_code == 2 and "soon" in str(err)
    else:
        raise AssertionError("accepted a window that is not a duration")
