#!/usr/bin/env perl
# What a mirror (EV::Etcd::Mirror) costs: the time to load a prefix, the
# memory per mirrored key, and how fast it applies a burst of changes.
#
#   perl -Mblib -It/lib bench/mirror.pl [--keys N] [--value-size B]
#        [--page-size P] [--changes C] [--window W]
#
# Starts a throwaway etcd 3.5 (ETCD_BIN, or what scripts/etcd-bin.sh 3.5
# finds) with --unsafe-no-fsync, writes N keys (default 100,000) of B
# bytes (default 100) under one prefix, then mirrors the prefix with page
# size P (default 1000) and reports the load time and the growth of the
# process's RSS per key (from /proc/self/statm: an upper bound, as it
# counts the allocator's slack and the pages' garbage too). Then a second
# client rewrites C existing keys (default 10,000), W puts in flight at a
# time (default 1000), and the time is taken from the first put until the
# mirror's view shows the last one. Both clients share this process and
# its loop. Not part of the test suite.
use strict;
use warnings;

use EV;
use EV::Etcd;
use EtcdTest qw(start_etcd default_etcd_bin);
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time);

my %opt = (keys => 100_000, 'value-size' => 100, 'page-size' => 1000, changes => 10_000, window => 1000);
GetOptions(\%opt, 'keys=i', 'value-size=i', 'page-size=i', 'changes=i', 'window=i') or die "bad options\n";
$| = 1;
$EV::DIED = sub { print STDERR "callback died: $@"; exit 1 };

default_etcd_bin('3.5');

my $PAGE = 4096;
sub rss_bytes {
    open my $fh, '<', '/proc/self/statm' or return 0;
    my (undef, $resident) = split ' ', scalar <$fh>;
    return $resident * $PAGE;
}

my $srv = start_etcd(name => 'mirror-bench', extra => [ '--unsafe-no-fsync' ]);
my $writer = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 60);
my $N      = $opt{keys};
my $prefix = 'bench/mirror/';
sub key_of { sprintf "${prefix}%08d", $_[0] }
sub value_of { my $v = "$_[0]-" . ('v' x $opt{'value-size'}); substr $v, 0, $opt{'value-size'} }

printf "etcd %s at %s; %d keys, %d-byte values, page size %d\n",
    $srv->version // '?', $srv->endpoint, $N, $opt{'value-size'}, $opt{'page-size'};

# --- fill: transactions of 128 puts, 16 in flight -----------------------------------------
{
    my ($next, $done) = (0, 0);
    my $fill;
    $fill = sub {
        while ($next < $N && $next - $done < 16 * 128) {
            my ($from, $to) = ($next, $next + 127 < $N ? $next + 127 : $N - 1);
            $next = $to + 1;
            $writer->txn([], [ map { { put => { key => key_of($_), value => value_of($_) } } } $from .. $to ], [], sub {
                die "txn failed: $_[1]{message}\n" if $_[1];
                $done += $to - $from + 1;
                $fill->();
            });
        }
    };
    my $t0 = time;
    $fill->();
    EV::run;
    undef $fill;
    printf "wrote %d keys in %.1f s\n", $N, time - $t0;
}

# --- load ------------------------------------------------------------------------------------
my $etcd = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 60);
my ($m, $ready, $err, $target, $t_last);
my $rss0 = rss_bytes();
my $t0 = time;
$m = $etcd->mirror($prefix, { page_size => $opt{'page-size'} }, sub {
    my ($msg, $e) = @_;
    if ($e) { $err = $e; EV::break; return }
    if ($msg->{ready}) { $ready = $msg; EV::break; return }
    if (defined $target && $msg->{revision} >= $target) { $t_last = time; EV::break }
});
EV::run;
die "mirror failed: $err->{message}\n" if $err;
my $load = time - $t0;
my $rss1 = rss_bytes();
printf "load: %d keys in %.2f s (%.0f keys/s), %d pages\n", $ready->{count}, $load, $ready->{count} / $load,
    int(($ready->{count} + $opt{'page-size'} - 1) / $opt{'page-size'});
printf "memory: RSS +%.1f MB, %.0f bytes per mirrored key (key %d bytes, value %d bytes)\n",
    ($rss1 - $rss0) / 2**20, ($rss1 - $rss0) / $ready->{count}, length key_of(0), $opt{'value-size'};

# --- a burst of changes ----------------------------------------------------------------------
{
    my $C = $opt{changes};
    my ($sent, $answered, $last_rev) = (0, 0, 0);
    my $ts = time;
    my $send;
    $send = sub {
        while ($sent < $C && $sent - $answered < $opt{window}) {
            my $i = $sent++;
            $writer->put(key_of(($i * 7919) % $N), "changed-$i-" . value_of($i), sub {
                my ($resp, $e) = @_;
                die "put failed: $e->{message}\n" if $e;
                $answered++;
                $last_rev = $resp->{header}{revision} if $resp->{header}{revision} > $last_rev;
                if ($answered == $C) {
                    $target = $last_rev;
                    if ($m->revision >= $target) { $t_last = time; EV::break }
                    return;
                }
                $send->();
            });
        }
    };
    $send->();
    EV::run;
    undef $send;
    die "mirror failed: $err->{message}\n" if $err;
    my $t_puts = time;
    printf "changes: %d puts answered and applied by the mirror in %.2f s (%.0f changes/s); view at revision %d\n",
        $C, $t_last - $ts, $C / ($t_last - $ts), $m->revision;
    my $k = key_of((($C - 1) * 7919) % $N);
    die "the view does not show the last put\n" unless ($m->get($k) // '') eq "changed-" . ($C - 1) . '-' . value_of($C - 1);
}

my $done;
$m->cancel(sub { $done = 1 });
EV::run(EV::RUN_ONCE) until $done;
$srv->stop;
