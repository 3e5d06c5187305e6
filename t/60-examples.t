#!/usr/bin/env perl
# Every program in eg/ runs against a throwaway etcd, as a subprocess
# ($^X -Mblib eg/X.pl with EV_ETCD_ENDPOINT set), and the test checks what
# it did: the output it printed, and the state it left in etcd.  Several
# instances of one example run at once where that is the point (locks,
# CAS, discovery, election).  Every example is started with a time limit
# and every wait is bounded, so a hung example fails instead of hanging;
# children still running at the end are killed and reaped.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use POSIX ();

use lib 't/lib';
use EtcdTest qw(:DEFAULT ok_call);

need_etcd();
use EV;
use EV::Etcd;

my $T0 = time;
my $srv = start_etcd(name => 'eg');
my $client = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);
my $RUN = "t60-$$-" . int(time);    # unique per run: keys, elections, locks

# --- child processes ------------------------------------------------------
#
# A child's stdout and stderr go into one pipe, read by an EV::io watcher
# line by line; each line is kept with the (loop) time it was read.  The exit
# status comes from an EV::child watcher: EV's own SIGCHLD handler reaps
# every child, so a plain waitpid could find the child gone.

my %LIVE;    # pid => proc, for the cleanup

sub spawn {
    my ($label, $script, @args) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    local $ENV{EV_ETCD_ENDPOINT} = $srv->endpoint;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $r;
        open STDOUT, '>&', $w or POSIX::_exit(126);
        open STDERR, '>&', $w or POSIX::_exit(126);
        exec($^X, '-Mblib', "eg/$script", @args) or POSIX::_exit(127);
    }
    close $w;
    my $p = { label => $label, pid => $pid, lines => [], buf => '', eof => 0, status => undef };
    $p->{child} = EV::child($pid, 0, sub {
        $p->{status} = $_[0]->rstatus;
        delete $p->{child};
        delete $LIVE{$pid};
    });
    $p->{io} = EV::io($r, EV::READ, sub {
        my $n = sysread $r, my $chunk, 65536;
        # The loop's time: the same for everything read in one iteration,
        # so a line another child wrote later never gets an earlier stamp.
        my $now = EV::now;
        if (!$n) {    # EOF (or an error): the child closed its side
            $p->{eof} = 1;
            push @{ $p->{lines} }, [ $p->{buf}, $now ] if length $p->{buf};
            $p->{buf} = '';
            delete $p->{io};
            close $r;
            return;
        }
        $p->{buf} .= $chunk;
        while ($p->{buf} =~ s/^([^\n]*)\n//) {
            push @{ $p->{lines} }, [ $1, $now ];
        }
    });
    $LIVE{$pid} = $p;
    return $p;
}

sub lines_of { map { $_->[0] } @{ $_[0]{lines} } }

# The first line matching $re: in list context (text, time read, index).
sub find_line {
    my ($p, $re) = @_;
    my $i = 0;
    for my $l (@{ $p->{lines} }) {
        return wantarray ? (@$l, $i) : $l->[0] if $l->[0] =~ $re;
        $i++;
    }
    return;
}

