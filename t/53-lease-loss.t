#!/usr/bin/env perl
# lease_keepalive_once, and local loss detection on lease_keepalive: a
# keepalive that hears nothing for its lease's TTL reports DEADLINE_EXCEEDED
# once and carries on; the ticks resume when the lease turned out to live
# (kept alive meanwhile by another client), and a lease that did expire
# ends with NOT_FOUND.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);
use TcpProxy;

need_etcd();
use EV;
use EV::Etcd;

sub pause { run_until(sub { 0 }, $_[0]) }

my $srv = start_etcd(name => 'loss');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);

# --- lease_keepalive_once ------------------------------------------------------
{
    my $lease = ok_call($c, 'lease_grant', 30)->{id};
    pause(1.2);
    my ($r, $e) = call($c, 'lease_keepalive_once', $lease);
    ok !$e, 'lease_keepalive_once succeeds' or diag explain $e;
    is_deeply [ sort keys %$r ], [qw(header id ttl)], '... with header, id and ttl';
    is $r->{id}, $lease, '... for that lease';
    is $r->{ttl}, 30, '... refreshed to the full TTL';
    ok $r->{header}{revision}, '... and a header with a revision';
    my $left = ok_call($c, 'lease_time_to_live', $lease)->{ttl};
    cmp_ok $left, '>=', 29, "the lease has its full TTL again ($left s left)";

    ok_call($c, 'lease_revoke', $lease);
    ($r, $e) = call($c, 'lease_keepalive_once', $lease);
    ok !defined $r, 'a revoked lease: no response';
    is $e->{status}, 'NOT_FOUND', '... NOT_FOUND';
    is $e->{code}, 5, '... code 5';
    is $e->{message}, 'etcdserver: requested lease not found', '... the server message';
    is $e->{source}, 'lease_keepalive_once', '... source lease_keepalive_once';
    is $e->{retryable}, 0, '... not retryable';

    ($r, $e) = call($c, 'lease_keepalive_once', 4242424242);
    is $e && $e->{status}, 'NOT_FOUND', 'a lease that never existed: NOT_FOUND';

    my $line;
    eval { $line = __LINE__; $c->lease_keepalive_once(-1, sub {}) };
    like $@, qr/^lease_keepalive_once: lease id must not be negative, got '-1' at \Q$0\E line $line\.$/m,
        'a negative id croaks at the caller';
    eval { $line = __LINE__; $c->lease_keepalive_once('abc', sub {}) };
    like $@, qr/^lease_keepalive_once: lease id must be .*'abc' at \Q$0\E line $line\.$/m,
        'a non-number croaks at the caller';
    eval { $line = __LINE__; $c->lease_keepalive_once(5) };
    like $@, qr/^callback must be a code reference \(lease_keepalive_once\) at \Q$0\E line $line\.$/m,
        'a missing callback croaks at the caller';
}

# Runs a keepalive, recording every tick and error with its time.
sub keep {
    my ($client, $lease) = @_;
    my $rec = { ticks => [], errs => [], t0 => time };
    $rec->{ka} = $client->lease_keepalive($lease, sub {
        my ($r, $e) = @_;
        if ($e) { push @{ $rec->{errs} }, { %$e, at => time } }
        else    { push @{ $rec->{ticks} }, { %$r, at => time } }
    });
    return $rec;
}

