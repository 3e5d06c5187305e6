#!/usr/bin/env perl
# max_send_size and max_recv_size: a unary request or reply over the limit
# fails that one call with RESOURCE_EXHAUSTED (nothing is sent for an
# oversized request); calls in flight beside it and streams are unaffected;
# bad values croak.
use strict;
use warnings;

use Test::More;

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

my $srv   = start_etcd(name => 'limits');
my $plain = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
my $c     = EV::Etcd->new(endpoints => [ $srv->endpoint ], max_send_size => 1000, max_recv_size => 4000);

# --- requests -------------------------------------------------------------------
{
    my ($r, $e) = call($c, 'put', 'lim/big', 'x' x 1500);
    is $e->{status}, 'RESOURCE_EXHAUSTED', 'a put over max_send_size fails RESOURCE_EXHAUSTED';
    is $e->{source}, 'put', '... from put';
    like $e->{message}, qr/request of \d+ bytes exceeds max_send_size \(1000 bytes\)/, '... saying why';
    is ok_call($plain, 'get', 'lim/big')->{count}, 0, '... and nothing was written';

    ($r, $e) = call($c, 'txn', [], [ map { { put => { key => "lim/t$_", value => 'y' x 100 } } } 1 .. 12 ], []);
    is $e->{status}, 'RESOURCE_EXHAUSTED', 'a txn over the limit fails too';
    ok ok_call($c, 'put', 'lim/small', 'x' x 900), 'a request under the limit goes through';
}

# --- replies ----------------------------------------------------------------------
ok_call($plain, 'put', "lim/r$_", 'z' x 1000) for 1 .. 5;
{
    my %got;
    $c->get('lim/r', { prefix => 1 }, sub { $got{big} = [@_] });          # about 5 kB
    $c->get('lim/r1', sub { $got{one} = [@_] });                          # about 1 kB
    $c->put('lim/beside', 1, sub { $got{put} = [@_] });
    run_until(sub { keys %got == 3 }, 10);
    is $got{big}[1]{status}, 'RESOURCE_EXHAUSTED', 'a reply over max_recv_size fails RESOURCE_EXHAUSTED';
    is $got{big}[1]{source}, 'get', '... from get';
    like $got{big}[1]{message}, qr/max_recv_size \(4000 bytes\)/, '... naming the limit';
    ok !$got{one}[1], 'a small reply in flight beside it is delivered';
    is length $got{one}[0]{kvs}[0]{value}, 1000, '... whole';
    ok !$got{put}[1], 'a put in flight beside it succeeds';
    my $n = ok_call($c, 'get', 'lim/r', { prefix => 1, count_only => 1 })->{count};
    is $n, 5, 'the client keeps working after an oversized reply';
    my $three = ok_call($c, 'get', 'lim/r', { prefix => 1, limit => 3 });
    is scalar @{ $three->{kvs} }, 3, 'a reply just under the limit is delivered';
}

# --- streams are not limited ------------------------------------------------------
{
    my @events;
    my $w = $c->watch('lim/w', sub { push @events, @{ $_[0]{events} // [] } if $_[0] });
    run_until(sub { 0 }, 0.3);
    ok_call($plain, 'put', 'lim/w', 'v' x 6000);
    ok run_until(sub { @events }, 5), 'a watch event larger than max_recv_size arrives';
    is length $events[0]{kv}{value}, 6000, '... whole';
    my $done;
    $w->cancel(sub { $done = 1 });
    run_until(\$done, 5);
}

# --- bad values -------------------------------------------------------------------------
for my $opt (qw(max_recv_size max_send_size)) {
    for my $case ([ 0, qr/$opt must be a positive number of bytes/ ],
                  [ -5, qr/$opt/ ], [ 'lots', qr/$opt/ ], [ 1.5, qr/$opt/ ], [ [], qr/$opt/ ]) {
        my ($v, $re) = @$case;
        my $line = __LINE__ + 1;
        eval { EV::Etcd->new(endpoints => [ $srv->endpoint ], $opt => $v) };
        like $@, qr/^EV::Etcd->new: .*$re.* at \Q$0\E line $line/, "$opt => " . (ref $v || $v) . ' croaks';
    }
    ok eval { EV::Etcd->new(endpoints => [ $srv->endpoint ], $opt => undef); 1 }, "$opt => undef: no limit";
    ok eval { EV::Etcd->new(endpoints => [ $srv->endpoint ], $opt => '18446744073709551615'); 1 },
        "$opt takes the largest 64-bit number";
}

done_testing;
