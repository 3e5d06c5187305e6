#!/usr/bin/env perl
# Integer arguments over their whole range: member ids (unsigned 64-bit),
# revisions and lease ids (signed 64-bit), given as Perl numbers or as
# decimal strings. An accepted value must reach the server (an answer comes
# back, usually a server-side error such as "member not found"); a value out
# of range, or not an integer, croaks naming the method, the argument and the
# value, at the caller's line. Ends with member operations on a real
# three-member cluster driven by stringified ids.
use strict;
use warnings;

use Test::More;
use B ();
use Math::BigInt;
use Scalar::Util qw(blessed);
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call cancel_sync http_request);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'intargs');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);

# A string built at run time: a pure PV that no numeric use has touched
# (the strings the old range check misread as negative).
sub str { my ($s) = @_; return "$s" }

sub is_pure_string {
    my $f = B::svref_2object(\$_[0])->FLAGS;
    return ($f & B::SVf_POK) && !($f & (B::SVf_IOK | B::SVf_NOK | B::SVp_IOK | B::SVp_NOK));
}

sub is_uv { B::svref_2object(\$_[0])->FLAGS & B::SVf_IVisUV }

# Ids above 2**63 - 1 compared without numeric conversions.
sub above_i64 {
    my ($s) = @_;
    return length($s) > 19 || (length($s) == 19 && $s gt '9223372036854775807');
}

{
    package Tied;
    sub TIESCALAR { my ($class, $v) = @_; bless \$v, $class }
    sub FETCH     { ${ $_[0] } }
}

sub tied_value { tie my $t, 'Tied', $_[0]; return \$t }

# How the answer of an accepted call is checked: 'ok' (success), 'any'
# (success or a server error), or { status => ..., message => qr/.../ }.
sub check_answer {
    my ($what, $method, $want, $r, $e) = @_;
    if (!ref $want && $want eq 'ok') {
        ok !$e && ref $r eq 'HASH', "$what: the server answers with success" or diag explain $e;
        return;
    }
    if (!ref $want && $want eq 'any') {
        ok((ref $r eq 'HASH' && !$e) || (!defined $r && ref $e eq 'HASH'),
           "$what: the server answers") or diag explain [ $r, $e ];
        is $e->{source}, $method, "$what: error source $method" if $e;
        return;
    }
    ok !defined $r && ref $e eq 'HASH', "$what: the server answers with an error" or diag explain $r;
    $e ||= {};
    is $e->{status}, $want->{status}, "$what: status $want->{status}";
    like $e->{message}, $want->{message}, "$what: server message" if $want->{message};
    is $e->{source}, $want->{source} // $method, "$what: error source";
}

sub pause { my ($secs) = @_; run_until(sub { 0 }, $secs) }

# etcd applies membership changes one at a time: a change proposed while
# raft still counts the previous one as unapplied is dropped, and its
# caller times out (seen with etcd 3.5 when the calls follow each other
# closely). Leave a moment between membership calls, and should one be
# dropped all the same, ask again.
sub member_pause { pause(0.2) if $_[0] =~ /^member_/ }

sub dropped_change {
    my ($method, $e) = @_;
    return $method =~ /^member_/ && $e
        && ($e->{status} eq 'DEADLINE_EXCEEDED' || $e->{message} eq 'etcdserver: request timed out');
}

sub mcall {
    my ($client, $method, @args) = @_;
    my ($r, $e);
    for my $try (1 .. 3) {
        member_pause($method);
        ($r, $e) = call($client, $method, @args);
        last unless dropped_change($method, $e);
        diag "$method timed out ($e->{message}): etcd dropped the change, asking again";
    }
    return ($r, $e);
}

# $start->($arg, $cb) must not croak, and must get an answer from the server.
# A stream handle it returns is cancelled afterwards.
sub accepted {
    my ($what, $method, $start, $arg, $want) = @_;
    my ($done, $r, $e, $h);
    for my $try (1 .. 3) {
        member_pause($method);
        $done = 0;
        my $ok = eval { $h = $start->($arg, sub { ($r, $e) = @_; $done = 1 }); 1 };
        ok $ok, "$what: accepted" or return diag $@;
        ok run_until(\$done, 20), "$what: a callback came" or return;
        last unless dropped_change($method, $e);
        diag "$what: timed out ($e->{message}): etcd dropped the change, asking again";
    }
    check_answer($what, $method, $want, $r, $e);
    if (blessed $h && $h->can('cancel')) {
        my @cc = cancel_sync({ handle => $h });
        is_deeply \@cc, [ [ {}, undef ] ], "$what: stream cancelled";
    }
    return ($r, $e);
}

