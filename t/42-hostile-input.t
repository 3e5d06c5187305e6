#!/usr/bin/env perl
# Generated hostile input: every public method, the stream handles' cancel
# included, called with each argument replaced by wrong values (undef,
# references where strings belong, strings where numbers belong, huge,
# fractional, negative and non-finite numbers, bad options), with wrong
# argument counts and with invocants of other classes. Every call either
# croaks naming the method (a too large number is not called negative) or
# gets exactly one callback; nothing crashes and nothing is left in flight.
use strict;
use warnings;

use Test::More;
use Scalar::Util qw(blessed);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'hostile');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);
my $lease = ok_call($c, 'lease_grant', 60)->{id};
my $campaign = ok_call($c, 'election_campaign', 'hostile/el', $lease, 'v');
my $leader = $campaign->{leader};

# What each argument slot is, and a good value for it.
my %good = (
    key => 'hostile/k', value => 'v', opts => {}, lease => $lease, ttl => 30, rev => 0,
    member => 1, urls => ['http://127.0.0.1:1'], name => 'hostile/n', leader => $leader,
    target => sub { },
    action => 'GET', perm => 'READ', election => 'hostile/el', range_end => 'hostile/l', list => [],
);
my %signature = (
    put => [qw(key value opts)],            get => [qw(key opts)],
    delete => [qw(key opts)],               compact => [qw(rev opts)],
    txn => [qw(list list list)],            watch => [qw(key opts)],
    lease_grant => [qw(ttl)],               lease_revoke => [qw(lease)],
    lease_time_to_live => [qw(lease opts)], lease_leases => [],
    lease_keepalive => [qw(lease opts)],    lock => [qw(name lease)],
    unlock => [qw(key)],                    election_campaign => [qw(name lease value)],
    election_leader => [qw(name)],          election_proclaim => [qw(leader value)],
    election_resign => [qw(leader)],        election_observe => [qw(election opts)],
    authenticate => [qw(name value)],       auth_status => [],
    user_add => [qw(name value)],           user_get => [qw(name)],
    user_list => [],                        user_delete => [qw(name)],
    user_change_password => [qw(name value)], user_grant_role => [qw(name name)],
    user_revoke_role => [qw(name name)],    role_add => [qw(name)],
    role_get => [qw(name)],                 role_list => [],
    role_delete => [qw(name)],              role_grant_permission => [qw(name perm key range_end)],
    role_revoke_permission => [qw(name key range_end)],
    status => [qw(opts)],                   alarm => [qw(action opts)],
    hash_kv => [qw(rev opts)],              member_list => [qw(opts)],
    hash => [qw(opts)],                     snapshot => [qw(target)],
    lease_keepalive_once => [qw(lease)],
    member_add => [qw(urls opts)],          member_remove => [qw(member)],
    member_update => [qw(member urls)],     member_promote => [qw(member)],
    move_leader => [qw(member)],
);
my %stream = map { $_ => 1 } qw(watch lease_keepalive election_observe);

my $other = bless \(my $n = 12345), 'Some::Other::Class';
my @bad_scalar = (undef, [], {}, sub { 1 }, \'ref', $other);
my @bad_number = (undef, 'abc', '1.5', 1.5, -1, 2**64, 1e30, 9**9**9, -9**9**9, 'nan', '', [], {}, $other,
                  '18446744073709551616', '-9223372036854775809', ' 12x');
my @bad_opts = ('notahash', [], $other, { bogus => 1 }, { limit => -1 }, { sort_order => 'x' },
                { timeout => -1 }, { revision => 'x' }, { lease => 'y' }, { auto_reconnect => [] });
my %bad = (
    key => \@bad_scalar, value => \@bad_scalar, name => \@bad_scalar, election => \@bad_scalar, range_end => [ [], $other ],
    action => [ undef, 'EXPLODE', [] ], perm => [ undef, 'ALL', [] ],
    lease => \@bad_number, ttl => \@bad_number, rev => \@bad_number, member => \@bad_number,
    urls => [ undef, 'http://x', [undef], [ [] ], {} ], leader => [ undef, 'x', {}, [], { name => [] } ],
    opts => \@bad_opts, target => [ undef, 'file.db', [], {}, $other ], list => [ undef, 'x', {}, [ 'x' ], [ {} ], [ { bogus => 1 } ] ],
);

my ($calls, $croaked, $answered, $pending) = (0, 0, 0, 0);
my (@bad_messages, @twice, %waiting);
my @handles;

sub show { my $v = shift; defined $v ? (ref $v ? ref $v : "'$v'") : 'undef' }

