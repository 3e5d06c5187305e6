#!/usr/bin/env perl
# The error hash {code, status, message, source, retryable} for transport
# failures, deadlines and server errors; the callback check of every public
# method; and the croaks for bad arguments.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use EtcdTest qw(:DEFAULT wait_for);

need_etcd();

use EV;
use EV::Etcd;


sub is_error {
    my ($what, $resp, $err, %want) = @_;
    ok !defined $resp, "$what: no response";
    ok ref $err eq 'HASH', "$what: error is a hash" or return;
    is_deeply [ sort keys %$err ], [qw(code message retryable source status)],
        "$what: error has exactly code, message, retryable, source, status";
    for my $k (sort keys %want) {
        if (ref $want{$k} eq 'Regexp') { like $err->{$k}, $want{$k}, "$what: $k" }
        else                           { is $err->{$k}, $want{$k}, "$what: $k" }
    }
    like $err->{code}, qr/^\d+$/, "$what: code is a number";
    like $err->{retryable}, qr/^[01]$/, "$what: retryable is 0 or 1";
    ok length $err->{message}, "$what: message is not empty";
}

sub proc_state {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return '?';
    my $line = <$fh> // '';
    return $line =~ /^\d+ \(.*\) (\S)/ ? $1 : '?';
}

my $srv = start_etcd();
my $c   = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 20);

# --- a dead endpoint ----------------------------------------------------------
{
    my $dead = start_etcd();
    my $ep   = $dead->endpoint;
    $dead->stop;
    ok !$dead->is_running, 'second server stopped';
    my $dc = EV::Etcd->new(endpoints => [$ep], timeout => 10);
    my $t0 = time;
    my ($r, $e) = wait_for('get on a dead endpoint', sub { $dc->get('k', $_[0]) }, 30);
    is_error('dead endpoint get', $r, $e,
        code => 14, status => 'UNAVAILABLE', retryable => 1, source => 'get');
    cmp_ok time - $t0, '<', 9, 'the failure is reported without waiting for the timeout';
    ($r, $e) = wait_for('put on a dead endpoint', sub { $dc->put('k', 'v', $_[0]) }, 30);
    is_error('dead endpoint put', $r, $e,
        code => 14, status => 'UNAVAILABLE', retryable => 1, source => 'put');
    ($r, $e) = wait_for('lease_grant on a dead endpoint', sub { $dc->lease_grant(5, $_[0]) }, 30);
    is_error('dead endpoint lease_grant', $r, $e,
        code => 14, status => 'UNAVAILABLE', retryable => 1, source => 'lease_grant');
}

# --- server errors reach the user unchanged --------------------------------------
{
    my ($r, $e) = wait_for('lease_revoke unknown', sub { $c->lease_revoke(7_777_777, $_[0]) });
    is_error('lease_revoke of an unknown lease', $r, $e,
        code => 5, status => 'NOT_FOUND', retryable => 0, source => 'lease_revoke',
        message => 'etcdserver: requested lease not found');

    ($r, $e) = wait_for('put ignore_value missing', sub {
        $c->put('err/missing', undef, { ignore_value => 1 }, $_[0]);
    });
    is_error('put ignore_value on a missing key', $r, $e,
        code => 3, status => 'INVALID_ARGUMENT', retryable => 0, source => 'put',
        message => 'etcdserver: key not found');

    ($r, $e) = wait_for('put on unknown lease', sub {
        $c->put('err/k', 'v', { lease => 123_456_789 }, $_[0]);
    });
    is_error('put with a lease that does not exist', $r, $e,
        code => 5, status => 'NOT_FOUND', retryable => 0, source => 'put',
        message => 'etcdserver: requested lease not found');

    my ($p) = wait_for('put', sub { $c->put('err/k', 'v', $_[0]) });
    my $now = $p->{header}{revision};
    ($r, $e) = wait_for('future revision', sub { $c->get('err/k', { revision => $now + 1000 }, $_[0]) });
    is_error('get at a future revision', $r, $e,
        code => 11, status => 'OUT_OF_RANGE', retryable => 0, source => 'get',
        message => 'etcdserver: mvcc: required revision is a future revision');

    wait_for('put', sub { $c->put('err/k', 'v2', $_[0]) });
    my ($cr, $ce) = wait_for('compact', sub { $c->compact($now + 1, $_[0]) });
    ok !$ce, 'compact succeeded';
    ($r, $e) = wait_for('compacted revision', sub { $c->get('err/k', { revision => $now }, $_[0]) });
    is_error('get at a compacted revision', $r, $e,
        code => 11, status => 'OUT_OF_RANGE', retryable => 0, source => 'get',
        message => 'etcdserver: mvcc: required revision has been compacted');
    ($r, $e) = wait_for('compact again', sub { $c->compact($now, $_[0]) });
    is_error('compact of an already compacted revision', $r, $e,
        code => 11, status => 'OUT_OF_RANGE', source => 'compact', retryable => 0,
        message => 'etcdserver: mvcc: required revision has been compacted');

    ($r, $e) = wait_for('lease ttl unknown', sub { $c->lease_time_to_live(424242, $_[0]) });
    ok !$e, 'lease_time_to_live of an unknown lease is not an error' or diag explain $e;
    is $r && $r->{ttl}, -1, '... etcd answers ttl -1';

    ($r, $e) = wait_for('user_get unknown', sub { $c->user_get('nobody', $_[0]) });
    is_error('user_get of an unknown user', $r, $e,
        source => 'user_get', retryable => 0, status => 'FAILED_PRECONDITION', code => 9,
        message => 'etcdserver: user name not found');
}

