# KV service: put, get, delete, txn, compact.

void
put(EV::Etcd c, SV *key = NULL, SV *value = NULL, ...)
  CODE:
    kv_call(aTHX_ c, KV_PUT, key, value, &ST(3), items - 3);

void
get(EV::Etcd c, SV *key = NULL, ...)
  CODE:
    kv_call(aTHX_ c, KV_GET, key, NULL, &ST(2), items - 2);

void
delete(EV::Etcd c, SV *key = NULL, ...)
  CODE:
    kv_call(aTHX_ c, KV_DELETE, key, NULL, &ST(2), items - 2);

# txn(c, compare, success, failure, cb): the public txn is a Perl sub in
# lib/EV/Etcd.pm that also takes named arguments and comes here by goto.
# Arguments are taken by hand so that croaks name txn, not _txn.
void
_txn(...)
  PREINIT:
    etcd_t *c;
    pb_buf b;
    SV *lists[3], *cb;
    static const char *names[3] = { "compare", "success", "failure" };
    static const int list_field[3] = {
        PB_TxnRequest_compare, PB_TxnRequest_success, PB_TxnRequest_failure
    };
    int l;
    SSize_t i;
  CODE:
    if (items < 1 || items > 5)
        croak("Usage: EV::Etcd::txn(c, compare= NULL, success= NULL, failure= NULL, cb= NULL)");
    if (!(c = client_of(ST(0))))
        croak("txn: called on something that is not a live EV::Etcd client");
    for (l = 0; l < 3; l++)
        lists[l] = items > l + 1 ? ST(l + 1) : NULL;
    cb = items > 4 ? ST(4) : NULL;
    check_fork(aTHX_ c);
    need_cb(aTHX_ cb, "txn");
    pb_init(aTHX_ &b);
    for (l = 0; l < 3; l++) {
        AV *av = need_array(aTHX_ lists[l], "txn", names[l]);
        for (i = 0; i <= av_len(av); i++) {
            SV **e = av_fetch(av, i, 0);
            pb_buf sub;
            char what[40];
            snprintf(what, sizeof what, "%s[%d]", names[l], (int)i);
            pb_init(aTHX_ &sub);
            if (!e) croak("txn: %s is undefined", what);
            if (l == 0)
                encode_compare(aTHX_ &sub, need_hash(aTHX_ *e, "txn", what), (I32)i);
            else
                encode_op(aTHX_ &sub, need_hash(aTHX_ *e, "txn", what), names[l], (I32)i);
            pb_msg(aTHX_ &b, list_field[l], &sub);
        }
    }
    start_call(aTHX_ c, EVETCD_KV_METHOD_TXN, &b, cb, NULL);
    /* txn reaches this through goto &_txn, after which perl leaves an
     * XSUB's return list as it is even in scalar context (and GIMME_V
     * reports the wrong context): return exactly one value, or
     * `my $x = $etcd->txn(...)` corrupts the caller's stack (t/48). */
    XSRETURN_UNDEF;

void
compact(EV::Etcd c, SV *revision = NULL, ...)
  PREINIT:
    pb_buf b;
    SV *cb;
    HV *opts;
    int physical = 0;
  CODE:
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ "compact", &ST(2), items - 2, &cb);
    OPT_BEGIN(opts)
        if (OPT_IS("timeout")) continue; /* start_call reads it */
        if (OPT_IS("physical")) physical = opt_true(aTHX_ v);
        else unknown_option(aTHX_ "compact", k, klen);
    OPT_END
    pb_init(aTHX_ &b);
    pb_int(aTHX_ &b, PB_CompactionRequest_revision, need_int(aTHX_ revision, "compact", "revision"));
    pb_int(aTHX_ &b, PB_CompactionRequest_physical, physical);
    start_call(aTHX_ c, EVETCD_KV_METHOD_COMPACT, &b, cb, opts);