# Runs one call; a croak must name the method; otherwise exactly one
# callback must come (checked at the end).
sub attempt {
    my ($m, $what, $invocant, @args) = @_;
    $calls++;
    my $seen = 0;
    my $key = "$m ($what)";
    # a stream calls back again and again; a unary call exactly once
    my $cb = sub {
        delete $waiting{$key} if !$seen;
        $answered++ if !$seen;
        push @twice, $key if $seen++ && !$stream{$m};
    };
    my @ret = eval { $invocant->${\ $m }(@args, $cb) };
    if (my $e = $@) {
        $croaked++;
        my $ok = $e =~ /^\Q$m\E: |^callback must be a code reference \(\Q$m\E\)|^Usage: EV::Etcd::\Q$m\E\(|^txn '?/;
        $ok &&= $e !~ /negative/ if grep { defined && !ref && /^(?:\d{20,}|1e\+?30|\d+\.?\d*e\+?\d+)$/i } @args;
        push @bad_messages, "$m ($what): $e" unless $ok;
        return;
    }
    $pending++;
    $waiting{$key} = 1;
    push @handles, $ret[0] if $stream{$m} && blessed $ret[0];
}

for my $m (sort keys %signature) {
    my @sig = @{ $signature{$m} };
    my @good = map { $good{$_} } @sig;
    # each slot replaced by each bad value
    for my $i (0 .. $#sig) {
        for my $v (@{ $bad{ $sig[$i] } }) {
            my @args = @good;
            $args[$i] = $v;
            attempt($m, "$sig[$i] = " . show($v), $c, @args);
        }
    }
    # the callback itself
    for my $v (undef, 'sub', {}, [], $other) {
        $calls++;
        eval { $c->$m(@good, $v) };
        if ($@ =~ /^callback must be a code reference \(\Q$m\E\)|^\Q$m\E: |^Usage: EV::Etcd::\Q$m\E\(/) { $croaked++ }
        else { push @bad_messages, "$m (callback = " . show($v) . "): " . ($@ || 'no croak') }
    }
    # argument counts
    attempt($m, 'no arguments', $c) if @sig;
    attempt($m, 'one argument too many', $c, @good, 'extra', 'more');
    # invocants that are not a live client
    for my $inv ($other, 'EV::Etcd', {}, bless({}, 'EV::Etcd::Watch')) {
        $calls++;
        eval { EV::Etcd->can($m)->($inv, @good, sub { }) };
        if ($@ =~ /^\Q$m\E: called on something that is not a live EV::Etcd client/
            || ($m eq 'txn' && $@ =~ /^txn: called on something/)) { $croaked++ }
        else { push @bad_messages, "$m (invocant " . show($inv) . "): " . ($@ || 'no croak') }
    }
}

# the stream handles
for my $class (qw(EV::Etcd::Watch EV::Etcd::Keepalive EV::Etcd::Observe)) {
    for my $inv ($other, 'x', {}, bless({ client => $other }, $class), bless([], $class)) {
        $calls++;
        eval { $class->can('cancel')->($inv, sub { }) };
        if ($@ =~ /^cancel: called on something that is not a live stream handle/) { $croaked++ }
        else { push @bad_messages, "$class cancel (" . show($inv) . "): " . ($@ || 'no croak') }
        next unless $class eq 'EV::Etcd::Watch';
        $calls++;
        eval { $class->can('progress')->($inv) };
        if ($@ =~ /^progress: called on something that is not a live watch handle/) { $croaked++ }
        else { push @bad_messages, "$class progress (" . show($inv) . "): " . ($@ || 'no croak') }
    }
}
# a handle pointed at a unary call's id, or at another kind of stream
{
    my $w = $c->watch('hostile/w', sub { });
    my $hold = 0;
    $c->lock('hostile/lock-a', $lease, sub { $hold++ });
    my $forged = bless { client => $c, id => $w->{id} + 1, kind => $w->{kind} }, 'EV::Etcd::Watch';
    eval { $forged->cancel(sub { }) };
    like $@, qr/^cancel: called on something that is not a live stream handle/,
        'a handle blessed by hand is refused';
    # a live handle whose fields were changed: the client's own table decides
    my $retargeted = $c->watch('hostile/w2', sub { });
    my $own_id = $retargeted->{id};
    $retargeted->{id} = $w->{id} + 1;
    eval { $retargeted->cancel(sub { }) };
    like $@, qr/^cancel: this handle does not belong to a stream of this client/,
        'a live handle pointed at a unary call id is refused';
    $retargeted->{id} = $w->{id};
    $retargeted->{kind} = 2;
    eval { $retargeted->cancel(sub { }) };
    like $@, qr/^cancel: this handle does not belong/, 'a handle of the wrong kind is refused';
    @$retargeted{qw(id kind)} = ($own_id, $w->{kind});
    push @handles, $retargeted;
    run_until(sub { $hold }, 10);
    is $hold, 1, 'the unary call whose id was forged still got its callback';
    push @handles, $w;
}

# every call that did not croak is answered exactly once
run_until(sub { $answered >= $pending }, 30);
is $answered, $pending, "every one of the $pending calls that went out was answered"
    or diag explain [ sort keys %waiting ];
is_deeply \@twice, [], 'none twice';
is_deeply \@bad_messages, [], "every one of the $croaked croaks names its method and the problem"
    or diag join "\n", @bad_messages[ 0 .. ($#bad_messages > 30 ? 30 : $#bad_messages) ];
cmp_ok $calls, '>', 700, "$calls hostile calls made";
ok_call($c, 'put', 'hostile/alive', 1);
is ok_call($c, 'get', 'hostile/alive')->{kvs}[0]{value}, 1, 'the client still works';

for my $h (@handles) {
    my $done;
    $h->cancel(sub { $done = 1 });
    run_until(\$done, 5);
}
done_testing;