# --- DEADLINE_EXCEEDED -------------------------------------------------------------
{
    my $slow = start_etcd();
    my $tc   = EV::Etcd->new(endpoints => [ $slow->endpoint ], timeout => 1);
    my ($r, $e) = wait_for('warm-up', sub { $tc->put('dl/k', 'v', $_[0]) });
    ok !$e, 'client with timeout => 1 works while the server runs';

    my $pid = $slow->pid;
    kill 'STOP', $pid or die "cannot SIGSTOP $pid: $!";
    # SIGSTOP is asynchronous: wait until the process is really stopped
    for (1 .. 200) { last if proc_state($pid) eq 'T'; select undef, undef, undef, 0.01 }
    is proc_state($pid), 'T', 'etcd is stopped';
    my $t0 = time;
    my ($done, @got);
    $tc->get('dl/k', sub { @got = @_; $done = 1 });
    my $finished = run_until(\$done, 10);
    my $took = time - $t0;
    kill 'CONT', $pid;
    ok $finished, 'a call to a frozen server completes (with an error)';
    is_error('frozen server', $got[0], $got[1],
        code => 4, status => 'DEADLINE_EXCEEDED', retryable => 1, source => 'get');
    cmp_ok $took, '>=', 0.8, sprintf('not before the 1 s timeout (%.2fs)', $took);
    cmp_ok $took, '<', 6, sprintf('soon after the 1 s timeout (%.2fs)', $took);

    ($r, $e) = wait_for('after CONT', sub { $tc->get('dl/k', $_[0]) });
    ok !$e, 'the client works again once the server runs' or diag explain $e;
    is $r && $r->{kvs}[0]{value}, 'v', '... and reads the value';
}

# --- every public method checks its callback before sending anything ---------------
my ($lease) = wait_for('lease', sub { $c->lease_grant(60, $_[0]) });
my $lid = $lease->{id};
my $leader = { name => 'e', key => 'e/1', rev => 1, lease => $lid };
my %args = (
    put                    => [ 'cb/put', 'v' ],
    get                    => [ 'cb/k' ],
    delete                 => [ 'cb/keep' ],
    txn                    => [ [], [ { put => { key => 'cb/txn', value => 'v' } } ], [] ],
    compact                => [ 1 ],
    watch                  => [ 'cb/k' ],
    lease_grant            => [ 10 ],
    lease_revoke           => [ $lid ],
    lease_keepalive        => [ $lid ],
    lease_time_to_live     => [ $lid ],
    lease_leases           => [],
    lock                   => [ 'cb/lock', $lid ],
    unlock                 => [ 'cb/lock/1' ],
    authenticate           => [ 'root', 'pw' ],
    auth_enable            => [],
    auth_disable           => [],
    auth_status            => [],
    user_add               => [ 'cbuser', 'pw' ],
    user_delete            => [ 'cbuser' ],
    user_change_password   => [ 'cbuser', 'pw2' ],
    user_get               => [ 'cbuser' ],
    user_list              => [],
    user_grant_role        => [ 'cbuser', 'cbrole' ],
    user_revoke_role       => [ 'cbuser', 'cbrole' ],
    role_add               => [ 'cbrole' ],
    role_delete            => [ 'cbrole' ],
    role_get               => [ 'cbrole' ],
    role_list              => [],
    role_grant_permission  => [ 'cbrole', 'READ', 'a', 'b' ],
    role_revoke_permission => [ 'cbrole', 'a', 'b' ],
    status                 => [],
    alarm                  => [ 'GET' ],
    defragment             => [],
    hash_kv                => [],
    move_leader            => [ 1 ],
    election_campaign      => [ 'cb/elect', $lid, 'v' ],
    election_leader        => [ 'cb/elect' ],
    election_proclaim      => [ $leader, 'v' ],
    election_resign        => [ $leader ],
    election_observe       => [ 'cb/elect' ],
    member_list            => [],
    member_add             => [ ['http://127.0.0.1:1'] ],
    member_remove          => [ 1 ],
    member_update          => [ 1, ['http://127.0.0.1:1'] ],
    member_promote         => [ 1 ],
);
is scalar(keys %args), 45, 'all 45 public client methods are listed';

