#!/usr/bin/env perl
# HTTP/2 keepalive pings (keepalive_time, keepalive_timeout): a connection
# that silently stops forwarding (a frozen TCP proxy: half-open, no reset)
# is noticed within keepalive_time + keepalive_timeout, and the watch and a
# call in flight move to the next endpoint; without pings the same
# connection hangs. With the defaults the client pings only while streams
# are open, at an interval etcd's default policy accepts (no GOAWAY).
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

# This server accepts a ping a second (etcd's default is one per 5 s).
my $srv = start_etcd(name => 'ping', extra => [ '--grpc-keepalive-min-time', '1s' ]);
my $writer = EV::Etcd->new(endpoints => [ $srv->endpoint ]);

sub watch_rec {
    my ($client, $key) = @_;
    my $rec = { ev => [], err => [], created => 0 };
    $rec->{w} = $client->watch($key, sub {
        my ($m, $e) = @_;
        push @{ $rec->{err} }, $e if $e;
        $rec->{created} = 1 if $m && $m->{created};
        push @{ $rec->{ev} }, @{ $m->{events} || [] } if $m;
    });
    run_until(sub { $rec->{created} }, 10);
    return $rec;
}

# A proxy, and a client that reaches etcd through it first and directly
# second, pinging every second.
sub pinging_through_proxy {
    my $proxy = TcpProxy->new(upstream => $srv->client_port);
    my $c = EV::Etcd->new(
        endpoints      => [ $proxy->endpoint, $srv->endpoint ],
        keepalive_time => 1, keepalive_timeout => 1, max_retries => -1,
    );
    return ($proxy, $c);
}

# --- a frozen connection is noticed and left ---------------------------------
{
    my ($proxy, $c) = pinging_through_proxy();
    my $rec = watch_rec($c, 'ping/a');
    ok $rec->{created}, 'a watch through the proxy is created';
    cmp_ok $proxy->connections, '==', 1, '... over the proxy';

    $proxy->freeze;
    my $t0 = time;
    my ($got, $took);
    $c->get('ping/a', sub { $got = [@_]; $took = time - $t0 });
    ok_call($writer, 'put', 'ping/a', 'after freeze');
    ok run_until(sub { @{ $rec->{ev} } }, 15), 'the watch delivers again after the connection froze';
    my $moved = time - $t0;
    cmp_ok $moved, '<', 10, "... within seconds (took ${\ sprintf '%.1f', $moved} s; pings 1 s + 1 s, then reconnect)";
    is $rec->{ev}[0]{kv}{value}, 'after freeze', '... the event written meanwhile, once';
    ok !@{ $rec->{err} }, '... and the watch saw no error';
    ok run_until(sub { $got }, 15), 'the call in flight on the frozen connection ends';
    cmp_ok $took, '<', 10, '... long before the 30 s deadline';
    ok !$got->[1] || $got->[1]{status} eq 'UNAVAILABLE', '... UNAVAILABLE if it failed'
        or diag explain $got->[1];
    ok ok_call($c, 'get', 'ping/a'), 'later calls work (on the other endpoint)';
    my $done;
    $rec->{w}->cancel(sub { $done = 1 });
    run_until(\$done, 5);
    $proxy->stop;
}

# --- ... with nothing but the watch going on ----------------------------------
# Watches run on the Perl thread's runtime, which the EV loop moves forward:
# with no call in flight, only its tick makes the ping timers fire.
{
    my ($proxy, $c) = pinging_through_proxy();
    my $rec = watch_rec($c, 'ping/idle');
    ok $rec->{created}, 'an idle client: a watch through the proxy is created';
    $proxy->freeze;
    my $t0 = time;
    ok_call($writer, 'put', 'ping/idle', 'while frozen');
    ok run_until(sub { @{ $rec->{ev} } }, 15), '... it delivers again with no call of its own in flight';
    my $moved = time - $t0;
    cmp_ok $moved, '<', 10, "... within seconds (took ${\ sprintf '%.1f', $moved} s)";
    is $rec->{ev}[0]{kv}{value}, 'while frozen', '... the event written meanwhile, once';
    is scalar @{ $rec->{err} }, 0, '... and no error';
    my $done;
    $rec->{w}->cancel(sub { $done = 1 });
    run_until(\$done, 5);
    $proxy->stop;
}

