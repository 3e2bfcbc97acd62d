/*
 * podnet: an LD_PRELOAD shim that gives a pod process its own loopback address.
 *
 * Pods of the process kubelet share the host's network namespace, so two pods
 * listening on 0.0.0.0:8080 would collide and every connection would leave from
 * 127.0.0.1. With CAXTON_POD_IP=127.0.0.N set, this shim
 *   - turns bind() to the wildcard address (0.0.0.0 or ::) into a bind to the
 *     pod address (for IPv6 sockets, its v4-mapped form), and
 *   - binds unbound sockets to the pod address before connect()/sendto() towards
 *     127.0.0.0/8, so peers and iptables rules see the pod as the source.
 * Explicit binds to other addresses are left alone.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static struct in_addr pod_ip;
static int pod_ip_state = -1; /* -1 unknown, 0 none, 1 set */

static int have_pod_ip(void) {
    if (pod_ip_state < 0) {
        const char *s = getenv("CAXTON_POD_IP");
        pod_ip_state = (s && inet_pton(AF_INET, s, &pod_ip) == 1) ? 1 : 0;
    }
    return pod_ip_state;
}

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);

static int real_bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn fn;
    if (!fn) fn = (bind_fn)dlsym(RTLD_NEXT, "bind");
    return fn(fd, addr, len);
}

static void mapped_pod_ip(struct in6_addr *out) {
    memset(out, 0, sizeof *out);
    out->s6_addr[10] = 0xff;
    out->s6_addr[11] = 0xff;
    memcpy(&out->s6_addr[12], &pod_ip, 4);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    if (have_pod_ip() && addr) {
        if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
            struct sockaddr_in a;
            memcpy(&a, addr, sizeof a);
            if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
                a.sin_addr = pod_ip;
                return real_bind(fd, (struct sockaddr *)&a, sizeof a);
            }
        } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 a;
            memcpy(&a, addr, sizeof a);
            if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) {
                int off = 0;
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
                mapped_pod_ip(&a.sin6_addr);
                return real_bind(fd, (struct sockaddr *)&a, sizeof a);
            }
        }
    }
    return real_bind(fd, addr, len);
}

/* Bind an unbound IPv4 socket to the pod address when it talks to loopback. */
static void source_bind(int fd, const struct sockaddr *dest, socklen_t len) {
    if (!have_pod_ip() || !dest || dest->sa_family != AF_INET ||
        len < (socklen_t)sizeof(struct sockaddr_in))
        return;
    const struct sockaddr_in *d = (const struct sockaddr_in *)dest;
    if ((ntohl(d->sin_addr.s_addr) >> 24) != 127) return;
    struct sockaddr_in local;
    socklen_t local_len = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0 || local.sin_family != AF_INET ||
        local.sin_port != 0 || local.sin_addr.s_addr != htonl(INADDR_ANY))
        return;
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0, .sin_addr = pod_ip};
    int saved = errno;
    real_bind(fd, (struct sockaddr *)&src, sizeof src);
    errno = saved;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static connect_fn fn;
    if (!fn) fn = (connect_fn)dlsym(RTLD_NEXT, "connect");
    source_bind(fd, addr, len);
    return fn(fd, addr, len);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
               socklen_t len) {
    static sendto_fn fn;
    if (!fn) fn = (sendto_fn)dlsym(RTLD_NEXT, "sendto");
    source_bind(fd, addr, len);
    return fn(fd, buf, n, flags, addr, len);
}
