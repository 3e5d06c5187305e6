#!/usr/bin/env perl
# txn: the three calling forms, every compare target and result, both
# branches, every operation (and its alias) with options, the shape of the
# responses, and the croaks for malformed transactions.
use strict;
use warnings;

use Test::More;
use lib 't/lib';
use EtcdTest qw(:DEFAULT wait_for);

need_etcd();

use EV;
use EV::Etcd;

my $srv = start_etcd();
my $c   = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 20);


sub must {
    my ($what, $start) = @_;
    my ($r, $e) = wait_for($what, $start);
    ok !$e && ref $r eq 'HASH', "$what: succeeded" or diag explain $e;
    return $r // {};
}

sub txn_ok {
    my ($what, @args) = @_;
    my $r = must($what, sub { $c->txn(@args, $_[0]) });
    ok ref $r->{header} eq 'HASH' && $r->{header}{revision} && $r->{header}{cluster_id},
        "$what: txn response has a header";
    like $r->{succeeded}, qr/^[01]$/, "$what: succeeded is 0 or 1";
    is ref $r->{responses}, 'ARRAY', "$what: responses is an array";
    return $r;
}

sub value_of {
    my ($key) = @_;
    my $r = must("get $key", sub { $c->get($key, $_[0]) });
    return $r->{count} ? $r->{kvs}[0]{value} : undef;
}

# --- fixture ---------------------------------------------------------------
my $lease = must('lease_grant', sub { $c->lease_grant(300, $_[0]) })->{id};
ok $lease, 'lease granted';
my $p1 = must('put 1', sub { $c->put('t/a', 'first', $_[0]) });
must('put 2', sub { $c->put('t/a', 'middle', $_[0]) });
my $p3 = must('put 3', sub { $c->put('t/a', 'mmm', { lease => $lease }, $_[0]) });
my %a = (
    value           => 'mmm',
    version         => 3,
    create_revision => $p1->{header}{revision},
    mod_revision    => $p3->{header}{revision},
    lease           => $lease,
);
cmp_ok $a{mod_revision}, '>', $a{create_revision}, 'fixture: mod and create revisions differ';

# --- the three calling forms ---------------------------------------------------
{
    my $r = must('named with callback =>', sub {
        $c->txn(
            compare  => [ { key => 't/a', target => 'value', result => '=', value => 'mmm' } ],
            success  => [ { request_put => { key => 't/form1', value => 'named' } } ],
            failure  => [ { request_put => { key => 't/form1', value => 'wrong' } } ],
            callback => $_[0],
        );
    });
    is $r->{succeeded}, 1, 'named form: compare held';
    is value_of('t/form1'), 'named', 'named form: success branch ran';

    $r = must('positional', sub {
        $c->txn([ { key => 't/a', target => 'value', value => 'nope' } ],
                [ { request_put => { key => 't/form2', value => 'wrong' } } ],
                [ { request_put => { key => 't/form2', value => 'positional' } } ],
                $_[0]);
    });
    is $r->{succeeded}, 0, 'positional form: compare failed';
    is value_of('t/form2'), 'positional', 'positional form: failure branch ran';

    $r = must('named + trailing code ref', sub {
        $c->txn(compare => [ { key => 't/a', target => 'version', version => 3 } ],
                success => [ { put => { key => 't/form3', value => 'trailing' } } ],
                $_[0]);
    });
    is $r->{succeeded}, 1, 'named pairs with a trailing callback';
    is value_of('t/form3'), 'trailing', '... success branch ran';

    $r = must('callback only', sub { $c->txn(callback => $_[0]) });
    is $r->{succeeded}, 1, 'no compare at all: the (empty) success branch is taken';
    is_deeply $r->{responses}, [], '... with no responses';

    $r = must('failure only', sub {
        $c->txn(compare => [ { key => 't/a', target => 'value', value => 'x' } ],
                failure => [ { range => { key => 't/a' } } ], callback => $_[0]);
    });
    is $r->{succeeded}, 0, 'missing success list is fine when the compare fails';
    is $r->{responses}[0]{response_range}{kvs}[0]{value}, 'mmm', '... failure op ran';

    $r = must('empty positional lists', sub { $c->txn([], [], [], $_[0]) });
    is $r->{succeeded}, 1, 'positional with three empty lists';
}

