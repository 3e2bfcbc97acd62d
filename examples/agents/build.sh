#!/usr/bin/env bash
# Builds every example agent into build/: WAT with wasmtime's wat2wasm, C with zig.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
python=${PYTHON:-python3}
for wat in *.wat; do
  "$python" -c 'import sys, wasmtime; open(sys.argv[2], "wb").write(wasmtime.wat2wasm(open(sys.argv[1]).read()))' \
    "$wat" "build/${wat%.wat}.wasm"
done
for c in *.c; do
  "$python" -m ziglang cc --target=wasm32-wasi -O2 -s -mexec-model=reactor \
    -Wl,--export=caxton_alloc -Wl,--export=handle_message -Wl,--export=agent_init -Wl,-z,stack-size=65536 \
    -o "build/${c%.c}.wasm" "$c"
done
ls -l build