my $called_back = 0;
my $count_cb = sub { $called_back++ };

# $start->($arg, $cb) must croak with exactly $msg, reported at $line.
sub refused {
    my ($what, $line, $start, $arg, $msg) = @_;
    my $ok = eval { $start->($arg, $count_cb); 1 };
    ok !$ok, "$what: croaks";
    like $@, qr/^\Q$msg\E at /, "$what: message '$msg'";
    like $@, qr/ at \Q$0\E line $line\.$/, "$what: reported at the caller's line ($line)";
}

# The croak messages, by problem; '%s' is the value as shown.
sub msg {
    my ($method, $what, $problem, $shown) = @_;
    my %text = (
        neg   => 'must not be negative',
        int   => 'must be an integer',
        big64 => 'is too large (must be at most 18446744073709551615)',
        big63 => 'is too large (must be at most 9223372036854775807)',
        small => 'is too small (must be at least -9223372036854775808)',
    );
    my $got = !defined $shown ? 'undef' : ref $shown ? "a reference ($$shown)" : "'$shown'";
    return "$method: $what $text{$problem}, got $got";
}

# Values that are not integers at all, refused by every integer argument:
# [ label, value maker, how the message shows it ].
my @not_integer = (
    [ '"1.5"',          sub { str('1.5') },    '1.5' ],
    [ '1.5 (number)',   sub { 1.5 },           '1.5' ],
    [ '"abc"',          sub { str('abc') },    'abc' ],
    [ '""',             sub { str('') },       '' ],
    [ '"12abc"',        sub { str('12abc') },  '12abc' ],
    [ '"1e3"',          sub { str('1e3') },    '1e3' ],
    [ '"0x10"',         sub { str('0x10') },   '0x10' ],
    [ 'undef',          sub { undef },         undef ],
    [ '[] (reference)', sub { [] },            \'ARRAY' ],
    [ '{} (reference)', sub { +{} },           \'HASH' ],
    [ 'Inf',            sub { 9**9**9 },       '' . 9**9**9 ],
    [ 'NaN',            sub { my $i = 9**9**9; $i - $i }, do { my $i = 9**9**9; '' . ($i - $i) } ],
    [ '"NaN"',          sub { str('NaN') },    'NaN' ],
);

# ===========================================================================
# Unsigned 64-bit: member ids, alarm's member_id, move_leader's target
# ===========================================================================
my $url = 'http://127.0.0.1:1';
my $not_found = { status => 'NOT_FOUND', message => qr/^etcdserver: member not found$/ };
my @u64 = (
    # [ method, argument name, line of the call, starter, answer when accepted ]
    [ 'member_remove', 'member id', __LINE__, sub { $c->member_remove($_[0], $_[1]) }, $not_found ],
    [ 'member_update', 'member id', __LINE__, sub { $c->member_update($_[0], [$url], $_[1]) }, $not_found ],
    [ 'member_promote', 'member id', __LINE__, sub { $c->member_promote($_[0], $_[1]) }, $not_found ],
    [ 'move_leader', 'target member id', __LINE__, sub { $c->move_leader($_[0], $_[1]) },
      { status => 'FAILED_PRECONDITION', message => qr/^etcdserver: bad leader transferee$/ } ],
    [ 'alarm', 'member_id', __LINE__, sub { $c->alarm('DEACTIVATE', { member_id => $_[0], alarm => 'NOSPACE' }, $_[1]) }, 'ok' ],
);
# Options whose undef value means "not given" (the default, 0).
my %undef_is_default = map { $_ => 1 } qw(alarm put txn);

