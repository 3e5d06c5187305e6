#!/usr/bin/env perl
# Leader election with EV::Etcd.
#
# Every instance campaigns in the same election; etcd makes exactly one of
# them leader and queues the rest. All instances observe the election and
# print who leads. The leader does some "work" (a tick every two seconds).
# On Ctrl-C (or SIGTERM, or after --run seconds) an instance resigns if it
# leads, so the next one in line takes over at once, then revokes its lease
# and exits. An instance that is killed outright loses leadership when its
# lease runs out (--ttl seconds).
#
# Usage:
#   perl -Mblib eg/leader-election.pl [--election NAME] [--value TEXT]
#        [--ttl SECONDS] [--run SECONDS]
#
# The etcd endpoint comes from $EV_ETCD_ENDPOINT (default 127.0.0.1:2379).
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);
use Sys::Hostname qw(hostname);

$| = 1;

my %opt = (
    election => 'demo-election',
    value    => hostname() . "-$$",
    ttl      => 5,
    run      => 0,    # 0: until Ctrl-C
);
GetOptions(\%opt, 'election=s', 'value=s', 'ttl=i', 'run=f')
    or die "usage: $0 [--election NAME] [--value TEXT] [--ttl S] [--run S]\n";

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';
my $etcd     = EV::Etcd->new(endpoints => [$endpoint]);

my ($lease_id, $keepalive, $observer, $leader, $work_timer, @stoppers);
my $stopping  = 0;
my $exit_code = 0;

sub note { printf "%s [%s] %s\n", scalar(localtime), $opt{value}, "@_" }

# A lease ties our candidacy to this process being alive.
$etcd->lease_grant($opt{ttl}, sub {
    my ($resp, $err) = @_;
    return stop("lease_grant failed: $err->{message}") if $err;
    $lease_id = $resp->{id};

    $keepalive = $etcd->lease_keepalive($lease_id, sub {
        my (undef, $err) = @_;
        stop("lost our lease: $err->{message}") if $err;
    });

    # Follow the election: the current leader first, then every change.
    $observer = $etcd->election_observe($opt{election}, sub {
        my ($msg, $err) = @_;
        return stop("observe ended: $err->{message}") if $err;
        note("leader is now: $msg->{kv}{value}");
    });

    # Campaign. timeout => 0: a standby waits as long as it takes.
    note("campaigning in '$opt{election}'");
    $etcd->election_campaign($opt{election}, $lease_id, $opt{value}, { timeout => 0 }, sub {
        my ($resp, $err) = @_;
        # Once we are shutting down the outcome no longer matters: our
        # lease, and with it our candidate key, is gone or about to be.
        return if $stopping;
        return stop("campaign failed: $err->{message}") if $err;
        $leader = $resp->{leader};    # needed to resign (or proclaim)
        note('elected: I am the leader now');
        my $n = 0;
        $work_timer = EV::timer(0, 2, sub { note('leading, tick ' . ++$n) });
    });
});

push @stoppers, EV::signal($_, sub { stop() }) for qw(INT TERM);
push @stoppers, EV::timer($opt{run}, 0, sub { stop() }) if $opt{run} > 0;

sub stop {
    my ($problem) = @_;
    if (defined $problem) {
        warn "$problem\n";
        $exit_code = 1;
    }
    return if $stopping++;
    @stoppers   = ();
    undef $work_timer;

    if ($leader) {
        # Step down first, so that the next candidate is elected right away.
        note('resigning');
        $etcd->election_resign($leader, sub {
            my (undef, $err) = @_;
            note($err ? "resign failed: $err->{message}" : 'resigned');
            undef $leader;
            release();
        });
    } else {
        release();
    }
}

# Stop the streams and revoke the lease, which deletes our candidate key so
# that we no longer stand in line.
sub release {
    $observer->cancel(sub { }) if $observer;
    return drop_client() unless $keepalive;
    $keepalive->cancel(sub {
        $etcd->lease_revoke($lease_id, sub {
            my (undef, $err) = @_;
            note($err ? "revoke failed: $err->{message}" : 'lease revoked, bye');
            drop_client();
        });
    });
}

# A campaign that is still waiting is not ended by the loss of its lease:
# etcd keeps it open until the current leader goes away. Dropping every
# reference to the client discards it (its callback is never called), so
# nothing is left that holds EV::run.
sub drop_client {
    undef $observer;
    undef $keepalive;
    undef $etcd;
}

EV::run;
exit $exit_code;