wait_for('put cb/keep', sub { $c->put('cb/keep', 'stays', $_[0]) });
my $leases_before = (wait_for('lease_leases', sub { $c->lease_leases($_[0]) }))[0]{leases};

for my $m (sort keys %args) {
    ok(EV::Etcd->can($m), "EV::Etcd can $m") or next;
    for my $bad ([ 'a string', 'callback' ], [ 'a hash ref', {} ], [ 'an array ref', [] ],
                 [ 'undef', undef ], [ 'a scalar ref', \'x' ]) {
        my ($label, $val) = @$bad;
        # txn named form: the callback goes under callback =>
        my $ok = eval { $c->$m(@{ $args{$m} }, $val); 1 };
        ok !$ok, "$m croaks when the callback is $label";
        like $@, qr/^callback must be a code reference/, "$m: message for $label";
    }
    my $ok = eval { $c->$m(@{ $args{$m} }); 1 };
    ok !$ok, "$m croaks when the callback is missing";
    like $@, qr/^callback must be a code reference/, "$m: message when missing";
}
{
    my $ok = eval { $c->txn(compare => [], success => [ { put => { key => 'cb/txn', value => 'v' } } ],
                            callback => 'nope'); 1 };
    ok !$ok, 'txn (named) croaks on a non-code callback';
    like $@, qr/^callback must be a code reference/, 'txn (named): message';
}

# cancel of the three handle classes
{
    my @handles;
    my $w = $c->watch('cb/w', sub { });
    my $k = $c->lease_keepalive($lid, sub { });
    my $o = $c->election_observe('cb/obs', sub { });
    isa_ok $w, 'EV::Etcd::Watch';
    isa_ok $k, 'EV::Etcd::Keepalive';
    isa_ok $o, 'EV::Etcd::Observe';
    for my $h ($w, $k, $o) {
        my $class = ref $h;
        for my $bad ('nope', {}, undef) {
            my $ok = eval { $h->cancel($bad); 1 };
            ok !$ok, "$class->cancel croaks on a non-code callback";
            like $@, qr/^callback must be a code reference/, "$class->cancel: message";
        }
        my $ok = eval { $h->cancel; 1 };
        ok !$ok, "$class->cancel croaks without a callback";
        like $@, qr/^callback must be a code reference/, "$class->cancel: message when missing";
        my $done;
        $h->cancel(sub { $done = 1 });
        ok run_until(\$done, 10), "$class: a proper cancel still works after the croaks";
    }
}

