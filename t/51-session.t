#!/usr/bin/env perl
# EV::Etcd::Session against a real etcd: calls queued until the lease is
# granted, keys / locks / campaigns carrying the session's lease, the lease
# kept alive, close releasing everything, a lease revoked by another client
# (on_lost once; with rebuild a new lease and the registered keys back), a
# server killed and one frozen past the TTL, a session dropped, a server
# that cannot be reached at all, and bad arguments.
use strict;
use warnings;

use Test::More;
use Scalar::Util qw(weaken);
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call wait_for);

need_etcd();
use EV;
use EV::Etcd;
use EV::Etcd::Session;

sub pause { run_until(sub { 0 }, $_[0]) }

my $srv = start_etcd(name => 'session');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);
my $o = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);    # the "other" party

# A session whose callbacks are recorded.
sub rec_session {
    my (%opt) = @_;
    my $rec = { lost => [], rebuilt => [], ready => [] };
    $rec->{session} = EV::Etcd::Session->new(
        client     => $c,
        ttl        => 2,
        on_lost    => sub { push @{ $rec->{lost} }, [ @_, time ] },
        on_rebuild => sub { push @{ $rec->{rebuilt} }, [@_] },
        on_ready   => sub { push @{ $rec->{ready} }, [@_] },
        %opt,
    );
    return $rec;
}

