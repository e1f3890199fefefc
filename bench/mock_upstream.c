/*
 * mock_upstream.c - a fast, single-threaded epoll HTTP/1.1 server that mimics
 * an OpenAI-compatible upstream for gateway benchmarks.
 *
 * Build:  gcc -O2 -Wall -o mock_upstream mock_upstream.c
 * Usage:  mock_upstream PORT [--chunks N] [--host ADDR]
 *
 * Prints "ready" on stdout (flushed) once it is listening; exits 0 on SIGTERM
 * or SIGINT.
 *
 * Routes
 *   POST /v1/chat/completions   chat.completion, or SSE chat.completion.chunk
 *                               events when the body has "stream":true
 *   POST /v1/completions        text_completion, streamed likewise
 *   GET  /v1/models             model list
 *   GET  /v1/models/<id>        one model
 *   GET  /healthz, /health      {"status":"ok"}
 *
 * Streaming replies use Transfer-Encoding: chunked; every SSE event is its own
 * HTTP chunk, handed to the kernel with its own send() call (TCP_NODELAY is
 * set), so a client sees events the way a real token-by-token upstream sends
 * them. There is no artificial delay between events.
 *
 * HTTP handling: keep-alive (HTTP/1.1 default, HTTP/1.0 with
 * "Connection: keep-alive"), pipelined requests, requests split across any
 * number of reads, Content-Length and chunked request bodies up to 1 MiB.
 * The JSON request body is not parsed; it is only scanned for
 * "stream": true, "include_usage": true and "model": "<name>".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_BODY_BYTES (1024 * 1024)
/* Chunked framing can add overhead to the body on the wire. */
#define MAX_REQUEST_BYTES (MAX_HEADER_BYTES + 2 * MAX_BODY_BYTES)
#define READ_MIN_SPACE (16 * 1024)
#define OUT_HIGH_WATER (4 * 1024 * 1024)
#define MAX_EVENTS 256

typedef struct conn {
    int fd;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_off, out_len, out_cap;
    int close_after; /* close once the output buffer drains */
    int epoll_out;   /* EPOLLOUT is registered */
    int epoll_in;    /* EPOLLIN is registered */
    int peer_eof;
} conn_t;

static volatile sig_atomic_t g_stop = 0;
static int g_epfd = -1;
static int g_chunks = 8;
static long g_created;
static unsigned long long g_req_id = 0;
static char *g_scratch; /* decoded chunked request bodies */
static int g_listen_marker;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mock_upstream: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) die("out of memory");
    return q;
}

/* ------------------------------------------------------------------ */
/* connection output                                                    */

static void conn_update_events(conn_t *c) {
    int want_out = c->out_len > c->out_off;
    int want_in = !c->peer_eof && !c->close_after && (c->out_len - c->out_off) < OUT_HIGH_WATER;
    if (want_out == c->epoll_out && want_in == c->epoll_in) return;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (want_in ? (EPOLLIN | EPOLLRDHUP) : 0) | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) {
        c->epoll_out = want_out;
        c->epoll_in = want_in;
    }
}

