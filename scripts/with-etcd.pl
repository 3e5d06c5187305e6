#!/usr/bin/env perl
# Usage: perl scripts/with-etcd.pl [--cluster] -- COMMAND ARGS...
# Starts a throwaway etcd (or, with --cluster, a three-member cluster) on
# free loopback ports, runs COMMAND with EV_ETCD_ENDPOINT (first member) and
# EV_ETCD_ENDPOINTS (all members, comma separated) set, stops etcd again and
# exits with COMMAND's status.  The etcd binary comes from $ETCD_BIN or PATH.
use strict;
use warnings;
use FindBin ();
use lib "$FindBin::Bin/../t/lib";
use EtcdTest qw(etcd_bin start_etcd start_cluster);

my $cluster = 0;
while (@ARGV && $ARGV[0] =~ /^--/) {
    my $o = shift @ARGV;
    last if $o eq '--';
    if ($o eq '--cluster') { $cluster = 1; next }
    die "with-etcd: unknown option $o\n";
}
die "usage: $0 [--cluster] -- COMMAND ARGS...\n" unless @ARGV;
defined etcd_bin() or die "with-etcd: no etcd binary (set ETCD_BIN)\n";

my @servers = $cluster ? start_cluster(3) : (start_etcd(name => 'demo'));
$ENV{EV_ETCD_ENDPOINT}  = $servers[0]->endpoint;
$ENV{EV_ETCD_ENDPOINTS} = join ',', map { $_->endpoint } @servers;
printf STDERR "with-etcd: etcd %s on %s\n",
    $servers[0]->version // '?', $ENV{EV_ETCD_ENDPOINTS};

my $rc = system { $ARGV[0] } @ARGV;
my $exit = $rc == -1 ? do { warn "with-etcd: cannot run $ARGV[0]: $!\n"; 127 }
         : $? & 127  ? 128 + ($? & 127)
         :             $? >> 8;
$_->stop for @servers;
exit $exit;
