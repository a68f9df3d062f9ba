/* paced-client: the smallest open-loop echo client, a yardstick for the machine's own wake-up floor.
 *
 *   paced-client PORT CONNS RATE SECONDS [SPIN_US]
 *
 * CONNS connections to 127.0.0.1:PORT (an echo server), 64-byte messages. RATE > 0: open loop, one
 * message every 1/RATE s in total, round-robin over the connections (each connection every
 * CONNS/RATE s, evenly spread: what `ringstorm load --rate RATE` does); the thread sleeps in
 * epoll_pwait2 until the next send is due (less SPIN_US, which it then spins on the clock). RATE 0:
 * closed loop, the next message when the answer is back.
 * Prints the p50/p99 of: send lag (intended -> actual send), response (actual send -> answer) and
 * request latency (intended -> answer), in microseconds, as `ringstorm load`'s report splits them.
 * If the response time of this client is as far above its closed loop as ringstorm's is, the gap is
 * the machine (an idle CPU waking, the server's and the client's), not ringstorm.
 *
 * Build: cc -O2 -o paced-client Benchmarks/paced-client.c   (Benchmarks/open-loop.sh does it)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, int64_t *v, size_t n) {
    if (n == 0) { printf(" %s_p50=- %s_p99=-", name, name); return; }
    qsort(v, n, sizeof *v, cmp);
    printf(" %s_p50=%lld %s_p99=%lld", name, (long long)(v[n / 2] / 1000), name, (long long)(v[n * 99 / 100] / 1000));
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: paced-client PORT CONNS RATE SECONDS [SPIN_US]\n"); return 2; }
    int port = atoi(argv[1]), conns = atoi(argv[2]);
    double rate = atof(argv[3]), secs = atof(argv[4]);
    int64_t spin = argc > 5 ? (int64_t)(atof(argv[5]) * 1000) : 0;
    if (conns < 1 || conns > 10000 || secs <= 0 || rate < 0) { fprintf(stderr, "bad arguments\n"); return 2; }
    int ep = epoll_create1(0);
    int *fd = calloc(conns, sizeof *fd);
    int64_t *sent = calloc(conns, sizeof *sent), *intended = calloc(conns, sizeof *intended);
    int *busy = calloc(conns, sizeof *busy);
    size_t cap = (size_t)(rate > 0 ? rate * secs : 2e6) + 16, n = 0, lags = 0;
    int64_t *lag = malloc(cap * sizeof *lag), *resp = malloc(cap * sizeof *resp), *lat = malloc(cap * sizeof *lat);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    for (int i = 0; i < conns; i++) {
        fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd[i], (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &e);
    }
    char msg[64], buf[4096];
    memset(msg, 'x', sizeof msg);
    int64_t start = now_ns() + 100000000, end = start + (int64_t)(secs * 1e9);
    int64_t step = rate > 0 ? (int64_t)(1e9 / rate) : 0, due = start;
    long k = 0;
    struct epoll_event ev[256];
    if (rate == 0) {  /* closed loop: every connection starts at once */
        for (int i = 0; i < conns; i++) { intended[i] = sent[i] = now_ns(); busy[i] = 1; write(fd[i], msg, sizeof msg); }
    }
    for (;;) {
        int64_t t = now_ns();
        if (t >= end) break;
        int64_t wait = rate > 0 ? due - t : end - t;
        if (rate > 0 && wait <= spin) {
            while ((t = now_ns()) < due) __builtin_ia32_pause();
            wait = 0;
        } else if (rate > 0) {
            wait -= spin;
        }
        if (wait > 0 || rate == 0) {
            struct timespec ts = {wait / 1000000000, wait % 1000000000};
            int m = epoll_pwait2(ep, ev, 256, &ts, NULL);
            int64_t got = now_ns();
            for (int j = 0; j < m; j++) {
                int i = ev[j].data.u32;
                ssize_t r = read(fd[i], buf, sizeof buf);
                if (r <= 0) { fprintf(stderr, "connection %d ended\n", i); return 1; }
                if (busy[i] && n < cap) { resp[n] = got - sent[i]; lat[n] = got - intended[i]; n++; }
                busy[i] = 0;
                if (rate == 0 && got < end) { intended[i] = sent[i] = now_ns(); busy[i] = 1; write(fd[i], msg, sizeof msg); }
            }
            continue;
        }
        /* due: send on the next connection in turn */
        int i = k++ % conns;
        int64_t s = now_ns();
        if (!busy[i]) {
            intended[i] = due; sent[i] = s; busy[i] = 1;
            if (lags < cap) lag[lags++] = s - due;
            write(fd[i], msg, sizeof msg);
        }
        due += step;
    }
    printf("paced-client conns=%d rate=%g answered=%zu", conns, rate, n);
    if (rate > 0) report("send_lag", lag, lags);
    report("response", resp, n);
    report("request", lat, n);
    printf("\n");
    return 0;
}
