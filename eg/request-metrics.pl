#!/usr/bin/env perl
# Prometheus-style request metrics from the on_request hook.
#
# Every unary call the client makes is counted by method and status, and its
# duration goes into a histogram. The program runs a small workload (puts,
# gets, a txn and a get of a missing lease, which fails), then prints the
# metrics in Prometheus' text exposition format. A real daemon would serve
# the same text on /metrics instead.
#
# Usage:
#   perl -Mblib eg/request-metrics.pl [--calls N]
#
# The etcd endpoint comes from $EV_ETCD_ENDPOINT (default 127.0.0.1:2379).
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);

my %opt = (calls => 50);
GetOptions(\%opt, 'calls=i') or die "usage: $0 [--calls N]\n";

my @buckets = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1);    # seconds
my (%requests, %hist, %sum, %count, %retries);

sub observe {
    my ($info) = @_;
    my ($m, $s) = @$info{qw(method status)};
    $requests{$m}{$s}++;
    $retries{$m} += $info->{retries};
    $sum{$m} += $info->{duration};
    $count{$m}++;
    for my $le (@buckets) {
        $hist{$m}{$le}++ if $info->{duration} <= $le;
    }
}

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';
my $etcd = EV::Etcd->new(endpoints => [$endpoint], on_request => \&observe);

# The workload: N puts, then N gets of what was written, all in flight at
# once; then a txn and a call that fails.
my $left = 0;
my $done = sub { EV::break if --$left == 0 };
for my $i (1 .. $opt{calls}) {
    $left++;
    $etcd->put("/metrics-demo/$i", "value $i", sub {
        my (undef, $err) = @_;
        die "put: $err->{message}\n" if $err;
        $etcd->get("/metrics-demo/$i", sub { $done->() });
    });
}
EV::run;

$left = 2;
$etcd->txn(
    compare => [ { key => '/metrics-demo/1', target => 'VALUE', result => 'EQUAL', value => 'value 1' } ],
    success => [ { request_delete_range => { key => '/metrics-demo/', prefix => 1 } } ],
    failure => [],
    callback => $done,
);
$etcd->lease_time_to_live(1, $done);    # no such lease: NOT_FOUND
EV::run;

print "# HELP etcd_client_requests_total Unary etcd calls by method and status.\n";
print "# TYPE etcd_client_requests_total counter\n";
for my $m (sort keys %requests) {
    for my $s (sort keys %{ $requests{$m} }) {
        print qq{etcd_client_requests_total{method="$m",status="$s"} $requests{$m}{$s}\n};
    }
}
print "# HELP etcd_client_request_retries_total Calls repeated by the client.\n";
print "# TYPE etcd_client_request_retries_total counter\n";
print qq{etcd_client_request_retries_total{method="$_"} $retries{$_}\n} for sort keys %retries;
print "# HELP etcd_client_request_duration_seconds Time from call to answer.\n";
print "# TYPE etcd_client_request_duration_seconds histogram\n";
for my $m (sort keys %count) {
    for my $le (@buckets) {
        printf qq{etcd_client_request_duration_seconds_bucket{method="%s",le="%s"} %d\n},
            $m, $le, $hist{$m}{$le} // 0;
    }
    printf qq{etcd_client_request_duration_seconds_bucket{method="%s",le="+Inf"} %d\n}, $m, $count{$m};
    printf qq{etcd_client_request_duration_seconds_sum{method="%s"} %.6f\n}, $m, $sum{$m};
    printf qq{etcd_client_request_duration_seconds_count{method="%s"} %d\n}, $m, $count{$m};
}
