# Maintenance service: status, alarm, defragment, hash, hash_kv, move_leader,
# downgrade, and the stream behind snapshot (lib/EV/Etcd.pm writes its
# pieces).

void
status(EV::Etcd c, ...)
  ALIAS:
    defragment = 1
    hash = 2
  PREINIT:
    evetcd_method m;
    const char *method;
    pb_buf b;
    SV *cb;
    HV *opts;
  CODE:
    m = ix == 1 ? EVETCD_MAINTENANCE_METHOD_DEFRAGMENT : ix == 2 ? EVETCD_MAINTENANCE_METHOD_HASH : EVETCD_MAINTENANCE_METHOD_STATUS;
    method = evetcd_method_name(m);
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ method, &ST(1), items - 1, &cb);
    member_options(aTHX_ opts, method);
    pb_init(aTHX_ &b);
    start_member_call(aTHX_ c, m, &b, cb, opts);

void
alarm(EV::Etcd c, SV *action = NULL, ...)
  PREINIT:
    pb_buf b;
    SV *cb;
    HV *opts;
    STRLEN al;
    const char *a;
    int act, kind = 0;
    U64 member = 0;
  CODE:
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ "alarm", &ST(2), items - 2, &cb);
    a = need_bytes(aTHX_ action, &al, "alarm", "action");
    if (al == 3 && strncasecmp(a, "GET", 3) == 0) act = PB_AlarmRequest_AlarmAction_GET;
    else if (al == 8 && strncasecmp(a, "ACTIVATE", 8) == 0) act = PB_AlarmRequest_AlarmAction_ACTIVATE;
    else if (al == 10 && strncasecmp(a, "DEACTIVATE", 10) == 0) act = PB_AlarmRequest_AlarmAction_DEACTIVATE;
    else croak("alarm: unknown action '%s' (expected GET, ACTIVATE or DEACTIVATE)", a);
    OPT_BEGIN(opts)
        if (OPT_IS("timeout")) continue; /* start_call reads it */
        if (OPT_IS("member_id")) member = SvOK(v) ? need_uint(aTHX_ v, "alarm", "member_id") : 0;
        else if (OPT_IS("alarm")) {
            STRLEN tl;
            const char *t = need_bytes(aTHX_ v, &tl, "alarm", "alarm");
            if (tl == 4 && strncasecmp(t, "NONE", 4) == 0) kind = PB_etcdserverpb_AlarmType_NONE;
            else if (tl == 7 && strncasecmp(t, "NOSPACE", 7) == 0) kind = PB_etcdserverpb_AlarmType_NOSPACE;
            else if (tl == 7 && strncasecmp(t, "CORRUPT", 7) == 0) kind = PB_etcdserverpb_AlarmType_CORRUPT;
            else croak("alarm: unknown alarm '%s' (expected NONE, NOSPACE or CORRUPT)", t);
        }
        else unknown_option(aTHX_ "alarm", k, klen);
    OPT_END
    pb_init(aTHX_ &b);
    pb_int(aTHX_ &b, PB_AlarmRequest_action, act);
    pb_uint(aTHX_ &b, PB_AlarmRequest_memberID, member);
    pb_int(aTHX_ &b, PB_AlarmRequest_alarm, kind);
    start_call(aTHX_ c, EVETCD_MAINTENANCE_METHOD_ALARM, &b, cb, opts);

void
hash_kv(EV::Etcd c, ...)
  PREINIT:
    pb_buf b;
    SV *cb;
    HV *opts;
    I64 rev = 0;
    int first = 1;
  CODE:
    check_fork(aTHX_ c);
    /* hash_kv([$revision,] [\%opt,] $cb): of two leading arguments the
     * first is the revision; of one, a hash is the options */
    if (items >= 4 || (items == 3 && !(SvROK(ST(1)) && SvTYPE(SvRV(ST(1))) == SVt_PVHV))) {
        rev = need_int(aTHX_ ST(1), "hash_kv", "revision");
        first = 2;
    }
    opts = opts_and_cb(aTHX_ "hash_kv", &ST(first), items - first, &cb);
    member_options(aTHX_ opts, "hash_kv");
    pb_init(aTHX_ &b);
    pb_int(aTHX_ &b, PB_HashKVRequest_revision, rev);
    start_member_call(aTHX_ c, EVETCD_MAINTENANCE_METHOD_HASH_KV, &b, cb, opts);

SV *
_snapshot(EV::Etcd c, SV *cb)
  PREINIT:
    U64 id;
  CODE:
    check_fork(aTHX_ c);
    need_cb(aTHX_ cb, "snapshot");
    id = register_cb(aTHX_ c, cb);
    RETVAL = stream_started(aTHX_ c, ST(0), id, evetcd_snapshot(c->rs, id),
                            EVETCD_SNAPSHOT, "snapshot");
  OUTPUT:
    RETVAL

void
move_leader(EV::Etcd c, SV *target = NULL, SV *cb = NULL)
  CODE:
    call_with_id(aTHX_ c, EVETCD_MAINTENANCE_METHOD_MOVE_LEADER, cb, target, "target member id", PB_MoveLeaderRequest_targetID, 0);

void
downgrade(EV::Etcd c, SV *action = NULL, ...)
  PREINIT:
    pb_buf b;
    SV *cb;
    HV *opts;
    STRLEN al, vl = 0;
    const char *a, *version = NULL;
    int act, first = 2;
  CODE:
    check_fork(aTHX_ c);
    a = need_bytes(aTHX_ action, &al, "downgrade", "action");
    if (al == 8 && strncasecmp(a, "validate", 8) == 0) act = PB_DowngradeRequest_DowngradeAction_VALIDATE;
    else if (al == 6 && strncasecmp(a, "enable", 6) == 0) act = PB_DowngradeRequest_DowngradeAction_ENABLE;
    else if (al == 6 && strncasecmp(a, "cancel", 6) == 0) act = PB_DowngradeRequest_DowngradeAction_CANCEL;
    else croak("downgrade: unknown action '%s' (expected validate, enable or cancel)", a);
    /* downgrade($action, [$version,] [\%opt,] $cb): a plain scalar before
     * the options and the callback is the version */
    if (items >= 3 && !SvROK(ST(2))) {
        if (SvOK(ST(2)))
            version = need_bytes(aTHX_ ST(2), &vl, "downgrade", "version");
        first = 3;
    }
    if (act != PB_DowngradeRequest_DowngradeAction_CANCEL && !vl)
        croak("downgrade: %s needs the target version (such as '3.4')", a);
    opts = opts_and_cb(aTHX_ "downgrade", &ST(first), items - first, &cb);
    OPT_BEGIN(opts)
        if (OPT_IS("timeout")) continue; /* start_call reads it */
        unknown_option(aTHX_ "downgrade", k, klen);
    OPT_END
    pb_init(aTHX_ &b);
    pb_int(aTHX_ &b, PB_DowngradeRequest_action, act);
    if (vl)
        pb_bytes(aTHX_ &b, PB_DowngradeRequest_version, version, vl);
    start_call(aTHX_ c, EVETCD_MAINTENANCE_METHOD_DOWNGRADE, &b, cb, opts);