static void conn_append(conn_t *c, const char *data, size_t len) {
    if (c->out_off > 0 && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + len > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + len > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 4096;
            while (cap < c->out_len + len) cap *= 2;
            c->out = xrealloc(c->out, cap);
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* Returns -1 when the connection broke. */
static int conn_flush(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        return -1;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Write now (one send() call) when nothing is queued; queue otherwise. */
static int conn_write(conn_t *c, const char *data, size_t len) {
    if (c->out_len == c->out_off) {
        ssize_t n;
        do {
            n = send(c->fd, data, len, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
            n = 0;
        }
        if ((size_t)n == len) return 0;
        data += n;
        len -= (size_t)n;
    }
    conn_append(c, data, len);
    return 0;
}

static void conn_close(conn_t *c) {
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* ------------------------------------------------------------------ */
/* small string helpers                                                 */

static const char *mem_find(const char *hay, size_t hay_len, const char *needle) {
    size_t nl = strlen(needle);
    return memmem(hay, hay_len, needle, nl);
}

static int is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* Does the body contain "key" <ws> : <ws> true ? */
static int body_flag_true(const char *body, size_t len, const char *quoted_key) {
    size_t kl = strlen(quoted_key);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), quoted_key, kl);
        if (!hit) return 0;
        const char *q = hit + kl;
        while (q < end && is_ws(*q)) q++;
        if (q < end && *q == ':') {
            q++;
            while (q < end && is_ws(*q)) q++;
            if (end - q >= 4 && memcmp(q, "true", 4) == 0) return 1;
        }
        p = hit + 1;
    }
    return 0;
}

/* Copy the value of "model" into out if it is a plain, safe string. */
static void body_model(const char *body, size_t len, char *out, size_t out_sz) {
    static const char dflt[] = "mock-model";
    const char *p = body, *end = body + len;
    snprintf(out, out_sz, "%s", dflt);
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), "\"model\"", 7);
        if (!hit) return;
        const char *q = hit + 7;
        while (q < end && is_ws(*q)) q++;
        if (q < end && *q == ':') {
            q++;
            while (q < end && is_ws(*q)) q++;
            if (q < end && *q == '"') {
                q++;
                size_t n = 0;
                while (q + n < end && q[n] != '"' && n + 1 < out_sz) {
                    char ch = q[n];
                    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                             (ch >= '0' && ch <= '9') || strchr("._:/-@+", ch) != NULL;
                    if (!ok) return;
                    n++;
                }
                if (q + n < end && q[n] == '"' && n > 0) {
                    memcpy(out, q, n);
                    out[n] = '\0';
                }
                return;
            }
        }
        p = hit + 1;
    }
}

/* ------------------------------------------------------------------ */
/* responses                                                            */

static const char *status_text(int code) {
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    default: return "Unknown";
    }
}

static int send_json(conn_t *c, int code, const char *json, size_t json_len, int keepalive) {
    char buf[8192];
    int hl = snprintf(buf, sizeof buf,
                      "HTTP/1.1 %d %s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\n"
                      "Connection: %s\r\n"
                      "\r\n",
                      code, status_text(code), json_len, keepalive ? "keep-alive" : "close");
    if (hl > 0 && (size_t)hl + json_len <= sizeof buf) {
        memcpy(buf + hl, json, json_len);
        return conn_write(c, buf, (size_t)hl + json_len);
    }
    if (conn_write(c, buf, (size_t)hl) < 0) return -1;
    return conn_write(c, json, json_len);
}

static int send_error(conn_t *c, int code, const char *msg, int keepalive) {
    char json[512];
    int n = snprintf(json, sizeof json,
                     "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\","
                     "\"param\":null,\"code\":null}}",
                     msg);
    return send_json(c, code, json, (size_t)n, keepalive);
}

static const char *const k_tokens[] = {"Hello", "!", " How", " can", " I", " help", " you", " today", "?"};
#define N_TOKENS (sizeof k_tokens / sizeof k_tokens[0])

/* Frame one SSE event ("data: <payload>\n\n") and write it with one send(). */
static int send_event(conn_t *c, int chunked, const char *payload, size_t payload_len, int last) {
    char buf[4096];
    size_t ev_len = 6 + payload_len + 2; /* "data: " + payload + "\n\n" */
    size_t n = 0;
    if (ev_len + 32 > sizeof buf) return -1;
    if (chunked) n += (size_t)snprintf(buf, sizeof buf, "%zx\r\n", ev_len);
    memcpy(buf + n, "data: ", 6);
    n += 6;
    memcpy(buf + n, payload, payload_len);
    n += payload_len;
    memcpy(buf + n, "\n\n", 2);
    n += 2;
    if (chunked) {
        memcpy(buf + n, "\r\n", 2);
        n += 2;
        if (last) {
            memcpy(buf + n, "0\r\n\r\n", 5);
            n += 5;
        }
    }
    return conn_write(c, buf, n);
}

