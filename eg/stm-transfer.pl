#!/usr/bin/env perl
# Random transfers between accounts with $etcd->stm: each transfer reads
# two balances and writes both, and commits only if neither changed since
# it read them; otherwise it runs again on the new balances. However many
# instances run at once, no money is made or lost.
#
# The accounts are created by the first instance to get there: an stm call
# that writes those that do not exist yet (an absent key takes part in the
# compare too, so two instances cannot both create one).
#
# Output:
#     transfer <id>-<n> <from>-><to> <amount> revision=<r> attempts=<a>
#     skip <id>-<n> <from>-><to> <amount>: balance <b>
#     done: <id> transfers=<t> skipped=<s> attempts=<a> conflicts=<c> unknown=<u>
#
# Usage:
#   perl -Mblib eg/stm-transfer.pl [--prefix /bank/] [--accounts N]
#        [--transfers N] [--id TEXT]
#
#   for i in 1 2 3; do perl -Mblib eg/stm-transfer.pl --id t$i & done; wait
#
# The etcd endpoint comes from $EV_ETCD_ENDPOINT (default 127.0.0.1:2379).
use strict;
use warnings;
use EV;
use EV::Etcd;
use Getopt::Long qw(GetOptions);

$| = 1;

my %opt = (prefix => '/demo-bank/', accounts => 5, transfers => 20, id => "pid$$");
GetOptions(\%opt, 'prefix=s', 'accounts=i', 'transfers=i', 'id=s')
    or die "usage: $0 [--prefix P] [--accounts N] [--transfers N] [--id TEXT]\n";
die "--accounts must be 2 or more\n" if $opt{accounts} < 2;

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';
my $etcd     = EV::Etcd->new(endpoints => [$endpoint]);
my @account  = map { "$opt{prefix}$_" } 0 .. $opt{accounts} - 1;
my %n = map { $_ => 0 } qw(transfers skipped attempts conflicts unknown);
my $exit_code = 0;

# The function passed to stm may run several times: it only reads and
# writes through $tx, and everything random is chosen before the call.
sub transfer {
    my ($seq) = @_;
    return finish() if $seq > $opt{transfers};
    my $from   = int rand @account;
    my $to     = ($from + 1 + int rand(@account - 1)) % @account;
    my $amount = 1 + int rand 40;
    my $label  = "$opt{id}-$seq $from->$to $amount";
    $etcd->stm(sub {
        my ($tx) = @_;
        my $balance = $tx->get($account[$from]);
        return $balance if $balance < $amount;
        $tx->put($account[$from], $balance - $amount);
        $tx->put($account[$to], $tx->get($account[$to]) + $amount);
        return;
    }, { prefetch => [ @account[ $from, $to ] ], max_attempts => 30 }, sub {
        my ($resp, $err) = @_;
        if ($err) {
            $n{attempts}  += $err->{attempts} // 0;
            $n{conflicts} += $err->{conflicts} // 0;
            # A commit that failed on the way may have been applied:
            # repeating the transfer could make it twice. Count it, go on.
            if (($err->{outcome} // '') eq 'unknown') {
                $n{unknown}++;
                print "unknown $label: $err->{message}\n";
                return transfer($seq + 1);
            }
            return fail("transfer $label: $err->{status}: $err->{message}");
        }
        $n{attempts}  += $resp->{attempts};
        $n{conflicts} += $resp->{conflicts};
        if (defined $resp->{result}) {
            $n{skipped}++;
            print "skip $label: balance $resp->{result}\n";
        } else {
            $n{transfers}++;
            print "transfer $label revision=$resp->{revision} attempts=$resp->{attempts}\n";
        }
        transfer($seq + 1);
    });
}

# Opening balances of 100, for the accounts that do not exist yet.
$etcd->stm(sub {
    my ($tx) = @_;
    for my $key (@account) {
        $tx->put($key, 100) unless defined $tx->get($key);
    }
    return;
}, { prefetch => \@account, max_attempts => 30 }, sub {
    my (undef, $err) = @_;
    return fail("creating the accounts: $err->{message}") if $err;
    transfer(1);
});

sub finish {
    print "done: $opt{id} ", join(' ', map { "$_=$n{$_}" } qw(transfers skipped attempts conflicts unknown)), "\n";
}

sub fail {
    print STDERR "ERROR: $opt{id}: $_[0]\n";
    $exit_code = 1;
    finish();
}

EV::run;
exit $exit_code;
