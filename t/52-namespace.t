#!/usr/bin/env perl
# The namespace option of new: two clients with their own namespaces and a
# plain one that sees the real keys. Keys go in prefixed and come back
# stripped (kvs, prev_kv, prev_kvs, txn responses, watch events, lock keys,
# election leaders, lease keys); prefix and range reads, deletes, watches
# and txn compares never leave the namespace, also for a namespace ending
# in 0xff bytes; options are not modified; bad input croaks at the caller's
# line, exactly when and as on a plain client (also for generated bad
# arguments); close, set_endpoints, cancel and fork still work.
use strict;
use warnings;

use Test::More;
use POSIX ();
use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call cancel_sync);

need_etcd();

use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'namespace');
my @ep = (endpoints => [ $srv->endpoint ], timeout => 10);
my $plain = EV::Etcd->new(@ep);
my $A = EV::Etcd->new(@ep, namespace => '/ns/a/');
my $B = EV::Etcd->new(namespace => '/ns/b/', @ep);
# a namespace whose last byte is 0xff: its end is "/ns/d", not "/ns/d\0"
my $C = EV::Etcd->new(@ep, namespace => "/ns/c\xff");

sub keys_of { [ map { $_->{key} } @{ $_[0]{kvs} } ] }
sub real_keys {    # every key under /ns/ and at its edges, as the plain client sees them
    keys_of(ok_call($plain, 'get', '/', { prefix => 1, keys_only => 1 }));
}
sub clone {
    my ($d) = @_;
    return ref $d eq 'HASH' ? { map { $_ => clone($d->{$_}) } keys %$d }
         : ref $d eq 'ARRAY' ? [ map { clone($_) } @$d ]
         : $d;
}
sub value_at { my $r = ok_call($plain, 'get', $_[0]); $r->{count} ? $r->{kvs}[0]{value} : undef }

# Croaks: the message (a regex) and the line of the call.
sub croaks_at {
    my ($what, $line, $re) = @_;
    my $err = $@;
    like $err, qr/^$re.* at \Q$0\E line $line\.\n\z/s, "$what: croaks naming the problem at the caller's line"
        or diag "got: $err";
}

# --- construction ----------------------------------------------------------------
{
    isa_ok $A, 'EV::Etcd::Namespace';
    isa_ok $A, 'EV::Etcd';
    is ref $plain, 'EV::Etcd', 'without namespace the client is a plain EV::Etcd';
    is $A->namespace, '/ns/a/', 'namespace returns the prefix';
    is $plain->namespace, undef, '... and undef for a plain client';
    is ref EV::Etcd->new(@ep, namespace => undef), 'EV::Etcd', 'namespace => undef means none';

    my $up = "/ns/\xe9/";
    utf8::upgrade($up);
    my $U = EV::Etcd->new(@ep, namespace => $up);
    ok $U->namespace eq "/ns/\xe9/" && !utf8::is_utf8($U->namespace),
        'an upgraded namespace without wide characters is taken as its bytes';

    my $line;
    eval { $line = __LINE__; EV::Etcd->new(@ep, namespace => '') };
    croaks_at('empty namespace', $line, qr/EV::Etcd->new: namespace must not be empty/);
    eval { $line = __LINE__; EV::Etcd->new(@ep, namespace => ['/x/']) };
    croaks_at('namespace reference', $line, qr/EV::Etcd->new: namespace must be a string, not a reference/);
    eval { $line = __LINE__; EV::Etcd->new(@ep, namespace => "/\x{263A}/") };
    croaks_at('wide characters in the namespace', $line,
        qr/EV::Etcd->new: namespace must be a byte string, but it has characters above 0xFF/);
    eval { $line = __LINE__; EV::Etcd->new(@ep, namespace => '/x/', bogus => 1) };
    croaks_at('unknown option next to namespace', $line, qr/EV::Etcd->new: unknown option 'bogus'/);
    eval { $line = __LINE__; EV::Etcd->new(@ep, namespace => '/x/', 'odd') };
    croaks_at('odd option list', $line, qr/EV::Etcd->new: options must be name => value pairs/);
    eval { $line = __LINE__; EV::Etcd->new(namespace => '/x/', timeout => 'soon') };
    croaks_at('bad timeout next to namespace', $line, qr/EV::Etcd->new: timeout must be a number/);
    eval { $line = __LINE__; EV::Etcd::Namespace->new(@ep) };
    croaks_at('EV::Etcd::Namespace without a namespace', $line,
        qr/EV::Etcd->new: EV::Etcd::Namespace needs a namespace/);
    is ref EV::Etcd::Namespace->new(@ep, namespace => '/x/'), 'EV::Etcd::Namespace',
        'EV::Etcd::Namespace->new works with a namespace';
}

