/* XS glue of EV::Etcd: argument checks, protobuf encoding of requests,
 * the callback table, and the EV io watcher that drains completions. */
#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"
#include "EVAPI.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "evetcd.h"
#include "pb.h"
#include "pb_fields.h"

/* A unary method's id: a value of one of the services' method enums
 * (evetcd_kv_method, ...), as evetcd_call takes it. */
typedef uint32_t evetcd_method;

typedef struct etcd_s {
    evetcd_client *rs;
    ev_io io;
    HV *callbacks;      /* completion id (8 raw bytes) -> CODE ref */
    HV *streams;        /* id of each live stream -> its kind */
    AV *forgotten;      /* callbacks forgotten since the last drain */
    U64 next_id;
    IV pending;         /* callbacks that keep EV::run alive */
    int refd;           /* whether we currently hold a loop reference */
    unsigned fork_gen;  /* fork_generation when created */
    SV *self;           /* the blessed referent (not counted) */
    SV *health_cb;
    SV *request_cb;     /* on_request hook, or NULL */
    /* Unary calls run on this thread (see src/local.rs) when local.fd >= 0. */
    ev_io local;        /* readable: the local runtime has work */
    ev_prepare queued;  /* calls made inside a drain start before the loop sleeps */
    ev_idle ready;      /* what a drive outside a drain got: delivered as an event */
    ev_timer tick;      /* drives tokio's timers while calls or watches are open */
    int draining;       /* drains under way (a callback may run the loop again) */
} etcd_t;

typedef etcd_t *EV__Etcd;

/* Bumped in every child after fork(): a client from an older generation
 * belongs to a runtime thread that does not exist here. */
static volatile unsigned fork_generation;
/* In the child, also tell libev to rebuild its kernel state (a new epoll
 * instance) before the loop runs again: otherwise every watcher change the
 * child makes, ours included, edits the epoll set it shares with the
 * parent and silently unhooks the parent's clients. This EV does not do it
 * by itself. ev_loop_fork only sets a flag. */
static void on_fork_child(void)
{
    fork_generation++;
    ev_loop_fork(EV_DEFAULT_UC);
}

/* Whether the client may be used: not inherited across fork, not closed. */
static void check_fork(pTHX_ etcd_t *c)
{
    if (c->fork_gen != fork_generation)
        croak("EV::Etcd: this client was created before fork() and cannot be used after fork(); create a new client in the child");
    if (!c->rs)
        croak("EV::Etcd: this client was closed");
}

/* ---- identity of the objects we make ---- */

/* A client, and each stream handle, carries ext magic with one of these
 * vtables: a forged object or a copy made by code that does not know us
 * (Storable) has none, and a thread's copy gets it emptied by svt_dup, so
 * neither is ever taken for a live object or freed twice. */
static int our_magic_dup(pTHX_ MAGIC *mg, CLONE_PARAMS *param)
{
    PERL_UNUSED_ARG(param);
    mg->mg_ptr = NULL; /* the copy in the new thread owns nothing */
    return 0;
}

static MGVTBL client_vtbl = { NULL, NULL, NULL, NULL, NULL, NULL, our_magic_dup, NULL };
static MGVTBL handle_vtbl = { NULL, NULL, NULL, NULL, NULL, NULL, our_magic_dup, NULL };

/* What a live handle's magic points at: only its non-NULL-ness counts. */
static char live_handle;

static MAGIC *our_magic(SV *ref, const MGVTBL *vtbl)
{
    MAGIC *mg;
    SV *sv;
    if (!ref || !SvROK(ref))
        return NULL;
    sv = SvRV(ref);
    if (SvTYPE(sv) < SVt_PVMG)
        return NULL;
    for (mg = SvMAGIC(sv); mg; mg = mg->mg_moremagic)
        if (mg->mg_type == PERL_MAGIC_ext && mg->mg_virtual == vtbl)
            return mg;
    return NULL;
}

static void add_our_magic(pTHX_ SV *sv, const MGVTBL *vtbl, void *ptr)
{
    MAGIC *mg = sv_magicext(sv, NULL, PERL_MAGIC_ext, vtbl, (const char *)ptr, 0);
    mg->mg_flags |= MGf_DUP;
}

/* The client an object of ours stands for, or NULL (the typemap's check). */
static etcd_t *client_of(SV *ref)
{
    MAGIC *mg = our_magic(ref, &client_vtbl);
    return mg ? (etcd_t *)mg->mg_ptr : NULL;
}

/* ---- building Perl data for the Rust side ---- */

/* The reply keys, hashed once at load: the Rust side names a key by its
 * index, so no reply ever hashes one. The hash seed is process-wide, so
 * one table serves every interpreter. */
#define MAX_REPLY_KEYS 256
typedef struct { const char *name; I32 len; U32 hash; } reply_key;
static reply_key reply_keys[MAX_REPLY_KEYS];

static void load_reply_keys(pTHX)
{
    size_t i, len;
    const char *name;
    for (i = 0; (name = evetcd_reply_key(i, &len)); i++) {
        if (i == MAX_REPLY_KEYS)
            croak("EV::Etcd: the Rust side has more than %d reply keys", MAX_REPLY_KEYS);
        reply_keys[i].name = name;
        reply_keys[i].len = (I32)len;
        PERL_HASH(reply_keys[i].hash, name, len);
    }
}

static void store(pTHX_ HV *hv, uint32_t key, SV *val)
{
    const reply_key *k = &reply_keys[key];
    (void)hv_common(hv, NULL, k->name, k->len, 0, HV_FETCH_ISSTORE | HV_FETCH_JUST_SV, val,
                    k->hash);
}

/* Sized for a key-value record (six keys) so that it never splits. */
static void *b_hv_new(void *ctx)
{
    dTHXa(ctx);
    HV *hv = newHV();
    hv_ksplit(hv, 8);
    return hv;
}

static void *b_av_new(void *ctx, size_t cap)
{
    dTHXa(ctx);
    AV *av = newAV();
    if (cap) av_extend(av, (SSize_t)cap - 1);
    return av;
}

static void b_hv_bytes(void *ctx, void *hv, uint32_t key, const char *v, size_t vl)
{
    dTHXa(ctx);
    store(aTHX_ (HV *)hv, key, newSVpvn(v, vl));
}

static void b_hv_int(void *ctx, void *hv, uint32_t key, int64_t v)
{
    dTHXa(ctx);
    store(aTHX_ (HV *)hv, key, newSViv((IV)v));
}

static void b_hv_uint(void *ctx, void *hv, uint32_t key, uint64_t v)
{
    dTHXa(ctx);
    store(aTHX_ (HV *)hv, key, newSVuv((UV)v));
}

static void b_hv_ref(void *ctx, void *hv, uint32_t key, void *child)
{
    dTHXa(ctx);
    store(aTHX_ (HV *)hv, key, newRV_noinc((SV *)child));
}

static void b_av_bytes(void *ctx, void *av, const char *v, size_t vl)
{
    dTHXa(ctx);
    av_push((AV *)av, newSVpvn(v, vl));
}

static void b_av_int(void *ctx, void *av, int64_t v)
{
    dTHXa(ctx);
    av_push((AV *)av, newSViv((IV)v));
}

static void b_av_ref(void *ctx, void *av, void *child)
{
    dTHXa(ctx);
    av_push((AV *)av, newRV_noinc((SV *)child));
}

static void b_hv_num(void *ctx, void *hv, uint32_t key, double v)
{
    dTHXa(ctx);
    store(aTHX_ (HV *)hv, key, newSVnv((NV)v));
}

/* The builder the Rust side fills replies through; ctx is set per drain. */
static const evetcd_builder builder_template = {
    NULL, b_hv_new, b_av_new, b_hv_bytes, b_hv_int, b_hv_uint, b_hv_ref,
    b_av_bytes, b_av_int, b_av_ref, b_hv_num
};

/* ---- callbacks and the loop reference ---- */

