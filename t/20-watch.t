#!/usr/bin/env perl
# Watch: every option (prefix, range_end, start_revision, prev_kv,
# progress_notify, watch_id, auto_reconnect), the shape of watch messages,
# cancel semantics, dropped handles, and the error a compacted start
# revision produces.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call cancel_sync);

need_etcd();
use EV;
use EV::Etcd;

# One server for the whole file; progress notifications every second so the
# progress_notify option can be observed without a long wait.
my $srv = start_etcd(
    name  => 'watch',
    extra => ['--experimental-watch-progress-notify-interval=1s'],
);
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);



# A watch whose messages and errors are recorded in order.
sub rec_watch {
    my ($client, $key, $opt) = @_;
    my $rec = { msgs => [], errs => [], all => [] };
    my @args = ($key, $opt ? ($opt) : ());
    $rec->{handle} = $client->watch(@args, sub {
        my ($resp, $err) = @_;
        push @{ $rec->{all} }, [ $resp, $err ];
        if ($err) { push @{ $rec->{errs} }, $err }
        else      { push @{ $rec->{msgs} }, $resp }
    });
    return $rec;
}

sub events_of { my ($rec) = @_; map { @{ $_->{events} } } @{ $rec->{msgs} } }
sub keys_of   { map { $_->{kv}{key} } events_of(@_) }
sub created_ok {
    my ($rec, $name) = @_;
    ok run_until(sub { @{ $rec->{msgs} } || @{ $rec->{errs} } }, 10), "$name: first message arrives";
    my $first = $rec->{msgs}[0];
    ok $first && $first->{created}, "$name: first message is the created message";
}
sub current_rev { ok_call($c, 'get', 'no-such-key-just-for-revision')->{header}{revision} }