my @u64_ok = (
    [ '0',                        sub { 0 } ],
    [ '2**63-1',                  sub { 9223372036854775807 } ],
    [ '2**63',                    sub { 9223372036854775808 } ],
    [ '2**64-1',                  sub { 18446744073709551615 } ],
    [ '2**63 as a float',         sub { 2**63 } ],
    [ '"0"',                      sub { str('0') } ],
    [ '"9223372036854775807"',    sub { str('9223372036854775807') } ],
    [ '"9223372036854775808"',    sub { str('9223372036854775808') } ],
    [ '"18446744073709551615"',   sub { str('18446744073709551615') } ],
    [ '" 18446744073709551615 "', sub { str(' 18446744073709551615 ') } ],
    [ '"+18446744073709551615"',  sub { str('+18446744073709551615') } ],
    [ '"-0"',                     sub { str('-0') } ],
    [ 'a string used as a number first',
      sub { my $s = str('18446744073709551615'); no warnings 'void'; $s + 0; $s } ],
    [ 'a Math::BigInt 2**64-1',   sub { Math::BigInt->new('18446744073709551615') } ],
    [ 'a tied scalar "18446744073709551615"', sub { tied_value('18446744073709551615') } ],
);

my @u64_bad = (
    [ '"18446744073709551616"', sub { str('18446744073709551616') }, 'big64', '18446744073709551616' ],
    [ '18446744073709551616 (an NV)', sub { 18446744073709551616 }, 'big64', '' . 18446744073709551616 ],
    [ '"99999999999999999999999"', sub { str('99999999999999999999999') }, 'big64', '99999999999999999999999' ],
    [ '-1',   sub { -1 },          'neg', '-1' ],
    [ '"-1"', sub { str('-1') },   'neg', '-1' ],
    [ '-2**63', sub { -9223372036854775808 }, 'neg', '-9223372036854775808' ],
    [ '"-18446744073709551616"', sub { str('-18446744073709551616') }, 'neg', '-18446744073709551616' ],
    map { [ $_->[0], $_->[1], 'int', $_->[2] ] } @not_integer,
);

for my $m (@u64) {
    my ($method, $what, $line, $start, $want) = @$m;
    for my $v (@u64_ok) {
        my ($label, $make) = @$v;
        my $arg = $make->();
        if (ref $arg eq 'SCALAR') {    # a tied scalar: pass the tied variable itself
            my $ref = $arg;
            accepted("$method $label", $method, sub { $start->($$ref, $_[1]) }, undef, $want);
            next;
        }
        ok is_pure_string($arg), "$method $label: passed as a pure string" if $label =~ /^"/;
        accepted("$method $label", $method, $start, $arg, $want);
    }
    accepted("$method undef (the default)", $method, $start, undef, $want) if $undef_is_default{$method};
    for my $v (@u64_bad) {
        my ($label, $make, $problem, $shown) = @$v;
        next if $label eq 'undef' && $undef_is_default{$method};
        refused("$method $label", $line, $start, $make->(), msg($method, $what, $problem, $shown));
    }
}

# The same string twice: the first use must not change how the second is read.
{
    my $s = str('18446744073709551615');
    accepted('member_remove, a string id (first use)', 'member_remove',
             sub { $c->member_remove($_[0], $_[1]) }, $s, $not_found);
    accepted('member_remove, the same string id again', 'member_remove',
             sub { $c->member_remove($_[0], $_[1]) }, $s, $not_found);
    is $s, '18446744073709551615', 'the string argument is left as it was';
}

# The ids arrive at the server digit for digit: an alarm raised for a member
# id is listed back with that id.
{
    my @ids = ('18446744073709551615', '9223372036854775808', '9223372036854775807', '1');
    for my $id (@ids) {
        ok_call($c, 'alarm', 'ACTIVATE', { member_id => str($id), alarm => 'NOSPACE' });
    }
    my $r = ok_call($c, 'alarm', 'GET');
    my @got = sort map { "$_->{member_id}" } @{ $r->{alarms} || [] };
    is_deeply \@got, [ sort @ids ], 'alarm GET lists the member ids given as strings, exactly';
    for my $a (@{ $r->{alarms} || [] }) {
        ok is_uv($a->{member_id}), "member_id $a->{member_id} comes back as an unsigned integer"
            if above_i64("$a->{member_id}");
    }
    ok_call($c, 'alarm', 'DEACTIVATE', { member_id => 18446744073709551615, alarm => 'NOSPACE' });
    ok_call($c, 'alarm', 'DEACTIVATE', { member_id => 9223372036854775808, alarm => 'NOSPACE' });
    ok_call($c, 'alarm', 'DEACTIVATE', { member_id => str('9223372036854775807'), alarm => 'NOSPACE' });
    ok_call($c, 'alarm', 'DEACTIVATE', { member_id => 1, alarm => 'NOSPACE' });
    $r = ok_call($c, 'alarm', 'GET');
    is_deeply $r->{alarms}, [], 'all of them deactivated, by number and by string';
}

