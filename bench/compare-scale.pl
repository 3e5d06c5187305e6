#!/usr/bin/env perl
# Scale section of bench/compare.sh (--scale): EV::Etcd from Perl, one
# client, one case per process (so the RSS baseline is this case's alone).
# Prints one JSON line; any failed call or wrong reply prints "FAIL: ..."
# on stderr and exits 1.
#
#   perl -Mblib bench/compare-scale.pl --endpoint HOST:PORT --case inflight --count 10000
#     --case inflight   issue --count puts at once (none answered yet when the
#                       issuing loop ends), then run the loop until all are
#                       answered; RSS before, right after issuing, peak, after
#     --case watches    create --count watches (one key each), wait until all
#                       are confirmed, put every key once (--window puts in
#                       flight) until every watch has its event, then cancel
#                       them all; time and RSS of each stage
#
# RSS is VmRSS of /proc/self/status; the peak is VmHWM after resetting it
# through /proc/self/clear_refs.
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);
use JSON::PP ();
use Time::HiRes qw(time);

my %opt = (window => 1000);
GetOptions(\%opt, 'endpoint=s', 'case=s', 'count=i', 'window=i') or die "bad options\n";
die "usage: $0 --endpoint HOST:PORT --case inflight|watches --count N\n"
    unless $opt{endpoint} && $opt{count} && ($opt{case} // '') =~ /^(?:inflight|watches)$/;
my $N = $opt{count};

sub fail { print STDERR "FAIL: @_\n"; exit 1 }
$EV::DIED = sub { fail("callback died: $@") };

sub status_kb {
    my ($field) = @_;
    open my $fh, '<', '/proc/self/status' or fail("/proc/self/status: $!");
    while (<$fh>) { return $1 * 1024 if /^\Q$field\E:\s+(\d+)\s+kB/ }
    fail("no $field in /proc/self/status");
}
sub rss { status_kb('VmRSS') }
sub reset_peak {
    open my $fh, '>', '/proc/self/clear_refs' or return;
    print {$fh} "5\n";    # resets VmHWM to the current RSS
}

sub value {
    my $s = "$_[0]|";
    return substr($s x (int(100 / length $s) + 1), 0, 100);
}

# Runs the loop until $cond->(); fails after $limit seconds.
sub run_until {
    my ($what, $limit, $cond) = @_;
    my $t = EV::timer($limit, 0, sub { fail("$what: not done after ${limit}s") });
    EV::run(EV::RUN_ONCE) until $cond->();
}

sub ok_reply {
    my ($what, $r, $e) = @_;
    fail("$what: $e->{status} $e->{message}") if $e;
    fail("$what: no reply") unless ref $r eq 'HASH';
    return $r;
}

my $etcd = EV::Etcd->new(endpoints => [ $opt{endpoint} ]);
{
    my $done;
    $etcd->put('/bench/scratch/scale/warmup', 'x', sub { ok_reply('warm-up', @_); $done = 1 });
    run_until('warm-up', 30, sub { $done });
}

my %out = (client => 'perl', case => $opt{case}, count => $N);

if ($opt{case} eq 'inflight') {
    my @keys = map { sprintf '/bench/scratch/scale/inflight/%06d', $_ } 0 .. $N - 1;
    my @vals = map { value($_) } @keys;
    my $done = 0;
    $out{rss_base} = rss();
    reset_peak();
    my $t0 = time;
    for my $i (0 .. $N - 1) {
        $etcd->put($keys[$i], $vals[$i], sub {
            my $r = ok_reply("put $i", @_);
            fail("put $i: no revision") unless ($r->{header}{revision} // 0) > 0;
            $done++;
        });
    }
    $out{issue_s} = time - $t0;
    $out{rss_inflight} = rss();
    fail("$done replies arrived while issuing") if $done;    # callbacks only run from the loop
    run_until('replies', 300, sub { $done == $N });
    $out{complete_s}   = time - $t0;
    $out{rss_peak}     = status_kb('VmHWM');
    $out{rss_after}    = rss();
    $out{bytes_per_inflight} = ($out{rss_inflight} - $out{rss_base}) / $N;
    $out{bytes_per_inflight_peak} = ($out{rss_peak} - $out{rss_base}) / $N;
    # the store must hold them all
    my ($count, $ok);
    $etcd->get('/bench/scratch/scale/inflight/', { prefix => 1, count_only => 1 },
        sub { $count = ok_reply('count', @_)->{count}; $ok = 1 });
    run_until('count', 30, sub { $ok });
    fail("the store holds $count of $N keys") unless $count == $N;
}
else {
    my @keys = map { sprintf '/bench/scratch/scale/w/%06d', $_ } 0 .. $N - 1;
    my (@seen, @handles, @vals);
    my ($created, $events) = (0, 0);
    $out{rss_base} = rss();
    my $t0 = time;
    for my $i (0 .. $N - 1) {
        my $key = $keys[$i];
        push @handles, $etcd->watch($key, sub {
            my ($m, $e) = @_;
            ok_reply("watch $i", $m, $e);
            if ($m->{created}) { $created++; return }
            my $evs = $m->{events};
            fail("watch $i: " . scalar(@$evs) . ' events, expected 1') unless @$evs == 1;
            fail("watch $i: a second event") if $seen[$i]++;
            fail("watch $i: wrong key")   unless $evs->[0]{kv}{key} eq $key;
            fail("watch $i: wrong value") unless $evs->[0]{kv}{value} eq $vals[$i];
            $events++;
        });
    }
    $out{create_s} = time - $t0;
    run_until('created', 600, sub { $created == $N });
    $out{created_s}   = time - $t0;
    $out{rss_created} = rss();
    $out{bytes_per_watch} = ($out{rss_created} - $out{rss_base}) / $N;

    @vals = map { value("$_#event") } @keys;
    my ($issued, $acked) = (0, 0);
    my $fill;
    $fill = sub {
        while ($issued < $N && $issued - $acked < $opt{window}) {
            my $i = $issued++;
            $etcd->put($keys[$i], $vals[$i], sub { ok_reply("put $i", @_); $acked++; $fill->() });
        }
    };
    $t0 = time;
    $fill->();
    run_until('events', 600, sub { $acked == $N && $events == $N });
    undef $fill;
    $out{events_s}   = time - $t0;
    $out{rss_events} = rss();

    my $cancelled = 0;
    $t0 = time;
    $_->cancel(sub { ok_reply('cancel', @_); $cancelled++ }) for @handles;
    run_until('cancel', 600, sub { $cancelled == $N });
    $out{cancel_s} = time - $t0;
    @handles = ();
    # Give the runtime a moment to let go of the server-side watches.
    my $slept;
    my $idle = EV::timer(1, 0, sub { $slept = 1 });
    run_until('sleep', 5, sub { $slept });
    $out{rss_cancelled} = rss();
    # Nothing may arrive after the cancel.
    my $late = $events;
    my $done;
    $etcd->put($keys[0], 'after-cancel', sub { ok_reply('put', @_); $done = 1 });
    run_until('put after cancel', 30, sub { $done });
    $slept = 0;
    $idle = EV::timer(0.2, 0, sub { $slept = 1 });
    run_until('sleep', 5, sub { $slept });
    fail('an event arrived after cancel') if $events != $late;
}

for (keys %out) { $out{$_} = 0 + sprintf('%.6f', $out{$_}) if /_s$/ }
for (keys %out) { $out{$_} = 0 + sprintf('%.1f', $out{$_}) if /^bytes_/ }
print JSON::PP->new->canonical->encode(\%out), "\n";
exit 0;
