#!/usr/bin/env perl
# stm under faults: ten accounts on a three-member cluster, three
# processes moving money between them for about 30 s, a fourth reading all
# balances in one get over and over, while the parent kills one member
# (SIGKILL) and starts it again. Every transfer writes a log key in the
# same commit. Checked: every read sums to the same total; every transfer
# reported committed has its log key; the log, replayed from the opening
# balances, gives exactly the closing ones (a transfer applied twice, or
# half applied, would not); log keys of transfers whose outcome was
# unknown are allowed, and no others.
use strict;
use warnings;

use Test::More;
use POSIX ();
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);

use lib 't/lib';
use EtcdTest qw(:DEFAULT ok_call);

need_etcd();
use EV;
use EV::Etcd;

my ($ACCOUNTS, $OPENING, $WORKERS) = (10, 100, 3);
my $RUN  = $ENV{STM_BANK_SECONDS} || 30;
# A pause after each transfer and each read: contention stays high (three
# writers on ten accounts), while the test leaves CPU to the suites that
# run beside it.
my $PACE = $ENV{STM_BANK_PACE} // 0.01;
my @srv  = start_cluster(3, name_prefix => 'bank');
my @eps  = map { $_->endpoint } @srv;
my $dir  = tempdir(CLEANUP => 1);
my $c    = EV::Etcd->new(endpoints => \@eps, timeout => 5);
my $TOTAL = $ACCOUNTS * $OPENING;

ok_call($c, 'put', "/bank/acct/$_", $OPENING) for 0 .. $ACCOUNTS - 1;
my $t_end = time + $RUN;

sub child {
    my ($code) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my $ok = eval {
        EV::default_loop->loop_fork;
        my $etcd = EV::Etcd->new(endpoints => \@eps, timeout => 5);
        $code->($etcd);
        1;
    };
    print STDERR "child $$: $@" unless $ok;
    POSIX::_exit($ok ? 0 : 1);
}

sub write_file {
    my ($name, @lines) = @_;
    open my $fh, '>', "$dir/$name" or die "$dir/$name: $!";
    print {$fh} map { "$_\n" } @lines;
    close $fh or die "$dir/$name: $!";
}

