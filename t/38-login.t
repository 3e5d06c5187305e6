#!/usr/bin/env perl
# new(username, password): the client logs in before its first call (calls
# made meanwhile wait, a watch may be the very first call), logs in again
# whenever the server drops the token (short-lived simple tokens, a server
# restart that forgets every token) for calls and reopened streams alike,
# keeps the user's permissions, and reports a wrong password to each waiting
# call once.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'login', extra => [ '--auth-token', 'simple', '--auth-token-ttl', '2' ]);
my $ep  = $srv->endpoint;

sub pause { run_until(sub { 0 }, $_[0]) }

# --- users: root, and app with read-write on /app/ only ---------------------
{
    my $setup = EV::Etcd->new(endpoints => [$ep]);
    ok_call($setup, @$_) for
        [ 'user_add', 'root', 'root-pw' ], [ 'user_grant_role', 'root', 'root' ],
        [ 'role_add', 'app' ], [ 'role_grant_permission', 'app', 'READWRITE', '/app/', '/app0' ],
        [ 'user_add', 'app', 'app-pw' ], [ 'user_grant_role', 'app', 'app' ],
        [ 'auth_enable' ];
}
my $root = EV::Etcd->new(endpoints => [$ep], username => 'root', password => 'root-pw');

# --- calls made before the login is done wait for it --------------------------
{
    my @calls;
    my $c = EV::Etcd->new(endpoints => [$ep], username => 'app', password => 'app-pw',
                          on_request => sub { push @calls, $_[0] });
    my %got;
    $c->put("/app/first/$_", $_, sub { $got{$_[2] // 0}++; push @{ $got{all} }, [@_] }) for 1 .. 20;
    run_until(sub { @{ $got{all} || [] } == 20 }, 15);
    is scalar @{ $got{all} || [] }, 20, 'twenty calls made right after new all answered';
    is scalar(grep { $_->[1] } @{ $got{all} }), 0, '... none failed for want of a token'
        or diag explain [ map { $_->[1] } grep { $_->[1] } @{ $got{all} } ];
    is scalar(grep { $_->{retries} } @calls), 0, '... and none had to be repeated';
    is ok_call($root, 'get', '/app/first/', { prefix => 1, count_only => 1 })->{count}, 20,
        '... all twenty written';

    my ($r, $e) = call($c, 'get', '/other');
    is $e->{status}, 'PERMISSION_DENIED', 'the user keeps its permissions: outside /app/ is denied';
    is $e->{source}, 'get', '... for get';
    ($r, $e) = call($c, 'put', '/other', 1);
    is $e->{status}, 'PERMISSION_DENIED', '... and for put';
}

# --- a watch as the very first call ------------------------------------------
{
    my $c = EV::Etcd->new(endpoints => [$ep], username => 'app', password => 'app-pw');
    my (@ev, @err, $created);
    my $w = $c->watch('/app/w', sub {
        my ($m, $e) = @_;
        push @err, $e if $e;
        $created = 1 if $m && $m->{created};
        push @ev, @{ $m->{events} || [] } if $m;
    });
    ok run_until(\$created, 10), 'a watch as the first call is created';
    ok_call($root, 'put', '/app/w', 'hello');
    ok run_until(sub { @ev }, 10), '... and receives its event';
    is $ev[0]{kv}{value}, 'hello', '... the value';
    ok !@err, '... without error' or diag explain \@err;
    my $done;
    $w->cancel(sub { $done = 1 });
    run_until(\$done, 5);
}

# --- outliving tokens: expiry, then a restart that forgets them all ----------
{
    my (@calls, @ev, @err, @ka, @ka_err);
    my $c = EV::Etcd->new(endpoints => [$ep], username => 'app', password => 'app-pw',
                          max_retries => -1, on_request => sub { push @calls, $_[0] });
    my $w = $c->watch('/app/long', sub {
        my ($m, $e) = @_;
        push @err, $e if $e;
        push @ev, @{ $m->{events} || [] } if $m;
    });
    my $lease = ok_call($c, 'lease_grant', 3)->{id};
    my $ka = $c->lease_keepalive($lease, sub {
        my ($m, $e) = @_;
        push @ka, $m if $m;
        push @ka_err, $e if $e;
    });
    ok_call($c, 'put', '/app/leased', 1, { lease => $lease });
    pause(0.5);

    for my $round (1 .. 3) {
        pause(3);    # longer than the token TTL (2 s): the token is gone
        my ($r, $e) = call($c, 'put', '/app/long', "v$round");
        ok !$e, "round $round: a put after the token expired succeeds" or diag explain $e;
        is $calls[-1]{retries}, 1, "round $round: ... by logging in again and repeating it once";
    }
    ok run_until(sub { @ev >= 3 }, 10), 'the open watch saw all three puts';

    # A restart forgets every simple token: the reopened streams must log in.
    my $n_ka = @ka;
    $srv->kill9;
    $srv->restart;
    my ($r, $e);
    for (1 .. 40) {    # the first calls may meet the server still starting
        ($r, $e) = call($c, 'put', '/app/long', 'after restart');
        last unless $e && $e->{retryable};
        pause(0.25);
    }
    ok !$e, 'a put after the restart succeeds' or diag explain $e;
    ok run_until(sub { grep { ($_->{kv}{value} // '') eq 'after restart' } @ev }, 20),
        'the watch reopened (with a new login) and delivers again';
    ok run_until(sub { @ka > $n_ka + 1 }, 15), 'the keepalive reopened and keeps refreshing';
    my $ttl = ok_call($c, 'lease_time_to_live', $lease);
    cmp_ok $ttl->{ttl}, '>', 0, '... the lease is alive';
    is ok_call($c, 'get', '/app/leased')->{count}, 1, '... and so is its key';
    ok !@err, 'no error reached the watch' or diag explain \@err;
    ok !@ka_err, 'no error reached the keepalive' or diag explain \@ka_err;
    is_deeply [ map { $_->{kv}{value} } @ev ], [ 'v1', 'v2', 'v3', 'after restart' ],
        'the watch saw each put once, in order';
    my $done = 0;
    $_->cancel(sub { $done++ }) for $w, $ka;
    run_until(sub { $done == 2 }, 5);
    ok_call($c, 'lease_revoke', $lease);
}

# --- a wrong password ------------------------------------------------------------
{
    my $bad = EV::Etcd->new(endpoints => [$ep], username => 'app', password => 'wrong');
    my @got;
    $bad->get('/app/x', sub { push @got, [ get => @_ ] });
    $bad->put('/app/x', 1, sub { push @got, [ put => @_ ] });
    $bad->lease_grant(5, sub { push @got, [ lease_grant => @_ ] });
    my (@wmsg, @werr);
    my $w = $bad->watch('/app/x', sub { push @wmsg, $_[0] if $_[0]; push @werr, $_[1] if $_[1] });
    run_until(sub { @got == 3 && @werr }, 10);
    pause(1);    # time for anything repeated to show up
    is scalar @got, 3, 'each waiting call is answered';
    my %seen;
    for my $g (@got) {
        my ($m, $r, $e) = @$g;
        $seen{$m}++;
        ok !$r, "$m: no response";
        is $e->{status}, 'INVALID_ARGUMENT', "$m: the server's status for a failed login";
        like $e->{message}, qr/authentication failed/, "$m: the server's message";
        is $e->{source}, $m, "$m: under its own name";
    }
    is_deeply \%seen, { get => 1, put => 1, lease_grant => 1 }, 'once each';
    is scalar @werr, 1, 'the watch ends with one error';
    like $werr[0]{message}, qr/authentication failed/, '... saying the login failed';
    is $werr[0]{retryable}, 0, '... not retryable (it is not retried)';
    ok !@wmsg, '... and was never created';

    my ($r, $e) = call($bad, 'get', '/app/x');
    like $e->{message}, qr/authentication failed/, 'a later call tries again and fails the same way';
}

# --- a login that meets a dead endpoint ---------------------------------------------
# The login starts in new(); whether the first call waits for that attempt
# or starts its own after it failed over depends on timing, so either way
# the call must end well with retry, and at worst fail once without it.
{
    my $dead = '127.0.0.1:' . EtcdTest::free_port();
    my @calls;
    my $c = EV::Etcd->new(endpoints => [ $dead, $ep ], username => 'app', password => 'app-pw',
                          retry => 2, on_request => sub { push @calls, $_[0] });
    my ($r, $e) = call($c, 'put', '/app/dead-first', 1);
    ok !$e, 'with retry, a login that met a dead endpoint does not fail the call'
        or diag explain $e;
    is $calls[-1]{endpoint}, $ep, '... which went to the live endpoint';

    $c = EV::Etcd->new(endpoints => [ $dead, $ep ], username => 'app', password => 'app-pw');
    ($r, $e) = call($c, 'get', '/app/dead-first');
    ok !$e || ($e->{status} eq 'UNAVAILABLE' && $e->{source} eq 'get'),
        'without retry the first call succeeds or gets the failed login, under its own name'
        or diag explain $e;
    ($r, $e) = call($c, 'get', '/app/dead-first');
    ok !$e, 'the next call is logged in on the next endpoint' or diag explain $e;
}

# A frozen first endpoint holds the login until the pings give it up: the
# call waits for that very login, and retry repeats it on the next endpoint.
{
    require TcpProxy;
    my $proxy = TcpProxy->new(upstream => $srv->client_port);
    $proxy->freeze;
    my @calls;
    my $c = EV::Etcd->new(endpoints => [ $proxy->endpoint, $ep ], username => 'app', password => 'app-pw',
                          retry => 2, timeout => 20, keepalive_time => 1, keepalive_timeout => 1,
                          on_request => sub { push @calls, $_[0] });
    my $t0 = time;
    my ($r, $e) = call($c, 'put', '/app/frozen-first', 1);
    ok !$e, 'a login stuck on a frozen endpoint is repeated on the next' or diag explain $e;
    is $calls[-1]{retries}, 1, '... as one retry of the call that waited for it';
    is $calls[-1]{endpoint}, $ep, '... on the live endpoint';
    cmp_ok time - $t0, '<', 10, '... well before the 20 s deadline';
    $proxy->stop;
}

# --- bad options --------------------------------------------------------------------
{
    my @cases = (
        [ [ username => 'app' ],                    qr/username needs a password/ ],
        [ [ password => 'x' ],                      qr/password needs a username/ ],
        [ [ username => '', password => 'x' ],      qr/username must not be empty/ ],
        [ [ username => [], password => 'x' ],      qr/username/ ],
        [ [ username => 'app', password => "\xff" ], qr/password must be UTF-8 text/ ],
    );
    for my $case (@cases) {
        my ($opts, $re) = @$case;
        my $line = __LINE__ + 1;
        eval { EV::Etcd->new(endpoints => [$ep], @$opts) };
        like $@, qr/^EV::Etcd->new: .*$re.* at \Q$0\E line $line/, "croaks: $re";
    }
    ok eval { EV::Etcd->new(endpoints => [$ep], username => undef, password => undef); 1 },
        'undef username and password mean no login';
}

ok_call($root, 'auth_disable');
done_testing;
