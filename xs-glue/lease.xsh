# Lease service: grant, revoke, keepalive, time_to_live, leases.

void
lease_grant(EV::Etcd c, SV *ttl = NULL, SV *cb = NULL)
  PREINIT:
    pb_buf b;
    I64 t;
  CODE:
    check_fork(aTHX_ c);
    NEED_CB(cb);
    t = need_int(aTHX_ ttl, "lease_grant", "ttl");
    if (t <= 0) croak("lease_grant: ttl must be a positive number of seconds");
    pb_init(aTHX_ &b);
    pb_int(aTHX_ &b, PB_LeaseGrantRequest_TTL, t);
    start_call(aTHX_ c, EVETCD_LEASE_METHOD_LEASE_GRANT, &b, cb, NULL);

void
lease_revoke(EV::Etcd c, SV *lease = NULL, SV *cb = NULL)
  CODE:
    call_with_id(aTHX_ c, EVETCD_LEASE_METHOD_LEASE_REVOKE, cb, lease, "lease id", PB_LeaseRevokeRequest_ID, 1);

void
lease_keepalive_once(EV::Etcd c, SV *lease = NULL, SV *cb = NULL)
  CODE:
    call_with_id(aTHX_ c, EVETCD_LEASE_METHOD_LEASE_KEEPALIVE_ONCE, cb, lease, "lease id", PB_LeaseKeepAliveRequest_ID, 1);

void
lease_time_to_live(EV::Etcd c, SV *lease = NULL, ...)
  PREINIT:
    pb_buf b;
    SV *cb;
    HV *opts;
    int keys = 0;
  CODE:
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ "lease_time_to_live", &ST(2), items - 2, &cb);
    OPT_BEGIN(opts)
        if (OPT_IS("timeout")) continue; /* start_call reads it */
        if (OPT_IS("keys")) keys = opt_true(aTHX_ v);
        else unknown_option(aTHX_ "lease_time_to_live", k, klen);
    OPT_END
    pb_init(aTHX_ &b);
    pb_int(aTHX_ &b, PB_LeaseTimeToLiveRequest_ID, need_nonneg_int(aTHX_ lease, "lease_time_to_live", "lease id"));
    pb_int(aTHX_ &b, PB_LeaseTimeToLiveRequest_keys, keys);
    start_call(aTHX_ c, EVETCD_LEASE_METHOD_LEASE_TIME_TO_LIVE, &b, cb, opts);

void
lease_leases(EV::Etcd c, SV *cb = NULL)
  CODE:
    call_with_strings(aTHX_ c, EVETCD_LEASE_METHOD_LEASE_LEASES, cb, 0, NULL, NULL, NULL);

SV *
lease_keepalive(EV::Etcd c, SV *lease = NULL, ...)
  PREINIT:
    SV *cb;
    HV *opts;
    int reconnect = 1;
    I64 lid;
    U64 id;
  CODE:
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ "lease_keepalive", &ST(2), items - 2, &cb);
    lid = need_nonneg_int(aTHX_ lease, "lease_keepalive", "lease id");
    if (lid == 0) croak("lease_keepalive: lease id must not be 0");
    OPT_BEGIN(opts)
        if (OPT_IS("auto_reconnect")) reconnect = opt_true(aTHX_ v);
        else unknown_option(aTHX_ "lease_keepalive", k, klen);
    OPT_END
    id = register_cb(aTHX_ c, cb);
    RETVAL = stream_started(aTHX_ c, ST(0), id, evetcd_keepalive(c->rs, id, lid, reconnect),
                            EVETCD_KEEPALIVE, "lease_keepalive");
  OUTPUT:
    RETVAL
