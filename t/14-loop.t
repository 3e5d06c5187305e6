#!/usr/bin/env perl
# How the client lives in the EV loop: EV::run returns on its own when
# nothing is in flight, each callback is a loop event of its own (so
# EV::RUN_ONCE returns after it), callbacks are never called from inside
# the call that submits them, a dying callback does not disturb the others,
# wake-ups are coalesced without losing completions, a client can be dropped
# with calls in flight, and a watch holds the loop until it is cancelled.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use EtcdTest qw(:DEFAULT wait_for);

need_etcd();

use EV;
use EV::Etcd;

my $srv = start_etcd();
my $ep  = $srv->endpoint;
my $c   = EV::Etcd->new(endpoints => [$ep], timeout => 30);


# EV::run under a guard that does not itself keep the loop alive: returns
# (seconds EV::run took, whether the guard had to break it).
sub guarded_run {
    my ($limit) = @_;
    my $broke = 0;
    my $guard = EV::timer($limit, 0, sub { $broke = 1; EV::break(EV::BREAK_ALL) });
    $guard->keepalive(0);
    EV::now_update();
    my $t0 = time;
    EV::run;
    return (time - $t0, $broke);
}

# --- EV::run returns by itself once the callback ran ---------------------------
{
    my $got;
    $c->put('loop/k', 'v1', sub { $got = [@_] });
    my ($took, $broke) = guarded_run(15);
    ok !$broke, 'EV::run returned on its own after a put';
    ok $got && $got->[0] && !$got->[1], '... and the put callback ran with a response';
    cmp_ok $took, '<', 10, sprintf('... promptly (%.2fs)', $took);

    my @order;
    $c->get('loop/k', sub { push @order, 'get1' });
    $c->put('loop/k2', 'x', sub {
        push @order, 'put';
        $c->get('loop/k2', sub { push @order, 'nested get: ' . $_[0]{kvs}[0]{value} });
    });
    ($took, $broke) = guarded_run(15);
    ok !$broke, 'EV::run returned after several calls, one started from a callback';
    is_deeply [ sort @order ], [ 'get1', 'nested get: x', 'put' ],
        'all of them, including the nested one, completed before EV::run returned';
}

# --- each callback is a loop event of its own: EV::RUN_ONCE returns after it ----
# A fast server often answers while the call is still being sent; that
# answer must still come as an event, or a loop run one event at a time
# (AnyEvent's condvars) sleeps on after its callback ran. Half the calls
# start inside another call's callback.
{
    my ($answered, $stalled) = (0, 0);
    for my $i (1 .. 200) {
        my $got;
        if ($i % 2) {
            $c->get('loop/k', sub { $got = 1 });
        } else {
            $c->put('loop/once', $i, sub { $c->get('loop/once', sub { $got = 1 }) });
        }
        my $guard = EV::timer(5, 0, sub { $stalled = $i });
        EV::run(EV::RUN_ONCE) until $got || $stalled;
        $answered++ if $got;
        last if $stalled;
    }
    is $answered, 200, 'every call answered, one EV::RUN_ONCE at a time';
    is $stalled, 0, 'no EV::RUN_ONCE slept on after the callback it waited for';
}

# --- an idle client does not hold the loop -----------------------------------------
{
    my ($took, $broke) = guarded_run(5);
    ok !$broke, 'EV::run returns at once with an idle client';
    cmp_ok $took, '<', 1, sprintf('... (%.3fs)', $took);

    my @health;
    my $hc = EV::Etcd->new(endpoints => [$ep], health_interval => 1,
                           on_health_change => sub { push @health, [@_] });
    ($took, $broke) = guarded_run(5);
    ok !$broke, 'a new client with health_interval => 1 does not hold EV::run';
    cmp_ok $took, '<', 1, sprintf('... (%.3fs)', $took);

    my ($r, $e) = wait_for('health client put', sub { $hc->put('loop/h', 'x', $_[0]) });
    ok !$e, 'the health-checking client works';
    ok run_until(sub { @health }, 10), 'its health callback is called while the loop runs';
    ($took, $broke) = guarded_run(5);
    ok !$broke, 'after a call, the health-checking client still does not hold EV::run';
    cmp_ok $took, '<', 1, sprintf('... (%.3fs)', $took);
}

