#!/usr/bin/env perl
# Walks a large prefix with range_iterator and checks that memory stays
# bounded by a page, not by the range.
#
#   perl -Mblib -It/lib bench/range_walk.pl [--keys N] [--page-size P]
#        [--value-size B] [--batch T] [--window W] [--rss-limit MB] [--no-whole]
#
# Starts a throwaway etcd 3.5 (ETCD_BIN, or what scripts/etcd-bin.sh 3.5
# finds) with --unsafe-no-fsync, loads N keys (default 1,000,000) under one
# prefix with transactions of T puts (default 128), W transactions in flight
# (default 16), then walks the prefix with page_size P (default 1000). Every
# 100,000 keys it prints the walk's rate and the process's RSS; at the end
# it fails (exit 1) unless every key came exactly once and in order, and
# the RSS grew by less than --rss-limit MB (default 64) over the walk.
# Finally, for contrast, one plain get of the whole prefix and its RSS
# growth (skip with --no-whole). Not part of the test suite.
#
# The walk speeds up as it goes: etcd counts the rest of the range for
# every limited range request, so early pages cost the server more than
# late ones (with 1,000,000 keys and pages of 1000, the first 100,000 keys
# come at roughly a tenth of the rate of the last 100,000).
use strict;
use warnings;

use EV;
use EV::Etcd;
use EtcdTest qw(start_etcd default_etcd_bin);
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time);

my %opt = (keys => 1_000_000, 'page-size' => 1000, 'value-size' => 8, batch => 128,
           window => 16, 'rss-limit' => 64, whole => 1);
GetOptions(\%opt, 'keys=i', 'page-size=i', 'value-size=i', 'batch=i', 'window=i',
           'rss-limit=i', 'whole!') or die "bad options\n";
$| = 1;
$EV::DIED = sub { print STDERR "callback died: $@"; exit 1 };

default_etcd_bin('3.5');

sub rss_kb {
    open my $fh, '<', '/proc/self/status' or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)\s+kB/ }
    return 0;
}

my $rss_start = rss_kb();
my $srv  = start_etcd(name => 'walk', extra => [ '--unsafe-no-fsync', '--quota-backend-bytes', 8 * 2**30 ]);
my $etcd = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 60);
my $N    = $opt{keys};
my $prefix = 'bench/walk/';
my $value  = 'v' x $opt{'value-size'};
sub key_of { sprintf "${prefix}%08d", $_[0] }

printf "etcd %s at %s; %d keys, %d-byte values, page size %d\n",
    $srv->version // '?', $srv->endpoint, $N, $opt{'value-size'}, $opt{'page-size'};

# --- load: transactions of --batch puts, --window of them in flight --------
{
    my ($next, $done, $failed) = (0, 0, 0);
    my $t0 = time;
    my $fill;
    $fill = sub {
        while ($next < $N && $next - $done < $opt{window} * $opt{batch}) {
            my $from = $next;
            my $to   = $from + $opt{batch} - 1;
            $to = $N - 1 if $to >= $N;
            $next = $to + 1;
            my @ops = map { { put => { key => key_of($_), value => $value } } } $from .. $to;
            $etcd->txn([], \@ops, [], sub {
                my (undef, $err) = @_;
                if ($err) { warn "txn failed: $err->{status}: $err->{message}\n"; $failed++ }
                $done += $to - $from + 1;
                printf "  loaded %7d keys, %.0f keys/s\n", $done, $done / (time - $t0)
                    if $done % 200_000 < $opt{batch} && $done < $N;
                $fill->();
            });
        }
    };
    $fill->();
    EV::run;
    undef $fill;
    die "$failed load transactions failed\n" if $failed;
    printf "loaded %d keys in %.1f s (%.0f keys/s)\n", $N, time - $t0, $N / (time - $t0);
}

# --- walk --------------------------------------------------------------------
my ($rss0, $rss_max);
{
    my $it = $etcd->range_iterator($prefix, { prefix => 1, page_size => $opt{'page-size'} });
    my ($seen, $pages, $bad, $big_page) = (0, 0, 0, 0);
    my $prev = '';
    $rss0 = $rss_max = rss_kb();
    my $t0 = time;
    my ($t_mark, $n_mark) = ($t0, 0);
    printf "%10s %9s %9s %10s %9s\n", 'keys', 'keys/s', 'avg/s', 'RSS MB', '+MB';
    printf "%10d %9s %9s %10.1f %9.1f\n", 0, '-', '-', $rss0 / 1024, 0;
    my $err;
    my $step;
    $step = sub {
        $it->next(sub {
            my ($page, $e) = @_;
            if ($e) { $err = $e; undef $step; return }
            my $kvs = $page->{kvs};
            $pages++ if @$kvs;
            $big_page++ if @$kvs > $opt{'page-size'};
            for my $kv (@$kvs) {
                $bad++ unless $kv->{key} eq key_of($seen) && $kv->{key} gt $prev;
                $prev = $kv->{key};
                $seen++;
            }
            my $rss = rss_kb();
            $rss_max = $rss if $rss > $rss_max;
            if ($seen - $n_mark >= 100_000 || (!$page->{more} && $seen != $n_mark)) {
                my $now = time;
                printf "%10d %9.0f %9.0f %10.1f %9.1f\n", $seen, ($seen - $n_mark) / ($now - $t_mark),
                    $seen / ($now - $t0), $rss / 1024, ($rss - $rss0) / 1024;
                ($t_mark, $n_mark) = ($now, $seen);
            }
            if ($page->{more}) { $step->() } else { undef $step }
        });
    };
    $step->();
    EV::run;
    my $dt = time - $t0;
    die "walk failed: $err->{status}: $err->{message}\n" if $err;
    printf "walked %d keys in %d pages in %.1f s: %.0f keys/s at revision %d\n",
        $seen, $pages, $dt, $seen / $dt, $it->revision;
    my $grow = ($rss_max - $rss0) / 1024;
    printf "RSS: %.1f MB at the start, %.1f MB before the walk, peak %.1f MB (+%.1f MB; limit +%d MB)\n",
        $rss_start / 1024, $rss0 / 1024, $rss_max / 1024, $grow, $opt{'rss-limit'};
    my @fail;
    push @fail, "saw $seen keys, expected $N" unless $seen == $N;
    push @fail, "$bad keys out of order or not the expected ones" if $bad;
    push @fail, "$big_page pages larger than the page size" if $big_page;
    push @fail, sprintf('RSS grew by %.1f MB', $grow) if $grow >= $opt{'rss-limit'};
    if (@fail) { print "FAIL: $_\n" for @fail; exit 1 }
    print "OK: every key once, in order; memory bounded\n";
}

# --- for contrast: the whole prefix in one get -----------------------------------
if ($opt{whole}) {
    my $before = rss_kb();
    my $t0 = time;
    my ($n, $peak);
    $etcd->get($prefix, { prefix => 1 }, sub {
        my ($resp, $err) = @_;
        die "get failed: $err->{message}\n" if $err;
        $n = @{ $resp->{kvs} };
        $peak = rss_kb();    # while the whole answer is held
    });
    EV::run;
    printf "for contrast, one get of the whole prefix: %d keys in %.1f s, RSS +%.1f MB\n",
        $n, time - $t0, ($peak - $before) / 1024;
}