static int handle_completion(conn_t *c, int chat, const char *body, size_t body_len, int keepalive,
                             int http10) {
    char model[160];
    char id[64];
    char payload[2048];
    int stream = body_flag_true(body, body_len, "\"stream\"");
    int usage = body_flag_true(body, body_len, "\"include_usage\"");
    body_model(body, body_len, model, sizeof model);
    g_req_id++;
    snprintf(id, sizeof id, "%s-mock%010llx", chat ? "chatcmpl" : "cmpl", g_req_id);

    if (!stream) {
        int n;
        if (chat) {
            n = snprintf(payload, sizeof payload,
                         "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%ld,"
                         "\"model\":\"%s\",\"system_fingerprint\":\"fp_mock\","
                         "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                         "\"content\":\"Hello! How can I help you today?\",\"refusal\":null},"
                         "\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                         "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":9,\"total_tokens\":18}}",
                         id, g_created, model);
        } else {
            n = snprintf(payload, sizeof payload,
                         "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%ld,"
                         "\"model\":\"%s\",\"system_fingerprint\":\"fp_mock\","
                         "\"choices\":[{\"text\":\"Hello! How can I help you today?\",\"index\":0,"
                         "\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                         "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":9,\"total_tokens\":18}}",
                         id, g_created, model);
        }
        return send_json(c, 200, payload, (size_t)n, keepalive);
    }

    /* Streaming. HTTP/1.0 clients get an unframed body ended by close. */
    int chunked = !http10;
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 200 OK\r\n"
                      "Content-Type: text/event-stream; charset=utf-8\r\n"
                      "Cache-Control: no-cache\r\n"
                      "%s"
                      "Connection: %s\r\n"
                      "\r\n",
                      chunked ? "Transfer-Encoding: chunked\r\n" : "",
                      (keepalive && chunked) ? "keep-alive" : "close");
    if (conn_write(c, hdr, (size_t)hl) < 0) return -1;
    if (!chunked) c->close_after = 1;

    const char *usage_null = usage ? ",\"usage\":null" : "";
    int completion_tokens = 0;
    for (int i = 0; i < g_chunks; i++) {
        int final = (i == g_chunks - 1);
        int n;
        const char *tok = final ? NULL : k_tokens[i % N_TOKENS];
        if (tok) completion_tokens++;
        if (chat) {
            char delta[128];
            if (i == 0 && final)
                snprintf(delta, sizeof delta, "{\"role\":\"assistant\",\"content\":\"\"}");
            else if (i == 0)
                snprintf(delta, sizeof delta, "{\"role\":\"assistant\",\"content\":\"%s\"}", tok);
            else if (final)
                snprintf(delta, sizeof delta, "{}");
            else
                snprintf(delta, sizeof delta, "{\"content\":\"%s\"}", tok);
            n = snprintf(payload, sizeof payload,
                         "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
                         "\"model\":\"%s\",\"system_fingerprint\":\"fp_mock\","
                         "\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,"
                         "\"finish_reason\":%s}]%s}",
                         id, g_created, model, delta, final ? "\"stop\"" : "null", usage_null);
        } else {
            n = snprintf(payload, sizeof payload,
                         "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%ld,"
                         "\"model\":\"%s\",\"system_fingerprint\":\"fp_mock\","
                         "\"choices\":[{\"text\":\"%s\",\"index\":0,\"logprobs\":null,"
                         "\"finish_reason\":%s}]%s}",
                         id, g_created, model, tok ? tok : "", final ? "\"stop\"" : "null", usage_null);
        }
        if (send_event(c, chunked, payload, (size_t)n, 0) < 0) return -1;
    }
    if (usage) {
        int n = snprintf(payload, sizeof payload,
                         "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,"
                         "\"model\":\"%s\",\"system_fingerprint\":\"fp_mock\",\"choices\":[],"
                         "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":%d,\"total_tokens\":%d}}",
                         id, chat ? "chat.completion.chunk" : "text_completion", g_created, model,
                         completion_tokens, 9 + completion_tokens);
        if (send_event(c, chunked, payload, (size_t)n, 0) < 0) return -1;
    }
    return send_event(c, chunked, "[DONE]", 6, 1);
}

