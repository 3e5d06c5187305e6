#!/usr/bin/env perl
# Key-value throughput and latency of EV::Etcd against a throwaway etcd.
#
#   perl -Mblib -It/lib bench/kv.pl [--ops N] [--window M] [--value-size B]
#
# Phase 1 writes N distinct keys with at most M puts in flight; phase 2
# reads them back, one key per get, with the same window. Between the
# phases the store is compacted (physically), because etcd 3.4 serves
# single-key reads noticeably slower when they have to skip old history.
# Each phase reports operations per second and latency percentiles,
# latency being the time from the method call to its callback.
use strict;
use warnings;
use EV;
use EV::Etcd;
use EtcdTest;
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time);

my %opt = (ops => 20_000, window => 500, 'value-size' => 100);
GetOptions(\%opt, 'ops=i', 'window=i', 'value-size=i') or die "bad options\n";
my ($N, $W) = @opt{qw(ops window)};

$EV::DIED = sub { print STDERR "callback died: $@"; exit 1 };
$| = 1;

my $srv  = start_etcd();
my $etcd = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
my $value = 'v' x $opt{'value-size'};
my @keys  = map { sprintf 'bench/kv/%08d', $_ } 0 .. $N - 1;

printf "etcd %s at %s; %d ops per phase, window %d, %d-byte values\n",
    $srv->version // '?', $srv->endpoint, $N, $W, $opt{'value-size'};

# Runs $n operations, keeping up to $window of them in flight. $start->($i, $done)
# must start operation $i and arrange for $done->() to be called when it has
# completed. Returns (elapsed seconds, sorted latencies).
sub run_windowed {
    my ($n, $window, $start) = @_;
    my @lat = (0) x $n;
    my ($issued, $completed) = (0, 0);
    my $fill;
    $fill = sub {
        while ($issued < $n && $issued - $completed < $window) {
            my $i  = $issued++;
            my $t0 = time;
            $start->($i, sub {
                $lat[$i] = time - $t0;
                $completed++;
                $fill->();
            });
        }
    };
    my $t0 = time;
    $fill->();
    EV::run;    # returns by itself once nothing is in flight
    my $elapsed = time - $t0;
    undef $fill;
    die "only $completed of $n operations completed\n" unless $completed == $n;
    return ($elapsed, [ sort { $a <=> $b } @lat ]);
}

sub pct {
    my ($sorted, $p) = @_;
    my $i = int($p / 100 * @$sorted + 0.5) - 1;
    $i = 0 if $i < 0;
    $i = $#$sorted if $i > $#$sorted;
    return $sorted->[$i] * 1000;
}

sub report {
    my ($name, $elapsed, $lat) = @_;
    printf "%-12s %8d ops in %6.2f s = %8.0f ops/s | latency ms: p50 %6.2f  p90 %6.2f  p99 %6.2f  max %6.2f\n",
        $name, scalar @$lat, $elapsed, @$lat / $elapsed,
        pct($lat, 50), pct($lat, 90), pct($lat, 99), $lat->[-1] * 1000;
}

sub check_err {
    my ($what, $err) = @_;
    die "$what failed: $err->{status} $err->{message}\n" if $err;
}

sub compact_now {
    my $done;
    $etcd->get('bench/', { count_only => 1, prefix => 1 }, sub {
        my ($resp, $err) = @_;
        check_err('get', $err);
        my $rev = $resp->{header}{revision};
        $etcd->compact($rev, { physical => 1 }, sub {
            check_err('compact', $_[1]);
            $done = $rev;
        });
    });
    EV::run;
    printf "compacted at revision %d\n", $done;
}

# Warm up the connection so that the first phase does not pay for it.
run_windowed(100, 50, sub {
    my ($i, $done) = @_;
    $etcd->put("bench/warmup/$i", $value, sub { check_err('put', $_[1]); $done->() });
});
compact_now();

my ($t, $lat) = run_windowed($N, $W, sub {
    my ($i, $done) = @_;
    $etcd->put($keys[$i], $value, sub { check_err('put', $_[1]); $done->() });
});
report('put', $t, $lat);

compact_now();

($t, $lat) = run_windowed($N, $W, sub {
    my ($i, $done) = @_;
    $etcd->get($keys[$i], sub {
        my ($resp, $err) = @_;
        check_err('get', $err);
        die "get $keys[$i]: wrong answer\n"
            unless $resp->{count} == 1 && $resp->{kvs}[0]{value} eq $value;
        $done->();
    });
});
report('get', $t, $lat);

# The same reads again, serializable: answered by the member without a
# round of consensus (a single member here, so the difference is small).
($t, $lat) = run_windowed($N, $W, sub {
    my ($i, $done) = @_;
    $etcd->get($keys[$i], { serializable => 1 }, sub { check_err('get', $_[1]); $done->() });
});
report('get serial.', $t, $lat);

$srv->stop;
