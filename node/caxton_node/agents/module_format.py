"""What a module's bytes look like, when they are not a binary Wasm module.

Agents are binary Wasm only. wasmtime-py would compile anything that does not start
with a NUL byte as WAT text, so WAT would be accepted and garbage would be refused as
"not valid utf-8"; this is checked first, and the refusal names what the bytes are.
"""

from __future__ import annotations

import base64
import binascii

WASM_MAGIC = b"\0asm"
CORE_VERSION = b"\x01\0\0\0"
_SIGNATURES = (
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"\x1f\x8b", "gzip data"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\xfe\xed\xfa", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"#!", "a script"),
)


def not_wasm(data: bytes) -> str | None:
    """None for a core Wasm binary; otherwise why the bytes are not one, in a few words."""
    if data.startswith(WASM_MAGIC):
        version = data[4:8]
        if version == CORE_VERSION or len(version) < 4:
            return None  # a core module (or a truncated one: wasmtime says where it ends)
        if version[2:4] == b"\x01\0":
            return "a Wasm component, not a core module: agents are core modules (see docs/agent-abi.md)"
        return f"a Wasm binary of unsupported version {version.hex()} (expected 01000000)"
    if not data:
        return "empty"
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            return f"{what}, not a Wasm module"
    try:
        text = data.decode("utf-8").lstrip("\ufeff \t\r\n")
    except UnicodeDecodeError:
        return f"not a Wasm module: it does not start with the magic bytes 00 61 73 6d but with {data[:8].hex(' ')}"
    if text.startswith(("(module", "(component", ";;", "(;")):
        return "looks like WAT text; compile it with wat2wasm (or wasm-tools parse) and deploy the binary"
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if decoded.startswith(WASM_MAGIC):
        return "looks like base64 of a Wasm module: it was encoded twice"
    preview = text[:24].encode("unicode_escape").decode()
    return f"looks like text ({preview!r}...), not a binary Wasm module"
