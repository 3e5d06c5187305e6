#!/usr/bin/env perl
# Where the work happens while the program is busy outside the EV loop
# (see DESCRIPTION in the POD): a unary call made outside a callback is on
# the server before the method returns; a lease keepalive goes on while
# Perl blocks for longer than the lease's TTL; calls made from callbacks
# are all started once the callbacks of that turn have run; and a call's
# answer or a watch's events that arrived while Perl was blocked are
# delivered once the loop runs again. The server is read through its JSON gateway with blocking
# HTTP requests, so that nothing of EV::Etcd runs meanwhile.
use strict;
use warnings;

use MIME::Base64 qw(encode_base64);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use lib 't/lib';
use EtcdTest qw(:DEFAULT http_request ok_call);

need_etcd();
use EV;
use EV::Etcd;

my $srv  = start_etcd(name => 'busy');
my $json = JSON::PP->new;

# The value of $key as the server has it now (undef: no such key).
sub server_value {
    my ($key) = @_;
    my ($code, $body) = http_request('POST', $srv->client_port, '/v3/kv/range',
        $json->encode({ key => encode_base64($key, '') }), 10);
    die "gateway: no answer\n" unless defined $code;
    my $kvs = $json->decode($body)->{kvs} or return undef;
    return MIME::Base64::decode_base64($kvs->[0]{value});
}

my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
ok_call($c, 'put', 'busy/warm', 'up');    # the connection is open

# --- a call outside a callback is sent before the method returns -----------
for my $i (1 .. 5) {
    my $got;
    $c->put('busy/sent', "v$i", sub { $got = [@_] });
    # No EV::run yet: the request must already be on the server. Its reply
    # waits unread until the loop runs.
    my ($value, $t0) = (undef, time);
    until (defined $value && $value eq "v$i") {
        $value = server_value('busy/sent');
        last if time - $t0 > 5;
        sleep 0.01;
    }
    is $value, "v$i", "put $i is on the server before the loop ran";
    ok !$got, '... and its callback has not run';
    run_until(sub { $got }, 5);
    ok $got && $got->[0] && !$got->[1], '... it runs once the loop does';
}

# --- an answer that arrived while Perl was blocked is delivered ------------
{
    my $got;
    $c->get('busy/sent', { timeout => 10 }, sub { $got = [@_] });
    sleep 0.5;    # blocked outside the loop; the answer arrives meanwhile
    run_until(sub { $got }, 5);
    ok $got && !$got->[1], 'an answer that came while Perl was blocked is delivered';
    is $got && $got->[0]{kvs}[0]{value}, 'v5', '... with the right value';
}

# --- watch events that arrived while Perl was blocked are delivered -------
{
    my $writer = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
    ok_call($writer, 'put', 'busy/warm', 'up');    # its connection is open
    my (@ev, @err, $created);
    my $w = $c->watch('busy/watched/', { prefix => 1 }, sub {
        my ($m, $e) = @_;
        push @err, $e if $e;
        $created = 1 if $m && $m->{created};
        push @ev, @{ $m->{events} || [] } if $m;
    });
    run_until(\$created, 5);
    ok $created, 'a watch is open';
    # Each put is sent before its method returns (see above), so the events
    # reach this client while it sleeps; the three may apply in any order.
    $writer->put("busy/watched/$_", "e$_", sub { }) for 1 .. 3;
    sleep 1;
    ok !@ev, '... nothing is delivered while Perl is blocked';
    run_until(sub { @ev >= 3 }, 5);
    is join(' ', sort map { $_->{kv}{value} } @ev), 'e1 e2 e3',
        '... the events written meanwhile come once the loop runs';
    my @revs = map { $_->{kv}{mod_revision} } @ev;
    is_deeply \@revs, [ sort { $a <=> $b } @revs ], '... in revision order, each once';
    ok !@err, '... without error';
    my $done;
    $w->cancel(sub { $done = 1 });
    run_until(\$done, 5);
}

# --- a keepalive goes on while Perl blocks longer than the TTL -------------
{
    my $grant = ok_call($c, 'lease_grant', 2);
    my $id = $grant->{id};
    my @ticks;
    my $ka = $c->lease_keepalive($id, sub { push @ticks, [@_] });
    run_until(sub { @ticks }, 5);
    ok @ticks && !$ticks[0][1], 'keepalive running';
    sleep 5;    # more than twice the TTL, outside the loop
    my $ttl = ok_call($c, 'lease_time_to_live', $id);
    cmp_ok $ttl->{ttl}, '>', 0, 'the lease outlived 5 s of blocked Perl (TTL 2 s)';
    my $done;
    $ka->cancel(sub { $done = 1 });
    run_until(\$done, 5);
    ok_call($c, 'lease_revoke', $id);
}

# --- calls made from callbacks all start after that turn's callbacks -------
{
    my $n = 200;
    my ($started, $answered) = (0, 0);
    my $first;
    $c->put('busy/batch/first', 1, sub {
        # Each of these is queued; none may answer inside this callback.
        for my $i (1 .. $n) {
            $c->put("busy/batch/$i", $i, sub { $answered++ });
            $started++;
        }
        $first = $answered;
    });
    run_until(sub { $answered == $n }, 10);
    is $first, 0, 'no call made in a callback answers inside it';
    is $answered, $n, "all $n calls made in one callback are answered";
    my $r = ok_call($c, 'get', 'busy/batch/', { prefix => 1, count_only => 1 });
    is $r->{count}, $n + 1, '... and are all on the server (with the first)';
}

done_testing;