sub wait_line {
    my ($p, $re, $limit) = @_;
    return 1 if find_line($p, $re);
    return run_until(sub { find_line($p, $re) || ($p->{eof} && defined $p->{status}) }, $limit // 15)
        && find_line($p, $re) ? 1 : 0;
}

sub finished { my ($p) = @_; $p->{eof} && defined $p->{status} }

# Runs the loop until every given process has exited and its output has
# been read; kills what is still running after $limit seconds.
sub wait_exit {
    my ($limit, @procs) = @_;
    my $ok = run_until(sub { !grep { !finished($_) } @procs }, $limit);
    for my $p (grep { !finished($_) } @procs) {
        diag "$p->{label} (pid $p->{pid}) still running after ${limit}s: killing it";
        kill 'KILL', $p->{pid};
        run_until(sub { finished($p) }, 5);
        $p->{status} //= -1;
    }
    return $ok;
}

# Exit status 0, and nothing in the output that looks like a Perl warning
# or error ("... at eg/x.pl line 12.").
sub exited_ok {
    my ($p) = @_;
    my $ok = is $p->{status}, 0, "$p->{label} exits with status 0";
    my @warn = grep { / at \S+ line \d+\.?$/ || /^ERROR/ } lines_of($p);
    $ok = is_deeply(\@warn, [], "$p->{label} prints no warning or error") && $ok;
    diag "output of $p->{label}:\n" . join '', map { "  | $_\n" } lines_of($p) unless $ok;
    return $ok;
}

END {
    for my $p (values %LIVE) {
        kill 'KILL', $p->{pid};
        waitpid $p->{pid}, 0;
    }
}

# Whole values of keys under a prefix, from the test's own client.
sub get_prefix {
    my ($prefix) = @_;
    my $r = ok_call($client, 'get', $prefix, { prefix => 1 });
    return { map { $_->{key} => $_->{value} } @{ $r->{kvs} } };
}

sub unesc { my ($s) = @_; return '' if $s eq '""'; $s =~ s/%([0-9A-F]{2})/chr hex $1/ge; $s }

# --- demo.pl ----------------------------------------------------------------
subtest 'demo.pl' => sub {
    my $p = spawn('demo', 'demo.pl');
    wait_exit(30, $p);
    exited_ok($p);
    my @steps = map { /^step (\d+):/ ? $1 : () } lines_of($p);
    is_deeply \@steps, [ 0 .. 7 ], 'it prints steps 0 to 7 in order';
    ok find_line($p, qr/^  succeeded: yes, revision \d+$/), 'the first CAS wins';
    ok find_line($p, qr/^  succeeded: no; \S+alpha is 'apricot'/), 'the second loses and sees the new value';
    is scalar(grep { /^  watch: (PUT|DELETE) / } lines_of($p)), 5, 'its watch reports 5 changes';
    ok find_line($p, qr/^done: EV::run returned by itself$/), 'EV::run returns by itself';
    is_deeply get_prefix("/ev-etcd-demo/$p->{pid}/"), {}, 'it leaves no keys behind';
};

# --- request-metrics.pl -----------------------------------------------------
subtest 'request-metrics.pl' => sub {
    my $p = spawn('metrics', 'request-metrics.pl', '--calls', 5);
    wait_exit(30, $p);
    exited_ok($p);
    my %v = map { /^(\S+) (\d+(?:\.\d+)?)$/ ? ($1 => $2) : () } lines_of($p);
    is $v{'etcd_client_requests_total{method="put",status="OK"}'}, 5, '5 puts counted';
    is $v{'etcd_client_requests_total{method="get",status="OK"}'}, 5, '5 gets counted';
    is $v{'etcd_client_requests_total{method="txn",status="OK"}'}, 1, 'the txn counted';
    is $v{'etcd_client_request_duration_seconds_count{method="put"}'}, 5, 'a histogram count for put';
    is $v{'etcd_client_request_duration_seconds_bucket{method="put",le="+Inf"}'}, 5, '... and its +Inf bucket';
    ok find_line($p, qr/^# TYPE etcd_client_request_duration_seconds histogram$/), 'exposition-format TYPE lines';
};

# --- service-discovery.pl ---------------------------------------------------
subtest 'service-discovery.pl' => sub {
    my $service = "sd-$RUN";
    my $prefix  = "/services/$service/";
    # A long TTL: the keys can only be gone quickly because of the revoke.
    my @common = ('--service', $service, '--ttl', 30);
    my $pa = spawn('sd-a', 'service-discovery.pl', @common, '--id', 'alpha', '--address', 'a:1', '--run', 5);
    ok wait_line($pa, qr/\[alpha\] registered \Q$prefix\Ealpha = a:1$/), 'alpha registers';
    ok wait_line($pa, qr/\[alpha\] peers now: alpha=a:1$/), 'alpha sees itself';
    my $pb = spawn('sd-b', 'service-discovery.pl', @common, '--id', 'beta', '--address', 'b:2', '--run', 2);
    wait_exit(15, $pa, $pb);
    exited_ok($_) for $pa, $pb;

    ok find_line($pb, qr/\[beta\] peers now: alpha=a:1, beta=b:2$/), 'beta finds alpha and itself';
    my (undef, undef, $join)  = find_line($pa, qr/\[alpha\] joined: beta at b:2$/);
    my (undef, undef, $left)  = find_line($pa, qr/\[alpha\] left: beta$/);
    my (undef, undef, $alone) = find_line($pa, qr/\[alpha\] deregistering$/);
    ok defined $join, 'alpha sees beta join';
    ok defined $left && $left > $join, 'alpha sees beta leave, after it joined';
    ok defined $alone && $alone > $left, '... before alpha itself stops';
    ok find_line($_, qr/lease revoked, bye$/), "$_->{label} revokes its lease" for $pa, $pb;
    is_deeply get_prefix($prefix), {}, 'no registration is left once both are gone';
};

# --- leader-election.pl -----------------------------------------------------
subtest 'leader-election.pl' => sub {
    my @common = ('--election', "el-$RUN", '--ttl', 30);
    # A starts first and is leader; B waits in line until A resigns.
    my $pa = spawn('el-a', 'leader-election.pl', @common, '--value', 'cand-A', '--run', 3);
    ok wait_line($pa, qr/\[cand-A\] elected: I am the leader now$/), 'the first candidate is elected';
    my $pb = spawn('el-b', 'leader-election.pl', @common, '--value', 'cand-B', '--run', 5.5);
    ok wait_line($pb, qr/\[cand-B\] leader is now: cand-A$/), 'the second one sees the first lead';
    wait_exit(20, $pa, $pb);
    exited_ok($_) for $pa, $pb;

    is scalar(grep { /elected/ } lines_of($_)), 1, "$_->{label} is elected once" for $pa, $pb;
    my (undef, $resigned)  = find_line($pa, qr/\[cand-A\] resign(?:ing|ed)$/);
    my (undef, $b_elected) = find_line($pb, qr/\[cand-B\] elected: I am the leader now$/);
    ok defined $resigned, 'the leader resigns when its time is up';
    ok defined $b_elected && $b_elected >= $resigned, 'only then is the second elected';
    my @b_saw = map { /leader is now: (\S+)$/ ? $1 : () } lines_of($pb);
    is_deeply [ @b_saw[0, 1] ], [ 'cand-A', 'cand-B' ], 'the observer reports A, then B';
    ok find_line($pb, qr/\[cand-B\] resigned$/), 'the second resigns in turn';
    my $r = ok_call($client, 'get', "el-$RUN", { prefix => 1 });
    is $r->{count}, 0, 'no candidate key is left';
};

# --- distributed-lock.pl ----------------------------------------------------
subtest 'distributed-lock.pl' => sub {
    my ($n, $times) = (3, 5);
    my $counter = "/lock-counter-$RUN";
    my $name    = "/lock-$RUN";
    my @p = map {
        spawn("lock-$_", 'distributed-lock.pl', '--name', $name, '--counter', $counter,
              '--times', $times, '--hold', 0.05, '--id', "w$_", '--run', 30)
    } 1 .. $n;
    wait_exit(30, @p);
    exited_ok($_) for @p;

    my (@sections, %lock_keys);
    for my $p (@p) {
        my $open;
        my @l = grep { /^(enter|exit) / } lines_of($p);
        for (@l) {
            my ($what, $id, $t, $v, $lock) =
                /^(enter|exit) (\S+) (\d+\.\d+) counter=(\d+)(?: lock=(\S+))?$/ or next;
            $lock_keys{$lock}++ if defined $lock;
            if ($what eq 'enter') { $open = [ $id, $t, $v ] }
            elsif ($open)         { push @sections, [ @$open, $t, $v ]; undef $open }
        }
        is scalar(@l), 2 * $times, "$p->{label} enters and exits $times times";
        ok find_line($p, qr/^done: \S+ rounds=$times$/), "$p->{label} reports $times rounds";
    }
    is scalar(grep { index($_, "$name/") != 0 } keys %lock_keys), 0, 'every lock key is the name plus a suffix';
    is scalar(keys %lock_keys), $n, '... one per instance (it is made from the lease id)';
    @sections = sort { $a->[1] <=> $b->[1] } @sections;
    is scalar(@sections), $n * $times, 'every critical section is logged';
    my @overlaps;
    for my $i (1 .. $#sections) {
        my ($prev, $cur) = @sections[ $i - 1, $i ];
        push @overlaps, "$cur->[0] entered at $cur->[1] while $prev->[0] held it until $prev->[3]"
            if $cur->[1] < $prev->[3];
    }
    is_deeply \@overlaps, [], 'no two critical sections overlap';
    is_deeply [ map { "$_->[2]->$_->[4]" } @sections ],
              [ map { "$_->" . ($_ + 1) } 0 .. $n * $times - 1 ],
              'each section read what the one before wrote and added one';
    my $kvs = get_prefix($counter);
    is $kvs->{$counter}, $n * $times, "the counter ends at exactly $n x $times";
    is scalar(keys %{ get_prefix("$name/") }), 0, 'no lock key is left';
};

# --- cas-counter.pl ---------------------------------------------------------
subtest 'cas-counter.pl' => sub {
    my ($n, $times) = (3, 10);
    my $counter = "/cas-counter-$RUN";
    my @p = map {
        spawn("cas-$_", 'cas-counter.pl', '--counter', $counter, '--times', $times,
              '--delay', 0.03, '--id', "c$_", '--run', 30)
    } 1 .. $n;
    wait_exit(30, @p);
    exited_ok($_) for @p;

    my (@new, $retries, $attempts);
    for my $p (@p) {
        my @inc = map { /^increment \S+ (\d+)->(\d+) attempts=(\d+)$/ ? [ $1, $2, $3 ] : () } lines_of($p);
        is scalar(@inc), $times, "$p->{label} reports $times increments";
        is scalar(grep { $_->[1] != $_->[0] + 1 } @inc), 0, '... each by one';
        push @new, map { $_->[1] } @inc;
        my ($d, $att, $r) = (find_line($p, qr/^done: /) // '')
            =~ /^done: \S+ increments=(\d+) attempts=(\d+) retries=(\d+)$/;
        is $d, $times, "$p->{label} sums up $times increments";
        is $att, ($r // 0) + $times, '... taking one attempt per increment plus one per retry';
        my $per = 0;
        $per += $_->[2] for @inc;
        is $per, $att, '... as the per-increment attempts add up to';
        $retries  += $r // 0;
        $attempts += $att // 0;
    }
    is_deeply [ sort { $a <=> $b } @new ], [ 1 .. $n * $times ],
        'every value from 1 to the end was written exactly once';
    ok $retries > 0, "the instances raced: $retries compares lost in $attempts attempts";
    is get_prefix($counter)->{$counter}, $n * $times, "the counter ends at exactly $n x $times";
};

# --- stm-transfer.pl -------------------------------------------------------
subtest 'stm-transfer.pl' => sub {
    my ($n, $times, $accounts) = (3, 15, 4);
    my $prefix = "/stm-bank-$RUN/";
    my @p = map {
        spawn("stm-$_", 'stm-transfer.pl', '--prefix', $prefix, '--accounts', $accounts,
              '--transfers', $times, '--id', "t$_")
    } 1 .. $n;
    wait_exit(30, @p);
    exited_ok($_) for @p;

    my @balance = (100) x $accounts;
    my ($conflicts, $attempts) = (0, 0);
    for my $p (@p) {
        my ($moved, $skipped) = (0, 0);
        for (lines_of($p)) {
            if (/^transfer \S+ (\d+)->(\d+) (\d+) revision=\d+ attempts=\d+$/) {
                $balance[$1] -= $3;
                $balance[$2] += $3;
                $moved++;
            }
            $skipped++ if /^skip /;
        }
        is $moved + $skipped, $times, "$p->{label}: $times transfers made or skipped";
        my ($t, $s, $a, $c, $u) = (find_line($p, qr/^done: /) // '')
            =~ /^done: \S+ transfers=(\d+) skipped=(\d+) attempts=(\d+) conflicts=(\d+) unknown=(\d+)$/;
        is_deeply [ $t, $s, $u ], [ $moved, $skipped, 0 ], '... as its summary says, none of unknown outcome';
        $conflicts += $c // 0;
        $attempts  += $a // 0;
    }
    my $got = get_prefix($prefix);
    is_deeply [ map { $got->{"$prefix$_"} } 0 .. $accounts - 1 ], \@balance,
        'the balances are the opening ones plus the transfers printed';
    my $sum = 0;
    $sum += $_ for values %$got;
    is $sum, 100 * $accounts, "no money made or lost ($conflicts conflicts in $attempts attempts)";
};

# A writer of keys under $prefix for the programs that follow a prefix:
# $write->(put => k => v), (delete => k => 1) or (txn => k => v, ...) (several
# puts in one revision) keeps %$state as the prefix's contents and records
# them in %$expect under the revision each write made.
sub prefix_writer {
    my ($prefix, $state, $expect) = @_;
    return sub {
        my ($op, %kv) = @_;
        my $r;
        if ($op eq 'put') {
            my ($k, $v) = %kv;
            $r = ok_call($client, 'put', "$prefix$k", $v);
            $state->{$k} = $v;
        } elsif ($op eq 'delete') {
            my ($k) = keys %kv;
            $r = ok_call($client, 'delete', "$prefix$k");
            delete $state->{$k};
        } else {
            $r = ok_call($client, 'txn', compare => [],
                success => [ map { { put => { key => "$prefix$_", value => $kv{$_} } } } sort keys %kv ]);
            @$state{ keys %kv } = values %kv;
        }
        $expect->{ $r->{header}{revision} } = { %$state };
    };
}

# --- config-watch.pl --------------------------------------------------------
subtest 'config-watch.pl' => sub {
    my $prefix = "/cfg-$RUN/";
    my %state = (workers => 2, mode => 'fast');
    my %initial = %state;
    ok_call($client, 'put', "$prefix$_", $state{$_}) for sort keys %state;
    ok_call($client, 'put', "/cfg-$RUN-sibling", 'not ours');    # shares the prefix string, not the dir

    # The expected configuration after each revision the test writes.
    my %expect;
    my $write = prefix_writer($prefix, \%state, \%expect);
    my $p = spawn('cfg', 'config-watch.pl', '--prefix', $prefix, '--sentinel', 'STOP', '--run', 20);

    # Some writes race with the program's first read ...
    $write->(put => workers => 3);
    $write->(put => colour => 'dark blue');
    ok wait_line($p, qr/^watching \Q$prefix\E from revision \d+$/), 'the program reads and then watches';
    # ... and the rest certainly come after it.
    $write->(delete => mode => 1);
    $write->(txn => workers => 8, 'a=b' => 'x%y');
    ok_call($client, 'put', "/cfg-$RUN-sibling", 'still not ours');
    $write->(put => colour => '');
    $write->(delete => workers => 1);
    ok_call($client, 'put', "${prefix}STOP", 1);
    wait_exit(20, $p);
    exited_ok($p);
    ok find_line($p, qr/^sentinel \Q$prefix\ESTOP put at revision \d+: stopping$/), 'it stops on the sentinel';

    my @configs;
    for (lines_of($p)) {
        my ($rev, $rest) = /^config \(revision (\d+)\):(.*)$/ or next;
        my %c = map { my ($k, $v) = split /=/, $_, 2; (unesc($k) => unesc($v)) } split ' ', $rest;
        push @configs, [ $rev, \%c ];
    }
    ok @configs >= 5, 'it printed its configuration after the read and after every later write';
    my ($load_rev, $loaded) = @{ shift @configs };
    my @revs = sort { $a <=> $b } keys %expect;
    # What the store held at the revision of the first read.
    my ($at_load) = grep { $_ <= $load_rev } reverse @revs;
    is_deeply $loaded, (defined $at_load ? $expect{$at_load} : \%initial),
        'the first read shows the store as it was then';
    is_deeply [ map { $_->[0] } @configs ], [ grep { $_ > $load_rev } @revs ],
        'after it, one configuration per revision written, none missed, none twice';
    is_deeply \@configs, [ map { [ $_, $expect{$_} ] } grep { $_ > $load_rev } @revs ],
        'each one is what the store held at that revision';
    is_deeply $configs[-1][1], { colour => '', 'a=b' => 'x%y' }, 'the final configuration';
};

# --- watch-restart.pl -------------------------------------------------------
subtest 'watch-restart.pl' => sub {
    my $prefix = "/wr-$RUN/";
    my $total  = 12;
    my $p = spawn('wr', 'watch-restart.pl', '--prefix', $prefix, '--count', $total, '--run', 40);
    ok wait_line($p, qr/^watch created at revision \d+$/), 'the watch is created';

    my @want;    # "PUT key value" / "DELETE key" as the example prints them
    my $k = 0;
    my $put = sub {
        my ($c, $n) = @_;
        for (1 .. $n) {
            my $key = sprintf '%sk%02d', $prefix, ++$k;
            ok_call($c, 'put', $key, "v$k");
            push @want, "PUT $key v$k";
        }
    };
    $put->($client, 4);
    ok_call($client, 'delete', "${prefix}k01");
    push @want, "DELETE ${prefix}k01";
    ok wait_line($p, qr/^event: DELETE \Q$prefix\Ek01 \d+$/), 'events arrive while etcd is up';

    $srv->kill9;
    ok wait_line($p, qr/^health: etcd at \S+ is down$/, 5), 'the example notices that etcd is gone';
    $srv->restart;
    # A fresh client for the test: the old one's connection died with etcd.
    $client = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);
    # Written before the example's watch is back: it must catch up on them.
    $put->($client, 3);
    ok_call($client, 'delete', "${prefix}k02");
    push @want, "DELETE ${prefix}k02";
    ok wait_line($p, qr/^event: DELETE \Q$prefix\Ek02 \d+$/, 25), 'the watch comes back after the restart';
    $put->($client, $total - @want);
    wait_exit(20, $p);
    exited_ok($p);

    my (@got, @revs);
    for (lines_of($p)) {
        my @f = /^event: (PUT|DELETE) (\S+)(?: (\S+))? (\d+)$/ or next;
        push @got, join ' ', grep { defined } $f[0], unesc($f[1]), (defined $f[2] ? unesc($f[2]) : undef);
        push @revs, $f[3];
    }
    is_deeply \@got, \@want, "all $total events, each once, in order, across the restart";
    is_deeply \@revs, [ sort { $a <=> $b } @revs ], 'revisions never go backwards';
    ok find_line($p, qr/^health: etcd at \S+ is up$/), 'it reports etcd up';
    ok !find_line($p, qr/ERROR/), 'the example found no problem itself';
    ok find_line($p, qr/^done: $total events, last revision \d+, none out of order or repeated$/), 'its summary';
};

# --- mirror.pl --------------------------------------------------------------
subtest 'mirror.pl' => sub {
    my $prefix = "/mirror-$RUN/";
    my %state;
    my %expect;    # revision => the view at that revision
    my $write = prefix_writer($prefix, \%state, \%expect);
    $write->(put => "k$_" => "v$_") for 1 .. 7;
    ok_call($client, 'put', "/mirror-$RUN-sibling", 'not ours');
    my $p = spawn('mirror', 'mirror.pl', '--prefix', $prefix, '--page-size', 3, '--sentinel', 'STOP', '--run', 20);
    ok wait_line($p, qr/^ready: 7 keys at revision \d+$/), 'it reads the 7 keys (in pages of 3)';
    $write->(put => k2 => 'two');
    $write->(delete => k3 => 1);
    $write->(txn => k1 => 'x y', new => '');
    $write->(put => STOP => 1);
    wait_exit(20, $p);
    exited_ok($p);
    ok find_line($p, qr/^sentinel put at revision \d+: stopping$/), 'it stops on the sentinel';
    ok find_line($p, qr/^change: PUT k2=two \(was v2\) at revision \d+$/), 'a change with its previous value';
    ok find_line($p, qr/^change: DELETE k3 at revision \d+$/), 'a delete';
    my @views;
    for (lines_of($p)) {
        my ($rev, $rest) = /^view \(revision (\d+)\):(.*)$/ or next;
        push @views, [ $rev, { map { my ($k, $v) = split /=/, $_, 2; (unesc($k) => unesc($v)) } split ' ', $rest } ];
    }
    is scalar @views, 5, 'a view after the read and after each of the 4 revisions';
    my @revs = sort { $a <=> $b } keys %expect;
    is_deeply $views[0][1], $expect{ $revs[-5] }, 'the first view is the store after the 7 puts';
    is_deeply [ @views[ 1 .. $#views ] ], [ map { [ $_, $expect{$_} ] } @revs[ -4 .. -1 ] ],
        'each later view is what the store held at its revision';
};

# --- every example is covered -------------------------------------------------
{
    my %tested = map { $_ => 1 } qw(demo.pl request-metrics.pl service-discovery.pl leader-election.pl
        distributed-lock.pl cas-counter.pl config-watch.pl watch-restart.pl stm-transfer.pl mirror.pl);
    opendir my $dh, 'eg' or die "eg: $!";
    my @untested = grep { /\.pl$/ && !$tested{$_} } sort readdir $dh;
    is_deeply \@untested, [], 'every program in eg/ is exercised here';
}

note sprintf 'took %.1f s', time - $T0;
done_testing;
