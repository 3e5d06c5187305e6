# Election service: campaign, leader, proclaim, resign, observe.

void
election_campaign(EV::Etcd c, SV *name = NULL, SV *lease = NULL, SV *value = NULL, ...)
  PREINIT:
    pb_buf b;
    STRLEN n, vl;
    const char *s, *val;
    SV *cb;
    HV *opts;
  CODE:
    check_fork(aTHX_ c);
    opts = wait_opts(aTHX_ "election_campaign", &ST(4), items - 4, &cb);
    s = need_bytes(aTHX_ name, &n, "election_campaign", "name");
    val = need_bytes(aTHX_ value, &vl, "election_campaign", "value");
    pb_init(aTHX_ &b);
    pb_bytes(aTHX_ &b, PB_CampaignRequest_name, s, n);
    pb_int(aTHX_ &b, PB_CampaignRequest_lease, need_nonneg_int(aTHX_ lease, "election_campaign", "lease id"));
    pb_bytes(aTHX_ &b, PB_CampaignRequest_value, val, vl);
    start_call(aTHX_ c, EVETCD_ELECTION_METHOD_ELECTION_CAMPAIGN, &b, cb, opts);

void
election_leader(EV::Etcd c, SV *name = NULL, SV *cb = NULL)
  PREINIT:
    static const char *const names[] = { "name" };
    static const int fields[] = { PB_LeaderRequest_name };
  CODE:
    call_with_strings(aTHX_ c, EVETCD_ELECTION_METHOD_ELECTION_LEADER, cb, 1, &ST(1), names, fields);

void
election_proclaim(EV::Etcd c, SV *leader = NULL, SV *value = NULL, SV *cb = NULL)
  PREINIT:
    pb_buf b;
    STRLEN vl;
    const char *val;
  CODE:
    check_fork(aTHX_ c);
    NEED_CB(cb);
    pb_init(aTHX_ &b);
    encode_leader_key(aTHX_ &b, PB_ProclaimRequest_leader, leader, "election_proclaim");
    val = need_bytes(aTHX_ value, &vl, "election_proclaim", "value");
    pb_bytes(aTHX_ &b, PB_ProclaimRequest_value, val, vl);
    start_call(aTHX_ c, EVETCD_ELECTION_METHOD_ELECTION_PROCLAIM, &b, cb, NULL);

void
election_resign(EV::Etcd c, SV *leader = NULL, SV *cb = NULL)
  PREINIT:
    pb_buf b;
  CODE:
    check_fork(aTHX_ c);
    NEED_CB(cb);
    pb_init(aTHX_ &b);
    encode_leader_key(aTHX_ &b, PB_ResignRequest_leader, leader, "election_resign");
    start_call(aTHX_ c, EVETCD_ELECTION_METHOD_ELECTION_RESIGN, &b, cb, NULL);

SV *
election_observe(EV::Etcd c, SV *name = NULL, ...)
  PREINIT:
    SV *cb;
    HV *opts;
    int reconnect = 1;
    STRLEN n;
    const char *s;
    U64 id;
  CODE:
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ "election_observe", &ST(2), items - 2, &cb);
    s = need_bytes(aTHX_ name, &n, "election_observe", "name");
    OPT_BEGIN(opts)
        if (OPT_IS("auto_reconnect")) reconnect = opt_true(aTHX_ v);
        else unknown_option(aTHX_ "election_observe", k, klen);
    OPT_END
    id = register_cb(aTHX_ c, cb);
    RETVAL = stream_started(aTHX_ c, ST(0), id, evetcd_observe(c->rs, id, s, n, reconnect),
                            EVETCD_OBSERVE, "election_observe");
  OUTPUT:
    RETVAL
