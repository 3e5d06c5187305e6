#!/usr/bin/env perl
# Service discovery with EV::Etcd.
#
# Each instance of a service registers itself under
#     /services/<service>/<instance>  =  <address>
# with a key attached to a short lease that a keepalive refreshes. If the
# process dies, the keepalive stops, the lease runs out and the key vanishes
# by itself. Every instance also watches /services/<service>/ and keeps an
# up-to-date list of its peers.
#
# Usage:
#   perl -Mblib eg/service-discovery.pl [--service NAME] [--id ID]
#        [--address HOST:PORT] [--ttl SECONDS] [--run SECONDS]
#
# Start it in two or three terminals with different --id values and watch
# the peers come and go. Ctrl-C (or --run) deregisters cleanly: the lease is
# revoked, so the others see the instance leave at once rather than after
# the TTL. The etcd endpoint comes from $EV_ETCD_ENDPOINT (default
# 127.0.0.1:2379).
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);
use Sys::Hostname qw(hostname);

$| = 1;

my %opt = (
    service => 'demo-api',
    id      => hostname() . "-$$",
    address => '127.0.0.1:' . (8000 + $$ % 1000),
    ttl     => 10,
    run     => 0,    # 0: until Ctrl-C
);
GetOptions(\%opt, 'service=s', 'id=s', 'address=s', 'ttl=i', 'run=f')
    or die "usage: $0 [--service NAME] [--id ID] [--address ADDR] [--ttl S] [--run S]\n";

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';
my $prefix   = "/services/$opt{service}/";
my $my_key   = $prefix . $opt{id};

my $etcd = EV::Etcd->new(endpoints => [$endpoint], max_retries => -1);

my ($lease_id, $keepalive, $watch, @stoppers);
my %peers;    # instance id => address
my $exit_code = 0;

sub note { printf "%s [%s] %s\n", scalar(localtime), $opt{id}, "@_" }

sub show_peers {
    note('peers now:', join(', ', map { "$_=$peers{$_}" } sort keys %peers) || '(none)');
}

# 1. A lease: our registration lives only as long as we keep it alive.
$etcd->lease_grant($opt{ttl}, sub {
    my ($resp, $err) = @_;
    return shutdown_with("lease_grant failed: $err->{message}") if $err;
    $lease_id = $resp->{id};
    note("got lease $lease_id with ttl $resp->{ttl}s");

    # 2. Keep it alive. The client refreshes every ttl/3 seconds and, if
    #    the connection drops, reconnects (forever, as max_retries is -1).
    $keepalive = $etcd->lease_keepalive($lease_id, sub {
        my ($ka, $err) = @_;
        # The only error here means the lease is gone: we are no longer
        # registered, so stop rather than pretend otherwise.
        return shutdown_with("keepalive ended: $err->{status} $err->{message}") if $err;
    });

    # 3. Register: put our address under the lease.
    $etcd->put($my_key, $opt{address}, { lease => $lease_id }, sub {
        my (undef, $err) = @_;
        return shutdown_with("register failed: $err->{message}") if $err;
        note("registered $my_key = $opt{address}");
        discover();
    });
});

# 4. Read the current members, then watch for changes from exactly the
#    revision after that read, so that nothing is missed in between.
sub discover {
    $etcd->get($prefix, { prefix => 1 }, sub {
        my ($resp, $err) = @_;
        return shutdown_with("listing peers failed: $err->{message}") if $err;
        for my $kv (@{ $resp->{kvs} }) {
            $peers{ substr $kv->{key}, length $prefix } = $kv->{value};
        }
        show_peers();

        $watch = $etcd->watch($prefix, {
            prefix         => 1,
            start_revision => $resp->{header}{revision} + 1,
        }, sub {
            my ($msg, $err) = @_;
            return shutdown_with("watch ended: $err->{message}") if $err;
            for my $ev (@{ $msg->{events} }) {
                my $id = substr $ev->{kv}{key}, length $prefix;
                if ($ev->{type} eq 'PUT') {
                    note("joined: $id at $ev->{kv}{value}") unless exists $peers{$id};
                    $peers{$id} = $ev->{kv}{value};
                } else {
                    note("left: $id");
                    delete $peers{$id};
                }
            }
            show_peers() if @{ $msg->{events} };
        });
    });
}

# 5. Leave cleanly on Ctrl-C, SIGTERM or when --run seconds are over.
push @stoppers, EV::signal($_, sub { shutdown_with() }) for qw(INT TERM);
push @stoppers, EV::timer($opt{run}, 0, sub { shutdown_with() }) if $opt{run} > 0;

my $stopping = 0;

sub shutdown_with {
    my ($problem) = @_;
    if (defined $problem) {
        warn "$problem\n";
        $exit_code = 1;
    }
    return if $stopping++;
    note('deregistering');
    @stoppers = ();    # our own watchers must not hold the loop either

    # Cancel the streams; revoking the lease deletes our key immediately.
    $watch->cancel(sub { }) if $watch;
    if ($keepalive) {
        $keepalive->cancel(sub {
            return unless $lease_id;
            $etcd->lease_revoke($lease_id, sub {
                my (undef, $err) = @_;
                note($err ? "revoke failed: $err->{message}" : 'lease revoked, bye');
            });
        });
    }
    # Nothing else is pending now, so EV::run below returns by itself.
}

EV::run;
exit $exit_code;
