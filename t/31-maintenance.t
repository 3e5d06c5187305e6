#!/usr/bin/env perl
# Maintenance service against a real etcd: status, compact (logical and
# physical) and what it does to old revisions, hash_kv, defragment, and the
# alarm life cycle (GET, ACTIVATE NOSPACE, writes refused, DEACTIVATE).
use strict;
use warnings;

use Test::More;
use lib 't/lib';
use EtcdTest qw(:DEFAULT etcd_version_ge);

need_etcd();

use EV;
use EV::Etcd;

my $v35 = etcd_version_ge('3.5');
my $srv = start_etcd();
my $c   = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 20);
diag 'etcd ' . $srv->version;

sub call {
    my ($method, @args) = @_;
    my ($done, $resp, $err);
    $c->$method(@args, sub { ($resp, $err) = @_; $done = 1 });
    run_until(\$done, 20) or fail("$method: no callback within 20 s");
    return ($resp, $err);
}

my ($cluster_id, $member_id);

# $real: the server sends a header for this call (see the "no header" cases
# below), so it must name this cluster and member.
sub ok_call {
    my ($what, $real, $method, @args) = @_;
    my ($r, $e) = call($method, @args);
    ok !$e && ref $r eq 'HASH', "$what: succeeds" or diag explain $e;
    $r ||= {};
    my $h = $r->{header};
    ok ref $h eq 'HASH', "$what: has a header" or return $r;
    is_deeply [ sort keys %$h ], [qw(cluster_id member_id raft_term revision)],
        "$what: header keys";
    if ($real) {
        is $h->{cluster_id}, $cluster_id, "$what: header cluster_id" if defined $cluster_id;
        is $h->{member_id},  $member_id,  "$what: header member_id"  if defined $member_id;
        cmp_ok $h->{raft_term}, '>=', 1, "$what: header raft_term";
    } else {
        ok !grep({ !defined $h->{$_} || $h->{$_} !~ /^\d+$/ } keys %$h),
            "$what: header fields are numbers";
    }
    return $r;
}

sub err_call {
    my ($what, $want, $method, @args) = @_;
    my ($r, $e) = call($method, @args);
    ok !defined $r, "$what: no response" or diag explain $r;
    $e ||= {};
    is $e->{status},  $want->{status},  "$what: status $want->{status}";
    is $e->{code},    $want->{code},    "$what: code $want->{code}";
    is $e->{message}, $want->{message}, "$what: server message passes through";
    is $e->{source},  $method,          "$what: source is $method";
    is $e->{retryable}, $want->{retryable} // 0, "$what: retryable flag";
    return $e;
}

my $int = qr/^\d+$/;

# ---------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------
my $st;
{
    my ($r, $e) = call('status');
    ok !$e, 'status: no error' or diag explain $e;
    $st = $r || {};
    ($cluster_id, $member_id) = @{ $st->{header} || {} }{qw(cluster_id member_id)};
    ok $cluster_id && $member_id, 'status: header names the cluster and the member';

    is_deeply [ sort keys %$st ],
        [ sort qw(header version db_size db_size_in_use leader raft_index raft_term
                  raft_applied_index is_learner) ],
        'status: exactly the documented keys (no errors key on a healthy member)';
    is $st->{version}, $srv->version, 'status: version is the server version';
    like $st->{db_size}, $int, 'status: db_size is an integer';
    cmp_ok $st->{db_size}, '>', 0, 'status: db_size > 0';
    like $st->{db_size_in_use}, $int, 'status: db_size_in_use is an integer';
    cmp_ok $st->{db_size_in_use}, '>', 0, 'status: db_size_in_use > 0';
    cmp_ok $st->{db_size_in_use}, '<=', $st->{db_size}, 'status: in use <= db_size';
    is $st->{leader}, $member_id, 'status: a single member leads itself';
    like $st->{raft_index}, $int, 'status: raft_index is an integer';
    cmp_ok $st->{raft_index}, '>', 0, 'status: raft_index > 0';
    cmp_ok $st->{raft_term}, '>=', 1, 'status: raft_term >= 1';
    is $st->{raft_term}, $st->{header}{raft_term}, 'status: raft_term equals the header term';
    like $st->{raft_applied_index}, $int, 'status: raft_applied_index is an integer';
    cmp_ok $st->{raft_applied_index}, '>', 0, 'status: raft_applied_index > 0';
    is $st->{is_learner}, 0, 'status: is_learner is 0';
    ok !exists $st->{errors}, 'status: errors absent';
}

