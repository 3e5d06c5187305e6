/* C ABI of the Rust core (src/ffi.rs, src/perl.rs). Layouts must match. */
#ifndef EVETCD_H
#define EVETCD_H

#include <stddef.h>
#include <stdint.h>

typedef struct evetcd_client evetcd_client;

typedef struct {
    const char *const *endpoints;
    const size_t *endpoint_lens;
    size_t n_endpoints;
    double timeout;
    int64_t max_retries;
    double health_interval;
    const char *token;
    size_t token_len;
    int on_request; /* an on_request hook is set: report each unary call */
    uint64_t max_recv_size; /* bytes of one unary reply; 0 for no limit */
    uint64_t max_send_size; /* bytes of one unary request; 0 for no limit */
    const char *username;   /* with password: log in before the first call */
    size_t username_len;
    const char *password;
    size_t password_len;
    int32_t tls;                 /* -1 not given, 0 off, 1 on */
    const char *tls_ca_file;     /* the TLS strings: NULL when not given */
    size_t tls_ca_file_len;
    const char *tls_cert_file;
    size_t tls_cert_file_len;
    const char *tls_key_file;
    size_t tls_key_file_len;
    const char *tls_server_name;
    size_t tls_server_name_len;
    double keepalive_time;    /* seconds between HTTP/2 pings; 0: none */
    double keepalive_timeout; /* seconds to wait for a ping's answer */
    double auto_sync_interval; /* seconds between member_list syncs; 0: none */
    double watch_probe_interval; /* seconds of watch-stream silence before a probe; 0: none */
    uint32_t retry;            /* repeats of a failed call that cannot harm */
} evetcd_config;

/* Functions the Rust side calls to build Perl data (ctx is the interpreter).
 * A hash key is given as its index among the names evetcd_reply_key lists. */
typedef struct {
    void *ctx;
    void *(*hv_new)(void *ctx);
    void *(*av_new)(void *ctx, size_t cap);
    void (*hv_bytes)(void *ctx, void *hv, uint32_t key, const char *v, size_t vlen);
    void (*hv_int)(void *ctx, void *hv, uint32_t key, int64_t v);
    void (*hv_uint)(void *ctx, void *hv, uint32_t key, uint64_t v);
    void (*hv_ref)(void *ctx, void *hv, uint32_t key, void *child);
    void (*av_bytes)(void *ctx, void *av, const char *v, size_t vlen);
    void (*av_int)(void *ctx, void *av, int64_t v);
    void (*av_ref)(void *ctx, void *av, void *child);
    void (*hv_num)(void *ctx, void *hv, uint32_t key, double v);
} evetcd_builder;

/* The size of both structs, then each field's offset and size in order: the
 * XS side compares them with the Rust side's at load time (which: 0 config,
 * 1 builder). Keep these lists in step with the structs. */
#define EVETCD_FIELD(T, f) offsetof(T, f), sizeof(((T *)0)->f)
#define EVETCD_CONFIG_LAYOUT(T)                                                    \
    sizeof(T), EVETCD_FIELD(T, endpoints), EVETCD_FIELD(T, endpoint_lens),         \
        EVETCD_FIELD(T, n_endpoints), EVETCD_FIELD(T, timeout),                    \
        EVETCD_FIELD(T, max_retries), EVETCD_FIELD(T, health_interval),            \
        EVETCD_FIELD(T, token), EVETCD_FIELD(T, token_len), EVETCD_FIELD(T, on_request), \
        EVETCD_FIELD(T, max_recv_size), EVETCD_FIELD(T, max_send_size),           \
        EVETCD_FIELD(T, username), EVETCD_FIELD(T, username_len),                  \
        EVETCD_FIELD(T, password), EVETCD_FIELD(T, password_len),                  \
        EVETCD_FIELD(T, tls), EVETCD_FIELD(T, tls_ca_file),                        \
        EVETCD_FIELD(T, tls_ca_file_len), EVETCD_FIELD(T, tls_cert_file),          \
        EVETCD_FIELD(T, tls_cert_file_len), EVETCD_FIELD(T, tls_key_file),         \
        EVETCD_FIELD(T, tls_key_file_len), EVETCD_FIELD(T, tls_server_name),       \
        EVETCD_FIELD(T, tls_server_name_len), EVETCD_FIELD(T, keepalive_time),     \
        EVETCD_FIELD(T, keepalive_timeout), EVETCD_FIELD(T, auto_sync_interval), \
        EVETCD_FIELD(T, watch_probe_interval), EVETCD_FIELD(T, retry)
