#!/usr/bin/env perl
# EV::Etcd::Mirror across failures: etcd killed (-9) and restarted in the
# middle of the paged load and while the mirror watches; a three-member
# cluster whose leader, the member the mirror is connected to, is killed
# and restarted while writes go on through another member. After each,
# the view must equal a fresh read at its revision.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);
use MirrorTest;

need_etcd();
use EV;
use EV::Etcd;

my $T0 = time;
srand(($ENV{MIRROR_SEED} // time) & 0xffff);

# --- one etcd, killed and restarted ---------------------------------------------------------
{
    my $srv = start_etcd(name => 'mirror-kill');
    my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);
    my $prefix = 'kill/';
    for my $t (0 .. 9) {
        ok_call($c, 'txn', [], [ map { { put => { key => sprintf('%sk%03d/%02d', $prefix, $_ / 10, $_ % 10),
                                                  value => "init$_" } } } $t * 100 .. $t * 100 + 99 ], []);
    }
    my $mc = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 2, max_retries => -1);
    my $rec = mirror_rec($mc, $prefix, { page_size => 3, max_retries => -1 });
    # in the middle of the load (a thousand keys in pages of 3)
    ok run_until(sub { $rec->{m}->count >= 30 }, 10), 'the load is under way';
    ok !$rec->{m}->ready, '... and not done';
    $srv->kill9;
    $srv->restart;
    $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);
    my $last = random_writes($c, $prefix, 60);
    ok run_until(sub { @{ $rec->{readies} } || @{ $rec->{errs} } }, 40), 'the load resumes and completes';
    check_view($rec, $c, 'load across a restart', until => $last, wait => 30);

    for my $round (1 .. 2) {
        $last = random_writes($c, $prefix, 60);
        check_view($rec, $c, "before kill $round", until => $last);
        $srv->kill9;
        $srv->restart;
        # written before the mirror's watch is back: it catches up on them
        $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);
        $last = random_writes($c, $prefix, 80);
        check_view($rec, $c, "after restart $round", until => $last, wait => 30);
    }
    my $done;
    $rec->{m}->cancel(sub { $done = 1 });
    run_until(\$done, 5);
    $srv->stop;
}

# --- a cluster that loses its leader ----------------------------------------------------------
{
    my @m = start_cluster(3, name_prefix => 'mirror');
    my $leader_id = ok_call(EV::Etcd->new(endpoints => [ $m[0]->endpoint ]), 'status')->{leader};
    my ($leader) = grep {
        ok_call(EV::Etcd->new(endpoints => [ $_->endpoint ]), 'status')->{header}{member_id} eq $leader_id
    } @m;
    ok $leader, 'found the leader';
    my @others = grep { $_ != $leader } @m;
    my $prefix = 'cl/';
    # the mirror talks to the leader first; the writer never does
    my $mc = EV::Etcd->new(endpoints => [ map { $_->endpoint } $leader, @others ], timeout => 2, max_retries => -1);
    my $w  = EV::Etcd->new(endpoints => [ map { $_->endpoint } @others ], timeout => 3);
    my $last = random_writes($w, $prefix, 100);
    my $rec = mirror_rec($mc, $prefix, { page_size => 11, max_retries => -1 });
    ok run_until(sub { @{ $rec->{readies} } || @{ $rec->{errs} } }, 10), 'cluster: ready';
    check_view($rec, $w, 'cluster, before', until => $last);

    $leader->kill9;
    $last = random_writes($w, $prefix, 60, retry => 1);
    check_view($rec, $w, 'cluster, leader down', until => $last, wait => 30);
    $leader->restart;
    $last = random_writes($w, $prefix, 60, retry => 1);
    check_view($rec, $w, 'cluster, old leader back', until => $last, wait => 30);
    # and the member the mirror first used answers for itself again
    my $direct = EV::Etcd->new(endpoints => [ $leader->endpoint ], timeout => 5);
    check_view($rec, $direct, 'cluster, read from the restarted member');
    my $done;
    $rec->{m}->cancel(sub { $done = 1 });
    run_until(\$done, 5);
    $_->stop for @m;
}

note sprintf 'took %.1f s', time - $T0;
done_testing;
