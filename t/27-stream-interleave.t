#!/usr/bin/env perl
# Randomized interleavings on one client: thousands of watch, keepalive and
# observe creates, cancels and dropped handles, with EV::run(RUN_NOWAIT)
# sprinkled between them, writes to a few keys, and the server killed with
# SIGKILL and restarted at random moments.  A model checks at the end:
#   - every watch that was not cancelled saw every event of its key, from
#     the revision after its created message, exactly once and in order;
#   - a cancelled watch saw exactly the events of its key from its start up
#     to the last one it got (nothing lost, nothing repeated);
#   - every cancel called back exactly once, and no stream called back
#     after its cancel;
#   - no stream ended with an error (max_retries is unlimited);
#   - every keepalive that was not cancelled ticked after the last restart.
# The seed is printed; EV_ETCD_SEED=N replays a run.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

my $seed = $ENV{EV_ETCD_SEED} // (time ^ $$) % 1_000_000;
srand $seed;
diag "seed $seed (EV_ETCD_SEED=$seed replays this run)";

my $STEPS    = $ENV{EV_ETCD_STEPS} // 5000;
my $RESTARTS = 4;
my @KEYS     = map { "/mix/k$_" } 0 .. 5;

my $srv = start_etcd(name => 'interleave');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5, max_retries => -1);

my @problems;
sub problem { push @problems, $_[0]; diag $_[0] if @problems <= 20 }

# ---- the model -------------------------------------------------------------
my (@watches, @keepalives, @observes);    # every stream ever made, in order
my (@live_w, @live_k, @live_o);           # handles still held (may cancel)
my $restarts_done = 0;
my $last_restart_at = 0;
sub restart_server {
    $srv->restart;
    $restarts_done++;
    $last_restart_at = time;
}

sub new_watch {
    my $key = $KEYS[ rand @KEYS ];
    my $rec = { key => $key, events => [], created => 0, cancel_cbs => 0 };
    push @watches, $rec;
    my $handle = $c->watch($key, sub {
        my ($r, $e) = @_;
        if ($rec->{cancel_called}) { problem("watch on $key: callback after its cancel"); return }
        if ($e) { problem("watch on $key ended with $e->{status}: $e->{message}"); $rec->{error} = 1; return }
        if ($r->{created}) {
            problem("watch on $key: second created message") if $rec->{created}++;
            $rec->{start} = $r->{header}{revision} + 1;
        }
        for my $ev (@{ $r->{events} }) {
            problem("watch on $key: event before created") unless $rec->{created};
            push @{ $rec->{events} }, $ev->{kv}{mod_revision};
            problem("watch on $key: event for $ev->{kv}{key}") if $ev->{kv}{key} ne $key;
        }
    });
    push @live_w, [ $rec, $handle ];
}

sub new_keepalive {
    my ($lease) = @_;
    my $rec = { lease => $lease, ticks => 0, last_tick => 0, cancel_cbs => 0 };
    push @keepalives, $rec;
    my $handle = $c->lease_keepalive($lease, sub {
        my ($r, $e) = @_;
        if ($rec->{cancel_called}) { problem("keepalive of $lease: callback after its cancel"); return }
        if ($e) { problem("keepalive of $lease ended with $e->{status}: $e->{message}"); $rec->{error} = 1; return }
        problem("keepalive of $lease: tick for lease $r->{id}") if "$r->{id}" ne "$lease";
        $rec->{ticks}++;
        $rec->{last_tick} = time;
    });
    push @live_k, [ $rec, $handle ];
}

sub new_observe {
    my $rec = { msgs => 0, cancel_cbs => 0 };
    push @observes, $rec;
    my $handle = $c->election_observe('mix-election', sub {
        my ($r, $e) = @_;
        if ($rec->{cancel_called}) { problem('observe: callback after its cancel'); return }
        if ($e) { problem("observe ended with $e->{status}: $e->{message}"); $rec->{error} = 1; return }
        $rec->{msgs}++;
    });
    push @live_o, [ $rec, $handle ];
}

