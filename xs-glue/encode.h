/* Request encoders shared by the KV methods and txn operations. Field
 * numbers and enum values come from pb_fields.h, generated from proto/. */
#ifndef EVETCD_ENCODE_H
#define EVETCD_ENCODE_H

static int opt_true(pTHX_ SV *v) { return SvTRUE(v) ? 1 : 0; }

static int parse_sort_order(pTHX_ SV *v, const char *method)
{
    STRLEN n;
    const char *s = need_bytes(aTHX_ v, &n, method, "sort_order");
    if (n == 4 && strncasecmp(s, "none", 4) == 0) return PB_RangeRequest_SortOrder_NONE;
    if (n == 6 && strncasecmp(s, "ascend", 6) == 0) return PB_RangeRequest_SortOrder_ASCEND;
    if (n == 7 && strncasecmp(s, "descend", 7) == 0) return PB_RangeRequest_SortOrder_DESCEND;
    croak("%s: unknown sort_order '%s' (expected ascend, descend or none)", method, s);
    return 0;
}

static int parse_sort_target(pTHX_ SV *v, const char *method)
{
    static const struct { const char *name; int value; } targets[] = {
        { "key", PB_RangeRequest_SortTarget_KEY }, { "version", PB_RangeRequest_SortTarget_VERSION },
        { "create", PB_RangeRequest_SortTarget_CREATE }, { "mod", PB_RangeRequest_SortTarget_MOD },
        { "value", PB_RangeRequest_SortTarget_VALUE }
    };
    STRLEN n;
    int i;
    const char *s = need_bytes(aTHX_ v, &n, method, "sort_target");
    for (i = 0; i < 5; i++)
        if (n == strlen(targets[i].name) && strncasecmp(s, targets[i].name, n) == 0)
            return targets[i].value;
    croak("%s: unknown sort_target '%s' (expected key, version, create, mod or value)", method, s);
    return 0;
}

/* RangeRequest. In a txn operation the key sits in the same hash (skip_key). */
static void encode_range(pTHX_ pb_buf *b, const char *method, SV *key_sv, HV *opts, int skip_key)
{
    STRLEN klen;
    const char *key = need_bytes(aTHX_ key_sv, &klen, method, "key");
    int prefix = 0;
    SV *range_end = NULL;
    I64 limit = 0, revision = 0, minmod = 0, maxmod = 0, mincr = 0, maxcr = 0;
    int keys_only = 0, count_only = 0, serializable = 0, order = 0, target = 0;

    OPT_BEGIN(opts)
        if (skip_key && OPT_IS("key")) continue;
        if (!skip_key && OPT_IS("timeout")) continue; /* start_call reads it */
        if (OPT_IS("prefix")) prefix = opt_true(aTHX_ v);
        else if (OPT_IS("range_end")) range_end = SvOK(v) ? v : NULL;
        else if (OPT_IS("limit")) limit = need_nonneg_int(aTHX_ v, method, "limit");
        else if (OPT_IS("revision")) revision = need_int(aTHX_ v, method, "revision");
        else if (OPT_IS("keys_only")) keys_only = opt_true(aTHX_ v);
        else if (OPT_IS("count_only")) count_only = opt_true(aTHX_ v);
        else if (OPT_IS("serializable")) serializable = opt_true(aTHX_ v);
        else if (OPT_IS("sort_order")) order = parse_sort_order(aTHX_ v, method);
        else if (OPT_IS("sort_target")) target = parse_sort_target(aTHX_ v, method);
        else if (OPT_IS("min_mod_revision")) minmod = need_int(aTHX_ v, method, "min_mod_revision");
        else if (OPT_IS("max_mod_revision")) maxmod = need_int(aTHX_ v, method, "max_mod_revision");
        else if (OPT_IS("min_create_revision")) mincr = need_int(aTHX_ v, method, "min_create_revision");
        else if (OPT_IS("max_create_revision")) maxcr = need_int(aTHX_ v, method, "max_create_revision");
        else unknown_option(aTHX_ method, k, klen);
    OPT_END

    put_key_range(aTHX_ b, key, klen, prefix, range_end, method);
    pb_int(aTHX_ b, PB_RangeRequest_limit, limit);
    pb_int(aTHX_ b, PB_RangeRequest_revision, revision);
    pb_int(aTHX_ b, PB_RangeRequest_sort_order, order);
    pb_int(aTHX_ b, PB_RangeRequest_sort_target, target);
    pb_int(aTHX_ b, PB_RangeRequest_serializable, serializable);
    pb_int(aTHX_ b, PB_RangeRequest_keys_only, keys_only);
    pb_int(aTHX_ b, PB_RangeRequest_count_only, count_only);
    pb_int(aTHX_ b, PB_RangeRequest_min_mod_revision, minmod);
    pb_int(aTHX_ b, PB_RangeRequest_max_mod_revision, maxmod);
    pb_int(aTHX_ b, PB_RangeRequest_min_create_revision, mincr);
    pb_int(aTHX_ b, PB_RangeRequest_max_create_revision, maxcr);
}

