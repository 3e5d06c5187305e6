#!/usr/bin/env perl
# Lifetimes: 50 clients at once; 1,000 clients created and destroyed with
# threads and file descriptors back to where they started; a client dropped
# with calls and streams in flight; a callback that drops its own client;
# a callback that captures its client, freed by following the weaken rule;
# program exit (global destruction) with live watches.
use strict;
use warnings;

use Test::More;
use Scalar::Util qw(weaken);
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

plan skip_all => 'needs /proc (Linux)' unless -d "/proc/$$/task" || EtcdTest::ci_mode();

my $srv = start_etcd(name => 'life');
my $ep  = $srv->endpoint;

sub threads { my @t = glob "/proc/$$/task/*"; scalar @t }
sub fds     { my @f = glob "/proc/$$/fd/*";   scalar @f }
sub pause   { run_until(sub { 0 }, $_[0]) }

# Settles thread and fd counts (a client's thread ends when it is dropped).
sub settle {
    my ($want_threads) = @_;
    for (1 .. 100) { last if threads() <= $want_threads; pause(0.02) }
}

ok_call(EV::Etcd->new(endpoints => [$ep]), 'put', 'life/warm', 1);
settle(1);
my ($t0, $f0) = (threads(), fds());
note "baseline: $t0 threads, $f0 fds";

# --- 50 clients at once -------------------------------------------------------
{
    my @c = map { EV::Etcd->new(endpoints => [$ep]) } 1 .. 50;
    is threads(), $t0 + 50, '50 clients: one runtime thread each';
    my $ok = 0;
    for my $i (0 .. $#c) {
        $c[$i]->put("life/many/$i", $i, sub {
            return if $_[1];
            $c[$i]->get("life/many/$i", sub { $ok++ if !$_[1] && $_[0]{kvs}[0]{value} == $i });
        });
    }
    run_until(sub { $ok == 50 }, 20);
    is $ok, 50, 'each of 50 clients put and read back its own key';
    @c = ();
    settle($t0);
    is threads(), $t0, 'all 50 threads are gone once the clients are';
    is fds(), $f0, '... and so are their file descriptors';
}

# --- 1,000 clients created and destroyed --------------------------------------
{
    my $start = time;
    my $answered = 0;
    for my $i (1 .. 1000) {
        my $c = EV::Etcd->new(endpoints => [$ep]);
        next if $i % 10;
        my $done;
        $c->get('life/warm', sub { $done = 1; $answered++ unless $_[1] });
        run_until(\$done, 10);
    }
    settle($t0);
    note sprintf '1,000 clients in %.1f s', time - $start;
    is $answered, 100, 'every tenth of 1,000 short-lived clients made a call';
    is threads(), $t0, 'threads back to the start';
    is fds(), $f0, 'file descriptors back to the start';
}

# --- dropped with calls and streams in flight ----------------------------------
{
    my $c = EV::Etcd->new(endpoints => [$ep]);
    my $called = 0;
    $c->put("life/drop/$_", $_, sub { $called++ }) for 1 .. 100;
    my $w  = $c->watch('life/drop/', { prefix => 1 }, sub { $called++ });
    my $l  = ok_call($c, 'lease_grant', 30)->{id};
    my $ka = $c->lease_keepalive($l, sub { $called++ });
    $called = 0;
    $c->put("life/drop/x$_", $_, sub { $called++ }) for 1 .. 100;
    undef $c;    # the handles still refer to it
    undef $w;
    undef $ka;
    my $t = time;
    EV::run;     # must not hang: nothing holds the loop any more
    cmp_ok time - $t, '<', 2, 'EV::run returns once a busy client is dropped';
    is $called, 0, 'callbacks of a dropped client are not called (as documented)';
    settle($t0);
    is threads(), $t0, '... and its thread is gone';
}

# --- a callback that drops its own client ----------------------------------------
{
    my $c = EV::Etcd->new(endpoints => [$ep]);
    my ($first, $later) = (0, 0);
    $c->put('life/self', 1, sub { $first++; undef $c });
    $c->put("life/self$_", 1, sub { $later++ }) for 1 .. 20;
    run_until(sub { $first }, 10);
    pause(0.3);
    is $first, 1, 'a callback may drop its own client';
    ok !defined $c, '... the client is gone';
    settle($t0);
    is threads(), $t0, '... with its thread, no crash';
}

