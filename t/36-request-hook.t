#!/usr/bin/env perl
# on_request: called once per finished unary call, before its callback, with
# method, endpoint, duration, status and retries; not for streams or croaked
# calls; a hook that dies is reported like a dying callback and changes
# nothing else; eg/request-metrics.pl prints what it counted.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call cancel_sync);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'hook');
my (@seen, @order);
my $c = EV::Etcd->new(
    endpoints  => [ $srv->endpoint ],
    on_request => sub { push @seen, $_[0]; push @order, "hook:$_[0]{method}" },
);

# --- one record per call, before the callback -------------------------------
{
    my $t0 = time;
    my ($done, $took) = (0);
    $c->put('hook/a', 1, sub { push @order, 'cb:put'; $took = time - $t0; $done++ });
    run_until(\$done, 10);
    is scalar @seen, 1, 'one record for one put';
    is_deeply \@order, [ 'hook:put', 'cb:put' ], 'the hook runs before the callback';
    my $r = $seen[0];
    is_deeply [ sort keys %$r ], [qw(duration endpoint method retries status)], 'the documented keys';
    is $r->{method}, 'put', 'method';
    is $r->{status}, 'OK', 'status OK';
    is $r->{endpoint}, $srv->endpoint, 'endpoint is host:port';
    is $r->{retries}, 0, 'no retries';
    cmp_ok $r->{duration}, '>', 0, 'duration is positive';
    cmp_ok $r->{duration}, '<=', $took + 0.001, '... and no longer than the caller saw';
    like $r->{duration}, qr/\./, '... a fraction of a second, as a float';
}

# --- method names as called, error statuses ---------------------------------
{
    @seen = ();
    my $lease = ok_call($c, 'lease_grant', 30)->{id};
    ok_call($c, 'get', 'hook/a');
    ok_call($c, 'txn', [], [ { put => { key => 'hook/t', value => 1 } } ], []);
    my $l = ok_call($c, 'lock', 'hook/lock', $lease);
    ok_call($c, 'unlock', $l->{key});
    ok_call($c, 'member_list');
    ok_call($c, 'status');
    my (undef, $err) = call($c, 'lease_revoke', 424242);
    is $err->{status}, 'NOT_FOUND', 'revoking an unknown lease fails';
    (undef, $err) = call($c, 'get', 'hook/a', { timeout => 0.000001 });
    my @want = qw(lease_grant get txn lock unlock member_list status lease_revoke get);
    is_deeply [ map { $_->{method} } @seen ], \@want, 'every unary call reported under its own name';
    is $seen[7]{status}, 'NOT_FOUND', 'a server error reports its status name';
    is $seen[8]{status}, $err ? $err->{status} : 'OK', 'the status matches what the callback got';
    ok_call($c, 'lease_revoke', $lease);
}

# --- streams and croaked calls are not reported -----------------------------
{
    @seen = ();
    my ($events, $w) = (0);
    $w = $c->watch('hook/w', sub { $events++ if $_[0] && $_[0]{events} && @{ $_[0]{events} } });
    run_until(sub { 0 }, 0.3);
    ok_call($c, 'put', 'hook/w', 1);
    run_until(sub { $events }, 5);
    cancel_sync({ handle => $w });
    my $lease = ok_call($c, 'lease_grant', 30)->{id};
    my $ka = $c->lease_keepalive($lease, sub { });
    run_until(sub { 0 }, 0.3);
    cancel_sync({ handle => $ka });
    eval { $c->put('hook/x', 1, { bogus => 1 }, sub { }) };
    like $@, qr/unknown option/, 'a croaked call';
    ok_call($c, 'lease_revoke', $lease);
    is_deeply [ map { $_->{method} } @seen ], [qw(put lease_grant lease_revoke)],
        'only the unary calls are reported (no watch, keepalive, cancel or croaked call)';
}

# --- a hook that dies --------------------------------------------------------
{
    my @died;
    local $EV::DIED = sub { push @died, $@ };
    my $n = 0;
    my $bad = EV::Etcd->new(endpoints => [ $srv->endpoint ], on_request => sub { $n++; die "hook broke\n" });
    my @got;
    $bad->put("hook/d$_", $_, sub { push @got, [@_] }) for 1 .. 5;
    run_until(sub { @got == 5 }, 10);
    is scalar @got, 5, 'every callback still runs when the hook dies';
    ok !(grep { $_->[1] } @got), '... without an error';
    is $n, 5, 'the hook ran for each call';
    is scalar @died, 5, 'each death went to $EV::DIED';
    like $died[0], qr/hook broke/, '... with its message';
    is ok_call($bad, 'get', 'hook/d5')->{kvs}[0]{value}, 5, 'the client keeps working';
}

# --- a failing endpoint is named ---------------------------------------------
{
    my $dead = '127.0.0.1:' . EtcdTest::free_port();
    my @r;
    my $two = EV::Etcd->new(endpoints => [ $dead, $srv->endpoint ], on_request => sub { push @r, $_[0] });
    my (undef, $err) = call($two, 'get', 'hook/a');
    is $err->{status}, 'UNAVAILABLE', 'a call to a dead endpoint fails';
    ok_call($two, 'get', 'hook/a');
    is $r[0]{endpoint}, $dead, 'the hook names the dead endpoint';
    is $r[0]{status}, 'UNAVAILABLE', '... and UNAVAILABLE';
    is $r[-1]{endpoint}, $srv->endpoint, 'a later call reports the live endpoint';
    is $r[-1]{status}, 'OK', '... OK';
}

# --- bad values croak ----------------------------------------------------------
{
    my $line = __LINE__ + 1;
    eval { EV::Etcd->new(endpoints => [ $srv->endpoint ], on_request => 'count') };
    like $@, qr/^EV::Etcd->new: on_request must be a code reference at \Q$0\E line $line/,
        'a non-code on_request croaks at the caller';
    ok eval { EV::Etcd->new(endpoints => [ $srv->endpoint ], on_request => undef); 1 }, 'undef means no hook';
}

# --- the example --------------------------------------------------------------
{
    local $ENV{EV_ETCD_ENDPOINT} = $srv->endpoint;
    my $out = `$^X -Mblib eg/request-metrics.pl --calls 20 2>&1`;
    is $?, 0, 'eg/request-metrics.pl runs';
    like $out, qr/^etcd_client_requests_total\{method="put",status="OK"\} 20$/m, 'it counts 20 puts';
    like $out, qr/^etcd_client_requests_total\{method="get",status="OK"\} 20$/m, '... 20 gets';
    like $out, qr/^etcd_client_requests_total\{method="txn",status="OK"\} 1$/m, '... the txn';
    like $out, qr/^etcd_client_requests_total\{method="lease_time_to_live",status="(NOT_FOUND|OK)"\} 1$/m,
        '... the lease lookup';
    like $out, qr/^etcd_client_request_duration_seconds_count\{method="put"\} 20$/m, '... a histogram per method';
}

done_testing;
