#!/usr/bin/env perl
# Memory stability of EV::Etcd under sustained load, against a throwaway etcd.
#
#   perl -Mblib -It/lib bench/leak.pl [--cycles N] [--batch B] [--window M]
#        [--watch-rounds R] [--watches W]
#
# Runs N put-then-get cycles (the get starts from the put's callback and
# checks the value), at most M cycles in flight, in batches of B. After
# every batch it compacts the store and prints the process RSS. Requests,
# responses, callbacks and error paths all allocate on both the Perl and
# the Rust side; if any of that leaked, RSS would climb batch after batch.
# After the first few batches (allocator warm-up) it should stay flat.
#
# A second, shorter part does the same for streams: R rounds of creating W
# watches, waiting until all are confirmed, and cancelling them all.
use strict;
use warnings;
use EV;
use EV::Etcd;
use EtcdTest;
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time);

my %opt = (cycles => 200_000, batch => 10_000, window => 100,
           'watch-rounds' => 10, watches => 2000);
GetOptions(\%opt, 'cycles=i', 'batch=i', 'window=i', 'watch-rounds=i', 'watches=i')
    or die "bad options\n";

$EV::DIED = sub { print STDERR "callback died: $@"; exit 1 };
$| = 1;

sub rss_kb {
    open my $fh, '<', '/proc/self/status' or return -1;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)\s+kB/ }
    return -1;
}

my $srv  = start_etcd();
my $etcd = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
my @keys = map { "bench/leak/$_" } 0 .. 999;

printf "etcd %s at %s; %d put+get cycles in batches of %d, window %d\n",
    $srv->version // '?', $srv->endpoint, @opt{qw(cycles batch window)};

sub check { die "$_[0]: $_[1]{status} $_[1]{message}\n" if $_[1] }

# One batch: $n cycles, window $w. EV::run returns when all are done.
sub run_batch {
    my ($first, $n, $w) = @_;
    my ($issued, $done) = (0, 0);
    my $fill;
    $fill = sub {
        while ($issued < $n && $issued - $done < $w) {
            my $c     = $first + $issued++;
            my $key   = $keys[ $c % @keys ];
            my $value = "cycle $c " . ('.' x ($c % 200));
            $etcd->put($key, $value, sub {
                check('put', $_[1]);
                $etcd->get($key, sub {
                    my ($resp, $err) = @_;
                    check('get', $err);
                    # Another cycle may have rewritten the key meanwhile;
                    # only insist on a well-formed answer.
                    die "get $key: no value\n" unless $resp->{count} == 1;
                    $done++;
                    $fill->();
                });
            });
        }
    };
    $fill->();
    EV::run;
    undef $fill;    # break the closure's self-reference
    die "batch incomplete: $done of $n\n" unless $done == $n;
}

sub compact {
    $etcd->get('bench/', { prefix => 1, count_only => 1 }, sub {
        check('get', $_[1]);
        $etcd->compact($_[0]{header}{revision}, sub { check('compact', $_[1]) });
    });
    EV::run;
}

my $start_rss = rss_kb();
printf "%-6s %10s %8s %10s %12s\n", 'batch', 'cycles', 'secs', 'cycles/s', 'RSS';
printf "%-6s %10d %8s %10s %9.1f MB\n", 'start', 0, '-', '-', $start_rss / 1024;

my ($cycle, $batch) = (0, 0);
my @rss;
my $t_all = time;
while ($cycle < $opt{cycles}) {
    my $n  = $opt{cycles} - $cycle;
    $n     = $opt{batch} if $n > $opt{batch};
    my $t0 = time;
    run_batch($cycle, $n, $opt{window});
    my $dt = time - $t0;
    $cycle += $n;
    compact();
    push @rss, rss_kb();
    printf "%-6d %10d %8.2f %10.0f %9.1f MB\n", ++$batch, $cycle, $dt, $n / $dt, $rss[-1] / 1024;
}
my $total = time - $t_all;

# Compare the end with the state after warm-up (third batch, or the first
# when there are fewer).
my $ref = $rss[ @rss > 2 ? 2 : 0 ];
printf "total: %d cycles (%d requests) in %.1f s; RSS %.1f MB after batch %d, %.1f MB at the end (%+.1f MB)\n",
    $cycle, 2 * $cycle, $total, $ref / 1024, (@rss > 2 ? 3 : 1), $rss[-1] / 1024,
    ($rss[-1] - $ref) / 1024;

# --- watch churn ---
if ($opt{'watch-rounds'} > 0) {
    printf "\nwatch churn: %d rounds of %d watches created and cancelled\n",
        $opt{'watch-rounds'}, $opt{watches};
    my @wrss;
    for my $round (1 .. $opt{'watch-rounds'}) {
        my ($created, $cancelled) = (0, 0);
        my @w;
        # At most --window creations unanswered at a time: a burst of
        # thousands of small 'created' replies can trip the HTTP/2 layer's
        # flood protection, which costs reconnects (see bench/watch.pl for
        # the all-at-once case).
        my $more;
        $more = sub {
            while (@w < $opt{watches} && @w - $created < $opt{window}) {
                my $i = @w;
                push @w, $etcd->watch("bench/churn/$i", sub {
                    check('watch', $_[1]);
                    if ($_[0]{created}) { $created++; $more->() }
                });
            }
        };
        $more->();
        my $guard = EV::timer(120, 0, sub {
            die "watch creation timed out ($created of $opt{watches} confirmed)\n";
        });
        EV::run(EV::RUN_ONCE()) until $created == $opt{watches};
        undef $guard;
        undef $more;
        $_->cancel(sub { check('cancel', $_[1]); $cancelled++ }) for @w;
        EV::run;    # returns once every watch is cancelled
        die "only $cancelled cancels\n" unless $cancelled == $opt{watches};
        @w = ();
        push @wrss, rss_kb();
        printf "round %3d %9.1f MB\n", $round, $wrss[-1] / 1024;
    }
    my $wref = $wrss[ @wrss > 2 ? 2 : 0 ];
    printf "watch churn: RSS %.1f MB after round %d, %.1f MB at the end (%+.1f MB)\n",
        $wref / 1024, (@wrss > 2 ? 3 : 1), $wrss[-1] / 1024, ($wrss[-1] - $wref) / 1024;
}

$srv->stop;