# ===========================================================================
# Signed 64-bit: revisions and lease ids
# ===========================================================================
my $future = { status => 'OUT_OF_RANGE', message => qr/required revision is a future revision/ };
my $no_lease = { status => 'NOT_FOUND', message => qr/^etcdserver: requested lease not found$/ };
my $no_lease_any = { status => 'UNKNOWN', message => qr/^etcdserver: requested lease not found$/ };

my @i64 = (
    # [ method, argument name, line, starter, answer for 2**63-1,
    #   answer for -2**63 (undef: croaks "must not be negative") ]
    [ 'get', 'revision', __LINE__, sub { $c->get('k', { revision => $_[0] }, $_[1]) }, $future, 'ok' ],
    [ 'get', 'min_mod_revision', __LINE__, sub { $c->get('k', { min_mod_revision => $_[0] }, $_[1]) }, 'ok', 'ok' ],
    [ 'compact', 'revision', __LINE__, sub { $c->compact($_[0], $_[1]) }, $future,
      { status => 'OUT_OF_RANGE', message => qr/required revision has been compacted/ } ],
    # (with an options hash, so that a hash as the revision is not taken for one)
    [ 'hash_kv', 'revision', __LINE__, sub { $c->hash_kv($_[0], {}, $_[1]) }, $future, 'any' ],
    [ 'watch', 'start_revision', __LINE__, sub { $c->watch('k', { start_revision => $_[0] }, $_[1]) }, 'ok', undef ],
    [ 'lease_revoke', 'lease id', __LINE__, sub { $c->lease_revoke($_[0], $_[1]) }, $no_lease, undef ],
    [ 'lease_time_to_live', 'lease id', __LINE__, sub { $c->lease_time_to_live($_[0], $_[1]) }, 'ok', undef ],
    [ 'lease_keepalive', 'lease id', __LINE__, sub { $c->lease_keepalive($_[0], $_[1]) },
      { %$no_lease, source => 'keepalive' }, undef ],
    [ 'lock', 'lease id', __LINE__, sub { $c->lock('int-args-lock', $_[0], $_[1]) }, $no_lease_any, undef ],
    [ 'election_campaign', 'lease id', __LINE__, sub { $c->election_campaign('int-args-election', $_[0], 'me', $_[1]) }, $no_lease_any, undef ],
    [ 'put', 'lease', __LINE__, sub { $c->put('k', 'v', { lease => $_[0] }, $_[1]) }, $no_lease, undef ],
    [ 'txn', 'lease', __LINE__, sub { $c->txn([], [ { request_put => { key => 'k', value => 'v', lease => $_[0] } } ], [], $_[1]) }, $no_lease, undef ],
);

