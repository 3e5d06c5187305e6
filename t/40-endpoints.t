#!/usr/bin/env perl
# Endpoints at run time, on a three-member cluster: auto_sync_interval
# learns every member from a single endpoint and the client keeps working
# when that member dies; set_endpoints moves calls and streams to the new
# list without losing a callback (and keeps the current endpoint when the
# new list has it); bad lists croak.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

sub pause { run_until(sub { 0 }, $_[0]) }

my @all = start_cluster(3, name_prefix => 'ep');
my @url = map { $_->client_url } @all;

# Members that are frozen or killed below are followers: a request that a
# follower forwarded to a frozen leader is only answered at its deadline.
my $leader_id = ok_call(EV::Etcd->new(endpoints => [ map { $_->endpoint } @all ]), 'status')->{leader};
my ($leader) = grep {
    ok_call(EV::Etcd->new(endpoints => [ $_->endpoint ]), 'status')->{header}{member_id} eq $leader_id
} @all;
my @m = ($leader, grep { $_ != $leader } @all);    # $m[0] leads; $m[1], $m[2] follow
my $writer = EV::Etcd->new(endpoints => [ $leader->endpoint ], timeout => 5);

sub watch_rec {
    my ($client, $key) = @_;
    my $rec = { ev => [], err => [], created => 0 };
    $rec->{w} = $client->watch($key, sub {
        my ($m, $e) = @_;
        push @{ $rec->{err} }, $e if $e;
        $rec->{created} = 1 if $m && $m->{created};
        push @{ $rec->{ev} }, @{ $m->{events} || [] } if $m;
    });
    run_until(sub { $rec->{created} }, 10);
    return $rec;
}

# Retries a call until it succeeds (right after a member dies the first
# attempts may meet the dead connection and fail UNAVAILABLE).
sub eventually {
    my ($client, @call) = @_;
    my ($r, $e);
    for (1 .. 20) {
        ($r, $e) = call($client, @call);
        return $r unless $e;
        last unless $e->{retryable};
        pause(0.25);
    }
    fail("$call[0] did not succeed: $e->{status} $e->{message}");
    return;
}

# --- set_endpoints: calls and streams move, nothing is lost ------------------
{
    my @seen;
    my $c = EV::Etcd->new(endpoints => [ $m[1]->endpoint ], on_request => sub { push @seen, $_[0] });
    my $rec = watch_rec($c, 'ep/s');
    ok $rec->{created}, 'a watch on member 2';
    my $lease = ok_call($c, 'lease_grant', 4)->{id};
    my @ka;
    my $ka = $c->lease_keepalive($lease, sub { push @ka, [@_] });

    my @got;
    $c->put("ep/burst/$_", $_, sub { push @got, [@_] }) for 1 .. 50;
    $c->set_endpoints([ $m[2]->endpoint ]);
    is_deeply $c->endpoints, [ $m[2]->endpoint ], 'endpoints() reports the new list';
    run_until(sub { @got == 50 }, 15);
    is scalar @got, 50, 'every call in flight across set_endpoints is answered';
    is scalar(grep { $_->[1] } @got), 0, '... successfully';

    # Member 2 is frozen: whatever still used it would hang.
    kill 'STOP', $m[1]->pid;
    my $t0 = time;
    ok_call($writer, 'put', 'ep/s', 'moved');
    ok run_until(sub { @{ $rec->{ev} } }, 8), 'the watch moved to member 3 (member 2 is frozen)';
    cmp_ok time - $t0, '<', 5, '... promptly';
    is $rec->{ev}[0]{kv}{value}, 'moved', '... and delivers the put once';
    my $n = @ka;
    ok run_until(sub { @ka >= $n + 2 }, 8), 'the keepalive moved and keeps refreshing';
    ok !(grep { $_->[1] } @ka), '... without error';
    ok ok_call($c, 'get', 'ep/s'), 'calls go to member 3';
    is $seen[-1]{endpoint}, $m[2]->endpoint, '... as on_request shows';
    kill 'CONT', $m[1]->pid;

    # A list that still has the current endpoint keeps it.
    $c->set_endpoints([ $m[0]->endpoint, $m[2]->endpoint ]);
    ok_call($c, 'get', 'ep/s');
    is $seen[-1]{endpoint}, $m[2]->endpoint, 'a new list with the current endpoint keeps it';
    ok_call($writer, 'put', 'ep/s', 'still');
    ok run_until(sub { @{ $rec->{ev} } >= 2 }, 5), '... and the watch was not disturbed';
    is scalar @{ $rec->{err} }, 0, 'the watch saw no error at all';
    my $done = 0;
    $_->cancel(sub { $done++ }) for $rec->{w}, $ka;
    run_until(sub { $done == 2 }, 5);
    ok_call($c, 'lease_revoke', $lease);
}

