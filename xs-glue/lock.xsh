# Lock service: lock, unlock.

void
lock(EV::Etcd c, SV *name = NULL, SV *lease = NULL, SV *cb = NULL)
  PREINIT:
    pb_buf b;
    STRLEN n;
    const char *s;
  CODE:
    check_fork(aTHX_ c);
    need_cb(aTHX_ cb);
    s = need_bytes(aTHX_ name, &n, "lock", "name");
    pb_init(aTHX_ &b);
    pb_bytes(aTHX_ &b, 1, s, n);
    pb_int(aTHX_ &b, 2, need_nonneg_int(aTHX_ lease, "lock", "lease id"));
    start_call(aTHX_ c, "lock", &b, cb);

void
unlock(EV::Etcd c, SV *key = NULL, SV *cb = NULL)
  PREINIT:
    static const char *const names[] = { "key" };
  CODE:
    call_with_strings(aTHX_ c, "unlock", cb, 1, &ST(1), names);
