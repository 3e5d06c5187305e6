#!/usr/bin/env perl
# retry => N: reads are repeated on UNAVAILABLE (on the next endpoint);
# writes only when they provably never left the client (no connection could
# be made). A dead endpoint first in the list, and a server killed while
# calls are in flight, with the second server checked for what arrived.
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

my $s1 = start_etcd(name => 'retry1');
my $s2 = start_etcd(name => 'retry2');
my $on2 = EV::Etcd->new(endpoints => [ $s2->endpoint ]);
my $dead = '127.0.0.1:' . EtcdTest::free_port();

sub hooked {
    my (%o) = @_;
    my @seen;
    my $c = EV::Etcd->new(%o, on_request => sub { push @seen, $_[0] });
    return ($c, \@seen);
}

# --- a dead endpoint first -------------------------------------------------------
{
    my ($c, $seen) = hooked(endpoints => [ $dead, $s2->endpoint ], retry => 2);
    my $r = ok_call($c, 'get', 'retry/none');
    ok $r, 'a read with a dead endpoint first succeeds';
    is $seen->[-1]{retries}, 1, '... after one retry';
    is $seen->[-1]{endpoint}, $s2->endpoint, '... on the next endpoint';

    ($c, $seen) = hooked(endpoints => [ $dead, $s2->endpoint ], retry => 2);
    ok ok_call($c, 'put', 'retry/w1', 'once'), 'a write that could not connect is repeated';
    is $seen->[-1]{retries}, 1, '... once';
    my $g = ok_call($on2, 'get', 'retry/w1');
    is $g->{kvs}[0]{version}, 1, '... and written exactly once';

    ($c, $seen) = hooked(endpoints => [ $dead, $s2->endpoint ], retry => 1);
    my $lease = ok_call($c, 'lease_grant', 30);
    ok $lease->{id}, 'lease_grant is repeated the same way';
    ($c, $seen) = hooked(endpoints => [ $dead, $s2->endpoint ], retry => 1);
    ok ok_call($c, 'txn', [], [ { put => { key => 'retry/t', value => 1 } } ], []), '... and txn';
    ok_call($on2, 'lease_revoke', $lease->{id});

    ($c, $seen) = hooked(endpoints => [ $dead, $s2->endpoint ]);
    my ($resp, $err) = call($c, 'get', 'retry/none');
    is $err->{status}, 'UNAVAILABLE', 'without retry (the default) the first call fails';
    is $seen->[-1]{retries}, 0, '... unrepeated';

    my $dead2 = '127.0.0.1:' . EtcdTest::free_port();
    ($c, $seen) = hooked(endpoints => [ $dead, $dead2 ], retry => 3);
    my $t0 = time;
    ($resp, $err) = call($c, 'put', 'retry/x', 1);
    is $err->{status}, 'UNAVAILABLE', 'when every attempt fails, the last error is reported';
    is $seen->[-1]{retries}, 3, '... after exactly retry => 3 repeats';
    cmp_ok time - $t0, '<', 5, '... with a short backoff';
}

# --- a server killed while calls are in flight ----------------------------------
{
    my ($c, $seen) = hooked(endpoints => [ $s1->endpoint, $s2->endpoint ], retry => 3);
    ok_call($c, 'put', 'retry/warm', 1);    # connected to s1
    is $seen->[-1]{endpoint}, $s1->endpoint, 'connected to the first server';
    kill 'STOP', $s1->pid;
    pause(0.2);
    my %got;
    $c->put('retry/inflight', 'maybe', sub { $got{put} = [@_] });
    $c->lease_grant(30, sub { $got{lease} = [@_] });
    $c->get('retry/warm', sub { $got{get} = [@_] });
    $c->member_list(sub { $got{members} = [@_] });
    pause(0.5);    # the requests are on the wire (in the frozen server's socket)
    $s1->kill9;
    run_until(sub { keys %got == 4 }, 15);
    my %by = map { $_->{method} => $_ } @$seen;

    is $got{put}[1]{status}, 'UNAVAILABLE', 'a put that may have reached the dead server fails';
    is $by{put}{retries}, 0, '... and is not repeated';
    is ok_call($on2, 'get', 'retry/inflight')->{count}, 0, '... so the second server never got it';
    is $got{lease}[1]{status}, 'UNAVAILABLE', 'a lease_grant in flight fails the same way';
    is $by{lease_grant}{retries}, 0, '... unrepeated';

    ok !$got{get}[1], 'a get in flight is repeated on the second server and succeeds'
        or diag explain $got{get}[1];
    cmp_ok $by{get}{retries}, '>=', 1, '... after a retry';
    is $by{get}{endpoint}, $s2->endpoint, '... there';
    ok !$got{members}[1], 'member_list too';

    $s1->restart;
}

# --- bad values --------------------------------------------------------------------
for my $case ([ -1, qr/retry must not be negative/ ], [ 1.5, qr/retry must be an integer/ ],
              [ 101, qr/retry must be at most 100/ ], [ 'x', qr/retry must be an integer/ ]) {
    my ($v, $re) = @$case;
    my $line = __LINE__ + 1;
    eval { EV::Etcd->new(endpoints => [ $s2->endpoint ], retry => $v) };
    like $@, qr/^EV::Etcd->new: $re.* at \Q$0\E line $line/, "retry => $v croaks";
}

done_testing;
