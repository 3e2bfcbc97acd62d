/*
 * counter: a Caxton agent in C. Counts the `request` messages it receives and
 * answers each with an `inform` whose content is {"count": N}. Anything else is
 * answered with `not_understood`. It keeps its count when it moves to another node: it exports
 * the optional agent_snapshot / agent_restore pair (docs/agent-abi.md), so the node hands the
 * count over instead of starting the copy at zero. Built with zig (see build.sh):
 *   python -m ziglang cc --target=wasm32-wasi -O2 -s -mexec-model=reactor \
 *       -Wl,--export=caxton_alloc -Wl,--export=handle_message -Wl,--export=agent_init \
 *       -Wl,-z,stack-size=65536 -o counter.wasm counter.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((import_module("caxton"), import_name("send_message")))
int32_t send_message(const char *ptr, int32_t len);
__attribute__((import_module("caxton"), import_name("log")))
void caxton_log(int32_t level, const char *ptr, int32_t len);

static uint64_t count;
static char *inbox;
static int32_t inbox_size;

/* The host asks for a buffer for each incoming message; one buffer is reused. */
int32_t caxton_alloc(int32_t len) {
    if (len > inbox_size) {
        char *bigger = realloc(inbox, (size_t)len);
        if (!bigger) return 0;
        inbox = bigger;
        inbox_size = len;
    }
    return (int32_t)(intptr_t)inbox;
}

static int is_request(const char *msg, int32_t len) {
    static const char needle[] = "\"performative\":\"request\"";
    int32_t n = (int32_t)sizeof(needle) - 1;
    for (int32_t i = 0; i + n <= len; i++)
        if (memcmp(msg + i, needle, (size_t)n) == 0) return 1;
    return 0;
}

int32_t handle_message(int32_t ptr, int32_t len) {
    const char *msg = (const char *)(intptr_t)ptr;
    char reply[96];
    int n;
    if (is_request(msg, len)) {
        count++;
        n = snprintf(reply, sizeof reply, "{\"performative\":\"inform\",\"content\":{\"count\":%llu}}",
                     (unsigned long long)count);
    } else {
        n = snprintf(reply, sizeof reply, "{\"performative\":\"not_understood\",\"content\":null}");
    }
    return send_message(reply, n);
}

/* The state a move carries: the count, 8 bytes little-endian, packed as (ptr << 32) | len. */
static uint64_t snapshot_buf;

__attribute__((export_name("agent_snapshot")))
uint64_t agent_snapshot(void) {
    snapshot_buf = count;
    return ((uint64_t)(uintptr_t)&snapshot_buf << 32) | sizeof snapshot_buf;
}

/* Given what agent_snapshot returned on the node it moved from; 0 accepts it. */
__attribute__((export_name("agent_restore")))
int32_t agent_restore(int32_t ptr, int32_t len) {
    if (len != (int32_t)sizeof count) return 1;
    memcpy(&count, (const void *)(intptr_t)ptr, sizeof count);
    return 0;
}

void agent_init(void) {
    static const char hello[] = "counter ready";
    caxton_log(1, hello, (int32_t)sizeof(hello) - 1);
}
