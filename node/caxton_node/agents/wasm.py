"""Wasm agents on wasmtime: one Engine per node, one Store per agent.

Limits are hard: a per-message deadline through epoch interruption (a ticker
thread advances the epoch; Wasm calls release the GIL so it keeps ticking), an
optional fuel budget per message, and store limits on memory, tables and
instances. The one WASI call that can block, `poll_oneoff` (a sleep), is the
node's own: its wait counts against the deadline and is cut off there, since
epoch interruption cannot reach into a host call. Memory reservations are kept
small so ten thousand agents fit in virtual memory. Compiled modules are cached
on disk keyed by wasmtime version and module sha256 (deserializing is ~40x
cheaper than compiling); the node prunes the cache to the deployed modules.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi  # the native call below needs the raw bindings

from caxton_node.agents.module_format import not_wasm

log = logging.getLogger("caxton.agents")

WASMTIME_VERSION = version("wasmtime")
ABI_MODULE = "caxton"
HOST_IMPORTS = {"send_message", "log", "now_ms"}
WASI_MODULE = "wasi_snapshot_preview1"
REQUIRED_EXPORTS = ("memory", "caxton_alloc", "handle_message")
MAX_SNAPSHOT_BYTES = 4 * 2**20  # what agent_snapshot may hand over when the agent moves
EPOCH_TICK = 0.001  # seconds per epoch tick: deadlines have millisecond resolution
TABLE_ELEMENTS = 100_000  # per table; with TABLES, at most ~3 MiB of tables per agent
TABLES = 4
INSTANCES = 2
MEMORIES = 1
# WASI preview 1 errno values and the layout of poll_oneoff's subscriptions and events.
ERRNO_BADF, ERRNO_FAULT, ERRNO_INVAL, ERRNO_NOTSUP = 8, 21, 28, 58
_SUBSCRIPTION = struct.Struct("<QB7xI4xQQH6x")  # userdata, tag, clock id | fd, timeout, precision, flags
_EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type, nbytes, flags
_ABSTIME = 1


class AgentError(RuntimeError):
    """A module was refused or an agent failed; `code` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    deadline_seconds: float
    fuel: int | None = None


@dataclass
class HostCalls:
    """What the host imports do; the router supplies these for each agent."""

    send: Callable[[bytes], int]
    log: Callable[[int, str], None]


_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _env: None)


def _keeping_gil(library: ctypes.PyDLL, name: str, restype: Any, argtypes: list[Any]) -> Any:
    """A native function called without releasing the GIL. For the short calls made while a
    deadline runs: each release lets another thread take the GIL, and getting it back (up to
    a switch interval, 5 ms, per waiting thread) would count against the agent's deadline."""
    func = getattr(library, name)
    func.restype, func.argtypes = restype, argtypes
    return func


_WASMTIME = ctypes.PyDLL(ffi.dll._name)
_CONTEXT, _MEMORY = ctypes.POINTER(ffi.wasmtime_context_t), ctypes.POINTER(ffi.wasmtime_memory_t)
_increment_epoch = _keeping_gil(_WASMTIME, "wasmtime_engine_increment_epoch", None, [ctypes.c_void_p])
_set_epoch_deadline = _keeping_gil(_WASMTIME, "wasmtime_context_set_epoch_deadline", None,
                                   [_CONTEXT, ctypes.c_uint64])
_caller_context = _keeping_gil(_WASMTIME, "wasmtime_caller_context", _CONTEXT,
                               [ctypes.POINTER(ffi.wasmtime_caller_t)])
_memory_data = _keeping_gil(_WASMTIME, "wasmtime_memory_data", ctypes.c_void_p, [_CONTEXT, _MEMORY])
_memory_data_size = _keeping_gil(_WASMTIME, "wasmtime_memory_data_size", ctypes.c_size_t, [_CONTEXT, _MEMORY])
_memmove = _keeping_gil(ctypes.PyDLL(None), "memmove", ctypes.c_void_p,
                        [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t])


