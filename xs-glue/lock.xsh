# Lock service: lock, unlock.

void
lock(EV::Etcd c, SV *name = NULL, SV *lease = NULL, ...)
  PREINIT:
    pb_buf b;
    STRLEN n;
    const char *s;
    SV *cb;
    HV *opts;
  CODE:
    check_fork(aTHX_ c);
    opts = wait_opts(aTHX_ "lock", &ST(3), items - 3, &cb);
    s = need_bytes(aTHX_ name, &n, "lock", "name");
    pb_init(aTHX_ &b);
    pb_bytes(aTHX_ &b, PB_LockRequest_name, s, n);
    pb_int(aTHX_ &b, PB_LockRequest_lease, need_nonneg_int(aTHX_ lease, "lock", "lease id"));
    start_call(aTHX_ c, EVETCD_LOCK_METHOD_LOCK, &b, cb, opts);

void
unlock(EV::Etcd c, SV *key = NULL, SV *cb = NULL)
  PREINIT:
    static const char *const names[] = { "key" };
    static const int fields[] = { PB_UnlockRequest_key };
  CODE:
    call_with_strings(aTHX_ c, EVETCD_LOCK_METHOD_UNLOCK, cb, 1, &ST(1), names, fields);
