#!/usr/bin/env perl
# A counter that many processes increment without a lock: compare-and-swap
# with a transaction.
#
# Each increment is one txn: "if the counter still has the mod_revision I
# read (or, when it did not exist, still does not exist), write value + 1".
# When someone else got there first the compare fails, and the failure
# branch of the same txn reads the counter, so the retry starts from the
# fresh value without another round trip. After a success the next
# attempt needs no read either: the txn's own revision is the counter's
# new mod_revision. However many instances run at once, every increment
# counts exactly once.
#
# Output:
#     increment <id> <old>-><new> attempts=<tries this increment took>
#     done: <id> increments=<n> attempts=<txns sent> retries=<compares lost>
#
# Usage:
#   perl -Mblib eg/cas-counter.pl [--counter KEY] [--times N] [--delay SECONDS]
#        [--id TEXT] [--run SECONDS]
#
#   for i in 1 2 3; do perl -Mblib eg/cas-counter.pl --id c$i --times 20 & done; wait
#
# --delay pauses between learning the value and sending the txn, which
# widens the window for the others and makes retries likely. --run stops
# after that many seconds even if increments are left (0, the default: no
# limit). The etcd endpoint comes from $EV_ETCD_ENDPOINT (default
# 127.0.0.1:2379).
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);

$| = 1;

my %opt = (
    counter => '/demo-cas-counter',
    times   => 10,
    delay   => 0,
    id      => "pid$$",
    run     => 0,
);
GetOptions(\%opt, 'counter=s', 'times=i', 'delay=f', 'id=s', 'run=f')
    or die "usage: $0 [--counter KEY] [--times N] [--delay S] [--id TEXT] [--run S]\n";

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';
my $key      = $opt{counter};
my $etcd     = EV::Etcd->new(endpoints => [$endpoint]);

my ($pause, @stoppers);
my ($done, $attempts, $retries, $tries_now) = (0, 0, 0, 0);
my $stopping  = 0;
my $finished  = 0;
my $exit_code = 0;

# What we believe the counter is: its value and mod_revision (0 when the
# key does not exist).
sub from_kv {
    my ($kv) = @_;
    return $kv ? ($kv->{value}, $kv->{mod_revision}) : (0, 0);
}

sub attempt {
    my ($value, $mod_rev) = @_;
    return finish() if $stopping || $done >= $opt{times};
    my $go = sub {
        undef $pause;
        # A counter that does not exist has create_revision 0; requiring
        # that keeps two first writers from both creating it.
        my $unchanged = $mod_rev
            ? { key => $key, target => 'mod',    mod_revision    => $mod_rev }
            : { key => $key, target => 'create', create_revision => 0 };
        $attempts++;
        $tries_now++;
        $etcd->txn(
            compare  => [$unchanged],
            success  => [ { put   => { key => $key, value => $value + 1 } } ],
            failure  => [ { range => { key => $key } } ],
            callback => sub {
                my ($resp, $err) = @_;
                # Not retried: a txn that failed on the way back may have
                # been applied, and repeating it could count twice.
                return fail("txn: $err->{status}: $err->{message}") if $err;
                if ($resp->{succeeded}) {
                    $done++;
                    printf "increment %s %d->%d attempts=%d\n", $opt{id}, $value, $value + 1, $tries_now;
                    $tries_now = 0;
                    return attempt($value + 1, $resp->{header}{revision});
                }
                $retries++;
                attempt(from_kv($resp->{responses}[0]{response_range}{kvs}[0]));
            },
        );
    };
    return $go->() unless $opt{delay} > 0;
    $pause = EV::timer($opt{delay}, 0, $go);
}

$etcd->get($key, sub {
    my ($resp, $err) = @_;
    return fail("get: $err->{status}: $err->{message}") if $err;
    attempt(from_kv($resp->{kvs}[0]));
});

push @stoppers, EV::signal($_, sub { stop() }) for qw(INT TERM);
push @stoppers, EV::timer($opt{run}, 0, sub { stop() }) if $opt{run} > 0;

# A txn in flight is let finish; none is started after it.
sub stop {
    $stopping = 1;
    finish() if $pause;
}

sub finish {
    return if $finished++;
    @stoppers = ();
    undef $pause;
    print "done: $opt{id} increments=$done attempts=$attempts retries=$retries\n";
    # Nothing is left in flight: EV::run returns.
}

sub fail {
    my ($problem) = @_;
    print STDERR "ERROR: $opt{id}: $problem\n";
    $exit_code = 1;
    finish();
}

EV::run;
exit $exit_code;
