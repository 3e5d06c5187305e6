#!/usr/bin/env perl
# Configuration that follows etcd.
#
# The settings of an application live under one prefix, one key each
# (/config/myapp/workers = 4, /config/myapp/log_level = debug, ...). The
# program reads them all with one get, then watches the prefix starting at
# the revision right after that read, so a change made in between is not
# missed and nothing is applied twice. Every change is applied to an
# in-memory %config hash, and the whole configuration is printed after
# each revision (a transaction that changes several keys is one revision,
# and is applied as one step).
#
# If the watch ends with an error (the history it needs was compacted, or
# etcd stayed unreachable longer than the client's reconnect attempts),
# the program starts over: a fresh read, then a watch from after it.
#
# Output (names are the keys without the prefix; names and values are
# %-escaped so that each is one word, see esc()):
#     config (revision 12): log_level=debug workers=4
#     change: PUT workers=8 (revision 13)
#     change: DELETE log_level (revision 14)
#
# Usage:
#   perl -Mblib eg/config-watch.pl [--prefix PREFIX] [--sentinel NAME] [--run SECONDS]
#
# Try it with etcdctl:  etcdctl put /config/myapp/workers 8
# --sentinel NAME: stop when the key PREFIX/NAME is put (it is not a
# setting). --run: stop after that many seconds (0, the default: until
# Ctrl-C). The etcd endpoint comes from $EV_ETCD_ENDPOINT (default
# 127.0.0.1:2379).
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);

$| = 1;

my %opt = (
    prefix   => '/config/myapp/',
    sentinel => undef,
    run      => 0,    # 0: until Ctrl-C
);
GetOptions(\%opt, 'prefix=s', 'sentinel=s', 'run=f')
    or die "usage: $0 [--prefix PREFIX] [--sentinel NAME] [--run SECONDS]\n";

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';
my $prefix   = $opt{prefix};
my $sentinel = defined $opt{sentinel} ? $prefix . $opt{sentinel} : undef;

my $etcd = EV::Etcd->new(endpoints => [$endpoint], timeout => 5);

my %config;    # name (key without the prefix) => value
my ($watch, $retry_timer, @stoppers);
my $stopping  = 0;
my $exit_code = 0;

sub esc {
    my ($s) = @_;
    return '""' unless length $s;
    $s =~ s/([^\x21-\x7e]|[%="])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub name_of { substr $_[0], length $prefix }

sub show_config {
    my ($rev) = @_;
    print "config (revision $rev):",
        (map { ' ' . esc($_) . '=' . esc($config{$_}) } sort keys %config), "\n";
}

# Read everything, then follow the changes from the next revision on.
sub load {
    return if $stopping;
    $etcd->get($prefix, { prefix => 1 }, sub {
        my ($resp, $err) = @_;
        return if $stopping;
        if ($err) {
            return stop("reading $prefix failed: $err->{status}: $err->{message}")
                unless $err->{retryable};
            print "reading $prefix failed ($err->{message}); trying again in 2 s\n";
            $retry_timer = EV::timer(2, 0, \&load);
            return;
        }
        %config = ();
        for my $kv (@{ $resp->{kvs} }) {
            next if defined $sentinel && $kv->{key} eq $sentinel;
            $config{ name_of($kv->{key}) } = $kv->{value};
        }
        my $rev = $resp->{header}{revision};
        print "loaded ", scalar(keys %config), " settings at revision $rev\n";
        show_config($rev);
        follow($rev + 1);
    });
}

sub follow {
    my ($from) = @_;
    $watch = $etcd->watch($prefix, { prefix => 1, start_revision => $from }, sub {
        my ($msg, $err) = @_;
        return on_watch_error($err) if $err;
        print "watching $prefix from revision $from\n" if $msg->{created};

        # One message may hold several revisions: apply them one at a time.
        my @events = @{ $msg->{events} };
        while (@events) {
            my $rev = $events[0]{kv}{mod_revision};
            my ($changed, $stop) = (0, 0);
            while (@events && $events[0]{kv}{mod_revision} == $rev) {
                my $ev = shift @events;
                my $key = $ev->{kv}{key};
                if (defined $sentinel && $key eq $sentinel) {
                    $stop = 1 if $ev->{type} eq 'PUT';
                    next;
                }
                my $name = name_of($key);
                if ($ev->{type} eq 'PUT') {
                    $config{$name} = $ev->{kv}{value};
                    print 'change: PUT ', esc($name), '=', esc($ev->{kv}{value}), " (revision $rev)\n";
                } else {
                    delete $config{$name};
                    print 'change: DELETE ', esc($name), " (revision $rev)\n";
                }
                $changed = 1;
            }
            show_config($rev) if $changed;
            if ($stop) {
                print "sentinel $sentinel put at revision $rev: stopping\n";
                return stop();
            }
        }
    });
}

sub on_watch_error {
    my ($err) = @_;
    undef $watch;
    return if $stopping;
    if ($err->{status} eq 'OUT_OF_RANGE' || $err->{retryable}) {
        # Compacted history, or etcd gone for longer than the reconnects
        # lasted: the events in between are not to be had, so read again.
        print "watch ended ($err->{status}: $err->{message}); reloading\n";
        return load();
    }
    stop("watch failed: $err->{status}: $err->{message}");
}

for my $sig (qw(INT TERM)) {
    push @stoppers, EV::signal($sig, sub { print "got SIG$sig: stopping\n"; stop() });
}
push @stoppers, EV::timer($opt{run}, 0, sub { print "$opt{run} s are up: stopping\n"; stop() }) if $opt{run} > 0;

sub stop {
    my ($problem) = @_;
    if (defined $problem) {
        print STDERR "ERROR: $problem\n";
        $exit_code = 1;
    }
    return if $stopping++;
    @stoppers = ();
    undef $retry_timer;
    # With the watch cancelled nothing holds the loop any more. A get that
    # may still be in flight ends the loop when it has been answered.
    $watch->cancel(sub { }) if $watch;
}

print "following $prefix on $endpoint\n";
load();
EV::run;
exit $exit_code;
