#!/usr/bin/env perl
# EV::Etcd under AnyEvent with its EV backend: calls driven by condvars,
# begin/end groups, AE timers between etcd answers, a watch delivering while
# the program sits in ->recv, AnyEvent::Socket / AnyEvent::Handle I/O (an
# echo server, etcd's own HTTP port) in the same loop, errors as hashes, a
# deadline made with AE::timer, and what a recursive ->recv does.
use strict;
use warnings;

use Test::More;
use lib 't/lib';
use EtcdTest qw(:DEFAULT ci_mode);

# Let AnyEvent pick its backend itself: with EV loaded, that must be EV.
BEGIN { delete $ENV{PERL_ANYEVENT_MODEL} }

BEGIN { need_etcd() }

use EV;
use EV::Etcd;

# At compile time, so that AE::cv and friends are known as functions.
BEGIN {
    unless (eval { require AnyEvent; require AnyEvent::Handle; require AnyEvent::Socket; 1 }) {
        (my $why = $@) =~ s/\n.*//s;
        die "t/61-anyevent.t: AnyEvent is not available (strict mode: refusing to skip): $why\n" if ci_mode();
        plan skip_all => "AnyEvent is not available: $why";
    }
    AnyEvent::Socket->import(qw(tcp_server tcp_connect));
}

use JSON::PP ();
use MIME::Base64 qw(encode_base64 decode_base64);

alarm 120;    # last resort: every wait below has its own, much shorter, deadline

my $srv = start_etcd(name => 'ae');
my $c   = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
my $P   = 'ae61/';

# $cv->recv, but a condvar nobody sends within $secs is a failure, not a hang.
sub recv_within {
    my ($cv, $secs, $what) = @_;
    my $late;
    my $t = AE::timer($secs, 0, sub { $late = 1; $cv->send });
    my @got = $cv->recv;
    if ($late) {
        fail "$what: nothing within ${secs}s";
        return;
    }
    return wantarray ? @got : $got[0];
}

# One call to completion through a condvar: returns ($resp, $err).
sub ae_call {
    my ($method, @args) = @_;
    my $cv = AE::cv;
    $c->$method(@args, sub { $cv->send(@_) });
    return recv_within($cv, 10, $method);
}

# --- the loop AnyEvent runs is EV's -----------------------------------------
{
    is AnyEvent::detect(), 'AnyEvent::Impl::EV', 'AnyEvent detected EV as its backend';
    is $AnyEvent::MODEL, 'AnyEvent::Impl::EV', '$AnyEvent::MODEL says so';
    EV::now_update();
    is AE::now(), EV::now(), 'AE::now is the EV loop clock';

    my $cv = AE::cv;
    my $ev = EV::timer(0.01, 0, sub { $cv->send('from EV::timer') });
    is recv_within($cv, 5, 'EV::timer'), 'from EV::timer', 'an EV watcher fires inside $cv->recv';

    my $fired;
    my $ae = AE::timer(0.01, 0, sub { $fired = 1 });
    ok run_until(\$fired, 5), 'an AE::timer fires inside EV::run';
}

# --- a condvar around a call -------------------------------------------------
my $one_rev;
{
    my ($r, $e) = ae_call(put => "${P}one", 'uno');
    ok !$e, 'put through a condvar' or diag explain $e;
    $one_rev = $r->{header}{revision};
    cmp_ok $one_rev, '>', 0, '... has a revision';

    ($r, $e) = ae_call(get => "${P}one");
    ok !$e, 'get through a condvar' or diag explain $e;
    is scalar @{ $r->{kvs} }, 1, '... one key';
    is $r->{kvs}[0]{key},   "${P}one", '... the key';
    is $r->{kvs}[0]{value}, 'uno',     '... the value that was put';
    is $r->{kvs}[0]{mod_revision}, $one_rev, '... written at the put\'s revision';

    # A call started from inside another call's callback, one condvar for both.
    my $cv = AE::cv;
    $c->put("${P}two", 'dos', sub {
        my (undef, $err) = @_;
        return $cv->send(undef, $err) if $err;
        $c->get("${P}two", sub { $cv->send(@_) });
    });
    ($r, $e) = recv_within($cv, 10, 'put then get');
    ok !$e, 'put, then get from its callback' or diag explain $e;
    is $r->{kvs}[0]{value}, 'dos', '... reads the value back';
}