# --- put and get ------------------------------------------------------------------
# Keys just outside /ns/a/ on either side, and the namespace key itself.
ok_call($plain, 'put', $_, 'edge') for '/ns/a', '/ns/a.', '/ns/d', '/ns/c', "/ns/c\xfe";
ok_call($plain, 'put', $_, 'edge') for ('/ns/a', '/ns/a0') x 4;    # version 4: the txn range compare below
ok_call($plain, 'put', '/ns/a/', 'the namespace key');

{
    my $r = ok_call($A, 'put', 'k', 'a1');
    ok $r->{header}{revision}, 'put in namespace A';
    ok_call($B, 'put', 'k', 'b1');
    is value_at('/ns/a/k'), 'a1', 'the real key of A is prefixed';
    is value_at('/ns/b/k'), 'b1', 'the real key of B is prefixed';
    is value_at('k'), undef, 'nothing was written unprefixed';

    $r = ok_call($A, 'get', 'k');
    is_deeply [ $r->{count}, keys_of($r), $r->{kvs}[0]{value} ], [ 1, ['k'], 'a1' ],
        'A reads its own k, with the key stripped';
    $r = ok_call($B, 'get', 'k');
    is_deeply [ keys_of($r), $r->{kvs}[0]{value} ], [ ['k'], 'b1' ], 'B reads its own k';
    my $real = ok_call($plain, 'get', '/ns/a/k');
    is_deeply [ sort keys %$r ], [ sort keys %$real ], 'the reply has the keys of a plain reply';
    is_deeply [ sort keys %{ $r->{kvs}[0] } ], [ sort keys %{ $real->{kvs}[0] } ], '... and so has its record';
    is ok_call($A, 'get', '')->{kvs}[0]{value}, 'the namespace key',
        "the key '' is the namespace key itself";

    $r = ok_call($A, 'put', 'k', 'a2', { prev_kv => 1 });
    is_deeply [ $r->{prev_kv}{key}, $r->{prev_kv}{value} ], [ 'k', 'a1' ], 'put prev_kv is stripped';

    ok_call($A, 'put', "\x{263A}", 'smile');
    is value_at("/ns/a/\xe2\x98\xba"), 'smile', 'a UTF-8 flagged key is prefixed as its UTF-8 bytes';
    $r = ok_call($A, 'get', "\x{263A}");
    ok $r->{kvs}[0]{key} eq "\xe2\x98\xba" && !utf8::is_utf8($r->{kvs}[0]{key}),
        '... and comes back as those bytes';
    ok_call($A, 'delete', "\x{263A}");

    ok_call($A, 'put', $_, "A $_") for qw(m1 m2 z);
    ok_call($B, 'put', $_, "B $_") for qw(m1 zz);
}

