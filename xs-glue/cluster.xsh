# Cluster service: member_list, member_add, member_remove, member_update, member_promote.

void
member_list(EV::Etcd c, ...)
  PREINIT:
    pb_buf b;
    SV *cb;
    HV *opts;
    int linearizable = 0;
  CODE:
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ "member_list", &ST(1), items - 1, &cb);
    OPT_BEGIN(opts)
        if (OPT_IS("timeout")) continue; /* start_call reads it */
        if (OPT_IS("linearizable")) linearizable = opt_true(aTHX_ v);
        else unknown_option(aTHX_ "member_list", k, klen);
    OPT_END
    pb_init(aTHX_ &b);
    pb_int(aTHX_ &b, PB_MemberListRequest_linearizable, linearizable);
    start_call(aTHX_ c, EVETCD_CLUSTER_METHOD_MEMBER_LIST, &b, cb, opts);

void
member_add(EV::Etcd c, SV *peer_urls = NULL, ...)
  PREINIT:
    pb_buf b;
    SV *cb;
    HV *opts;
    int learner = 0;
  CODE:
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ "member_add", &ST(2), items - 2, &cb);
    OPT_BEGIN(opts)
        if (OPT_IS("timeout")) continue; /* start_call reads it */
        if (OPT_IS("is_learner")) learner = opt_true(aTHX_ v);
        else unknown_option(aTHX_ "member_add", k, klen);
    OPT_END
    pb_init(aTHX_ &b);
    encode_urls(aTHX_ &b, PB_MemberAddRequest_peerURLs, peer_urls, "member_add");
    pb_int(aTHX_ &b, PB_MemberAddRequest_isLearner, learner);
    start_call(aTHX_ c, EVETCD_CLUSTER_METHOD_MEMBER_ADD, &b, cb, opts);

void
member_remove(EV::Etcd c, SV *id = NULL, SV *cb = NULL)
  ALIAS:
    member_promote = 1
  CODE:
    call_with_id(aTHX_ c, ix ? EVETCD_CLUSTER_METHOD_MEMBER_PROMOTE : EVETCD_CLUSTER_METHOD_MEMBER_REMOVE, cb, id, "member id",
                 ix ? PB_MemberPromoteRequest_ID : PB_MemberRemoveRequest_ID, 0);

void
member_update(EV::Etcd c, SV *id = NULL, SV *peer_urls = NULL, SV *cb = NULL)
  PREINIT:
    pb_buf b;
  CODE:
    check_fork(aTHX_ c);
    NEED_CB(cb);
    pb_init(aTHX_ &b);
    pb_uint(aTHX_ &b, PB_MemberUpdateRequest_ID, need_uint(aTHX_ id, "member_update", "member id"));
    encode_urls(aTHX_ &b, PB_MemberUpdateRequest_peerURLs, peer_urls, "member_update");
    start_call(aTHX_ c, EVETCD_CLUSTER_METHOD_MEMBER_UPDATE, &b, cb, NULL);