/* PutRequest; in a txn operation key and value sit in the options hash. */
static void encode_put(pTHX_ pb_buf *b, const char *method, SV *key_sv, SV *value_sv, HV *opts,
                       int skip_kv)
{
    STRLEN klen, vlen = 0;
    const char *key = need_bytes(aTHX_ key_sv, &klen, method, "key");
    const char *value = NULL;
    I64 lease = 0;
    int prev_kv = 0, ignore_value = 0, ignore_lease = 0;

    OPT_BEGIN(opts)
        if (skip_kv && (OPT_IS("key") || OPT_IS("value"))) continue;
        if (!skip_kv && OPT_IS("timeout")) continue;
        if (OPT_IS("lease")) lease = SvOK(v) ? need_nonneg_int(aTHX_ v, method, "lease") : 0;
        else if (OPT_IS("prev_kv")) prev_kv = opt_true(aTHX_ v);
        else if (OPT_IS("ignore_value")) ignore_value = opt_true(aTHX_ v);
        else if (OPT_IS("ignore_lease")) ignore_lease = opt_true(aTHX_ v);
        else unknown_option(aTHX_ method, k, klen);
    OPT_END

    /* With ignore_value etcd keeps the stored value and refuses one sent along. */
    if (!ignore_value)
        value = need_bytes(aTHX_ value_sv ? value_sv : &PL_sv_undef, &vlen, method, "value");
    pb_bytes(aTHX_ b, PB_PutRequest_key, key, klen);
    if (value) pb_bytes(aTHX_ b, PB_PutRequest_value, value, vlen);
    pb_int(aTHX_ b, PB_PutRequest_lease, lease);
    pb_int(aTHX_ b, PB_PutRequest_prev_kv, prev_kv);
    pb_int(aTHX_ b, PB_PutRequest_ignore_value, ignore_value);
    pb_int(aTHX_ b, PB_PutRequest_ignore_lease, ignore_lease);
}

/* DeleteRangeRequest. */
static void encode_delete(pTHX_ pb_buf *b, const char *method, SV *key_sv, HV *opts, int skip_key)
{
    STRLEN klen;
    const char *key = need_bytes(aTHX_ key_sv, &klen, method, "key");
    int prefix = 0, prev_kv = 0;
    SV *range_end = NULL;

    OPT_BEGIN(opts)
        if (skip_key && OPT_IS("key")) continue;
        if (!skip_key && OPT_IS("timeout")) continue;
        if (OPT_IS("prefix")) prefix = opt_true(aTHX_ v);
        else if (OPT_IS("range_end")) range_end = SvOK(v) ? v : NULL;
        else if (OPT_IS("prev_kv")) prev_kv = opt_true(aTHX_ v);
        else unknown_option(aTHX_ method, k, klen);
    OPT_END

    put_key_range(aTHX_ b, key, klen, prefix, range_end, method);
    pb_int(aTHX_ b, PB_DeleteRangeRequest_prev_kv, prev_kv);
}