for my $m (@i64) {
    my ($method, $what, $line, $start, $want_max, $want_min) = @$m;
    for my $v ([ '2**63-1', sub { 9223372036854775807 } ],
               [ '"9223372036854775807"', sub { str('9223372036854775807') } ],
               [ '"+9223372036854775807 "', sub { str('+9223372036854775807 ') } ]) {
        my ($label, $make) = @$v;
        my ($r) = accepted("$method $what $label", $method, $start, $make->(), $want_max);
        is "$r->{id}", '9223372036854775807', "$method $label: the server saw lease 9223372036854775807"
            if $method eq 'lease_time_to_live' && $r;
    }
    for my $v ([ '-2**63', sub { -9223372036854775808 } ],
               [ '"-9223372036854775808"', sub { str('-9223372036854775808') } ]) {
        my ($label, $make) = @$v;
        if (defined $want_min) {
            accepted("$method $what $label", $method, $start, $make->(), $want_min);
        } else {
            refused("$method $what $label", $line, $start, $make->(),
                    msg($method, $what, 'neg', '-9223372036854775808'));
        }
    }
    my @bad = (
        [ '2**63', sub { 9223372036854775808 }, 'big63', '9223372036854775808' ],
        [ '"9223372036854775808"', sub { str('9223372036854775808') }, 'big63', '9223372036854775808' ],
        [ '2**63 as a float', sub { 2**63 }, 'big63', '' . 2**63 ],
        [ '2**64-1', sub { 18446744073709551615 }, 'big63', '18446744073709551615' ],
        [ '"18446744073709551616"', sub { str('18446744073709551616') }, 'big63', '18446744073709551616' ],
        [ '"-9223372036854775809"', sub { str('-9223372036854775809') },
          defined $want_min ? 'small' : 'neg', '-9223372036854775809' ],
        [ '-2**64 (an NV)', sub { -18446744073709551616 },
          defined $want_min ? 'small' : 'neg', '' . -18446744073709551616 ],
        (defined $want_min ? () : ([ '-1', sub { -1 }, 'neg', '-1' ], [ '"-1"', sub { str('-1') }, 'neg', '-1' ])),
        map { [ $_->[0], $_->[1], 'int', $_->[2] ] } @not_integer,
    );
    accepted("$method $what undef (the default)", $method, $start, undef, 'ok') if $undef_is_default{$method};
    for my $v (@bad) {
        my ($label, $make, $problem, $shown) = @$v;
        next if $label eq 'undef' && $undef_is_default{$method};
        refused("$method $what $label", $line, $start, $make->(), msg($method, $what, $problem, $shown));
    }
}

# the remaining integer arguments: their range and their own checks
{
    my $line;
    $line = __LINE__; my $ka = sub { $c->lease_keepalive($_[0], $_[1]) };
    refused('lease_keepalive lease id 0', $line, $ka, 0, 'lease_keepalive: lease id must not be 0');
    refused('lease_keepalive lease id "0"', $line, $ka, str('0'), 'lease_keepalive: lease id must not be 0');

    $line = __LINE__; my $wid = sub { $c->watch('k', { watch_id => $_[0] }, $_[1]) };
    refused('watch watch_id -1', $line, $wid, -1, msg('watch', 'watch_id', 'neg', '-1'));
    refused('watch watch_id 2**63', $line, $wid, str('9223372036854775808'),
            msg('watch', 'watch_id', 'big63', '9223372036854775808'));
    refused('watch watch_id "x"', $line, $wid, 'x', msg('watch', 'watch_id', 'int', 'x'));

    $line = __LINE__; my $lim = sub { $c->get('k', { limit => $_[0] }, $_[1]) };
    refused('get limit -1', $line, $lim, -1, msg('get', 'limit', 'neg', '-1'));
    refused('get limit 2**64', $line, $lim, str('18446744073709551616'),
            msg('get', 'limit', 'big63', '18446744073709551616'));
    accepted('get limit "9223372036854775807"', 'get', $lim, str('9223372036854775807'), 'ok');

    $line = __LINE__; my $ttl = sub { $c->lease_grant($_[0], $_[1]) };
    refused('lease_grant ttl 2**63', $line, $ttl, str('9223372036854775808'),
            msg('lease_grant', 'ttl', 'big63', '9223372036854775808'));
    refused('lease_grant ttl "1.5"', $line, $ttl, str('1.5'), msg('lease_grant', 'ttl', 'int', '1.5'));
    my ($r) = accepted('lease_grant ttl "60"', 'lease_grant', $ttl, str('60'), 'ok');
    my $lid = $r && $r->{id};

    # a real lease given back as a string, everywhere a lease id goes
    if ($lid) {
        my $sid = str("$lid");
        my $t = ok_call($c, 'lease_time_to_live', $sid);
        is "$t->{id}", "$lid", 'lease_time_to_live with the lease id as a string: same lease';
        cmp_ok $t->{ttl}, '>', 0, '... and it is alive';
        ok_call($c, 'put', 'int-args/leased', 'v', { lease => str("$lid") });
        my $g = ok_call($c, 'get', 'int-args/leased');
        is "$g->{kvs}[0]{lease}", "$lid", 'put with the lease id as a string attaches the key';
        ok_call($c, 'lease_revoke', str("$lid"));
        $g = ok_call($c, 'get', 'int-args/leased');
        is $g->{count}, 0, 'lease_revoke with the lease id as a string deletes the key';
    }

    $line = __LINE__; my $cmp = sub { $c->txn([ { key => 'k', target => 'mod', mod_revision => $_[0] } ], [], [], $_[1]) };
    refused('txn compare mod_revision 2**63', $line, $cmp, 9223372036854775808,
            msg('txn', 'compare[0] mod_revision', 'big63', '9223372036854775808'));
    accepted('txn compare mod_revision "-9223372036854775808"', 'txn', $cmp, str('-9223372036854775808'), 'ok');
}