# --- begin/end: many calls in flight, one wait ------------------------------
{
    my (%rev, %err);
    my $cv = AE::cv;
    $cv->begin(sub { $_[0]->send(scalar keys %rev) });
    for my $i (1 .. 50) {
        $cv->begin;
        $c->put(sprintf('%sgroup/%02d', $P, $i), "v$i", sub {
            my ($r, $e) = @_;
            if ($e) { $err{$i} = $e->{status} } else { $rev{$i} = $r->{header}{revision} }
            $cv->end;
        });
    }
    $cv->end;
    is recv_within($cv, 20, 'begin/end group'), 50, 'the group finished after all 50 puts';
    is_deeply \%err, {}, '... none failed';
    my %distinct = reverse %rev;
    is scalar keys %distinct, 50, '... each at a revision of its own';

    my ($r, $e) = ae_call(get => "${P}group/", { prefix => 1 });
    ok !$e, 'get the group back';
    is_deeply [ map { $_->{key} } @{ $r->{kvs} } ], [ map { sprintf '%sgroup/%02d', $P, $_ } 1 .. 50 ],
        '... all 50 keys, in key order';
    is_deeply [ map { $_->{value} } @{ $r->{kvs} } ], [ map { "v$_" } 1 .. 50 ], '... with their values';
    is_deeply [ map { $_->{mod_revision} } @{ $r->{kvs} } ], [ map { $rev{$_} } 1 .. 50 ],
        '... at the revisions their puts reported';

    # Different methods in one group.
    my %got;
    $cv = AE::cv;
    $cv->begin;
    for my $call (
        [ lease_grant => lease_grant => 30 ],
        [ status      => 'status' ],
        [ member_list => 'member_list' ],
        [ count       => get => "${P}group/", { prefix => 1, count_only => 1 } ],
        [ get         => get => "${P}one" ],
    ) {
        my ($name, $m, @args) = @$call;
        $cv->begin;
        $c->$m(@args, sub { $got{$name} = [@_]; $cv->end });
    }
    $cv->end;
    recv_within($cv, 10, 'mixed group');
    ok !(grep { $_->[1] } values %got), 'mixed group: no errors' or diag explain \%got;
    cmp_ok $got{lease_grant}[0]{id}, '>', 0, '... lease_grant gave an id';
    is $got{lease_grant}[0]{ttl}, 30, '... with the ttl asked for';
    like $got{status}[0]{version}, qr/^3\.\d+\.\d+/, '... status has the server version';
    is scalar @{ $got{member_list}[0]{members} }, 1, '... member_list has one member';
    is $got{count}[0]{count}, 50, '... the count_only get';
    is_deeply $got{count}[0]{kvs} // [], [], '... without the keys';
    is $got{get}[0]{kvs}[0]{value}, 'uno', '... the plain get';
    my (undef, $re) = ae_call(lease_revoke => $got{lease_grant}[0]{id} // 0);
    ok !$re, '... and that lease can be revoked';
}

# --- AE timers between etcd answers ----------------------------------------
{
    # A repeating timer ticks all along; a one-shot timer starts each put and
    # each put's callback arms the next one-shot, so timer and etcd answer
    # alternate strictly, and the repeating timer ticks between answers.
    my (@log, @ticks_at, $step, $t);
    my $ticks = 0;
    my $rep = AE::timer(0.005, 0.005, sub { $ticks++ });
    my $cv  = AE::cv;
    my $n   = 0;
    $step = sub {
        my $i = $n++;
        $t = AE::timer(0.01, 0, sub {
            push @log, "timer $i";
            $c->put("${P}tick/$i", "t$i", sub {
                my (undef, $e) = @_;
                push @log, $e ? "error $i" : "put $i";
                push @ticks_at, $ticks;
                $i < 9 ? $step->() : $cv->send;
            });
        });
    };
    $step->();
    recv_within($cv, 10, 'timer/put chain');
    undef $step;
    is_deeply \@log, [ map { ("timer $_", "put $_") } 0 .. 9 ], 'one-shot timers and put answers alternate';
    my @rising = grep { $ticks_at[$_] > $ticks_at[ $_ - 1 ] } 1 .. $#ticks_at;
    is scalar @rising, 9, 'the repeating timer ticked between every two put answers'
        or diag "ticks at each answer: @ticks_at";

    my ($r) = ae_call(get => "${P}tick/", { prefix => 1, sort_target => 'mod', sort_order => 'ascend' });
    is_deeply [ map { $_->{value} } @{ $r->{kvs} } ], [ map { "t$_" } 0 .. 9 ],
        'the puts were applied in the order the timers started them';
}

# --- a watch delivers while the program waits in ->recv ---------------------
{
    my (@events, @errors);
    my $created = AE::cv;
    my $done    = AE::cv;
    my $w = $c->watch("${P}watch/", { prefix => 1 }, sub {
        my ($m, $e) = @_;
        if ($e) { push @errors, $e; $done->send; return }
        return $created->send($m) if $m->{created};
        push @events, map { [ $_->{type}, $_->{kv}{key}, $_->{kv}{value} ] } @{ $m->{events} };
        $done->send if @events >= 4;
    });
    my $m = recv_within($created, 10, 'watch created');
    is $m->{created}, 1, 'the watch confirmed its creation';
    is_deeply $m->{events}, [], '... with no events';

    # The writes begin from a timer, once the program already waits in recv.
    my $t = AE::timer(0.05, 0, sub {
        $c->put("${P}watch/a", 1, sub {
            $c->put("${P}watch/b", 2, sub {
                $c->put("${P}watch/a", 3, sub {
                    $c->delete("${P}watch/b", sub { });
                });
            });
        });
    });
    recv_within($done, 10, 'watch events');
    is_deeply \@errors, [], 'the watch saw no error';
    is_deeply \@events, [
        [ PUT    => "${P}watch/a", 1 ],
        [ PUT    => "${P}watch/b", 2 ],
        [ PUT    => "${P}watch/a", 3 ],
        [ DELETE => "${P}watch/b", '' ],
    ], 'all four changes arrived during ->recv, in order';

    my $cc = AE::cv;
    $w->cancel(sub { $cc->send(@_) });
    my ($cr, $ce) = recv_within($cc, 10, 'watch cancel');
    is_deeply $cr, {}, 'cancel answers an empty hash';
    ok !defined $ce, '... and no error';

    ae_call(put => "${P}watch/a", 4);
    my $quiet = AE::cv;
    my $qt = AE::timer(0.2, 0, sub { $quiet->send });
    $quiet->recv;
    is scalar @events, 4, 'nothing arrives after the cancel';
}

# --- AnyEvent::Socket and AnyEvent::Handle in the same loop -----------------
{
    # An echo server and a client: each echoed line is stored in etcd, and
    # the next line goes out from the put's callback, while a batch of
    # unrelated etcd calls is in flight as well.
    my (%conns, $port);
    my $server = tcp_server('127.0.0.1', undef, sub {
        my ($fh) = @_;
        my $h = AnyEvent::Handle->new(fh => $fh);
        $conns{"$h"} = $h;
        my $bye = sub { delete $conns{"$h"}; $h->destroy };
        $h->on_error($bye);
        $h->on_eof($bye);
        $h->on_read(sub {
            $_[0]->push_read(line => sub { $_[0]->push_write("echo:$_[1]\n") });
        });
    }, sub { $port = $_[2]; 8 });
    ok $port, 'tcp_server listens';

    my $cv = AE::cv;
    my (@echoed, @put_err, $client, $batch_ok);
    $cv->begin;
    $cv->begin;    # the batch
    my $left = 20;
    for my $i (1 .. 20) {
        $c->put("${P}batch/$i", $i, sub { $batch_ok++ unless $_[1]; --$left or $cv->end });
    }
    $cv->begin;    # the echo conversation
    tcp_connect('127.0.0.1', $port, sub {
        my ($fh) = @_;
        unless ($fh) { push @put_err, "connect: $!"; return $cv->end }
        $client = AnyEvent::Handle->new(
            fh       => $fh,
            on_error => sub { push @put_err, "client: $_[2]"; $cv->end },
        );
        my $n = 0;
        my $next;
        $next = sub {
            $client->push_write('line ' . ++$n . "\n");
            $client->push_read(line => sub {
                my $line = $_[1];
                push @echoed, $line;
                $c->put("${P}echo/" . sprintf('%02d', $n), $line, sub {
                    push @put_err, $_[1]{status} if $_[1];
                    if ($n < 10) { $next->() } else { undef $next; $cv->end }
                });
            });
        };
        $next->();
    });
    $cv->end;
    recv_within($cv, 15, 'echo and batch');
    is_deeply \@put_err, [], 'echo conversation without errors';
    is_deeply \@echoed, [ map { "echo:line $_" } 1 .. 10 ], 'ten lines echoed, in order';
    is $batch_ok, 20, 'the 20 puts in flight alongside all succeeded';
    my ($r) = ae_call(get => "${P}echo/", { prefix => 1 });
    is_deeply [ map { $_->{value} } @{ $r->{kvs} } ], [ map { "echo:line $_" } 1 .. 10 ],
        'each echoed line was stored in etcd';
    $client->destroy if $client;
    undef $server;

    # etcd's own HTTP port, read with AnyEvent::Handle: /health and the JSON
    # gateway's range on a key put through EV::Etcd, with etcd calls in flight.
    my $http = sub {
        my ($method, $path, $body, $cb) = @_;
        tcp_connect('127.0.0.1', $srv->client_port, sub {
            my ($fh) = @_ or return $cb->("connect: $!");
            my $buf = '';
            my $h;
            $h = AnyEvent::Handle->new(
                fh       => $fh,
                on_error => sub { undef $h; $cb->("http: $_[2]") },
                on_eof   => sub { undef $h; $cb->(undef, $buf) },
                on_read  => sub { $buf .= $_[0]->{rbuf}; $_[0]->{rbuf} = '' },
            );
            $body //= '';
            $h->push_write("$method $path HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                . "Content-Type: application/json\r\nContent-Length: " . length($body)
                . "\r\n\r\n$body");
        });
    };
    my $val = "via EV::Etcd \x00\xff";
    my ($pr) = ae_call(put => "${P}http", $val);
    $cv = AE::cv;
    my (%http, $got);
    $cv->begin;
    for my $req ([ health => GET => '/health', undef ],
                 [ range  => POST => '/v3/kv/range', JSON::PP::encode_json({ key => encode_base64("${P}http", '') }) ]) {
        my ($name, @req) = @$req;
        $cv->begin;
        $http->(@req, sub { $http{$name} = [@_]; $cv->end });
    }
    $cv->begin;
    $c->get("${P}http", sub { $got = $_[0]; $cv->end });
    $cv->end;
    recv_within($cv, 10, 'HTTP requests');

    my ($herr, $health) = @{ $http{health} || [] };
    ok !$herr, 'GET /health' or diag $herr;
    like $health, qr{^HTTP/1\.\d 200 }, '... 200';
    my ($hbody) = ($health // '') =~ /\r\n\r\n(.*)\z/s;
    is eval { JSON::PP::decode_json($hbody)->{health} }, 'true', '... etcd says it is healthy';

    my ($rerr, $range) = @{ $http{range} || [] };
    ok !$rerr, 'POST /v3/kv/range' or diag $rerr;
    like $range, qr{^HTTP/1\.\d 200 }, '... 200';
    my ($rbody) = ($range // '') =~ /\r\n\r\n(.*)\z/s;
    my $kv = eval { JSON::PP::decode_json($rbody)->{kvs}[0] } || {};
    is decode_base64($kv->{key} // ''), "${P}http", '... the gateway finds the key';
    is decode_base64($kv->{value} // ''), $val, '... with the bytes EV::Etcd stored';
    is $kv->{mod_revision}, $pr->{header}{revision}, '... at the revision the put reported';
    is $got->{kvs}[0]{value}, $val, 'the EV::Etcd get in flight alongside read the same';
}

# --- errors arrive as hashes --------------------------------------------------
{
    my ($r, $e) = ae_call(lease_revoke => 424242);
    ok !defined $r, 'revoking an unknown lease: no response';
    is ref $e, 'HASH', '... an error hash';
    is $e->{status}, 'NOT_FOUND', '... status NOT_FOUND';
    is $e->{source}, 'lease_revoke', '... from lease_revoke';
    is $e->{retryable}, 0, '... not retryable';
    like $e->{message}, qr/requested lease not found/, '... with etcd\'s message';

    # The other idiom: a failure croaks the condvar, so ->recv dies.
    my $cv = AE::cv;
    $c->lease_revoke(424242, sub {
        my ($resp, $err) = @_;
        $err ? $cv->croak("$err->{status}: $err->{message}\n") : $cv->send($resp);
    });
    my $late;
    my $t = AE::timer(10, 0, sub { $late = 1; $cv->send });
    my $ok = eval { $cv->recv; 1 };
    ok !$late, 'croaked condvar: answered in time';
    ok !$ok, '... ->recv died';
    like $@, qr/^NOT_FOUND: .*requested lease not found/, '... with the status and message';
}

# --- a deadline made with AE::timer ----------------------------------------
{
    my ($l1) = ae_call(lease_grant => 30);
    my ($l2) = ae_call(lease_grant => 30);
    my ($held, $he) = ae_call(lock => "${P}lock", $l1->{id});
    ok !$he, 'first lock taken' or diag explain $he;

    # The second lock waits for the first; give up after 0.5 s.
    my $cv   = AE::cv;
    my $late = AE::cv;
    $c->lock("${P}lock", $l2->{id}, sub { $late->send(@_); $cv->send('locked') });
    AE::now_update();
    my $t0 = AE::now;
    my $dl = AE::timer(0.5, 0, sub { $cv->send('deadline') });
    is recv_within($cv, 10, 'lock or deadline'), 'deadline', 'the deadline fired first';
    my $took = AE::now - $t0;    # loop time, the clock the timer runs on
    cmp_ok $took, '>=', 0.45, '... after about 0.5 s';
    cmp_ok $took, '<', 5, '... not much later';
    ok !$late->ready, '... the lock is still waiting';

    # The late answer still comes, once the first holder lets go.
    my (undef, $re) = ae_call(lease_revoke => $l1->{id});
    ok !$re, 'first holder\'s lease revoked';
    my ($lr, $le) = recv_within($late, 10, 'late lock');
    ok !$le, 'the waiting lock was then granted' or diag explain $le;
    like $lr->{key}, qr{^\Q${P}lock/\E}, '... with a key under the lock name';
    isnt $lr->{key}, $held->{key}, '... not the first holder\'s key';
    ae_call(lease_revoke => $l2->{id});
}

# --- no blocking wait inside a callback while ->recv waits -------------------
{
    # AnyEvent refuses a ->recv nested in another ->recv: from an EV::Etcd
    # callback it croaks (here caught), and the outer ->recv goes on.
    my $outer = AE::cv;
    my $inner = AE::cv;
    my $nested_err;
    $c->put("${P}nested", 'n', sub {
        $c->get("${P}nested", sub { $inner->send(@_) });
        $nested_err = eval { $inner->recv; 1 } ? '' : $@;
        $outer->send('outer done');
    });
    is recv_within($outer, 10, 'outer'), 'outer done', 'the outer ->recv returned';
    like $nested_err, qr/recursive blocking wait attempted/, 'the nested ->recv croaked';
    my ($r) = recv_within($inner, 10, 'inner');
    is $r->{kvs}[0]{value}, 'n', '... and its answer arrived later all the same';
}

done_testing;