class _Current(threading.local):
    host: HostCalls | None = None
    memory: wasmtime.Memory | None = None
    deadline_at = 0.0  # time.monotonic() when the call running on this thread must end


class _DeadlineExceeded(Exception):
    """Raised inside a host call that would outlive the deadline; it becomes an interrupt trap."""


class WasmEngine:
    """The node's wasmtime Engine, its epoch ticker, linker and module cache."""

    def __init__(self, cache_dir: Path, *, max_message_bytes: int) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.consume_fuel = True
        config.memory_reservation = 1 << 20
        config.memory_guard_size = 1 << 16
        config.memory_reservation_for_growth = 1 << 16
        config.parallel_compilation = False
        self.engine = wasmtime.Engine(config)
        self.cache_dir = cache_dir
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.max_message_bytes = max_message_bytes
        self._current = _Current()
        self._pre: dict[str, wasmtime.InstancePre] = {}
        self._lock = threading.Lock()
        self._callbacks: list[Any] = []
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.linker.allow_shadowing = True  # poll_oneoff is ours (see _define_host_functions)
        self._define_host_functions()
        self.linker.allow_shadowing = False
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="wasm-epoch", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        """Advances the epoch, the clock deadlines are measured on, by the wall-clock time passed.

        The loop needs the CPU and the GIL; an agent busy in host calls can hold the GIL for a
        switch interval (5 ms) at a time, and a loop that ticked once per wake-up would then
        stretch every deadline several times over (a 5 s loop ran for over 20 s in the soak test).
        It catches up on the ticks it missed instead, through a call that keeps the GIL."""
        engine = ctypes.cast(self.engine.ptr(), ctypes.c_void_p)
        started, ticks = time.monotonic(), 0
        while not self._stopped.wait(EPOCH_TICK):
            due = int((time.monotonic() - started) / EPOCH_TICK)
            for _ in range(min(due - ticks, 60_000)):
                _increment_epoch(engine)
            ticks = max(ticks, due)

    def close(self) -> None:
        self._stopped.set()
        self._ticker.join(timeout=1)

    # -- host functions ---------------------------------------------------------

    def _define_host_functions(self) -> None:
        """Defines the `caxton` imports as raw (unchecked) host functions.

        wasmtime-py's checked host functions convert every argument and result
        through Python objects (~20 us a call); raw callbacks read the i32/i64
        slots directly and read guest memory with one ctypes copy.
        """
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        current = self._current
        max_bytes = self.max_message_bytes

        def guest_span(caller: Any, ptr: int, length: int) -> int | None:
            """The host address of guest bytes [ptr, ptr + length), or None if out of bounds."""
            memory = current.memory
            if memory is None:
                return None
            context = _caller_context(caller)
            size = _memory_data_size(context, ctypes.byref(memory._memory))
            ptr &= 0xFFFFFFFF
            if length < 0 or ptr + length > size:
                return None
            return int(_memory_data(context, ctypes.byref(memory._memory)) or 0) + ptr

        def guest_bytes(caller: Any, ptr: int, length: int) -> bytes | None:
            address = guest_span(caller, ptr, length)
            return None if address is None else ctypes.string_at(address, length)

        def send_message(_env: Any, caller: Any, args: Any, _n: int) -> int:
            try:
                host = current.host
                ptr, length = args[0].i32, args[1].i32
                if host is None:
                    result = -4
                elif length > max_bytes:
                    host.log(3, f"send_message refused: {length} bytes exceeds the {max_bytes}-byte limit")
                    result = -1
                else:
                    data = guest_bytes(caller, ptr, length)
                    result = -2 if data is None else host.send(data)
            except Exception:  # an exception must never unwind through Wasm frames
                log.exception("send_message failed")
                result = -4
            args[0].i32 = result
            return 0

        def log_message(_env: Any, caller: Any, args: Any, _n: int) -> int:
            try:
                host = current.host
                if host is not None:
                    data = guest_bytes(caller, args[1].i32, min(args[2].i32, 4096))
                    text = data.decode(errors="replace") if data is not None else "<log pointer outside memory>"
                    host.log(args[0].i32, text)
            except Exception:
                log.exception("log failed")
            return 0

        def now_ms(_env: Any, _caller: Any, args: Any, _n: int) -> int:
            args[0].i64 = int(time.time() * 1000)
            return 0

        def poll_oneoff(_env: Any, caller: Any, args: Any, _n: int) -> int:
            try:
                result = _poll_oneoff(caller, args[0].i32, args[1].i32, args[2].i32, args[3].i32)
            except _DeadlineExceeded:
                trap = ffi.wasmtime_trap_new_code(wasmtime.TrapCode.INTERRUPT.value)
                return ctypes.cast(trap, ctypes.c_void_p).value or 0
            except Exception:
                log.exception("poll_oneoff failed")
                result = ERRNO_INVAL
            args[0].i32 = result
            return 0

        def _poll_oneoff(caller: Any, subs_ptr: int, events_ptr: int, count: int, nevents_ptr: int) -> int:
            """WASI poll_oneoff: fd subscriptions are ready at once (nothing is open but empty
            stdio); clock subscriptions sleep, but never past the deadline of the running call."""
            if count <= 0 or count > 1024:
                return ERRNO_INVAL
            raw = guest_bytes(caller, subs_ptr, count * _SUBSCRIPTION.size)
            if raw is None:
                return ERRNO_FAULT
            ready: list[bytes] = []
            clocks: list[tuple[float, int]] = []  # (seconds from now, userdata)
            for fields in _SUBSCRIPTION.iter_unpack(raw):
                userdata, tag, ident, timeout, _precision, flags = fields
                if tag == 0:
                    if ident not in (0, 1) or (flags & _ABSTIME and ident != 0):
                        # cputime clocks, and absolute monotonic time (its origin is wasmtime's own)
                        ready.append(_EVENT.pack(userdata, ERRNO_NOTSUP, tag, 0, 0))
                    elif flags & _ABSTIME:
                        clocks.append((timeout / 1e9 - time.time(), userdata))
                    else:
                        clocks.append((timeout / 1e9, userdata))
                elif tag in (1, 2):
                    ready.append(_EVENT.pack(userdata, 0 if ident <= 2 else ERRNO_BADF, tag, 0, 0))
                else:
                    return ERRNO_INVAL
            if not ready:
                wait = max(0.0, min(seconds for seconds, _ in clocks))
                remaining = current.deadline_at - time.monotonic()
                if wait > remaining:
                    time.sleep(max(0.0, remaining))  # releases the GIL: the other agents run on
                    raise _DeadlineExceeded
                time.sleep(wait)
                ready = [_EVENT.pack(userdata, 0, 0, 0, 0) for seconds, userdata in clocks if seconds <= wait]
            out = guest_span(caller, events_ptr, len(ready) * _EVENT.size)
            counter = guest_span(caller, nevents_ptr, 4)
            if out is None or counter is None:
                return ERRNO_FAULT
            data = b"".join(ready)
            _memmove(out, data, len(data))
            _memmove(counter, struct.pack("<I", len(ready)), 4)
            return 0

        for module, name, ty, func in (
            (ABI_MODULE, "send_message", wasmtime.FuncType([i32, i32], [i32]), send_message),
            (ABI_MODULE, "log", wasmtime.FuncType([i32, i32, i32], []), log_message),
            (ABI_MODULE, "now_ms", wasmtime.FuncType([], [i64]), now_ms),
            # Replaces WASI's own, whose sleep the epoch deadline cannot interrupt.
            (WASI_MODULE, "poll_oneoff", wasmtime.FuncType([i32, i32, i32, i32], [i32]), poll_oneoff),
        ):
            callback = ffi.wasmtime_func_unchecked_callback_t(func)
            self._callbacks.append(callback)  # ctypes callbacks must outlive the linker
            module_bytes, name_bytes = module.encode(), name.encode()
            error = ffi.wasmtime_linker_define_func_unchecked(
                self.linker.ptr(), ctypes.create_string_buffer(module_bytes), len(module_bytes),
                ctypes.create_string_buffer(name_bytes), len(name_bytes), ty.ptr(), callback, None, _NO_FINALIZER,
            )
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)

    # -- modules ------------------------------------------------------------------

    def load(self, wasm: bytes) -> tuple[str, wasmtime.InstancePre]:
        """Validates and compiles (or loads from cache) a module; returns (sha256, pre-instance)."""
        problem = not_wasm(wasm)
        if problem:
            raise AgentError("invalid_module", f"not a binary Wasm module: {problem}")
        sha = hashlib.sha256(wasm).hexdigest()
        with self._lock:
            if sha in self._pre:
                return sha, self._pre[sha]
        cached = self.cache_dir / f"{WASMTIME_VERSION}-{sha}.cwasm"
        module: wasmtime.Module | None = None
        if cached.exists():
            try:
                module = wasmtime.Module.deserialize_file(self.engine, str(cached))
            except wasmtime.WasmtimeError:
                cached.unlink(missing_ok=True)
        if module is None:
            try:
                module = wasmtime.Module(self.engine, wasm)
            except wasmtime.WasmtimeError as err:
                raise AgentError("invalid_module", f"not a valid Wasm module: {_first_line(err)}") from None
            check_abi(module)
            tmp = cached.with_suffix(".tmp")
            tmp.write_bytes(module.serialize())
            tmp.replace(cached)
        check_abi(module)
        pre = self.linker.instantiate_pre(module)
        with self._lock:
            self._pre[sha] = pre
        return sha, pre

    def prune(self, keep: set[str]) -> int:
        """Forgets compiled modules no deployed agent uses, in memory and in the disk cache
        (entries of other wasmtime versions included); returns how many files went."""
        with self._lock:
            for sha in [sha for sha in self._pre if sha not in keep]:
                del self._pre[sha]
        wanted = {f"{WASMTIME_VERSION}-{sha}.cwasm" for sha in keep}
        removed = 0
        for path in self.cache_dir.iterdir():
            if path.name not in wanted:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def instantiate(self, pre: wasmtime.InstancePre, limits: Limits, host: HostCalls) -> AgentInstance:
        return AgentInstance(self, pre, limits, host)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def check_abi(module: wasmtime.Module) -> None:
    """Refuses modules that import anything but the Caxton host calls and WASI."""
    for imp in module.imports:
        if imp.module == ABI_MODULE and imp.name in HOST_IMPORTS:
            continue
        if imp.module == WASI_MODULE:
            continue
        raise AgentError(
            "forbidden_import",
            f"module imports {imp.module}.{imp.name}, which agents may not use "
            f"(allowed: {ABI_MODULE}.{{{', '.join(sorted(HOST_IMPORTS))}}} and {WASI_MODULE})",
        )
    exports = {exp.name for exp in module.exports}
    missing = [name for name in REQUIRED_EXPORTS if name not in exports]
    if missing:
        raise AgentError("missing_export", f"module does not export {', '.join(missing)} (see docs/agent-abi.md)")


