#!/usr/bin/env perl
# A distributed lock around a critical section.
#
# Several processes (on any number of machines) increment one counter key
# by reading it, adding one and writing it back. Done without a lock, two
# of them read the same value and one increment is lost. Each round here
# takes the etcd lock --name first, so only one process at a time is
# between "enter" and "exit", and the counter ends at exactly
# instances x --times.
#
# The lock is tied to a lease that a keepalive refreshes: if the process
# dies while holding it, the lease runs out after --ttl seconds and the
# lock is free again. As an extra safeguard, the write is a transaction
# that only goes through while our lock key still exists, so a holder
# whose lease has lapsed cannot overwrite anything.
#
# Output (times are Unix time with microseconds, for comparing the logs of
# several processes on one machine):
#     enter <id> <time> counter=<value read> lock=<our lock key>
#     exit <id> <time> counter=<value written>
#     done: <id> rounds=<n>
#
# Usage:
#   perl -Mblib eg/distributed-lock.pl [--name LOCK] [--counter KEY]
#        [--times N] [--hold SECONDS] [--ttl SECONDS] [--id TEXT] [--run SECONDS]
#
# Start three at once and compare:
#   for i in 1 2 3; do perl -Mblib eg/distributed-lock.pl --id w$i & done; wait
#
# --hold is a pause inside the critical section, between the read and the
# write, to give a race every chance to show. --run stops after that many
# seconds even if rounds are left (0, the default: no limit). The etcd
# endpoint comes from $EV_ETCD_ENDPOINT (default 127.0.0.1:2379).
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time);

$| = 1;

my %opt = (
    name    => '/demo-lock/mutex',
    counter => '/demo-lock-counter',
    times   => 5,
    hold    => 0.05,
    ttl     => 10,
    id      => "pid$$",
    run     => 0,
);
GetOptions(\%opt, 'name=s', 'counter=s', 'times=i', 'hold=f', 'ttl=i', 'id=s', 'run=f')
    or die "usage: $0 [--name LOCK] [--counter KEY] [--times N] [--hold S] [--ttl S] [--id TEXT] [--run S]\n";

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';
my $etcd     = EV::Etcd->new(endpoints => [$endpoint], timeout => 30);

my ($lease_id, $keepalive, $pause, @stoppers);
my $rounds     = 0;
my $in_section = 0;    # between taking the lock and letting it go
my $stopping   = 0;    # no new round is started once this is set
my $finished   = 0;
my $exit_code  = 0;

sub note { print "@_\n" }
sub now  { sprintf '%.6f', time }

$etcd->lease_grant($opt{ttl}, sub {
    my ($resp, $err) = @_;
    return fail("lease_grant: $err->{message}") if $err;
    $lease_id = $resp->{id};
    note("lease $lease_id granted to $opt{id}, ttl $resp->{ttl}s");
    $keepalive = $etcd->lease_keepalive($lease_id, sub {
        my (undef, $err) = @_;
        # Without a live lease we cannot trust that we hold the lock.
        fail("keepalive: $err->{status}: $err->{message}") if $err;
    });
    next_round();
});

sub next_round {
    return finish() if $stopping || $rounds >= $opt{times};
    # Waits in line until the lock is ours (at most the client's timeout).
    $etcd->lock($opt{name}, $lease_id, sub {
        my ($held, $err) = @_;
        return if $finished;    # we gave up waiting (see stop)
        return fail("lock: $err->{status}: $err->{message}") if $err;
        $in_section = 1;
        critical_section($held->{key});    # $name plus a suffix of our own
    });
}

# Only one process at a time runs this.
sub critical_section {
    my ($lock_key) = @_;
    $etcd->get($opt{counter}, sub {
        my ($resp, $err) = @_;
        return if $finished;    # given up meanwhile (an error elsewhere)
        return fail("get: $err->{message}") if $err;
        my $value = @{ $resp->{kvs} } ? $resp->{kvs}[0]{value} : 0;
        note("enter $opt{id}", now(), "counter=$value", "lock=$lock_key");

        # Take our time: without the lock, others would now read the same value.
        $pause = EV::timer($opt{hold}, 0, sub {
            undef $pause;
            $etcd->txn(
                compare  => [ { key => $lock_key, target => 'create', result => '>', create_revision => 0 } ],
                success  => [ { put => { key => $opt{counter}, value => $value + 1 } } ],
                callback => sub {
                    my ($resp, $err) = @_;
                    return if $finished;
                    return fail("txn: $err->{message}") if $err;
                    return fail("lost the lock $lock_key before writing") unless $resp->{succeeded};
                    note("exit $opt{id}", now(), 'counter=' . ($value + 1));
                    $rounds++;
                    $etcd->unlock($lock_key, sub {
                        my (undef, $err) = @_;
                        $in_section = 0;
                        return if $finished;
                        return fail("unlock: $err->{message}") if $err;
                        next_round();
                    });
                },
            );
        });
    });
}

push @stoppers, EV::signal($_, sub { stop() }) for qw(INT TERM);
push @stoppers, EV::timer($opt{run}, 0, sub { stop() }) if $opt{run} > 0;

# A round that holds the lock is finished first; one that is still
# waiting in line is given up.
sub stop {
    $stopping = 1;
    finish() unless $in_section;
}

sub fail {
    my ($problem) = @_;
    print STDERR "ERROR: $opt{id}: $problem\n";
    $exit_code = 1;
    finish();
}

# Stop the keepalive and revoke the lease; the lock (if we still hold it)
# goes with it. Then nothing is left that holds the loop.
sub finish {
    return if $finished++;
    @stoppers = ();
    undef $pause;
    note("done: $opt{id} rounds=$rounds");
    return drop_client() unless $keepalive;
    $keepalive->cancel(sub {
        $etcd->lease_revoke($lease_id, sub {
            my (undef, $err) = @_;
            print STDERR "revoke: $err->{message}\n" if $err;
            drop_client();
        });
    });
}

# A lock request may still be waiting in line after an error; dropping the
# client abandons it, so that EV::run returns.
sub drop_client {
    undef $keepalive;
    undef $etcd;
}

EV::run;
exit $exit_code;
