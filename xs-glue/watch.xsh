# Watch service: watch (cancel lives in EV::Etcd::Watch, lib/EV/Etcd.pm).

SV *
watch(EV::Etcd c, SV *key = NULL, ...)
  PREINIT:
    evetcd_watch_request req;
    SV *cb;
    HV *opts;
    STRLEN klen;
    const char *k0;
    int prefix = 0, prev_kv = 0, progress = 0, reconnect = 1, fragment = 1;
    int no_put = 0, no_delete = 0, resync = 0;
    SV *range_end = NULL;
    I64 start = 0, watch_id = 0;
    U64 id;
  CODE:
    check_fork(aTHX_ c);
    opts = opts_and_cb(aTHX_ "watch", &ST(2), items - 2, &cb);
    k0 = need_bytes(aTHX_ key, &klen, "watch", "key");
    OPT_BEGIN(opts)
        if (OPT_IS("prefix")) prefix = opt_true(aTHX_ v);
        else if (OPT_IS("range_end")) range_end = SvOK(v) ? v : NULL;
        else if (OPT_IS("start_revision")) start = need_nonneg_int(aTHX_ v, "watch", "start_revision");
        else if (OPT_IS("prev_kv")) prev_kv = opt_true(aTHX_ v);
        else if (OPT_IS("progress_notify")) progress = opt_true(aTHX_ v);
        else if (OPT_IS("watch_id")) watch_id = SvOK(v) ? need_nonneg_int(aTHX_ v, "watch", "watch_id") : 0;
        else if (OPT_IS("auto_reconnect")) reconnect = opt_true(aTHX_ v);
        else if (OPT_IS("no_put")) no_put = opt_true(aTHX_ v);
        else if (OPT_IS("no_delete")) no_delete = opt_true(aTHX_ v);
        else if (OPT_IS("fragment")) fragment = opt_true(aTHX_ v);
        else if (OPT_IS("on_compacted")) {
            STRLEN n = 0;
            const char *s = NULL;
            SvGETMAGIC(v);
            if (SvOK(v) && !SvROK(v)) s = SvPV_nomg(v, n);
            if (!SvOK(v) || (s && n == 5 && memEQ(s, "error", 5))) resync = 0;
            else if (s && n == 6 && memEQ(s, "resync", 6)) resync = 1;
            else croak("watch: on_compacted must be 'resync' or 'error', got %s%s%s",
                       s ? "'" : "", s ? s : "a reference", s ? "'" : "");
        }
        else unknown_option(aTHX_ "watch", k, klen);
    OPT_END
    key_range(aTHX_ &k0, &klen, prefix, range_end, "watch", &req.range_end, &req.range_end_len);
    req.key = k0;
    req.key_len = klen;
    req.start_revision = start;
    req.watch_id = watch_id;
    req.progress_notify = progress;
    req.prev_kv = prev_kv;
    req.fragment = fragment;
    req.no_put = no_put;
    req.no_delete = no_delete;
    id = register_cb(aTHX_ c, cb);
    RETVAL = stream_started(aTHX_ c, ST(0), id, evetcd_watch(c->rs, id, &req, reconnect, resync),
                            EVETCD_WATCH, "watch");
  OUTPUT:
    RETVAL

void
_watch_progress(EV::Etcd c, UV id)
  CODE:
    /* (EV::Etcd::Watch::progress has checked the handle) */
    check_fork(aTHX_ c);
    {
        int rc = evetcd_watch_progress(c->rs, (U64)id);
        if (rc != EVETCD_STARTED)
            start_refused(aTHX_ "progress", rc, NULL);
    }