{
    my ($done);
    $c->get('k', sub { $done = 1 });
    run_until(\$done, 10);
    is $called_back, 0, 'no croaked call ever called back';
}

# ===========================================================================
# A real three-member cluster, driven by stringified member ids
# ===========================================================================
my $t0 = time;
my @nodes = start_cluster(3, name_prefix => 'ids');
diag sprintf 'etcd %s, three members healthy after %.1fs', $nodes[0]->version, time - $t0;
my %client = map { $_->name => EV::Etcd->new(endpoints => [ $_->endpoint ], timeout => 20) } @nodes;
my $c1 = $client{ids1};

# Membership changes are refused ("unhealthy cluster") for a few seconds
# after the members have connected: retry those.
sub settle_call {
    my ($client, $method, @args) = @_;
    my ($r, $e);
    my $deadline = time + 30;
    while (1) {
        ($r, $e) = mcall($client, $method, @args);
        last if $r || time > $deadline;
        last unless $e->{status} eq 'UNAVAILABLE' && $e->{message} eq 'etcdserver: unhealthy cluster';
        pause(0.5);
    }
    return ($r, $e);
}

my (%id_of, %member_of);
{
    my $r = ok_call($c1, 'member_list');
    my @m = @{ $r->{members} || [] };
    is scalar(@m), 3, 'member_list: three members';
    %member_of = map { $_->{name} => $_ } @m;
    %id_of = map { $_->{name} => $_->{id} } @m;

    # the server's own view of the ids: decimal strings from the JSON gateway
    my $body = http_request('POST', $nodes[0]->client_port, '/v3/cluster/member/list', '{}', 10);
    my %gw;
    while (($body // '') =~ /\{[^{}]*?"ID":"(\d+)"[^{}]*?"name":"([^"]*)"/g) { $gw{$2} = $1 }
    is scalar(keys %gw), 3, 'the JSON gateway lists three members' or diag $body;
    my $big = 0;
    for my $name (sort keys %id_of) {
        my $id = $id_of{$name};
        is "$id", $gw{$name}, "$name: member_list id equals the server's, digit for digit";
        if (above_i64("$id")) {
            $big++;
            ok is_uv($id), "$name: an id above 2**63-1 ($id) is a Perl unsigned integer";
        }
    }
    is "$r->{header}{member_id}", "$id_of{ids1}", 'the header member_id is the answering member id';
    diag "$big of the three member ids are above 2**63-1";
}

# member_update of each member with its own peer URLs, by a string id
for my $name (sort keys %id_of) {
    my $sid = str("$id_of{$name}");
    ok is_pure_string($sid), "$name: id passed as a pure string ($sid)";
    my ($r, $e) = settle_call($c1, 'member_update', $sid, $member_of{$name}{peer_urls});
    ok $r && !$e, "member_update $name by its string id succeeds" or diag explain $e;
    my ($m) = grep { "$_->{id}" eq "$id_of{$name}" } @{ ($r || {})->{members} || [] };
    is_deeply $m && $m->{peer_urls}, $member_of{$name}{peer_urls}, "member_update $name: same peer URLs";
}

# unknown ids above 2**63-1, as strings: the server says so (no croak)
for my $sid ('18446744073709551615', '9223372036854775809') {
    for my $method (qw(member_remove member_promote)) {
        my $arg = str($sid);
        my ($r, $e) = eval { mcall($c1, $method, $arg) };
        ok !$@, "$method \"$sid\" on the cluster: no croak" or diag $@;
        ok !$r && $e && $e->{status} eq 'NOT_FOUND' && $e->{source} eq $method,
            "$method \"$sid\": NOT_FOUND from the server" or diag explain [ $r, $e ];
    }
    my ($r, $e) = mcall($c1, 'member_update', str($sid), ['http://127.0.0.1:1']);
    is $e && $e->{status}, 'NOT_FOUND', "member_update \"$sid\": NOT_FOUND from the server";
}

# move_leader by a string id (sent to the leader)
{
    my $s = ok_call($c1, 'status');
    my %name_of = reverse %id_of;
    my $leader = $name_of{ "$s->{leader}" };
    ok defined $leader, 'status names one of the members as leader';
    if (defined $leader) {
        my ($target) = grep { $_ ne $leader } sort keys %id_of;
        my ($r, $e) = call($client{$leader}, 'move_leader', str("$id_of{$target}"));
        ok $r && !$e, "move_leader $leader -> $target by a string id" or diag explain $e;
        my $moved;
        my $deadline = time + 20;
        while (time < $deadline) {
            my ($st) = call($client{$target}, 'status');
            last if $moved = ($st && "$st->{leader}" eq "$id_of{$target}");
            pause(0.2);
        }
        ok $moved, "$target leads now";
    }
}

# A learner whose id is above 2**63-1: member_add gives random ids, so add
# (and remove, by string id) unstarted learners until one has such an id.
{
    my ($big, $tries);
    for my $try (1 .. 24) {
        $tries = $try;
        my $peer = 'http://127.0.0.1:' . free_port();
        my ($r, $e) = settle_call($c1, 'member_add', [$peer], { is_learner => 1 });
        ok $r && !$e, "member_add learner (try $try)" or do { diag explain $e; last };
        my $m = $r->{member};
        if (above_i64("$m->{id}")) {
            ok is_uv($m->{id}), "member_add returns id $m->{id} as an unsigned integer";
            $big = { id => "$m->{id}", peer => $peer };
            last;
        }
        my ($rr, $ee) = settle_call($c1, 'member_remove', str("$m->{id}"));
        ok $rr && !$ee, "member_remove of learner $m->{id} by its string id" or diag explain $ee;
    }
    ok $big, "a learner with an id above 2**63-1 after $tries member_add(s)";
    if ($big) {
        my $new_peer = 'http://localhost:' . (split /:/, $big->{peer})[-1];
        my ($r, $e) = settle_call($c1, 'member_update', str($big->{id}), [$new_peer]);
        ok $r && !$e, "member_update of learner $big->{id} by its string id" or diag explain $e;
        my ($m) = grep { "$_->{id}" eq $big->{id} } @{ ($r || {})->{members} || [] };
        is_deeply $m && $m->{peer_urls}, [$new_peer], 'member_update: the learner has the new peer URL';

        ($r, $e) = mcall($c1, 'member_promote', str($big->{id}));
        ok !$r && $e && $e->{status} eq 'FAILED_PRECONDITION' && $e->{source} eq 'member_promote',
            'member_promote of the unstarted learner by string id: refused by the server'
            or diag explain [ $r, $e ];

        ($r, $e) = settle_call($c1, 'member_remove', str($big->{id}));
        ok $r && !$e, "member_remove of learner $big->{id} by its string id" or diag explain $e;
        ok !grep({ "$_->{id}" eq $big->{id} } @{ ($r || {})->{members} || [] }),
            'member_remove: the learner is gone';
        ($r, $e) = mcall($c1, 'member_remove', str($big->{id}));
        is $e && $e->{status}, 'NOT_FOUND', 'member_remove of it again: NOT_FOUND';
    }
    my $r = ok_call($c1, 'member_list');
    is scalar(@{ $r->{members} || [] }), 3, 'the cluster is back to its three members';
}

$_->stop for @nodes;
done_testing;