# --- a frozen server: loss reported once, then NOT_FOUND after it thaws --------
{
    my $ttl   = 3;
    my $lease = ok_call($c, 'lease_grant', $ttl)->{id};
    my $rec   = keep($c, $lease);
    ok run_until(sub { @{ $rec->{ticks} } >= 2 }, 10), 'keepalive ticks';

    my $last_tick = $rec->{ticks}[-1]{at};
    kill 'STOP', $srv->pid;
    my $stopped = time;
    ok run_until(sub { @{ $rec->{errs} } }, $ttl + 5), 'a frozen server: the keepalive reports trouble';
    my $e = $rec->{errs}[0] || {};
    is $e->{status}, 'DEADLINE_EXCEEDED', '... DEADLINE_EXCEEDED';
    is $e->{source}, 'keepalive', '... source keepalive';
    like $e->{message}, qr/^no keepalive reply for lease $lease within its TTL of ${ttl}s/,
        '... saying no reply came within the TTL';
    is $e->{retryable}, 1, '... retryable';
    my $after = $e->{at} - $last_tick;
    cmp_ok $after, '>=', $ttl - 0.3, sprintf '... not before the TTL ran out (%.1fs after the last tick)', $after;
    cmp_ok $after, '<', $ttl + 1.5, '... nor long after';

    pause(2);    # frozen for longer still: no second report
    is scalar @{ $rec->{errs} }, 1, 'the loss is reported once';
    kill 'CONT', $srv->pid;
    diag sprintf 'server frozen for %.1fs', time - $stopped;

    ok run_until(sub { @{ $rec->{errs} } >= 2 }, 15), 'after the thaw the keepalive ends';
    is $rec->{errs}[1]{status}, 'NOT_FOUND', '... with NOT_FOUND: the lease expired meanwhile';
    is scalar @{ $rec->{ticks} }, 2, '... and no tick came after the loss';
    my ($r) = call($c, 'lease_time_to_live', $lease);
    is $r->{ttl}, -1, 'the server agrees: the lease is gone';
}

# --- a cut connection while another client keeps the lease: ticks resume -------
{
    my $ttl    = 3;
    my $proxy  = TcpProxy->new(upstream => $srv->client_port);
    my $far    = EV::Etcd->new(endpoints => [ $proxy->endpoint ], timeout => 5, max_retries => -1);
    my $lease  = ok_call($c, 'lease_grant', $ttl)->{id};
    my $keeper = keep($c, $lease);       # direct: the lease lives on
    my $rec    = keep($far, $lease);     # through the proxy
    ok run_until(sub { @{ $rec->{ticks} } >= 2 }, 10), 'keepalive through the proxy ticks';

    $proxy->freeze;
    my $frozen = time;
    ok run_until(sub { @{ $rec->{errs} } }, $ttl + 5), 'the proxy froze: the loss is reported';
    is $rec->{errs}[0]{status}, 'DEADLINE_EXCEEDED', '... DEADLINE_EXCEEDED';
    my $ticks_before = @{ $rec->{ticks} };
    pause(1);
    $proxy->thaw;
    diag sprintf 'proxy frozen for %.1fs', time - $frozen;

    ok run_until(sub { @{ $rec->{ticks} } > $ticks_before }, 20), 'ticks resume once the path is back';
    my $tick = $rec->{ticks}[-1];
    is $tick->{id}, $lease, '... for the same lease';
    cmp_ok $tick->{ttl}, '>', 0, '... which is alive';
    is scalar @{ $rec->{errs} }, 1, 'no other error';
    is scalar @{ $keeper->{errs} }, 0, 'the direct keepalive never had trouble';

    # A second loss is reported again: the clock restarted with the ticks.
    $proxy->freeze;
    ok run_until(sub { @{ $rec->{errs} } >= 2 }, $ttl + 5), 'a second freeze: reported again';
    is $rec->{errs}[1]{status}, 'DEADLINE_EXCEEDED', '... DEADLINE_EXCEEDED';
    $proxy->thaw;

    my @cancelled;
    $rec->{ka}->cancel(sub { push @cancelled, 1 });
    $keeper->{ka}->cancel(sub { push @cancelled, 1 });
    ok run_until(sub { @cancelled == 2 }, 10), 'both keepalives cancel';
    my $n = @{ $rec->{errs} };
    pause($ttl + 1);
    is scalar @{ $rec->{errs} }, $n, 'a cancelled keepalive reports no loss';
    $proxy->stop;
}

done_testing;
