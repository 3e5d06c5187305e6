#!/usr/bin/env perl
# Leases: grant, time_to_live (with keys), leases, revoke, expiry; keepalive
# ticks, cancel semantics, a lease revoked under a running keepalive, and a
# kill -9 / restart of the server in the middle of a keepalive.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call cancel_sync);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'lease');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], max_retries => 10, timeout => 10);



sub pause { run_until(sub { 0 }, $_[0]) }

# A keepalive whose ticks and errors are recorded with their time.
sub rec_keepalive {
    my ($client, $id, $opt) = @_;
    my $rec = { ticks => [], errs => [], all => [] };
    $rec->{handle} = $client->lease_keepalive($id, ($opt ? $opt : ()), sub {
        my ($resp, $err) = @_;
        push @{ $rec->{all} }, [ $resp, $err, time ];
        if ($err) { push @{ $rec->{errs} }, $err }
        else      { push @{ $rec->{ticks} }, $resp }
    });
    return $rec;
}


sub lease_ids { map { "$_->{id}" } @{ ok_call($c, 'lease_leases')->{leases} } }
sub has_lease { my $id = shift; scalar grep { $_ eq "$id" } lease_ids() }

# --- grant, time_to_live, leases -------------------------------------------
my ($l1, $l2);
{
    $l1 = ok_call($c, 'lease_grant', 60);
    like $l1->{id}, qr/^[1-9]\d*$/, 'lease_grant returns a positive integer id';
    is $l1->{ttl}, 60, 'granted ttl is the requested one';
    ok $l1->{header} && $l1->{header}{revision} > 0, 'lease_grant response has a header';

    $l2 = ok_call($c, 'lease_grant', 30);
    isnt "$l2->{id}", "$l1->{id}", 'a second lease gets another id';

    ok_call($c, 'put', '/lease/a', 'A', { lease => $l1->{id} });
    ok_call($c, 'put', '/lease/b', 'B', { lease => $l1->{id} });
    ok_call($c, 'put', '/lease/free', 'F');

    my $t = ok_call($c, 'lease_time_to_live', $l1->{id}, { keys => 1 });
    is "$t->{id}", "$l1->{id}", 'time_to_live: id';
    is $t->{granted_ttl}, 60, 'time_to_live: granted_ttl';
    cmp_ok $t->{ttl}, '>', 0, 'time_to_live: ttl positive';
    cmp_ok $t->{ttl}, '<=', 60, 'time_to_live: ttl at most the granted one';
    is_deeply [ sort @{ $t->{keys} // [] } ], [ '/lease/a', '/lease/b' ], 'time_to_live keys: the attached keys';
    ok $t->{header}, 'time_to_live has a header';

    my $nk = ok_call($c, 'lease_time_to_live', $l1->{id});
    ok !exists $nk->{keys}, 'no keys without the keys option';
    my $empty = ok_call($c, 'lease_time_to_live', $l2->{id}, { keys => 1 });
    is scalar(@{ $empty->{keys} // [] }), 0, 'lease without keys: no keys listed';
    is $empty->{granted_ttl}, 30, 'granted_ttl of the second lease';

    my $g = ok_call($c, 'get', '/lease/a');
    is "$g->{kvs}[0]{lease}", "$l1->{id}", 'the key carries the lease id';

    my @ids = lease_ids();
    ok((grep { $_ eq "$l1->{id}" } @ids), 'lease_leases lists the first lease');
    ok((grep { $_ eq "$l2->{id}" } @ids), 'lease_leases lists the second lease');
}

# --- revoke ----------------------------------------------------------------
{
    my $r = ok_call($c, 'lease_revoke', $l1->{id});
    ok $r->{header} && $r->{header}{revision} > 0, 'lease_revoke returns a header';
    my $g = ok_call($c, 'get', '/lease/', { prefix => 1 });
    is_deeply [ map { $_->{key} } @{ $g->{kvs} } ], ['/lease/free'], 'revoke deleted the attached keys only';
    my $t = ok_call($c, 'lease_time_to_live', $l1->{id}, { keys => 1 });
    is $t->{ttl}, -1, 'time_to_live of a revoked lease: ttl -1';
    ok !has_lease($l1->{id}), 'revoked lease no longer listed';
    ok has_lease($l2->{id}), 'the other lease still listed';

    my (undef, $e) = call($c, 'lease_revoke', $l1->{id});
    ok $e, 'revoking twice is an error';
    is $e->{status}, 'NOT_FOUND', 'status NOT_FOUND';
    is $e->{source}, 'lease_revoke', 'source lease_revoke';
    is $e->{message}, 'etcdserver: requested lease not found', 'server message unchanged';

    my (undef, $pe) = call($c, 'put', '/lease/x', 'x', { lease => $l1->{id} });
    is $pe && $pe->{status}, 'NOT_FOUND', 'put with a revoked lease: NOT_FOUND';

    my $never = ok_call($c, 'lease_time_to_live', 424242);
    is $never->{ttl}, -1, 'time_to_live of a lease that never existed: ttl -1';
}

# --- expiry ----------------------------------------------------------------
{
    my $l = ok_call($c, 'lease_grant', 2);
    ok_call($c, 'put', '/expire/k', 'v', { lease => $l->{id} });
    my $gone = 0;
    my $deadline = time + 15;
    while (time < $deadline) {
        pause(0.5);
        last if $gone = !ok_call($c, 'get', '/expire/k')->{count};
    }
    ok $gone, 'the key of an expired lease disappears';
    my $t = ok_call($c, 'lease_time_to_live', $l->{id});
    is $t->{ttl}, -1, 'time_to_live of an expired lease: ttl -1';
    ok !has_lease($l->{id}), 'expired lease not listed';
}

# --- keepalive ticks; the lease outlives its TTL ---------------------------
{
    my $l = ok_call($c, 'lease_grant', 3);
    ok_call($c, 'put', '/ka/k', 'v', { lease => $l->{id} });
    my $t0 = time;
    my $ka = rec_keepalive($c, $l->{id});
    isa_ok $ka->{handle}, 'EV::Etcd::Keepalive';
    is scalar(@{ $ka->{all} }), 0, 'no tick inside the lease_keepalive call';
    pause(5.5);
    my $n = @{ $ka->{ticks} };
    diag sprintf '%d keepalive ticks in %.1fs for a 3s lease', $n, time - $t0;
    cmp_ok $n, '>=', 3, 'at least 3 ticks in ~5 s (one about every ttl/3)';
    cmp_ok $n, '<=', 15, 'but no flood of refreshes';
    is scalar(@{ $ka->{errs} }), 0, 'no errors';
    my $tick = $ka->{ticks}[-1];
    is "$tick->{id}", "$l->{id}", 'tick carries the lease id';
    is $tick->{ttl}, 3, 'tick carries the refreshed ttl';
    ok $tick->{header} && $tick->{header}{revision} > 0, 'tick carries a header';
    my @gap = map { $ka->{all}[$_][2] - $ka->{all}[ $_ - 1 ][2] } 1 .. $#{ $ka->{all} };
    my ($maxgap) = sort { $b <=> $a } @gap;
    cmp_ok $maxgap, '<', 3, 'ticks come well within the TTL';

    my $t = ok_call($c, 'lease_time_to_live', $l->{id});
    cmp_ok $t->{ttl}, '>', 0, 'lease alive after more than its TTL';
    is ok_call($c, 'get', '/ka/k')->{count}, 1, 'its key still exists';

    # cancel
    my (@cb, $ticks_at_cb);
    $ka->{handle}->cancel(sub { push @cb, [@_]; $ticks_at_cb = @{ $ka->{all} } });
    is scalar(@cb), 0, 'first cancel does not call back inside the call';
    ok run_until(sub { @cb }, 10), 'cancel calls back';
    is_deeply $cb[0], [ {}, undef ], 'cancel callback gets ({}, undef)';

    my @second;
    $ka->{handle}->cancel(sub { push @second, [@_] });
    is_deeply \@second, [ [ {}, undef ] ], 'second cancel calls back before cancel returns';

    # without refreshes the lease now runs out
    my $gone = 0;
    my $deadline = time + 15;
    while (time < $deadline) {
        pause(0.5);
        last if $gone = !ok_call($c, 'get', '/ka/k')->{count};
    }
    ok $gone, 'after cancel the lease expires (refreshes really stopped)';
    is scalar(@{ $ka->{all} }), $ticks_at_cb, 'no tick after the cancel callback';
    is scalar(@cb), 1, 'cancel callback called once';
}

# --- several keepalives on one client -------------------------------------
{
    my $la = ok_call($c, 'lease_grant', 3);
    my $lb = ok_call($c, 'lease_grant', 3);
    my $a  = rec_keepalive($c, $la->{id});
    my $b  = rec_keepalive($c, $lb->{id});
    my $b2 = rec_keepalive($c, $lb->{id});    # a second keepalive of the same lease
    ok run_until(sub { @{ $a->{ticks} } >= 2 && @{ $b->{ticks} } >= 2 && @{ $b2->{ticks} } >= 2 }, 10),
        'keepalives of two leases (and two of one lease) all tick';
    is_deeply [ do { my %s; grep { !$s{$_}++ } map { "$_->{id}" } @{ $b->{ticks} } } ], [ "$lb->{id}" ],
        'each keepalive gets the ticks of its own lease';
    cancel_sync($b);
    my ($na, $nb2, $nb) = (scalar @{ $a->{ticks} }, scalar @{ $b2->{ticks} }, scalar @{ $b->{all} });
    pause(4);
    cmp_ok scalar(@{ $a->{ticks} }), '>', $na, 'other lease keeps ticking after one is cancelled';
    cmp_ok scalar(@{ $b2->{ticks} }), '>', $nb2, 'second keepalive of the same lease keeps ticking';
    is scalar(@{ $b->{all} }), $nb, 'the cancelled keepalive is silent';
    cmp_ok ok_call($c, 'lease_time_to_live', $lb->{id})->{ttl}, '>', 0, 'shared lease still alive';
    cancel_sync($_) for $a, $b2;
    ok_call($c, 'lease_revoke', $_->{id}) for $la, $lb;
}

# --- revoked under a running keepalive --------------------------------------
{
    my $l = ok_call($c, 'lease_grant', 3);
    my $ka = rec_keepalive($c, $l->{id});
    ok run_until(sub { @{ $ka->{ticks} } >= 1 }, 10), 'keepalive ticking';
    ok_call($c, 'lease_revoke', $l->{id});
    ok run_until(sub { @{ $ka->{errs} } }, 10), 'keepalive of a revoked lease reports an error';
    pause(3);    # the keepalive has ended: no more ticks nor errors
    is scalar(@{ $ka->{errs} }), 1, 'exactly one error';
    my $e = $ka->{errs}[0];
    is $e->{status}, 'NOT_FOUND', 'status NOT_FOUND';
    is $e->{source}, 'keepalive', 'source keepalive';
    is $e->{message}, 'etcdserver: requested lease not found', 'server message';
    is $e->{retryable}, 0, 'not retryable';
    is $ka->{all}[-1][1], $e, 'the error is the last callback';
    my @cc = cancel_sync($ka);
    is_deeply \@cc, [ [ {}, undef ] ], 'cancel on the ended keepalive calls back with success';

    # a keepalive of a lease that does not exist (any more) fails the same way
    my $dead = rec_keepalive($c, $l->{id});
    ok run_until(sub { @{ $dead->{all} } }, 10), 'keepalive of an unknown lease answers';
    pause(2);
    is scalar(@{ $dead->{all} }), 1, 'with one callback';
    is $dead->{errs}[0] && $dead->{errs}[0]{status}, 'NOT_FOUND', 'NOT_FOUND';
    is $dead->{errs}[0] && $dead->{errs}[0]{source}, 'keepalive', 'source keepalive';
}

# --- EV::run returns once no keepalive is live -------------------------------
{
    my $fired = 0;
    my $guard = EV::timer(15, 0, sub { $fired = 1; EV::break(EV::BREAK_ALL()) });
    $guard->keepalive(0);
    EV::run();
    ok !$fired, 'EV::run returns by itself when no keepalive is live';
}

# --- argument errors -----------------------------------------------------------
{
    ok !eval { $c->lease_keepalive('zz', sub {}); 1 }, 'non-numeric keepalive lease croaks';
    like $@, qr/^lease_keepalive: .*lease/, 'naming method and argument';
    for my $case ([ lease_grant => 5 ], [ lease_grant => 5, 'not code' ], [ lease_revoke => 1 ],
                  [ lease_leases => () ], [ lease_time_to_live => 1 ], [ lease_time_to_live => 1, { keys => 1 } ],
                  [ lease_keepalive => 1 ], [ lease_keepalive => 1, {} ]) {
        my ($m, @args) = @$case;
        ok !eval { $c->$m(@args); 1 }, "$m without a callback croaks";
        like $@, qr/callback must be a code reference/, "$m: croak message names the callback";
    }
}

# --- kill -9 and restart in the middle of a keepalive -----------------------
{
    my $l   = ok_call($c, 'lease_grant', 10);
    my $l0  = ok_call($c, 'lease_grant', 10);
    ok_call($c, 'put', '/kr/k', 'v', { lease => $l->{id} });
    my $ka  = rec_keepalive($c, $l->{id});
    my $off = rec_keepalive($c, $l0->{id}, { auto_reconnect => 0 });
    ok run_until(sub { @{ $ka->{ticks} } >= 2 && @{ $off->{ticks} } >= 1 }, 15), 'keepalives ticking before the kill';

    $srv->kill9;
    my $t_kill = time;
    ok run_until(sub { @{ $off->{errs} } }, 15), 'auto_reconnect => 0: error on connection loss';
    pause(2 - (time - $t_kill)) if time - $t_kill < 2;    # ~2 s of downtime
    my $before = @{ $ka->{ticks} };
    $srv->restart;
    diag sprintf 'server down for %.1fs', time - $t_kill;

    ok run_until(sub { @{ $ka->{ticks} } >= $before + 2 }, 30), 'keepalive ticks again after the restart';
    is scalar(@{ $ka->{errs} }), 0, 'the reconnecting keepalive reported no error';
    is "$ka->{ticks}[-1]{id}", "$l->{id}", 'ticks for the same lease';
    is $ka->{ticks}[-1]{ttl}, 10, 'with the full ttl';
    my $t = ok_call($c, 'lease_time_to_live', $l->{id}, { keys => 1 });
    cmp_ok $t->{ttl}, '>', 0, 'the lease still exists after the restart';
    is_deeply $t->{keys}, ['/kr/k'], 'with its key';

    is scalar(@{ $off->{errs} }), 1, 'auto_reconnect => 0: exactly one error';
    my $e = $off->{errs}[0];
    is $e->{status}, 'UNAVAILABLE', 'status UNAVAILABLE';
    is $e->{source}, 'keepalive', 'source keepalive';
    is $e->{retryable}, 1, 'retryable';
    is $off->{all}[-1][1], $e, 'nothing after the error';

    my @cc = cancel_sync($ka);
    is_deeply \@cc, [ [ {}, undef ] ], 'cancel after the reconnect';
    cancel_sync($off);
    ok_call($c, 'lease_revoke', $_->{id}) for $l, $l0;
}

# --- retries run out: the server goes away for good -------------------------
{
    my $one = EV::Etcd->new(endpoints => [ $srv->endpoint ], max_retries => 1);
    my @l  = map { ok_call($c, 'lease_grant', 30)->{id} } 1 .. 2;
    my @ka = map { rec_keepalive($one, $_) } @l;
    ok run_until(sub { !grep { !@{ $_->{ticks} } } @ka }, 10), 'keepalives ticking';
    my $t0 = time;
    $srv->kill9;

    my $fired = 0;
    my $guard = EV::timer(40, 0, sub { $fired = 1; EV::break(EV::BREAK_ALL()) });
    $guard->keepalive(0);
    EV::run();
    ok !$fired, 'EV::run returns by itself once the keepalives have failed';
    diag sprintf 'keepalives ended %.1fs after the kill', time - $t0;
    for my $k (@ka) {
        is scalar(@{ $k->{errs} }), 1, 'max_retries 1: exactly one error';
        is $k->{errs}[0] && $k->{errs}[0]{status}, 'UNAVAILABLE', 'UNAVAILABLE';
        is $k->{errs}[0] && $k->{errs}[0]{source}, 'keepalive', 'source keepalive';
        is $k->{all}[-1][1], $k->{errs}[0], 'the error is the last callback';
    }
}

done_testing;
