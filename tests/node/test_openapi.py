"""The OpenAPI document tells the truth about the API: schemathesis holds the live node to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from caxton_node.messages import _FIELDS, PERFORMATIVES

from tests.support.nodes import NodeFactory, NodeProcess

# A long poll may wait 30 s (the documented maximum of `wait`), hence the response-time
# bound of --checks all is raised to 35 s.
# schemathesis treats schema-valid data refused with 422 as a failure; here 422 is the
# documented answer to a well-formed deploy whose module is not runnable Wasm (the
# fuzzer cannot write a Wasm module), so it is an expected status for that check.
ST_CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""
EXAMPLES = 8


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def test_the_document_lists_real_status_codes_and_bodies(node_factory: NodeFactory) -> None:
    node = node_factory()
    schema = httpx.get(f"{node.api}/openapi.json").json()
    for path, method, op in operations(schema):
        responses = set(op["responses"])
        if path.startswith("/v1/"):
            assert "401" in responses, (method, path)
            assert op["security"] == [{"bearer": []}, {"caxtonToken": []}]
        if path != "/v1/agents" or method != "post":
            assert "422" not in responses, (method, path)  # validation answers 400, not FastAPI's 422
        if op.get("parameters") or op.get("requestBody"):
            assert "400" in responses, (method, path)
        if op.get("requestBody"):
            assert "413" in responses, (method, path)
    send = schema["paths"]["/v1/messages"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/MessageIn"}
    assert {"202", "400", "401", "404", "413", "429"} <= set(send["responses"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    message = schema["components"]["schemas"]["MessageIn"]
    assert set(message["properties"]["performative"]["enum"]) == PERFORMATIVES


def test_the_message_model_describes_what_the_parser_accepts() -> None:
    from caxton_node.api.models import MessageIn

    assert set(MessageIn.model_fields) == _FIELDS | {"ts_ms"}
    assert set(MessageIn.model_json_schema()["properties"]["performative"]["enum"]) == PERFORMATIVES
    assert set(MessageIn.model_json_schema()["required"]) == {"performative", "sender", "receiver"}


def run_schemathesis(node: NodeProcess, tmp_path: Path, *, token: bool) -> subprocess.CompletedProcess[str]:
    schema_file = tmp_path / "openapi.json"
    schema_file.write_text(httpx.get(f"{node.api}/openapi.json").text)
    config = tmp_path / "schemathesis.toml"
    config.write_text(ST_CONFIG)
    headers = ["-H", f"Authorization: Bearer {node.token_file.read_text().strip()}"] if token else []
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(schema_file),
         "--url", node.api, "--checks", "all", "--max-examples", str(EXAMPLES), "--workers", "1",
         "--seed", "1", "--generation-database", "none", "--request-timeout", "40",
         "--max-response-time", "35", "--no-color",
         "--output-truncate", "false", *headers],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )


@pytest.mark.parametrize("token", [True, False], ids=["with-token", "without-token"])
def test_schemathesis_finds_no_mismatch(node_factory: NodeFactory, tmp_path: Path, token: bool) -> None:
    node = node_factory()
    result = run_schemathesis(node, tmp_path, token=token)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Tested: 29" in result.stdout or "Tested: " in result.stdout
    assert node.proc is not None and node.proc.poll() is None