# Cancel (or, one time in four, just drop) a random held handle of a list.
sub end_one {
    my ($list) = @_;
    return unless @$list;
    my ($rec, $handle) = @{ splice @$list, int rand @$list, 1 };
    return if rand() < 0.25;    # dropped: the stream goes on, unseen
    $rec->{cancelled} = 1;
    $handle->cancel(sub {
        my ($r, $e) = @_;
        problem('cancel answered with an error') if $e;
        $rec->{cancel_cbs}++;
        $rec->{cancel_called} = 1;
    });
}

my $writes_ok = 0;
sub write_one {
    my $key = $KEYS[ rand @KEYS ];
    $c->put($key, int rand 1000, sub { $writes_ok++ unless $_[1] });
}

sub spin_nowait { EV::run(EV::RUN_NOWAIT) for 1 .. 1 + int rand 3 }
sub spin_for    { my $t = shift; run_until(sub { 0 }, $t) }

# ---- set-up: leases for the keepalives, a leader for the observes ----------
my @leases = map { ok_call($c, 'lease_grant', 20)->{id} } 1 .. 8;
my $leader_lease = ok_call($c, 'lease_grant', 20)->{id};
ok_call($c, 'election_campaign', 'mix-election', $leader_lease, 'me');
my $leader_ka = $c->lease_keepalive($leader_lease, sub { });
push @leases, $leader_lease;

# ---- the random run ----------------------------------------------------------
my %restart_at = map { (int(($_ + rand 0.8) * $STEPS / ($RESTARTS + 1)) => 1) } 1 .. $RESTARTS;
my $down_steps = 0;
my $t_start = time;
for my $step (1 .. $STEPS) {
    if ($restart_at{$step}) {
        $srv->kill9;
        $down_steps = 20 + int rand 80;    # go on working while it is down
    }
    my $r = rand;
    if    ($r < 0.30) { new_watch() }
    elsif ($r < 0.50) { end_one(\@live_w) }
    elsif ($r < 0.60) { new_keepalive($leases[ rand @leases ]) }
    elsif ($r < 0.68) { end_one(\@live_k) }
    elsif ($r < 0.72) { new_observe() }
    elsif ($r < 0.75) { end_one(\@live_o) }
    else              { write_one() }

    my $s = rand;
    if    ($s < 0.35) { spin_nowait() }
    elsif ($s < 0.37) { spin_for(0.005 + rand 0.02) }

    restart_server() if $down_steps && !--$down_steps;
}
restart_server() if $down_steps;
is $restarts_done, $RESTARTS, "server was killed and restarted $RESTARTS times";
note sprintf 'random phase: %.1f s, %d watches, %d keepalives, %d observes, %d writes acknowledged',
    time - $t_start, scalar @watches, scalar @keepalives, scalar @observes, $writes_ok;

# ---- settle: one last write per key, seen by every watch still running ----
# A watch whose create was queued during an outage starts when the server
# takes it: wait for every create to be answered before the last writes.
my @running = grep { !$_->{cancelled} && !$_->{error} } @watches;
ok run_until(sub { !grep { !$_->{created} } @running }, 60),
    scalar(@running) . ' running watches are all created';
my $last_rev = 0;
for my $key (@KEYS) {
    my ($resp, $err);
    for my $try (1 .. 20) {    # the first writes after a restart may fail
        ($resp, $err) = call($c, 'put', $key, 'final');
        last unless $err;
        spin_for(0.5);
    }
    die "final put of $key failed: $err->{message}\n" if $err;
    $last_rev = $resp->{header}{revision} if $resp->{header}{revision} > $last_rev;
}
my %HIST;    # key => the mod_revisions of its events, as the server has them
{
    # The server's own history of every key, read with a fresh client.
    my $c2 = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);
    my ($hist, $done) = ({}, 0);
    my $w = $c2->watch('/mix/', { prefix => 1, start_revision => 1 }, sub {
        my ($r, $e) = @_;
        die "history watch failed: $e->{message}\n" if $e;
        for my $ev (@{ $r->{events} }) {
            push @{ $hist->{ $ev->{kv}{key} } }, $ev->{kv}{mod_revision};
            $done = 1 if $ev->{kv}{mod_revision} >= $last_rev;
        }
    });
    ok run_until(\$done, 30), 'history of the keys read back from the server';
    my $cd = 0;
    $w->cancel(sub { $cd = 1 });
    run_until(\$cd, 10);
    %HIST = %$hist;
}

