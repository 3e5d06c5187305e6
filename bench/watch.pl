#!/usr/bin/env perl
# Many watches on one client, against a throwaway etcd.
#
#   perl -Mblib -It/lib bench/watch.pl [--watches N] [--window M]
#
# Creates N watches (one key each) on a single client and times how long it
# takes until all of them are confirmed; then puts every key once (at most
# M puts in flight) and times how long it takes until every watch has
# received its event; then cancels them all. Reports the process RSS at
# each stage and the server's view: how many gRPC watch streams and
# watchers etcd has (all watches of a client share one stream).
use strict;
use warnings;
use EV;
use EV::Etcd;
use EtcdTest;
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time);

my %opt = (watches => 10_000, window => 500);
GetOptions(\%opt, 'watches=i', 'window=i') or die "bad options\n";
my ($N, $W) = @opt{qw(watches window)};

$EV::DIED = sub { print STDERR "callback died: $@"; exit 1 };
$| = 1;

sub rss_kb {
    open my $fh, '<', '/proc/self/status' or return -1;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)\s+kB/ }
    return -1;
}

sub mb { sprintf '%.1f MB', $_[0] / 1024 }

my $srv = start_etcd();

sub server_metric {
    my ($name) = @_;
    my ($v) = $srv->metrics =~ /^\Q$name\E(?:\{[^}]*\})?\s+(\S+)/m;
    return $v // 'n/a';
}

# Runs the loop until $cond->() holds; dies after $timeout seconds.
sub wait_for {
    my ($what, $cond, $timeout) = @_;
    my $guard = EV::timer($timeout, 0, sub { die "timeout waiting for $what\n" });
    EV::run(EV::RUN_ONCE()) until $cond->();
}

my $etcd = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
my @keys = map { sprintf 'bench/watch/%06d', $_ } 0 .. $N - 1;

# Warm up the connection (and the allocator) before the first measurement.
{
    my $done;
    $etcd->put('bench/warmup', 'x', sub { die "$_[1]{message}\n" if $_[1]; $done = 1 });
    wait_for('warm-up', sub { $done }, 30);
}

printf "etcd %s at %s; %d watches on one client, put window %d\n",
    $srv->version // '?', $srv->endpoint, $N, $W;
my $rss0 = rss_kb();
printf "RSS before watches:          %s\n", mb($rss0);

# --- create ---
my ($created, $events) = (0, 0);
my @put_at;          # key index => time its put was issued
my @event_lat;
my $t_last_event;

my $t0 = time;
my @watches;
for my $i (0 .. $N - 1) {
    push @watches, $etcd->watch($keys[$i], sub {
        my ($msg, $err) = @_;
        die "watch $i: $err->{status} $err->{message}\n" if $err;
        $created++ if $msg->{created};
        for (@{ $msg->{events} }) {
            $events++;
            $t_last_event = time;
            push @event_lat, $t_last_event - $put_at[$i];
        }
    });
}
my $t_submit = time - $t0;
wait_for('watch creation', sub { $created == $N }, 300);
my $t_create = time - $t0;
my $rss1 = rss_kb();
printf "created %d watches in %.2f s (%.0f/s; submitting took %.2f s)\n",
    $N, $t_create, $N / $t_create, $t_submit;
printf "RSS with %d watches:      %s (+%s, %.2f kB per watch)\n",
    $N, mb($rss1), mb($rss1 - $rss0), ($rss1 - $rss0) / $N;
printf "server: etcd_debugging_mvcc_watch_stream_total = %s, etcd_debugging_mvcc_watcher_total = %s\n",
    server_metric('etcd_debugging_mvcc_watch_stream_total'),
    server_metric('etcd_debugging_mvcc_watcher_total');

# --- one put per key ---
my ($issued, $put_done) = (0, 0);
my $fill;
$fill = sub {
    while ($issued < $N && $issued - $put_done < $W) {
        my $i = $issued++;
        $put_at[$i] = time;
        $etcd->put($keys[$i], "value-$i", sub {
            die "put: $_[1]{status} $_[1]{message}\n" if $_[1];
            $put_done++;
            $fill->();
        });
    }
};
$t0 = time;
$fill->();
wait_for('events', sub { $events == $N && $put_done == $N }, 300);
undef $fill;
my $t_events = $t_last_event - $t0;
my @lat = sort { $a <=> $b } @event_lat;
my $p = sub { $lat[ int($_[0] / 100 * $#lat + 0.5) ] * 1000 };
printf "all %d watches got their event %.2f s after the first put (%.0f events/s)\n",
    $N, $t_events, $N / $t_events;
printf "put-to-event latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
    $p->(50), $p->(90), $p->(99), $lat[-1] * 1000;
my $rss2 = rss_kb();
printf "RSS after the events:        %s\n", mb($rss2);

# --- cancel ---
my $cancelled = 0;
$t0 = time;
$_->cancel(sub { die "cancel: $_[1]{message}\n" if $_[1]; $cancelled++ }) for @watches;
EV::run;    # returns by itself: nothing is left in flight once all are cancelled
my $t_cancel = time - $t0;
die "only $cancelled of $N cancels completed\n" unless $cancelled == $N;
@watches = ();
printf "cancelled all %d watches in %.2f s; EV::run returned by itself\n", $N, $t_cancel;
printf "RSS after cancelling:        %s\n", mb(rss_kb());
printf "server: etcd_debugging_mvcc_watch_stream_total = %s, etcd_debugging_mvcc_watcher_total = %s\n",
    server_metric('etcd_debugging_mvcc_watch_stream_total'),
    server_metric('etcd_debugging_mvcc_watcher_total');

$srv->stop;