# --- the reference-cycle rule ---------------------------------------------------------
# A callback that uses its client by a strong reference makes a cycle (the
# client holds the callback, the callback the client; a captured handle
# holds its client too): leaving the scope frees neither, as the POD warns.
# weaken, or close(), frees both.
our $LEAKED;
sub cycle {
    my ($how) = @_;
    my $c = EV::Etcd->new(endpoints => [$ep]);
    my $me = $c;
    weaken $me if $how eq 'weaken';
    my $events = 0;
    my $w = $c->watch('life/cycle', sub { $events++; $me->get('life/cycle', sub { }) if $me });
    # a handle captured by a callback holds its client just the same
    my $w2 = $how eq 'weaken' ? undef : $c->watch('life/cycle2', sub { my $keep = $w });
    pause(0.2);
    ok_call($c, 'put', 'life/cycle', $how);
    run_until(sub { $events >= 2 }, 5);
    $c->close if $how eq 'close';
    $LEAKED = $c;
    weaken $LEAKED;    # set only while the client lives on
    return $events;
}
{
    ok cycle('strong') >= 2, 'a client used by its own callbacks works';
    pause(0.2);
    is threads(), $t0 + 1, 'leaving the scope does not free it: the documented cycle';
    ok $LEAKED, '... the client is still there';
    $LEAKED->close if $LEAKED;    # and close() ends it after the fact
    settle($t0);
    ok !$LEAKED, 'close() on the leaked client frees it';
    is threads(), $t0, '... and its thread';

    ok cycle('weaken') >= 2, 'the same with a weakened reference in the callback';
    settle($t0);
    ok !$LEAKED, 'leaving the scope frees the client';
    is threads(), $t0, '... and its thread';

    ok cycle('close') >= 2, 'the same, strong, ended with close()';
    settle($t0);
    ok !$LEAKED, 'close() releases the callbacks: the client is freed';
    is threads(), $t0, '... and its thread';
}

# --- close ---------------------------------------------------------------------------------
{
    my $c = EV::Etcd->new(endpoints => [$ep]);
    my $called = 0;
    $c->put("life/close/$_", 1, sub { $called++ }) for 1 .. 20;
    my $w = $c->watch('life/close/', { prefix => 1 }, sub { $called++ });
    $c->close;
    my $t = time;
    EV::run;
    cmp_ok time - $t, '<', 1, 'after close EV::run is not held';
    is $called, 0, 'no callback runs after close';
    my $line = __LINE__ + 1;
    eval { $c->get('life/close/1', sub { }) };
    like $@, qr/^EV::Etcd: this client was closed at \Q$0\E line $line/, 'a call after close croaks at the caller';
    my @got;
    $w->cancel(sub { @got = @_ });
    is_deeply \@got, [ {}, undef ], 'a handle of a closed client cancels at once';
    ok eval { $c->close; 1 }, 'close twice is harmless';
}

# --- exit with live watches (global destruction) ---------------------------------------
{
    my $code = <<'PERL';
use strict; use warnings; use EV; use EV::Etcd;
our $c = EV::Etcd->new(endpoints => [$ARGV[0]]);
our @w = map { my $i = $_; $c->watch("life/exit/$i", sub { }) } 1 .. 20;
our $l; $c->lease_grant(30, sub { $l = $_[0]{id}; our $ka = $c->lease_keepalive($l, sub { EV::break }) });
my $t = EV::timer(0.5, 0, sub { EV::break });
EV::run;
$c->put("life/exit/$_", 1, sub { }) for 1 .. 50;    # still in flight at exit
print "exiting\n";
PERL
    my $out = `$^X -Mblib -e '$code' $ep 2>&1`;
    is $?, 0, 'a program that exits with live watches, a keepalive and calls in flight exits 0';
    like $out, qr/^exiting$/m, '... after its last statement';
    unlike $out, qr/panic|Attempt to free|Segmentation|EV: error|leaked/i, '... with nothing on stderr'
        or diag $out;
}

done_testing;