static void update_loop_ref(etcd_t *c)
{
    if (c->fork_gen != fork_generation)
        return; /* an inherited client never holds the child's loop */
    if (c->pending > 0 && !c->refd) {
        ev_ref(EV_DEFAULT_UC);
        c->refd = 1;
    } else if (c->pending == 0 && c->refd) {
        ev_unref(EV_DEFAULT_UC);
        c->refd = 0;
    }
}

/* The message starts as the original module's does; the method follows. */
static SV *need_cb(pTHX_ SV *cb, const char *method)
{
    if (cb)
        SvGETMAGIC(cb);
    if (!cb || !SvROK(cb) || SvTYPE(SvRV(cb)) != SVt_PVCV)
        croak("callback must be a code reference (%s)", method);
    return cb;
}

/* need_cb inside an XSUB, naming it. */
#define NEED_CB(cb) need_cb(aTHX_ (cb), GvNAME(CvGV(cv)))

static U64 register_cb(pTHX_ etcd_t *c, SV *cb)
{
    U64 id = ++c->next_id;
    (void)hv_store(c->callbacks, (const char *)&id, sizeof id, newSVsv(cb), 0);
    c->pending++;
    update_loop_ref(c);
    return id;
}

/* Removes the entry of callback `id`; `cb` is a reference to it that the
 * caller owns and hands over: the callback is freed later, by
 * bury_forgotten. */
static void drop_entry(pTHX_ etcd_t *c, U64 id, SV *cb)
{
    av_push(c->forgotten, cb);
    (void)hv_delete(c->callbacks, (const char *)&id, sizeof id, G_DISCARD);
    if (HvUSEDKEYS(c->streams))
        (void)hv_delete(c->streams, (const char *)&id, sizeof id, G_DISCARD);
    c->pending--;
    update_loop_ref(c);
}

/* Forgets callback `id`, if it is still there. */
static void forget_cb(pTHX_ etcd_t *c, U64 id)
{
    SV **svp = hv_fetch(c->callbacks, (const char *)&id, sizeof id, 0);
    if (svp)
        drop_entry(aTHX_ c, id, SvREFCNT_inc_simple_NN(*svp));
}

/* Forgotten callbacks kept at most while completions are still queued. */
#define FORGOTTEN_MAX (1 << 20)

/* Frees forgotten callbacks, newest first. Freeing an anonymous sub
 * removes it from a list perl searches from the end, so freeing many in the
 * order they were made (as a program cancelling its watches does) would
 * cost time quadratic in their number. */
static void bury_forgotten(pTHX_ etcd_t *c)
{
    while (AvFILLp(c->forgotten) >= 0) {
        SV *sv = av_pop(c->forgotten);
        SvREFCNT_dec(sv);
    }
}

/* Calls cb(a, b), or cb(a) when b is NULL; a die goes to $EV::DIED, as for
 * EV's own watchers.
 * Callers provide the ENTER/SAVETMPS scope that frees a and b. */
static void invoke(pTHX_ SV *cb, SV *a, SV *b)
{
    dSP;
    PUSHMARK(SP);
    EXTEND(SP, 2);
    PUSHs(a);
    if (b) PUSHs(b); /* NULL: a one-argument call */
    PUTBACK;
    call_sv(cb, G_VOID | G_DISCARD | G_EVAL);
    if (SvTRUE(ERRSV)) {
        SPAGAIN;
        PUSHMARK(SP);
        PUTBACK;
        call_sv(get_sv("EV::DIED", GV_ADD), G_VOID | G_DISCARD | G_EVAL | G_KEEPERR);
    }
}

static SV *hv_to_arg(pTHX_ void *hv)
{
    return hv ? sv_2mortal(newRV_noinc((SV *)hv)) : &PL_sv_undef;
}

static void report_health(pTHX_ etcd_t *c, void *hv)
{
    HV *h = (HV *)hv;
    SV **healthy, **endpoint;
    if (!h) return;
    if (c->health_cb) {
        healthy = hv_fetchs(h, "healthy", 0);
        endpoint = hv_fetchs(h, "endpoint", 0);
        ENTER;
        SAVETMPS;
        sv_2mortal((SV *)h);
        /* mortal copy: a close inside the callback frees c->health_cb */
        invoke(aTHX_ sv_2mortal(SvREFCNT_inc_simple_NN(c->health_cb)),
               healthy ? *healthy : &PL_sv_undef, endpoint ? *endpoint : &PL_sv_undef);
        FREETMPS;
        LEAVE;
    } else {
        SvREFCNT_dec((SV *)h);
    }
}

/* ---- the local runtime ---- */

/* The tick's first and longest period, in seconds: short, because the
 * deadlines and retries of calls in flight depend on it; doubled while
 * nothing happens, so a call that waits long (a lock) costs little. */
#define TICK_MIN 0.001
#define TICK_MAX 0.05

