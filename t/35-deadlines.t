#!/usr/bin/env perl
# Per-call deadlines: the `timeout` option of every unary method that takes
# an options hash, measured against a frozen (SIGSTOP) server; timeout => 0
# waits as long as it takes; bad values croak at the caller's line; streams
# and txn operations refuse the option.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

my $srv  = start_etcd(name => 'deadlines');
my $slow = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);
my $fast = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 1);

sub pause { run_until(sub { 0 }, $_[0]) }

sub proc_state {
    open my $fh, '<', "/proc/$_[0]/stat" or return '';
    my ($state) = (<$fh> // '') =~ /\)\s+(\S)/;
    return $state // '';
}

# Runs $code with the server frozen; returns when it has been thawed.
sub frozen {
    my ($code) = @_;
    my $pid = $srv->pid;
    kill 'STOP', $pid or die "cannot SIGSTOP $pid: $!";
    for (1 .. 200) { last if proc_state($pid) eq 'T'; select undef, undef, undef, 0.01 }
    is proc_state($pid), 'T', 'etcd is frozen';
    my $ok = eval { $code->(); 1 };
    my $err = $@;
    kill 'CONT', $pid;
    die $err unless $ok;
}

my $lease = ok_call($slow, 'lease_grant', 60)->{id};
my $rev   = ok_call($slow, 'put', 'dl/k', 'v')->{header}{revision};

# --- every unary method with options obeys its own timeout ------------------
my %calls = (
    put                => [ 'dl/maybe', 'w' ],    # may or may not be applied
    get                => [ 'dl/k' ],
    delete             => [ 'dl/none' ],
    compact            => [ $rev ],
    lease_time_to_live => [ $lease ],
    alarm              => [ 'GET' ],
    member_list        => [],
    lock               => [ 'dl/lock', $lease ],
    election_campaign  => [ 'dl/el', $lease, 'x' ],
);
frozen(sub {
    my %rec;
    my $t0 = time;
    for my $m (sort keys %calls) {
        $slow->$m(@{ $calls{$m} }, { timeout => 0.5 }, sub { $rec{$m} = [ @_, time - $t0 ] });
    }
    run_until(sub { keys %rec == keys %calls }, 8);
    for my $m (sort keys %calls) {
        my ($resp, $err, $took) = @{ $rec{$m} // [] };
        ok defined $took, "$m: called back while the server is frozen" or next;
        is $err->{status}, 'DEADLINE_EXCEEDED', "$m: DEADLINE_EXCEEDED";
        is $err->{source}, $m, "$m: source is $m";
        like $err->{message}, qr/\b0\.5s\b/, "$m: the message names the per-call deadline";
        cmp_ok $took, '>=', 0.45, "$m: not before 0.5 s";
        cmp_ok $took, '<', 4, "$m: long before the client's 10 s";
    }
});

# --- timeout => 0 and a timeout above the client's --------------------------
ok_call($fast, 'get', 'dl/k');
frozen(sub {
    my %rec;
    my $t0 = time;
    $fast->get('dl/k', sub { $rec{default} = [ @_, time - $t0 ] });
    $fast->get('dl/k', { timeout => 0 }, sub { $rec{none} = [ @_, time - $t0 ] });
    $fast->get('dl/k', { timeout => 6 }, sub { $rec{long} = [ @_, time - $t0 ] });
    $fast->get('dl/k', { timeout => undef }, sub { $rec{undef} = [ @_, time - $t0 ] });
    run_until(sub { $rec{default} && $rec{undef} }, 5);
    is $rec{default}[1]{status}, 'DEADLINE_EXCEEDED', 'without the option: the client timeout (1 s)';
    cmp_ok $rec{default}[2], '<', 3, '... ends near 1 s';
    is $rec{undef}[1]{status}, 'DEADLINE_EXCEEDED', 'timeout => undef means the client timeout';
    pause(1.5);    # past the client timeout twice over
    ok !$rec{none}, 'timeout => 0 is still waiting after 2.5 s';
    ok !$rec{long}, 'timeout => 6 is still waiting after 2.5 s';
    %rec = (none => $rec{none}, long => $rec{long});
    kill 'CONT', $srv->pid;
    run_until(sub { $rec{none} && $rec{long} }, 10);
    ok !$rec{none}[1], 'timeout => 0 completes once the server thaws'
        or diag explain $rec{none}[1];
    is $rec{none}[0]{kvs}[0]{value}, 'v', '... with the value';
    ok !$rec{long}[1], 'timeout => 6 completes too';
});

# --- accepted wherever an options hash is -----------------------------------
{
    my ($r, $e) = call($slow, 'member_add', ['not a url'], { timeout => 5 });
    ok $e && $e->{status} ne 'DEADLINE_EXCEEDED', 'member_add takes timeout (the server judges the URL)';
    my $got = ok_call($slow, 'get', 'dl/k', { timeout => 2.5, serializable => 1 });
    is $got->{kvs}[0]{value}, 'v', 'timeout mixes with other options';
    ok ok_call($slow, 'lock', 'dl/free', $lease, { timeout => 5 })->{key}, 'lock with options';
    ok ok_call($slow, 'election_campaign', 'dl/free-el', $lease, 'v', {})->{leader},
        'election_campaign with an empty options hash';
    ok ok_call($slow, 'lock', 'dl/free2', $lease, undef)->{key}, 'lock with undef options';
}

# --- bad values croak at the caller's line, nothing is sent ------------------
{
    my $cb = sub { fail('no callback for a croaked call') };
    my @bad = (
        [ -1,          qr/get: timeout must be a finite number of seconds, 0 or more/ ],
        [ 'soon',      qr/get: timeout must be a number of seconds/ ],
        [ 'nan',       qr/get: timeout must be/ ],
        [ 9**9**9,     qr/get: timeout must be a finite number/ ],
        [ -9**9**9,    qr/get: timeout must be a finite number/ ],
        [ [],          qr/get: timeout must be a number of seconds/ ],
    );
    for my $case (@bad) {
        my ($v, $re) = @$case;
        my $line = __LINE__ + 1;
        eval { $slow->get('dl/k', { timeout => $v }, $cb) };
        like $@, $re, "get timeout => " . (ref $v || $v) . ' croaks';
        like $@, qr/ at \Q$0\E line $line\.?$/, '... at the caller\'s line';
    }
    eval { $slow->lock('dl/x', $lease, { timout => 1 }, $cb) };
    like $@, qr/^lock: unknown option 'timout'/, 'lock names an unknown option';
    eval { $slow->election_campaign('dl/x', $lease, 'v', { wait => 1 }, $cb) };
    like $@, qr/^election_campaign: unknown option 'wait'/, 'election_campaign names an unknown option';
    eval { $slow->lock('dl/x', $lease, {}, $cb, 1) };
    like $@, qr/^lock: wrong number of arguments/, 'lock with too many arguments';
    eval { $slow->lock('dl/x', $lease, { timeout => -2 }, $cb) };
    like $@, qr/^lock: timeout must be/, 'lock checks its timeout';

    for my $m ([ 'watch', 'dl/k' ], [ 'lease_keepalive', $lease ], [ 'election_observe', 'dl/el' ]) {
        my ($name, @args) = @$m;
        eval { $slow->$name(@args, { timeout => 1 }, $cb) };
        like $@, qr/^$name: timeout does not apply here/, "$name refuses timeout (a stream has no deadline)";
    }
    eval { $slow->txn([], [ { put => { key => 'dl/t', value => 1, timeout => 1 } } ], [], $cb) };
    like $@, qr/^txn: timeout does not apply here/, 'a txn operation refuses timeout';

    my $t0 = time;
    EV::run;    # nothing was registered by the croaked calls: returns at once
    cmp_ok time - $t0, '<', 0.5, 'no croaked call left anything in flight';
}

ok_call($slow, 'lease_revoke', $lease);
done_testing;