# --- ranges stay inside ------------------------------------------------------------
{
    my @all_a = ('', qw(k m1 m2 z));
    my $r = ok_call($A, 'get', '', { prefix => 1 });
    is_deeply keys_of($r), \@all_a, "get '' with prefix reads exactly namespace A";
    is $r->{count}, 5, '... count as well';
    is_deeply keys_of(ok_call($A, 'get', '', { range_end => "\0" })), \@all_a,
        "range_end \"\\0\" from '' reads exactly namespace A";
    is_deeply keys_of(ok_call($A, 'get', 'm', { range_end => "\0" })), [qw(m1 m2 z)],
        "range_end \"\\0\" means up to the end of the namespace";
    is_deeply keys_of(ok_call($A, 'get', 'k', { range_end => 'z' })), [qw(k m1 m2)],
        'an ordinary range_end is prefixed';
    is_deeply keys_of(ok_call($A, 'get', 'm', { prefix => 1 })), [qw(m1 m2)], 'prefix inside the namespace';
    is_deeply keys_of(ok_call($A, 'get', 'm', { prefix => 1, range_end => "\0" })), [qw(m1 m2)],
        'prefix wins over range_end, as without namespace';
    is_deeply keys_of(ok_call($A, 'get', 'k', { range_end => '' })), ['k'], "range_end '' is a single key";
    is_deeply keys_of(ok_call($A, 'get', '', { prefix => 1, sort_order => 'descend', limit => 2 })),
        [qw(z m2)], 'sort and limit work on the namespaced range';
    is ok_call($A, 'get', '', { prefix => 1, count_only => 1 })->{count}, 5, 'count_only counts the namespace';
    is_deeply keys_of(ok_call($B, 'get', '', { prefix => 1 })), [qw(k m1 zz)], 'B sees only its own keys';

    # 0xff at the end of the namespace
    ok_call($C, 'put', $_, 'c') for '', "\xff", 'q';
    is_deeply [ grep { /^\/ns\/c\xff/ } @{ real_keys() } ], [ "/ns/c\xff", "/ns/c\xffq", "/ns/c\xff\xff" ],
        'fixture: the keys of namespace C';
    is_deeply keys_of(ok_call($C, 'get', '', { prefix => 1 })), [ '', 'q', "\xff" ],
        'a namespace ending in 0xff: prefix reads stop before /ns/d';
    is_deeply keys_of(ok_call($C, 'get', 'a', { range_end => "\0" })), [ 'q', "\xff" ],
        '... and so does range_end "\0"';

    my $opts = { range_end => "\0", keys_only => 1 };
    ok_call($A, 'get', 'm', $opts);
    is_deeply $opts, { range_end => "\0", keys_only => 1 }, 'the options hash is not modified';
}