/* Starts or stops one of our watchers without it holding the loop. */
#define WATCHER_ON(type, w) \
    do { if (!ev_is_active(w)) { ev_##type##_start(EV_DEFAULT_UC, w); ev_unref(EV_DEFAULT_UC); } } while (0)
#define WATCHER_OFF(type, w) \
    do { if (ev_is_active(w)) { ev_ref(EV_DEFAULT_UC); ev_##type##_stop(EV_DEFAULT_UC, w); } } while (0)

static void stop_local(etcd_t *c)
{
    WATCHER_OFF(io, &c->local);
    WATCHER_OFF(prepare, &c->queued);
    WATCHER_OFF(idle, &c->ready);
    WATCHER_OFF(timer, &c->tick);
}

static void deliver(pTHX_ etcd_t *c, int ack);

/* Runs the local runtime until it would wait, and sets the tick for what
 * it left open; `woke` is whether I/O or a new call (not the tick)
 * brought us here. */
static void drive_once(etcd_t *c, int woke)
{
    int ticking = ev_is_active(&c->tick);
    double next = -1;
    int64_t unanswered = evetcd_drive(c->rs, !woke, &next);
    if (unanswered > 0) {
        if (woke || !ticking)
            c->tick.repeat = TICK_MIN;
        else if (c->tick.repeat < TICK_MAX)
            c->tick.repeat *= 2;
        /* Just after a deadline: tokio's timers round up to a millisecond. */
        if (next >= 0 && next + 0.001 < c->tick.repeat)
            c->tick.repeat = next + 0.001;
    } else if (unanswered == 0 && next >= 0) {
        c->tick.repeat = next + 0.001; /* only open watches: seconds-long timers */
    } else {
        WATCHER_OFF(timer, &c->tick);
        return;
    }
    ev_timer_again(EV_DEFAULT_UC, &c->tick);
    if (!ticking)
        ev_unref(EV_DEFAULT_UC); /* the calls and watches hold the loop, not the tick */
}

/* Rounds of drive-and-deliver in one go, when each delivery makes calls
 * that complete at once (the test hook that answers without a server):
 * then the loop gets its turn, and the tick comes back at once. */
#define DRIVE_ROUNDS 64

/* Drives the local runtime and delivers its completions at once, or with
 * `later` (inside the call that made one, or in the prepare phase) leaves
 * them to the `ready` watcher. */
static void drive_local(pTHX_ etcd_t *c, int woke, int later)
{
    SV *self = c->self;
    int rounds = DRIVE_ROUNDS;
    if (later) {
        drive_once(c, woke);
        /* A fast server has often answered already: delivered by the loop
         * (never inside the call) as an event of its own, so EV::run's
         * RUN_ONCE returns after it. */
        if (evetcd_has_completions(c->rs))
            WATCHER_ON(idle, &c->ready);
        return;
    }
    /* The callbacks may drop the last reference to the client. */
    SvREFCNT_inc_simple_void_NN(self);
    for (;;) {
        drive_once(c, woke);
        deliver(aTHX_ c, 0);
        /* Calls the callbacks made wait for the prepare watcher, which
         * would run only after the loop slept: start them now. */
        if (!c->rs || !ev_is_active(&c->queued))
            break;
        WATCHER_OFF(prepare, &c->queued);
        if (--rounds == 0) {
            WATCHER_OFF(timer, &c->tick);
            ev_timer_set(&c->tick, 0., TICK_MIN);
            ev_timer_start(EV_DEFAULT_UC, &c->tick);
            ev_unref(EV_DEFAULT_UC);
            break;
        }
    }
    SvREFCNT_dec(self); /* may run DESTROY: c is not touched after this */
}

/* Whether the local runtime may be driven here: not in a child of fork,
 * where it is the parent's (and our watchers are stopped). */
static int drivable(etcd_t *c)
{
    if (c->fork_gen == fork_generation)
        return 1;
    stop_local(c);
    return 0;
}

static void local_ready(EV_P_ ev_io *w, int revents)
{
    etcd_t *c = (etcd_t *)((char *)w - offsetof(etcd_t, local));
    dTHX;
    PERL_UNUSED_ARG(revents);
    if (drivable(c))
        drive_local(aTHX_ c, 1, 0);
}

/* Starts the calls made inside a drain before the loop sleeps; their
 * callbacks come later, as events (a prepare watcher's work does not count
 * as one for EV::RUN_ONCE). */
static void local_queued(EV_P_ ev_prepare *w, int revents)
{
    etcd_t *c = (etcd_t *)((char *)w - offsetof(etcd_t, queued));
    dTHX;
    PERL_UNUSED_ARG(revents);
    WATCHER_OFF(prepare, w);
    if (drivable(c))
        drive_local(aTHX_ c, 1, 1);
}

static void local_delivery(EV_P_ ev_idle *w, int revents)
{
    etcd_t *c = (etcd_t *)((char *)w - offsetof(etcd_t, ready));
    dTHX;
    PERL_UNUSED_ARG(revents);
    WATCHER_OFF(idle, w);
    if (drivable(c))
        deliver(aTHX_ c, 0);
}

static void local_tick(EV_P_ ev_timer *w, int revents)
{
    etcd_t *c = (etcd_t *)((char *)w - offsetof(etcd_t, tick));
    dTHX;
    PERL_UNUSED_ARG(revents);
    if (drivable(c))
        drive_local(aTHX_ c, 0, 0);
}

/* A unary call was handed over: inside a drain its start waits for the
 * drain's other callbacks (one write for them all), else it starts now. */
static void call_made(pTHX_ etcd_t *c)
{
    if (c->local.fd < 0)
        return;
    if (c->draining)
        WATCHER_ON(prepare, &c->queued);
    else
        drive_local(aTHX_ c, 1, 1);
}

/* What one wake-up delivers at most, in completions and in seconds: then
 * the loop runs its other watchers (timers, I/O) before the rest, so a
 * flood cannot starve them. One completion can hold a thousand events, so
 * the time limit is the one that usually applies under a backlog. */
#define DRAIN_BATCH 1024
#define DRAIN_SECONDS 0.01

/* Delivers the completions that are ready; `ack` re-arms the wake-up
 * first (the io watcher's case; after a drive there may be none to read). */
static void deliver(pTHX_ etcd_t *c, int ack)
{
    evetcd_builder b;
    U64 id;
    int disp;
    void *resp, *err, *info;
    SV *self = c->self;
    int budget = DRAIN_BATCH;
    ev_tstamp until;

    b = builder_template;
#ifdef MULTIPLICITY
    b.ctx = (void *)aTHX;
#endif

    /* A callback may drop the last reference to the client: keep it alive
     * until the drain is over. */
    SvREFCNT_inc_simple_void_NN(self);
    if (ack)
        evetcd_ack(c->rs);
    c->draining++;
    until = ev_time() + DRAIN_SECONDS;
    /* A callback may close the client: c->rs is then NULL, and the
     * completions still queued went with it. */
    while (budget-- > 0 && c->rs && evetcd_next(c->rs, &b, &id, &disp, &resp, &err, &info)) {
        SV **svp, *cb = NULL;
        if (id == 0) {
            report_health(aTHX_ c, resp);
            continue;
        }
        if (info) {
            /* on_request runs before the call's own callback. */
            ENTER;
            SAVETMPS;
            if (c->request_cb) /* held: a close inside it frees c->request_cb */
                invoke(aTHX_ sv_2mortal(SvREFCNT_inc_simple_NN(c->request_cb)),
                       hv_to_arg(aTHX_ info), NULL);
            else
                sv_2mortal((SV *)info);
            FREETMPS;
            LEAVE;
        }
        svp = hv_fetch(c->callbacks, (const char *)&id, sizeof id, 0);
        if (svp) {
            /* Our own reference: the callback may drop its stream or client. */
            cb = SvREFCNT_inc_simple_NN(*svp);
            if (disp != EVETCD_KEEP)
                drop_entry(aTHX_ c, id, SvREFCNT_inc_simple_NN(cb));
        }
        if (cb) {
            ENTER;
            SAVETMPS;
            invoke(aTHX_ cb, hv_to_arg(aTHX_ resp), hv_to_arg(aTHX_ err));
            FREETMPS;
            LEAVE;
        } else {
            if (resp) SvREFCNT_dec((SV *)resp);
            if (err) SvREFCNT_dec((SV *)err);
        }
        SvREFCNT_dec(cb);
        if (ev_time() > until) {
            budget = -1; /* out of time: the rest on the next turn */
            break;
        }
    }
    c->draining--;
    if (budget < 0 && c->rs)
        evetcd_rewake(c->rs); /* stopped early: come back for the rest */
    /* A drain cut short leaves its forgotten callbacks to the one that
     * empties the queue: burying each batch on its own would free the
     * oldest callbacks first, the costly order (see bury_forgotten). */
    if (budget >= 0 || AvFILLp(c->forgotten) >= FORGOTTEN_MAX)
        bury_forgotten(aTHX_ c);
    SvREFCNT_dec(self); /* may run DESTROY: c is not touched after this */
}

/* The io watcher: acknowledge the wake-up, then deliver the completions. */
static void drain(EV_P_ ev_io *w, int revents)
{
    etcd_t *c = (etcd_t *)((char *)w - offsetof(etcd_t, io));
    dTHX;
    PERL_UNUSED_ARG(revents);

    /* In a child the wake-ups belong to the parent's client: leave them to
     * it, and stop watching (a child running EV has done loop_fork). */
    if (c->fork_gen != fork_generation) {
        if (!c->refd)
            ev_ref(EV_A);
        c->refd = 0;
        ev_io_stop(EV_A, w);
        return;
    }
    deliver(aTHX_ c, 1);
}

/* ---- argument helpers ---- */

static const char *need_bytes(pTHX_ SV *sv, STRLEN *len, const char *method, const char *what)
{
    if (!sv)
        croak("%s: %s is missing", method, what);
    SvGETMAGIC(sv);
    if (!SvOK(sv))
        croak("%s: %s must be defined", method, what);
    if (SvROK(sv) && !SvAMAGIC(sv))
        croak("%s: %s must be a string, not a reference", method, what);
    return SvPV_nomg(sv, *len);
}

/* Integer arguments. A value may come as an IV, a UV, an NV holding an
 * exact integer, or a decimal string (what Perl's numification takes as a
 * plain integer: surrounding whitespace and a sign allowed). Strings are
 * parsed exactly, never through an NV, so ids above 2**53 survive; a
 * string is taken as a string even if it was used as a number before, so
 * the outcome does not depend on the value's history. int_arg gives the
 * sign and the magnitude; the need_* wrappers check the range. */

#define INT_NEG  1  /* the value is below zero */
#define INT_HUGE 2  /* the magnitude is beyond 2**64-1 (*mag unset) */
#define TWO_TO_63 ((U64)1 << 63)
#ifndef IS_NUMBER_TRAILING
#define IS_NUMBER_TRAILING 0
#endif

/* "METHOD: WHAT PROBLEM, got 'VALUE'" (a long value is cut short). */
static void int_croak(pTHX_ SV *sv, const char *method, const char *what, const char *problem)
{
    STRLEN len;
    const char *s;
    if (!SvOK(sv))
        croak("%s: %s %s, got undef", method, what, problem);
    if (SvROK(sv) && !SvAMAGIC(sv))
        croak("%s: %s %s, got a reference (%s)", method, what, problem,
              sv_reftype(SvRV(sv), 0));
    s = SvPV_nomg(sv, len);
    if (len > 60)
        croak("%s: %s %s, got '%.60s...'", method, what, problem, s);
    croak("%s: %s %s, got '%.*s'", method, what, problem, (int)len, s);
}

static int int_from_string(pTHX_ SV *sv, const char *method, const char *what, U64 *mag)
{
    STRLEN len;
    const char *s = SvPV_nomg(sv, len);
    UV value = 0;
    int t = grok_number(s, len, &value);
    if (!t || (t & (IS_NUMBER_NOT_INT | IS_NUMBER_INFINITY | IS_NUMBER_NAN | IS_NUMBER_TRAILING)))
        int_croak(aTHX_ sv, method, what, "must be an integer");
    if (t & IS_NUMBER_GREATER_THAN_UV_MAX)
        return INT_HUGE | ((t & IS_NUMBER_NEG) ? INT_NEG : 0);
    if (!(t & IS_NUMBER_IN_UV))
        int_croak(aTHX_ sv, method, what, "must be an integer");
    *mag = (U64)value;
    return (t & IS_NUMBER_NEG) && value ? INT_NEG : 0; /* "-0" is 0 */
}

static int int_from_iv(pTHX_ SV *sv, U64 *mag)
{
    IV iv;
    if (SvIsUV(sv)) {
        *mag = (U64)SvUVX(sv);
        return 0;
    }
    iv = SvIVX(sv);
    if (iv >= 0) {
        *mag = (U64)iv;
        return 0;
    }
    *mag = (U64)(-(iv + 1)) + 1; /* no overflow at IV_MIN */
    return INT_NEG;
}

static int int_from_nv(pTHX_ SV *sv, const char *method, const char *what, U64 *mag)
{
    NV nv = SvNV_nomg(sv), a;
    int neg;
    if (nv != nv || nv - nv != 0) /* NaN, +-Inf */
        int_croak(aTHX_ sv, method, what, "must be an integer");
    neg = nv < 0;
    a = neg ? -nv : nv;
    if (a >= 18446744073709551616.0) /* 2**64: every NV this large is integral */
        return INT_HUGE | (neg ? INT_NEG : 0);
    *mag = (U64)a;
    if ((NV)*mag != a)
        int_croak(aTHX_ sv, method, what, "must be an integer");
    return neg ? INT_NEG : 0;
}

static int int_arg(pTHX_ SV *sv, const char *method, const char *what, U64 *mag)
{
    if (!sv)
        croak("%s: %s is missing", method, what);
    SvGETMAGIC(sv);
    if (SvROK(sv)) {
        if (!SvAMAGIC(sv)) /* an object with overloading counts by its string */
            int_croak(aTHX_ sv, method, what, "must be an integer");
        return int_from_string(aTHX_ sv, method, what, mag);
    }
    /* Public flags first; a value with get-magic has only private ones. */
    if (SvPOK(sv)) return int_from_string(aTHX_ sv, method, what, mag);
    if (SvIOK(sv)) return int_from_iv(aTHX_ sv, mag);
    if (SvNOK(sv)) return int_from_nv(aTHX_ sv, method, what, mag);
    if (SvPOKp(sv)) return int_from_string(aTHX_ sv, method, what, mag);
    if (SvIOKp(sv)) return int_from_iv(aTHX_ sv, mag);
    if (SvNOKp(sv)) return int_from_nv(aTHX_ sv, method, what, mag);
    int_croak(aTHX_ sv, method, what, "must be an integer"); /* undef, a glob... */
    return 0;
}

/* 0 .. 2**64-1 (member ids). */
static U64 need_uint(pTHX_ SV *sv, const char *method, const char *what)
{
    U64 m = 0;
    int f = int_arg(aTHX_ sv, method, what, &m);
    if (f & INT_NEG)
        int_croak(aTHX_ sv, method, what, "must not be negative");
    if (f & INT_HUGE)
        int_croak(aTHX_ sv, method, what, "is too large (must be at most 18446744073709551615)");
    return m;
}

/* -2**63 .. 2**63-1, or 0 .. 2**63-1 without allow_neg. */
static I64 int_in_range(pTHX_ SV *sv, const char *method, const char *what, int allow_neg)
{
    U64 m = 0;
    int f = int_arg(aTHX_ sv, method, what, &m);
    if (f & INT_NEG) {
        if (!allow_neg)
            int_croak(aTHX_ sv, method, what, "must not be negative");
        if ((f & INT_HUGE) || m > TWO_TO_63)
            int_croak(aTHX_ sv, method, what, "is too small (must be at least -9223372036854775808)");
        return m == TWO_TO_63 ? -(I64)(TWO_TO_63 - 1) - 1 : -(I64)m;
    }
    if ((f & INT_HUGE) || m > TWO_TO_63 - 1)
        int_croak(aTHX_ sv, method, what, "is too large (must be at most 9223372036854775807)");
    return (I64)m;
}

/* Signed 64-bit (revisions, counts). */
static I64 need_int(pTHX_ SV *sv, const char *method, const char *what)
{
    return int_in_range(aTHX_ sv, method, what, 1);
}

/* 0 .. 2**63-1: lease ids (int64 in etcd, never negative) and other
 * signed fields that must not be negative. */
static I64 need_nonneg_int(pTHX_ SV *sv, const char *method, const char *what)
{
    return int_in_range(aTHX_ sv, method, what, 0);
}

static HV *need_hash(pTHX_ SV *sv, const char *method, const char *what)
{
    if (!sv)
        croak("%s: %s is missing", method, what);
    SvGETMAGIC(sv);
    if (!SvROK(sv) || SvTYPE(SvRV(sv)) != SVt_PVHV)
        croak("%s: %s must be a hash reference", method, what);
    return (HV *)SvRV(sv);
}

static AV *need_array(pTHX_ SV *sv, const char *method, const char *what)
{
    if (!sv)
        croak("%s: %s is missing", method, what);
    SvGETMAGIC(sv);
    if (!SvROK(sv) || SvTYPE(SvRV(sv)) != SVt_PVAV)
        croak("%s: %s must be an array reference", method, what);
    return (AV *)SvRV(sv);
}

/* Splits the tail "[\%opts], $cb" of an argument list. */
static HV *opts_and_cb(pTHX_ const char *method, SV **args, int n, SV **cb)
{
    if (n <= 0)
        croak("callback must be a code reference (%s)", method);
    if (n == 1) {
        *cb = need_cb(aTHX_ args[0], method);
        return NULL;
    }
    if (n == 2) {
        *cb = need_cb(aTHX_ args[1], method);
        SvGETMAGIC(args[0]);
        if (!SvOK(args[0]))
            return NULL;
        return need_hash(aTHX_ args[0], method, "options");
    }
    croak("%s: wrong number of arguments", method);
    return NULL;
}

#define OPT_IS(name) (klen == sizeof(name) - 1 && memEQ(k, name, sizeof(name) - 1))

/* Iterates an options hash with k/klen/v in scope; close with OPT_END. */
#define OPT_BEGIN(hv)                                                   \
    if (hv) {                                                           \
        HE *he_;                                                        \
        hv_iterinit(hv);                                                \
        while ((he_ = hv_iternext(hv)) != NULL) {                       \
            I32 kl_;                                                    \
            const char *k = hv_iterkey(he_, &kl_);                      \
            STRLEN klen = (STRLEN)kl_;                                  \
            SV *v = hv_iterval(hv, he_);
#define OPT_END } }

static void unknown_option(pTHX_ const char *method, const char *k, STRLEN klen)
{
    if (klen == 7 && memEQ(k, "timeout", 7))
        croak("%s: timeout does not apply here (streams have no deadline; txn operations take the txn's)",
              method);
    croak("%s: unknown option '%.*s'", method, (int)klen, k);
}

/* io_mode's value as EVETCD_IO_*, or -1 when it names no mode. */
static int io_mode_named(pTHX_ SV *v)
{
    STRLEN len;
    const char *name;
    if (!SvOK(v) || SvROK(v))
        return -1;
    name = SvPV_nomg(v, len);
    if (len == 6 && memEQ(name, "inline", 6))
        return EVETCD_IO_INLINE;
    if (len == 10 && memEQ(name, "background", 10))
        return EVETCD_IO_BACKGROUND;
    return -1;
}

/* A string option of new's TLS group: NULL for undef (not given); an empty
 * string croaks, as it cannot name a file or a server. */
static const char *tls_string(pTHX_ SV *v, size_t *len, const char *what)
{
    STRLEN l;
    const char *s;
    SvGETMAGIC(v);
    if (!SvOK(v))
        return NULL;
    s = need_bytes(aTHX_ v, &l, "EV::Etcd->new", what);
    if (!l)
        croak("EV::Etcd->new: %s must not be empty", what);
    *len = l;
    return s;
}

/* The range end that selects every key starting with key[0..len). */
static void prefix_end(const char *key, STRLEN len, char *out, STRLEN *out_len)
{
    STRLEN i = len;
    while (i > 0) {
        unsigned char ch = (unsigned char)key[i - 1];
        if (ch < 0xff) {
            Copy(key, out, i - 1, char);
            out[i - 1] = (char)(ch + 1);
            *out_len = i;
            return;
        }
        i--;
    }
    out[0] = '\0'; /* all 0xff or empty: to the end of the keyspace */
    *out_len = 1;
}

/* Key plus range: prefix wins over range_end; an empty key with prefix
 * means the whole keyspace ("\0".."\0"). *end is NULL when there is no
 * range end. */
static void key_range(pTHX_ const char **key, STRLEN *klen, int prefix, SV *range_end,
                      const char *method, const char **end, STRLEN *elen)
{
    *end = NULL;
    *elen = 0;
    if (prefix) {
        char *e;
        if (*klen == 0) {
            *key = *end = "\0";
            *klen = *elen = 1;
            return;
        }
        /* mortal: freed with the call's other temporaries */
        e = SvPVX(sv_2mortal(newSV(*klen + 1)));
        prefix_end(*key, *klen, e, elen);
        *end = e;
        return;
    }
    if (range_end)
        *end = need_bytes(aTHX_ range_end, elen, method, "range_end");
}

/* key_range in a RangeRequest, DeleteRangeRequest or WatchCreateRequest,
 * which number the two fields alike (checked here at compile time). */
typedef char key_range_fields_agree[
    PB_RangeRequest_key == PB_DeleteRangeRequest_key && PB_RangeRequest_key == PB_WatchCreateRequest_key
    && PB_RangeRequest_range_end == PB_DeleteRangeRequest_range_end
    && PB_RangeRequest_range_end == PB_WatchCreateRequest_range_end ? 1 : -1];
static void put_key_range(pTHX_ pb_buf *b, const char *key, STRLEN klen, int prefix,
                          SV *range_end, const char *method)
{
    const char *end;
    STRLEN elen;
    key_range(aTHX_ &key, &klen, prefix, range_end, method, &end, &elen);
    pb_bytes(aTHX_ b, PB_RangeRequest_key, key, klen);
    if (end)
        pb_bytes(aTHX_ b, PB_RangeRequest_range_end, end, elen);
}

/* The `timeout` option of a unary call: seconds, 0 for no deadline, or
 * -1 (absent) for the client's timeout. */
static double call_timeout(pTHX_ HV *opts, const char *method)
{
    SV **svp = opts ? hv_fetchs(opts, "timeout", 0) : NULL;
    NV t;
    if (!svp)
        return -1;
    SvGETMAGIC(*svp);
    if (!SvOK(*svp))
        return -1;
    if (!looks_like_number(*svp) || SvROK(*svp))
        croak("%s: timeout must be a number of seconds", method);
    t = SvNV_nomg(*svp);
    if (t != t || t < 0 || t > 1e300)
        croak("%s: timeout must be a finite number of seconds, 0 or more", method);
    return t > 1e9 ? 1e9 : t;
}

/* Croaks for a call or stream the Rust side did not start: `rc` is what it
 * returned, `detail` its message for a bad endpoint. */
static void start_refused(pTHX_ const char *method, int rc, const char *detail)
{
    char why[1024];
    if (rc == EVETCD_PANICKED) {
        why[0] = 0;
        evetcd_last_panic(why, sizeof why);
        croak("%s: internal error in the Rust core (panic %s); nothing was started", method, why);
    }
    if (rc == EVETCD_BAD_ENDPOINT)
        croak("%s: %s", method, detail);
    croak("%s: the request could not be started (the Rust core refused it, code %d)", method, rc);
}

/* Sends a unary call; `opts` (or NULL) may carry its `timeout`. */
static U64 start_call(pTHX_ etcd_t *c, evetcd_method m, pb_buf *body, SV *cb, HV *opts)
{
    const char *method = evetcd_method_name(m);
    double timeout = call_timeout(aTHX_ opts, method);
    U64 id = register_cb(aTHX_ c, cb);
    int rc = evetcd_call(c->rs, id, m, body->p, body->len, timeout);
    if (rc != EVETCD_STARTED) {
        forget_cb(aTHX_ c, id);
        start_refused(aTHX_ method, rc, NULL);
    }
    call_made(aTHX_ c);
    return id;
}

/* The options of a call that may be aimed at one member. */
static void member_options(pTHX_ HV *opts, const char *method)
{
    OPT_BEGIN(opts)
        if (!OPT_IS("timeout") && !OPT_IS("endpoint"))
            unknown_option(aTHX_ method, k, klen);
    OPT_END
}

/* A maintenance call, sent to the member its `endpoint` option names
 * when it has one, else like any call; `opts` may also carry `timeout`. */
static void start_member_call(pTHX_ etcd_t *c, evetcd_method m, pb_buf *body, SV *cb, HV *opts)
{
    const char *method = evetcd_method_name(m);
    SV **ep = opts ? hv_fetchs(opts, "endpoint", 0) : NULL;
    STRLEN elen;
    const char *e;
    double timeout;
    char err[512];
    U64 id;
    int rc;
    if (ep) SvGETMAGIC(*ep);
    if (!ep || !SvOK(*ep)) {
        start_call(aTHX_ c, m, body, cb, opts);
        return;
    }
    e = need_bytes(aTHX_ *ep, &elen, method, "endpoint");
    if (!elen)
        croak("%s: endpoint must not be empty", method);
    timeout = call_timeout(aTHX_ opts, method);
    id = register_cb(aTHX_ c, cb);
    err[0] = 0;
    rc = evetcd_call_at(c->rs, id, m, body->p, body->len, timeout, e, elen,
                        err, sizeof err);
    if (rc != EVETCD_STARTED) {
        forget_cb(aTHX_ c, id);
        start_refused(aTHX_ method, rc, err);
    }
    call_made(aTHX_ c); /* the test hook answers it on the local runtime */
}

/* The end of every stream method: `started` is what handing stream `id`
 * to the Rust side returned. On success, a handle { client, id, kind }
 * blessed into the kind's class, and the client remembers the id as a
 * stream of that kind (see _cancel_stream); on failure the callback is
 * forgotten and `method` croaks. */
static SV *stream_started(pTHX_ etcd_t *c, SV *client, U64 id, int started, int kind,
                          const char *method)
{
    static const char *const classes[] = {
        NULL, "EV::Etcd::Watch", "EV::Etcd::Keepalive", "EV::Etcd::Observe", "EV::Etcd::Snapshot"
    };
    HV *h;
    if (started != EVETCD_STARTED) {
        forget_cb(aTHX_ c, id);
        start_refused(aTHX_ method, started, NULL);
    }
    h = newHV();
    (void)hv_store(c->streams, (const char *)&id, sizeof id, newSViv(kind), 0);
    (void)hv_stores(h, "client", newSVsv(client));
    (void)hv_stores(h, "id", newSVuv((UV)id));
    (void)hv_stores(h, "kind", newSViv(kind));
    add_our_magic(aTHX_ (SV *)h, &handle_vtbl, &live_handle);
    return sv_bless(newRV_noinc((SV *)h), gv_stashpv(classes[kind], GV_ADD));
}

/* Starts `method` whose request is n byte strings, args[i] in field
 * fields[i] (the shape of most auth, lock and election calls). */
static void call_with_strings(pTHX_ etcd_t *c, evetcd_method m, SV *cb, int n, SV **args,
                              const char *const *names, const int *fields)
{
    const char *method = evetcd_method_name(m);
    pb_buf b;
    int i;
    check_fork(aTHX_ c);
    need_cb(aTHX_ cb, method);
    pb_init(aTHX_ &b);
    for (i = 0; i < n; i++) {
        STRLEN len;
        const char *s = need_bytes(aTHX_ args[i], &len, method, names[i]);
        pb_bytes(aTHX_ &b, fields[i], s, len);
    }
    start_call(aTHX_ c, m, &b, cb, NULL);
}

/* Starts `method` whose request is one id in `field`: a member id
 * (uint64) or, with lease set, a lease id (int64, never negative). */
static void call_with_id(pTHX_ etcd_t *c, evetcd_method m, SV *cb, SV *id, const char *name,
                         int field, int lease)
{
    const char *method = evetcd_method_name(m);
    pb_buf b;
    check_fork(aTHX_ c);
    need_cb(aTHX_ cb, method);
    pb_init(aTHX_ &b);
    if (lease)
        pb_int(aTHX_ &b, field, need_nonneg_int(aTHX_ id, method, name));
    else
        pb_uint(aTHX_ &b, field, need_uint(aTHX_ id, method, name));
    start_call(aTHX_ c, m, &b, cb, NULL);
}

/* Encoders shared by the plain methods and txn. */
#include "encode.h"

/* An endpoint list (array of non-empty strings) as pointer and length
 * arrays that live until the end of the calling XSUB. */
static size_t endpoint_list(pTHX_ SV *v, const char *method, const char ***eps, STRLEN **lens)
{
    AV *av = need_array(aTHX_ v, method, "endpoints");
    SSize_t n = av_len(av) + 1, j;
    if (n < 1)
        croak("%s: endpoints must not be empty", method);
    Newx(*eps, n, const char *);
    SAVEFREEPV(*eps);
    Newx(*lens, n, STRLEN);
    SAVEFREEPV(*lens);
    for (j = 0; j < n; j++) {
        SV **e = av_fetch(av, j, 0);
        if (!e || !SvOK(*e))
            croak("%s: endpoints[%d] is undefined", method, (int)j);
        (*eps)[j] = need_bytes(aTHX_ *e, &(*lens)[j], method, "endpoint");
        if (!(*lens)[j])
            croak("%s: endpoints[%d] is empty", method, (int)j);
    }
    return (size_t)n;
}

enum kv_kind { KV_PUT, KV_GET, KV_DELETE };

/* The body of put, get and delete: options, encoding, submission. */
static void kv_call(pTHX_ etcd_t *c, enum kv_kind kind, SV *key, SV *value, SV **rest, int n)
{
    static const evetcd_method methods[] = {
        EVETCD_KV_METHOD_PUT, EVETCD_KV_METHOD_GET, EVETCD_KV_METHOD_DELETE
    };
    const char *method = evetcd_method_name(methods[kind]);
    pb_buf b;
    SV *cb;
    HV *opts;
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ method, rest, n, &cb);
    pb_init(aTHX_ &b);
    switch (kind) {
    case KV_PUT: encode_put(aTHX_ &b, method, key, value, opts, 0); break;
    case KV_GET: encode_range(aTHX_ &b, method, key, opts, 0); break;
    case KV_DELETE: encode_delete(aTHX_ &b, method, key, opts, 0); break;
    }
    start_call(aTHX_ c, methods[kind], &b, cb, opts);
}

/* Options of lock and election_campaign: only `timeout`. */
static HV *wait_opts(pTHX_ const char *method, SV **rest, int n, SV **cb)
{
    HV *opts = opts_and_cb(aTHX_ method, rest, n, cb);
    OPT_BEGIN(opts)
        if (!OPT_IS("timeout")) unknown_option(aTHX_ method, k, klen);
    OPT_END
    return opts;
}

MODULE = EV::Etcd    PACKAGE = EV::Etcd

PROTOTYPES: DISABLE

BOOT:
{
    I_EV_API("EV::Etcd");
    load_reply_keys(aTHX);
    pthread_atfork(NULL, NULL, on_fork_child);
}

# new(klass, %options): the public new is a Perl sub in lib/EV/Etcd.pm
# (it knows the namespace option) that comes here by goto.
SV *
_new(...)
  PREINIT:
    const char *klass;
    evetcd_config cfg;
    const char **eps = NULL;
    STRLEN *lens = NULL;
    SV *health_cb = NULL, *request_cb = NULL;
    int io_given = 0;
    char errbuf[2048];  /* room for messages naming long file paths */
    etcd_t *c;
    int i;
  CODE:
    if (items < 1)
        croak("Usage: EV::Etcd::new(klass, ...)");
    klass = SvPV_nolen(ST(0));
    if ((items - 1) % 2)
        croak("EV::Etcd->new: options must be name => value pairs");
    evetcd_config_defaults(&cfg);
    for (i = 1; i < items; i += 2) {
        STRLEN klen;
        const char *k = SvPV(ST(i), klen);
        SV *v = ST(i + 1);
        if (OPT_IS("endpoints")) {
            cfg.n_endpoints = endpoint_list(aTHX_ v, "EV::Etcd->new", &eps, &lens);
            cfg.endpoints = eps;
            cfg.endpoint_lens = lens;
        } else if (OPT_IS("retry")) {
            SvGETMAGIC(v);
            if (SvOK(v)) {
                I64 n = need_nonneg_int(aTHX_ v, "EV::Etcd->new", "retry");
                if (n > 100)
                    croak("EV::Etcd->new: retry must be at most 100");
                cfg.retry = (uint32_t)n;
            }
        } else if (OPT_IS("auto_sync_interval") || OPT_IS("watch_probe_interval")) {
            SvGETMAGIC(v);
            if (SvOK(v)) {
                NV t;
                if (SvROK(v) || !looks_like_number(v))
                    croak("EV::Etcd->new: %s must be a number of seconds", k);
                t = SvNV_nomg(v);
                if (t != t || t < 0 || t > 1e9)
                    croak("EV::Etcd->new: %s must be a finite number of seconds, 0 (off) or more", k);
                t = t > 0 && t < 0.1 ? 0.1 : t;
                if (klen == sizeof("auto_sync_interval") - 1) cfg.auto_sync_interval = t;
                else cfg.watch_probe_interval = t;
            }
        } else if (OPT_IS("timeout")) {
            SvGETMAGIC(v);
            if (!SvOK(v) || !looks_like_number(v) || SvNV(v) != SvNV(v))
                croak("EV::Etcd->new: timeout must be a number of seconds");
            cfg.timeout = SvNV(v) < 1 ? 1 : SvNV(v);
            if (cfg.timeout > 1e9) cfg.timeout = 1e9;
        } else if (OPT_IS("max_retries")) {
            cfg.max_retries = need_int(aTHX_ v, "EV::Etcd->new", "max_retries");
        } else if (OPT_IS("health_interval")) {
            SvGETMAGIC(v);
            if (!SvOK(v) || !looks_like_number(v) || SvNV(v) < 0 || SvNV(v) != SvNV(v))
                croak("EV::Etcd->new: health_interval must be a non-negative number of seconds");
            cfg.health_interval = SvNV(v);
            if (cfg.health_interval > 0 && cfg.health_interval < 0.1) cfg.health_interval = 0.1;
        } else if (OPT_IS("on_health_change")) {
            SvGETMAGIC(v);
            if (SvOK(v)) {
                if (!SvROK(v) || SvTYPE(SvRV(v)) != SVt_PVCV)
                    croak("EV::Etcd->new: on_health_change must be a code reference");
                health_cb = v;
            }
        } else if (OPT_IS("on_request")) {
            SvGETMAGIC(v);
            if (SvOK(v)) {
                if (!SvROK(v) || SvTYPE(SvRV(v)) != SVt_PVCV)
                    croak("EV::Etcd->new: on_request must be a code reference");
                request_cb = v;
                cfg.on_request = 1;
            }
        } else if (OPT_IS("keepalive_time") || OPT_IS("keepalive_timeout")) {
            int answer = klen == sizeof("keepalive_timeout") - 1;
            NV t;
            SvGETMAGIC(v);
            if (!SvOK(v) || SvROK(v) || !looks_like_number(v))
                croak("EV::Etcd->new: %s must be a number of seconds", k);
            t = SvNV_nomg(v);
            if (t != t || t > 1e9)
                croak("EV::Etcd->new: %s must be a finite number of seconds, at most 1e9", k);
            if (t < 0 || (t == 0 && answer))
                croak("EV::Etcd->new: %s must be a number of seconds, %s", k,
                      answer ? "above 0" : "0 (no pings) or more");
            if (answer) cfg.keepalive_timeout = t; else cfg.keepalive_time = t;
        } else if (OPT_IS("max_recv_size") || OPT_IS("max_send_size")) {
            U64 n = 0;
            SvGETMAGIC(v);
            if (SvOK(v)) {
                n = need_uint(aTHX_ v, "EV::Etcd->new", k);
                if (!n)
                    croak("EV::Etcd->new: %s must be a positive number of bytes (undef for no limit)", k);
            }
            if (k[4] == 'r') cfg.max_recv_size = n; else cfg.max_send_size = n;
        } else if (OPT_IS("username")) {
            SvGETMAGIC(v);
            if (SvOK(v)) {
                cfg.username = need_bytes(aTHX_ v, &cfg.username_len, "EV::Etcd->new", "username");
                if (!cfg.username_len)
                    croak("EV::Etcd->new: username must not be empty");
            }
        } else if (OPT_IS("password")) {
            SvGETMAGIC(v);
            if (SvOK(v))
                cfg.password = need_bytes(aTHX_ v, &cfg.password_len, "EV::Etcd->new", "password");
        } else if (OPT_IS("auth_token")) {
            SvGETMAGIC(v);
            if (SvOK(v))
                cfg.token = need_bytes(aTHX_ v, &cfg.token_len, "EV::Etcd->new", "auth_token");
        } else if (OPT_IS("io_mode")) {
            SvGETMAGIC(v);
            if (SvOK(v)) {
                cfg.io_mode = io_mode_named(aTHX_ v);
                if (cfg.io_mode < 0)
                    croak("EV::Etcd->new: io_mode must be 'inline' or 'background'");
                io_given = 1;
            }
        } else if (OPT_IS("tls")) {
            SvGETMAGIC(v);
            cfg.tls = SvOK(v) ? (SvTRUE_nomg(v) ? 1 : 0) : -1;
        } else if (OPT_IS("tls_ca_file")) {
            cfg.tls_ca_file = tls_string(aTHX_ v, &cfg.tls_ca_file_len, "tls_ca_file");
        } else if (OPT_IS("tls_cert_file")) {
            cfg.tls_cert_file = tls_string(aTHX_ v, &cfg.tls_cert_file_len, "tls_cert_file");
        } else if (OPT_IS("tls_key_file")) {
            cfg.tls_key_file = tls_string(aTHX_ v, &cfg.tls_key_file_len, "tls_key_file");
        } else if (OPT_IS("tls_server_name")) {
            cfg.tls_server_name = tls_string(aTHX_ v, &cfg.tls_server_name_len, "tls_server_name");
        } else {
            unknown_option(aTHX_ "EV::Etcd->new", k, klen);
        }
    }
    if (!io_given) {
        /* The environment picks the mode of every client that does not
         * choose: a whole program (or test suite) can run in either. */
        SV **env = hv_fetchs(GvHVn(PL_envgv), "EV_ETCD_IO_MODE", 0);
        STRLEN elen = 0;
        if (env && SvOK(*env))
            (void)SvPV_nomg(*env, elen); /* (a number stored in %ENV has no PV yet) */
        if (elen) {
            cfg.io_mode = io_mode_named(aTHX_ *env);
            if (cfg.io_mode < 0)
                croak("EV::Etcd->new: EV_ETCD_IO_MODE in the environment must be 'inline' or 'background', not '%" SVf "'", SVfARG(*env));
            io_given = 1;
        }
    }
    if (cfg.username && !cfg.password)
        croak("EV::Etcd->new: username needs a password");
    if (cfg.password && !cfg.username)
        croak("EV::Etcd->new: password needs a username");
    if (!cfg.n_endpoints) {
        static const char *dflt = "127.0.0.1:2379";
        static STRLEN dflt_len = 14;
        cfg.endpoints = &dflt;
        cfg.endpoint_lens = &dflt_len;
        cfg.n_endpoints = 1;
    }
    Newxz(c, 1, etcd_t);
    {
        /* The runtime thread inherits this mask: a write to a socket the
         * server closed must give EPIPE there, not kill the process. */
        sigset_t pipe_only, saved;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_only, &saved);
        c->rs = evetcd_new(&cfg, errbuf, sizeof errbuf);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
    }
    if (!c->rs) {
        Safefree(c);
        croak("EV::Etcd->new: %s", errbuf);
    }
    c->callbacks = newHV();
    c->streams = newHV();
    c->forgotten = newAV();
    c->fork_gen = fork_generation;
    c->health_cb = health_cb ? newSVsv(health_cb) : NULL;
    c->request_cb = request_cb ? newSVsv(request_cb) : NULL;
    ev_io_init(&c->io, drain, evetcd_fd(c->rs), EV_READ);
    ev_io_start(EV_DEFAULT_UC, &c->io);
    ev_unref(EV_DEFAULT_UC); /* an idle client does not hold the loop */
    ev_io_init(&c->local, local_ready, evetcd_local_fd(c->rs), EV_READ);
    ev_prepare_init(&c->queued, local_queued);
    ev_idle_init(&c->ready, local_delivery);
    ev_set_priority(&c->ready, EV_MAXPRI); /* not held back by other I/O */
    ev_init(&c->tick, local_tick);
    if (c->local.fd >= 0)
        WATCHER_ON(io, &c->local);
    else if (cfg.io_mode == EVETCD_IO_INLINE && io_given)
        warn("EV::Etcd->new: io_mode 'inline' cannot be set up on this system; calls and watches run on the background thread");
    else if (cfg.io_mode == EVETCD_IO_INLINE)
        warn("EV::Etcd->new: the inline I/O mode could not be set up (its event descriptor was not found); calls and watches run on the background thread");
    c->self = newSV(0);
    add_our_magic(aTHX_ c->self, &client_vtbl, c);
    RETVAL = sv_bless(newRV_noinc(c->self), gv_stashpv(klass, GV_ADD));
  OUTPUT:
    RETVAL

void
set_endpoints(EV::Etcd c, SV *list = NULL)
  PREINIT:
    const char **eps;
    STRLEN *lens;
    size_t n;
    char errbuf[2048];
  CODE:
    check_fork(aTHX_ c);
    if (items != 2)
        croak("set_endpoints: wrong number of arguments (expected an array reference)");
    n = endpoint_list(aTHX_ list, "set_endpoints", &eps, &lens);
    if (evetcd_set_endpoints(c->rs, eps, lens, n, errbuf, sizeof errbuf) != 0)
        croak("set_endpoints: %s", errbuf);

SV *
endpoints(EV::Etcd c)
  PREINIT:
    evetcd_builder b;
    void *av;
  CODE:
    check_fork(aTHX_ c);
    b = builder_template;
#ifdef MULTIPLICITY
    b.ctx = (void *)aTHX;
#endif
    av = evetcd_endpoints(c->rs, &b);
    if (!av)
        croak("endpoints: internal error");
    RETVAL = newRV_noinc((SV *)av);
  OUTPUT:
    RETVAL

const char *
io_mode(EV::Etcd c)
  CODE:
    check_fork(aTHX_ c);
    RETVAL = c->local.fd >= 0 ? "inline" : "background";
  OUTPUT:
    RETVAL

void
close(EV::Etcd c)
  PREINIT:
    HV *old;
  CODE:
    if (c->fork_gen != fork_generation)
        croak("EV::Etcd: this client was created before fork() and cannot be used after fork(); create a new client in the child");
    if (c->rs) {
        /* Freeing the callbacks may drop the last reference to the client:
         * keep it alive until this method is done. */
        SvREFCNT_inc_simple_void_NN(c->self);
        if (ev_is_active(&c->io)) {
            if (!c->refd)
                ev_ref(EV_DEFAULT_UC);
            ev_io_stop(EV_DEFAULT_UC, &c->io);
        }
        c->refd = 0;
        stop_local(c);
        evetcd_free(c->rs); /* stops the runtime: nothing more completes */
        c->rs = NULL;
        c->pending = 0;
        old = c->callbacks;
        c->callbacks = newHV();
        hv_clear(c->streams);
        SvREFCNT_dec((SV *)old); /* the callbacks, and what they captured */
        bury_forgotten(aTHX_ c);
        if (c->health_cb) { SvREFCNT_dec(c->health_cb); c->health_cb = NULL; }
        if (c->request_cb) { SvREFCNT_dec(c->request_cb); c->request_cb = NULL; }
        SvREFCNT_dec(c->self); /* may run DESTROY */
    }

void
DESTROY(SV *self)
  PREINIT:
    MAGIC *mg;
    etcd_t *c;
  CODE:
    mg = our_magic(self, &client_vtbl);
    c = mg ? (etcd_t *)mg->mg_ptr : NULL;
    if (!c) {
        /* a copy made by Storable or a thread, or a forgery: owns nothing */
    } else if (c->fork_gen != fork_generation) {
        /* Inherited across fork(): the runtime thread and the watcher's
         * kernel state belong to the parent. Release only the loop
         * reference and leak the rest, so the parent is not disturbed. */
        if (c->refd) {
            ev_unref(EV_DEFAULT_UC);
            c->refd = 0;
        }
        warn("EV::Etcd: a client inherited across fork() was destroyed in the child; its connection belongs to the parent and is left untouched");
    } else {
        if (ev_is_active(&c->io)) {
            if (!c->refd)
                ev_ref(EV_DEFAULT_UC);
            ev_io_stop(EV_DEFAULT_UC, &c->io);
        }
        stop_local(c);
        if (c->rs)
            evetcd_free(c->rs); /* stops the runtime: pending callbacks are never called */
        SvREFCNT_dec((SV *)c->callbacks);
        SvREFCNT_dec((SV *)c->streams);
        bury_forgotten(aTHX_ c);
        SvREFCNT_dec((SV *)c->forgotten);
        if (c->health_cb) SvREFCNT_dec(c->health_cb);
        if (c->request_cb) SvREFCNT_dec(c->request_cb);
        Safefree(c);
    }
    if (mg)
        mg->mg_ptr = NULL;

void
_assert_usable(EV::Etcd c)
  CODE:
    /* only the fork check: a closed client's handles still cancel */
    if (c->fork_gen != fork_generation)
        check_fork(aTHX_ c);

void
_cancel_stream(EV::Etcd c, int kind, UV id, SV *cb)
  CODE:
    need_cb(aTHX_ cb, "cancel");
    if (c->fork_gen == fork_generation && !c->rs) {
        /* closed: the stream is over already, as after a cancel */
        ENTER;
        SAVETMPS;
        invoke(aTHX_ cb, sv_2mortal(newRV_noinc((SV *)newHV())), &PL_sv_undef);
        FREETMPS;
        LEAVE;
        XSRETURN_EMPTY;
    }
    check_fork(aTHX_ c);
    {
        U64 sid = (U64)id;
        SV **kindp = hv_fetch(c->streams, (const char *)&sid, sizeof sid, 0);
        U64 cancel_id;
        /* A handle may only cancel its own stream: never a unary call's
         * callback or a stream of another kind (a forged or foreign handle). */
        if (kindp ? SvIV(*kindp) != kind
                  : hv_exists(c->callbacks, (const char *)&sid, sizeof sid) != 0)
            croak("cancel: this handle does not belong to a stream of this client");
        /* From here on the stream delivers nothing, even what is already
         * queued; the Rust side answers the cancel at once. */
        cancel_id = register_cb(aTHX_ c, cb);
        forget_cb(aTHX_ c, (U64)id);
        int rc = evetcd_cancel(c->rs, kind, (U64)id, cancel_id);
        if (rc != EVETCD_STARTED) {
            forget_cb(aTHX_ c, cancel_id);
            start_refused(aTHX_ "cancel", rc, NULL);
        }
    }

# The test hooks exist only in a build configured with EV_ETCD_TEST_HOOKS=1
# (Makefile.PL then defines EVETCD_TEST_HOOKS). Each still refuses unless
# EV_ETCD_TEST_HOOKS is set when it runs: a hook build that got installed
# by mistake stays inert.
#ifdef EVETCD_TEST_HOOKS

void
_crash_streams_for_testing(EV::Etcd c, int kind)
  CODE:
    /* Makes the task behind every stream of one kind panic, to test that
     * each of its streams still gets its one error. Tests only. */
    if (!getenv("EV_ETCD_TEST_HOOKS"))
        croak("_crash_streams_for_testing: set EV_ETCD_TEST_HOOKS to use test hooks");
    check_fork(aTHX_ c);
    if (evetcd_crash_streams_for_testing(c->rs, kind) != 0)
        croak("_crash_streams_for_testing: unknown stream kind %d", kind);

void
_panic_for_testing(EV::Etcd c)
  CODE:
    /* The next call or stream this process starts panics inside the Rust
     * core, to test that the panic croaks with where it happened. */
    if (!getenv("EV_ETCD_TEST_HOOKS"))
        croak("_panic_for_testing: set EV_ETCD_TEST_HOOKS to use test hooks");
    check_fork(aTHX_ c);
    evetcd_panic_for_testing();

void
_echo_requests_for_testing(EV::Etcd c)
  CODE:
    /* From now on nothing is sent: each call and stream is answered once
     * with { method, type, value }, prost's strict reading of the request
     * encoded here (t/48-request-encoding.t). Tests only. */
    if (!getenv("EV_ETCD_TEST_HOOKS"))
        croak("_echo_requests_for_testing: set EV_ETCD_TEST_HOOKS to use test hooks");
    check_fork(aTHX_ c);
    evetcd_echo_requests_for_testing(c->rs);

#endif

INCLUDE: kv.xsh

INCLUDE: watch.xsh

INCLUDE: lease.xsh

INCLUDE: lock.xsh

INCLUDE: election.xsh

INCLUDE: auth.xsh

INCLUDE: maintenance.xsh

INCLUDE: cluster.xsh

MODULE = EV::Etcd  PACKAGE = EV::Etcd::Stream

int
_is_live(SV *handle)
  CODE:
    /* made by a stream method in this thread (not forged, not a copy) */
    {
        MAGIC *mg = our_magic(handle, &handle_vtbl);
        RETVAL = mg && mg->mg_ptr;
    }
  OUTPUT:
    RETVAL
