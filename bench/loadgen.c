/*
 * loadgen.c - closed-loop HTTP/1.1 load generator (single thread, epoll,
 * non-blocking sockets, keep-alive).
 *
 * Build:  gcc -O2 -Wall -o loadgen loadgen.c
 * Usage:  loadgen --host 127.0.0.1 --port P [--path /v1/chat/completions]
 *                 [--method POST] [--body-file F | --body STR]
 *                 [--header "Name: value"]... [--concurrency C]
 *                 [--duration-s D] [--warmup-s W] [--timeout-s T] [--json]
 *
 * Each of C connections sends one request, waits for the complete response
 * (Content-Length, chunked, or close-delimited body), records its latency
 * and its time to first body byte (TTFB), then sends the next request at
 * once. Requests completing during the warm-up are not recorded. A
 * connection that the server closes is reopened. Results cover the
 * measurement window [W, W + D]; requests still in flight at the end are
 * dropped.
 *
 * Definitions
 *   latency  time from the request's first send() to the last byte of the
 *            response body
 *   TTFB     time from the request's first send() to the first byte after
 *            the response header block (for a chunked body: the first byte
 *            of the first chunk-size line; for an empty body: completion)
 *   non_2xx  complete responses whose status is not 2xx
 *   errors   connect failures, resets / EOF before a complete response,
 *            malformed responses and per-request timeouts
 *
 * With --json the result is one JSON object on one line of stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define HDR_CAP (64 * 1024)
#define RBUF_CAP (256 * 1024)
#define MAX_HEADERS 64
#define RETRY_DELAY_S 0.010

enum state { ST_IDLE, ST_RETRY, ST_CONNECTING, ST_SENDING, ST_HDR, ST_BODY_CL, ST_BODY_CHUNKED, ST_BODY_EOF };
enum cstate { CS_SIZE, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_TRAILER };
enum errkind { E_CONNECT, E_READ, E_TIMEOUT, E_PARSE, E_KINDS };

typedef struct conn {
    int fd;
    enum state st;
    size_t sent;
    double t_start, t_first;
    int got_first;
    char *hbuf;
    size_t hlen;
    int status;
    int close_after;
    unsigned long long remaining;
    enum cstate cs;
    unsigned long long csize;
    int cdigits, cext;
    size_t tline;
    double retry_at;
    unsigned long requests_on_conn;
} conn_t;

typedef struct {
    double *v;
    size_t n, cap;
} vec_t;

/* options */
static const char *o_host = "127.0.0.1";
static int o_port = 0;
static const char *o_path = "/";
static const char *o_method = NULL;
static const char *o_body_file = NULL;
static const char *o_body_str = NULL;
static const char *o_headers[MAX_HEADERS];
static int o_nheaders = 0;
static int o_conc = 1;
static double o_duration = 10.0;
static double o_warmup = 0.0;
static double o_timeout = 30.0;
static int o_json = 0;

/* state */
static int g_epfd;
static struct sockaddr_in g_addr;
static char *g_req;
static size_t g_req_len;
static int g_is_head = 0;
static double g_t0, g_measure_start, g_end;
static vec_t g_lat, g_ttfb;
static unsigned long long g_status_counts[600];
static unsigned long long g_non2xx = 0, g_errors = 0, g_err_kind[E_KINDS];
static unsigned long long g_total_done = 0, g_total_non2xx = 0, g_total_errors = 0;
static unsigned long long g_reconnects = 0, g_connects = 0, g_bytes_read = 0;
static int g_retry_pending = 0;
static int g_printed_non2xx = 0;
static char g_rbuf[RBUF_CAP];
static volatile sig_atomic_t g_stop = 0;