sub lease_keys {
    my ($id) = @_;
    my $t = ok_call($o, 'lease_time_to_live', $id, { keys => 1 });
    return $t->{ttl} > 0 ? [ sort @{ $t->{keys} // [] } ] : undef;
}

sub lease_of { my $kv = ok_call($o, 'get', $_[0])->{kvs}[0]; $kv ? "$kv->{lease}" : undef }

# A session error as the session gives it.
sub is_session_error {
    my ($err, $message, $what) = @_;
    is_deeply $err, { code => 9, status => 'FAILED_PRECONDITION', message => $message,
                      source => 'session', retryable => 0 }, $what
        or diag explain $err;
}

# Runs a session method and returns its callback's arguments; the callback
# must not run inside the call.
sub scall {
    my ($s, $method, @args) = @_;
    my ($inside, $done, @got) = (1, 0);
    $s->$method(@args, sub { @got = @_; $done = 1; fail("$method called back inside the call") if $inside });
    $inside = 0;
    run_until(\$done, 20) or fail("session $method: no callback in time");
    return @got;
}

# --- calls made before the grant; keys, lock and campaign carry the lease; close ---
{
    my $rec = rec_session();
    my $s = $rec->{session};
    isa_ok $s, 'EV::Etcd::Session';
    is $s->state, 'granting', 'state granting at first';
    is $s->lease_id, undef, 'no lease id before the grant';
    is $s->client, $c, 'client';

    my (@put, @lock);
    $s->put('/s1/a', 'A', sub { push @put, [@_] });
    $s->put('/s1/b', 'B', { prev_kv => 1 }, sub { push @put, [@_] });
    $s->lock('/s1-lock', sub { push @lock, [@_] });
    is scalar(@put) + scalar(@lock), 0, 'queued calls do not answer inside the call';
    ok run_until(sub { @{ $rec->{ready} } && @put == 2 && @lock }, 10), 'granted; the queued calls ran';
    my $id = $s->lease_id;
    like $id, qr/^[1-9][0-9]*$/, 'lease_id once granted';
    is_deeply $rec->{ready}, [ [ $id, undef ] ], 'on_ready once, with the lease id and no error';
    is $s->state, 'live', 'state live';
    is $s->ttl, 2, 'ttl: the granted TTL';
    ok !$put[0][1] && !$put[1][1], 'both puts succeeded' or diag explain \@put;
    ok $put[0][0]{header}, 'put response as the client gives it';
    ok !$lock[0][1], 'lock succeeded';
    like $lock[0][0]{key}, qr{^/s1-lock/}, 'lock key';
    is lease_of($lock[0][0]{key}), $id, 'the lock key carries the session lease';
    is_deeply [ $s->registered_keys ], [ '/s1/a', '/s1/b' ], 'registered keys';

    my $t = ok_call($o, 'lease_time_to_live', $id, { keys => 1 });
    is_deeply [ sort @{ $t->{keys} } ], [ sort '/s1/a', '/s1/b', $lock[0][0]{key} ],
        'lease_time_to_live: the keys and the lock key are attached to the lease';
    is $t->{granted_ttl}, 2, 'granted_ttl 2';

    my ($ready_id, $ready_err) = scall($s, 'ready');
    is $ready_id, $id, 'ready on a live session: the lease id, from the loop';
    ok !$ready_err, 'no error';

    pause(5);    # 2.5 TTLs
    cmp_ok ok_call($o, 'lease_time_to_live', $id)->{ttl}, '>', 0, 'the lease outlives its TTL (kept alive)';
    is ok_call($o, 'get', '/s1/a')->{kvs}[0]{value}, 'A', 'its key is still there';

    my ($d, $derr) = scall($s, 'delete', '/s1/b');
    is $d && $d->{deleted}, 1, 'session delete deletes';
    is_deeply [ $s->registered_keys ], ['/s1/a'], '... and unregisters';

    my ($camp, $cerr) = scall($s, 'campaign', '/s1-elect', 'me', { timeout => 5 });
    ok !$cerr, 'campaign succeeded' or diag explain $cerr;
    is "$camp->{leader}{lease}", $id, 'the leadership carries the session lease';
    is ok_call($o, 'election_leader', '/s1-elect')->{kv}{value}, 'me', 'the session leads';

    # contenders of another client wait behind the session
    my $ol = ok_call($o, 'lease_grant', 30)->{id};
    my ($olock, $ocamp);
    $o->lock('/s1-lock', $ol, { timeout => 0 }, sub { $olock = [@_] });
    $o->election_campaign('/s1-elect', $ol, 'other', { timeout => 0 }, sub { $ocamp = [@_] });
    pause(1);
    ok !$olock && !$ocamp, 'another client waits for the lock and the leadership';

    my ($cl, $clerr) = scall($s, 'close');
    ok !$clerr, 'close succeeded' or diag explain $clerr;
    ok $cl && $cl->{header}, 'close answers with the revoke\'s response';
    is $s->state, 'closed', 'state closed';
    is $s->lease_id, undef, 'no lease id after close';
    is ok_call($o, 'lease_time_to_live', $id)->{ttl}, -1, 'the lease is revoked';
    is ok_call($o, 'get', '/s1/', { prefix => 1 })->{count}, 0, 'its keys are gone';
    ok run_until(sub { $olock && $ocamp }, 10), 'lock and leadership pass to the other client';
    ok !$olock->[1] && !$ocamp->[1], 'without error';
    is ok_call($o, 'election_leader', '/s1-elect')->{kv}{value}, 'other', 'the other client leads now';
    ok_call($o, 'lease_revoke', $ol);

    for my $call ([ put => '/s1/c', 'C' ], [ lock => '/s1-lock' ], [ campaign => '/s1-elect', 'x' ], [ 'ready' ]) {
        my ($m, @a) = @$call;
        my ($r, $e) = scall($s, $m, @a);
        ok !defined $r, "$m after close: no response";
        is_session_error($e, 'session: closed', "$m after close: the session error");
    }
    is_deeply [ $s->registered_keys ], [], 'nothing registered after close';
    is_deeply [ scall($s, 'close') ], [ {}, undef ], 'a second close answers ({}, undef)';
    is scalar(@{ $rec->{lost} }), 0, 'close is no loss: on_lost not called';
}

# --- the lease revoked by another client: on_lost once -------------------------------
{
    my $rec = rec_session();
    my $s = $rec->{session};
    my ($p) = scall($s, 'put', '/s2/a', 'A');
    ok $p, 'put';
    my $id = $s->lease_id;
    ok_call($o, 'lease_revoke', $id);
    ok run_until(sub { @{ $rec->{lost} } }, 10), 'on_lost after the revoke';
    my ($lid, $lerr) = @{ $rec->{lost}[0] };
    is $lid, $id, 'on_lost gets the lost lease id';
    is $lerr->{status}, 'NOT_FOUND', '... and the keepalive error: NOT_FOUND';
    is $lerr->{source}, 'keepalive', '... from the keepalive';
    is $s->state, 'lost', 'state lost';
    is $s->lease_id, undef, 'no lease id';
    for my $call ([ put => '/s2/b', 'B' ], [ lock => '/s2-lock' ], [ campaign => '/s2-elect', 'x' ], [ 'ready' ]) {
        my ($m, @a) = @$call;
        my ($r, $e) = scall($s, $m, @a);
        ok !defined $r, "$m after the loss: no response";
        is_session_error($e, 'session: lease lost', "$m after the loss: the session error");
    }
    is ok_call($o, 'get', '/s2/b')->{count}, 0, 'nothing was written';
    ok_call($o, 'put', '/s2/plain', 'x');
    my ($d, $derr) = scall($s, 'delete', '/s2/plain');
    is $d && $d->{deleted}, 1, 'delete needs no lease: it still goes out';
    pause(3);
    is scalar(@{ $rec->{lost} }), 1, 'on_lost exactly once';
    is scalar(@{ $rec->{rebuilt} }), 0, 'no rebuild without rebuild => 1';
    is_deeply [ scall($s, 'close') ], [ {}, undef ], 'close of a lost session: ({}, undef)';
}

# --- rebuild => 1: a new lease, the registered keys put again --------------------------
{
    my ($rec, $s, $during);
    $rec = rec_session(rebuild => 1, on_lost => sub {
        push @{ $rec->{lost} }, [@_];
        # a put made while the session rebuilds waits for the new lease
        $s->put('/s3/during', 'D', sub { $during = [@_] });
    });
    $s = $rec->{session};
    weaken $s;    # the callback above must not keep the session alive
    scall($s, 'put', '/s3/a', 'A');
    scall($s, 'put', '/s3/b', 'B1');
    scall($s, 'put', '/s3/b', 'B2');    # the newest value counts
    scall($s, 'put', '/s3/c', 'C');
    scall($s, 'delete', '/s3/c');
    my $old = $s->lease_id;

    ok_call($o, 'lease_revoke', $old);
    ok run_until(sub { @{ $rec->{rebuilt} } }, 15), 'on_rebuild after the revoke';
    my ($new, $rerr) = @{ $rec->{rebuilt}[0] };
    ok $new && "$new" ne "$old", 'on_rebuild gets a new lease id';
    ok !$rerr, 'no error' or diag explain $rerr;
    is $s->lease_id, $new, 'lease_id is the new one';
    is $s->state, 'live', 'live again';
    is_deeply lease_keys($new), [ '/s3/a', '/s3/b', '/s3/during' ],
        'the registered keys (and the one put meanwhile) carry the new lease';
    is ok_call($o, 'get', '/s3/b')->{kvs}[0]{value}, 'B2', 'with their latest values';
    is ok_call($o, 'get', '/s3/c')->{count}, 0, 'a deleted key is not put again';
    ok run_until(sub { $during }, 10), 'the put made during the rebuild is answered';
    ok !$during->[1], '... without error' or diag explain $during;
    pause(4.5);
    cmp_ok ok_call($o, 'lease_time_to_live', $new)->{ttl}, '>', 0, 'the new lease is kept alive';
    is scalar(@{ $rec->{lost} }), 1, 'on_lost once';
    is "$rec->{lost}[0][0]", "$old", '... for the old lease';
    is $rec->{lost}[0][1]{status}, 'NOT_FOUND', '... NOT_FOUND';
    scall($s, 'close');
    is ok_call($o, 'get', '/s3/', { prefix => 1 })->{count}, 0, 'close removes the rebuilt keys';
}

# --- server killed for longer than the TTL, then restarted ------------------------------
{
    my $k = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 2, max_retries => 1);
    my $rec = rec_session(client => $k, rebuild => 1);
    my $s = $rec->{session};
    ok run_until(sub { @{ $rec->{ready} } }, 10), 'ready';
    scall($s, 'put', '/s4/a', 'A');
    my $old = $s->lease_id;
    $srv->kill9;
    my $t0 = time;
    ok run_until(sub { @{ $rec->{lost} } }, 20), 'on_lost while the server is down';
    diag sprintf 'lost %.1fs after the kill (%s: %s)', $rec->{lost}[0][2] - $t0,
        $rec->{lost}[0][1]{status} // '?', $rec->{lost}[0][1]{message} // '?' if @{ $rec->{lost} };
    is $rec->{lost}[0][0], $old, 'for the old lease';
    like $rec->{lost}[0][1]{status} // '', qr/^(?:UNAVAILABLE|DEADLINE_EXCEEDED)$/, 'with the keepalive\'s error';
    pause(1);
    is $s->state, 'rebuilding', 'rebuilding while the server is away';
    $srv->restart;
    ok run_until(sub { @{ $rec->{rebuilt} } }, 30), 'rebuilt after the restart';
    my ($new, $err) = @{ $rec->{rebuilt}[0] // [] };
    ok $new && "$new" ne "$old" && !$err, 'a new lease, no error' or diag explain $err;
    is lease_of('/s4/a'), "$new", 'the key carries the new lease';
    ok run_until(sub { ok_call($o, 'lease_time_to_live', $old)->{ttl} == -1 }, 15),
        'the old lease is gone (revoked by the session, or expired)';
    is scalar(@{ $rec->{lost} }), 1, 'on_lost once for the old lease';
    scall($s, 'close');
}

# --- server frozen past the TTL: local loss ----------------------------------------------
# The rebuilding session has had keepalive replies before the freeze: its
# keepalive reports the silence. The other is frozen right after its grant,
# maybe before any reply: then the session's own clock does.
{
    my $f = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 2);
    my $rb = rec_session(client => $f, rebuild => 1);
    ok run_until(sub { @{ $rb->{ready} } }, 10), 'a session ready';
    scall($rb->{session}, 'put', '/s5/rebuilt', 'R');
    pause(1);    # a refresh is answered every 2/3 s
    my $plain = rec_session(client => $f);
    ok run_until(sub { @{ $plain->{ready} } }, 10), 'another session ready';
    scall($plain->{session}, 'put', '/s5/plain', 'P');
    my ($old_plain, $old_rb) = map { $_->{session}->lease_id } $plain, $rb;

    kill 'STOP', $srv->pid;
    my $t0 = time;
    my $lost = run_until(sub { @{ $plain->{lost} } && @{ $rb->{lost} } }, 20);
    my $frozen = time - $t0;
    kill 'CONT', $srv->pid;
    ok $lost, 'both sessions report the loss while the server is frozen'
        or diag sprintf 'plain: %d on_lost, state %s, lease %s has %s s left; rebuild: %d on_lost, state %s',
            scalar @{ $plain->{lost} }, $plain->{session}->state, $old_plain,
            ok_call($o, 'lease_time_to_live', $old_plain)->{ttl}, scalar @{ $rb->{lost} }, $rb->{session}->state;
    for my $r ($plain, $rb) {
        my $e = @{ $r->{lost} } ? $r->{lost}[0][1] : {};
        is $e->{status}, 'DEADLINE_EXCEEDED', 'no reply within the TTL: DEADLINE_EXCEEDED';
        like $e->{source} // '', qr/^(?:keepalive|session)$/, 'reported by the keepalive or the session';
        like $e->{message} // '', qr/within .*TTL/, 'saying so';
        is $e->{retryable}, 1, 'retryable, as DEADLINE_EXCEEDED always is';
        diag sprintf 'frozen %.1fs; %s', $frozen, $e->{message} // '-';
    }
    is $plain->{lost}[0][0], $old_plain, 'on_lost with the lost lease id';
    is $plain->{session}->state, 'lost', 'without rebuild the session is over';

    ok run_until(sub { @{ $rb->{rebuilt} } }, 30), 'with rebuild: rebuilt after the thaw';
    my ($new, $err) = @{ $rb->{rebuilt}[0] // [] };
    ok $new && "$new" ne "$old_rb" && !$err, 'a new lease, no error' or diag explain $err;
    is lease_of('/s5/rebuilt'), "$new", 'the registered key carries the new lease';
    ok run_until(sub { !ok_call($o, 'get', '/s5/plain')->{count} }, 15),
        'the key of the session without rebuild is gone with its lease';
    pause(1);
    is scalar(@{ $plain->{lost} }), 1, 'on_lost once (plain)';
    is scalar(@{ $rb->{lost} }), 1, 'on_lost once (rebuild)';
    scall($rb->{session}, 'close');
}

# --- a client with a namespace -------------------------------------------------------
{
    my $ns = EV::Etcd->new(endpoints => [ $srv->endpoint ], namespace => 'ns51/');
    my $s = EV::Etcd::Session->new(client => $ns, ttl => 5);
    my (undef, $e) = scall($s, 'put', 'k', 'v');
    ok !$e, 'a session on a namespaced client puts';
    is lease_of('ns51/k'), "" . $s->lease_id, 'the key lands in the namespace with the lease';
    my ($l) = scall($s, 'lock', 'l');
    like $l->{key}, qr{^l/}, 'the lock key comes back without the namespace';
    scall($s, 'close');
    is ok_call($o, 'get', 'ns51/', { prefix => 1 })->{count}, 0, 'close removes them';
}

# --- a session dropped: its lease is revoked -------------------------------------------
{
    my $s = EV::Etcd::Session->new(client => $c, ttl => 30);
    my ($p, $e) = scall($s, 'put', '/s6/k', 'v');
    ok !$e, 'put';
    my $id = $s->lease_id;
    undef $s;
    ok run_until(sub { ok_call($o, 'lease_time_to_live', $id)->{ttl} == -1 }, 10),
        'dropping the last reference revokes the lease (no cycle keeps the session)';
    is ok_call($o, 'get', '/s6/k')->{count}, 0, 'and its key';

    my %before = map { ("$_->{id}" => 1) } @{ ok_call($o, 'lease_leases')->{leases} };
    EV::Etcd::Session->new(client => $c, ttl => 30);    # dropped before the grant came back
    pause(2);
    my @extra = grep { !$before{"$_->{id}"} } @{ ok_call($o, 'lease_leases')->{leases} };
    is scalar(@extra), 0, 'a session dropped before its grant leaves no lease behind';
}

# --- no server at all ----------------------------------------------------------------
{
    my $dead = EV::Etcd->new(endpoints => [ '127.0.0.1:' . free_port() ], timeout => 2);
    my $rec = rec_session(client => $dead);
    my $s = $rec->{session};
    my ($r, $e) = scall($s, 'put', '/s7/k', 'v');
    ok !$r, 'put on a session whose grant failed: no response';
    is $e->{status}, 'UNAVAILABLE', 'the grant\'s error';
    is $e->{source}, 'lease_grant', 'source lease_grant';
    is scalar(@{ $rec->{ready} }), 1, 'on_ready once';
    is $rec->{ready}[0][0], undef, 'on_ready: no lease id';
    is $rec->{ready}[0][1]{status}, 'UNAVAILABLE', 'on_ready: the error';
    is $s->state, 'failed', 'state failed';

    my $rrec = rec_session(client => $dead, rebuild => 1);
    pause(2.5);
    is $rrec->{session}->state, 'granting', 'with rebuild the grant is tried again';
    is scalar(@{ $rrec->{ready} }), 0, 'and on_ready waits';
    is_deeply [ scall($rrec->{session}, 'close') ], [ {}, undef ], 'close while retrying: ({}, undef)';
    is scalar(@{ $rrec->{ready} }), 1, 'on_ready then hears the close';
    is_session_error($rrec->{ready}[0][1], 'session: closed', '... as a session error');
}

# --- callbacks that die ----------------------------------------------------------------
{
    my @died;
    local $EV::DIED = sub { push @died, $@ };
    my ($readies, $rebuilt) = (0, 0);
    my $s = EV::Etcd::Session->new(client => $c, ttl => 2, rebuild => 1,
        on_ready   => sub { $readies++; die "ready boom\n" },
        on_lost    => sub { die "lost boom\n" },
        on_rebuild => sub { $rebuilt++ });
    my ($r, $e) = scall($s, 'put', '/s9/k', 'v');    # queued behind on_ready
    ok !$e, 'a dying on_ready does not stop the calls queued behind it';
    is $readies, 1, 'on_ready called once';
    ok_call($o, 'lease_revoke', $s->lease_id);
    ok run_until(sub { $rebuilt }, 15), 'a dying on_lost does not stop the rebuild';
    is_deeply \@died, [ "ready boom\n", "lost boom\n" ], 'their exceptions went to $EV::DIED';
    is lease_of('/s9/k'), "" . $s->lease_id, 'the key is back';
    scall($s, 'close');
}

# --- bad arguments ----------------------------------------------------------------------
{
    my $file = __FILE__;
    my $line;
    my @new_cases = (
        [ [ ttl => 2 ],                           qr/^EV::Etcd::Session->new: client must be an EV::Etcd object, got undef/ ],
        [ [ client => 'x', ttl => 2 ],            qr/^EV::Etcd::Session->new: client must be an EV::Etcd object, got 'x'/ ],
        [ [ client => {}, ttl => 2 ],             qr/^EV::Etcd::Session->new: client must be an EV::Etcd object/ ],
        [ [ client => $c ],                       qr/^EV::Etcd::Session->new: ttl must be a positive integer, got undef/ ],
        [ [ client => $c, ttl => 0 ],             qr/^EV::Etcd::Session->new: ttl must be a positive integer, got '0'/ ],
        [ [ client => $c, ttl => -5 ],            qr/^EV::Etcd::Session->new: ttl must be a positive integer, got '-5'/ ],
        [ [ client => $c, ttl => 'abc' ],         qr/^EV::Etcd::Session->new: ttl must be a positive integer, got 'abc'/ ],
        [ [ client => $c, ttl => 1.5 ],           qr/^EV::Etcd::Session->new: ttl must be a positive integer, got '1.5'/ ],
        [ [ client => $c, ttl => 2, tll => 1 ],   qr/^EV::Etcd::Session->new: unknown option 'tll'/ ],
        [ [ client => $c, ttl => 2, on_lost => 'x' ],    qr/^EV::Etcd::Session->new: on_lost must be a code reference/ ],
        [ [ client => $c, ttl => 2, on_rebuild => [] ],  qr/^EV::Etcd::Session->new: on_rebuild must be a code reference/ ],
        [ [ client => $c, ttl => 2, on_ready => {} ],    qr/^EV::Etcd::Session->new: on_ready must be a code reference/ ],
        [ [ client => $c, 'ttl' ],                qr/^EV::Etcd::Session->new: options must be name => value pairs/ ],
    );
    for my $case (@new_cases) {
        my ($args, $re) = @$case;
        $line = __LINE__ + 1;
        my $ok = eval { EV::Etcd::Session->new(@$args); 1 };
        ok !$ok, "new croaks: $re";
        like $@, qr/$re.* at \Q$file\E line $line\.$/, '... at the caller\'s line';
    }

    my $s = EV::Etcd::Session->new(client => $c, ttl => 5);
    my @cases = (
        [ put => [ '/k', 'v' ],                     qr/^callback must be a code reference \(session put\)/ ],
        [ put => [ '/k', 'v', {}, 'x' ],            qr/^callback must be a code reference \(session put\)/ ],
        [ put => [ undef, 'v', sub { } ],           qr/^session put: key must be defined/ ],
        [ put => [ '/k', undef, sub { } ],          qr/^session put: value must be defined/ ],
        [ put => [ [], 'v', sub { } ],              qr/^session put: key must be a string, not ARRAY reference/ ],
        [ put => [ '/k', 'v', { lease => 1 }, sub { } ],        qr/^session put: lease is not an option here: the session attaches its own lease/ ],
        [ put => [ '/k', 'v', { ignore_lease => 1 }, sub { } ], qr/^session put: ignore_lease is not an option here/ ],
        [ put => [ '/k', 'v', { bogus => 1 }, sub { } ],        qr/^session put: unknown option 'bogus'/ ],
        [ put => [ '/k', 'v', 'opts', sub { } ],                qr/^session put: options must be a hash reference/ ],
        [ put => [ '/k', 'v', { timeout => -1 }, sub { } ],     qr/^session put: timeout must be a finite number of seconds, 0 or more/ ],
        [ put => [ '/k', 'v', {}, sub { }, 'extra' ],           qr/^session put: wrong number of arguments|^callback must be/ ],
        [ delete => [ '/k' ],                       qr/^callback must be a code reference \(session delete\)/ ],
        [ delete => [ undef, sub { } ],             qr/^session delete: key must be defined/ ],
        [ lock => [ '/l' ],                         qr/^callback must be a code reference \(session lock\)/ ],
        [ lock => [ '/l', { ttl => 1 }, sub { } ],  qr/^session lock: unknown option 'ttl'/ ],
        [ lock => [ undef, sub { } ],               qr/^session lock: name must be defined/ ],
        [ campaign => [ '/e', sub { } ],            qr/^session campaign: value must be defined|^callback must be/ ],
        [ campaign => [ '/e', undef, sub { } ],     qr/^session campaign: value must be defined/ ],
        [ ready => [],                              qr/^callback must be a code reference \(session ready\)/ ],
        [ close => [ 'x' ],                         qr/^callback must be a code reference \(session close\)/ ],
    );
    for my $case (@cases) {
        my ($m, $args, $re) = @$case;
        $line = __LINE__ + 1;
        my $ok = eval { $s->$m(@$args); 1 };
        ok !$ok, "$m croaks: $re";
        like $@, qr/$re.* at \Q$file\E line $line\.$/, '... at the caller\'s line';
    }
    eval { EV::Etcd::Session::put({}, '/k', 'v', sub { }) };
    like $@, qr/^session put: called on something that is not an EV::Etcd::Session/, 'wrong invocant';
    is_deeply [ $s->registered_keys ], [], 'croaked puts register nothing';
    my ($r, $e) = scall($s, 'put', '/s8/k', 'v', { timeout => 5, prev_kv => 1 });
    ok !$e, 'a good put still works after the croaks';
    scall($s, 'close');
}

done_testing;