static int handle_models(conn_t *c, const char *model_id, int keepalive) {
    char json[512];
    int n;
    if (model_id == NULL) {
        n = snprintf(json, sizeof json,
                     "{\"object\":\"list\",\"data\":[{\"id\":\"mock-model\",\"object\":\"model\","
                     "\"created\":%ld,\"owned_by\":\"sluicegate-mock\"}]}",
                     g_created);
    } else {
        n = snprintf(json, sizeof json,
                     "{\"id\":\"%s\",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"sluicegate-mock\"}",
                     model_id, g_created);
    }
    return send_json(c, 200, json, (size_t)n, keepalive);
}

static int route(conn_t *c, const char *method, size_t mlen, const char *path, size_t plen,
                 const char *body, size_t body_len, int keepalive, int http10) {
    /* Ignore any query string. */
    const char *qs = memchr(path, '?', plen);
    if (qs) plen = (size_t)(qs - path);
    int is_get = (mlen == 3 && memcmp(method, "GET", 3) == 0);
    int is_post = (mlen == 4 && memcmp(method, "POST", 4) == 0);

#define PATH_IS(lit) (plen == sizeof(lit) - 1 && memcmp(path, lit, sizeof(lit) - 1) == 0)
    if (PATH_IS("/v1/chat/completions") || PATH_IS("/v1/completions")) {
        if (!is_post) return send_error(c, 405, "method not allowed", keepalive);
        return handle_completion(c, PATH_IS("/v1/chat/completions"), body, body_len, keepalive, http10);
    }
    if (PATH_IS("/v1/models")) {
        if (!is_get) return send_error(c, 405, "method not allowed", keepalive);
        return handle_models(c, NULL, keepalive);
    }
    if (plen > 11 && memcmp(path, "/v1/models/", 11) == 0) {
        char id[160];
        size_t n = plen - 11;
        if (!is_get) return send_error(c, 405, "method not allowed", keepalive);
        if (n >= sizeof id) n = sizeof id - 1;
        for (size_t i = 0; i < n; i++) {
            char ch = path[11 + i];
            id[i] = (ch == '"' || ch == '\\' || (unsigned char)ch < 0x20) ? '_' : ch;
        }
        id[n] = '\0';
        return handle_models(c, id, keepalive);
    }
    if (PATH_IS("/healthz") || PATH_IS("/health")) {
        static const char ok[] = "{\"status\":\"ok\"}";
        return send_json(c, 200, ok, sizeof ok - 1, keepalive);
    }
#undef PATH_IS
    return send_error(c, 404, "not found", keepalive);
}

/* ------------------------------------------------------------------ */
/* request parsing                                                      */

/*
 * Decode a chunked body starting at p (len bytes available) into g_scratch.
 * Returns bytes consumed (>0) when complete, 0 when more input is needed,
 * -1 on malformed input, -2 when the body is too large.
 */
