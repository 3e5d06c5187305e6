#!/usr/bin/env perl
# downgrade (Maintenance.Downgrade): argument checks croak at the caller's
# line; on etcd 3.5 validate answers with the cluster version, a wrong
# target and a cancel without a job are refused with their statuses, and
# enable then cancel really start and stop a downgrade (etcd 3.5 applies
# both without answering them, so their effect is read back with validate
# and cancel); on etcd 3.4 every action is UNIMPLEMENTED.
use strict;
use warnings;

use Test::More;

use lib 't/lib';
use EtcdTest qw(:DEFAULT call etcd_version_ge);

use EV;
use EV::Etcd;

# --- croaks: no server needed ----------------------------------------------
{
    my $c = EV::Etcd->new(endpoints => [ '127.0.0.1:1' ]);
    my @bad = (
        [ [ 'upgrade', '3.4', sub {} ], qr/^downgrade: unknown action 'upgrade' \(expected validate, enable or cancel\)/ ],
        [ [ 'validate', sub {} ],       qr/^downgrade: validate needs the target version \(such as '3\.4'\)/ ],
        [ [ 'enable', '', sub {} ],     qr/^downgrade: enable needs the target version/ ],
        [ [ 'cancel', undef, { lease => 1 }, sub {} ], qr/^downgrade: unknown option 'lease'/ ],
        [ [ 'validate', '3.4' ],        qr/^callback must be a code reference \(downgrade\)/ ],
        [ [],                           qr/^downgrade: action is missing/ ],
    );
    for my $b (@bad) {
        my ($args, $re) = @$b;
        my $line = __LINE__ + 1;
        eval { $c->downgrade(@$args) };
        like $@, qr/$re.* at \Q$0\E line $line\.$/s, "croaks: @{[ map { ref $_ ? ref $_ : $_ // 'undef' } @$args ]}";
    }
}

need_etcd();
my $srv = start_etcd();
my $c   = EV::Etcd->new(endpoints => [ $srv->endpoint ]);

if (!etcd_version_ge('3.5', $srv->bin)) {
    for my $a ([ validate => '3.3' ], [ enable => '3.3' ], [ 'cancel' ]) {
        my ($r, $e) = call($c, 'downgrade', @$a);
        is $e && $e->{status}, 'UNIMPLEMENTED', "3.4: $a->[0] is UNIMPLEMENTED";
        is $e && $e->{source}, 'downgrade', '... source downgrade';
        is $e && $e->{retryable}, 0, '... not retryable';
    }
    done_testing;
    exit;
}

my ($major, $minor) = $srv->version =~ /^(\d+)\.(\d+)/;
my $below = "$major." . ($minor - 1);

my ($r, $e) = call($c, 'downgrade', validate => $below);
ok !$e, "validate $below succeeds" or diag explain $e;
like $r->{version} // '', qr/^\Q$major.$minor\E\.\d+$/, "... and reports the cluster version ($r->{version})";
ok $r->{header}{revision}, '... with a header';

($r, $e) = call($c, 'downgrade', validate => "$major.$minor");
is $e && $e->{status}, 'INVALID_ARGUMENT', 'validate of the current version: INVALID_ARGUMENT';
like $e && $e->{message}, qr/invalid downgrade target version/, '... saying why';

($r, $e) = call($c, 'downgrade', VALIDATE => 'banana');
is $e && $e->{status}, 'INVALID_ARGUMENT', 'a version that is not one: INVALID_ARGUMENT (action in any case)';

($r, $e) = call($c, 'downgrade', 'cancel');
is $e && $e->{status}, 'FAILED_PRECONDITION', 'cancel with no downgrade: FAILED_PRECONDITION';
like $e && $e->{message}, qr/no inflight downgrade job/, '... saying why';

# etcd 3.5 applies enable and cancel but leaves them unanswered: our
# deadline (or the server's request timeout) ends the call; the state is
# read back.
my %unanswered = map { $_ => 1 } qw(DEADLINE_EXCEEDED UNAVAILABLE);
($r, $e) = call($c, 'downgrade', enable => $below, { timeout => 2 });
ok !$e || $unanswered{ $e->{status} }, "enable $below: answered, or left unanswered"
    or diag explain $e;
($r, $e) = call($c, 'downgrade', validate => $below);
is $e && $e->{status}, 'FAILED_PRECONDITION', '... and a downgrade is in progress';
like $e && $e->{message}, qr/downgrade job in progress/, '... as validate says';

($r, $e) = call($c, 'downgrade', cancel => undef, { timeout => 2 });
ok !$e || $unanswered{ $e->{status} }, 'cancel: answered, or left unanswered' or diag explain $e;
($r, $e) = call($c, 'downgrade', validate => $below);
ok !$e, '... and no downgrade is in progress any more' or diag explain $e;

done_testing;
