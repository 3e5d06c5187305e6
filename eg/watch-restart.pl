#!/usr/bin/env perl
# A watch that outlives an etcd restart.
#
# The client is made with max_retries => -1, so a broken watch stream is
# reopened for as long as it takes (after 1, 2, 4, 8, 16, 16, ... seconds).
# Each time it comes back, the client re-creates the watch from the
# revision right after the last event it delivered, so nothing that
# happened while etcd was down or unreachable is lost, and nothing is
# delivered twice. Stop etcd (kill -9 is fine), change keys under the
# prefix once it is back, and watch the events arrive in order.
#
# The program also checks this itself: an event whose revision is lower
# than the previous one, or the same change twice, is reported as an
# ERROR and makes the exit status 1. A health probe prints when etcd goes
# away and when it answers again.
#
# Output, one line per event (keys and values %-escaped, see esc()):
#     event: PUT <key> <value> <revision>
#     event: DELETE <key> <revision>
#
# Usage:
#   perl -Mblib eg/watch-restart.pl [--prefix PREFIX] [--count N] [--run SECONDS]
#
# --count N stops after N events, --run after that many seconds (0, the
# default for both: until Ctrl-C). The etcd endpoint comes from
# $EV_ETCD_ENDPOINT (default 127.0.0.1:2379).
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);

$| = 1;

my %opt = (
    prefix => '/watch-restart-demo/',
    count  => 0,    # 0: no limit
    run    => 0,    # 0: until Ctrl-C
);
GetOptions(\%opt, 'prefix=s', 'count=i', 'run=f')
    or die "usage: $0 [--prefix PREFIX] [--count N] [--run SECONDS]\n";

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';

my $etcd = EV::Etcd->new(
    endpoints        => [$endpoint],
    max_retries      => -1,     # reopen broken streams forever
    timeout          => 5,
    health_interval  => 0.5,    # only to tell the user what is going on
    on_health_change => sub {
        my ($healthy, $where) = @_;
        print "health: etcd at $where is ", ($healthy ? 'up' : 'down'), "\n";
    },
);

my ($watch, @stoppers);
my $events    = 0;
my $problems  = 0;
my $last_rev  = 0;
my %at_last;    # keys changed at $last_rev (a txn changes several at once)
my $stopping  = 0;
my $exit_code = 0;

# Keys and values are bytes; print them as one word each.
sub esc {
    my ($s) = @_;
    return '""' unless length $s;
    $s =~ s/([^\x21-\x7e]|[%"])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

print "watching $opt{prefix} on $endpoint\n";
$watch = $etcd->watch($opt{prefix}, { prefix => 1 }, sub {
    my ($msg, $err) = @_;
    # With max_retries => -1 connection trouble never gets here; what does
    # is final (for instance the history being compacted away).
    return stop("watch ended: $err->{status}: $err->{message}") if $err;

    if ($msg->{created}) {
        print "watch created at revision $msg->{header}{revision}\n";
    }
    for my $ev (@{ $msg->{events} }) {
        my $kv  = $ev->{kv};
        my $rev = $kv->{mod_revision};
        if ($rev < $last_rev) {
            print "ERROR: revision $rev arrived after revision $last_rev\n";
            $problems++;
        } elsif ($rev == $last_rev && $at_last{ $kv->{key} }++) {
            print "ERROR: the change of $kv->{key} at revision $rev arrived twice\n";
            $problems++;
        } elsif ($rev > $last_rev) {
            ($last_rev, %at_last) = ($rev, $kv->{key} => 1);
        }
        $events++;
        if ($ev->{type} eq 'PUT') {
            print 'event: PUT ', esc($kv->{key}), ' ', esc($kv->{value}), " $rev\n";
        } else {
            print 'event: DELETE ', esc($kv->{key}), " $rev\n";
        }
        return stop() if $opt{count} && $events >= $opt{count};
    }
});

push @stoppers, EV::signal($_, sub { stop() }) for qw(INT TERM);
push @stoppers, EV::timer($opt{run}, 0, sub { stop() }) if $opt{run} > 0;

sub stop {
    my ($problem) = @_;
    if (defined $problem) {
        print STDERR "$problem\n";
        $exit_code = 1;
    }
    return if $stopping++;
    @stoppers = ();
    # Once the watch is cancelled nothing holds the loop: EV::run returns.
    $watch->cancel(sub { }) if $watch;
}

EV::run;

$exit_code = 1 if $problems;
print "done: $events events, last revision $last_rev, ",
    ($problems ? "$problems problems" : 'none out of order or repeated'), "\n";
exit $exit_code;