static long decode_chunked(const char *p, size_t len, size_t *out_len) {
    size_t pos = 0, out = 0;
    for (;;) {
        const char *eol = memchr(p + pos, '\n', len - pos);
        if (!eol) return (len - pos > 1024) ? -1 : 0;
        size_t line_end = (size_t)(eol - p);
        unsigned long long size = 0;
        int digits = 0;
        for (size_t i = pos; i < line_end; i++) {
            char ch = p[i];
            int v;
            if (ch >= '0' && ch <= '9') v = ch - '0';
            else if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
            else if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
            else break; /* extension, CR or whitespace */
            if (++digits > 15) return -1;
            size = size * 16 + (unsigned long long)v;
        }
        if (digits == 0) return -1;
        pos = line_end + 1;
        if (size == 0) {
            /* trailers: lines until an empty line */
            for (;;) {
                const char *e = memchr(p + pos, '\n', len - pos);
                if (!e) return 0;
                size_t ll = (size_t)(e - (p + pos));
                size_t start = pos;
                pos = (size_t)(e - p) + 1;
                if (ll == 0 || (ll == 1 && p[start] == '\r')) {
                    *out_len = out;
                    return (long)pos;
                }
            }
        }
        if (out + size > MAX_BODY_BYTES) return -2;
        if (len - pos < size + 1) return 0;
        memcpy(g_scratch + out, p + pos, size);
        out += size;
        pos += size;
        if (p[pos] == '\r') {
            if (len - pos < 2) return 0;
            if (p[pos + 1] != '\n') return -1;
            pos += 2;
        } else if (p[pos] == '\n') {
            pos += 1;
        } else {
            return -1;
        }
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

/* Parse and answer every complete request in c->in. */
static void process_requests(conn_t *c) {
    size_t off = 0;
    while (!c->close_after) {
        char *buf = c->in + off;
        size_t avail = c->in_len - off;
        /* Tolerate stray CRLFs between requests. */
        while (avail > 0 && (buf[0] == '\r' || buf[0] == '\n')) {
            buf++;
            avail--;
            off++;
        }
        if (avail == 0) break;
        const char *hend = mem_find(buf, avail, "\r\n\r\n");
        if (!hend) {
            if (avail > MAX_HEADER_BYTES) {
                send_error(c, 431, "request headers too large", 0);
                c->close_after = 1;
            }
            break;
        }
        size_t header_len = (size_t)(hend - buf) + 4;

        /* Request line: METHOD SP TARGET SP VERSION */
        const char *line_end = memchr(buf, '\r', header_len);
        const char *sp1 = memchr(buf, ' ', (size_t)(line_end - buf));
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
        if (!sp1 || !sp2 || sp1 == buf || sp2 == sp1 + 1) {
            send_error(c, 400, "bad request line", 0);
            c->close_after = 1;
            break;
        }
        const char *method = buf;
        size_t mlen = (size_t)(sp1 - buf);
        const char *path = sp1 + 1;
        size_t plen = (size_t)(sp2 - path);
        const char *ver = sp2 + 1;
        size_t vlen = (size_t)(line_end - ver);
        int http10 = (vlen == 8 && memcmp(ver, "HTTP/1.0", 8) == 0);

        /* Headers */
        unsigned long long content_length = 0;
        int have_cl = 0, chunked = 0, conn_close = 0, conn_keep = 0, bad = 0;
        const char *h = line_end + 2;
        while (h < hend + 2) {
            const char *eol = memchr(h, '\r', (size_t)(hend + 2 - h));
            if (!eol || eol == h) break;
            const char *colon = memchr(h, ':', (size_t)(eol - h));
            if (colon) {
                size_t nlen = (size_t)(colon - h);
                const char *v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t')) v++;
                size_t vl = (size_t)(eol - v);
                while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
                if (header_is(h, nlen, "content-length")) {
                    char tmp[32];
                    char *endp;
                    if (vl == 0 || vl >= sizeof tmp) {
                        bad = 1;
                    } else {
                        memcpy(tmp, v, vl);
                        tmp[vl] = '\0';
                        content_length = strtoull(tmp, &endp, 10);
                        if (*endp != '\0' || tmp[0] == '-') bad = 1;
                        have_cl = 1;
                    }
                } else if (header_is(h, nlen, "transfer-encoding")) {
                    if (value_has_token(v, vl, "chunked")) chunked = 1;
                } else if (header_is(h, nlen, "connection")) {
                    if (value_has_token(v, vl, "close")) conn_close = 1;
                    if (value_has_token(v, vl, "keep-alive")) conn_keep = 1;
                }
            }
            h = eol + 2;
        }
        int keepalive = http10 ? (conn_keep && !conn_close) : !conn_close;
        if (bad) {
            send_error(c, 400, "bad content-length", 0);
            c->close_after = 1;
            break;
        }

        const char *body;
        size_t body_len;
        size_t consumed;
        if (chunked) {
            size_t decoded = 0;
            long r = decode_chunked(buf + header_len, avail - header_len, &decoded);
            if (r == 0) break; /* need more input */
            if (r == -2) {
                send_error(c, 413, "request body too large", 0);
                c->close_after = 1;
                break;
            }
            if (r < 0) {
                send_error(c, 400, "bad chunked body", 0);
                c->close_after = 1;
                break;
            }
            body = g_scratch;
            body_len = decoded;
            consumed = header_len + (size_t)r;
        } else {
            if (!have_cl) content_length = 0;
            if (content_length > MAX_BODY_BYTES) {
                send_error(c, 413, "request body too large", 0);
                c->close_after = 1;
                break;
            }
            if (avail - header_len < content_length) break; /* need more input */
            body = buf + header_len;
            body_len = (size_t)content_length;
            consumed = header_len + body_len;
        }

        if (route(c, method, mlen, path, plen, body, body_len, keepalive, http10) < 0) {
            c->close_after = 1;
            c->out_off = c->out_len = 0; /* broken pipe: drop queued output */
            break;
        }
        off += consumed;
        if (!keepalive) c->close_after = 1;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

/* Returns 0 to keep the connection, -1 to close it. */
static int on_readable(conn_t *c) {
    if (c->in_cap - c->in_len < READ_MIN_SPACE) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 16384;
        if (cap > MAX_REQUEST_BYTES) cap = MAX_REQUEST_BYTES;
        if (cap > c->in_cap) {
            c->in = xrealloc(c->in, cap);
            c->in_cap = cap;
        }
    }
    if (c->in_len >= c->in_cap) {
        /* A request larger than we accept: answer and close. */
        send_error(c, 413, "request too large", 0);
        c->close_after = 1;
        return 0;
    }
    ssize_t n;
    do {
        n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -1;
    }
    if (n == 0) {
        c->peer_eof = 1;
        process_requests(c);
        c->close_after = 1;
        return 0;
    }
    c->in_len += (size_t)n;
    process_requests(c);
    return 0;
}

static void accept_all(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EMFILE || errno == ENFILE) {
                perror("mock_upstream: accept");
                return;
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = calloc(1, sizeof *c);
        if (!c) die("out of memory");
        c->fd = fd;
        c->epoll_in = 1;
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;
        if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

static void usage(void) {
    fprintf(stderr, "usage: mock_upstream PORT [--chunks N] [--host ADDR]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--chunks") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 100000) die("--chunks must be 1..100000");
            g_chunks = (int)v;
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
        } else if (port < 0 && argv[i][0] != '-') {
            char *end;
            port = strtol(argv[i], &end, 10);
            if (*end || port < 1 || port > 65535) die("bad port: %s", argv[i]);
        } else {
            usage();
        }
    }
    if (port < 0) usage();

    g_created = (long)time(NULL);
    g_scratch = malloc(MAX_BODY_BYTES + 1);
    if (!g_scratch) die("out of memory");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("bad host: %s", host);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind %s:%ld: %s", host, port, strerror(errno));
    if (listen(lfd, 4096) < 0) die("listen: %s", strerror(errno));

    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0) die("epoll_create1: %s", strerror(errno));
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = &g_listen_marker;
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));

    printf("ready\n");
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    while (!g_stop) {
        int n = epoll_wait(g_epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &g_listen_marker) {
                accept_all(lfd);
                continue;
            }
            conn_t *c = events[i].data.ptr;
            uint32_t e = events[i].events;
            int dead = 0;
            if (e & EPOLLERR) dead = 1;
            if (!dead && (e & EPOLLOUT)) {
                if (conn_flush(c) < 0) dead = 1;
            }
            if (!dead && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && !c->peer_eof) {
                if (on_readable(c) < 0) dead = 1;
            }
            if (!dead && (e & EPOLLHUP) && !(e & EPOLLIN)) dead = 1;
            if (!dead && c->out_len > c->out_off && conn_flush(c) < 0) dead = 1;
            if (!dead && c->close_after && c->out_len == c->out_off) {
                shutdown(c->fd, SHUT_WR);
                dead = 1;
            }
            if (dead) {
                conn_close(c);
                continue;
            }
            conn_update_events(c);
        }
    }
    close(lfd);
    close(g_epfd);
    return 0;
}