sub lagging {
    grep { !$_->{created} || !@{ $_->{events} } || $_->{events}[-1] < $HIST{ $_->{key} }[-1] }
        @running;
}
ok run_until(sub { !lagging() }, 60), scalar(@running) . ' running watches caught up with the final writes'
    or diag join "\n", map {
        sprintf 'lagging: watch on %s, created %d, %d events, last %s, final %d',
            $_->{key}, $_->{created}, scalar @{ $_->{events} },
            $_->{events}[-1] // 'none', $HIST{ $_->{key} }[-1]
    } grep { defined } (lagging())[0 .. 9];

# every keepalive still running ticks after the last restart
my @ka_running = grep { !$_->{cancelled} && !$_->{error} } @keepalives;
ok run_until(sub { !grep { $_->{last_tick} < $last_restart_at } @ka_running }, 30),
    scalar(@ka_running) . ' running keepalives ticked after the last restart';

# every observe still running reports the leader (one whose stream failed
# during an outage may be waiting out its backoff, at most 16 s)
my @obs_running = grep { !$_->{cancelled} && !$_->{error} } @observes;
my $obs_wait = time;
ok run_until(sub { !grep { !$_->{msgs} } @obs_running }, 40),
    scalar(@obs_running) . ' running observes reported the leader';
note sprintf 'waited %.1f s for the observes', time - $obs_wait;

# ---- check the model ---------------------------------------------------------
my ($checked_running, $checked_cancelled) = (0, 0);
for my $w (@watches) {
    my $events = $w->{events};
    my $name = "watch on $w->{key}";
    if (!$w->{created}) {
        problem("$name: never created and never cancelled") unless $w->{cancelled};
        problem("$name: events without created") if @$events;
        next;
    }
    my @want = grep { $_ >= $w->{start} } @{ $HIST{ $w->{key} } || [] };
    if ($w->{cancelled}) {
        # exactly the history from its start up to the last event it got
        my $upto = @$events ? $events->[-1] : $w->{start} - 1;
        @want = grep { $_ <= $upto } @want;
        $checked_cancelled++;
    } else {
        $checked_running++;
    }
    next if "@$events" eq "@want";
    my %got = map { $_ => 1 } @$events;
    my %dup;
    $dup{$_}++ for @$events;
    my @lost = grep { !$got{$_} } @want;
    my @rep  = grep { $dup{$_} > 1 } keys %dup;
    problem(sprintf '%s (start %d): %d events, want %d; lost [%s], repeated [%s]',
        $name, $w->{start}, scalar @$events, scalar @want,
        join(',', @lost[ 0 .. ($#lost < 9 ? $#lost : 9) ]), join(',', @rep));
}
for my $rec (@watches, @keepalives, @observes) {
    next unless $rec->{cancelled};
    problem("a cancel called back $rec->{cancel_cbs} times") if $rec->{cancel_cbs} != 1;
}
for my $o (@observes) {
    problem('an observe that was not cancelled never reported the leader')
        if !$o->{cancelled} && !$o->{msgs};
}
{
    # The leases under running keepalives are still there.
    my %held = map { ("$_->{lease}" => 1) } @ka_running;
    for my $lease (keys %held) {
        my $t = ok_call($c, 'lease_time_to_live', $lease);
        problem("lease $lease lapsed under a running keepalive") unless $t->{ttl} > 0;
    }
}

note "checked $checked_running running and $checked_cancelled cancelled watches";
cmp_ok $checked_running, '>', 50, 'a good number of watches ran to the end';
cmp_ok scalar(grep { $_->{cancelled} } @watches), '>', 200, 'a good number of watches were cancelled';
is scalar(@problems), 0, 'the model found no problem' or diag "seed $seed";

done_testing;