static const char *k_err_names[E_KINDS] = {"connect", "read", "timeout", "parse"};

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static long ceil_pos(double x) { /* ceil for x >= 0, without libm */
    long i = (long)x;
    return ((double)i < x) ? i + 1 : i;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void vec_push(vec_t *v, double x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 65536;
        v->v = realloc(v->v, v->cap * sizeof(double));
        if (!v->v) die("out of memory");
    }
    v->v[v->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* nearest-rank percentile of a sorted vector */
static double pct(const vec_t *v, double p) {
    if (v->n == 0) return 0.0;
    size_t rank = (size_t)ceil_pos(p / 100.0 * (double)v->n);
    if (rank < 1) rank = 1;
    if (rank > v->n) rank = v->n;
    return v->v[rank - 1];
}

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* ------------------------------------------------------------------ */

static void start_connect(conn_t *c, double now);
static void send_request(conn_t *c, double now);

static void conn_drop(conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->st = ST_IDLE;
}

static void record_error(conn_t *c, enum errkind k, double now) {
    g_total_errors++;
    if (now >= g_measure_start && now <= g_end) {
        g_errors++;
        g_err_kind[k]++;
    }
    conn_drop(c);
    if (k == E_CONNECT) {
        c->st = ST_RETRY;
        c->retry_at = now + RETRY_DELAY_S;
        g_retry_pending++;
    } else {
        g_reconnects++;
        start_connect(c, now);
    }
}

static void print_first_non2xx(const conn_t *c) {
    if (g_printed_non2xx) return;
    g_printed_non2xx = 1;
    size_t n = c->hlen < 600 ? c->hlen : 600;
    fprintf(stderr, "loadgen: first non-2xx response (status %d):\n", c->status);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)c->hbuf[i];
        fputc((ch == '\n' || ch == '\t' || (ch >= 0x20 && ch < 0x7f)) ? ch : '.', stderr);
    }
    fputc('\n', stderr);
}

static void complete_response(conn_t *c, double now) {
    if (!c->got_first) c->t_first = now;
    g_total_done++;
    int st = c->status;
    int non2xx = !(st >= 200 && st < 300);
    if (non2xx) {
        g_total_non2xx++;
        print_first_non2xx(c);
    }
    if (now >= g_measure_start && now <= g_end) {
        vec_push(&g_lat, (now - c->t_start) * 1000.0);
        vec_push(&g_ttfb, (c->t_first - c->t_start) * 1000.0);
        if (st >= 100 && st < 600) g_status_counts[st]++;
        if (non2xx) g_non2xx++;
    }
    c->requests_on_conn++;
    if (c->close_after) {
        conn_drop(c);
        g_reconnects++;
        if (now < g_end) start_connect(c, now);
        return;
    }
    c->st = ST_IDLE;
    if (now < g_end) send_request(c, now);
}

static void reset_response(conn_t *c) {
    c->hlen = 0;
    c->status = 0;
    c->got_first = 0;
    c->close_after = 0;
    c->remaining = 0;
    c->cs = CS_SIZE;
    c->csize = 0;
    c->cdigits = 0;
    c->cext = 0;
    c->tline = 0;
}

/* Send the rest of the request. Returns -1 when the connection failed. */
static int continue_send(conn_t *c, double now) {
    while (c->sent < g_req_len) {
        ssize_t n = send(c->fd, g_req + c->sent, g_req_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0; /* wait for EPOLLOUT */
        record_error(c, E_READ, now);
        return -1;
    }
    c->st = ST_HDR;
    return 0;
}

static void send_request(conn_t *c, double now) {
    reset_response(c);
    c->sent = 0;
    c->t_start = now;
    c->st = ST_SENDING;
    continue_send(c, now);
}

static void start_connect(conn_t *c, double now) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->requests_on_conn = 0;
    c->t_start = now; /* for the connect timeout */
    g_connects++;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    int r = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    if (r == 0) {
        send_request(c, now);
    } else if (errno == EINPROGRESS) {
        c->st = ST_CONNECTING;
    } else {
        record_error(c, E_CONNECT, now);
    }
}

/* ------------------------------------------------------------------ */
/* response parsing                                                     */

/* Feed chunked body bytes. Returns 1 when the body is complete, 0 when more
 * is needed, -1 on a framing error. */
