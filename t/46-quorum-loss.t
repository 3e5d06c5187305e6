#!/usr/bin/env perl
# Quorum loss on one member. Three members talk to each other only through
# TcpProxy's, so the test can cut one member (A) off from the other two
# while the client still reaches A directly. Streams carry etcd's
# require-leader metadata, so A ends them once it has lost its leader; the
# client then moves to a healthy member and resumes: the watch from the
# revision after the last one it delivered, the keepalive before its lease
# can lapse, the observe with the next leader change. Unary calls on A fail
# at once (UNAVAILABLE, retryable) instead of hanging to their deadline,
# while status, which a member answers alone, still works there.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);
use TcpProxy;

need_etcd();
use EV;
use EV::Etcd;

sub pause { run_until(sub { 0 }, $_[0]) }

# ---- a cluster whose peer traffic goes through proxies ----

my $token = 'ev-etcd-quorum-' . $$ . '-' . int(time);
my @spec = map {
    my $peer = EtcdTest::free_port();
    { name => "q$_", peer_port => $peer,
      proxy => TcpProxy->new(upstream => $peer, tag_header => 'X-Server-From') }
} 1 .. 3;
my $ic = join ',', map { "$_->{name}=http://127.0.0.1:" . $_->{proxy}->port } @spec;
my @m = map {
    my $s = $_;
    EtcdTest::Server->_new(
        name                  => $s->{name},
        peer_port             => $s->{peer_port},
        initial_cluster       => $ic,
        initial_cluster_state => 'new',
        token                 => $token,
        # Peers are reached through the proxy; a short election timeout
        # keeps the test quick (etcd ends streams after 3 of them).
        extra => [ '--initial-advertise-peer-urls' => 'http://127.0.0.1:' . $s->{proxy}->port,
                   '--heartbeat-interval' => 50, '--election-timeout' => 500 ],
    )
} @spec;
$_->_spawn for @m;
EtcdTest::wait_all_healthy(30, @m);

my %id_of;    # member name => member id in hex, as peers name themselves
for my $mem (@{ ok_call(EV::Etcd->new(endpoints => [ $m[0]->endpoint ]), 'member_list')->{members} }) {
    $id_of{ $mem->{name} } = sprintf '%x', $mem->{id};
}
is(scalar keys %id_of, 3, 'three members');

# A is a follower: cutting the leader would also work (check-quorum makes
# it step down), but a follower keeps the timing simple.
my $leader_id = ok_call(EV::Etcd->new(endpoints => [ $m[0]->endpoint ]), 'status')->{leader};
my ($ai) = grep {
    ok_call(EV::Etcd->new(endpoints => [ $m[$_]->endpoint ]), 'status')->{header}{member_id} ne $leader_id
} 0 .. 2;
my $A = $m[$ai];
my @rest = map { $m[$_] } grep { $_ != $ai } 0 .. 2;
my @rest_proxy = map { $spec[$_]{proxy} } grep { $_ != $ai } 0 .. 2;

# The client under test lists A first; the writer never touches A.
my $etcd = EV::Etcd->new(endpoints => [ map { $_->endpoint } $A, @rest ], timeout => 5);
my $writer = EV::Etcd->new(endpoints => [ map { $_->endpoint } @rest ], timeout => 5);
my $only_a = EV::Etcd->new(endpoints => [ $A->endpoint ], timeout => 5);

# ---- streams on A, all confirmed live ----

my $key = "/quorum/$$/w";
my (@events, @stream_err, $created);
my $w = $etcd->watch($key, sub {
    my ($m, $e) = @_;
    push @stream_err, ['watch', $e] if $e;
    $created = 1 if $m && $m->{created};
    push @events, map { [ $_->{kv}{mod_revision}, $_->{kv}{value} ] } @{ $m->{events} || [] } if $m;
});
run_until(\$created, 10) or BAIL_OUT('watch not created');

my $lease = ok_call($writer, 'lease_grant', 8)->{id};
my @ticks;
my $ka = $etcd->lease_keepalive($lease, sub {
    my ($m, $e) = @_;
    push @stream_err, ['keepalive', $e] if $e;
    push @ticks, [ time, $m->{ttl} ] if $m;
});
run_until(sub { @ticks }, 10) or BAIL_OUT('keepalive silent');

my $election = "/quorum/$$/election";
my $leadership = ok_call($writer, 'election_campaign', $election,
                         ok_call($writer, 'lease_grant', 60)->{id}, 'v0')->{leader};