/* Compare: key, target, result and the target's expected value. Index i
 * of these tables is CompareTarget i. */
static void encode_compare(pTHX_ pb_buf *b, HV *cmp, I32 idx)
{
    static const char *targets[] = { "version", "create", "mod", "value", "lease" };
    static const char *fields[] = { "version", "create_revision", "mod_revision", "value", "lease" };
    static const int target_field[] = {
        PB_Compare_version, PB_Compare_create_revision, PB_Compare_mod_revision, PB_Compare_value,
        PB_Compare_lease
    };
    char what[64];
    SV **key = hv_fetchs(cmp, "key", 0), **tgt = hv_fetchs(cmp, "target", 0);
    SV **res = hv_fetchs(cmp, "result", 0), **want, **rend;
    STRLEN klen, tlen;
    const char *kp, *t;
    int target = -1, result = 0, i;

    snprintf(what, sizeof what, "compare[%d] key", (int)idx);
    if (!key) croak("txn: compare[%d] has no key", (int)idx);
    kp = need_bytes(aTHX_ *key, &klen, "txn", what);
    if (!tgt) croak("txn: compare[%d] has no target", (int)idx);
    t = need_bytes(aTHX_ *tgt, &tlen, "txn", "compare target");
    for (i = 0; i < 5; i++)
        if ((tlen == strlen(targets[i]) && strncasecmp(t, targets[i], tlen) == 0)
            || (tlen == strlen(fields[i]) && strncasecmp(t, fields[i], tlen) == 0))
            target = i;
    if (target < 0)
        croak("txn: compare[%d]: unknown target '%s' (expected value, version, create, mod or lease)",
              (int)idx, t);
    if (res && SvOK(*res)) {
        STRLEN rl;
        const char *r = need_bytes(aTHX_ *res, &rl, "txn", "compare result");
        if ((rl == 1 && *r == '=') || (rl == 2 && memEQ(r, "==", 2)) || (rl == 5 && strncasecmp(r, "EQUAL", 5) == 0)) result = PB_Compare_CompareResult_EQUAL;
        else if ((rl == 1 && *r == '>') || (rl == 7 && strncasecmp(r, "GREATER", 7) == 0)) result = PB_Compare_CompareResult_GREATER;
        else if ((rl == 1 && *r == '<') || (rl == 4 && strncasecmp(r, "LESS", 4) == 0)) result = PB_Compare_CompareResult_LESS;
        else if ((rl == 2 && memEQ(r, "!=", 2)) || (rl == 9 && strncasecmp(r, "NOT_EQUAL", 9) == 0)) result = PB_Compare_CompareResult_NOT_EQUAL;
        else croak("txn: compare[%d]: unknown result '%s' (expected =, !=, < or >)", (int)idx, r);
    }
    want = hv_fetch(cmp, fields[target], (I32)strlen(fields[target]), 0);
    if (!want)
        croak("txn: compare[%d] on target '%s' needs a '%s' field", (int)idx, targets[target], fields[target]);

    pb_int(aTHX_ b, PB_Compare_result, result);
    pb_int(aTHX_ b, PB_Compare_target, target);
    pb_bytes(aTHX_ b, PB_Compare_key, kp, klen);
    snprintf(what, sizeof what, "compare[%d] %s", (int)idx, fields[target]);
    if (target == PB_Compare_CompareTarget_VALUE) {
        STRLEN vl;
        const char *vp = need_bytes(aTHX_ *want, &vl, "txn", what);
        pb_bytes_always(aTHX_ b, target_field[target], vp, vl);
    } else {
        pb_int_always(aTHX_ b, target_field[target], need_int(aTHX_ *want, "txn", what));
    }
    rend = hv_fetchs(cmp, "range_end", 0);
    if (rend && SvOK(*rend)) {
        STRLEN rl;
        const char *rp = need_bytes(aTHX_ *rend, &rl, "txn", "compare range_end");
        pb_bytes(aTHX_ b, PB_Compare_range_end, rp, rl);
    }
}

