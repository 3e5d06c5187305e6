#!/usr/bin/env perl
# A stream task that dies (a panic: a bug, not a network failure) must not
# leave its callbacks silent and EV::run hanging. A test hook makes the
# task behind every watch, every keepalive or every observe panic; each of
# its streams must get exactly one error (INTERNAL, not retryable, under
# the stream's source), the client must let go of the loop, and the next
# stream of that kind must work on a fresh task.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call need_test_hooks);

need_etcd();
use EV;
use EV::Etcd;

need_test_hooks();
$ENV{EV_ETCD_TEST_HOOKS} = 1;    # the hooks also ask for it at run time
my %KIND = (watch => 1, keepalive => 2, observe => 3);

my $srv = start_etcd();
my $etcd = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
my $writer = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
my $p = "/crash/$$";

# Every message and error a stream's callback gets, in order.
sub recorder {
    my ($rec) = @_;
    return sub {
        my ($m, $e) = @_;
        push @{ $rec->{log} }, $e ? [ err => $e ] : [ msg => $m ];
    };
}
sub errors { grep { $_->[0] eq 'err' } @{ $_[0]{log} } }
sub msgs   { grep { $_->[0] eq 'msg' } @{ $_[0]{log} } }

my $elections = 0;
sub start_streams {
    my ($kind, $n) = @_;
    my @recs = map { { log => [] } } 1 .. $n;
    for my $i (0 .. $#recs) {
        my $r = $recs[$i];
        if ($kind eq 'watch') {
            $r->{h} = $etcd->watch("$p/w$i", recorder($r));
        } elsif ($kind eq 'keepalive') {
            my $lease = ok_call($writer, 'lease_grant', 30)->{id};
            $r->{h} = $etcd->lease_keepalive($lease, recorder($r));
        } else {
            my $lease = ok_call($writer, 'lease_grant', 30)->{id};
            my $name = "$p/e" . ++$elections;
            ok_call($writer, 'election_campaign', $name, $lease, "leader$i");
            $r->{h} = $etcd->election_observe($name, recorder($r));
        }
    }
    run_until(sub { !grep { !msgs($_) } @recs }, 10);
    is(scalar(grep { msgs($_) } @recs), $n, "$kind: $n confirmed live");
    return @recs;
}

for my $kind (qw(watch keepalive observe)) {
    my @recs = start_streams($kind, 3);
    ok(!grep({ errors($_) } @recs), "$kind: no error before the crash");

    $etcd->_crash_streams_for_testing($KIND{$kind});

    # EV::run must come back by itself once every stream has ended.
    my $hung = 0;
    my $guard = EV::timer(10, 0, sub { $hung = 1; EV::break(EV::BREAK_ALL) });
    $guard->keepalive(0);    # the guard itself must not hold the loop
    my $t0 = time;
    EV::run;
    my $took = time - $t0;
    undef $guard;
    ok(!$hung, sprintf '%s: EV::run returned on its own (%.2f s)', $kind, $took);

    for my $i (0 .. $#recs) {
        my @err = errors($recs[$i]);
        is(scalar @err, 1, "$kind $i: exactly one error");
        my $e = $err[0][1] // {};
        is($e->{status}, 'INTERNAL', "$kind $i: status INTERNAL");
        is($e->{source}, $kind, "$kind $i: source $kind");
        is($e->{retryable}, 0, "$kind $i: not retryable");
        like($e->{message}, qr/\Q$kind\E stream stopped unexpectedly/, "$kind $i: message says what happened");
        is($recs[$i]{log}[-1][0], 'err', "$kind $i: nothing after the error");
    }

    # Nothing more arrives later either.
    my @counts = map { scalar @{ $_->{log} } } @recs;
    ok_call($writer, 'put', "$p/w$_", 'after') for 0 .. 2;
    run_until(sub { 0 }, 0.5);
    is_deeply([ map { scalar @{ $_->{log} } } @recs ], \@counts, "$kind: silent after its error");

    # The next stream of this kind runs on a fresh task.
    my ($fresh) = start_streams($kind, 1);
    if ($kind eq 'watch') {
        ok_call($writer, 'put', "$p/w0", 'fresh');
        run_until(sub { grep { $_->[0] eq 'msg' && @{ $_->[1]{events} || [] } } @{ $fresh->{log} } }, 10);
        my ($ev) = map { @{ $_->[1]{events} || [] } } grep { $_->[0] eq 'msg' } @{ $fresh->{log} };
        is($ev && $ev->{kv}{value}, 'fresh', 'a new watch after the crash delivers events');
    } elsif ($kind eq 'keepalive') {
        run_until(sub { msgs($fresh) >= 1 }, 10);
        cmp_ok(scalar(msgs($fresh)), '>=', 1, 'a new keepalive after the crash ticks');
    } else {
        ok(scalar(msgs($fresh)), 'a new observe after the crash reports its leader');
    }
    ok(!errors($fresh), "$kind: the new stream has no error");
    my @c = EtcdTest::cancel_sync({ handle => $fresh->{h} });
    is(scalar @c, 1, "$kind: the new stream cancels normally");
}

# A create queued right behind the crash is answered too (an error, or it
# works on the next task): never silence.
{
    my ($old) = start_streams('watch', 1);
    $etcd->_crash_streams_for_testing($KIND{watch});
    my $r = { log => [] };
    $r->{h} = $etcd->watch("$p/behind", recorder($r));
    run_until(sub { @{ $r->{log} } }, 10);
    ok(scalar @{ $r->{log} }, 'a watch created right after the crash is answered');
    run_until(sub { errors($old) }, 10);
    is(scalar(errors($old)), 1, 'the crashed watch got its one error');
}

eval { $etcd->_crash_streams_for_testing(9) };
like($@, qr/unknown stream kind 9/, 'the hook croaks on a bad kind');
{
    local $ENV{EV_ETCD_TEST_HOOKS};
    delete $ENV{EV_ETCD_TEST_HOOKS};
    eval { $etcd->_crash_streams_for_testing(1) };
    like($@, qr/EV_ETCD_TEST_HOOKS/, 'the hook needs EV_ETCD_TEST_HOOKS');
}

done_testing;
