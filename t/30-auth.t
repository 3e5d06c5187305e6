#!/usr/bin/env perl
# Authentication and authorisation, end to end on a throwaway etcd started
# with simple tokens: users, roles and permissions are set up, auth is turned
# on, and then every kind of client (anonymous, wrong password, logged in,
# built from a saved token) is checked against what the server really allows.
# Afterwards the set-up is taken apart again (revoke, auth_disable, delete).
use strict;
use warnings;

use Test::More;
use lib 't/lib';
use EtcdTest qw(:DEFAULT etcd_version etcd_version_ge);

need_etcd();

use EV;
use EV::Etcd;

my $has_auth_status = etcd_version_ge('3.5');
diag 'etcd ' . (etcd_version() // '?')
   . ($has_auth_status ? ' (has AuthStatus)' : ' (no AuthStatus RPC)');

my $srv = start_etcd(extra => ['--auth-token', 'simple']);
my @ep  = (endpoints => [ $srv->endpoint ], timeout => 20);

# Runs $client->$method(@args, $cb) and waits for the callback.
sub call {
    my ($client, $method, @args) = @_;
    my ($done, $resp, $err);
    $client->$method(@args, sub { ($resp, $err) = @_; $done = 1 });
    run_until(\$done, 20) or fail("$method: no callback within 20 s");
    return ($resp, $err);
}

sub header_ok {
    my ($what, $resp) = @_;
    my $h = ref $resp eq 'HASH' ? $resp->{header} : undef;
    ok ref $h eq 'HASH' && $h->{cluster_id} && $h->{member_id} && $h->{raft_term},
        "$what: response carries a real header" or diag explain $resp;
}

# The call succeeds: no error, a hash response with a header.
sub ok_call {
    my ($what, $client, $method, @args) = @_;
    my ($r, $e) = call($client, $method, @args);
    ok !$e && ref $r eq 'HASH', "$what: succeeds" or diag explain $e;
    header_ok($what, $r) if $r;
    return $r || {};
}

# The call fails with exactly this server error.
sub err_call {
    my ($what, $want, $client, $method, @args) = @_;
    my ($r, $e) = call($client, $method, @args);
    ok !defined $r, "$what: no response" or diag explain $r;
    ok ref $e eq 'HASH', "$what: error hash" or return;
    is $e->{status}, $want->{status}, "$what: status $want->{status}";
    is $e->{code},   $want->{code},   "$what: code $want->{code}";
    is $e->{source}, $method,         "$what: source is $method";
    is $e->{retryable}, 0,            "$what: not retryable";
    if (ref $want->{message}) {
        like $e->{message}, $want->{message}, "$what: server message";
    } else {
        is $e->{message}, $want->{message}, "$what: server message passes through";
    }
    return $e;
}

my %USER_EMPTY = (status => 'INVALID_ARGUMENT', code => 3,
                  message => 'etcdserver: user name is empty');
my %AUTH_FAILED = (status => 'INVALID_ARGUMENT', code => 3,
                   message => 'etcdserver: authentication failed, invalid user ID or password');
my %DENIED = (status => 'PERMISSION_DENIED', code => 7,
              message => 'etcdserver: permission denied');
my %BAD_TOKEN = (status => 'UNAUTHENTICATED', code => 16,
                 message => 'etcdserver: invalid auth token');
my %NO_AUTH_STATUS = (status => 'UNIMPLEMENTED', code => 12, message => qr/AuthStatus/);

sub perms_of {
    my ($resp) = @_;
    return [ sort { $a->{key} cmp $b->{key} }
             map { { perm_type => $_->{perm_type}, key => $_->{key},
                     range_end => $_->{range_end} // '' } }
             @{ $resp->{perm} || [] } ];
}

sub value_of { my ($r) = @_; ($r && $r->{kvs} && @{ $r->{kvs} }) ? $r->{kvs}[0]{value} : undef }

# ---------------------------------------------------------------------------
# Set-up while auth is still off
# ---------------------------------------------------------------------------
my $admin = EV::Etcd->new(@ep);

my $auth_rev_before = 0;
if ($has_auth_status) {
    my $st = ok_call('auth_status (auth off)', $admin, 'auth_status');
    is $st->{enabled}, 0, 'auth_status: enabled is 0 before auth_enable';
    like $st->{auth_revision}, qr/^\d+$/, 'auth_status: auth_revision is an integer';
    $auth_rev_before = $st->{auth_revision} // 0;
} else {
    err_call('auth_status on etcd 3.4', \%NO_AUTH_STATUS, $admin, 'auth_status');
}

ok_call('user_add root', $admin, 'user_add', 'root', 'root-pw');
ok_call('user_grant_role root root', $admin, 'user_grant_role', 'root', 'root');
ok_call('role_add app-role', $admin, 'role_add', 'app-role');
ok_call('role_add spare-role', $admin, 'role_add', 'spare-role');

err_call('role_get of a missing role',
         { status => 'FAILED_PRECONDITION', code => 9, message => 'etcdserver: role name not found' },
         $admin, 'role_get', 'no-such-role');

ok_call('grant READWRITE on the /app/ prefix', $admin,
        'role_grant_permission', 'app-role', 'READWRITE', '/app/', '/app0');
ok_call('grant READ on the single key /conf/ro', $admin,
        'role_grant_permission', 'app-role', 'READ', '/conf/ro', undef);
ok_call('grant WRITE on the single key /conf/wo', $admin,
        'role_grant_permission', 'app-role', 'WRITE', '/conf/wo', undef);

# range_end "\0" (every key from /z on) and binary keys are plain bytes
ok_call('grant READ from /z to the end', $admin,
        'role_grant_permission', 'spare-role', 'READ', '/z', "\0");
ok_call('grant WRITE on a binary key', $admin,
        'role_grant_permission', 'spare-role', 'WRITE', "bin\xff\x00key", undef);
is_deeply perms_of(ok_call('role_get spare-role', $admin, 'role_get', 'spare-role')), [
    { perm_type => 'READ',  key => '/z',             range_end => "\0" },
    { perm_type => 'WRITE', key => "bin\xff\x00key", range_end => '' },
], 'role_get returns range_end "\\0" and binary keys byte for byte';
err_call('revoking a permission the role does not have',
         { status => 'FAILED_PRECONDITION', code => 9,
           message => 'etcdserver: permission is not granted to the role' },
         $admin, 'role_revoke_permission', 'spare-role', '/nope', undef);

eval { $admin->role_grant_permission('app-role', 'EXECUTE', '/x', undef, sub {}) };
like $@, qr/role_grant_permission.*perm_type.*EXECUTE/, 'unknown perm_type croaks naming it';

{
    my $r = ok_call('role_get app-role', $admin, 'role_get', 'app-role');
    is_deeply perms_of($r), [
        { perm_type => 'READWRITE', key => '/app/',    range_end => '/app0' },
        { perm_type => 'READ',      key => '/conf/ro', range_end => '' },
        { perm_type => 'WRITE',     key => '/conf/wo', range_end => '' },
    ], 'role_get lists the three permissions with type, key and range_end'
        or diag explain $r;
    ok !grep({ !exists $_->{range_end} } @{ $r->{perm} || [] }),
        'every perm entry has a range_end key';

    $r = ok_call('role_list', $admin, 'role_list');
    is_deeply [ sort @{ $r->{roles} || [] } ], [qw(app-role spare-role)],
        'role_list names both roles';
}

ok_call('user_add app', $admin, 'user_add', 'app', 'app-pw');
ok_call('user_grant_role app app-role', $admin, 'user_grant_role', 'app', 'app-role');
err_call('user_add of an existing user',
         { status => 'FAILED_PRECONDITION', code => 9, message => 'etcdserver: user name already exists' },
         $admin, 'user_add', 'app', 'other-pw');
err_call('user_grant_role of a missing role',
         { status => 'FAILED_PRECONDITION', code => 9, message => 'etcdserver: role name not found' },
         $admin, 'user_grant_role', 'app', 'no-such-role');
{
    my $r = ok_call('user_get app', $admin, 'user_get', 'app');
    is_deeply $r->{roles}, ['app-role'], 'user_get app: roles';
    $r = ok_call('user_get root', $admin, 'user_get', 'root');
    is_deeply $r->{roles}, ['root'], 'user_get root: roles';
    err_call('user_get of a missing user',
             { status => 'FAILED_PRECONDITION', code => 9, message => 'etcdserver: user name not found' },
             $admin, 'user_get', 'nobody');
    $r = ok_call('user_list', $admin, 'user_list');
    is_deeply [ sort @{ $r->{users} || [] } ], [qw(app root)], 'user_list names both users';
}

ok_call('auth_enable', $admin, 'auth_enable');

# ---------------------------------------------------------------------------
# Auth is on
# ---------------------------------------------------------------------------
my $anon = EV::Etcd->new(@ep);
err_call('get without credentials', \%USER_EMPTY, $anon, 'get', '/app/k');

{
    my $bad = EV::Etcd->new(@ep);
    err_call('authenticate with a wrong password', \%AUTH_FAILED,
             $bad, 'authenticate', 'app', 'not-the-password');
    err_call('authenticate as an unknown user', \%AUTH_FAILED,
             $bad, 'authenticate', 'ghost', 'app-pw');
    err_call('after failed logins the client is still anonymous', \%USER_EMPTY,
             $bad, 'get', '/app/k');
}

my $root_token;
{
    my $r = ok_call('authenticate root', $admin, 'authenticate', 'root', 'root-pw');
    $root_token = $r->{token};
    ok defined $root_token && length $root_token, 'authenticate returns a token';
}

if ($has_auth_status) {
    my $st = ok_call('auth_status (auth on)', $admin, 'auth_status');
    is $st->{enabled}, 1, 'auth_status: enabled is 1 after auth_enable';
    cmp_ok $st->{auth_revision}, '>', 0, 'auth_status: auth_revision is positive';
    cmp_ok $st->{auth_revision}, '>=', $auth_rev_before, 'auth_revision did not go back';
    $auth_rev_before = $st->{auth_revision};
} else {
    err_call('auth_status on etcd 3.4 with auth on', \%NO_AUTH_STATUS, $admin, 'auth_status');
}

my $app = EV::Etcd->new(@ep);
my $app_token;
{
    my $r = ok_call('authenticate app', $app, 'authenticate', 'app', 'app-pw');
    $app_token = $r->{token};
    ok defined $app_token && length $app_token, 'app gets a token';
    isnt $app_token, $root_token, 'app token differs from the root token';
}

# the token is stored: later calls are made as "app"
ok_call('put inside the permitted prefix', $app, 'put', '/app/k', 'v1');
is value_of(ok_call('get inside the permitted prefix', $app, 'get', '/app/k')), 'v1',
    'app reads back its value';
err_call('put outside the permitted range', \%DENIED, $app, 'put', '/other', 'x');
err_call('get outside the permitted range', \%DENIED, $app, 'get', '/other');
ok_call('get on the READ key', $app, 'get', '/conf/ro');
err_call('put on the READ key', \%DENIED, $app, 'put', '/conf/ro', 'x');
ok_call('put on the WRITE key', $app, 'put', '/conf/wo', 'w');
err_call('get on the WRITE key', \%DENIED, $app, 'get', '/conf/wo');
err_call('delete outside the permitted range', \%DENIED, $app, 'delete', '/other');

# A watch opened after authenticate: the token goes on the stream too.
{
    my (@msgs, @errs);
    my $w = $app->watch('/app/', { prefix => 1 }, sub {
        my ($m, $e) = @_;
        push @msgs, $m if $m;
        push @errs, $e if $e;
    });
    ok run_until(sub { @msgs || @errs }, 15), 'watch (authenticated): first message';
    ok !@errs, 'watch (authenticated): no error' or diag explain \@errs;
    is $msgs[0] && $msgs[0]{created}, 1, 'watch (authenticated): created';

    ok_call('put watched key', $app, 'put', '/app/watched', 'seen');
    ok run_until(sub { grep { @{ $_->{events} || [] } } @msgs }, 15),
        'watch (authenticated): event arrives';
    my ($ev) = map { @{ $_->{events} || [] } } @msgs;
    is $ev && $ev->{type}, 'PUT', 'watch event type';
    is $ev && $ev->{kv}{key},   '/app/watched', 'watch event key';
    is $ev && $ev->{kv}{value}, 'seen',         'watch event value';

    my $cancelled;
    $w->cancel(sub { $cancelled = 1 });
    ok run_until(\$cancelled, 15), 'watch cancelled';
}

# A watch on a key the user may not read is refused by the server
# (etcd cancels it with "permission denied"): the watch must get an error.
{
    my $other = EV::Etcd->new(@ep);
    ok_call('second app login', $other, 'authenticate', 'app', 'app-pw');
    my (@msgs, @errs);
    my $w = $other->watch('/secret', sub {
        my ($m, $e) = @_;
        push @msgs, $m if $m;
        push @errs, $e if $e;
    });
    ok run_until(sub { @errs || @msgs }, 10), 'watch on a forbidden key: the callback is called';
    is scalar(@msgs), 0, 'watch on a forbidden key: no message' or diag explain \@msgs;
    my $e = $errs[0] || {};
    is $e->{status}, 'PERMISSION_DENIED', 'watch on a forbidden key: status PERMISSION_DENIED';
    is $e->{source}, 'watch', 'watch on a forbidden key: source watch';
    like $e->{message} // '', qr/permission denied/, 'watch on a forbidden key: server reason';
    my $cancelled;
    $w->cancel(sub { $cancelled = 1 });
    ok run_until(\$cancelled, 5), 'cancel of the refused watch calls back';
}

# A client built from the saved token acts as that user, on calls and streams.
{
    my $saved = EV::Etcd->new(@ep, auth_token => $app_token);
    is value_of(ok_call('get with auth_token => saved token', $saved, 'get', '/app/k')), 'v1',
        'client built with auth_token reads the value';
    ok_call('put with auth_token => saved token', $saved, 'put', '/app/k', 'v2');
    err_call('client built with auth_token has app rights only', \%DENIED,
             $saved, 'put', '/other', 'x');

    my (@msgs, @errs);
    my $w = $saved->watch('/app/k', sub {
        my ($m, $e) = @_;
        push @msgs, $m if $m;
        push @errs, $e if $e;
    });
    ok run_until(sub { @msgs || @errs }, 15), 'watch with saved token: created';
    ok !@errs, 'watch with saved token: no error' or diag explain \@errs;
    ok_call('put for the saved-token watch', $saved, 'put', '/app/k', 'v3');
    ok run_until(sub { grep { @{ $_->{events} || [] } } @msgs }, 15),
        'watch with saved token: event arrives';
    my ($ev) = map { @{ $_->{events} || [] } } @msgs;
    is $ev && $ev->{kv}{value}, 'v3', 'watch with saved token: event value';
    my $cancelled;
    $w->cancel(sub { $cancelled = 1 });
    ok run_until(\$cancelled, 15), 'watch with saved token cancelled';
}

# Password change: the old password (and app's old tokens) stop working.
ok_call('user_change_password app', $admin, 'user_change_password', 'app', 'app-pw-2');
# The client tries to log in again with the old password; the server's
# answer stays the error, and the failed login is named after it.
err_call('old token after the password change',
         { %BAD_TOKEN, message => qr/^etcdserver: invalid auth token; logging in again failed: .*invalid user ID or password/ },
         $app, 'get', '/app/k');
err_call('login with the old password', \%AUTH_FAILED, $app, 'authenticate', 'app', 'app-pw');
{
    my $r = ok_call('login with the new password', $app, 'authenticate', 'app', 'app-pw-2');
    ok length($r->{token} // ''), 'new login returns a token';
    isnt $r->{token}, $app_token, 'a different token than before';
}
is value_of(ok_call('get after logging in again', $app, 'get', '/app/k')), 'v3',
    'the new login works';

# Revoking permissions takes the access away.
ok_call('role_revoke_permission on the /app/ prefix', $admin,
        'role_revoke_permission', 'app-role', '/app/', '/app0');
err_call('put in the revoked prefix', \%DENIED, $app, 'put', '/app/k', 'v4');
err_call('get in the revoked prefix',  \%DENIED, $app, 'get', '/app/k');
ok_call('role_revoke_permission on a single key', $admin,
        'role_revoke_permission', 'app-role', '/conf/wo', undef);
err_call('put on the revoked single key', \%DENIED, $app, 'put', '/conf/wo', 'w');
{
    my $r = ok_call('role_get after the revokes', $admin, 'role_get', 'app-role');
    is_deeply perms_of($r),
        [ { perm_type => 'READ', key => '/conf/ro', range_end => '' } ],
        'only the READ permission is left';
}
ok_call('READ key still readable', $app, 'get', '/conf/ro');

ok_call('user_revoke_role app app-role', $admin, 'user_revoke_role', 'app', 'app-role');
is_deeply ok_call('user_get after revoke', $admin, 'user_get', 'app')->{roles}, [],
    'app has no roles left';
err_call('READ key no longer readable without the role', \%DENIED, $app, 'get', '/conf/ro');

if ($has_auth_status) {
    my $st = ok_call('auth_status after the changes', $admin, 'auth_status');
    is $st->{enabled}, 1, 'auth still enabled';
    cmp_ok $st->{auth_revision}, '>', $auth_rev_before,
        'auth_revision moved forward with the auth changes';
} else {
    err_call('auth_status on etcd 3.4 (root)', \%NO_AUTH_STATUS, $admin, 'auth_status');
}

err_call('auth_disable is for root only', \%DENIED, $app, 'auth_disable');
ok_call('auth_disable as root', $admin, 'auth_disable');

# ---------------------------------------------------------------------------
# Auth is off again (tokens issued before are gone: use a token-less client)
# ---------------------------------------------------------------------------
ok_call('anonymous get after auth_disable', $anon, 'get', '/other');
ok_call('anonymous put after auth_disable', $anon, 'put', '/other', 'free');
if ($has_auth_status) {
    my $st = ok_call('auth_status (auth off again)', $anon, 'auth_status');
    is $st->{enabled}, 0, 'auth_status: enabled is 0 after auth_disable';
}

err_call('authenticate while auth is off',
         { status => 'FAILED_PRECONDITION', code => 9,
           message => 'etcdserver: authentication is not enabled' },
         $anon, 'authenticate', 'root', 'root-pw');
ok_call('user_delete app', $anon, 'user_delete', 'app');
ok_call('role_delete app-role', $anon, 'role_delete', 'app-role');
ok_call('role_delete spare-role', $anon, 'role_delete', 'spare-role');
err_call('user_get of the deleted user',
         { status => 'FAILED_PRECONDITION', code => 9, message => 'etcdserver: user name not found' },
         $anon, 'user_get', 'app');
is_deeply [ sort @{ ok_call('user_list at the end', $anon, 'user_list')->{users} || [] } ],
    ['root'], 'only root is left';
is_deeply [ grep { $_ ne 'root' } @{ ok_call('role_list at the end', $anon, 'role_list')->{roles} || [] } ],
    [], 'the deleted roles are gone';

$srv->stop;
done_testing;