# --- every compare target with every result ---------------------------------------
# For each target: one comparison that must hold and one that must not.
my %alias = (create_revision => 'create', mod_revision => 'mod');
my @cases;
for my $target (qw(value version create_revision mod_revision lease)) {
    my $have = $a{$target};
    my ($lo, $hi) = $target eq 'value' ? ('aaa', 'zzz') : ($have - 1, $have + 1);
    push @cases,
        [ $target, '=',  $have, 1 ], [ $target, '=',  $hi,   0 ],
        [ $target, '!=', $hi,   1 ], [ $target, '!=', $have, 0 ],
        [ $target, '<',  $hi,   1 ], [ $target, '<',  $have, 0 ],
        [ $target, '>',  $lo,   1 ], [ $target, '>',  $have, 0 ];
}
for my $case (@cases) {
    my ($field, $op, $want, $expect) = @$case;
    for my $tname ($field, $alias{$field} // ()) {
        my $what = "compare $tname $op $want";
        my $r = txn_ok($what,
            [ { key => 't/a', target => $tname, result => $op, $field => $want } ],
            [ { range => { key => 't/a', count_only => 1 } } ],
            [ { range => { key => 't/none', count_only => 1 } } ]);
        is $r->{succeeded}, $expect, "$what is " . ($expect ? 'true' : 'false');
        is $r->{responses}[0]{response_range}{count}, $expect,
            "$what: the " . ($expect ? 'success' : 'failure') . ' branch ran';
    }
}

# result spellings and the default
{
    my %spell = ('==' => 1, EQUAL => 1, equal => 1, NOT_EQUAL => 0, LESS => 0, GREATER => 0);
    for my $res (sort keys %spell) {
        my $r = txn_ok("result $res", [ { key => 't/a', target => 'version', result => $res, version => 3 } ], [], []);
        is $r->{succeeded}, $spell{$res}, "result spelled '$res'";
    }
    my $r = txn_ok('GREATER', [ { key => 't/a', target => 'version', result => 'GREATER', version => 2 } ], [], []);
    is $r->{succeeded}, 1, "result 'GREATER' works";
    $r = txn_ok('LESS', [ { key => 't/a', target => 'mod', result => 'LESS', mod_revision => $a{mod_revision} + 5 } ], [], []);
    is $r->{succeeded}, 1, "result 'LESS' works";
    $r = txn_ok('NOT_EQUAL', [ { key => 't/a', target => 'value', result => 'NOT_EQUAL', value => 'x' } ], [], []);
    is $r->{succeeded}, 1, "result 'NOT_EQUAL' works";
    $r = txn_ok('default result', [ { key => 't/a', target => 'lease', lease => $lease } ], [], []);
    is $r->{succeeded}, 1, 'result defaults to =';
    $r = txn_ok('default result false', [ { key => 't/a', target => 'lease', lease => 0 } ], [], []);
    is $r->{succeeded}, 0, 'default = compares the lease';
    $r = txn_ok('target upper case', [ { key => 't/a', target => 'VALUE', value => 'mmm' } ], [], []);
    is $r->{succeeded}, 1, 'target names are case-insensitive';
}

