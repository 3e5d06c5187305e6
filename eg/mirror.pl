#!/usr/bin/env perl
# A live view of a configuration prefix, with EV::Etcd::Mirror.
#
# The mirror reads every key under the prefix (in pages, all at one
# revision), then follows the changes. After the first read and after
# every revision that changed something, the program prints the whole
# view and the revision it shows; each change is printed as well. If
# etcd compacted the history while the connection was down, the mirror
# reads the prefix again and the program prints the difference as one
# "resync" step.
#
# Output (names are the keys without the prefix; names and values are
# %-escaped so that each is one word):
#     ready: 2 keys at revision 12
#     view (revision 12): log_level=debug workers=4
#     change: PUT workers=8 (was 4) at revision 13
#     view (revision 13): log_level=debug workers=8
#
# Usage:
#   perl -Mblib eg/mirror.pl [--prefix PREFIX] [--page-size N] [--sentinel NAME] [--run SECONDS]
#
# --sentinel NAME: stop when the key PREFIX/NAME is put (it is part of the
# view like any other key). --run: stop after that many seconds (0, the
# default: until Ctrl-C). The etcd endpoint comes from $EV_ETCD_ENDPOINT
# (default 127.0.0.1:2379).
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);

$| = 1;

my %opt = (prefix => '/config/myapp/', 'page-size' => 1000, sentinel => undef, run => 0);
GetOptions(\%opt, 'prefix=s', 'page-size=i', 'sentinel=s', 'run=f')
    or die "usage: $0 [--prefix PREFIX] [--page-size N] [--sentinel NAME] [--run SECONDS]\n";

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';
my $prefix   = $opt{prefix};
my $etcd     = EV::Etcd->new(endpoints => [$endpoint], timeout => 5);
my $exit_code = 0;
my ($mirror, @stoppers);

sub esc {
    my ($s) = @_;
    return '""' unless defined $s && length $s;
    $s =~ s/([^\x21-\x7e]|[%="])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub name_of { substr $_[0], length $prefix }

sub show_view {
    print "view (revision ", $mirror->revision, "):",
        (map { ' ' . esc(name_of($_)) . '=' . esc($mirror->get($_)) } $mirror->keys), "\n";
}

sub stop {
    my ($problem) = @_;
    if (defined $problem) {
        print STDERR "ERROR: $problem\n";
        $exit_code = 1;
    }
    @stoppers = ();
    # Nothing else holds the loop: once the mirror is cancelled, EV::run returns.
    $mirror->cancel(sub { }) if $mirror;
}

$mirror = $etcd->mirror($prefix, { page_size => $opt{'page-size'} }, sub {
    my ($msg, $err) = @_;
    return stop("mirror failed: $err->{status}: $err->{message}") if $err;
    if ($msg->{ready}) {
        print "ready: $msg->{count} keys at revision $msg->{revision}\n";
        return show_view();
    }
    print "resync at revision $msg->{revision}: ", scalar @{ $msg->{changes} }, " changes\n"
        if $msg->{resync};
    my $stop;
    for my $c (@{ $msg->{changes} }) {
        my $name = esc(name_of($c->{key}));
        if ($c->{type} eq 'PUT') {
            printf "change: PUT %s=%s (was %s) at revision %d\n", $name, esc($c->{value}),
                defined $c->{prev_value} ? esc($c->{prev_value}) : 'absent', $c->{revision};
            $stop = 1 if defined $opt{sentinel} && $c->{key} eq $prefix . $opt{sentinel};
        } else {
            printf "change: DELETE %s at revision %d\n", $name, $c->{revision};
        }
    }
    show_view();
    if ($stop) {
        print "sentinel put at revision $msg->{revision}: stopping\n";
        stop();
    }
});

for my $sig (qw(INT TERM)) {
    push @stoppers, EV::signal($sig, sub { print "got SIG$sig: stopping\n"; stop() });
}
push @stoppers, EV::timer($opt{run}, 0, sub { print "$opt{run} s are up: stopping\n"; stop() })
    if $opt{run} > 0;

print "mirroring $prefix on $endpoint\n";
EV::run;
exit $exit_code;
