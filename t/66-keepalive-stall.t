#!/usr/bin/env perl
# A keepalive whose member stalls (SIGSTOP: the socket stays open, nothing
# answers) moves to a healthy member before its lease can lapse. Three
# members; the keepalive client lists a follower first, so its stream sits
# on that follower; the follower is frozen for longer than the lease's TTL
# just after a refresh was answered. A second client that never talks to
# the frozen member polls the lease's remaining TTL all along. A follower,
# not the leader: a new leader extends every lease, which would hide a
# keepalive that stopped refreshing.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

plan skip_all => 'needs /proc (Linux)' unless -d "/proc/$$/fd" || EtcdTest::ci_mode();

sub pause { run_until(sub { 0 }, $_[0]) }

sub proc_state {
    open my $fh, '<', "/proc/$_[0]/stat" or return '';
    my ($state) = (<$fh> // '') =~ /\)\s+(\S)/;
    return $state // '';
}

# Remote ports of this process's established TCP connections (count each).
sub connected_ports {
    my %mine;
    for my $fd (glob "/proc/$$/fd/*") {
        my $target = readlink $fd;
        $mine{$1} = 1 if defined $target && $target =~ /^socket:\[(\d+)\]$/;
    }
    my %ports;
    for my $table ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $table or next;
        <$fh>;    # header
        while (my $line = <$fh>) {
            my @f = split ' ', $line;
            next unless @f > 9 && $f[3] eq '01' && $mine{ $f[9] };    # 01: ESTABLISHED
            my ($port) = $f[2] =~ /:([0-9A-F]+)$/;
            $ports{ hex $port }++;
        }
    }
    return \%ports;
}

my $TTL    = 6;
my $FREEZE = 8;    # longer than the TTL: only a move can keep the lease
# The lease is refreshed every TTL/3; a refresh unanswered for TTL/3 moves
# the stream, whose first refresh is answered one round trip later. So the
# server's remaining TTL stays above TTL - 2*TTL/3; etcd reports whole
# seconds (rounded down) and the poll itself takes a round trip: allow 1 s.
my $MIN_LEFT = $TTL - 2 * $TTL / 3 - 1;

my @m = start_cluster(3, name_prefix => 'stall');

my $leader = ok_call(EV::Etcd->new(endpoints => [ $m[0]->endpoint ]), 'status')->{leader};
my %is_leader = map {
    my $st = ok_call(EV::Etcd->new(endpoints => [ $_->endpoint ]), 'status');
    ($_->name => $st->{header}{member_id} eq $leader)
} @m;
my ($L) = grep { $is_leader{ $_->name } } @m;
my ($F, $G) = grep { !$is_leader{ $_->name } } @m;
ok $L && $F && $G, 'one leader, two followers';

my $frozen_pid;
END { kill 'CONT', $frozen_pid if $frozen_pid }    # never leave a member stopped

my $keeper = EV::Etcd->new(endpoints => [ map { $_->endpoint } $F, $G, $L ], timeout => 5);
my $poller = EV::Etcd->new(endpoints => [ map { $_->endpoint } $L, $G ], timeout => 2);

my $lease = ok_call($poller, 'lease_grant', $TTL)->{id};
my (@ticks, @errs);
my $ka = $keeper->lease_keepalive($lease, sub {
    my ($r, $e) = @_;
    if ($e) { push @errs, $e }
    else    { push @ticks, { ttl => $r->{ttl}, at => time } }
});
ok run_until(sub { @ticks >= 2 }, 15), 'the keepalive ticks';

# Only the keeper talks to $F: its connection there carries the stream.
my $ports = connected_ports();
ok $ports->{ $F->client_port }, 'the keepalive stream is on the follower listed first'
    or diag explain { ports => $ports, F => $F->client_port };

# Freeze $F just after a refresh was answered: the next one, a third of the
# TTL later, goes unanswered.
my $n = @ticks;
ok run_until(sub { @ticks > $n }, 10), 'a fresh tick before the freeze';
isnt ok_call(EV::Etcd->new(endpoints => [ $F->endpoint ]), 'status')->{header}{member_id},
    ok_call($poller, 'status')->{leader}, '... and the member to freeze is still a follower';
$frozen_pid = $F->pid;
kill 'STOP', $frozen_pid or die "cannot SIGSTOP $frozen_pid: $!";
my $stopped = time;
for (1 .. 200) { last if proc_state($frozen_pid) eq 'T'; select undef, undef, undef, 0.01 }
is proc_state($frozen_pid), 'T', "the follower is stopped, for ${FREEZE}s";

my $ticks_before = @ticks;
my @left;    # [seconds into the freeze, remaining TTL]
my $busy = 0;
my $poll = EV::timer(0, 0.25, sub {
    return if $busy;
    $busy = 1;
    $poller->lease_time_to_live($lease, sub {
        my ($r, $e) = @_;
        $busy = 0;
        push @left, [ time - $stopped, $e ? "error $e->{status}" : $r->{ttl} ];
    });
});
pause($FREEZE - (time - $stopped));
undef $poll;
my $ticks_frozen = @ticks - $ticks_before;
kill 'CONT', $frozen_pid;
undef $frozen_pid;
diag sprintf 'member frozen for %.1fs', time - $stopped;

my @ttls = map { $_->[1] } @left;
my @bad  = grep { $_->[1] !~ /^-?\d+$/ || $_->[1] < $MIN_LEFT } @left;
cmp_ok scalar @left, '>=', 10, 'the lease was polled throughout the freeze (' . scalar(@left) . ' polls)';
ok !@bad, "the lease kept at least ${MIN_LEFT}s of its ${TTL}s TTL throughout"
    or diag join ', ', map { sprintf '%.1fs: %s', @$_ } @bad;
note 'remaining TTL during the freeze: ' . join ' ', @ttls;
cmp_ok $ticks_frozen, '>=', 2, "refreshes kept coming while the member was stopped ($ticks_frozen ticks)";
is_deeply [ map { $_->{ttl} } @ticks[ $ticks_before .. $#ticks ] ], [ ($TTL) x $ticks_frozen ],
    '... each renewing the full TTL';

# After the thaw: still ticking, still no error.
$n = @ticks;
ok run_until(sub { @ticks >= $n + 2 }, 3 * $TTL), 'ticks go on after the thaw';
is scalar @errs, 0, 'no error reached the keepalive callback'
    or diag explain \@errs;
cmp_ok ok_call($poller, 'lease_time_to_live', $lease)->{ttl}, '>', 0, 'the lease is alive';

my $cancelled;
$ka->cancel(sub { $cancelled = 1 });
ok run_until(\$cancelled, 10), 'the keepalive cancels';
call($poller, 'lease_revoke', $lease);    # (gone already when the test failed)

done_testing;