# compares on a missing key, on an empty value, several compares, a range compare
{
    my $r = txn_ok('missing key version 0', [ { key => 't/missing', target => 'version', version => 0 } ],
        [ { put => { key => 't/missing', value => 'created' } } ], []);
    is $r->{succeeded}, 1, 'a missing key has version 0 (create-if-absent)';
    $r = txn_ok('missing key again', [ { key => 't/missing', target => 'version', version => 0 } ],
        [ { put => { key => 't/missing', value => 'twice' } } ], []);
    is $r->{succeeded}, 0, 'the second create-if-absent fails';
    is value_of('t/missing'), 'created', 'and did not overwrite';

    must('put empty', sub { $c->put('t/empty', '', $_[0]) });
    $r = txn_ok('empty value', [ { key => 't/empty', target => 'value', value => '' } ], [], []);
    is $r->{succeeded}, 1, 'comparing with an empty value';

    $r = txn_ok('two compares, both true', [
        { key => 't/a', target => 'value', value => 'mmm' },
        { key => 't/a', target => 'version', result => '>', version => 1 } ], [], []);
    is $r->{succeeded}, 1, 'all compares true: success';
    $r = txn_ok('two compares, one false', [
        { key => 't/a', target => 'value', value => 'mmm' },
        { key => 't/a', target => 'version', result => '>', version => 3 } ], [], []);
    is $r->{succeeded}, 0, 'one compare false: failure';

    $r = txn_ok('range compare true', [ { key => 't/form', range_end => 't/form9',
        target => 'version', result => '>', version => 0 } ], [], []);
    is $r->{succeeded}, 1, 'compare over a key range (all t/form* exist)';
    $r = txn_ok('range compare false', [ { key => 't/form', range_end => 't/form9',
        target => 'value', value => 'named' } ], [], []);
    is $r->{succeeded}, 0, 'compare over a key range fails when one key differs';
}

# --- operations and their options, responses in order ------------------------------
must('seed r/', sub { $c->put("t/r/$_", "rv$_", $_[0]) }) for 1 .. 4;
must('seed d/', sub { $c->put("t/d/$_", "dv$_", $_[0]) }) for 1 .. 3;
{
    my $r = txn_ok('long names with options',
        [ { key => 't/a', target => 'value', value => 'mmm' } ],
        [
            { request_put => { key => 't/p', value => 'p1' } },
            { request_put => { key => 't/p2', value => 'p2', lease => $lease } },
            { request_range => { key => 't/r/', prefix => 1, limit => 2, sort_order => 'descend' } },
            { request_delete_range => { key => 't/d/1', prev_kv => 1 } },
            { request_range => { key => 't/r/', prefix => 1, keys_only => 1 } },
        ],
        []);
    is $r->{succeeded}, 1, 'success branch';
    my $rs = $r->{responses};
    is scalar @$rs, 5, 'one response per operation';
    is_deeply [ map { join ',', keys %$_ } @$rs ],
        [qw(response_put response_put response_range response_delete_range response_range)],
        'each response is a one-key hash naming its kind, in operation order';
    my $rev = $r->{header}{revision};
    is $rs->[0]{response_put}{header}{revision}, $rev, 'inner put header carries the txn revision';
    ok !defined $rs->[0]{response_put}{prev_kv}, 'put without prev_kv: none';
    is_deeply [ map { $_->{key} } @{ $rs->[2]{response_range}{kvs} } ], [qw(t/r/4 t/r/3)],
        'range with prefix, limit and sort_order';
    is $rs->[2]{response_range}{count}, 4, 'range count is the full match';
    is $rs->[2]{response_range}{more}, 1, 'range more is 1';
    is $rs->[3]{response_delete_range}{deleted}, 1, 'delete_range deleted 1';
    is $rs->[3]{response_delete_range}{prev_kvs}[0]{value}, 'dv1', 'delete_range with prev_kv returns it';
    is_deeply [ map { $_->{value} } @{ $rs->[4]{response_range}{kvs} } ], [ ('') x 4 ],
        'range with keys_only';
    my $g = must('get t/p2', sub { $c->get('t/p2', $_[0]) });
    is $g->{kvs}[0]{lease}, $lease, 'put inside a txn honours lease';
    is $g->{kvs}[0]{mod_revision}, $rev, 'all writes of the txn share one revision';
}
{
    my $r = txn_ok('aliases with options',
        [ { key => 't/p', target => 'value', value => 'p1' } ],
        [
            { put => { key => 't/p', value => 'p1b', prev_kv => 1 } },
            { range => { key => 't/r/', range_end => 't/r/3', count_only => 1 } },
            { delete => { key => 't/d/', prefix => 1, prev_kv => 1 } },
            { range => { key => 't/p' } },
            { range => { key => 't/d/', prefix => 1 } },
        ],
        []);
    is $r->{succeeded}, 1, 'success branch with aliases';
    my $rs = $r->{responses};
    is_deeply [ map { join ',', keys %$_ } @$rs ],
        [qw(response_put response_range response_delete_range response_range response_range)],
        'aliases give the same response kinds, in order';
    is $rs->[0]{response_put}{prev_kv}{value}, 'p1', 'put alias with prev_kv';
    is $rs->[0]{response_put}{prev_kv}{key}, 't/p', '... prev_kv key';
    is $rs->[1]{response_range}{count}, 2, 'range alias with range_end and count_only: count';
    is_deeply $rs->[1]{response_range}{kvs}, [], '... no kvs';
    is $rs->[2]{response_delete_range}{deleted}, 2, 'delete alias with prefix deleted t/d/2 and t/d/3';
    is_deeply [ map { $_->{key} } @{ $rs->[2]{response_delete_range}{prev_kvs} } ], [qw(t/d/2 t/d/3)],
        'delete alias with prev_kv';
    is $rs->[3]{response_range}{kvs}[0]{value}, 'p1b', 'a later range sees the earlier put of the same txn';
    is $rs->[4]{response_range}{count}, 0, 'and the earlier delete';
}
{
    # delete without prev_kv and put on the failure side
    my $r = txn_ok('failure ops',
        [ { key => 't/p', target => 'version', result => '>', version => 100 } ],
        [ { put => { key => 't/never', value => 'x' } } ],
        [ { delete => { key => 't/r/1' } }, { put => { key => 't/fail', value => 'f', prev_kv => 1 } } ]);
    is $r->{succeeded}, 0, 'failure branch';
    is $r->{responses}[0]{response_delete_range}{deleted}, 1, 'failure delete deleted 1';
    is_deeply $r->{responses}[0]{response_delete_range}{prev_kvs}, [], '... prev_kvs empty without prev_kv';
    ok !defined $r->{responses}[1]{response_put}{prev_kv}, 'put with prev_kv on a new key: none';
    is value_of('t/never'), undef, 'the success branch did not run';
    is value_of('t/fail'), 'f', 'the failure branch ran';
}
{
    # the server rejects a txn that writes one key twice
    my ($r, $e) = wait_for('duplicate', sub {
        $c->txn([], [ { put => { key => 't/dup', value => 1 } }, { put => { key => 't/dup', value => 2 } } ],
                [], $_[0]);
    });
    ok !$r, 'a txn etcd refuses gives no response';
    is $e->{status}, 'INVALID_ARGUMENT', '... INVALID_ARGUMENT';
    is $e->{source}, 'txn', '... source txn';
    like $e->{message}, qr/duplicate key/, "... etcd's message";
}