static int chunked_feed(conn_t *c, const char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        switch (c->cs) {
        case CS_SIZE: {
            char ch = p[i++];
            if (ch == '\n') {
                if (c->cdigits == 0) return -1;
                if (c->csize == 0) {
                    c->cs = CS_TRAILER;
                    c->tline = 0;
                } else {
                    c->remaining = c->csize;
                    c->cs = CS_DATA;
                }
            } else if (c->cext || ch == '\r' || ch == ' ' || ch == '\t') {
                /* extension, CR or whitespace: ignore */
            } else if (ch == ';') {
                c->cext = 1;
            } else {
                int v;
                if (ch >= '0' && ch <= '9') v = ch - '0';
                else if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
                else if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
                else return -1;
                if (++c->cdigits > 15) return -1;
                c->csize = c->csize * 16 + (unsigned long long)v;
            }
            break;
        }
        case CS_DATA: {
            size_t take = n - i;
            if (take > c->remaining) take = (size_t)c->remaining;
            i += take;
            c->remaining -= take;
            if (c->remaining == 0) c->cs = CS_DATA_CR;
            break;
        }
        case CS_DATA_CR: {
            char ch = p[i++];
            if (ch == '\r') {
                c->cs = CS_DATA_LF;
            } else if (ch == '\n') {
                c->cs = CS_SIZE;
                c->csize = 0;
                c->cdigits = 0;
                c->cext = 0;
            } else {
                return -1;
            }
            break;
        }
        case CS_DATA_LF:
            if (p[i++] != '\n') return -1;
            c->cs = CS_SIZE;
            c->csize = 0;
            c->cdigits = 0;
            c->cext = 0;
            break;
        case CS_TRAILER: {
            char ch = p[i++];
            if (ch == '\n') {
                if (c->tline == 0) return 1;
                c->tline = 0;
            } else if (ch != '\r') {
                c->tline++;
            }
            break;
        }
        }
    }
    return 0;
}

/* Feed body bytes. Returns 1 complete, 0 need more, -1 error. */
static int body_feed(conn_t *c, const char *p, size_t n, double now) {
    if (n == 0) return 0;
    if (!c->got_first) {
        c->got_first = 1;
        c->t_first = now;
    }
    switch (c->st) {
    case ST_BODY_CL:
        if (n >= c->remaining) {
            c->remaining = 0;
            return 1; /* anything beyond is unsolicited; ignored */
        }
        c->remaining -= n;
        return 0;
    case ST_BODY_CHUNKED:
        return chunked_feed(c, p, n);
    case ST_BODY_EOF:
        return 0;
    default:
        return -1;
    }
}

static int header_is(const char *name, size_t nlen, const char *lit) {
    size_t l = strlen(lit);
    return nlen == l && strncasecmp(name, lit, l) == 0;
}

static int value_has_token(const char *v, size_t vlen, const char *tok) {
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= vlen; i++)
        if (strncasecmp(v + i, tok, tl) == 0) return 1;
    return 0;
}

/*
 * Parse the header block in c->hbuf (complete, header_len bytes). Sets the
 * body state. Returns 0 on success, -1 on a malformed header, 1 when this was
 * an interim 1xx response to skip.
 */