class _NativeCall:
    """Calls an (i32...) -> i32 export through wasmtime's unchecked native call.

    The generic `Func.__call__` spends ~90% of its time converting values in
    Python; here the argument/result buffer is allocated once and reused.
    """

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, params: int) -> None:
        self._store = store
        self._func = func
        self._buf = (ffi.wasmtime_val_raw_t * max(params, 1))()

    def __call__(self, *args: int) -> int:
        buf = self._buf
        for i, value in enumerate(args):
            buf[i].i32 = value
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call_unchecked(
            self._store._context(), ctypes.byref(self._func._func), buf, len(buf), ctypes.byref(trap)
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            raise wasmtime.Trap._from_ptr(trap)
        return int(buf[0].i32)


class AgentInstance:
    """One agent's Store and instance; `handle` runs one message under its limits."""

    def __init__(self, engine: WasmEngine, pre: wasmtime.InstancePre, limits: Limits, host: HostCalls) -> None:
        self.engine = engine
        self.limits = limits
        self.host = host
        self.store = wasmtime.Store(engine.engine)
        self.store.set_limits(memory_size=limits.memory_bytes, table_elements=TABLE_ELEMENTS,
                              instances=INSTANCES, tables=TABLES, memories=MEMORIES)
        self.store.set_wasi(wasmtime.WasiConfig())
        self._deadline_ticks = max(1, round(limits.deadline_seconds / EPOCH_TICK))
        # Fuel is metered engine-wide; an agent without a budget gets a practically endless one.
        self.store.set_fuel(limits.fuel if limits.fuel is not None else 2**63 - 1)
        self._arm()
        try:
            self.instance = pre.instantiate(self.store)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
            self.close()
            raise AgentError("init_failed", f"agent cannot start: {describe_trap(err)}") from None
        exports = self.instance.exports(self.store)
        memory = exports["memory"]
        alloc, handle = exports["caxton_alloc"], exports["handle_message"]
        if not isinstance(memory, wasmtime.Memory) or not isinstance(alloc, wasmtime.Func) \
                or not isinstance(handle, wasmtime.Func):
            self.close()
            raise AgentError("missing_export", "memory, caxton_alloc or handle_message has the wrong kind")
        self.memory = memory
        if not (_signature(alloc, self.store, 1) and _signature(handle, self.store, 2)):
            self.close()
            raise AgentError("bad_signature", "caxton_alloc must be (i32) -> i32 and handle_message "
                             "(i32, i32) -> i32 (see docs/agent-abi.md)")
        self._alloc = _NativeCall(self.store, alloc, 1)
        self._handle = _NativeCall(self.store, handle, 2)
        for name in ("_initialize", "agent_init"):
            func = exports.get(name)
            if isinstance(func, wasmtime.Func):
                self._call_plain(func)

    def _arm(self) -> float:
        """Starts the deadline (and refills the fuel); returns when it started (time.monotonic())."""
        if self.limits.fuel is not None:
            self.store.set_fuel(self.limits.fuel)
        started = time.monotonic()
        _set_epoch_deadline(self.store._context(), self._deadline_ticks)
        self.engine._current.deadline_at = started + self.limits.deadline_seconds
        return started

    def _enter(self) -> None:
        current = self.engine._current
        current.host = self.host
        current.memory = getattr(self, "memory", None)

    def _call_plain(self, func: wasmtime.Func) -> None:
        self._arm()
        self._enter()
        try:
            func(self.store)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
            raise AgentError("init_failed", f"agent_init trapped: {describe_trap(err)}") from None

    def handle(self, message: bytes) -> int:
        """Delivers one encoded message; raises wasmtime.Trap on deadline, fuel or fault.
        caxton_alloc and handle_message share the deadline: handle_message gets what is left."""
        started = self._arm()
        self._enter()
        n = len(message)
        ptr = self._alloc(n) & 0xFFFFFFFF
        # Memory may have moved if caxton_alloc grew it: look the base up after the call.
        context, memory = self.store._context(), ctypes.byref(self.memory._memory)
        if ptr == 0 or ptr + n > _memory_data_size(context, memory):
            raise AgentError("alloc_failed", f"caxton_alloc({n}) returned an invalid pointer {ptr}")
        _memmove(int(_memory_data(context, memory) or 0) + ptr, message, n)
        spent = round((time.monotonic() - started) / EPOCH_TICK)
        _set_epoch_deadline(context, max(1, self._deadline_ticks - spent))
        return self._handle(ptr, n)

    def memory_bytes(self) -> int:
        return int(self.memory.data_len(self.store))

    @property
    def keeps_state(self) -> bool:
        """Whether the module exports both halves of the optional state ABI (docs/agent-abi.md)."""
        exports = self.instance.exports(self.store)
        return isinstance(exports.get("agent_snapshot"), wasmtime.Func) \
            and isinstance(exports.get("agent_restore"), wasmtime.Func)

    def snapshot(self) -> bytes | None:
        """The agent's state as its `agent_snapshot` export hands it over (None without the ABI).
        Called only while no worker is inside the instance; runs under the agent's deadline."""
        if not self.keeps_state:
            return None
        func = self.instance.exports(self.store)["agent_snapshot"]
        assert isinstance(func, wasmtime.Func)
        self._arm()
        self._enter()
        try:
            packed = int(func(self.store)) & 0xFFFFFFFFFFFFFFFF
        except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
            raise AgentError("snapshot_failed", f"agent_snapshot trapped: {describe_trap(err)}") from None
        ptr, n = packed >> 32, packed & 0xFFFFFFFF
        if n > MAX_SNAPSHOT_BYTES:
            raise AgentError("snapshot_failed", f"agent_snapshot returned {n} bytes, over {MAX_SNAPSHOT_BYTES}")
        data = self.memory.read(self.store, ptr, ptr + n) if n else b""
        return bytes(data)

    def restore(self, data: bytes) -> None:
        """Gives a fresh instance the state its predecessor's `agent_snapshot` returned."""
        if not self.keeps_state:
            raise AgentError("restore_unsupported", "the module does not export agent_snapshot and "
                             "agent_restore, so it cannot take a snapshot (see docs/agent-abi.md)")
        func = self.instance.exports(self.store)["agent_restore"]
        assert isinstance(func, wasmtime.Func)
        self._arm()
        self._enter()
        try:
            ptr = self._alloc(len(data)) & 0xFFFFFFFF
            if ptr == 0 or ptr + len(data) > self.memory.data_len(self.store):
                raise AgentError("restore_failed", f"caxton_alloc({len(data)}) returned an invalid pointer {ptr}")
            self.memory.write(self.store, data, ptr)
            result = int(func(self.store, ptr, len(data)))
        except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
            raise AgentError("restore_failed", f"agent_restore trapped: {describe_trap(err)}") from None
        if result != 0:
            raise AgentError("restore_failed", f"agent_restore refused the snapshot (returned {result})")

    def shutdown(self) -> None:
        func = self.instance.exports(self.store).get("agent_shutdown")
        if isinstance(func, wasmtime.Func):
            try:
                self._call_plain(func)
            except AgentError as err:
                log.warning("agent_shutdown failed: %s", err)
        self.close()

    def close(self) -> None:
        self.store.close()


def _signature(func: wasmtime.Func, store: wasmtime.Store, params: int) -> bool:
    """True if `func` is (i32 x params) -> i32, the shape the native call handles."""
    ty = func.type(store)
    i32 = wasmtime.ValType.i32()
    return len(ty.params) == params and all(p == i32 for p in ty.params) and list(ty.results) == [i32]


def describe_trap(err: wasmtime.Trap | wasmtime.WasmtimeError) -> str:
    code = getattr(err, "trap_code", None)
    if code == wasmtime.TrapCode.INTERRUPT:
        return "deadline exceeded"
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return "fuel exhausted"
    if code is not None:
        return f"{code.name.lower().replace('_', ' ')}: {_cause(err)}"
    return _cause(err)


def _cause(err: Exception) -> str:
    """The line that says what happened: wasmtime puts it after the backtrace, under "Caused by"."""
    text = str(err).strip()
    _, found, cause = text.partition("Caused by:")
    return cause.strip().splitlines()[0].strip() if found and cause.strip() else _first_line(err)