# --- croaks ------------------------------------------------------------------------
my $cb = sub { fail('callback of a croaked txn must never run') };
my @croaks = (
    [ 'compare not an array', [ compare => { key => 'x' }, callback => $cb ],
      qr/^txn 'compare' must be an array reference/ ],
    [ 'success not an array', [ success => 'nope', callback => $cb ],
      qr/^txn 'success' must be an array reference/ ],
    [ 'failure not an array', [ failure => {}, callback => $cb ],
      qr/^txn 'failure' must be an array reference/ ],
    [ 'failure not an array (trailing cb)', [ failure => \'x', $cb ],
      qr/^txn 'failure' must be an array reference/ ],
    [ 'positional compare not an array', [ { key => 'x' }, [], [], $cb ],
      qr/compare.* must be an array reference/ ],
    [ 'positional success not an array', [ [], 'x', [], $cb ],
      qr/success.* must be an array reference/ ],
    [ 'named callback not code', [ compare => [], callback => 'nope' ],
      qr/^callback must be a code reference/ ],
    [ 'named callback hash', [ compare => [], success => [], callback => {} ],
      qr/^callback must be a code reference/ ],
    [ 'named, no callback', [ compare => [], success => [] ],
      qr/^callback must be a code reference/ ],
    [ 'positional callback not code', [ [], [], [], 'nope' ],
      qr/^callback must be a code reference/ ],
    [ 'positional callback missing', [ [], [], [] ],
      qr/^callback must be a code reference/ ],
    [ 'op without a known operation', [ success => [ { bogus => { key => 'k' } } ], callback => $cb ],
      qr/success\[0\] needs one of request_put/ ],
    [ 'empty op hash in failure', [ failure => [ {} ], callback => $cb ],
      qr/failure\[0\] needs one of/ ],
    [ 'two operations in one op', [ success => [ { put => { key => 'k', value => 'v' }, range => { key => 'k' } } ], callback => $cb ],
      qr/exactly one operation/ ],
    [ 'op not a hash', [ success => [ 'put' ], callback => $cb ],
      qr/success\[0\] must be a hash reference/ ],
    [ 'op without key', [ success => [ { put => { value => 'v' } } ], callback => $cb ],
      qr/success\[0\] has no key/ ],
    [ 'unknown option in op', [ success => [ { range => { key => 'k', prefx => 1 } } ], callback => $cb ],
      qr/unknown option 'prefx'/ ],
    [ 'unknown compare target', [ compare => [ { key => 'k', target => 'colour', value => 'x' } ], callback => $cb ],
      qr/compare\[0\]: unknown target 'colour'/ ],
    [ 'missing compare field', [ compare => [ { key => 'k', target => 'version' } ], callback => $cb ],
      qr/compare\[0\] on target 'version' needs a 'version' field/ ],
    [ 'missing compare field (create)', [ compare => [ { key => 'k', target => 'create', version => 1 } ], callback => $cb ],
      qr/needs a 'create_revision' field/ ],
    [ 'missing compare field (value)', [ compare => [ { key => 'k', target => 'value', result => '!=' } ], callback => $cb ],
      qr/needs a 'value' field/ ],
    [ 'missing compare target', [ compare => [ { key => 'k', value => 'x' } ], callback => $cb ],
      qr/compare\[0\] has no target/ ],
    [ 'missing compare key', [ compare => [ { target => 'value', value => 'x' } ], callback => $cb ],
      qr/compare\[0\] has no key/ ],
    [ 'unknown compare result', [ compare => [ { key => 'k', target => 'value', value => 'x', result => '<=' } ], callback => $cb ],
      qr/unknown result '<='/ ],
    [ 'non-numeric version', [ compare => [ { key => 'k', target => 'version', version => 'three' } ], callback => $cb ],
      qr/must be an integer/ ],
    [ 'unknown named argument', [ compare => [], succes => [], callback => $cb ],
      qr/unknown argument 'succes'/ ],
    [ 'second compare is bad', [ compare => [ { key => 'k', target => 'version', version => 1 }, { key => 'k', target => 'x' } ], callback => $cb ],
      qr/compare\[1\]: unknown target 'x'/ ],
);
for my $t (@croaks) {
    my ($what, $args, $re) = @$t;
    my $ok = eval { $c->txn(@$args); 1 };
    ok !$ok, "croak: $what";
    like $@, $re, "croak message: $what";
}

