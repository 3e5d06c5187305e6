#!/usr/bin/env perl
# Driver of bench/compare.sh: starts a throwaway etcd, preloads it, and runs
# every workload for every client, one process per run, interleaved:
#   for round 1..R { for workload { for client (perl perl-bg core native) { run } } }
# Before each run it deletes the previous runs' keys and compacts the store
# (physically) to the current revision. It keeps the best run (highest
# ops/s) of each (client, workload) cell, prints tables, and writes JSON
# lines (every run, every best cell) to bench/results/compare-<ts>.jsonl.
# Any failed run makes the exit status 1.
#
#   perl -Mblib -It/lib bench/compare.pl --core-bin B --native-bin B [options]
#     --rounds N          rounds (3)
#     --workloads a,b     a selection of workloads (all)
#     --clients a,b       a selection of clients (perl,perl-bg,core,native;
#                         perl-bg: EV::Etcd in the background I/O mode)
#     --fsync             let etcd fsync (default: --unsafe-no-fsync, so the
#                         disk does not hide client differences)
#     --scale             run the scale section instead (perl client only)
#     --out DIR           where the .jsonl goes (bench/results)
#     --old-blib DIR      adds the client perl-old: EV::Etcd from another
#                         build's blib/ (bench/ab.sh builds an older commit)
#     --callgrind N       instead of timing: instructions per operation of
#                         the Perl clients, counted by valgrind's callgrind
#                         over N and 2N operations (the difference, so that
#                         start-up and connecting cancel out)
#
# The etcd binary is $ETCD_BIN (compare.sh sets it to etcd 3.5).
use strict;
use warnings;
use EV;
use EV::Etcd;
use EtcdTest qw(start_etcd);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempfile);
use Getopt::Long qw(GetOptions);
use JSON::PP ();
use POSIX qw(strftime);
use Time::HiRes qw(time);

my $BENCH = File::Spec->rel2abs(dirname(__FILE__));
my $ROOT  = dirname($BENCH);

my %opt = (
    rounds    => 3,
    workloads => 'seq_put,seq_get,pipe_put,pipe_get,watch_latency,big_range,many_watch',
    clients   => 'perl,perl-bg,core,native',
    out       => "$BENCH/results",
);
GetOptions(\%opt, 'rounds=i', 'workloads=s', 'clients=s', 'fsync', 'scale',
    'out=s', 'core-bin=s', 'native-bin=s', 'timeout=i', 'old-blib=s', 'callgrind=i')
    or die "bad options\n";
my @WORKLOADS = split /,/, $opt{workloads};
my @CLIENTS   = split /,/, $opt{clients};
my $RUN_TIMEOUT = $opt{timeout} // 600;

# Sizes, to check each run did all its work (see bench/native/src/lib.rs).
my %EXPECT = (    # workload => [ops, unit, values checked]
    seq_put       => [5_000,   'op',    5_000],
    seq_get       => [5_000,   'op',    5_000],
    pipe_put      => [5_000,   'op',    5_000],
    pipe_get      => [5_000,   'op',    5_000],
    watch_latency => [200,     'op',    400],
    big_range     => [200_000, 'key',   200_000],
    many_watch    => [1_000,   'event', 2_000],
);
my %CLIENT_OK = map { $_ => 1 } qw(perl perl-bg perl-old core native);
die "perl-old needs --old-blib\n" if grep({ $_ eq 'perl-old' } split /,/, $opt{clients}) && !$opt{'old-blib'};
for (@WORKLOADS) { die "unknown workload '$_'\n" unless $EXPECT{$_} }
for (@CLIENTS)   { die "unknown client '$_'\n"   unless $CLIENT_OK{$_} }
for my $c (qw(core native)) {
    next if $opt{scale} || !grep { $_ eq $c } @CLIENTS;
    my $bin = $opt{"$c-bin"} // die "--$c-bin is required\n";
    die "$bin is not executable\n" unless -x $bin;
}

$| = 1;
$EV::DIED = sub { print STDERR "compare: callback died: $@"; exit 1 };
my $JSON = JSON::PP->new->canonical;
my $T0   = time;

