#!/usr/bin/env perl
# Client (a) of bench/compare.sh: EV::Etcd from Perl. Runs one workload in
# this process against a running etcd and prints one JSON line, the same
# line the Rust clients print (bench/native/src/lib.rs has the shared
# sizes, key names and values; keep both in step). Any failed call or wrong
# reply prints "FAIL: ..." on stderr and exits 1.
#
#   perl -Mblib bench/compare-client.pl --endpoint 127.0.0.1:2379 --workload seq_put [--tag r1]
#
# Client CPU is getrusage(RUSAGE_SELF) user+sys (every thread of the
# process, so the core's runtime thread counts) taken through syscall(2):
# microsecond resolution, where Perl's times() only has clock ticks.
use strict;
use warnings;
use Config;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);
use JSON::PP ();
use Time::HiRes qw(time);

use constant {
    OPS          => 5_000,
    WINDOW       => 100,
    VALUE_SIZE   => 100,
    GET_KEYS     => 100,
    WATCH_PUTS   => 200,
    RANGE_KEYS   => 10_000,
    RANGE_GETS   => 20,
    MANY_WATCHES => 1_000,
    RANGE_PREFIX => '/bench/range/',
};
my %WORKLOADS = map { $_ => 1 }
    qw(seq_put seq_get pipe_put pipe_get watch_latency big_range many_watch);

my %opt = (tag => 'x', 'io-mode' => 'inline');
GetOptions(\%opt, 'endpoint=s', 'workload=s', 'tag=s', 'io-mode=s', 'name=s', 'ops=i')
    or die "bad options\n";
die "usage: $0 --endpoint HOST:PORT --workload NAME [--tag T] [--io-mode inline|background]\n"
  . "       [--name CLIENT] [--ops N]\n"
    unless $opt{endpoint} && $opt{workload} && $WORKLOADS{ $opt{workload} }
        && $opt{'io-mode'} =~ /\A(?:inline|background)\z/
        && (!defined $opt{ops} || ($opt{ops} > 0 && $opt{workload} ne 'many_watch'));
# The client's name in the results: perl, or perl-bg in the background
# mode, or what --name says (bench/ab.sh: perl-old for an older build).
my $CLIENT = $opt{name} // ($opt{'io-mode'} eq 'background' ? 'perl-bg' : 'perl');
# --ops N (for instruction counts, see compare.pl --callgrind): N calls, N
# watched puts, or N range reads instead of the usual numbers.
my $OPS        = $opt{ops} // OPS;
my $WATCH_PUTS = $opt{ops} // WATCH_PUTS;
my $RANGE_GETS = $opt{ops} // RANGE_GETS;

sub fail { print STDERR "FAIL: @_\n"; exit 1 }
$EV::DIED = sub { fail("callback died: $@") };

# ---- CPU time ----

my %SYS_GETRUSAGE = (x86_64 => 98, aarch64 => 165, i386 => 77, i686 => 77, riscv64 => 165);
my $SYS_getrusage = eval { require 'syscall.ph'; SYS_getrusage() }
    // $SYS_GETRUSAGE{ ($Config{archname} =~ /^([^-]+)/)[0] // '' }
    // fail("no getrusage syscall number for $Config{archname}");

sub cpu_us {
    my $buf = "\0" x 512;    # struct rusage, with room to spare
    syscall($SYS_getrusage, 0, $buf) == 0 or fail("getrusage: $!");   # RUSAGE_SELF
    my ($us, $uus, $ss, $sus) = unpack 'l!4', $buf;
    return ($us + $ss) * 1_000_000 + $uus + $sus;
}

# ---- keys and values (as in bench/native/src/lib.rs) ----

sub value {
    my $s = "$_[0]|";
    return substr($s x (int(VALUE_SIZE / length $s) + 1), 0, VALUE_SIZE);
}
sub get_key   { sprintf '/bench/get/%03d', $_[0] % GET_KEYS }
sub range_key { sprintf '/bench/range/%05d', $_[0] }
my $TAG = "$CLIENT-$opt{tag}";
sub scratch   { sprintf '/bench/scratch/%s/%s/%05d', $TAG, $_[0], $_[1] }

# ---- checks ----

sub ok_reply {
    my ($what, $r, $e) = @_;
    fail("$what: $e->{status} $e->{message}") if $e;
    fail("$what: no reply") unless ref $r eq 'HASH';
    return $r;
}

