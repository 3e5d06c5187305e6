# Auth service: authentication switch, users, roles.

void
auth_enable(EV::Etcd c, SV *cb = NULL)
  ALIAS:
    auth_disable = 1
    auth_status = 2
    user_list = 3
    role_list = 4
  PREINIT:
    static const evetcd_method methods[] = {
        EVETCD_AUTH_METHOD_AUTH_ENABLE, EVETCD_AUTH_METHOD_AUTH_DISABLE, EVETCD_AUTH_METHOD_AUTH_STATUS, EVETCD_AUTH_METHOD_USER_LIST, EVETCD_AUTH_METHOD_ROLE_LIST
    };
  CODE:
    call_with_strings(aTHX_ c, methods[ix], cb, 0, NULL, NULL, NULL);

void
user_get(EV::Etcd c, SV *name = NULL, SV *cb = NULL)
  ALIAS:
    user_delete = 1
    role_add = 2
    role_get = 3
    role_delete = 4
  PREINIT:
    static const evetcd_method methods[] = {
        EVETCD_AUTH_METHOD_USER_GET, EVETCD_AUTH_METHOD_USER_DELETE, EVETCD_AUTH_METHOD_ROLE_ADD, EVETCD_AUTH_METHOD_ROLE_GET, EVETCD_AUTH_METHOD_ROLE_DELETE
    };
    static const char *const user[] = { "username" }, *const role[] = { "role name" };
    static const int fields[][1] = {
        { PB_AuthUserGetRequest_name }, { PB_AuthUserDeleteRequest_name },
        { PB_AuthRoleAddRequest_name }, { PB_AuthRoleGetRequest_role },
        { PB_AuthRoleDeleteRequest_role }
    };
  CODE:
    PERL_UNUSED_VAR(name);
    call_with_strings(aTHX_ c, methods[ix], cb, 1, &ST(1), ix < 2 ? user : role, fields[ix]);

void
authenticate(EV::Etcd c, SV *first = NULL, SV *second = NULL, SV *cb = NULL)
  ALIAS:
    user_add = 1
    user_change_password = 2
    user_grant_role = 3
    user_revoke_role = 4
  PREINIT:
    static const evetcd_method methods[] = {
        EVETCD_AUTH_METHOD_AUTHENTICATE, EVETCD_AUTH_METHOD_USER_ADD, EVETCD_AUTH_METHOD_USER_CHANGE_PASSWORD, EVETCD_AUTH_METHOD_USER_GRANT_ROLE, EVETCD_AUTH_METHOD_USER_REVOKE_ROLE
    };
    static const char *const password[] = { "username", "password" };
    static const char *const role[] = { "username", "role name" };
    static const int fields[][2] = {
        { PB_AuthenticateRequest_name, PB_AuthenticateRequest_password },
        { PB_AuthUserAddRequest_name, PB_AuthUserAddRequest_password },
        { PB_AuthUserChangePasswordRequest_name, PB_AuthUserChangePasswordRequest_password },
        { PB_AuthUserGrantRoleRequest_user, PB_AuthUserGrantRoleRequest_role },
        { PB_AuthUserRevokeRoleRequest_name, PB_AuthUserRevokeRoleRequest_role }
    };
  CODE:
    PERL_UNUSED_VAR(first);
    PERL_UNUSED_VAR(second);
    call_with_strings(aTHX_ c, methods[ix], cb, 2, &ST(1), ix < 3 ? password : role, fields[ix]);

void
role_grant_permission(EV::Etcd c, SV *role = NULL, SV *perm_type = NULL, SV *key = NULL, SV *range_end = NULL, SV *cb = NULL)
  PREINIT:
    pb_buf b, perm;
    STRLEN rl, tl, kl, el = 0;
    const char *r, *t, *k, *e = NULL;
    int type;
  CODE:
    check_fork(aTHX_ c);
    NEED_CB(cb);
    r = need_bytes(aTHX_ role, &rl, "role_grant_permission", "role name");
    t = need_bytes(aTHX_ perm_type, &tl, "role_grant_permission", "perm_type");
    if (tl == 4 && strncasecmp(t, "READ", 4) == 0) type = PB_Permission_Type_READ;
    else if (tl == 5 && strncasecmp(t, "WRITE", 5) == 0) type = PB_Permission_Type_WRITE;
    else if (tl == 9 && strncasecmp(t, "READWRITE", 9) == 0) type = PB_Permission_Type_READWRITE;
    else croak("role_grant_permission: unknown perm_type '%s' (expected READ, WRITE or READWRITE)", t);
    k = need_bytes(aTHX_ key, &kl, "role_grant_permission", "key");
    SvGETMAGIC(range_end);
    if (SvOK(range_end))
        e = need_bytes(aTHX_ range_end, &el, "role_grant_permission", "range_end");
    pb_init(aTHX_ &perm);
    pb_int(aTHX_ &perm, PB_Permission_permType, type);
    pb_bytes(aTHX_ &perm, PB_Permission_key, k, kl);
    pb_bytes(aTHX_ &perm, PB_Permission_range_end, e, el);
    pb_init(aTHX_ &b);
    pb_bytes(aTHX_ &b, PB_AuthRoleGrantPermissionRequest_name, r, rl);
    pb_msg(aTHX_ &b, PB_AuthRoleGrantPermissionRequest_perm, &perm);
    start_call(aTHX_ c, EVETCD_AUTH_METHOD_ROLE_GRANT_PERMISSION, &b, cb, NULL);

void
role_revoke_permission(EV::Etcd c, SV *role = NULL, SV *key = NULL, SV *range_end = NULL, SV *cb = NULL)
  PREINIT:
    pb_buf b;
    STRLEN rl, kl, el = 0;
    const char *r, *k, *e = NULL;
  CODE:
    check_fork(aTHX_ c);
    NEED_CB(cb);
    r = need_bytes(aTHX_ role, &rl, "role_revoke_permission", "role name");
    k = need_bytes(aTHX_ key, &kl, "role_revoke_permission", "key");
    SvGETMAGIC(range_end);
    if (SvOK(range_end))
        e = need_bytes(aTHX_ range_end, &el, "role_revoke_permission", "range_end");
    pb_init(aTHX_ &b);
    pb_bytes(aTHX_ &b, PB_AuthRoleRevokePermissionRequest_role, r, rl);
    pb_bytes(aTHX_ &b, PB_AuthRoleRevokePermissionRequest_key, k, kl);
    pb_bytes(aTHX_ &b, PB_AuthRoleRevokePermissionRequest_range_end, e, el);
    start_call(aTHX_ c, EVETCD_AUTH_METHOD_ROLE_REVOKE_PERMISSION, &b, cb, NULL);