# --- callbacks never run inside the submitting call ------------------------------------
{
    my $dead_port = free_port();
    my $dead = EV::Etcd->new(endpoints => ["127.0.0.1:$dead_port"], timeout => 5);
    my %seen;
    my %calls = (
        put          => sub { $c->put('loop/sync', 'v', $_[0]) },
        get          => sub { $c->get('loop/sync', $_[0]) },
        delete       => sub { $c->delete('loop/nothing', $_[0]) },
        txn          => sub { $c->txn([], [], [], $_[0]) },
        lease_revoke => sub { $c->lease_revoke(99_999, $_[0]) },     # server error
        status       => sub { $c->status($_[0]) },
        dead_get     => sub { $dead->get('x', $_[0]) },              # transport error
        dead_put     => sub { $dead->put('x', 'y', $_[0]) },
    );
    for my $name (sort keys %calls) {
        my $returned = 0;
        $calls{$name}->(sub { $seen{$name} = { returned => $returned, ok => !$_[1] } });
        ok !exists $seen{$name}, "$name: callback not called during the call";
        $returned = 1;
    }
    ok run_until(sub { keys %seen == keys %calls }, 20), 'all callbacks came later';
    for my $name (sort keys %calls) {
        is $seen{$name} && $seen{$name}{returned}, 1, "$name: callback ran after the call returned";
    }
    ok !$seen{dead_get}{ok} && !$seen{lease_revoke}{ok}, 'error completions included';

    my ($returned, $in_cb) = (0);
    my $w = $c->watch('loop/watched', sub { $in_cb //= $returned });
    $returned = 1;
    ok run_until(sub { defined $in_cb }, 10), 'the watch created message arrives';
    is $in_cb, 1, 'the watch callback did not run inside watch()';
    my $cancelled;
    $w->cancel(sub { $cancelled = 1 });
    ok !$cancelled, 'cancel callback not run inside cancel() of a live watch';
    ok run_until(\$cancelled, 10), 'cancel confirmed later';
}

# --- a callback that dies -------------------------------------------------------------
{
    my @died;
    local $EV::DIED = sub { push @died, $@ };
    my %delivered;
    for my $i (1 .. 20) {
        $c->get('loop/k', sub {
            $delivered{$i} = $_[0] ? $_[0]{kvs}[0]{value} : 'error';
            die "callback $i dies\n" if $i == 5 || $i == 13;
        });
    }
    ok run_until(sub { keys %delivered == 20 }, 20), 'all 20 completions delivered although two callbacks died';
    is_deeply [ sort { $a <=> $b } keys %delivered ], [ 1 .. 20 ], '... every one of them';
    ok !(grep { $_ ne 'v1' } values %delivered), '... each with the value';
    is_deeply [ sort @died ], [ "callback 13 dies\n", "callback 5 dies\n" ],
        '$EV::DIED received both errors with their messages';

    my ($r, $e) = wait_for('after die', sub { $c->put('loop/after', 'ok', $_[0]) });
    ok !$e, 'the client still works after callbacks died';
    ($r) = wait_for('after die get', sub { $c->get('loop/after', $_[0]) });
    is $r->{kvs}[0]{value}, 'ok', '... put and get';
}
{
    # without a handler of our own, EV's default reports the error as a warning
    my @warn;
    local $SIG{__WARN__} = sub { push @warn, $_[0] };
    my $done;
    $c->get('loop/k', sub { $done = 1; die "plain death\n" });
    my $other;
    $c->get('loop/k', sub { $other = 1 });
    ok run_until(sub { $done && $other }, 10), 'both callbacks ran';
    ok scalar(grep { /plain death/ } @warn), "EV's default handler warned about the dying callback"
        or diag explain \@warn;
}

# --- wake-up coalescing: 5000 puts at once -------------------------------------------
{
    my $n = 5000;
    my (%rev, $errors, $count, $first_err);
    my $t0 = time;
    for my $i (1 .. $n) {
        $c->put("burst/$i", $i, sub {
            $count++;
            if ($_[1]) { $errors++; $first_err //= $_[1] }
            else       { $rev{ $_[0]{header}{revision} }++ }
        });
    }
    ok run_until(sub { ($count // 0) >= $n }, 50), "all $n callbacks arrived";
    is $count, $n, "exactly $n callbacks";
    ok !$errors, 'no put failed'
        or diag "$errors puts failed, the first with $first_err->{status}: $first_err->{message}";
    is scalar(keys %rev), $n, 'each put has its own revision';
    diag sprintf '%d puts in %.1fs', $n, time - $t0;
    my ($r) = wait_for('count burst', sub { $c->get('burst/', { prefix => 1, count_only => 1 }, $_[0]) });
    is $r->{count}, $n, "etcd holds $n keys";

    # the same for reads, all started in one go
    my $reads = 0;
    my $wrong = 0;
    for my $i (1 .. 2000) {
        $c->get("burst/$i", sub { $reads++; $wrong++ unless $_[0] && ($_[0]{kvs}[0]{value} // "") eq $i });
    }
    ok run_until(sub { $reads >= 2000 }, 40), '2000 gets at once: all callbacks';
    is $wrong, 0, '... each with its own value';
}

# --- dropping the last reference with calls in flight -------------------------------------
{
    my $called = 0;
    my $victim = EV::Etcd->new(endpoints => [$ep], timeout => 10);
    $victim->put("drop/$_", 'x' x 1000, sub { $called++ }) for 1 .. 100;
    undef $victim;
    pass 'the client was destroyed with 100 calls in flight';
    my ($took, $broke) = guarded_run(5);
    ok !$broke, 'EV::run returns at once: the dropped calls hold nothing';
    run_until(sub { 0 }, 1);
    is $called, 0, 'no callback of the dropped client was called';

    my ($r, $e) = wait_for('after drop', sub { $c->put('loop/alive', 'yes', $_[0]) });
    ok !$e, 'the process and the other client carry on';
    my $fresh = EV::Etcd->new(endpoints => [$ep]);
    ($r, $e) = wait_for('fresh client', sub { $fresh->get('loop/alive', $_[0]) });
    is $r && $r->{kvs}[0]{value}, 'yes', 'a new client works after the drop';

    # a dropped client with a live watch and a pending call from inside a callback
    my $v2 = EV::Etcd->new(endpoints => [$ep]);
    my $wcalls = 0;
    my $wh = $v2->watch('drop/w', sub { $wcalls++ });
    run_until(sub { $wcalls }, 10);
    undef $wh;
    undef $v2;
    ($took, $broke) = guarded_run(5);
    ok !$broke, 'a dropped client with a live watch does not hold EV::run';
    my $before = $wcalls;
    wait_for('put watched', sub { $c->put('drop/w', 'z', $_[0]) });
    run_until(sub { 0 }, 0.5);
    is $wcalls, $before, 'the watch of a dropped client delivers nothing more';
}

# --- a watch keeps EV::run alive until it is cancelled ------------------------------------
{
    my (@events, $cancelled, $cancel_at);
    my $w = $c->watch('loop/w', sub { push @events, $_[0] });
    my $writer = EV::timer(0.5, 0, sub { $c->put('loop/w', 'event', sub { }) });
    my $stopper = EV::timer(1.5, 0, sub {
        $w->cancel(sub { $cancelled = 1; $cancel_at = time });
    });
    my ($took, $broke) = guarded_run(20);
    ok !$broke, 'EV::run returned by itself after the watch was cancelled';
    ok $cancelled, '... the cancel was confirmed before it returned';
    cmp_ok $took, '>=', 1.3, sprintf('the live watch kept EV::run going (%.2fs)', $took);
    is scalar(grep { @{ $_->{events} || [] } } @events), 1, 'the watch saw the one event meanwhile';
    is $events[-1]{events}[0]{kv}{value}, 'event', '... with its value';

    # a watch nobody cancels holds the loop: the guard has to break it
    my $w2 = $c->watch('loop/w2', sub { });
    ($took, $broke) = guarded_run(1.5);
    ok $broke, 'an uncancelled watch keeps EV::run running';
    my $done;
    $w2->cancel(sub { $done = 1 });
    run_until(\$done, 10);
    ($took, $broke) = guarded_run(5);
    ok !$broke, 'once cancelled, EV::run returns at once again';
}

done_testing;