/* RequestOp: one of request_range, request_put, request_delete_range;
 * `kind` is the field of the one given. */
static void encode_op(pTHX_ pb_buf *b, HV *op, const char *list, I32 idx)
{
    static const struct { const char *name; int kind; } names[] = {
        { "request_range", PB_RequestOp_request_range }, { "range", PB_RequestOp_request_range },
        { "request_put", PB_RequestOp_request_put }, { "put", PB_RequestOp_request_put },
        { "request_delete_range", PB_RequestOp_request_delete_range },
        { "delete", PB_RequestOp_request_delete_range },
    };
    SV **found = NULL;
    HV *inner;
    SV **key;
    int kind = 0, i;
    pb_buf sub;

    pb_init(aTHX_ &sub);
    for (i = 0; i < 6; i++) {
        SV **s = hv_fetch(op, names[i].name, (I32)strlen(names[i].name), 0);
        if (!s) continue;
        if (found)
            croak("txn: %s[%d] must hold exactly one operation", list, (int)idx);
        found = s;
        kind = names[i].kind;
    }
    if (!found)
        croak("txn: %s[%d] needs one of request_put, request_delete_range, request_range (or put, delete, range)",
              list, (int)idx);
    inner = need_hash(aTHX_ *found, "txn", "an operation");
    key = hv_fetchs(inner, "key", 0);
    if (!key)
        croak("txn: %s[%d] has no key", list, (int)idx);
    switch (kind) {
    case PB_RequestOp_request_range: encode_range(aTHX_ &sub, "txn", *key, inner, 1); break;
    case PB_RequestOp_request_put: {
        SV **val = hv_fetchs(inner, "value", 0);
        encode_put(aTHX_ &sub, "txn", *key, val ? *val : NULL, inner, 1);
        break;
    }
    default: encode_delete(aTHX_ &sub, "txn", *key, inner, 1); break;
    }
    pb_msg(aTHX_ b, kind, &sub);
}

/* LeaderKey from the leader hash that election_campaign returned. */
static void encode_leader_key(pTHX_ pb_buf *b, int field, SV *leader, const char *method)
{
    HV *h = need_hash(aTHX_ leader, method, "leader (the hash from election_campaign)");
    SV **name = hv_fetchs(h, "name", 0), **key = hv_fetchs(h, "key", 0);
    SV **rev = hv_fetchs(h, "rev", 0), **lease = hv_fetchs(h, "lease", 0);
    STRLEN nl, kl;
    const char *np, *kp;
    pb_buf sub;
    if (!name || !key)
        croak("%s: leader must have name and key (the hash from election_campaign)", method);
    np = need_bytes(aTHX_ *name, &nl, method, "leader name");
    kp = need_bytes(aTHX_ *key, &kl, method, "leader key");
    pb_init(aTHX_ &sub);
    pb_bytes(aTHX_ &sub, PB_LeaderKey_name, np, nl);
    pb_bytes(aTHX_ &sub, PB_LeaderKey_key, kp, kl);
    if (rev) pb_int(aTHX_ &sub, PB_LeaderKey_rev, need_int(aTHX_ *rev, method, "leader rev"));
    if (lease) pb_int(aTHX_ &sub, PB_LeaderKey_lease, need_int(aTHX_ *lease, method, "leader lease"));
    pb_msg(aTHX_ b, field, &sub);
}

/* A repeated string field from an array of URLs. */
static void encode_urls(pTHX_ pb_buf *b, int field, SV *urls, const char *method)
{
    AV *av = need_array(aTHX_ urls, method, "peer_urls");
    SSize_t i, n = av_len(av) + 1;
    if (n < 1)
        croak("%s: peer_urls must not be empty", method);
    for (i = 0; i < n; i++) {
        SV **u = av_fetch(av, i, 0);
        STRLEN ul;
        const char *up = need_bytes(aTHX_ u ? *u : &PL_sv_undef, &ul, method, "peer URL");
        pb_bytes_always(aTHX_ b, field, up, ul);
    }
}

#endif