static int parse_headers(conn_t *c, size_t header_len) {
    const char *b = c->hbuf;
    const char *end = b + header_len;
    if (header_len < 12 || memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ') return -1;
    int http10 = (b[7] == '0');
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (b[i] < '0' || b[i] > '9') return -1;
        st = st * 10 + (b[i] - '0');
    }
    c->status = st;
    if (st >= 100 && st < 200 && st != 101) return 1;

    int have_cl = 0, chunked = 0, conn_close = 0, conn_keep = 0;
    unsigned long long cl = 0;
    const char *h = memchr(b, '\n', header_len);
    if (!h) return -1;
    h++;
    while (h < end) {
        const char *eol = memchr(h, '\n', (size_t)(end - h));
        if (!eol) break;
        const char *le = eol;
        if (le > h && le[-1] == '\r') le--;
        if (le == h) break; /* blank line: end of headers */
        const char *colon = memchr(h, ':', (size_t)(le - h));
        if (colon) {
            size_t nlen = (size_t)(colon - h);
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t')) v++;
            size_t vl = (size_t)(le - v);
            if (header_is(h, nlen, "content-length")) {
                char tmp[32];
                char *ep;
                while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
                if (vl == 0 || vl >= sizeof tmp) return -1;
                memcpy(tmp, v, vl);
                tmp[vl] = '\0';
                cl = strtoull(tmp, &ep, 10);
                if (*ep != '\0' || tmp[0] == '-') return -1;
                have_cl = 1;
            } else if (header_is(h, nlen, "transfer-encoding")) {
                if (value_has_token(v, vl, "chunked")) chunked = 1;
            } else if (header_is(h, nlen, "connection")) {
                if (value_has_token(v, vl, "close")) conn_close = 1;
                if (value_has_token(v, vl, "keep-alive")) conn_keep = 1;
            }
        }
        h = eol + 1;
    }
    c->close_after = http10 ? !(conn_keep && !conn_close) : conn_close;
    if (g_is_head || st == 204 || st == 304 || (st >= 100 && st < 200)) {
        c->st = ST_BODY_CL;
        c->remaining = 0;
    } else if (chunked) {
        c->st = ST_BODY_CHUNKED;
        c->cs = CS_SIZE;
    } else if (have_cl) {
        c->st = ST_BODY_CL;
        c->remaining = cl;
    } else {
        c->st = ST_BODY_EOF;
        c->close_after = 1;
    }
    return 0;
}

/* Handle newly read bytes in state ST_HDR (already appended to hbuf). */
static void on_header_bytes(conn_t *c, size_t old_len, double now) {
    for (;;) {
        size_t from = old_len >= 3 ? old_len - 3 : 0;
        const char *e = memmem(c->hbuf + from, c->hlen - from, "\r\n\r\n", 4);
        if (!e) {
            if (c->hlen >= HDR_CAP) record_error(c, E_PARSE, now);
            return;
        }
        size_t header_len = (size_t)(e - c->hbuf) + 4;
        int r = parse_headers(c, header_len);
        if (r < 0) {
            record_error(c, E_PARSE, now);
            return;
        }
        if (r == 1) { /* interim response: drop it, keep looking */
            memmove(c->hbuf, c->hbuf + header_len, c->hlen - header_len);
            c->hlen -= header_len;
            old_len = 0;
            continue;
        }
        if (c->st == ST_BODY_CL && c->remaining == 0) {
            complete_response(c, now);
            return;
        }
        int done = body_feed(c, c->hbuf + header_len, c->hlen - header_len, now);
        if (done < 0) {
            record_error(c, E_PARSE, now);
        } else if (done == 1) {
            complete_response(c, now);
        }
        return;
    }
}