# ---- the transfers ---------------------------------------------------------------
my @pids;
for my $w (1 .. $WORKERS) {
    push @pids, child(sub {
        my ($etcd) = @_;
        srand($$ ^ time);
        my (@committed, @unknown, @failed);
        my %n = map { $_ => 0 } qw(moved skipped attempts conflicts);
        my ($seq, $busy) = (0, 0);
        my $next;
        $next = sub {
            return $busy = 0 if time >= $t_end;
            $busy = 1;
            my $id = "$w-" . ++$seq;
            # Chosen outside the function, which must be pure: every run of
            # it moves the same amount between the same accounts.
            my $from = int rand $ACCOUNTS;
            my $to   = ($from + 1 + int rand($ACCOUNTS - 1)) % $ACCOUNTS;
            my $amount = 1 + int rand 30;
            $etcd->stm(sub {
                my ($tx) = @_;
                my $have = $tx->get("/bank/acct/$from");
                return 'skipped' if $have < $amount;
                $tx->put("/bank/acct/$from", $have - $amount);
                $tx->put("/bank/acct/$to", $tx->get("/bank/acct/$to") + $amount);
                $tx->put("/bank/log/$id", "$from $to $amount");
                return 'moved';
            }, { prefetch => [ "/bank/acct/$from", "/bank/acct/$to" ], max_attempts => 50 }, sub {
                my ($r, $e) = @_;
                if ($e) {
                    $n{attempts}  += $e->{attempts};
                    $n{conflicts} += $e->{conflicts};
                    if (($e->{outcome} // '') eq 'unknown') { push @unknown, $id }
                    else { push @failed, "$id $e->{status} $e->{message}" }
                } else {
                    $n{attempts}  += $r->{attempts};
                    $n{conflicts} += $r->{conflicts};
                    $n{ $r->{result} }++;
                    push @committed, $id if $r->{result} eq 'moved';
                }
                $busy = EV::timer($PACE, 0, $next);    # (the handle keeps it alive)
            });
        };
        $next->();
        run_until(sub { !$busy }, $RUN + 30);
        write_file("committed-$w", @committed);
        write_file("unknown-$w", @unknown);
        write_file("failed-$w", @failed);
        write_file("counts-$w", map { "$_ $n{$_}" } sort keys %n);
    });
}

# ---- the reader --------------------------------------------------------------------
push @pids, child(sub {
    my ($etcd) = @_;
    my ($reads, $bad, $errors, $busy) = (0, 0, 0, 0);
    my @bad;
    my $next;
    $next = sub {
        return $busy = 0 if time >= $t_end + 1;
        $busy = 1;
        $etcd->get('/bank/acct/', { prefix => 1 }, sub {
            my ($r, $e) = @_;
            if ($e) {
                $errors++;
                my $t = EV::timer(0.05, 0, sub { $next->() });
                $busy = $t;    # keeps the timer alive
                return;
            }
            my $sum = 0;
            $sum += $_->{value} for @{ $r->{kvs} };
            $reads++;
            if ($sum != $TOTAL || @{ $r->{kvs} } != $ACCOUNTS) {
                $bad++;
                push @bad, "revision $r->{header}{revision}: sum $sum in " . scalar(@{ $r->{kvs} }) . ' accounts';
            }
            $busy = EV::timer($PACE, 0, $next);
        });
    };
    $next->();
    run_until(sub { !$busy }, $RUN + 30);
    write_file('reader', "reads $reads", "bad $bad", "errors $errors", @bad);
});

# ---- the fault: kill one member a third of the way in, restart it at half -----------
# The first endpoint: the one every client is talking to.
my $victim = $srv[0];
sleep($RUN / 3);
$victim->kill9;
my $killed_at = time;
sleep($RUN / 2 - $RUN / 3);
$victim->restart;
diag sprintf 'member %s was down for %.1f s', $victim->name, time - $killed_at;

for my $pid (@pids) {
    waitpid $pid, 0;
    is $?, 0, "child $pid exits 0";
}

# ---- checks ------------------------------------------------------------------------
sub lines_of {
    my ($name) = @_;
    open my $fh, '<', "$dir/$name" or return ();
    chomp(my @l = <$fh>);
    return @l;
}

my (%committed, %unknown, @failed, %n);
for my $w (1 .. $WORKERS) {
    $committed{$_}++ for lines_of("committed-$w");
    $unknown{$_}++ for lines_of("unknown-$w");
    push @failed, lines_of("failed-$w");
    for (lines_of("counts-$w")) { my ($k, $v) = split; $n{$k} += $v }
}
my %reader = map { split / /, $_, 2 } grep { /^(reads|bad|errors) / } lines_of('reader');
my @bad_reads = grep { /^revision / } lines_of('reader');

cmp_ok $reader{reads} // 0, '>', 50, 'the reader read the balances many times';
is $reader{bad}, 0, 'every read of all accounts sums to the total' or diag join "\n", @bad_reads[0 .. 9];
cmp_ok scalar(keys %committed), '>', 50, 'many transfers committed';
is_deeply [ grep { $committed{$_} > 1 } keys %committed ], [], 'no id reported committed twice';
is_deeply \@failed, [], 'no call failed other than with an unknown outcome' or diag join "\n", @failed[0 .. 9];

my $c2 = EV::Etcd->new(endpoints => \@eps, timeout => 10);
my $log = ok_call($c2, 'get', '/bank/log/', { prefix => 1 });
my %logged = map { (substr($_->{key}, length '/bank/log/') => $_->{value}) } @{ $log->{kvs} };
is_deeply [ sort grep { !$logged{$_} } keys %committed ], [], 'every committed transfer has its log key';
my @stray = grep { !$committed{$_} && !$unknown{$_} } keys %logged;
is_deeply \@stray, [], 'every log key belongs to a committed transfer or to one of unknown outcome';
my $unknown_applied = grep { $logged{$_} } keys %unknown;

my @balance = ($OPENING) x $ACCOUNTS;
for my $id (keys %logged) {
    my ($from, $to, $amount) = split / /, $logged{$id};
    $balance[$from] -= $amount;
    $balance[$to]   += $amount;
}
my $acct = ok_call($c2, 'get', '/bank/acct/', { prefix => 1 });
my @final;
$final[ substr($_->{key}, length '/bank/acct/') ] = $_->{value} for @{ $acct->{kvs} };
is_deeply \@final, \@balance, 'replaying the log from the opening balances gives the closing ones';
my $sum = 0;
$sum += $_ for @final;
is $sum, $TOTAL, "the closing total is $TOTAL";
ok !grep({ $_ < 0 } @final), 'no account went below 0';

diag sprintf 'bank: %d transfers committed, %d skipped (no funds), %d conflicts, %d attempts, '
    . '%d unknown outcomes (%d of them applied), %d reads checked (%d read errors)',
    scalar(keys %committed), $n{skipped} // 0, $n{conflicts} // 0, $n{attempts} // 0,
    scalar(keys %unknown), $unknown_applied, $reader{reads} // 0, $reader{errors} // 0;

$_->stop for @srv;
done_testing;