sub check_put {
    my ($r, $e) = @_;
    ok_reply('put', $r, $e);
    fail('put reply without a revision') unless ($r->{header}{revision} // 0) > 0;
}

sub check_get {
    my ($key, $r, $e) = @_;
    ok_reply("get $key", $r, $e);
    my $kvs = $r->{kvs};
    fail("get $key: " . scalar(@$kvs) . ' kvs, expected 1') unless @$kvs == 1;
    fail("get $key: wrong key")   unless $kvs->[0]{key} eq $key;
    fail("get $key: wrong value") unless $kvs->[0]{value} eq value($key);
}

# A watch message that must carry exactly one PUT of $key = $val.
sub check_event {
    my ($m, $key, $val) = @_;
    fail('watch: unexpected created message') if $m->{created};
    my $evs = $m->{events};
    fail('watch: ' . scalar(@$evs) . ' events in one message, expected 1') unless @$evs == 1;
    my $ev = $evs->[0];
    fail('watch: event is not a PUT')       unless $ev->{type} eq 'PUT';
    fail('watch: event for the wrong key')  unless $ev->{kv}{key} eq $key;
    fail('watch: event with the wrong value') unless $ev->{kv}{value} eq $val;
}

# ---- the run ----

# (io_mode only when it is not the default: older builds do not know it.)
my $etcd = EV::Etcd->new(endpoints => [ $opt{endpoint} ],
    $opt{'io-mode'} eq 'inline' ? () : (io_mode => $opt{'io-mode'}));

# Untimed: connect and make one round trip.
{
    my @got;
    $etcd->get(get_key(0), sub { @got = @_ });
    EV::run;
    check_get(get_key(0), @got);
}

my (@lat, $checked, $rate, $ops, $unit);
my ($t_start, $c_start, $t_end, $c_end);
sub start_clock { $c_start = cpu_us(); $t_start = time }
sub stop_clock  { $t_end = time; $c_end = cpu_us() }
$checked = 0;
$unit = 'op';

# $n operations, at most $window in flight, refilled from the callbacks.
# $start->($i, $done) starts operation $i; its callback calls $done->(@_).
sub windowed {
    my ($n, $window, $start, $check) = @_;
    my ($issued, $completed) = (0, 0);
    my $fill;
    $fill = sub {
        while ($issued < $n && $issued - $completed < $window) {
            my $i  = $issued++;
            my $t0 = time;
            $start->($i, sub {
                push @lat, time - $t0;
                $check->($i, @_);
                $completed++;
                $fill->();
            });
        }
    };
    $fill->();
    EV::run;    # returns once nothing is in flight
    undef $fill;
    fail("only $completed of $n completed") unless $completed == $n;
}

my $w = $opt{workload};
if ($w eq 'seq_put') {
    start_clock();
    for my $i (0 .. $OPS - 1) {
        my $key = scratch('put', $i);
        my $t0  = time;
        my @got;
        $etcd->put($key, value($key), sub { @got = @_ });
        EV::run;
        push @lat, time - $t0;
        check_put(@got);
        $checked++;
    }
    stop_clock();
    $ops = $OPS;
}
elsif ($w eq 'seq_get') {
    start_clock();
    for my $i (0 .. $OPS - 1) {
        my $key = get_key($i);
        my $t0  = time;
        my @got;
        $etcd->get($key, sub { @got = @_ });
        EV::run;
        push @lat, time - $t0;
        check_get($key, @got);
        $checked++;
    }
    stop_clock();
    $ops = $OPS;
}
elsif ($w eq 'pipe_put') {
    start_clock();
    windowed($OPS, WINDOW,
        sub { my ($i, $cb) = @_; my $key = scratch('put', $i); $etcd->put($key, value($key), $cb) },
        sub { my $i = shift; check_put(@_); $checked++ });
    stop_clock();
    $ops = $OPS;
}
elsif ($w eq 'pipe_get') {
    start_clock();
    windowed($OPS, WINDOW,
        sub { my ($i, $cb) = @_; $etcd->get(get_key($i), $cb) },
        sub { my $i = shift; check_get(get_key($i), @_); $checked++ });
    stop_clock();
    $ops = $OPS;
}
elsif ($w eq 'watch_latency') {
    my $key = scratch('watch', 0);
    my ($created, $seen, $acked, $t0, $val);
    my $watch = $etcd->watch($key, sub {
        my ($m, $e) = @_;
        ok_reply('watch', $m, $e);
        if (!$created) {
            fail("watch: first message is not 'created'") unless $m->{created};
            $created = 1;
            return;
        }
        push @lat, time - $t0;
        fail('watch: a second event') if $seen;
        check_event($m, $key, $val);
        $seen = 1;
    });
    EV::run(EV::RUN_ONCE) until $created;
    start_clock();
    for my $i (0 .. $WATCH_PUTS - 1) {
        $val = value("$key#lat#$i");
        ($seen, $acked) = (0, 0);
        $t0 = time;
        $etcd->put($key, $val, sub { check_put(@_); $acked = 1 });
        EV::run(EV::RUN_ONCE) until $acked && $seen;
        $checked += 2;
    }
    stop_clock();
    my $mean = 0;
    $mean += $_ for @lat;
    $rate = @lat / $mean;
    $ops = $WATCH_PUTS;
}
elsif ($w eq 'big_range') {
    my @ek = map { range_key($_) } 0 .. RANGE_KEYS - 1;
    my @ev = map { value($_) } @ek;
    start_clock();
    for (1 .. $RANGE_GETS) {
        my $t0 = time;
        my @got;
        $etcd->get(RANGE_PREFIX, { prefix => 1 }, sub { @got = @_ });
        EV::run;
        push @lat, time - $t0;
        my $r = ok_reply('range', @got);
        fail('range: wrong count') unless $r->{count} == RANGE_KEYS;
        my $kvs = $r->{kvs};
        fail('range: ' . scalar(@$kvs) . ' kvs, expected ' . RANGE_KEYS) unless @$kvs == RANGE_KEYS;
        my $i = 0;
        for my $kv (@$kvs) {
            fail("range: wrong key at $i")   unless $kv->{key} eq $ek[$i];
            fail("range: wrong value at $i") unless $kv->{value} eq $ev[$i];
            $i++;
        }
        $checked += $i;
    }
    stop_clock();
    $ops = $RANGE_GETS * RANGE_KEYS;
    $unit = 'key';
}
elsif ($w eq 'many_watch') {
    my $N = MANY_WATCHES;
    my @keys = map { scratch('mw', $_) } 0 .. $N - 1;
    my (@created, @vals, @sent, @seen, $lat, $events);
    my $n_created = 0;
    my @watches;
    for my $i (0 .. $N - 1) {
        my $key = $keys[$i];
        push @watches, $etcd->watch($key, sub {
            my ($m, $e) = @_;
            ok_reply("watch $i", $m, $e);
            if ($m->{created}) {
                fail("watch $i: created twice") if $created[$i]++;
                $n_created++;
                return;
            }
            fail("watch $i: a second event") if $seen[$i]++;
            fail("watch $i: event before its put") unless defined $sent[$i];
            push @$lat, time - $sent[$i];
            check_event($m, $key, $vals[$i]);
            $events++;
        });
    }
    EV::run(EV::RUN_ONCE) until $n_created == $N;
    # Put every key once (WINDOW puts in flight) and wait for every reply
    # and every event; a warm-up round, then the timed one.
    my $round = sub {
        my ($phase) = @_;
        @vals = map { value("$_#$phase") } @keys;
        @sent = @seen = ();
        $events = 0;
        my ($issued, $acked) = (0, 0);
        my $fill;
        $fill = sub {
            while ($issued < $N && $issued - $acked < WINDOW) {
                my $i = $issued++;
                $sent[$i] = time;
                $etcd->put($keys[$i], $vals[$i], sub { check_put(@_); $acked++; $fill->() });
            }
        };
        $fill->();
        EV::run(EV::RUN_ONCE) until $acked == $N && $events == $N;
        undef $fill;
        return $acked + $events;
    };
    $lat = [];
    $round->('warm');
    $lat = \@lat;
    start_clock();
    $checked += $round->('timed');
    stop_clock();
    $ops = $N;
    $unit = 'event';
}

my $wall = $t_end - $t_start;
my $cpu  = $c_end - $c_start;
my @s = sort { $a <=> $b } @lat;
sub pct {
    my ($p) = @_;
    my $rank = int($p / 100 * @s);
    $rank++ if $rank < $p / 100 * @s;    # ceil
    $rank = 1 if $rank < 1;
    $rank = @s if $rank > @s;
    return $s[ $rank - 1 ] * 1000;
}
my $latency;
if (@s) {
    my $sum = 0;
    $sum += $_ for @s;
    $latency = {
        n       => scalar @s,
        p50_ms  => 0 + sprintf('%.4f', pct(50)),
        p99_ms  => 0 + sprintf('%.4f', pct(99)),
        mean_ms => 0 + sprintf('%.4f', $sum / @s * 1000),
        max_ms  => 0 + sprintf('%.4f', $s[-1] * 1000),
    };
}
print JSON::PP->new->canonical->encode({
    client        => $CLIENT,
    workload      => $w,
    ops           => $ops,
    unit          => $unit,
    wall_s        => 0 + sprintf('%.6f', $wall),
    ops_per_s     => 0 + sprintf('%.1f', $rate // $ops / $wall),
    cpu_us        => $cpu,
    cpu_us_per_op => 0 + sprintf('%.3f', $cpu / $ops),
    latency       => $latency,
    checked       => $checked,
}), "\n";
exit 0;