#define EVETCD_BUILDER_LAYOUT(T)                                                   \
    sizeof(T), EVETCD_FIELD(T, ctx), EVETCD_FIELD(T, hv_new), EVETCD_FIELD(T, av_new), \
        EVETCD_FIELD(T, hv_bytes), EVETCD_FIELD(T, hv_int), EVETCD_FIELD(T, hv_uint),  \
        EVETCD_FIELD(T, hv_ref), EVETCD_FIELD(T, av_bytes), EVETCD_FIELD(T, av_int),   \
        EVETCD_FIELD(T, av_ref), EVETCD_FIELD(T, hv_num)
size_t evetcd_layout(int which, size_t *out, size_t cap);
/* Name of reply key i (its length in *len), or NULL past the last. */
const char *evetcd_reply_key(size_t i, size_t *len);

enum { EVETCD_KEEP = 0, EVETCD_LAST = 1 };
enum { EVETCD_WATCH = 1, EVETCD_KEEPALIVE = 2, EVETCD_OBSERVE = 3, EVETCD_SNAPSHOT = 4 };

evetcd_client *evetcd_new(const evetcd_config *cfg, char *err, size_t err_cap);
void evetcd_free(evetcd_client *c);
int evetcd_set_endpoints(const evetcd_client *c, const char *const *endpoints,
                         const size_t *endpoint_lens, size_t n, char *err, size_t err_cap);
void *evetcd_endpoints(const evetcd_client *c, const evetcd_builder *b);
int evetcd_fd(const evetcd_client *c);
/* Unary calls and watches run on the caller's thread when this is not -1:
 * watch it, and drive after each call made outside a drain, whenever it is
 * readable, and on a timer while the drive says calls are unanswered or
 * *next_deadline is not -1 (drive again no later than that many seconds
 * on: a call's deadline, or the open watches' timers). timers: the drive
 * is the timer's. */
int evetcd_local_fd(const evetcd_client *c);
int64_t evetcd_drive(const evetcd_client *c, int timers, double *next_deadline);
/* What the functions that start a call or a stream return. */
enum { EVETCD_STARTED = 0, EVETCD_REJECTED = -1, EVETCD_PANICKED = -2, EVETCD_BAD_ENDPOINT = -3 };
/* After EVETCD_PANICKED: what the panic said, where, and in which function. */
void evetcd_last_panic(char *buf, size_t cap);
/* Test hook: the next call or stream started panics inside the library. */
void evetcd_panic_for_testing(void);

/* timeout: seconds; negative for the client's timeout, 0 for none. */
int evetcd_call(const evetcd_client *c, uint64_t id, const char *method, size_t method_len,
                const char *body, size_t body_len, double timeout);
/* As evetcd_call, on the member `endpoint` names; EVETCD_BAD_ENDPOINT
 * (and a message in err) when that endpoint cannot be used. */
int evetcd_call_at(const evetcd_client *c, uint64_t id, const char *method, size_t method_len,
                   const char *body, size_t body_len, double timeout, const char *endpoint,
                   size_t endpoint_len, char *err, size_t err_cap);
/* resync: on compaction read the current state and carry on (on_compacted) */
int evetcd_watch(const evetcd_client *c, uint64_t id, const char *body, size_t body_len,
                 int auto_reconnect, int resync);
int evetcd_keepalive(const evetcd_client *c, uint64_t id, int64_t lease, int auto_reconnect);
int evetcd_observe(const evetcd_client *c, uint64_t id, const char *name, size_t name_len,
                   int auto_reconnect);
/* Streams the backend snapshot: pieces as messages, then its size. */
int evetcd_snapshot(const evetcd_client *c, uint64_t id);
int evetcd_cancel(const evetcd_client *c, int kind, uint64_t id, uint64_t cancel_id);
/* Asks for a progress notification for watch `id`, delivered to its callback. */
int evetcd_watch_progress(const evetcd_client *c, uint64_t id);
/* Test hook: the task behind every stream of `kind` panics. */
int evetcd_crash_streams_for_testing(const evetcd_client *c, int kind);
/* Test hook: calls and streams are answered with their decoded request, never sent. */
void evetcd_echo_requests_for_testing(const evetcd_client *c);
void evetcd_ack(const evetcd_client *c);
void evetcd_rewake(const evetcd_client *c);
/* 1 when completions wait to be delivered. */
int evetcd_has_completions(const evetcd_client *c);
int evetcd_next(const evetcd_client *c, const evetcd_builder *b, uint64_t *id, int *disposition,
                void **resp, void **err, void **info);

#endif