static void on_event(conn_t *c, uint32_t ev, double now) {
    if (c->st == ST_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (ev & EPOLLERR)) {
            record_error(c, E_CONNECT, now);
            return;
        }
        send_request(c, now);
        return;
    }
    if (c->st == ST_SENDING && (ev & EPOLLOUT)) {
        /* continue a partial send; the request's start time is kept */
        if (continue_send(c, now) < 0) return;
    }
    if (!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    int must_drain = (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;

    /* Edge-triggered: read until EAGAIN, or until a short read when no hangup
     * is pending (more data arriving later raises a fresh edge). */
    for (;;) {
        if (c->fd < 0) return;
        if (c->st == ST_IDLE || c->st == ST_SENDING || c->st == ST_CONNECTING || c->st == ST_RETRY) {
            /* Data or EOF while no response is expected. */
            ssize_t n = recv(c->fd, g_rbuf, sizeof g_rbuf, 0);
            if (n > 0) {
                g_bytes_read += (size_t)n;
                if (c->st == ST_SENDING) {
                    /* early response before the request was fully sent */
                    record_error(c, E_READ, now);
                    return;
                }
                continue; /* unsolicited bytes: drop */
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            /* server closed an idle keep-alive connection, or an error */
            if (c->st == ST_SENDING) {
                record_error(c, E_READ, now);
            } else {
                conn_drop(c);
                g_reconnects++;
                if (now < g_end) start_connect(c, now);
            }
            return;
        }
        char *dst;
        size_t want;
        if (c->st == ST_HDR) {
            dst = c->hbuf + c->hlen;
            want = HDR_CAP - c->hlen;
            if (want == 0) {
                record_error(c, E_PARSE, now);
                return;
            }
        } else {
            dst = g_rbuf;
            want = sizeof g_rbuf;
        }
        ssize_t n = recv(c->fd, dst, want, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            record_error(c, E_READ, now);
            return;
        }
        if (n == 0) {
            if (c->st == ST_BODY_EOF) {
                if (!c->got_first) c->t_first = now;
                c->close_after = 1;
                complete_response(c, now);
            } else {
                record_error(c, E_READ, now);
            }
            return;
        }
        g_bytes_read += (size_t)n;
        if (c->st == ST_HDR) {
            size_t old = c->hlen;
            c->hlen += (size_t)n;
            on_header_bytes(c, old, now);
        } else {
            int r = body_feed(c, dst, (size_t)n, now);
            if (r < 0) {
                record_error(c, E_PARSE, now);
                return;
            }
            if (r == 1) complete_response(c, now);
        }
        if ((size_t)n < want && !must_drain) return;
    }
}

static void check_timers(conn_t *conns, double now) {
    for (int i = 0; i < o_conc; i++) {
        conn_t *c = &conns[i];
        if (c->st == ST_RETRY) {
            if (now >= c->retry_at) {
                g_retry_pending--;
                c->st = ST_IDLE;
                start_connect(c, now);
            }
        } else if (c->st != ST_IDLE && now - c->t_start > o_timeout) {
            record_error(c, c->st == ST_CONNECTING ? E_CONNECT : E_TIMEOUT, now);
        } else if (c->st == ST_IDLE && c->fd < 0 && now < g_end) {
            start_connect(c, now);
        }
    }
}

/* ------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) die("out of memory");
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) die("out of memory");
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

static void build_request(void) {
    size_t body_len = 0;
    char *body = NULL;
    if (o_body_file) {
        body = read_file(o_body_file, &body_len);
    } else if (o_body_str) {
        body_len = strlen(o_body_str);
        body = malloc(body_len + 1);
        if (!body) die("out of memory");
        memcpy(body, o_body_str, body_len);
    }
    int has_body = (body != NULL);
    if (!o_method) o_method = has_body ? "POST" : "GET";
    g_is_head = strcmp(o_method, "HEAD") == 0;

    int user_ct = 0, user_host = 0;
    size_t hdr_total = 0;
    for (int i = 0; i < o_nheaders; i++) {
        hdr_total += strlen(o_headers[i]) + 2;
        if (strncasecmp(o_headers[i], "content-type:", 13) == 0) user_ct = 1;
        if (strncasecmp(o_headers[i], "host:", 5) == 0) user_host = 1;
    }
    size_t cap = 1024 + strlen(o_path) + strlen(o_host) + hdr_total + body_len;
    g_req = malloc(cap);
    if (!g_req) die("out of memory");
    size_t n = 0;
    n += (size_t)snprintf(g_req + n, cap - n, "%s %s HTTP/1.1\r\n", o_method, o_path);
    if (!user_host) n += (size_t)snprintf(g_req + n, cap - n, "Host: %s:%d\r\n", o_host, o_port);
    n += (size_t)snprintf(g_req + n, cap - n, "User-Agent: sluicegate-loadgen\r\nAccept: */*\r\n");
    if (has_body) {
        if (!user_ct) n += (size_t)snprintf(g_req + n, cap - n, "Content-Type: application/json\r\n");
        n += (size_t)snprintf(g_req + n, cap - n, "Content-Length: %zu\r\n", body_len);
    }
    for (int i = 0; i < o_nheaders; i++) n += (size_t)snprintf(g_req + n, cap - n, "%s\r\n", o_headers[i]);
    n += (size_t)snprintf(g_req + n, cap - n, "\r\n");
    if (has_body) {
        memcpy(g_req + n, body, body_len);
        n += body_len;
    }
    g_req_len = n;
    free(body);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --host H --port P [--path PATH] [--method M]\n"
            "               [--body-file F | --body STR] [--header 'Name: value']...\n"
            "               [--concurrency C] [--duration-s D] [--warmup-s W]\n"
            "               [--timeout-s T] [--json]\n");
    exit(2);
}

