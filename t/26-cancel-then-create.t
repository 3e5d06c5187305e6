#!/usr/bin/env perl
# A cancel followed by one turn of the loop, then a new stream at once: the
# pattern of the replaced module's own tests.
#
#     $w->cancel(sub { EV::break });
#     EV::run(EV::RUN_ONCE);
#     my $w2 = $c->watch(...);        # and EV::run until its event
#
# The cancel must be over when that RUN_ONCE returns (its EV::break must not
# end the next EV::run early), and the new stream must start and deliver.
# Run for watches (cancelled after an event, and right after creation),
# keepalives and observes, many times in a row.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'cancel-create');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);

my $ROUNDS = 40;

# EV::run until $done->() or $limit seconds; the watch or tick callback
# breaks the loop itself, as the replaced module's tests do.  Returns the
# number of times EV::run came back before $done (early breaks).
sub run_like_a_user {
    my ($done, $limit) = @_;
    my $expired = 0;
    my $guard = EV::timer($limit, 0, sub { $expired = 1; EV::break });
    my $early = 0;
    until ($done->() || $expired) {
        EV::run;
        $early++ unless $done->() || $expired;
    }
    return $early;
}

# --- watch: cancel after its event, then a new watch ----------------------
for my $immediate (0, 1) {
    my $what = $immediate ? 'watch cancelled right after creation'
                          : 'watch cancelled after its event';
    my ($early_total, $cancels, @missing) = (0, 0);
    my $prev;
    for my $i (1 .. $ROUNDS) {
        my $key = "/cc/$immediate/$i";
        my (%got, $t);
        my $w = $c->watch($key, sub {
            my ($r, $e) = @_;
            if ($e) { $got{err} = $e->{message}; EV::break; return }
            # The write goes 0.1 s after the server has taken the watch (a
            # write that overtook the create would rightly not be seen).
            $t = EV::timer(0.1, 0, sub { $c->put($key, "v$i", sub { }) })
                if $r->{created} && !$got{created}++;
            $got{events} += @{ $r->{events} };
            EV::break if $got{events};
        });
        if ($immediate) {
            # a throwaway watch, cancelled before the server has answered it
            my $tmp = $c->watch("/cc/tmp/$i", sub { $got{tmp_after_cancel}++ });
            $tmp->cancel(sub { $cancels++; EV::break });
            EV::run(EV::RUN_ONCE);
        }
        my $early = run_like_a_user(sub { $got{events} || $got{err} }, 10);
        $early_total += $early;
        push @missing, "$i (created " . ($got{created} // 0) . ', error ' . ($got{err} // 'none') . ')'
            unless $got{events} && !$got{err};
        fail("$what: round $i: throwaway watch called back after its cancel")
            if $got{tmp_after_cancel};
        $w->cancel(sub { $cancels++; EV::break });
        EV::run(EV::RUN_ONCE);
    }
    is $early_total, 0, "$what: no EV::run ended early by a previous cancel's callback";
    is_deeply \@missing, [], "$what: each of $ROUNDS new watches got its event";
    is $cancels, $ROUNDS * ($immediate ? 2 : 1),
        "$what: every cancel called back within the RUN_ONCE that followed it";
}

# --- keepalive: cancel, then a keepalive on another lease -----------------
{
    my @leases = map { ok_call($c, 'lease_grant', 30)->{id} } 1 .. 2;
    my ($early_total, $cancels, @silent) = (0, 0);
    for my $i (1 .. $ROUNDS) {
        my $lease = $leases[ $i % 2 ];
        my %got;
        my $k = $c->lease_keepalive($lease, sub {
            my ($r, $e) = @_;
            if ($e) { $got{err} = $e->{message}; EV::break; return }
            $got{ticks}++;
            EV::break;
        });
        my $early = run_like_a_user(sub { $got{ticks} || $got{err} }, 10);
        $early_total += $early;
        push @silent, $i unless $got{ticks} && !$got{err};
        $k->cancel(sub { $cancels++; EV::break });
        EV::run(EV::RUN_ONCE);
    }
    is $early_total, 0, 'keepalive: no EV::run ended early by a previous cancel';
    is_deeply \@silent, [], "keepalive: each of $ROUNDS keepalives ticked";
    is $cancels, $ROUNDS, 'keepalive: every cancel called back within the following RUN_ONCE';
    ok_call($c, 'lease_revoke', $_) for @leases;
}

# --- observe: cancel, then a new observe ----------------------------------
{
    my $lease = ok_call($c, 'lease_grant', 30)->{id};
    ok_call($c, 'election_campaign', 'cc-election', $lease, 'leader');
    my ($early_total, $cancels, @silent) = (0, 0);
    for my $i (1 .. $ROUNDS) {
        my %got;
        my $o = $c->election_observe('cc-election', sub {
            my ($r, $e) = @_;
            if ($e) { $got{err} = $e->{message}; EV::break; return }
            $got{msgs}++;
            EV::break;
        });
        $early_total += run_like_a_user(sub { $got{msgs} || $got{err} }, 10);
        push @silent, $i unless $got{msgs} && !$got{err};
        $o->cancel(sub { $cancels++; EV::break });
        EV::run(EV::RUN_ONCE);
    }
    is $early_total, 0, 'observe: no EV::run ended early by a previous cancel';
    is_deeply \@silent, [], "observe: each of $ROUNDS observes reported the leader";
    is $cancels, $ROUNDS, 'observe: every cancel called back within the following RUN_ONCE';
    ok_call($c, 'lease_revoke', $lease);
}

# --- nothing reaches a stream's callback once cancel() has returned -------
{
    my $key = '/cc/burst';
    my ($after, $cancelled, $seen) = (0, 0, 0);
    my $w;
    $w = $c->watch($key, sub {
        my ($r) = @_;
        $after++ if $cancelled;
        $seen += @{ $r->{events} || [] };
        # cancel from inside the callback while more events are queued
        if ($seen >= 5 && !$cancelled) {
            $cancelled = 1;
            $w->cancel(sub { });
        }
    });
    run_until(sub { 0 }, 0.3);
    $c->put($key, $_, sub { }) for 1 .. 50;
    run_until(sub { 0 }, 1);
    ok $cancelled, 'burst: the watch saw events and cancelled itself';
    is $after, 0, 'burst: no message after cancel, even ones already queued';
}

# --- a watch_id freed by a cancel can be used again at once -----------------
{
    my (%first, %second);
    my $w1 = $c->watch('/cc/reuse', { watch_id => 4242 }, sub { $first{n}++ });
    ok run_until(sub { $first{n} }, 10), 'explicit watch_id: created';
    my $cancelled = 0;
    $w1->cancel(sub { $cancelled++ });
    my $w2 = $c->watch('/cc/reuse', { watch_id => 4242 }, sub {
        my ($r, $e) = @_;
        if ($e) { $second{err} = $e->{message}; return }
        $second{created}++ if $r->{created};
        $second{events} += @{ $r->{events} };
    });
    ok run_until(sub { $second{created} || $second{err} }, 10), 'reused watch_id: answered';
    is $second{err}, undef, 'reused watch_id: no "already in use" error after the cancel';
    ok_call($c, 'put', '/cc/reuse', 'x');
    ok run_until(sub { $second{events} }, 10), 'reused watch_id: the new watch gets events';
    is $cancelled, 1, 'reused watch_id: the first cancel called back once';
    my $done = 0;
    $w2->cancel(sub { $done++ });
    run_until(\$done, 10);
}

done_testing;