# a croak names the caller's file and line, not a line inside the module
{
    my $line;
    eval { $line = __LINE__; $c->txn(compare => [ { key => 'k', target => 'nope' } ], callback => $cb) };
    like $@, qr/ at \Q$0\E line $line\.$/, 'named form: a bad compare is reported at the calling line';
    eval { $line = __LINE__; $c->txn([ { key => 'k', target => 'nope' } ], [], [], $cb) };
    like $@, qr/ at \Q$0\E line $line\.$/, 'positional form: a bad compare is reported at the calling line';
    eval { $line = __LINE__; $c->txn(compare => 'x', callback => $cb) };
    like $@, qr/ at \Q$0\E line $line\.$/, 'a non-array list is reported at the calling line';
}

# nothing is sent for a txn that croaks, even if an earlier operation was valid
{
    my $ok = eval {
        $c->txn(compare => [],
                success => [ { put => { key => 't/not-sent', value => 'x' } }, { bogus => 1 } ],
                callback => $cb);
        1;
    };
    ok !$ok, 'txn with a bad second operation croaks';
    $ok = eval { $c->txn([], [ { put => { key => 't/not-sent', value => 'y' } } ], [], 'nope'); 1 };
    ok !$ok, 'txn with a bad callback croaks';
    # give a stray request time to arrive before looking
    my $t; my $w = EV::timer(0.3, 0, sub { $t = 1 }); run_until(\$t, 5);
    is value_of('t/not-sent'), undef, 'nothing of a croaked txn reached the server';
}

done_testing;