# Nothing was sent by any of the croaked calls.
{
    my $t; my $tw = EV::timer(0.5, 0, sub { $t = 1 }); run_until(\$t, 5);
    my ($r) = wait_for('get cb/put', sub { $c->get('cb/put', $_[0]) });
    is $r->{count}, 0, 'croaked put sent nothing: the key does not exist';
    ($r) = wait_for('get cb/txn', sub { $c->get('cb/txn', $_[0]) });
    is $r->{count}, 0, 'croaked txn sent nothing';
    ($r) = wait_for('get cb/keep', sub { $c->get('cb/keep', $_[0]) });
    is $r->{kvs}[0]{value}, 'stays', 'croaked delete sent nothing';
    ($r) = wait_for('lease_leases', sub { $c->lease_leases($_[0]) });
    is_deeply [ sort map { $_->{id} } @{ $r->{leases} } ], [ sort map { $_->{id} } @$leases_before ],
        'croaked lease_grant / lease_revoke sent nothing';
    ($r) = wait_for('user_list', sub { $c->user_list($_[0]) });
    ok !grep({ $_ eq 'cbuser' } @{ $r->{users} || [] }), 'croaked user_add sent nothing';
    ($r) = wait_for('role_list', sub { $c->role_list($_[0]) });
    ok !grep({ $_ eq 'cbrole' } @{ $r->{roles} || [] }), 'croaked role_add sent nothing';
    ($r) = wait_for('member_list', sub { $c->member_list($_[0]) });
    is scalar @{ $r->{members} }, 1, 'croaked member_add sent nothing';

    # and none of them left anything pending that would hold the loop
    my $t0 = time;
    my $guard = EV::timer(5, 0, sub { EV::break });
    $guard->keepalive(0);    # the guard itself must not hold the loop
    EV::run;
    cmp_ok time - $t0, '<', 2, 'EV::run returns at once: croaked calls left nothing in flight';
}

# --- bad input croaks naming the problem ----------------------------------------------
my $never = sub { fail('a croaked call must never call back') };
my @bad = (
    [ 'unknown sort_order', sub { $c->get('k', { sort_order => 'sideways' }, $never) },
      qr/^get: unknown sort_order 'sideways' \(expected ascend, descend or none\)/ ],
    [ 'unknown sort_target', sub { $c->get('k', { sort_target => 'size' }, $never) },
      qr/^get: unknown sort_target 'size'/ ],
    [ 'non-numeric lease', sub { $c->put('k', 'v', { lease => 'abc' }, $never) },
      qr/^put: lease must be an integer, got 'abc'/ ],
    [ 'non-numeric limit', sub { $c->get('k', { limit => 'ten' }, $never) },
      qr/^get: limit must be an integer, got 'ten'/ ],
    [ 'non-numeric revision', sub { $c->get('k', { revision => 'latest' }, $never) },
      qr/^get: revision must be an integer/ ],
    [ 'non-numeric lease id', sub { $c->lease_revoke('xyz', $never) },
      qr/^lease_revoke: .*must be an integer, got 'xyz'/ ],
    [ 'non-numeric ttl', sub { $c->lease_grant('long', $never) },
      qr/^lease_grant: ttl must be an integer/ ],
    [ 'unknown get option', sub { $c->get('k', { prefx => 1 }, $never) },
      qr/^get: unknown option 'prefx'/ ],
    [ 'unknown put option', sub { $c->put('k', 'v', { leese => 1 }, $never) },
      qr/^put: unknown option 'leese'/ ],
    [ 'unknown delete option', sub { $c->delete('k', { prev => 1 }, $never) },
      qr/^delete: unknown option 'prev'/ ],
    [ 'unknown watch option', sub { $c->watch('k', { start => 1 }, $never) },
      qr/^watch: unknown option 'start'/ ],
    [ 'options not a hash ref', sub { $c->get('k', [ prefix => 1 ], $never) },
      qr/^get: options must be a hash reference/ ],
    [ 'put options not a hash ref', sub { $c->put('k', 'v', 'prefix', $never) },
      qr/^put: options must be a hash reference/ ],
    [ 'undefined key (get)', sub { $c->get(undef, $never) },
      qr/^get: key must be defined/ ],
    [ 'undefined key (put)', sub { $c->put(undef, 'v', $never) },
      qr/^put: key must be defined/ ],
    [ 'undefined key (delete)', sub { $c->delete(undef, $never) },
      qr/^delete: key must be defined/ ],
    [ 'undefined value (put)', sub { $c->put('k', undef, $never) },
      qr/^put: value must be defined/ ],
    [ 'reference as key', sub { $c->get([], $never) },
      qr/^get: key must be a string/ ],
    [ 'too many arguments', sub { $c->get('k', {}, {}, $never) },
      qr/^get: wrong number of arguments/ ],
);
for my $t (@bad) {
    my ($what, $code, $re) = @$t;
    my $ok = eval { $code->(); 1 };
    ok !$ok, "croak: $what";
    like $@, $re, "croak message: $what";
    like $@, qr/ at \Q$0\E line \d+/, "croak is reported at the caller: $what";
}
{
    my ($r) = wait_for('get k', sub { $c->get('k', $_[0]) });
    is $r->{count}, 0, 'the croaked puts of k sent nothing';
}

done_testing;
