#!/usr/bin/env perl
# Distributed lock: lock/unlock, contenders on two clients waiting for each
# other (released by unlock and by lease_revoke), queue order, a waiting lock
# outliving the client timeout, and errors.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'lock');
my $c1 = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);
# the second client has the shortest timeout: a waiting lock must outlive it
my $c2 = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 1);



sub pause { run_until(sub { 0 }, $_[0]) }
sub lease { ok_call($c1, 'lease_grant', $_[0] // 60)->{id} }

# Start a lock call and record its outcome.
# A contender; it waits without a deadline unless $opts says otherwise.
sub start_lock {
    my ($client, $name, $lease, $opts) = @_;
    my $rec = { done => 0 };
    $client->lock($name, $lease, $opts // { timeout => 0 }, sub {
        @$rec{qw(resp err at)} = (@_, time);
        $rec->{done}++;
    });
    return $rec;
}

# --- lock / unlock -----------------------------------------------------------
{
    my $l = lease();
    my $r = ok_call($c1, 'lock', 'res/basic', $l);
    like $r->{key}, qr{^res/basic/}, 'lock key starts with the lock name';
    ok length($r->{key}) > length('res/basic/'), 'and has a holder-specific suffix';
    ok $r->{header} && $r->{header}{revision} > 0, 'lock response has a header';

    my $g = ok_call($c1, 'get', $r->{key});
    is $g->{count}, 1, 'the lock key exists while held';
    is "$g->{kvs}[0]{lease}", "$l", 'attached to the given lease';
    is $g->{kvs}[0]{create_revision}, $r->{header}{revision}, 'created at the lock revision';

    my $u = ok_call($c1, 'unlock', $r->{key});
    ok $u->{header} && $u->{header}{revision} > $r->{header}{revision}, 'unlock returns a later header';
    is ok_call($c1, 'get', $r->{key})->{count}, 0, 'unlock removes the lock key';

    my $again = ok_call($c1, 'lock', 'res/basic', $l);
    ok $again->{key}, 'the lock can be taken again after unlock';
    ok_call($c1, 'unlock', $again->{key});

    # binary lock names round-trip
    my $bin = "res/\x00\xff";
    my $br = ok_call($c1, 'lock', $bin, $l);
    is substr($br->{key}, 0, length $bin), $bin, 'binary lock name is the key prefix';
    ok_call($c1, 'unlock', $br->{key});
    ok_call($c1, 'lease_revoke', $l);
}

# --- two contenders, released by unlock --------------------------------------
{
    my ($la, $lb) = (lease(), lease());
    my $a = ok_call($c1, 'lock', 'res/pair', $la);
    my $b = start_lock($c2, 'res/pair', $lb);
    pause(2.5);    # longer than $c2's timeout
    is $b->{done}, 0, 'second contender waits while the first holds the lock';

    my $u = ok_call($c1, 'unlock', $a->{key});
    my $t_unlock = time;
    ok run_until(sub { $b->{done} }, 10), 'second contender gets the lock after unlock';
    ok !$b->{err}, 'without error (timeout => 0: no deadline)'
        or diag "$b->{err}{status}: $b->{err}{message}";
    like $b->{resp}{key}, qr{^res/pair/}, 'its key has the lock name';
    isnt $b->{resp}{key}, $a->{key}, 'and differs from the first holder\'s key';
    cmp_ok $b->{resp}{header}{revision}, '>=', $u->{header}{revision}, 'acquired at or after the unlock revision';
    is $b->{done}, 1, 'lock callback called once';

    my $g = ok_call($c1, 'get', 'res/pair/', { prefix => 1 });
    is_deeply [ map { $_->{key} } @{ $g->{kvs} } ], [ $b->{resp}{key} ], 'only the new holder\'s key remains';
    ok_call($c2, 'unlock', $b->{resp}{key});
    ok_call($c1, 'lease_revoke', $_) for $la, $lb;
}

# --- a waiting lock obeys the client's timeout, or its own -----------------
{
    my ($la, $lb) = (lease(), lease());
    my $a = ok_call($c1, 'lock', 'res/deadline', $la);
    my $t0 = time;
    my $b = { done => 0 };    # the 3-argument form: the client's timeout
    $c2->lock('res/deadline', $lb, sub { @$b{qw(resp err at)} = (@_, time); $b->{done}++ });
    ok run_until(sub { $b->{done} }, 10), 'a lock waiting past the client timeout ends';
    is $b->{err}{status}, 'DEADLINE_EXCEEDED', '... with DEADLINE_EXCEEDED';
    is $b->{err}{source}, 'lock', '... from lock';
    is $b->{err}{retryable}, 1, '... retryable';
    cmp_ok $b->{at} - $t0, '>=', 0.9, '... after the client timeout (1 s)';
    cmp_ok $b->{at} - $t0, '<', 5, '... not much later';

    my $t1 = time;
    my $own = start_lock($c1, 'res/deadline', $lb, { timeout => 1.5 });
    ok run_until(sub { $own->{done} }, 10), 'a per-call timeout overrides the client\'s 10 s';
    is $own->{err}{status}, 'DEADLINE_EXCEEDED', '... DEADLINE_EXCEEDED';
    like $own->{err}{message}, qr/1\.5/, '... naming the per-call deadline';
    cmp_ok $own->{at} - $t1, '>=', 1.4, '... no sooner than 1.5 s';
    cmp_ok $own->{at} - $t1, '<', 6, '... and not at the client\'s 10 s';

    # the server gives up the waiting contender's key along with the call
    my $left;
    for (1 .. 50) {
        $left = ok_call($c1, 'get', 'res/deadline/', { prefix => 1 })->{kvs};
        last if @$left == 1;
        pause(0.1);
    }
    is_deeply [ map { $_->{key} } @$left ], [ $a->{key} ],
        'only the holder\'s key is left after the timed-out waits';
    ok_call($c1, 'unlock', $a->{key});
    my $after = ok_call($c1, 'lock', 'res/deadline', $lb, { timeout => 5 });
    ok $after->{key}, 'the lock is free for the next taker';
    ok_call($c1, 'unlock', $after->{key});
    ok_call($c1, 'lease_revoke', $_) for $la, $lb;
}

# --- two contenders, released by revoking the holder's lease ----------------
{
    my ($la, $lb) = (lease(), lease());
    my $a = ok_call($c1, 'lock', 'res/revoke', $la);
    my $b = start_lock($c2, 'res/revoke', $lb);
    pause(2);
    is $b->{done}, 0, 'second contender waits';

    my $rv = ok_call($c1, 'lease_revoke', $la);
    ok run_until(sub { $b->{done} }, 10), 'second contender gets the lock once the holder\'s lease is revoked';
    ok !$b->{err}, 'without error';
    like $b->{resp}{key}, qr{^res/revoke/}, 'lock key';
    cmp_ok $b->{resp}{header}{revision}, '>=', $rv->{header}{revision}, 'acquired after the revoke';
    is ok_call($c1, 'get', $a->{key})->{count}, 0, 'the revoked holder\'s key is gone';
    ok_call($c2, 'unlock', $b->{resp}{key});
    ok_call($c1, 'lease_revoke', $lb);
}

# --- three contenders are served in arrival order ---------------------------
{
    my @l = map { lease() } 1 .. 3;
    my $a = ok_call($c1, 'lock', 'res/queue', $l[0]);
    my $b = start_lock($c2, 'res/queue', $l[1]);
    pause(0.5);
    my $c = start_lock($c1, 'res/queue', $l[2]);
    pause(1.5);
    is $b->{done} + $c->{done}, 0, 'both waiters wait';

    ok_call($c1, 'unlock', $a->{key});
    ok run_until(sub { $b->{done} }, 10), 'first waiter served first';
    pause(1);
    is $c->{done}, 0, 'second waiter still waits while the first waiter holds the lock';

    ok_call($c2, 'unlock', $b->{resp}{key});
    ok run_until(sub { $c->{done} }, 10), 'second waiter served next';
    ok !$c->{err}, 'without error';
    ok_call($c1, 'unlock', $c->{resp}{key});
    ok_call($c1, 'lease_revoke', $_) for @l;
}

# --- the lock follows a kept-alive lease ------------------------------------
{
    my $l = ok_call($c1, 'lease_grant', 3)->{id};
    my $ticks = 0;
    my $ka = $c1->lease_keepalive($l, sub { $ticks++ unless $_[1] });
    my $a = ok_call($c1, 'lock', 'res/kept', $l);
    my $b = start_lock($c2, 'res/kept', lease());
    pause(5);    # beyond the 3 s TTL
    is $b->{done}, 0, 'a lock on a kept-alive lease is held beyond the TTL';
    cmp_ok $ticks, '>=', 2, 'the keepalive was ticking';

    my $cancelled;
    $ka->cancel(sub { $cancelled = 1 });
    run_until(\$cancelled, 10);
    ok run_until(sub { $b->{done} }, 15), 'once the keepalive stops, the lease expires and the waiter gets the lock';
    ok !$b->{err}, 'without error';
    ok_call($c2, 'unlock', $b->{resp}{key}) if $b->{resp};
}

# --- errors --------------------------------------------------------------------
{
    my (undef, $e) = call($c1, 'lock', 'res/nolease', 7777777);
    ok $e, 'lock with a lease that does not exist fails';
    is $e->{source}, 'lock', 'source lock';
    like $e->{message}, qr/lease not found/, 'the server\'s reason';
    is ok_call($c1, 'get', 'res/nolease/', { prefix => 1 })->{count}, 0, 'no lock key was left behind';

    ok !eval { $c1->lock('x', 'abc', sub {}); 1 }, 'non-numeric lease croaks';
    like $@, qr/^lock: .*lease/, 'naming the method and the argument';
    ok !eval { $c1->lock(undef, 1, sub {}); 1 }, 'undefined name croaks';
    like $@, qr/^lock: .*name/, 'naming the argument';
    for my $case ([ lock => 'x', 1 ], [ lock => 'x', 1, 'not code' ], [ unlock => 'x' ], [ unlock => 'x', {} ]) {
        my ($m, @args) = @$case;
        ok !eval { $c1->$m(@args); 1 }, "$m without a code ref croaks";
        like $@, qr/callback must be a code reference/, "$m: croak message names the callback";
    }
}

done_testing;
