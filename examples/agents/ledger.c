/*
 * ledger: a Caxton agent in C that keeps a durable ledger of what it handles in
 * the node's log. For each message whose content is {"seq": N, "sleep_ms": M} it
 * logs "start N", sleeps M ms with WASI (usleep -> poll_oneoff), logs
 * "handled N" and answers with an `inform` whose content is {"seq": N}. The
 * delivery tests count these lines to find lost and duplicated messages.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((import_module("caxton"), import_name("send_message")))
int32_t send_message(const char *ptr, int32_t len);
__attribute__((import_module("caxton"), import_name("log")))
void caxton_log(int32_t level, const char *ptr, int32_t len);

static char *inbox;
static int32_t inbox_size;

int32_t caxton_alloc(int32_t len) {
    if (len > inbox_size) {
        char *bigger = realloc(inbox, (size_t)len);
        if (!bigger) return 0;
        inbox = bigger;
        inbox_size = len;
    }
    return (int32_t)(intptr_t)inbox;
}

/* The number after `"key":` in msg, or -1. */
static long long field(const char *msg, int32_t len, const char *key) {
    char needle[32];
    int n = snprintf(needle, sizeof needle, "\"%s\":", key);
    for (int32_t i = 0; i + n < len; i++) {
        if (memcmp(msg + i, needle, (size_t)n) == 0) {
            long long value = 0;
            int digits = 0;
            for (int32_t j = i + n; j < len && msg[j] >= '0' && msg[j] <= '9'; j++, digits++)
                value = value * 10 + (msg[j] - '0');
            return digits ? value : -1;
        }
    }
    return -1;
}

static void note(const char *what, long long seq) {
    char line[48];
    int n = snprintf(line, sizeof line, "%s %lld", what, seq);
    caxton_log(1, line, n);
}

int32_t handle_message(int32_t ptr, int32_t len) {
    const char *msg = (const char *)(intptr_t)ptr;
    long long seq = field(msg, len, "seq");
    long long sleep_ms = field(msg, len, "sleep_ms");
    char reply[80];
    note("start", seq);
    if (sleep_ms > 0) usleep((useconds_t)(sleep_ms * 1000));
    note("handled", seq);
    int n = snprintf(reply, sizeof reply, "{\"performative\":\"inform\",\"content\":{\"seq\":%lld}}", seq);
    return send_message(reply, n);
}

void agent_init(void) {
    static const char hello[] = "ledger ready";
    caxton_log(1, hello, (int32_t)sizeof(hello) - 1);
}
