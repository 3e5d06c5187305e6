#!/usr/bin/env perl
# The two I/O modes (io_mode): 'inline' runs calls and watches on the Perl
# thread, moved forward by the EV loop; 'background' runs them on the
# client's own thread. In both:
#   - io_mode reports the mode in use, the option and EV_ETCD_IO_MODE pick
#     it, and bad values croak at the caller's line naming the problem;
#   - a watch created before a put sees that put (fresh clients, so that
#     the watch stream is still being opened when the puts are made; and
#     a second watch on a stream already open), while calls made before
#     the watch are not held back;
#   - calls held behind a watch still go when the watch cannot be made
#     (nothing listening) or is cancelled before etcd answers it.
# In the background mode a call made just before Perl blocks (a sleep)
# reaches etcd during the block, as another process sees.
use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

use EV;
use EV::Etcd;

# --- option checks: no server needed -----------------------------------------
{
    local $ENV{EV_ETCD_IO_MODE};
    my $line = __LINE__ + 1;
    eval { EV::Etcd->new(io_mode => 'fast') };
    like $@, qr/^EV::Etcd->new: io_mode must be 'inline' or 'background' at \Q$0\E line $line\.$/,
        'a bad io_mode croaks at the caller\'s line';
    $ENV{EV_ETCD_IO_MODE} = 'threads';
    eval { EV::Etcd->new };
    like $@, qr/EV_ETCD_IO_MODE in the environment must be 'inline' or 'background', not 'threads'/,
        'so does a bad EV_ETCD_IO_MODE';
    $ENV{EV_ETCD_IO_MODE} = 'background';
    is(EV::Etcd->new->io_mode, 'background', 'EV_ETCD_IO_MODE picks the mode');
    is(EV::Etcd->new(io_mode => 'inline')->io_mode, 'inline', 'the option wins over the environment');
    delete $ENV{EV_ETCD_IO_MODE};
    is(EV::Etcd->new->io_mode, 'inline', 'inline by default on Linux');
    is(EV::Etcd->new(io_mode => undef)->io_mode, 'inline', 'undef means the default');
    is(EV::Etcd->new(io_mode => 'background')->io_mode, 'background', 'background when asked');
}

need_etcd();
my $srv = start_etcd();
my $ep  = $srv->endpoint;

for my $mode (qw(inline background)) {
    my $client = sub { EV::Etcd->new(endpoints => [ $ep ], io_mode => $mode, @_) };

    # A fresh client each time: the watch stream is not open yet. (etcd
    # handles concurrent calls in any order, so the two puts may be
    # applied either way round: the watch must see both.)
    my $N = 20;
    my $seen_all = 0;
    for my $i (1 .. $N) {
        my $c = $client->();
        my $key = "io/$mode/$i";
        my ($answered, @events) = (0);
        my $w = $c->watch($key, sub {
            my ($m, $e) = @_;
            push @events, map { $_->{kv}{value} } @{ $m->{events} // [] } if $m;
        });
        $c->put($key, $_, sub { $answered++ }) for qw(a b);
        run_until(sub { @events == 2 && $answered == 2 }, 5);
        if (join(' ', sort @events) eq 'a b') { $seen_all++ }
        else { diag "$mode, client $i: the watch saw (@events)" }
    }
    is $seen_all, $N, "$mode: a watch made just before two puts saw both, $N fresh clients out of $N";

    # A second watch, on a stream already open.
    my $c = $client->();
    is $c->io_mode, $mode, "io_mode says $mode";
    my @first;
    my $w1 = $c->watch('io/other', sub { push @first, $_[0] if $_[0] });
    ok run_until(sub { @first }, 5), "$mode: a first watch is created";
    my $misses = 0;
    for my $i (1 .. 10) {
        my @ev;
        my $w = $c->watch("io/$mode/second/$i", { prefix => 1 }, sub {
            my ($m) = @_;
            push @ev, @{ $m->{events} // [] } if $m;
        });
        my $done;
        $c->txn(compare => [], success => [ { put => { key => "io/$mode/second/$i/k", value => 'v' } } ],
                callback => sub { $done = 1 });
        run_until(sub { $done && @ev }, 5);
        $misses++ unless @ev == 1;
        $w->cancel(sub {});
    }
    is $misses, 0, "$mode: a watch made on an open stream saw the txn made right after it, 10 of 10";

    # Calls made before a watch are not held behind it.
    {
        my ($got, @created);
        $c->get('io/none', sub { $got = time });
        my $w = $c->watch('io/before', sub { push @created, time if $_[0] && $_[0]{created} });
        ok run_until(sub { $got && @created }, 5), "$mode: a get made before a watch is answered";
        $w->cancel(sub {});
    }

    # A watch that cannot be made: nothing listens there. The put behind it
    # is not held until the watch gives up: it fails on its own.
    {
        my $dead = EV::Etcd->new(endpoints => [ '127.0.0.1:' . free_port() ],
                                 io_mode => $mode, timeout => 2, max_retries => 5);
        my (@werr, $perr, $pdone);
        my $w = $dead->watch('io/x', sub { push @werr, $_[1] if $_[1] });
        my $t0 = time;
        $dead->put('io/x', 'v', sub { ($perr, $pdone) = ($_[1], time) });
        ok run_until(sub { $pdone }, 5), "$mode: a put behind a watch that cannot be made is answered";
        is $perr && $perr->{status}, 'UNAVAILABLE', "$mode: ... with UNAVAILABLE";
        cmp_ok +($pdone // 1e9) - $t0, '<', 2, "$mode: ... without waiting for the watch's reconnects";
        is scalar(@werr), 0, "$mode: the watch itself is still retrying";
        $w->cancel(sub {});
    }

    # A watch cancelled before etcd answered it lets the calls behind it go.
    {
        my $c2 = $client->();
        my $w = $c2->watch('io/cancelled', sub {});
        my $cancelled;
        $w->cancel(sub { $cancelled = 1 });
        my ($resp, $err) = call($c2, 'put', 'io/cancelled', 'v');
        ok $resp && !$err, "$mode: a put after a cancelled watch succeeds";
        ok run_until(\$cancelled, 5), "$mode: the cancel was answered";
    }
}

# Background mode: the put travels while Perl sleeps. A child process
# (its own client) looks for the key half way through the parent's sleep.
{
    my $key = 'io/while-blocked';
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        sleep 0.75;
        my $c = EV::Etcd->new(endpoints => [ $ep ]);
        my ($r, $e) = call($c, 'get', $key);
        POSIX::_exit($e ? 2 : $r->{count} ? 0 : 1);
    }
    my $c = EV::Etcd->new(endpoints => [ $ep ], io_mode => 'background');
    my $answered;
    $c->put($key, 'v', sub { $answered = 1 });
    sleep 1.5;    # Perl blocks: no loop runs
    waitpid $pid, 0;
    is $? >> 8, 0, 'background: a put made before Perl blocked was applied during the block';
    ok run_until(\$answered, 5), '... and its callback runs once the loop does';
}

done_testing;