# --- delete -------------------------------------------------------------------------
{
    my $r = ok_call($B, 'delete', 'm', { prefix => 1, prev_kv => 1 });
    is $r->{deleted}, 1, 'delete with prefix in B';
    is_deeply [ map { $_->{key} } @{ $r->{prev_kvs} } ], ['m1'], 'delete prev_kvs are stripped';
    is value_at('/ns/a/m1'), 'A m1', "A's key of the same name survives";

    ok_call($A, 'put', "x$_", 'gone') for 1 .. 3;
    $r = ok_call($A, 'delete', 'x', { range_end => "\0", prev_kv => 1 });
    is_deeply [ sort map { $_->{key} } @{ $r->{prev_kvs} } ], [qw(x1 x2 x3 z)],
        'delete with range_end "\0" removes the tail of the namespace';
    ok_call($A, 'put', 'z', 'A z');

    my @before = grep { !/^\/ns\/b\// } @{ real_keys() };
    $r = ok_call($B, 'delete', '', { prefix => 1 });
    is $r->{deleted}, 2, "delete '' with prefix empties B";
    is_deeply [ grep { /^\/ns\/b\// } @{ real_keys() } ], [], '... of all its keys';
    is_deeply real_keys(), \@before, '... and leaves every other key alone (the plain client sees them)';
    ok_call($B, 'put', 'k', 'b1');
}

# --- txn ----------------------------------------------------------------------------
{
    my $compare = [ { key => 'k', target => 'value', value => 'a2' } ];
    my $success = [
        { put => { key => 'k', value => 'a3', prev_kv => 1 } },
        { request_range => { key => 'm', prefix => 1 } },
        { range => { key => 'm', range_end => "\0" } },
        { delete => { key => 'm2', prev_kv => 1 } },
    ];
    my $failure = [ { range => { key => '', prefix => 1 } } ];
    my @copies = map { clone($_) } $compare, $success, $failure;
    my $r = ok_call($A, 'txn', compare => $compare, success => $success, failure => $failure);
    is $r->{succeeded}, 1, "txn: the compare sees A's k";
    my @resp = @{ $r->{responses} };
    is_deeply [ @{ $resp[0]{response_put}{prev_kv} }{qw(key value)} ], [ 'k', 'a2' ],
        'txn put prev_kv is stripped';
    is_deeply keys_of($resp[1]{response_range}), [qw(m1 m2)], 'txn range with prefix, stripped';
    is_deeply keys_of($resp[2]{response_range}), [qw(m1 m2 z)], 'txn range with range_end "\0" stays inside';
    is_deeply [ map { $_->{key} } @{ $resp[3]{response_delete_range}{prev_kvs} } ], ['m2'],
        'txn delete prev_kvs stripped';
    is value_at('/ns/a/k'), 'a3', 'txn put wrote the prefixed key';
    is value_at('/ns/a/m2'), undef, 'txn delete removed the prefixed key';
    is_deeply [ $compare, $success, $failure ], \@copies, 'txn lists and hashes are not modified';

    $r = ok_call($B, 'txn', [ { key => 'k', target => 'value', value => 'a3' } ],
        [ { put => { key => 'k', value => 'wrong' } } ], [ { range => { key => 'k' } } ]);
    is $r->{succeeded}, 0, "txn (positional) in B does not see A's k";
    is_deeply [ keys_of($r->{responses}[0]{response_range}), $r->{responses}[0]{response_range}{kvs}[0]{value} ],
        [ ['k'], 'b1' ], '... and its failure branch reads B\'s k';

    # A range compare over the whole namespace: /ns/a and /ns/a0 next to it
    # have version 4, every key of A version 1 to 3.
    my $all_young = { key => '', range_end => "\0", target => 'version', result => '<', version => 4 };
    $r = ok_call($A, 'txn', compare => [$all_young], success => [ { put => { key => 'seen', value => 1 } } ]);
    is $r->{succeeded}, 1, 'txn compare with range_end "\0" covers only the namespace';
    is value_at('/ns/a/seen'), 1, '... its success branch ran';
    ok_call($A, 'put', 'seen', $_) for 2 .. 4;
    $r = ok_call($A, 'txn', compare => [$all_young]);
    is $r->{succeeded}, 0, '... and a key of A with version 4 does make it fail';
    $r = ok_call($A, 'txn', compare => [ { key => 'm', range_end => 'n', target => 'version', version => 1 } ]);
    is $r->{succeeded}, 1, 'txn compare with an ordinary range_end';
    ok_call($A, 'delete', 'seen');
}

# --- watch ----------------------------------------------------------------------------
{
    my (@msgs, @errs);
    my $w = $A->watch('', { prefix => 1, prev_kv => 1 }, sub {
        my ($m, $e) = @_;
        if ($e) { push @errs, $e } else { push @msgs, $m }
    });
    isa_ok $w, 'EV::Etcd::Watch';
    ok run_until(sub { @msgs && $msgs[0]{created} }, 10), 'watch on namespace A is created';

    my @c_events;
    my $wc = $C->watch('', { range_end => "\0" }, sub { push @c_events, @{ $_[0]{events} || [] } if $_[0] });
    run_until(sub { 0 }, 0.3);

    ok_call($A, 'put', 'w', 1);
    ok_call($B, 'put', 'w', 'B');
    ok_call($plain, 'put', '/ns/a0', 'edge');
    ok_call($plain, 'put', '/ns/d', 'edge');
    ok_call($plain, 'put', '/ns/a', 'edge');
    ok_call($A, 'put', 'w', 2);
    ok_call($A, 'delete', 'w');
    ok_call($C, 'put', 'q', 'c2');
    ok_call($A, 'put', 'end', 1);
    ok run_until(sub { grep { $_->{kv}{key} eq 'end' } map { @{ $_->{events} || [] } } @msgs }, 10),
        'the watch saw the last put';
    my @ev = map { @{ $_->{events} || [] } } @msgs;
    is_deeply [ map { [ $_->{type}, $_->{kv}{key}, $_->{prev_kv} ? $_->{prev_kv}{key} : undef ] } @ev ],
        [ [ PUT => 'w', undef ], [ PUT => 'w', 'w' ], [ DELETE => 'w', 'w' ], [ PUT => 'end', undef ] ],
        "watch events are A's only, with kv and prev_kv keys stripped";
    is $ev[1]{prev_kv}{value}, 1, '... prev_kv carries the old value';
    ok !exists $ev[0]{prev_kv}, '... and an event without one gains no prev_kv entry';
    is_deeply \@errs, [], 'no watch errors';
    ok run_until(sub { @c_events }, 5), 'the watch of namespace C saw something';
    is_deeply [ map { $_->{kv}{key} } @c_events ], ['q'], '... only its own key: /ns/d is past its end';

    my @got = cancel_sync({ handle => $w });
    is_deeply \@got, [ [ {}, undef ] ], 'cancel works on a namespaced watch';
    cancel_sync({ handle => $wc });
    my $n = @msgs;
    ok_call($A, 'put', 'w', 3);
    run_until(sub { 0 }, 0.3);
    is scalar(@msgs), $n, 'nothing after cancel';
}

# --- lease keys ------------------------------------------------------------------------
{
    my $lease = ok_call($plain, 'lease_grant', 60)->{id};
    ok_call($A, 'put', 'l1', 'x', { lease => $lease });
    ok_call($A, 'put', 'l2', 'x', { lease => $lease });
    ok_call($B, 'put', 'l1', 'x', { lease => $lease });
    ok_call($plain, 'put', '/ns/a0', 'x', { lease => $lease });
    my $r = ok_call($plain, 'lease_time_to_live', $lease, { keys => 1 });
    is_deeply [ sort @{ $r->{keys} } ], [ '/ns/a/l1', '/ns/a/l2', '/ns/a0', '/ns/b/l1' ],
        'fixture: the plain client sees all keys of the lease';
    $r = ok_call($A, 'lease_time_to_live', $lease, { keys => 1 });
    is_deeply [ sort @{ $r->{keys} } ], [qw(l1 l2)], "A sees its own keys of the lease, stripped";
    ok $r->{ttl} > 0 && $r->{id} == $lease, '... with the rest of the answer';
    is_deeply ok_call($B, 'lease_time_to_live', $lease, { keys => 1 })->{keys}, ['l1'], 'B sees its own';
    ok !exists ok_call($C, 'lease_time_to_live', $lease, { keys => 1 })->{keys},
        'a namespace with none of the keys gets no keys entry';
    ok_call($plain, 'lease_revoke', $lease);
    ok_call($plain, 'put', '/ns/a0', 'edge');
}

# --- lock -------------------------------------------------------------------------------
{
    my $la = ok_call($plain, 'lease_grant', 60)->{id};
    my $lb = ok_call($plain, 'lease_grant', 60)->{id};
    my $held = ok_call($A, 'lock', 'job', $la);
    like $held->{key}, qr{^job/[0-9a-f]+$}, 'lock key is stripped';
    is_deeply keys_of(ok_call($plain, 'get', '/ns/a/job', { prefix => 1 })), [ "/ns/a/$held->{key}" ],
        '... the real lock key is prefixed';
    my $other = ok_call($B, 'lock', 'job', $lb, { timeout => 5 });
    like $other->{key}, qr{^job/}, "B takes its lock 'job' while A holds A's";
    ok_call($A, 'unlock', $held->{key});
    is_deeply keys_of(ok_call($plain, 'get', '/ns/a/job', { prefix => 1 })), [],
        'unlock with the stripped key releases the real one';
    ok_call($B, 'unlock', $other->{key});
    ok_call($plain, 'lease_revoke', $_) for $la, $lb;
}

# --- election ----------------------------------------------------------------------------
{
    my $lease = ok_call($plain, 'lease_grant', 60)->{id};
    my (@obs, @obs_err);
    my $o = $A->election_observe('el', sub { $_[1] ? push @obs_err, $_[1] : push @obs, $_[0] });
    isa_ok $o, 'EV::Etcd::Observe';

    my $c = ok_call($A, 'election_campaign', 'el', $lease, 'v1');
    my $leader = $c->{leader};
    is $leader->{name}, 'el', 'campaign: leader name is stripped';
    like $leader->{key}, qr{^el/[0-9a-f]+$}, 'campaign: leader key is stripped';

    my $real = ok_call($plain, 'election_leader', '/ns/a/el');
    is_deeply [ @{ $real->{kv} }{qw(key value)} ], [ "/ns/a/$leader->{key}", 'v1' ],
        'the plain client sees the prefixed election';
    my $l = ok_call($A, 'election_leader', 'el');
    is_deeply [ @{ $l->{kv} }{qw(key value)} ], [ $leader->{key}, 'v1' ], 'election_leader kv key is stripped';
    my (undef, $none) = call($B, 'election_leader', 'el');
    like $none && $none->{message}, qr/no leader/, "B's election of the same name has no leader";

    ok run_until(sub { @obs }, 10), 'observe reports the leader';
    my %before = %$leader;
    ok_call($A, 'election_proclaim', $leader, 'v2');
    is_deeply $leader, \%before, 'proclaim leaves the leader hash alone';
    is ok_call($plain, 'election_leader', '/ns/a/el')->{kv}{value}, 'v2', 'proclaim with the stripped leader';
    ok run_until(sub { grep { $_->{kv}{value} eq 'v2' } @obs }, 10), 'observe sees the new value';
    is_deeply [ map { [ $_->{kv}{key}, $_->{kv}{value} ] } @obs ], [ [ $leader->{key}, 'v1' ], [ $leader->{key}, 'v2' ] ],
        'observe kv keys are stripped';

    ok_call($A, 'election_resign', $leader);
    my (undef, $gone) = call($A, 'election_leader', 'el');
    like $gone && $gone->{message}, qr/no leader/, 'resign with the stripped leader ends the leadership';
    is_deeply \@obs_err, [], 'no observe errors';
    is_deeply [ cancel_sync({ handle => $o }) ], [ [ {}, undef ] ], 'cancel works on a namespaced observe';
    ok_call($plain, 'lease_revoke', $lease);
}

# --- bad input: XS wording, caller's line, nothing sent -------------------------------------
{
    my $cb = sub { };
    my $leader = { name => 'el', key => 'el/1', rev => 1, lease => 1 };
    my @cases = (
        [ 'get key undef', __LINE__, qr/get: key must be defined/, sub { $_[0]->get(undef, $cb) } ],
        [ 'put key ref', __LINE__, qr/put: key must be a string, not a reference/, sub { $_[0]->put([], 'v', $cb) } ],
        [ 'put value undef', __LINE__, qr/put: value must be defined/, sub { $_[0]->put('k', undef, $cb) } ],
        [ 'delete range_end ref', __LINE__, qr/delete: range_end must be a string/, sub { $_[0]->delete('k', { range_end => {} }, $cb) } ],
        [ 'get options', __LINE__, qr/get: options must be a hash reference/, sub { $_[0]->get('k', 'x', $cb) } ],
        [ 'get unknown option', __LINE__, qr/get: unknown option 'prefx'/, sub { $_[0]->get('k', { prefx => 1 }, $cb) } ],
        [ 'get callback', __LINE__, qr/callback must be a code reference \(get\)/, sub { $_[0]->get('k', {}, 'x') } ],
        [ 'get arguments', __LINE__, qr/get: wrong number of arguments/, sub { $_[0]->get('k', {}, $cb, 1) } ],
        [ 'watch callback', __LINE__, qr/callback must be a code reference \(watch\)/, sub { $_[0]->watch('k', []) } ],
        [ 'txn compare', __LINE__, qr/txn: compare\[0\] has no key/, sub { $_[0]->txn([ { target => 'version', version => 0 } ], [], [], $cb) } ],
        [ 'txn named list', __LINE__, qr/txn 'success' must be an array reference/, sub { $_[0]->txn(success => {}, callback => $cb) } ],
        [ 'txn op key', __LINE__, qr/txn: success\[0\] has no key/, sub { $_[0]->txn(success => [ { put => { value => 1 } } ], callback => $cb) } ],
        [ 'txn callback', __LINE__, qr/callback must be a code reference \(txn\)/, sub { $_[0]->txn([], [], [], 'x') } ],
        [ 'txn unknown', __LINE__, qr/txn: unknown argument 'bogus'/, sub { $_[0]->txn(callback => $cb, bogus => 1) } ],
        [ 'lease_time_to_live id', __LINE__, qr/lease_time_to_live: lease id must be an integer/, sub { $_[0]->lease_time_to_live('x', { keys => 1 }, $cb) } ],
        [ 'lock name', __LINE__, qr/lock: name must be defined/, sub { $_[0]->lock(undef, 1, $cb) } ],
        [ 'unlock callback', __LINE__, qr/callback must be a code reference \(unlock\)/, sub { $_[0]->unlock('k', 'x') } ],
        [ 'campaign value', __LINE__, qr/election_campaign: value must be defined/, sub { $_[0]->election_campaign('el', 1, undef, $cb) } ],
        [ 'leader name', __LINE__, qr/election_leader: name must be a string/, sub { $_[0]->election_leader({}, $cb) } ],
        [ 'proclaim leader', __LINE__, qr/election_proclaim: leader .*must be a hash reference/, sub { $_[0]->election_proclaim('x', 'v', $cb) } ],
        [ 'resign leader key', __LINE__, qr/election_resign: leader must have name and key/, sub { $_[0]->election_resign({ name => 'el' }, $cb) } ],
        [ 'observe options', __LINE__, qr/election_observe: unknown option 'x'/, sub { $_[0]->election_observe('el', { x => 1 }, $cb) } ],
    );
    # each call is written on its case's line, which is where it must croak
    # and a plain client croaks with the very same message
    for my $case (@cases) {
        my ($what, $line, $re, $code) = @$case;
        eval { $code->($A) };
        my $mine = $@;
        croaks_at($what, $line, $re);
        eval { $code->($plain) };
        is $mine, $@, "$what: the same croak as on a plain client";
    }
    # Generated: each argument of each translated method replaced by wrong
    # values, wrong argument counts. A namespaced client croaks exactly
    # when, and exactly as, a plain client does; a call that goes out is
    # answered once (a stream at least once).
    my $other = bless \(my $n = 1), 'Some::Other::Class';
    my $lease = ok_call($plain, 'lease_grant', 60)->{id};
    my %good = (key => 'bad/k', value => 'v', opts => {}, lease => $lease, leader => $leader,
                list => [], cb => $cb);
    my @scalars = (undef, [], {}, sub { 1 }, \'ref', $other);
    my %bad = (
        key => \@scalars, value => \@scalars,
        opts => [ 'notahash', [], $other, { bogus => 1 }, { range_end => [] }, { range_end => $other },
                  { prefix => 1, range_end => [] }, { timeout => -1 }, { limit => 'x' } ],
        lease => [ undef, 'abc', -1, 1.5, [] ],
        leader => [ undef, 'x', {}, [], { name => [] }, { name => 'e' }, { name => 'e', key => undef } ],
        list => [ undef, 'x', {}, ['x'], [ {} ], [ { key => undef, target => 'version', version => 0 } ],
                  [ { put => [] } ], [ { put => { key => [] } } ], [ { range => { key => 'k', range_end => [] } } ] ],
        cb => [ undef, 'sub', {}, [], $other ],
    );
    my %sig = (
        put => [qw(key value opts cb)], get => [qw(key opts cb)], delete => [qw(key opts cb)],
        watch => [qw(key opts cb)], txn => [qw(list list list cb)],
        lease_time_to_live => [qw(lease opts cb)], lock => [qw(key lease opts cb)], unlock => [qw(key cb)],
        election_campaign => [qw(key lease value opts cb)], election_leader => [qw(key cb)],
        election_proclaim => [qw(leader value cb)], election_resign => [qw(leader cb)],
        election_observe => [qw(key opts cb)],
    );
    my %stream = (watch => 1, election_observe => 1);
    my ($tried, $differ, $out, $answered, @handles) = (0, 0, 0, 0);
    my $try = sub {
        my ($m, $what, @given) = @_;
        my @res;
        for my $client ($A, $plain) {
            my $seen = 0;
            my $count = sub { $answered++ unless $seen++ };
            my @args = map { ref $_ eq 'CODE' && $_ == $cb ? $count : $_ } @given;
            my $h = eval { $client->$m(@args) };
            push @res, $@;
            next if $@;
            $out++;
            push @handles, $h if $stream{$m};
        }
        $tried++;
        return if $res[0] eq $res[1];
        $differ++;
        diag "$m ($what): namespaced: '$res[0]', plain: '$res[1]'";
    };
    for my $m (sort keys %sig) {
        my @s = @{ $sig{$m} };
        for my $i (0 .. $#s) {
            for my $v (@{ $bad{ $s[$i] } }) {
                my @args = map { $good{$_} } @s;
                $args[$i] = $v;
                $try->($m, "$s[$i] #$i", @args);
                $try->($m, "named $s[$i]", compare => $args[0], success => $args[1], failure => $args[2],
                       callback => $args[3]) if $m eq 'txn';
            }
        }
        $try->($m, 'no arguments');
        $try->($m, 'too many', (map { $good{$_} } @s), 'extra');
    }
    cmp_ok $tried, '>', 250, "$tried generated bad calls";
    is $differ, 0, 'a namespaced client croaks exactly where and as a plain client does';
    ok run_until(sub { $answered >= $out }, 20), "the $out calls that went out were all answered";
    cancel_sync({ handle => $_ }) for @handles;

    my $line;
    eval { $line = __LINE__; $A->get(undef, $cb) };
    croaks_at('get key undef', $line, qr/get: key must be defined/);
    eval { $line = __LINE__; $A->txn(compare => [ { key => 'k', target => 'nope' } ], callback => $cb) };
    croaks_at('txn named bad compare', $line, qr/txn: compare\[0\]: unknown target 'nope'/);
    eval { $line = __LINE__; $A->txn(compare => 'x', callback => $cb) };
    croaks_at('txn named non-list', $line, qr/txn 'compare' must be an array reference/);
    eval { $line = __LINE__; $A->election_resign([], $cb) };
    croaks_at('resign non-hash', $line, qr/election_resign: leader/);
    eval { $line = __LINE__; $A->watch('k', { range_end => [] }, $cb) };
    croaks_at('watch bad range_end', $line, qr/watch: range_end must be a string, not a reference/);
    eval { $line = __LINE__; EV::Etcd::Namespace::get(bless(\my $x, 'Other'), 'k', $cb) };
    croaks_at('foreign invocant', $line, qr/get: called on something that is not a live EV::Etcd client/);
    my $r = ok_call($A, 'get', 'k');
    is $r->{kvs}[0]{value}, 'a3', 'the client works after all the croaks';
}

# --- endpoints, close ------------------------------------------------------------------------
{
    my $D = EV::Etcd->new(@ep, namespace => '/ns/a/');
    is_deeply $D->endpoints, [ $srv->endpoint ], 'endpoints on a namespaced client';
    $D->set_endpoints([ $srv->endpoint, '127.0.0.1:1' ]);
    is ok_call($D, 'get', 'k')->{kvs}[0]{value}, 'a3', 'set_endpoints, then a namespaced get';
    my $w = $D->watch('k', sub { });
    $D->close;
    my $line;
    eval { $line = __LINE__; $D->get('k', sub { }) };
    croaks_at('get after close', $line, qr/EV::Etcd: this client was closed/);
    my @got = cancel_sync({ handle => $w });
    is_deeply \@got, [ [ {}, undef ] ], "cancel on a closed namespaced client's watch";

    my $E = EV::Etcd->new(@ep, namespace => '/ns/a/');
    my $answered = 0;
    $E->get('k', sub { $answered++ });
    undef $E;
    run_until(sub { 0 }, 0.3);
    is $answered, 0, 'dropping a namespaced client with a call in flight: no callback, no crash';
}

# --- fork ---------------------------------------------------------------------------------------
{
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $rd;
        my @out;
        my $line = __LINE__; eval { $A->get('k', sub { }) };
        push @out, $@ =~ /^EV::Etcd: this client was created before fork\(\).* at \Q$0\E line $line\.$/ ? 'ok' : "bad: $@";
        my $mine = EV::Etcd->new(@ep, namespace => '/ns/a/');
        my $got;
        $mine->get('k', sub { $got = $_[0] ? $_[0]{kvs}[0]{key} . '=' . $_[0]{kvs}[0]{value} : "error" });
        run_until(sub { defined $got }, 10);
        push @out, $got // 'no answer';
        print {$wr} join("\n", @out), "\n";
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    my $exit;
    my $cw = EV::child($pid, 0, sub { $exit = $_[0]->rstatus });
    ok run_until(sub { defined $exit }, 30), 'child exited';
    my @lines = <$rd>;
    chomp @lines;
    is_deeply \@lines, [ 'ok', 'k=a3' ],
        'in a child the inherited namespaced client croaks at the line; a new one works';
    is ok_call($A, 'get', 'k')->{kvs}[0]{value}, 'a3', 'the parent client still works';
}

done_testing;