sub value {
    my $s = "$_[0]|";
    return substr($s x (int(100 / length $s) + 1), 0, 100);
}

# ---- etcd ----

my @extra = $opt{fsync} ? () : ('--unsafe-no-fsync');
my $srv  = start_etcd(extra => \@extra);
my $etcd = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
my $etcd_version = $srv->version // '?';

# One call, run to completion; dies on an error.
sub call {
    my ($method, @args) = @_;
    my ($r, $e, $done);
    $etcd->$method(@args, sub { ($r, $e) = @_; $done = 1 });
    EV::now_update;    # the loop's clock stood still while a client ran
    my $t = EV::timer(60, 0, sub { die "$method: no reply in 60 s\n" });
    EV::run(EV::RUN_ONCE) until $done;
    die "$method failed: $e->{status} $e->{message}\n" if $e;
    return $r;
}

# Puts key => value(key) for every key, 100 in flight.
sub load {
    my @keys = @_;
    my ($i, $done) = (0, 0);
    my $fill;
    $fill = sub {
        while ($i < @keys && $i - $done < 100) {
            my $k = $keys[ $i++ ];
            $etcd->put($k, value($k), sub {
                die "preload put $k: $_[1]{message}\n" if $_[1];
                $done++;
                $fill->();
            });
        }
    };
    $fill->();
    EV::run(EV::RUN_ONCE) until $done == @keys;
    undef $fill;
}

my $compacted = 0;
# Deletes what earlier runs wrote and compacts away all history.
sub clean_store {
    my $r = call('delete', '/bench/scratch/', { prefix => 1 });
    my $rev = $r->{header}{revision};
    return if $rev <= $compacted;
    call('compact', $rev, { physical => 1 });
    $compacted = $rev;
}

sub count_prefix {
    my ($prefix) = @_;
    return call('get', $prefix, { prefix => 1, count_only => 1 })->{count};
}

# ---- running one client process ----

# Runs @cmd with stdout and stderr in temp files; kills it after $timeout s.
# Returns (exit status, stdout, stderr, seconds).
sub run_cmd {
    my ($timeout, @cmd) = @_;
    my ($ofh, $ofile) = tempfile('compare-out-XXXXXX', TMPDIR => 1, UNLINK => 1);
    my ($efh, $efile) = tempfile('compare-err-XXXXXX', TMPDIR => 1, UNLINK => 1);
    my $t0  = time;
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        open STDIN,  '<',  '/dev/null' or POSIX::_exit(127);
        open STDOUT, '>&', $ofh        or POSIX::_exit(127);
        open STDERR, '>&', $efh        or POSIX::_exit(127);
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }
    my $killed;
    local $SIG{ALRM} = sub { $killed = 1; kill 'KILL', $pid };
    alarm $timeout;
    waitpid($pid, 0);
    my $status = $?;
    alarm 0;
    my $secs = time - $t0;
    my $slurp = sub { open my $fh, '<', $_[0] or return ''; local $/; <$fh> // '' };
    my ($out, $err) = ($slurp->($ofile), $slurp->($efile));
    unlink $ofile, $efile;
    $err .= "killed after ${timeout}s\n" if $killed;
    return ($status, $out, $err, $secs);
}

sub client_cmd {
    my ($client, $workload, $tag) = @_;
    my @a = ('--endpoint', $srv->endpoint, '--workload', $workload, '--tag', $tag);
    return ($^X, "-I$opt{'old-blib'}/lib", "-I$opt{'old-blib'}/arch", "$BENCH/compare-client.pl",
            @a, '--name', 'perl-old')
        if $client eq 'perl-old';
    return ($^X, "-I$ROOT/blib/lib", "-I$ROOT/blib/arch", "$BENCH/compare-client.pl", @a,
            '--io-mode', $client eq 'perl' ? 'inline' : 'background')
        if $client =~ /\Aperl/;
    return ($opt{"$client-bin"}, @a);
}

# ---- output ----