static double parse_double(const char *s, const char *opt) {
    char *end;
    double v = strtod(s, &end);
    if (*end || v < 0 || v != v) die("bad value for %s: %s", opt, s);
    return v;
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (OPT("--host")) o_host = v;
        else if (OPT("--port")) o_port = atoi(v);
        else if (OPT("--path")) o_path = v;
        else if (OPT("--method")) o_method = v;
        else if (OPT("--body-file")) o_body_file = v;
        else if (OPT("--body")) o_body_str = v;
        else if (OPT("--header")) {
            if (o_nheaders >= MAX_HEADERS) die("too many --header options");
            o_headers[o_nheaders++] = v;
        } else if (OPT("--concurrency")) o_conc = atoi(v);
        else if (OPT("--duration-s")) o_duration = parse_double(v, "--duration-s");
        else if (OPT("--warmup-s")) o_warmup = parse_double(v, "--warmup-s");
        else if (OPT("--timeout-s")) o_timeout = parse_double(v, "--timeout-s");
        else if (strcmp(a, "--json") == 0) o_json = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) usage();
        else {
            fprintf(stderr, "loadgen: unknown or incomplete option: %s\n", a);
            usage();
        }
#undef OPT
    }
    if (o_port < 1 || o_port > 65535) die("--port is required (1..65535)");
    if (o_conc < 1 || o_conc > 100000) die("--concurrency must be 1..100000");
    if (o_duration <= 0) die("--duration-s must be > 0");
    if (o_timeout <= 0) die("--timeout-s must be > 0");
}

