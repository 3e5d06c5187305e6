#!/usr/bin/env perl
# watch_probe_interval: an idle watch stream is probed with progress
# requests that no callback sees; when a probe goes unanswered for the
# client's timeout (here a TCP proxy that silently stops forwarding, with
# HTTP/2 pings switched off so only the probe can notice), the watches are
# re-created on a new connection from the revision after the last one
# delivered: nothing lost, nothing repeated.
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

my $srv = start_etcd(name => 'probe');
my $writer = EV::Etcd->new(endpoints => [ $srv->endpoint ]);

sub watch_rec {
    my ($client, $key, $opt) = @_;
    my $rec = { msgs => [], errs => [] };
    $rec->{w} = $client->watch($key, $opt // {}, sub {
        my ($m, $e) = @_;
        if ($e) { push @{ $rec->{errs} }, $e } else { push @{ $rec->{msgs} }, $m }
    });
    run_until(sub { @{ $rec->{msgs} } || @{ $rec->{errs} } }, 10);
    return $rec;
}
sub values_of { [ map { map { $_->{kv}{value} } @{ $_->{events} } } @{ $_[0]{msgs} } ] }

my %probing = (keepalive_time => 0, watch_probe_interval => 0.5, timeout => 2, max_retries => -1);

# --- a healthy idle stream: probes are invisible ---------------------------------
{
    my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], %probing);
    my $rec = watch_rec($c, 'probe/idle');
    ok $rec->{msgs}[0]{created}, 'watch created';
    pause(3);    # about five probes
    is scalar @{ $rec->{msgs} }, 1, 'an idle probed watch gets no extra messages';
    ok_call($writer, 'put', 'probe/idle', 'v1');
    ok run_until(sub { @{ values_of($rec) } }, 5), 'and still delivers';
    is_deeply values_of($rec), ['v1'], '... the put';
    is scalar @{ $rec->{errs} }, 0, 'no errors';
}

# --- a frozen path: the watches move to the next endpoint --------------------------
{
    my $proxy = TcpProxy->new(upstream => $srv->client_port);
    my $c = EV::Etcd->new(endpoints => [ $proxy->endpoint, $srv->endpoint ], %probing);
    my $rec   = watch_rec($c, 'probe/a');
    my $range = watch_rec($c, 'probe/r/', { prefix => 1 });
    my $once  = watch_rec($c, 'probe/once', { auto_reconnect => 0 });
    ok $rec->{msgs}[0]{created} && $range->{msgs}[0]{created} && $once->{msgs}[0]{created},
        'three watches created through the proxy';
    ok_call($writer, 'put', 'probe/a', 'before');
    ok run_until(sub { @{ values_of($rec) } }, 5), 'an event through the proxy';

    $proxy->freeze;
    my $t0 = time;
    ok_call($writer, 'put', 'probe/a', "during$_") for 1 .. 3;
    ok_call($writer, 'put', "probe/r/$_", "r$_") for 1 .. 2;
    ok run_until(sub { @{ values_of($rec) } >= 4 && @{ values_of($range) } >= 2 }, 15),
        'the events written while the path was frozen arrive';
    my $took = time - $t0;
    cmp_ok $took, '<', 10, sprintf 'within seconds (%.1fs: probe after 0.5s, no answer for 2s, reconnect)', $took;
    is_deeply values_of($rec), [qw(before during1 during2 during3)], 'each exactly once, in order';
    is_deeply values_of($range), [qw(r1 r2)], 'the prefix watch too';
    is scalar @{ $rec->{errs} } + @{ $range->{errs} }, 0, 'the reconnecting watches saw no error';
    ok run_until(sub { @{ $once->{errs} } }, 5), 'the watch without auto_reconnect ended';
    my $e = $once->{errs}[0] || {};
    is $e->{status}, 'UNAVAILABLE', '... with UNAVAILABLE';
    is $e->{source}, 'watch', '... source watch';
    like $e->{message}, qr/no answer to a progress probe within 2s/, '... saying the probe went unanswered';
    is $c->endpoints->[0], $proxy->endpoint, 'the endpoint list is unchanged';

    ok_call($writer, 'put', 'probe/a', 'after');
    ok run_until(sub { @{ values_of($rec) } >= 5 }, 5), 'later events arrive on the new connection';
    is values_of($rec)->[-1], 'after', '... the next one';
    $proxy->thaw;
    $proxy->stop;
}

# --- one endpoint: a new connection to it once the path is back ---------------------
{
    my $proxy = TcpProxy->new(upstream => $srv->client_port);
    my $c = EV::Etcd->new(endpoints => [ $proxy->endpoint ], %probing);
    my $rec = watch_rec($c, 'probe/b');
    ok $rec->{msgs}[0]{created}, 'a watch through the only endpoint, a proxy';
    my $conns = $proxy->connections;
    $proxy->freeze;
    ok_call($writer, 'put', 'probe/b', 'while frozen');
    pause(4);
    $proxy->thaw;
    ok run_until(sub { @{ values_of($rec) } }, 15), 'after the thaw the event arrives';
    is_deeply values_of($rec), ['while frozen'], '... once';
    cmp_ok $proxy->connections, '>', $conns, '... over a new connection';
    ok_call($writer, 'put', 'probe/b', 'later');
    ok run_until(sub { @{ values_of($rec) } >= 2 }, 5), 'and the watch goes on';
    is scalar @{ $rec->{errs} }, 0, 'no errors';
    $proxy->stop;
}

# --- without probes the same frozen path stays silent -------------------------------
{
    my $proxy = TcpProxy->new(upstream => $srv->client_port);
    my $c = EV::Etcd->new(endpoints => [ $proxy->endpoint, $srv->endpoint ],
                          keepalive_time => 0, timeout => 2);
    my $rec = watch_rec($c, 'probe/c');
    $proxy->freeze;
    ok_call($writer, 'put', 'probe/c', 'lost?');
    pause(5);
    is scalar @{ values_of($rec) }, 0, 'without watch_probe_interval (and pings) the frozen watch hears nothing';
    $proxy->thaw;
    ok run_until(sub { @{ values_of($rec) } }, 5), '... until the path thaws';
    $proxy->stop;
}

# --- option checks ------------------------------------------------------------------
{
    my $line;
    for my $bad ('abc', -1, [], 'nan') {
        eval { $line = __LINE__; EV::Etcd->new(endpoints => [ $srv->endpoint ], watch_probe_interval => $bad) };
        like $@, qr/^EV::Etcd->new: watch_probe_interval must be a (finite )?number of seconds.* at \Q$0\E line $line\.$/,
            "watch_probe_interval => " . (ref $bad ? 'a reference' : "'$bad'") . ' croaks at the caller';
    }
    ok eval { EV::Etcd->new(endpoints => [ $srv->endpoint ], watch_probe_interval => $_); 1 },
        "watch_probe_interval => " . ($_ // 'undef') . ' is accepted' for 0, 0.01, 30, undef;
}

done_testing;