make_path($opt{out});
my $stamp = strftime('%Y%m%d-%H%M%S', localtime);
my $jsonl = sprintf '%s/%s-%s.jsonl', $opt{out}, $opt{scale} ? 'compare-scale' : 'compare', $stamp;
open my $JL, '>', $jsonl or die "cannot write $jsonl: $!\n";
$JL->autoflush(1);
sub jl { print {$JL} $JSON->encode($_[0]), "\n" }

my $commit = `git -C '$ROOT' rev-parse --short HEAD 2>/dev/null` // '';
chomp $commit;
my $dirty = `git -C '$ROOT' status --porcelain --untracked-files=no 2>/dev/null` ? '+dirty' : '';
my %meta = (
    type => 'meta', started => strftime('%Y-%m-%dT%H:%M:%S%z', localtime($T0)),
    etcd => $etcd_version, etcd_fsync => $opt{fsync} ? JSON::PP::true : JSON::PP::false,
    commit => "$commit$dirty", perl => sprintf('%vd', $^V), rounds => $opt{rounds},
    cpus => scalar(do { open my $f, '<', '/proc/cpuinfo'; grep { /^processor/ } <$f> }),
    core_source => $ENV{COMPARE_CORE_SOURCE},    # cksum of the core's source before/after the build
    cpu_time => 'getrusage(RUSAGE_SELF) user+sys around the timed part, all threads of the client process',
);
jl(\%meta);
printf "etcd %s at %s (%s), commit %s, %s\n", $etcd_version, $srv->endpoint,
    $opt{fsync} ? 'fsync on' : 'unsafe-no-fsync', $meta{commit}, $meta{started};

if ($opt{scale}) {
    exit scale();
}

# ---- the comparison ----

printf "preloading %d + %d keys ...\n", 100, 10_000;
load(map { sprintf '/bench/get/%03d', $_ } 0 .. 99);
load(map { sprintf '/bench/range/%05d', $_ } 0 .. 9_999);
clean_store();
exit callgrind($opt{callgrind}) if $opt{callgrind};