my @observed;
my $obs = $etcd->election_observe($election, sub {
    my ($m, $e) = @_;
    push @stream_err, ['observe', $e] if $e;
    push @observed, $m->{kv}{value} if $m;
});
run_until(sub { @observed }, 10) or BAIL_OUT('observe silent');
is($observed[-1], 'v0', 'observe reports the first leader value');

# Puts from the writer, one every 100 ms, for the whole test.
my @written;    # [mod_revision, value] in commit order
my ($seq, $put_busy) = (0, 0);
my $putter = EV::timer(0, 0.1, sub {
    return if $put_busy;
    $put_busy = 1;
    my $v = 'v' . ++$seq;
    $writer->put($key, $v, sub {
        my ($r, $e) = @_;
        $put_busy = 0;
        push @written, [ $r->{header}{revision}, $v ] unless $e;
    });
});
run_until(sub { @events >= 3 }, 10);
ok(@events >= 3, 'the watch delivers before the cut');

# ---- the cut ----

$spec[$ai]{proxy}->freeze;                      # nothing reaches A's peer port
$_->cut($id_of{ $A->name }) for @rest_proxy;    # nor what A sends the others
my $cut_at = time;

# A notices within a few election timeouts; status answers without a leader.
my $lost_at;
run_until(sub {
    my ($r) = call($only_a, 'status');
    $lost_at = time if $r && !$r->{leader};
    $lost_at;
}, 20);
ok($lost_at, sprintf 'A has lost its leader (%.1f s after the cut)', ($lost_at // time) - $cut_at);

# A linearizable call on A fails at once, retryable, instead of waiting
# for its 5 s deadline; a serializable read is still served there.
my $t0 = time;
my ($r, $e) = call($only_a, 'get', $key);
my $took = time - $t0;
ok($e, 'get on the leaderless member fails');
is($e && $e->{status}, 'UNAVAILABLE', '... UNAVAILABLE');
like($e && $e->{message}, qr/no leader/, '... saying there is no leader');
is($e && $e->{retryable}, 1, '... retryable');
cmp_ok($took, '<', 1, sprintf '... promptly (%.3f s, deadline 5 s)', $took);
($r, $e) = call($only_a, 'get', $key, { serializable => 1 });
ok($r && !$e, 'a serializable get is still served by the cut-off member');

# The streams move: each sees what happens on the healthy members.
my $before = @events;
my $moved = run_until(sub { @events > $before + 2 }, 15);
ok($moved, sprintf 'the watch resumed on a healthy member (%.1f s after the cut)', time - $cut_at);

ok(ok_call($writer, 'election_proclaim', $leadership, 'v-after-cut'), 'leader proclaims a new value');
ok(run_until(sub { grep { $_ eq 'v-after-cut' } @observed }, 15),
   'the observe reports the change from a healthy member');

my $ticks_before = grep { $_->[0] > $lost_at + 0.5 } @ticks;
ok(run_until(sub { (grep { $_->[0] > $lost_at + 0.5 } @ticks) > $ticks_before + 1 }, 15),
   'the keepalive ticks again after A lost its leader');

# The client under test itself: calls go to a healthy member now.
my ($gr, $ge);
for (1 .. 10) {
    ($gr, $ge) = call($etcd, 'get', $key);
    last unless $ge;
    pause(0.2);
}
ok($gr && !$ge, 'the client under test serves calls from a healthy member');

# ---- nothing lost, nothing repeated ----

undef $putter;
run_until(sub { !$put_busy }, 10);
my $last_rev = $written[-1][0];
run_until(sub { @events && $events[-1][0] >= $last_rev }, 10);
my $first = $events[0][0];
my @expect = grep { $_->[0] >= $first } @written;
is_deeply(\@events, \@expect,
          sprintf 'the watch delivered each of %d puts once, in order, across the move', scalar @expect);

my $ttl = ok_call($writer, 'lease_time_to_live', $lease);
cmp_ok($ttl->{ttl}, '>', 0, "the lease never lapsed (ttl $ttl->{ttl})");
my @gaps = map { $ticks[$_][0] - $ticks[ $_ - 1 ][0] } 1 .. $#ticks;
push @gaps, time - $ticks[-1][0];    # silence up to now counts too
my ($worst) = sort { $b <=> $a } @gaps;
cmp_ok($worst, '<', 8, sprintf 'longest gap between keepalive ticks %.1f s (ttl 8 s)', $worst);
is_deeply(\@stream_err, [], 'no stream reported an error');

for my $h ($w, $ka, $obs) {
    my @got = EtcdTest::cancel_sync({ handle => $h });
    is(scalar @got, 1, 'cancel answered once');
}
$spec[$ai]{proxy}->thaw;
$_->{proxy}->stop for @spec;

done_testing;