static void resolve(void) {
    memset(&g_addr, 0, sizeof g_addr);
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((unsigned short)o_port);
    if (inet_pton(AF_INET, o_host, &g_addr.sin_addr) == 1) return;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(o_host, NULL, &hints, &res) != 0 || !res) die("cannot resolve %s", o_host);
    g_addr.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    resolve();
    build_request();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0) die("epoll_create1: %s", strerror(errno));

    conn_t *conns = calloc((size_t)o_conc, sizeof *conns);
    if (!conns) die("out of memory");
    for (int i = 0; i < o_conc; i++) {
        conns[i].fd = -1;
        conns[i].hbuf = malloc(HDR_CAP);
        if (!conns[i].hbuf) die("out of memory");
    }

    g_t0 = now_s();
    g_measure_start = g_t0 + o_warmup;
    g_end = g_measure_start + o_duration;
    for (int i = 0; i < o_conc; i++) start_connect(&conns[i], g_t0);

    int max_events = o_conc < 1024 ? o_conc : 1024;
    struct epoll_event *events = calloc((size_t)max_events, sizeof *events);
    if (!events) die("out of memory");
    double next_timer = g_t0 + 0.1;
    double now = g_t0;
    while (!g_stop) {
        now = now_s();
        if (now >= g_end) break;
        double wait_until = g_end < next_timer ? g_end : next_timer;
        if (g_retry_pending > 0 && now + RETRY_DELAY_S < wait_until) wait_until = now + RETRY_DELAY_S;
        double wait_ms = (wait_until - now) * 1000.0;
        int timeout_ms = wait_ms > 0 ? (int)ceil_pos(wait_ms) : 0;
        int n = epoll_wait(g_epfd, events, max_events, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            now = now_s();
            on_event((conn_t *)events[i].data.ptr, events[i].events, now);
        }
        now = now_s();
        if (now >= next_timer || g_retry_pending > 0) {
            check_timers(conns, now);
            if (now >= next_timer) next_timer = now + 0.1;
        }
    }
    double t_stop = now_s();
    int in_flight = 0;
    for (int i = 0; i < o_conc; i++) {
        if (conns[i].st != ST_IDLE && conns[i].st != ST_RETRY) in_flight++;
        if (conns[i].fd >= 0) close(conns[i].fd);
    }

    /* If interrupted, the window is shorter than requested. */
    double window = (t_stop < g_end ? t_stop : g_end) - g_measure_start;
    if (window <= 0) window = 1e-9;
    if (g_lat.n) qsort(g_lat.v, g_lat.n, sizeof(double), cmp_double);
    if (g_ttfb.n) qsort(g_ttfb.v, g_ttfb.n, sizeof(double), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < g_lat.n; i++) sum += g_lat.v[i];
    double mean = g_lat.n ? sum / (double)g_lat.n : 0.0;
    double rps = (double)g_lat.n / window;
    double lmax = g_lat.n ? g_lat.v[g_lat.n - 1] : 0.0;

    if (o_json) {
        printf("{\"requests\":%zu,\"duration_s\":%.6f,\"rps\":%.3f,"
               "\"lat_mean_ms\":%.4f,\"lat_p50_ms\":%.4f,\"lat_p90_ms\":%.4f,\"lat_p99_ms\":%.4f,"
               "\"lat_max_ms\":%.4f,\"ttfb_p50_ms\":%.4f,\"ttfb_p90_ms\":%.4f,\"ttfb_p99_ms\":%.4f,"
               "\"non_2xx\":%llu,\"errors\":%llu,\"error_kinds\":{",
               g_lat.n, window, rps, mean, pct(&g_lat, 50), pct(&g_lat, 90), pct(&g_lat, 99), lmax,
               pct(&g_ttfb, 50), pct(&g_ttfb, 90), pct(&g_ttfb, 99), g_non2xx, g_errors);
        for (int k = 0; k < E_KINDS; k++) printf("%s\"%s\":%llu", k ? "," : "", k_err_names[k], g_err_kind[k]);
        printf("},\"status_counts\":{");
        int first = 1;
        for (int s = 100; s < 600; s++) {
            if (!g_status_counts[s]) continue;
            printf("%s\"%d\":%llu", first ? "" : ",", s, g_status_counts[s]);
            first = 0;
        }
        printf("},\"requests_total\":%llu,\"non_2xx_total\":%llu,\"errors_total\":%llu,"
               "\"connects\":%llu,\"reconnects\":%llu,\"bytes_read\":%llu,\"in_flight_at_end\":%d,"
               "\"concurrency\":%d,\"warmup_s\":%.3f,\"interrupted\":%s}\n",
               g_total_done, g_total_non2xx, g_total_errors, g_connects, g_reconnects, g_bytes_read, in_flight,
               o_conc, o_warmup, g_stop ? "true" : "false");
    } else {
        printf("%s http://%s:%d%s  concurrency=%d  window=%.2fs (warm-up %.2fs)\n", o_method, o_host, o_port,
               o_path, o_conc, window, o_warmup);
        printf("  requests   %zu  (%.1f req/s)\n", g_lat.n, rps);
        printf("  latency ms mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", mean, pct(&g_lat, 50),
               pct(&g_lat, 90), pct(&g_lat, 99), lmax);
        printf("  ttfb ms    p50 %.3f  p90 %.3f  p99 %.3f\n", pct(&g_ttfb, 50), pct(&g_ttfb, 90),
               pct(&g_ttfb, 99));
        printf("  non-2xx    %llu   errors %llu (connect %llu, read %llu, timeout %llu, parse %llu)\n", g_non2xx,
               g_errors, g_err_kind[E_CONNECT], g_err_kind[E_READ], g_err_kind[E_TIMEOUT], g_err_kind[E_PARSE]);
        printf("  status    ");
        for (int s = 100; s < 600; s++)
            if (g_status_counts[s]) printf(" %d:%llu", s, g_status_counts[s]);
        printf("\n  connects %llu  reconnects %llu  bytes read %llu  total completed (incl. warm-up) %llu\n",
               g_connects, g_reconnects, g_bytes_read, g_total_done);
    }
    fflush(stdout);
    for (int i = 0; i < o_conc; i++) free(conns[i].hbuf);
    free(conns);
    free(events);
    free(g_lat.v);
    free(g_ttfb.v);
    free(g_req);
    close(g_epfd);
    return 0;
}