my (%runs, @failures);
my $nruns = $opt{rounds} * @WORKLOADS * @CLIENTS;
my $n = 0;
for my $round (1 .. $opt{rounds}) {
    for my $w (@WORKLOADS) {
        for my $c (@CLIENTS) {
            $n++;
            clean_store();
            my $tag = "r$round";
            my ($status, $out, $err, $secs) = run_cmd($RUN_TIMEOUT, client_cmd($c, $w, $tag));
            my ($line) = grep { /^\{/ } reverse split /\n/, $out;
            my $res = eval { $line && $JSON->decode($line) };
            my $why;
            if ($status != 0) {
                $why = ($status & 127) ? 'killed by signal ' . ($status & 127) : 'exit status ' . ($status >> 8);
            } elsif (!$res) {
                $why = 'no result line';
            } else {
                my ($ops, $unit, $checks) = @{ $EXPECT{$w} };
                $why = "reports client '$res->{client}'" if $res->{client} ne $c;
                $why //= "reports workload '$res->{workload}'" if $res->{workload} ne $w;
                $why //= "did $res->{ops} $res->{unit}s, expected $ops ${unit}s"
                    if $res->{ops} != $ops || $res->{unit} ne $unit;
                $why //= "checked $res->{checked} replies/values, expected $checks"
                    if $res->{checked} != $checks;
                $why //= 'no rate' unless ($res->{ops_per_s} // 0) > 0;
            }
            if (!$why && ($w eq 'seq_put' || $w eq 'pipe_put')) {
                my $have = count_prefix("/bench/scratch/$c-$tag/put/");
                $why = "the store holds $have of its 5000 keys" if $have != 5000;
            }
            if ($why) {
                chomp $err;
                my $msg = "$c $w round $round: $why" . ($err ne '' ? "\n    $err" : '');
                $msg =~ s/\n(?!    )/\n    /g;
                push @failures, $msg;
                print "[$n/$nruns] FAILED $msg\n";
                jl({ type => 'run', round => $round, client => $c, workload => $w,
                     ok => JSON::PP::false, error => $why, stderr => $err });
                next;
            }
            print STDERR $err if $err ne '';
            $res->{type}  = 'run';
            $res->{round} = $round;
            $res->{ok}    = JSON::PP::true;
            $res->{process_s} = 0 + sprintf '%.3f', $secs;
            jl($res);
            push @{ $runs{$c}{$w} }, $res;
            printf "[%d/%d] round %d %-13s %-6s %10.1f %s/s  cpu %8.2f us/%s%s\n", $n, $nruns,
                $round, $w, $c, $res->{ops_per_s}, $res->{unit}, $res->{cpu_us_per_op}, $res->{unit},
                $res->{latency} ? sprintf('  p50 %.3f ms  p99 %.3f ms', @{ $res->{latency} }{qw(p50_ms p99_ms)}) : '';
        }
    }
}

# ---- best of the rounds ----

my %best;
for my $c (@CLIENTS) {
    for my $w (@WORKLOADS) {
        my @r = @{ $runs{$c}{$w} // [] } or next;
        my ($top) = sort { $b->{ops_per_s} <=> $a->{ops_per_s} } @r;
        my ($mincpu) = sort { $a <=> $b } map { $_->{cpu_us_per_op} } @r;
        $best{$c}{$w} = $top;
        jl({ type => 'best', client => $c, workload => $w, unit => $top->{unit},
             runs => scalar @r, best_round => $top->{round},
             ops_per_s => $top->{ops_per_s}, cpu_us_per_op => $top->{cpu_us_per_op},
             cpu_us_per_op_min => $mincpu,
             p50_ms => $top->{latency} ? $top->{latency}{p50_ms} : undef,
             p99_ms => $top->{latency} ? $top->{latency}{p99_ms} : undef,
             all_ops_per_s => [ map { $_->{ops_per_s} } @r ] });
    }
}

sub cell { my ($c, $w, $f) = @_; my $r = $best{$c}{$w} or return undef; $f->($r) }
sub ratio { my ($x, $y) = @_; defined $x && defined $y && $y > 0 ? sprintf('%.2f', $x / $y) : '-' }
sub num { my ($fmt, $v) = @_; defined $v ? sprintf($fmt, $v) : 'FAIL' }
my %has = map { $_ => 1 } @CLIENTS;
my @ratio_cols = grep { $has{$_} && $has{native} } qw(perl perl-bg core);

print "\n";
printf "Throughput, best of %d (ops/s; big_range keys/s, many_watch events/s, watch_latency 1/mean latency)\n", $opt{rounds};
printf "%-14s" . (" %12s" x @CLIENTS) . (" %12s" x @ratio_cols) . "\n", 'workload', @CLIENTS, map { "$_/native" } @ratio_cols;
for my $w (@WORKLOADS) {
    my %v = map { my $c = $_; $c => cell($c, $w, sub { $_[0]{ops_per_s} }) } @CLIENTS;
    printf "%-14s" . (" %12s" x @CLIENTS) . (" %12s" x @ratio_cols) . "\n", $w,
        (map { num('%.0f', $v{$_}) } @CLIENTS), (map { ratio($v{$_}, $v{native}) } @ratio_cols);
}
print "\n";
print "Client CPU, user+sys µs per op (of the best run; per key for big_range, per event for many_watch)\n";
printf "%-14s" . (" %12s" x @CLIENTS) . (" %12s" x @ratio_cols) . "\n", 'workload', @CLIENTS, map { "$_/native" } @ratio_cols;
for my $w (@WORKLOADS) {
    my %v = map { my $c = $_; $c => cell($c, $w, sub { $_[0]{cpu_us_per_op} }) } @CLIENTS;
    printf "%-14s" . (" %12s" x @CLIENTS) . (" %12s" x @ratio_cols) . "\n", $w,
        (map { num('%.2f', $v{$_}) } @CLIENTS), (map { ratio($v{$_}, $v{native}) } @ratio_cols);
}
print "\n";
print "Latency p50 / p99 in ms (of the best run; big_range per range call, many_watch put -> event)\n";
printf "%-14s" . (" %17s" x @CLIENTS) . "\n", 'workload', @CLIENTS;
for my $w (@WORKLOADS) {
    printf "%-14s" . (" %17s" x @CLIENTS) . "\n", $w, map {
        my $r = $best{$_}{$w};
        !$r ? 'FAIL' : $r->{latency} ? sprintf('%.3f / %.3f', @{ $r->{latency} }{qw(p50_ms p99_ms)}) : '-'
    } @CLIENTS;
}
printf "\n%d runs in %.0f s; JSON lines in %s\n", $nruns, time - $T0, $jsonl;
for my $c (@CLIENTS) {
    for my $w (@WORKLOADS) {
        my $r = $best{$c}{$w} or next;
        print $JSON->encode({ type => 'best', client => $c, workload => $w,
            ops_per_s => $r->{ops_per_s}, cpu_us_per_op => $r->{cpu_us_per_op},
            p50_ms => $r->{latency} ? $r->{latency}{p50_ms} : undef,
            p99_ms => $r->{latency} ? $r->{latency}{p99_ms} : undef }), "\n";
    }
}
if (@failures) {
    print STDERR "\ncompare: ", scalar @failures, " run(s) FAILED:\n";
    print STDERR "  $_\n" for @failures;
    exit 1;
}
exit 0;

# ---- instruction counts (--callgrind N) ----

# Instructions (callgrind's Ir, every thread of the client process) per
# operation of each Perl client and workload: runs of N and of 2N
# operations, so that loading, connecting and the first round trip cancel
# out; per key for big_range. Interleaved like the timed runs.
sub callgrind {
    my ($n) = @_;
    my @clients = grep { /\Aperl/ } @CLIENTS;
    my @workloads = grep { $_ ne 'many_watch' } @WORKLOADS;
    die "--callgrind: no Perl client selected\n" unless @clients;
    my %ir;
    for my $w (@workloads) {
        for my $c (@clients) {
            # A range read is 10,000 keys: a few are enough.
            my $m = $w eq 'big_range' ? ($n >= 200 ? int($n / 40) : 5) : $n;
            for my $ops ($m, 2 * $m) {
                clean_store();
                my ($fh, $file) = tempfile('callgrind-XXXXXX', TMPDIR => 1, UNLINK => 1);
                my @cmd = ('valgrind', '--tool=callgrind', "--callgrind-out-file=$file",
                    client_cmd($c, $w, "cg$ops"), '--ops', $ops);
                my ($status, $out, $err) = run_cmd($RUN_TIMEOUT, @cmd);
                die "callgrind $c $w $ops: exit status $status\n$err\n" if $status;
                open my $in, '<', $file or die "$file: $!\n";
                my ($total) = map { /^(?:summary|totals):\s+(\d+)/ ? $1 : () } <$in>;
                die "callgrind $c $w $ops: no totals in $file\n" unless $total;
                $ir{$c}{$w}{$ops} = $total;
            }
            my $per = ($ir{$c}{$w}{ 2 * $m } - $ir{$c}{$w}{$m}) / ($w eq 'big_range' ? $m * 10_000 : $m);
            $ir{$c}{$w}{per} = $per;
            jl({ type => 'callgrind', client => $c, workload => $w, ops => $m,
                 ir_per_op => 0 + sprintf('%.0f', $per), ir_n => $ir{$c}{$w}{$m}, ir_2n => $ir{$c}{$w}{ 2 * $m } });
            printf "callgrind %-13s %-8s %12.0f instructions per %s\n", $w, $c, $per,
                $w eq 'big_range' ? 'key' : 'op';
        }
    }
    print "\nInstructions per operation (callgrind Ir; $n vs @{[2 * $n]} operations, big_range reads fewer; per key for big_range)\n";
    printf "%-14s" . (" %12s" x @clients) . "%s\n", 'workload', @clients,
        @clients > 1 ? sprintf(' %12s', "$clients[-1]/$clients[0]") : '';
    for my $w (@workloads) {
        my @v = map { $ir{$_}{$w}{per} } @clients;
        printf "%-14s" . (" %12.0f" x @v) . "%s\n", $w, @v,
            @v > 1 ? sprintf(' %12s', ratio($v[-1], $v[0])) : '';
    }
    return 0;
}

# ---- scale section (perl client only) ----

sub scale {
    my @cases = (
        [ inflight => 10_000 ],
        [ watches  => 10_000 ],
        [ watches  => 100_000 ],
    );
    my @fail;
    my %res;
    for my $case (@cases) {
        my ($what, $count) = @$case;
        clean_store();
        my @cmd = ($^X, "-I$ROOT/blib/lib", "-I$ROOT/blib/arch", "$BENCH/compare-scale.pl",
            '--endpoint', $srv->endpoint, '--case', $what, '--count', $count);
        print "scale: $what $count ...\n";
        my ($status, $out, $err, $secs) = run_cmd($RUN_TIMEOUT, @cmd);
        my ($line) = grep { /^\{/ } reverse split /\n/, $out;
        my $res = eval { $line && $JSON->decode($line) };
        if ($status != 0 || !$res) {
            push @fail, "$what $count: exit status " . ($status >> 8) . "\n    $err";
            jl({ type => 'scale', case => $what, count => $count, ok => JSON::PP::false, stderr => $err });
            next;
        }
        print STDERR $err if $err ne '';
        $res->{type} = 'scale';
        $res->{ok}   = JSON::PP::true;
        jl($res);
        print $JSON->encode($res), "\n";
        $res{"$what $count"} = $res;
    }
    print "\n";
    if (my $r = $res{'inflight 10000'}) {
        print "10,000 calls in flight on one client (perl):\n";
        printf "  issue all %.3f s, all replies %.3f s (%.0f calls/s)\n", $r->{issue_s}, $r->{complete_s}, $r->{count} / $r->{complete_s};
        printf "  RSS: base %.1f MB, all in flight +%.1f MB = %.0f bytes per call, peak +%.1f MB, after %.1f MB\n",
            $r->{rss_base} / 2**20, ($r->{rss_inflight} - $r->{rss_base}) / 2**20,
            $r->{bytes_per_inflight}, ($r->{rss_peak} - $r->{rss_base}) / 2**20, $r->{rss_after} / 2**20;
    }
    my @w = grep { $res{"watches $_"} } (10_000, 100_000);
    if (@w) {
        print "\nWatches on one client (perl):\n";
        printf "%-8s %9s %10s %9s %9s %10s %11s %12s %11s\n", 'watches', 'issue s',
            'created s', 'events s', 'cancel s', 'RSS base', 'RSS +watch', 'bytes/watch', 'RSS cancel';
        for my $n (@w) {
            my $r = $res{"watches $n"};
            printf "%-8d %9.3f %10.3f %9.3f %9.3f %8.1fMB %9.1fMB %12.0f %9.1fMB\n", $n,
                $r->{create_s}, $r->{created_s}, $r->{events_s}, $r->{cancel_s},
                $r->{rss_base} / 2**20, ($r->{rss_created} - $r->{rss_base}) / 2**20,
                $r->{bytes_per_watch}, $r->{rss_cancelled} / 2**20;
        }
        print "  (issue: the watch() calls; created: from the first call until all are confirmed;\n",
              "   events: one put per key until every watch has its event; cancel: until every cancel is answered)\n";
        if (@w == 2) {
            my ($s, $l) = map { $res{"watches $_"} } @w;
            printf "  100k/10k: created x%.1f, events x%.1f, cancel x%.1f, RSS growth x%.1f (linear = x10)\n",
                $l->{created_s} / $s->{created_s}, $l->{events_s} / $s->{events_s},
                $l->{cancel_s} / ($s->{cancel_s} || 1e-9),
                ($l->{rss_created} - $l->{rss_base}) / (($s->{rss_created} - $s->{rss_base}) || 1);
        }
    }
    printf "\nscale section in %.0f s; JSON lines in %s\n", time - $T0, $jsonl;
    if (@fail) {
        print STDERR "compare --scale: FAILED:\n", map { "  $_\n" } @fail;
        return 1;
    }
    return 0;
}