# ---------------------------------------------------------------------------
# history, hash_kv, compact
# ---------------------------------------------------------------------------
my @revs;
for my $i (1 .. 6) {
    my $r = ok_call("put history/$i", 1, 'put', 'history', "v$i");
    push @revs, $r->{header}{revision};
}
# $revs[0] .. $revs[5] hold v1 .. v6
is_deeply [ map { $revs[$_] - $revs[0] } 0 .. 5 ], [ 0 .. 5 ], 'six consecutive revisions';

{
    my $h1 = ok_call('hash_kv (current)', 1, 'hash_kv');
    like $h1->{hash}, $int, 'hash_kv: hash is an integer';
    cmp_ok $h1->{hash}, '>', 0, 'hash_kv: hash is not zero';
    is $h1->{compact_revision}, -1, 'hash_kv: compact_revision -1 before any compaction';
    is $h1->{header}{revision}, $revs[5], 'hash_kv: header revision is the current one';

    my $h_old = ok_call('hash_kv at an older revision', 1, 'hash_kv', $revs[1]);
    like $h_old->{hash}, $int, 'hash_kv(rev): hash';
    isnt $h_old->{hash}, $h1->{hash}, 'hash_kv(rev): a different history gives a different hash';
    is ok_call('hash_kv at the current revision', 1, 'hash_kv', $revs[5])->{hash}, $h1->{hash},
        'hash_kv(current revision) equals hash_kv()';
    is ok_call('hash_kv again', 1, 'hash_kv')->{hash}, $h1->{hash},
        'hash_kv is stable while nothing changes';
}

{
    my $r = ok_call('get at an old revision before compaction', 1, 'get', 'history',
                    { revision => $revs[1] });
    is $r->{kvs} && $r->{kvs}[0]{value}, 'v2', 'old revision readable before compaction';
}

my %COMPACTED = (status => 'OUT_OF_RANGE', code => 11,
                 message => 'etcdserver: mvcc: required revision has been compacted');

ok_call('compact (logical)', 1, 'compact', $revs[2]);
err_call('get below the compaction point', \%COMPACTED, 'get', 'history', { revision => $revs[1] });
{
    my $r = ok_call('get at the compaction point', 1, 'get', 'history', { revision => $revs[2] });
    is $r->{kvs} && $r->{kvs}[0]{value}, 'v3', 'the compaction revision itself stays readable';
}

ok_call('compact (physical => 1)', 1, 'compact', $revs[4], { physical => 1 });
err_call('get below the physical compaction', \%COMPACTED, 'get', 'history', { revision => $revs[3] });
err_call('compact to an already compacted revision', \%COMPACTED, 'compact', $revs[3]);
err_call('compact to a future revision',
         { status => 'OUT_OF_RANGE', code => 11,
           message => 'etcdserver: mvcc: required revision is a future revision' },
         'compact', $revs[5] + 1000);
{
    my $r = ok_call('get latest after compaction', 1, 'get', 'history');
    is $r->{kvs} && $r->{kvs}[0]{value}, 'v6', 'latest value untouched by compaction';
}

{
    my $h = ok_call('hash_kv after compaction', 1, 'hash_kv');
    is $h->{compact_revision}, $revs[4], 'hash_kv: compact_revision is the last compaction';
    like $h->{hash}, $int, 'hash_kv after compaction: hash';
    err_call('hash_kv below the compaction point', \%COMPACTED, 'hash_kv', $revs[1]);
}

# ---------------------------------------------------------------------------
# defragment
# ---------------------------------------------------------------------------
{
    # etcd sends no header with a defragment answer: the client fills in zeros
    my $r = ok_call('defragment', 0, 'defragment');
    is_deeply [ sort keys %$r ], ['header'], 'defragment: header only';
    my ($s) = call('status');
    ok $s && $s->{db_size} > 0, 'status still answers after defragment';
    cmp_ok $s->{db_size_in_use}, '<=', $s->{db_size}, 'after defragment: in use <= db_size';
    is $s->{leader}, $member_id, 'after defragment: same leader';
}

