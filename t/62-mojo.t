#!/usr/bin/env perl
# EV::Etcd under Mojo::IOLoop with Mojo::Reactor::EV: a promise-returning
# wrapper, chained ->then, Mojo::Promise->all, rejections carrying the error
# hash, Mojo timers between etcd answers, a watch delivering while
# Mojo::IOLoop->start runs, Mojo's own sockets (server + client, and
# Mojo::UserAgent on etcd's HTTP port) in the same loop, and what ->wait
# does inside a running loop.
use strict;
use warnings;

BEGIN { $ENV{MOJO_REACTOR} = 'Mojo::Reactor::EV' }

use Test::More;
use lib 't/lib';
use EtcdTest qw(:DEFAULT ci_mode);

BEGIN { need_etcd() }

use EV;
use EV::Etcd;

BEGIN {
    unless (eval { require Mojo::IOLoop; require Mojo::Promise; require Mojo::UserAgent; 1 }) {
        (my $why = $@) =~ s/\n.*//s;
        die "t/62-mojo.t: Mojolicious is not available (strict mode: refusing to skip): $why\n" if ci_mode();
        plan skip_all => "Mojolicious is not available: $why";
    }
}

use MIME::Base64 qw(encode_base64 decode_base64);

alarm 120;    # last resort: every wait below has its own, much shorter, deadline

my $srv = start_etcd(name => 'mojo');
my $c   = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
my $P   = 'mojo62/';

# The wrapper: one call as a Mojo::Promise, rejected with the error hash.
sub etcd_p {
    my ($etcd, $method, @args) = @_;
    my $p = Mojo::Promise->new;
    $etcd->$method(@args, sub {
        my ($resp, $err) = @_;
        $err ? $p->reject($err) : $p->resolve($resp);
    });
    return $p;
}