# --- auto_sync_interval: one endpoint given, all learnt, the first dies -------
{
    my $c = EV::Etcd->new(endpoints => [ $m[1]->endpoint ], auto_sync_interval => 0.5, max_retries => -1);
    my $t0 = time;
    ok run_until(sub { @{ $c->endpoints } == 3 }, 10), 'auto sync learns all three members';
    is_deeply [ sort @{ $c->endpoints } ], [ sort @url ], '... as their client URLs';
    my $rec = watch_rec($c, 'ep/a');
    my $lease = ok_call($c, 'lease_grant', 5)->{id};
    my @ka;
    my $ka = $c->lease_keepalive($lease, sub { push @ka, [@_] });
    ok_call($writer, 'put', 'ep/a', 'before');
    ok run_until(sub { @{ $rec->{ev} } }, 5), 'the watch works';

    $m[1]->kill9;
    ok_call($writer, 'put', 'ep/a', 'after');
    ok eventually($c, 'put', 'ep/a2', 1), 'calls work after the member it started with died';
    ok run_until(sub { @{ $rec->{ev} } >= 2 }, 15), 'the watch continues on another member';
    is_deeply [ map { $_->{kv}{value} } @{ $rec->{ev} } ], [ 'before', 'after' ], '... nothing lost or repeated';
    my $n = @ka;
    ok run_until(sub { @ka >= $n + 2 }, 10), 'the keepalive continues';
    cmp_ok ok_call($c, 'lease_time_to_live', $lease)->{ttl}, '>', 0, '... the lease is alive';
    ok !@{ $rec->{err} }, 'no error reached the watch' or diag explain $rec->{err};
    ok !(grep { $_->[1] } @ka), 'no error reached the keepalive';
    my $done = 0;
    $_->cancel(sub { $done++ }) for $rec->{w}, $ka;
    run_until(sub { $done == 2 }, 5);
}

# --- bad lists ------------------------------------------------------------------
{
    my $c = EV::Etcd->new(endpoints => [ $m[2]->endpoint ]);
    my @cases = (
        [ [],                                 qr/^set_endpoints: wrong number of arguments/ ],
        [ [ 'x:1' ],                          qr/^set_endpoints: endpoints must be an array reference/ ],
        [ [ [] ],                             qr/^set_endpoints: endpoints must not be empty/ ],
        [ [ [ undef ] ],                      qr/^set_endpoints: endpoints\[0\] is undefined/ ],
        [ [ [ 'https://127.0.0.1:1' ] ],      qr/^set_endpoints: endpoint 'https:\/\/127.0.0.1:1' asks for TLS; this client uses plaintext/ ],
        [ [ [ '127.0.0.1:1/path' ] ],         qr/^set_endpoints: endpoint '127.0.0.1:1\/path' is not host:port/ ],
    );
    for my $case (@cases) {
        my ($args, $re) = @$case;
        my $line = __LINE__ + 1;
        eval { $c->set_endpoints(@$args) };
        like $@, qr/$re.* at \Q$0\E line $line/, "croaks: $re";
    }
    is_deeply $c->endpoints, [ $m[2]->endpoint ], 'a refused list changes nothing';
    for my $bad (-1, 'often', 9**9**9) {
        eval { EV::Etcd->new(endpoints => [ $m[2]->endpoint ], auto_sync_interval => $bad) };
        like $@, qr/^EV::Etcd->new: auto_sync_interval must be a/, "auto_sync_interval => $bad croaks";
    }
}

done_testing;
