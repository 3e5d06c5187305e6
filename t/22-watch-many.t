#!/usr/bin/env perl
# 10,000 watches on one client: all share a single gRPC Watch stream, all are
# created, each receives exactly the one event of its own key, and all can be
# cancelled.  Creation and delivery times and the RSS growth are reported
# with diag (not asserted).
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest;

need_etcd();
use EV;
use EV::Etcd;

my $N = 10_000;

sub rss_kb {
    open my $fh, '<', '/proc/self/status' or return undef;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)\s+kB/ }
    return undef;
}

# Value of a metric in the Prometheus text from /metrics; $labels, when
# given, is a string the label set must contain.
sub metric {
    my ($text, $name, $labels) = @_;
    for my $line (split /\n/, $text) {
        next unless $line =~ /^\Q$name\E(\{[^}]*\})?\s+([0-9.eE+-]+)\s*$/;
        next if defined $labels && index($1 // '', $labels) < 0;
        return 0 + $2;
    }
    return undef;
}
my $WATCH_RPC = 'grpc_method="Watch",grpc_service="etcdserverpb.Watch"';

# Poll the server's metrics until $want->(value) holds (metrics are updated by
# the server asynchronously); returns the last value seen.
sub wait_metric {
    my ($srv, $name, $want, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    my $v;
    while (1) {
        $v = metric($srv->metrics, $name);
        return $v if defined $v && $want->($v);
        return $v if time > $deadline;
        run_until(sub { 0 }, 0.2);
    }
}

# CPU seconds used so far by a process (for the diag lines only).
sub cpu_of_pid {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\)\s*//sr);
    return ($f[11] + $f[12]) / 100;    # utime + stime in clock ticks
}
sub cpu_self { my @t = times; $t[0] + $t[1] }
sub cpu_diag {
    my ($what, $srv, $e0, $s0) = @_;
    diag sprintf '  CPU during %s: etcd %.1fs, this process %.1fs',
        $what, cpu_of_pid($srv->pid) - $e0, cpu_self() - $s0;
}

my $srv = start_etcd(name => 'many');
my $rss0 = rss_kb();

my $c  = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 30);
my $pc = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 30);

# per watch: number of created messages, events, errors, and the event seen
my (@created, @nev, @nerr, @id, @bad);
my ($created_total, $events_total, $errors_total) = (0, 0, 0);
my @handles;

my ($ecpu, $scpu) = (cpu_of_pid($srv->pid), cpu_self());
my $t0 = time;
for my $i (0 .. $N - 1) {
    push @handles, $c->watch("/many/$i", sub {
        my ($resp, $err) = @_;
        if ($err) { $nerr[$i]++; $errors_total++; return }
        if ($resp->{created}) {
            $created[$i]++;
            $created_total++;
            $id[$i] = $resp->{watch_id};
        }
        for my $ev (@{ $resp->{events} }) {
            $nev[$i]++;
            $events_total++;
            push @bad, "$i: got $ev->{type} $ev->{kv}{key}=$ev->{kv}{value}"
                unless $ev->{type} eq 'PUT' && $ev->{kv}{key} eq "/many/$i"
                    && $ev->{kv}{value} eq "v$i";
        }
    });
}
my $t_submit = time - $t0;
ok run_until(sub { $created_total >= $N || $errors_total }, 30), "all $N watches created";
my $t_create = time - $t0;
is $created_total, $N, "$N created messages";
is $errors_total, 0, 'no watch failed';
is scalar(grep { ($created[$_] // 0) != 1 } 0 .. $N - 1), 0, 'each watch got exactly one created message';
my %ids; $ids{ $id[$_] // 'undef' }++ for 0 .. $N - 1;
is scalar(keys %ids), $N, 'every watch has its own watch_id';
diag sprintf '%d watches: submitted in %.2fs, all created after %.2fs', $N, $t_submit, $t_create;
cpu_diag('creation', $srv, $ecpu, $scpu);

# --- one stream on the server ------------------------------------------------
my $streams  = wait_metric($srv, 'etcd_debugging_mvcc_watch_stream_total', sub { $_[0] == 1 });
my $watchers = wait_metric($srv, 'etcd_debugging_mvcc_watcher_total', sub { $_[0] == $N });
is $streams, 1, 'the server sees exactly one watch stream';
is $watchers, $N, "the server has $N watchers";
is metric($srv->metrics, 'grpc_server_started_total', $WATCH_RPC), 1,
    'the client opened the Watch stream once (no reconnect while creating)';

# --- one event per key -------------------------------------------------------
# Keys are written by a second client in transactions of 100 puts each, with
# a few transactions in flight at a time.
my $batch = 100;
my ($next, $inflight, $put_err) = (0, 0, 0);
($ecpu, $scpu) = (cpu_of_pid($srv->pid), cpu_self());
my $t1 = time;
my $pump; $pump = sub {
    while ($inflight < 4 && $next < $N) {
        my @ops = map { { put => { key => "/many/$_", value => "v$_" } } }
                  $next .. ($next + $batch - 1 < $N ? $next + $batch - 1 : $N - 1);
        $next += @ops;
        $inflight++;
        $pc->txn(success => \@ops, callback => sub {
            $inflight--;
            $put_err++ if $_[1];
            $pump->();
        });
    }
};
$pump->();
ok run_until(sub { $events_total >= $N || $put_err }, 30), 'every event delivered';
my $t_deliver = time - $t1;
run_until(sub { 0 }, 1);    # extra events, if any, would arrive now
is $put_err, 0, 'all writes succeeded';
is $events_total, $N, "$N events in total";
is scalar(grep { ($nev[$_] // 0) != 1 } 0 .. $N - 1), 0, 'each watch received exactly one event';
is scalar(@bad), 0, 'each event is the PUT of the watch\'s own key' or diag join "\n", @bad[0 .. 9];
is $errors_total, 0, 'still no errors';
is metric($srv->metrics, 'grpc_server_started_total', $WATCH_RPC), 1,
    'still the one Watch stream after delivering every event';

my $rss1 = rss_kb();
diag sprintf 'delivery of %d events: %.2fs', $N, $t_deliver;
cpu_diag('delivery', $srv, $ecpu, $scpu);
diag sprintf 'RSS: %d kB before, %d kB after (+%.1f MB)', $rss0, $rss1, ($rss1 - $rss0) / 1024
    if defined $rss0 && defined $rss1;

# --- cancel them all -----------------------------------------------------------
my ($cancelled, $cancel_err) = (0, 0);
my $t2 = time;
for my $h (@handles) {
    $h->cancel(sub { $_[1] ? $cancel_err++ : $cancelled++ });
}
ok run_until(sub { $cancelled + $cancel_err >= $N }, 30), 'every cancel called back';
is $cancelled, $N, 'all cancels succeeded';
diag sprintf 'cancel of %d watches: %.2fs', $N, time - $t2;
is wait_metric($srv, 'etcd_debugging_mvcc_watcher_total', sub { $_[0] == 0 }), 0,
    'no watcher left on the server';

{
    my $before = $events_total;
    my $done;
    $pc->put('/many/0', 'late', sub { $done = 1 });
    run_until(\$done, 10);
    run_until(sub { 0 }, 0.5);
    is $events_total, $before, 'no event after the watches were cancelled';
}

done_testing;