# Waits (with ->wait) for a promise, at most $secs: returns
# (resolve => @values) or (reject => @reasons); a hang is a failed test.
sub settle {
    my ($p, $secs, $what) = @_;
    my @out = ('timeout');
    my $guard = Mojo::Promise->new;
    my $tid = Mojo::IOLoop->timer($secs => sub { $guard->reject('timeout') });
    Mojo::Promise->race($p, $guard)
        ->then(sub { @out = (resolve => @_) }, sub { @out = (reject => @_) })
        ->wait;
    Mojo::IOLoop->remove($tid);
    if (($out[1] // '') eq 'timeout') {
        fail "$what: not settled within ${secs}s";
        return ('timeout');
    }
    return @out;
}

# Runs Mojo::IOLoop->start until something calls Mojo::IOLoop->stop, at most
# $secs; returns false on timeout.
sub start_within {
    my ($secs) = @_;
    my $late;
    my $tid = Mojo::IOLoop->timer($secs => sub { $late = 1; Mojo::IOLoop->stop });
    Mojo::IOLoop->start;
    Mojo::IOLoop->remove($tid);
    return !$late;
}

# --- the reactor is EV ---------------------------------------------------------
{
    my $reactor = Mojo::IOLoop->singleton->reactor;
    isa_ok $reactor, 'Mojo::Reactor::EV', 'the singleton reactor';

    my $fired;
    my $ev = EV::timer(0.01, 0, sub { $fired = 'EV'; Mojo::IOLoop->stop });
    ok start_within(5), 'an EV::timer stops Mojo::IOLoop->start';
    is $fired, 'EV', '... from inside the Mojo loop';

    my $mojo;
    Mojo::IOLoop->timer(0.01 => sub { $mojo = 1 });
    ok run_until(\$mojo, 5), 'a Mojo::IOLoop->timer fires inside EV::run';
}

# --- a chain of calls ----------------------------------------------------------
{
    my (%seen, $put_rev);
    my $chain = etcd_p($c, put => "${P}chain", 'first')->then(sub {
        $put_rev = $_[0]{header}{revision};
        return etcd_p($c, get => "${P}chain");
    })->then(sub {
        $seen{after_put} = $_[0]{kvs}[0]{value};
        $seen{mod_rev}   = $_[0]{kvs}[0]{mod_revision};
        return etcd_p($c, put => "${P}chain", 'second', { prev_kv => 1 });
    })->then(sub {
        $seen{prev} = $_[0]{prev_kv}{value};
        return etcd_p($c, delete => "${P}chain");
    })->then(sub {
        $seen{deleted} = $_[0]{deleted};
        return etcd_p($c, get => "${P}chain");
    })->then(sub {
        $seen{after_delete} = scalar @{ $_[0]{kvs} };
        return 'chain done';
    });
    my ($how, $v) = settle($chain, 10, 'chain');
    is $how, 'resolve', 'the chain resolved';
    is $v, 'chain done', '... with the last step\'s value';
    is $seen{after_put}, 'first', 'get after put read the value';
    is $seen{mod_rev}, $put_rev, '... at the put\'s revision';
    is $seen{prev}, 'first', 'the second put saw the first value as prev_kv';
    is $seen{deleted}, 1, 'delete removed one key';
    is $seen{after_delete}, 0, 'get after delete finds nothing';
}

# --- Mojo::Promise->all over many calls ----------------------------------------
{
    my @puts = map { etcd_p($c, put => sprintf('%sall/%02d', $P, $_), "v$_") } 1 .. 40;
    my ($how, @res) = settle(Mojo::Promise->all(@puts), 20, 'all puts');
    is $how, 'resolve', 'all 40 puts resolved';
    is scalar @res, 40, '... one result each';
    my @revs = map { $_->[0]{header}{revision} } @res;
    my %distinct = map { $_ => 1 } @revs;
    is scalar keys %distinct, 40, '... each at a revision of its own';

    ($how, my $r) = settle(etcd_p($c, get => "${P}all/", { prefix => 1 }), 10, 'get all');
    is_deeply [ map { $_->{value} } @{ $r->{kvs} } ], [ map { "v$_" } 1 .. 40 ], 'all 40 values read back';
    is_deeply [ map { $_->{mod_revision} } @{ $r->{kvs} } ], \@revs,
        '... at the revisions the results (in call order) reported';

    # all() over different methods at once.
    ($how, my @mixed) = settle(Mojo::Promise->all(
        etcd_p($c, 'status'),
        etcd_p($c, 'member_list'),
        etcd_p($c, get => "${P}all/", { prefix => 1, count_only => 1 }),
        etcd_p($c, lease_grant => 20),
    ), 10, 'mixed all');
    is $how, 'resolve', 'a mixed all() resolved';
    like $mixed[0][0]{version}, qr/^3\.\d+\.\d+/, '... status';
    is scalar @{ $mixed[1][0]{members} }, 1, '... member_list';
    is $mixed[2][0]{count}, 40, '... count_only';
    cmp_ok $mixed[3][0]{id}, '>', 0, '... lease_grant';
    ($how) = settle(etcd_p($c, lease_revoke => $mixed[3][0]{id} // 0), 10, 'revoke');
    is $how, 'resolve', '... and the lease revoked';
}

# --- rejections carry the error hash --------------------------------------------
{
    my ($how, $e) = settle(etcd_p($c, lease_revoke => 424242), 10, 'revoke unknown');
    is $how, 'reject', 'revoking an unknown lease rejects';
    is ref $e, 'HASH', '... with the error hash';
    is $e->{status}, 'NOT_FOUND', '... status NOT_FOUND';
    is $e->{source}, 'lease_revoke', '... from lease_revoke';
    like $e->{message}, qr/requested lease not found/, '... etcd\'s message';

    # ->catch in a chain: the steps after the failure are skipped.
    my @steps;
    my $p = etcd_p($c, put => "${P}rej", 1)->then(sub {
        push @steps, 'put';
        etcd_p($c, lease_revoke => 424242);
    })->then(sub {
        push @steps, 'not reached';
    })->catch(sub {
        push @steps, "caught $_[0]{status}";
        'recovered';
    });
    ($how, my $v) = settle($p, 10, 'catch');
    is $how, 'resolve', 'a caught rejection';
    is $v, 'recovered', '... resolves with what catch returned';
    is_deeply \@steps, [ 'put', 'caught NOT_FOUND' ], '... skipping the step after the failure';

    # all() rejects with the first failure.
    ($how, $e) = settle(Mojo::Promise->all(
        etcd_p($c, get => "${P}rej"),
        etcd_p($c, lease_revoke => 424242),
    ), 10, 'failing all');
    is $how, 'reject', 'all() with one failing call rejects';
    is $e->{status}, 'NOT_FOUND', '... with that call\'s error hash';
}

# --- Mojo timers between etcd answers -------------------------------------------
{
    my (@log, @ticks_at);
    my $ticks = 0;
    my $rep = Mojo::IOLoop->recurring(0.005 => sub { $ticks++ });
    my $chain = Mojo::Promise->resolve;
    for my $i (0 .. 9) {
        $chain = $chain->then(sub { Mojo::Promise->timer(0.01) })->then(sub {
            push @log, "timer $i";
            etcd_p($c, put => "${P}tick/$i", "t$i");
        })->then(sub {
            push @log, "put $i";
            push @ticks_at, $ticks;
        });
    }
    my ($how) = settle($chain, 10, 'timer chain');
    Mojo::IOLoop->remove($rep);
    is $how, 'resolve', 'the timer/put chain resolved';
    is_deeply \@log, [ map { ("timer $_", "put $_") } 0 .. 9 ], 'timers and put answers alternate';
    my @rising = grep { $ticks_at[$_] > $ticks_at[ $_ - 1 ] } 1 .. $#ticks_at;
    is scalar @rising, 9, 'the recurring timer ticked between every two put answers'
        or diag "ticks at each answer: @ticks_at";

    (undef, my $r) = settle(etcd_p($c, get => "${P}tick/", { prefix => 1, sort_target => 'mod' }), 10, 'get ticks');
    is_deeply [ map { $_->{value} } @{ $r->{kvs} } ], [ map { "t$_" } 0 .. 9 ],
        'the puts were applied in the order the timers started them';
}

# --- a watch delivers while Mojo::IOLoop->start runs -----------------------------
{
    my (@events, @errors, $created);
    my $w = $c->watch("${P}watch/", { prefix => 1 }, sub {
        my ($m, $e) = @_;
        if ($e) { push @errors, $e; return Mojo::IOLoop->stop }
        if ($m->{created}) {
            $created++;
            # Writes from a Mojo timer, once the loop runs.
            Mojo::IOLoop->timer(0.05 => sub {
                etcd_p($c, put => "${P}watch/a", 1)
                    ->then(sub { etcd_p($c, put => "${P}watch/b", 2) })
                    ->then(sub { etcd_p($c, put => "${P}watch/a", 3) })
                    ->then(sub { etcd_p($c, delete => "${P}watch/b") })
                    ->catch(sub { push @errors, $_[0] });
            });
            return;
        }
        push @events, map { [ $_->{type}, $_->{kv}{key}, $_->{kv}{value} ] } @{ $m->{events} };
        Mojo::IOLoop->stop if @events >= 4;
    });
    ok start_within(10), 'Mojo::IOLoop->start ran until the watch stopped it';
    is $created, 1, 'the watch was created once';
    is_deeply \@errors, [], 'no errors';
    is_deeply \@events, [
        [ PUT    => "${P}watch/a", 1 ],
        [ PUT    => "${P}watch/b", 2 ],
        [ PUT    => "${P}watch/a", 3 ],
        [ DELETE => "${P}watch/b", '' ],
    ], 'the four changes arrived in order';

    my $cp = Mojo::Promise->new;
    $w->cancel(sub { $cp->resolve(@_) });
    my ($how, $cr, $ce) = settle($cp, 10, 'cancel');
    is_deeply $cr, {}, 'cancel answered an empty hash';
    ok !defined $ce, '... and no error';

    settle(etcd_p($c, put => "${P}watch/a", 4)->then(sub { Mojo::Promise->timer(0.2) }), 10, 'quiet');
    is scalar @events, 4, 'nothing arrives after the cancel';
}

# --- Mojo's own sockets in the same loop -----------------------------------------
{
    # A line echo server and a client: each echoed line is stored in etcd and
    # the next line goes out once the put has resolved, while 20 unrelated
    # puts are in flight too.
    my $sid = Mojo::IOLoop->server({ address => '127.0.0.1', port => 0 }, sub {
        my (undef, $stream) = @_;
        my $buf = '';
        $stream->on(read => sub {
            my ($s, $bytes) = @_;
            $buf .= $bytes;
            $s->write("echo:$1\n") while $buf =~ s/^([^\n]*)\n//;
        });
    });
    my $port = Mojo::IOLoop->acceptor($sid)->port;
    ok $port, 'Mojo::IOLoop->server listens';

    my (@echoed, $client);
    my $talk = Mojo::Promise->new;
    Mojo::IOLoop->client({ address => '127.0.0.1', port => $port }, sub {
        my (undef, $err, $stream) = @_;
        return $talk->reject("connect: $err") if $err;
        $client = $stream;
        my ($buf, $n) = ('', 0);
        $stream->on(error => sub { $talk->reject("client: $_[1]") });
        $stream->on(read => sub {
            $buf .= $_[1];
            while ($buf =~ s/^([^\n]*)\n//) {
                my $line = $1;
                push @echoed, $line;
                etcd_p($c, put => sprintf('%secho/%02d', $P, $n), $line)->then(sub {
                    if ($n < 10) { $client->write('line ' . ++$n . "\n") }
                    else         { $talk->resolve($n) }
                }, sub { $talk->reject($_[0]) });
            }
        });
        $stream->write('line ' . ++$n . "\n");
    });
    my @batch = map { etcd_p($c, put => "${P}batch/$_", $_) } 1 .. 20;
    my ($how, @res) = settle(Mojo::Promise->all($talk, @batch), 15, 'echo and batch');
    is $how, 'resolve', 'echo conversation and batch finished' or diag explain \@res;
    is $res[0][0], 10, '... after ten lines';
    is_deeply \@echoed, [ map { "echo:line $_" } 1 .. 10 ], 'ten lines echoed, in order';
    is scalar(grep { $_->[0]{header}{revision} } @res[ 1 .. 20 ]), 20, 'the 20 puts in flight alongside succeeded';
    (undef, my $r) = settle(etcd_p($c, get => "${P}echo/", { prefix => 1 }), 10, 'get echo');
    is_deeply [ map { $_->{value} } @{ $r->{kvs} } ], [ map { "echo:line $_" } 1 .. 10 ],
        'each echoed line was stored in etcd';
    if ($client) { $client->unsubscribe('read'); $client->close }
    Mojo::IOLoop->remove($sid);

    # Mojo::UserAgent on etcd's HTTP port: /health, and the JSON gateway's
    # range on a key put through EV::Etcd, next to an EV::Etcd get.
    my $ua  = Mojo::UserAgent->new(request_timeout => 10);
    my $url = 'http://' . $srv->endpoint;
    my $val = "via EV::Etcd \x00\xff";
    my $p = etcd_p($c, put => "${P}http", $val)->then(sub {
        my $put = shift;
        Mojo::Promise->all(
            $ua->get_p("$url/health"),
            $ua->post_p("$url/v3/kv/range" => json => { key => encode_base64("${P}http", '') }),
            etcd_p($c, get => "${P}http"),
        )->then(sub { ($put, @_) });
    });
    ($how, my ($put, $health, $range, $get)) = settle($p, 15, 'HTTP');
    is $how, 'resolve', 'the HTTP requests and the get resolved' or diag explain $put;
    my $htx = $health->[0];
    is $htx->res->code, 200, 'GET /health: 200';
    is $htx->res->json->{health}, 'true', '... etcd says it is healthy';
    my $rtx = $range->[0];
    is $rtx->res->code, 200, 'POST /v3/kv/range: 200';
    my $kv = $rtx->res->json->{kvs}[0] || {};
    is decode_base64($kv->{key} // ''), "${P}http", '... the gateway finds the key';
    is decode_base64($kv->{value} // ''), $val, '... with the bytes EV::Etcd stored';
    is $kv->{mod_revision}, $put->{header}{revision}, '... at the revision the put reported';
    is $get->[0]{kvs}[0]{value}, $val, 'the EV::Etcd get alongside read the same';
}

# --- ->wait inside a running loop does not wait ---------------------------------
{
    my ($settled_after_wait, $value);
    $c->put("${P}wait", 'w', sub {
        my $p = etcd_p($c, get => "${P}wait");
        my $settled = 0;
        $p->then(sub { $settled = 1; $value = $_[0]{kvs}[0]{value}; Mojo::IOLoop->stop });
        $p->wait;    # Mojo::IOLoop is running: returns at once
        $settled_after_wait = $settled;
    });
    ok start_within(10), 'the loop ran until the promise settled';
    is $settled_after_wait, 0, '->wait inside a callback returned before the promise settled';
    is $value, 'w', '... which settled later, in the outer loop';
}

done_testing;