# ---------------------------------------------------------------------------
# alarms (etcd 3.4 sends no header on alarm answers)
# ---------------------------------------------------------------------------
{
    my $r = ok_call('alarm GET (none)', $v35, 'alarm', 'GET');
    is_deeply $r->{alarms}, [], 'alarm GET: no alarms on a fresh server';

    $r = ok_call('alarm ACTIVATE NOSPACE', $v35, 'alarm', 'ACTIVATE',
                 { member_id => $member_id, alarm => 'NOSPACE' });
    is_deeply $r->{alarms}, [ { member_id => $member_id, alarm => 1, alarm_type => 'NOSPACE' } ],
        'alarm ACTIVATE answers with the raised alarm';

    $r = ok_call('alarm GET (raised)', $v35, 'alarm', 'GET');
    is_deeply $r->{alarms}, [ { member_id => $member_id, alarm => 1, alarm_type => 'NOSPACE' } ],
        'alarm GET shows {member_id, alarm 1, alarm_type NOSPACE}';

    $r = ok_call('alarm GET filtered to NOSPACE', $v35, 'alarm', 'GET', { alarm => 'NOSPACE' });
    is scalar(@{ $r->{alarms} || [] }), 1, 'alarm GET with alarm => NOSPACE';

    err_call('put while NOSPACE is raised',
             { status => 'RESOURCE_EXHAUSTED', code => 8, retryable => 1,
               message => 'etcdserver: mvcc: database space exceeded' },
             'put', 'history', 'refused');
    my $g = ok_call('get while NOSPACE is raised', 1, 'get', 'history');
    is $g->{kvs} && $g->{kvs}[0]{value}, 'v6', 'reads still work under NOSPACE';

    my ($s) = call('status');
    is_deeply $s && $s->{errors}, ["memberID:$member_id alarm:NOSPACE "],
        'status: errors lists the raised alarm';

    $r = ok_call('alarm DEACTIVATE NOSPACE', $v35, 'alarm', 'DEACTIVATE',
                 { member_id => $member_id, alarm => 'NOSPACE' });
    is_deeply $r->{alarms}, [ { member_id => $member_id, alarm => 1, alarm_type => 'NOSPACE' } ],
        'alarm DEACTIVATE answers with the cleared alarm';

    $r = ok_call('alarm GET (cleared)', $v35, 'alarm', 'GET');
    is_deeply $r->{alarms}, [], 'alarm GET: no alarms after DEACTIVATE';

    ok_call('put after DEACTIVATE', 1, 'put', 'history', 'v7');
    ($s) = call('status');
    ok $s && !exists $s->{errors}, 'status: errors gone again';
}

# ---------------------------------------------------------------------------
# argument checks: croak, nothing sent
# ---------------------------------------------------------------------------
{
    my $called = 0;
    eval { $c->alarm('EXPLODE', sub { $called++ }) };
    like $@, qr/^alarm: unknown action 'EXPLODE'/, 'alarm with an unknown action croaks naming it';
    eval { $c->alarm('GET', { alarm => 'HEATWAVE' }, sub { $called++ }) };
    like $@, qr/^alarm: unknown alarm 'HEATWAVE'/, 'alarm with an unknown alarm type croaks naming it';
    eval { $c->alarm('GET', { colour => 1 }, sub { $called++ }) };
    like $@, qr/^alarm: unknown option 'colour'/, 'alarm with an unknown option croaks';
    eval { $c->alarm('GET') };
    like $@, qr/callback must be a code reference/, 'alarm without a callback croaks';
    eval { $c->hash_kv('abc', sub { $called++ }) };
    like $@, qr/^hash_kv: revision must be an integer, got 'abc'/, 'hash_kv with a non-numeric revision croaks';
    eval { $c->compact('abc', sub { $called++ }) };
    like $@, qr/^compact: revision must be an integer, got 'abc'/, 'compact with a non-numeric revision croaks';
    my $tick;
    my $t = EV::timer(0.3, 0, sub { $tick = 1 });
    run_until(\$tick, 5);
    is $called, 0, 'no callback for calls that croaked';
}

$srv->stop;
done_testing;