# --- message shape, created only once -------------------------------------
{
    my $w = rec_watch($c, '/shape/k');
    created_ok($w, 'plain watch');
    my $m0 = $w->{msgs}[0];
    is_deeply $m0->{events}, [], 'created message has no events';
    like $m0->{watch_id}, qr/^\d+$/, 'created message carries a numeric watch_id';
    ok $m0->{header} && $m0->{header}{revision} > 0, 'created message has a header with a revision';
    ok !exists $m0->{compact_revision}, 'no compact_revision key when it is zero';

    my $p1 = ok_call($c, 'put', '/shape/k', 'one');
    my $p2 = ok_call($c, 'put', '/shape/k', 'two');
    ok_call($c, 'put', '/shape/other', 'ignored');
    my $d  = ok_call($c, 'delete', '/shape/k');
    ok run_until(sub { events_of($w) >= 3 }, 10), 'three events arrive';
    run_until(sub { 0 }, 0.3);    # anything extra would show up now

    my @ev = events_of($w);
    is scalar(@ev), 3, 'exactly the three events of the watched key';
    is_deeply [ map { $_->{type} } @ev ], [qw(PUT PUT DELETE)], 'event types in order';
    is_deeply [ map { $_->{kv}{key} } @ev ], [ ('/shape/k') x 3 ], 'event keys';
    is $ev[0]{kv}{value}, 'one', 'first PUT value';
    is $ev[1]{kv}{value}, 'two', 'second PUT value';
    is $ev[0]{kv}{mod_revision}, $p1->{header}{revision}, 'first event mod_revision = put revision';
    is $ev[1]{kv}{mod_revision}, $p2->{header}{revision}, 'second event mod_revision = put revision';
    is $ev[1]{kv}{create_revision}, $p1->{header}{revision}, 'create_revision kept on update';
    is $ev[1]{kv}{version}, 2, 'version counts updates';
    is $ev[2]{kv}{mod_revision}, $d->{header}{revision}, 'DELETE event carries the delete revision';
    ok !exists $ev[1]{prev_kv}, 'no prev_kv unless asked for';

    my @created = grep { $_->{created} } @{ $w->{msgs} };
    is scalar(@created), 1, 'created is set on exactly one message';
    ok !$_->{created}, 'later message has created false' for @{ $w->{msgs} }[1 .. $#{ $w->{msgs} }];
    is_deeply [ map { $_->{watch_id} } @{ $w->{msgs} } ],
              [ ($m0->{watch_id}) x @{ $w->{msgs} } ], 'every message carries the same watch_id';
    my @msg_rev = map { $_->{header}{revision} } grep { @{ $_->{events} } } @{ $w->{msgs} };
    is $msg_rev[-1], $d->{header}{revision}, 'header revision of the last event message';
    is scalar(@{ $w->{errs} }), 0, 'no errors';

    my @c = cancel_sync($w);
    is_deeply \@c, [ [ {}, undef ] ], 'cancel calls back with ({}, undef)';
}

# --- binary keys -----------------------------------------------------------
{
    my $key = "/bin/\x00\xff\x01k";
    my $val = "v\x00\xfe";
    my $w = rec_watch($c, $key);
    created_ok($w, 'binary key watch');
    ok_call($c, 'put', $key, $val);
    ok run_until(sub { events_of($w) >= 1 }, 10), 'event for a binary key';
    my ($ev) = events_of($w);
    is $ev->{kv}{key}, $key, 'binary key round-trips in the event';
    is $ev->{kv}{value}, $val, 'binary value round-trips in the event';
    ok !utf8::is_utf8($ev->{kv}{key}), 'event key has no UTF-8 flag';
    cancel_sync($w);
}

# --- prefix ----------------------------------------------------------------
{
    my $w = rec_watch($c, '/pfx/', { prefix => 1 });
    created_ok($w, 'prefix watch');
    ok_call($c, 'put', $_, 'x') for '/pfx/a', '/pfy/a', '/pfx', '/pfx/b/c', '/pf', '/pfx/z';
    ok run_until(sub { grep { $_ eq '/pfx/z' } keys_of($w) }, 10), 'prefix watch sees the last key';
    is_deeply [ keys_of($w) ], [ '/pfx/a', '/pfx/b/c', '/pfx/z' ], 'exactly the keys under the prefix, in order';
    cancel_sync($w);

    # prefix with an empty key watches everything
    my $all = rec_watch($c, '', { prefix => 1 });
    created_ok($all, 'watch on all keys');
    ok_call($c, 'put', $_, 'x') for 'a-first', '/zz/last';
    ok run_until(sub { grep { $_ eq '/zz/last' } keys_of($all) }, 10), 'all-keys watch sees the last key';
    is_deeply [ keys_of($all) ], [ 'a-first', '/zz/last' ], 'all-keys watch sees every key';
    cancel_sync($all);
}

# --- range_end -------------------------------------------------------------
{
    my $w = rec_watch($c, '/rng/b', { range_end => '/rng/d' });
    created_ok($w, 'range watch');
    ok_call($c, 'put', $_, 'x') for '/rng/a', '/rng/b', '/rng/c', '/rng/d', '/rng/e', '/rng/bz', '/rng/cz';
    ok run_until(sub { grep { $_ eq '/rng/cz' } keys_of($w) }, 10), 'range watch sees its last key';
    is_deeply [ keys_of($w) ], [ '/rng/b', '/rng/c', '/rng/bz', '/rng/cz' ],
        'only keys in [b, d) are delivered (range_end exclusive)';
    cancel_sync($w);
}

# --- start_revision replays history --------------------------------------
{
    my @rev = map { ok_call($c, 'put', '/hist', "v$_")->{header}{revision} } 1 .. 3;
    push @rev, ok_call($c, 'delete', '/hist')->{header}{revision};
    ok_call($c, 'put', '/hist-other', 'noise');

    my $w = rec_watch($c, '/hist', { start_revision => $rev[0] });
    ok run_until(sub { events_of($w) >= 4 }, 10), 'replayed history arrives';
    run_until(sub { 0 }, 0.3);
    my @ev = events_of($w);
    is scalar(@ev), 4, 'four historical events, nothing else';
    is_deeply [ map { $_->{kv}{mod_revision} } @ev ], \@rev, 'events in revision order from start_revision';
    is_deeply [ map { $_->{type} } @ev ], [qw(PUT PUT PUT DELETE)], 'types of the replayed events';
    is_deeply [ map { $_->{kv}{value} } @ev[0 .. 2] ], [qw(v1 v2 v3)], 'values of the replayed events';
    ok $w->{msgs}[0]{created}, 'first message of a replaying watch is still created';

    my $late = rec_watch($c, '/hist', { start_revision => $rev[2] });
    ok run_until(sub { events_of($late) >= 2 }, 10), 'watch from a later revision';
    run_until(sub { 0 }, 0.3);
    is_deeply [ map { $_->{kv}{mod_revision} } events_of($late) ], [ @rev[2, 3] ],
        'only events at or after start_revision';

    # live events keep coming after the replay
    my $p = ok_call($c, 'put', '/hist', 'live');
    ok run_until(sub { events_of($w) >= 5 }, 10), 'live event after the replay';
    is((events_of($w))[-1]{kv}{mod_revision}, $p->{header}{revision}, 'live event follows the history');
    cancel_sync($_) for $w, $late;
}

# --- start_revision in the future ------------------------------------------
{
    my $now = current_rev();
    my $w = rec_watch($c, '/future', { start_revision => $now + 3 });
    created_ok($w, 'watch from a future revision');
    my @rev = map { ok_call($c, 'put', '/future', "f$_")->{header}{revision} } 1 .. 4;
    ok run_until(sub { events_of($w) >= 2 }, 10), 'events from the future revision arrive';
    run_until(sub { 0 }, 0.3);
    my @got = map { $_->{kv}{mod_revision} } events_of($w);
    cmp_ok $got[0], '>=', $now + 3, 'nothing before start_revision';
    is_deeply \@got, [ grep { $_ >= $now + 3 } @rev ], 'every event from start_revision on';
    cancel_sync($w);
}

# --- cancel from inside the watch callback ---------------------------------------
{
    my (@seen, @cb, $h, $at_cb);
    $h = $c->watch('/self/', { prefix => 1 }, sub {
        my ($resp, $err) = @_;
        push @seen, [ $resp, $err ];
        return if $err || !@{ $resp->{events} } || @cb;
        $h->cancel(sub { push @cb, [@_]; $at_cb = @seen });
        push @cb, 'requested';
    });
    ok run_until(sub { @seen }, 10), 'self-cancelling watch created';
    # several separate writes in quick succession
    my $left = 6;
    $c->put("/self/$_", 'x', sub { $left-- }) for 1 .. 6;
    ok run_until(sub { @cb >= 2 && !$left }, 10), 'cancel issued from the callback completes';
    is_deeply $cb[1], [ {}, undef ], 'with ({}, undef)';
    ok_call($c, 'put', '/self/late', 'x');
    run_until(sub { 0 }, 0.5);
    is scalar(@seen), $at_cb, 'nothing delivered after the cancel callback';
    is scalar(grep { $_->[1] } @seen), 0, 'no error';
}

# --- prev_kv ---------------------------------------------------------------
{
    my $w = rec_watch($c, '/pkv', { prev_kv => 1 });
    created_ok($w, 'prev_kv watch');
    my $r1 = ok_call($c, 'put', '/pkv', 'first');
    my $r2 = ok_call($c, 'put', '/pkv', 'second');
    ok_call($c, 'delete', '/pkv');
    ok run_until(sub { events_of($w) >= 3 }, 10), 'three events with prev_kv';
    my @ev = events_of($w);
    ok !defined $ev[0]{prev_kv}, 'creating PUT has no prev_kv';
    is $ev[1]{type}, 'PUT', 'update event';
    is $ev[1]{prev_kv}{value}, 'first', 'update carries the previous value';
    is $ev[1]{prev_kv}{key}, '/pkv', 'prev_kv key';
    is $ev[1]{prev_kv}{mod_revision}, $r1->{header}{revision}, 'prev_kv mod_revision is the old one';
    is $ev[1]{prev_kv}{version}, 1, 'prev_kv version';
    is $ev[2]{type}, 'DELETE', 'delete event';
    is $ev[2]{prev_kv}{value}, 'second', 'delete carries the deleted value';
    is $ev[2]{prev_kv}{mod_revision}, $r2->{header}{revision}, 'delete prev_kv mod_revision';
    cancel_sync($w);
}

# --- progress_notify ------------------------------------------------------
{
    my $pn    = rec_watch($c, '/progress/quiet', { progress_notify => 1 });
    my $plain = rec_watch($c, '/progress/quiet2');
    created_ok($pn, 'progress_notify watch');
    created_ok($plain, 'companion watch without progress_notify');
    my $rev = current_rev();
    my $t0 = time;
    ok run_until(sub { @{ $pn->{msgs} } >= 2 }, 15), 'a progress notification arrives on a quiet key';
    diag sprintf 'first progress notification after %.1fs', time - $t0;
    my $n = $pn->{msgs}[1];
    is_deeply $n->{events}, [], 'progress notification has events => []';
    ok !$n->{created}, 'progress notification is not a created message';
    is $n->{watch_id}, $pn->{msgs}[0]{watch_id}, 'progress notification carries the watch_id';
    cmp_ok $n->{header}{revision}, '>=', $rev, 'progress notification header has the current revision';
    run_until(sub { @{ $pn->{msgs} } >= 3 }, 5);
    ok @{ $pn->{msgs} } >= 3, 'progress notifications repeat';
    is scalar(@{ $plain->{msgs} }), 1, 'a watch without progress_notify gets no notifications';
    is scalar(@{ $pn->{errs} }) + @{ $plain->{errs} }, 0, 'no errors';
    cancel_sync($_) for $pn, $plain;
}

# --- watch_id --------------------------------------------------------------
{
    my $cl = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
    my $a = rec_watch($cl, '/wid/a');
    my $b = rec_watch($cl, '/wid/b');
    created_ok($_, 'auto id watch') for $a, $b;
    my ($ida, $idb) = map { $_->{msgs}[0]{watch_id} } $a, $b;
    isnt $ida, $idb, 'two watches get different ids';

    my $x = rec_watch($cl, '/wid/x', { watch_id => 1000 });
    created_ok($x, 'explicit watch_id');
    is $x->{msgs}[0]{watch_id}, 1000, 'explicit watch_id reported in the created message';
    ok_call($c, 'put', '/wid/x', '1');
    ok run_until(sub { events_of($x) }, 10), 'event for explicit-id watch';
    is $x->{msgs}[-1]{watch_id}, 1000, 'explicit watch_id reported with events';

    my $dup = rec_watch($cl, '/wid/dup', { watch_id => 1000 });
    ok run_until(sub { @{ $dup->{all} } }, 10), 'duplicate watch_id gets an answer';
    run_until(sub { 0 }, 0.3);
    is scalar(@{ $dup->{all} }), 1, 'exactly one callback for the duplicate';
    my $e = $dup->{errs}[0];
    ok $e, 'duplicate watch_id is an error';
    is $e->{status}, 'ALREADY_EXISTS', 'status ALREADY_EXISTS';
    is $e->{code}, 6, 'code 6';
    is $e->{source}, 'watch', 'source watch';
    is $e->{retryable}, 0, 'not retryable';
    ok length($e->{message}), 'has a message';

    # the original holder of the id is unaffected; the duplicate delivers nothing
    ok_call($c, 'put', '/wid/dup', 'nobody listens');
    ok_call($c, 'put', '/wid/x', '2');
    ok run_until(sub { events_of($x) >= 2 }, 10), 'original watch still delivers';
    is scalar(@{ $dup->{all} }), 1, 'the failed duplicate delivers nothing';

    my @dc = cancel_sync($dup);
    is_deeply \@dc, [ [ {}, undef ] ], 'cancel on the failed duplicate succeeds';

    # an explicit id equal to an auto id already in use is a duplicate, too
    my $clash = rec_watch($cl, '/wid/clash', { watch_id => $ida });
    ok run_until(sub { @{ $clash->{all} } }, 10), 'explicit id clashing with an auto id answered';
    is $clash->{errs}[0] && $clash->{errs}[0]{status}, 'ALREADY_EXISTS', 'clash with an auto id: ALREADY_EXISTS';

    # once cancelled, the id may be used again
    cancel_sync($x);
    my $again = rec_watch($cl, '/wid/again', { watch_id => 1000 });
    created_ok($again, 'reused id after cancel');
    is $again->{msgs}[0]{watch_id}, 1000, 'id 1000 reused after cancel';

    # auto ids never collide with an explicit id taken earlier
    my $tk = rec_watch($cl, '/wid/taken', { watch_id => $idb + 1 });
    created_ok($tk, 'explicit id one above the last auto id');
    my $auto = rec_watch($cl, '/wid/auto');
    created_ok($auto, 'next auto-id watch');
    is scalar(@{ $auto->{errs} }), 0, 'auto id does not collide with a taken explicit id';
    isnt $auto->{msgs}[0]{watch_id}, $idb + 1, 'auto id skips the explicit one';
    cancel_sync($_) for $a, $b, $again, $tk, $auto, $clash;
}

# --- cancel semantics -----------------------------------------------------
{
    my $w = rec_watch($c, '/cnl/', { prefix => 1 });
    created_ok($w, 'watch to cancel');

    # keep writing while the cancel is on its way
    my ($n, $writing) = (0, 1);
    my $put; $put = sub {
        return unless $writing;
        $c->put('/cnl/' . $n++, 'x', sub { $put->() });
    };
    $put->();
    ok run_until(sub { events_of($w) >= 5 }, 10), 'events flow before cancel';

    my (@cb, $msgs_at_cancel_cb);
    $w->{handle}->cancel(sub {
        push @cb, [@_];
        $msgs_at_cancel_cb = scalar @{ $w->{all} };
    });
    is scalar(@cb), 0, 'first cancel does not call back inside the call';
    ok run_until(sub { @cb }, 10), 'cancel calls back';
    is_deeply $cb[0], [ {}, undef ], 'cancel callback gets ({}, undef)';

    # writes continue after the cancel confirmed; nothing may reach the watch
    run_until(sub { 0 }, 1);
    $writing = 0;
    ok_call($c, 'put', '/cnl/final', 'x');
    run_until(sub { 0 }, 0.5);
    is scalar(@{ $w->{all} }), $msgs_at_cancel_cb, 'no message after the cancel callback';
    is scalar(@cb), 1, 'cancel callback called once';
    cmp_ok $n, '>', 5, "writes went on during and after the cancel ($n puts)";

    my (@second, $returned);
    $w->{handle}->cancel(sub { push @second, [ @_, $returned ] });
    $returned = 1;
    is scalar(@second), 1, 'second cancel calls back before cancel returns';
    is_deeply $second[0], [ {}, undef, undef ], 'second cancel: ({}, undef)';
    my @third;
    $w->{handle}->cancel(sub { push @third, [@_] });
    is_deeply \@third, [ [ {}, undef ] ], 'third cancel too';
    run_until(sub { 0 }, 0.2);
    is scalar(@cb), 1, 'first cancel callback still called once';

    ok !eval { $w->{handle}->cancel('nope'); 1 }, 'cancel without a code ref croaks';
    like $@, qr/callback must be a code reference/, 'croak message';

    # cancel right after creating, before the created message has arrived
    my $quick = rec_watch($c, '/cnl-quick');
    my @qc;
    $quick->{handle}->cancel(sub { push @qc, [@_] });
    ok run_until(sub { @qc }, 10), 'cancel of a just-created watch calls back';
    is_deeply $qc[0], [ {}, undef ], 'with success';
    ok_call($c, 'put', '/cnl-quick', 'x');
    run_until(sub { 0 }, 0.5);
    is scalar(events_of($quick)), 0, 'a watch cancelled at once delivers no event';
    is scalar(@{ $quick->{errs} }), 0, 'and no error';
}

# --- argument errors -----------------------------------------------------------
{
    for my $args ([ '/k' ], [ '/k', {} ], [ '/k', 'not code' ], [ '/k', { prefix => 1 }, [] ]) {
        ok !eval { $c->watch(@$args); 1 }, 'watch without a code ref croaks';
        like $@, qr/callback must be a code reference/, 'croak message names the callback';
    }
}

# --- dropping the handle keeps the watch running --------------------------
{
    my $cl = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
    my @got;
    {
        my $h = $cl->watch('/dropped', sub { push @got, [@_] });
    }    # handle gone here
    ok run_until(sub { @got }, 10), 'created message after the handle was dropped';
    ok_call($c, 'put', '/dropped', 'still');
    ok run_until(sub { grep { $_->[0] && @{ $_->[0]{events} } } @got }, 10),
        'a watch whose handle was dropped still delivers';
    my ($ev) = map { @{ $_->[0]{events} } } grep { $_->[0] } @got;
    is $ev->{kv}{value}, 'still', 'with the right value';
    undef $cl;    # ends the watch with the client
    my $before = @got;
    ok_call($c, 'put', '/dropped', 'after client destroyed');
    run_until(sub { 0 }, 0.5);
    is scalar(@got), $before, 'destroying the client ends the dropped watch silently';
}

# --- several watches on one key ------------------------------------------
{
    my @w = map { rec_watch($c, '/same') } 1 .. 3;
    created_ok($_, 'same-key watch') for @w;
    ok_call($c, 'put', '/same', 'fan-out');
    ok run_until(sub { !grep { events_of($_) < 1 } @w }, 10), 'every watch of the key gets the event';
    is_deeply [ map { scalar events_of($_) } @w ], [ 1, 1, 1 ], 'exactly once each';
    cancel_sync($w[1]);
    ok_call($c, 'put', '/same', 'second');
    ok run_until(sub { events_of($w[0]) >= 2 && events_of($w[2]) >= 2 }, 10), 'others continue after one is cancelled';
    run_until(sub { 0 }, 0.3);
    is scalar(events_of($w[1])), 1, 'the cancelled one got nothing more';
    cancel_sync($_) for @w[0, 2];
}

# --- compaction -----------------------------------------------------------
{
    my @rev = map { ok_call($c, 'put', '/cmp', "c$_")->{header}{revision} } 1 .. 5;
    my $N = $rev[3];
    ok_call($c, 'compact', $N);

    my $w = rec_watch($c, '/cmp', { start_revision => $rev[1] });
    ok run_until(sub { @{ $w->{errs} } }, 10), 'watch below the compact revision fails';
    my $e = $w->{errs}[0];
    is $e->{source}, 'watch', 'error source watch';
    is $e->{status}, 'OUT_OF_RANGE', 'status OUT_OF_RANGE';
    is $e->{code}, 11, 'code 11';
    is $e->{retryable}, 0, 'compaction is not retryable';
    like $e->{message}, qr/compact/i, 'message gives the reason';
    like $e->{message}, qr/\b$N\b/, "message names the compact revision $N";
    is scalar(events_of($w)), 0, 'no events from the compacted watch';

    my $count = @{ $w->{all} };
    ok_call($c, 'put', '/cmp', 'after');
    run_until(sub { 0 }, 0.5);
    is scalar(@{ $w->{all} }), $count, 'the watch ended: nothing after the error';
    is scalar(@{ $w->{errs} }), 1, 'exactly one error';

    my @cc = cancel_sync($w);
    is_deeply \@cc, [ [ {}, undef ] ], 'cancel on a watch ended by error calls back with success';

    # start_revision equal to the compact revision is still allowed
    my $ok = rec_watch($c, '/cmp', { start_revision => $N });
    ok run_until(sub { events_of($ok) >= 3 }, 10), 'watch from the compact revision works';
    is_deeply [ map { $_->{kv}{mod_revision} } (events_of($ok))[0, 1] ], [ @rev[3, 4] ],
        'replays from the compact revision on';
    is scalar(@{ $ok->{errs} }), 0, 'no error';
    cancel_sync($ok);
}

# --- EV::run returns once every watch is over ----------------------------
{
    my $fired = 0;
    my $guard = EV::timer(15, 0, sub { $fired = 1; EV::break(EV::BREAK_ALL()) });
    $guard->keepalive(0);
    my $t0 = time;
    EV::run();
    ok !$fired, 'EV::run returns by itself when no watch is live';
    cmp_ok time - $t0, '<', 5, 'and promptly';
}

# --- auto_reconnect: default on, and off ----------------------------------
{
    my $cl  = EV::Etcd->new(endpoints => [ $srv->endpoint ], max_retries => 5);
    my $on  = rec_watch($cl, '/ar/on');
    my $off = rec_watch($cl, '/ar/off', { auto_reconnect => 0 });
    created_ok($on, 'default watch');
    created_ok($off, 'auto_reconnect => 0 watch');
    ok_call($c, 'put', '/ar/on', 'before');
    ok run_until(sub { events_of($on) >= 1 }, 10), 'event before the kill';

    $srv->kill9;
    ok run_until(sub { @{ $off->{errs} } }, 15), 'auto_reconnect => 0: error on connection loss';
    my $e = $off->{errs}[0];
    is $e->{status}, 'UNAVAILABLE', 'status UNAVAILABLE';
    is $e->{source}, 'watch', 'source watch';
    is $e->{retryable}, 1, 'retryable';

    $srv->restart;
    my $c2 = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
    my $p = ok_call($c2, 'put', '/ar/on', 'after');
    ok_call($c2, 'put', '/ar/off', 'after');
    ok run_until(sub { events_of($on) >= 2 }, 30), 'default watch resumes after restart';
    my @ev = events_of($on);
    is_deeply [ map { $_->{kv}{value} } @ev ], [qw(before after)], 'events before and after, once each';
    is $ev[-1]{kv}{mod_revision}, $p->{header}{revision}, 'resumed event revision';
    is scalar(grep { $_->{created} } @{ $on->{msgs} }), 1, 'no second created message';
    is scalar(@{ $on->{errs} }), 0, 'default watch saw no error';
    run_until(sub { 0 }, 0.5);
    is scalar(@{ $off->{errs} }), 1, 'auto_reconnect => 0 watch: exactly one error';
    is scalar(events_of($off)), 0, 'and no event after it ended';
    cancel_sync($_) for $on, $off;
}

done_testing;