# --- without pings the same connection just hangs ----------------------------
{
    my $proxy = TcpProxy->new(upstream => $srv->client_port);
    my $c = EV::Etcd->new(endpoints => [ $proxy->endpoint ], keepalive_time => 0);
    my $rec = watch_rec($c, 'ping/b');
    ok $rec->{created}, 'keepalive_time => 0: a watch is created';
    $proxy->freeze;
    ok_call($writer, 'put', 'ping/b', 'unseen');
    pause(5);
    is scalar @{ $rec->{ev} }, 0, '... a frozen connection goes unnoticed for 5 s';
    is scalar @{ $rec->{err} }, 0, '... without an error either (nothing probes it)';
    $proxy->thaw;
    ok run_until(sub { @{ $rec->{ev} } }, 10), '... and delivers once the proxy forwards again';
    my $done;
    $rec->{w}->cancel(sub { $done = 1 });
    run_until(\$done, 5);
}

# --- the defaults, against etcd's default ping policy -------------------------
{
    my $plain = start_etcd(name => 'ping-default');
    my $proxy = TcpProxy->new(upstream => $plain->client_port);
    my $c = EV::Etcd->new(endpoints => [ $proxy->endpoint ]);
    ok_call($c, 'put', 'ping/c', 1);
    # h2 may still send flow-control frames (WINDOW_UPDATE, 13 bytes each)
    # for the reply just after its callback: let them pass first.
    pause(1);
    my $idle = $proxy->bytes_up;
    pause(11.5);    # past the default 10 s interval
    is $proxy->bytes_up, $idle, 'defaults: no ping on a connection without streams';

    my $rec = watch_rec($c, 'ping/c');
    my $open = $proxy->bytes_up;
    # Unary calls and streams may each have a connection of their own.
    my $conns = $proxy->connections;
    pause(11.5);
    cmp_ok $proxy->bytes_up - $open, '>=', 17, 'defaults: a ping (17 bytes) while a watch is open';
    is $proxy->connections, $conns, '... and etcd kept the connection (no too_many_pings GOAWAY)';
    ok_call($c, 'put', 'ping/c', 2);
    ok run_until(sub { @{ $rec->{ev} } }, 10), '... the watch still delivers';
    ok !@{ $rec->{err} }, '... without error';
    my $done;
    $rec->{w}->cancel(sub { $done = 1 });
    run_until(\$done, 5);
}

# --- bad values -----------------------------------------------------------------
for my $case (
    [ keepalive_time    => -1,    qr/keepalive_time must be a number of seconds, 0 \(no pings\) or more/ ],
    [ keepalive_time    => 'x',   qr/keepalive_time must be a number of seconds/ ],
    [ keepalive_time    => undef, qr/keepalive_time must be a number of seconds/ ],
    [ keepalive_timeout => 0,     qr/keepalive_timeout must be a number of seconds, above 0/ ],
    [ keepalive_timeout => [],    qr/keepalive_timeout must be a number of seconds/ ],
    [ keepalive_timeout => 9**9**9, qr/keepalive_timeout must be a finite number of seconds, at most 1e9/ ],
    [ keepalive_time    => 'nan', qr/keepalive_time must be a finite number of seconds, at most 1e9/ ],
) {
    my ($opt, $v, $re) = @$case;
    my $line = __LINE__ + 1;
    eval { EV::Etcd->new(endpoints => [ $srv->endpoint ], $opt => $v) };
    like $@, qr/^EV::Etcd->new: $re at \Q$0\E line $line/, "$opt => " . ($v // 'undef') . ' croaks';
}

done_testing;
