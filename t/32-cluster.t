#!/usr/bin/env perl
# Cluster service and leadership on a real three-member loopback cluster:
# member_list (plain and linearizable), move_leader there and back, and the
# life of a fourth member: added as a learner, started as a real etcd,
# promoted, its peer URLs updated, removed again.
use strict;
use warnings;

use Test::More;
use lib 't/lib';
use EtcdTest qw(:DEFAULT http_request etcd_version_ge);
use Time::HiRes qw(time);

need_etcd();

use EV;
use EV::Etcd;

my $t0 = time;
my @nodes = start_cluster(3);
diag sprintf 'etcd %s, three members healthy after %.1fs', $nodes[0]->version, time - $t0;

my %client = map { $_->name => EV::Etcd->new(endpoints => [ $_->endpoint ], timeout => 20) } @nodes;
my $c1 = $client{node1};

sub call {
    my ($client, $method, @args) = @_;
    my ($done, $resp, $err);
    $client->$method(@args, sub { ($resp, $err) = @_; $done = 1 });
    run_until(\$done, 25) or fail("$method: no callback within 25 s");
    return ($resp, $err);
}

# Waits $secs without blocking the loop.
sub pause {
    my ($secs) = @_;
    my $up;
    my $t = EV::timer($secs, 0, sub { $up = 1 });
    run_until(\$up, $secs + 5);
}

my $cluster_id;

sub ok_call {
    my ($what, $client, $method, @args) = @_;
    my ($r, $e) = call($client, $method, @args);
    ok !$e && ref $r eq 'HASH', "$what: succeeds" or diag explain $e;
    $r ||= {};
    ok ref $r->{header} eq 'HASH', "$what: has a header";
    return $r;
}

sub err_call {
    my ($what, $want, $client, $method, @args) = @_;
    my ($r, $e) = call($client, $method, @args);
    ok !defined $r, "$what: no response" or diag explain $r;
    $e ||= {};
    is $e->{status},  $want->{status},  "$what: status $want->{status}";
    is $e->{code},    $want->{code},    "$what: code $want->{code}";
    is $e->{message}, $want->{message}, "$what: server message passes through";
    is $e->{source},  $method,          "$what: source is $method";
    is $e->{retryable}, 0,              "$what: not retryable";
}

# Checks a members list against the expected servers; returns name => member.
sub check_members {
    my ($what, $members, @expect) = @_;
    ok ref $members eq 'ARRAY', "$what: members is an array" or return {};
    my %by_name = map { ($_->{name} // '') => $_ } @$members;
    is_deeply [ sort keys %by_name ], [ sort map { $_->{name} } @expect ],
        "$what: the expected members";
    for my $m (@$members) {
        is_deeply [ sort keys %$m ], [qw(client_urls id is_learner name peer_urls)],
            "$what: $m->{name} has the documented keys";
        like $m->{id}, qr/^[1-9]\d*$/, "$what: $m->{name} id is a positive integer";
    }
    for my $x (@expect) {
        my $m = $by_name{ $x->{name} } or next;
        is_deeply $m->{peer_urls}, $x->{peer_urls}, "$what: $x->{name} peer_urls";
        is_deeply $m->{client_urls}, $x->{client_urls}, "$what: $x->{name} client_urls";
        is $m->{is_learner}, $x->{is_learner}, "$what: $x->{name} is_learner $x->{is_learner}";
    }
    my %ids = map { $_->{id} => 1 } @$members;
    is scalar(keys %ids), scalar(@$members), "$what: ids are distinct";
    return \%by_name;
}

# etcd 3.4 has no linearizable member list: a member answers from what it
# has applied, which can lag behind a change the leader already answered
# for (a promote sent to a follower is carried out by the leader). There,
# ask again until the member has caught up; on 3.5 the first answer counts.
my $linearizable_list = etcd_version_ge('3.5');

sub settled_member_list {
    my ($what, $client, @expect) = @_;
    my $want = join ';', sort map { "$_->{name} $_->{is_learner} @{ $_->{peer_urls} }" } @expect;
    my $t = time;
    my ($r, $e);
    while (1) {
        ($r, $e) = call($client, 'member_list', { linearizable => 1 });
        last if $e || $linearizable_list || time - $t > 10;
        my $got = join ';', sort map { ($_->{name} // '') . " $_->{is_learner} @{ $_->{peer_urls} || [] }" }
            @{ $r->{members} || [] };
        last if $got eq $want;
        pause(0.2);
    }
    diag sprintf '%s: the member caught up after %.1fs', $what, time - $t
        if !$linearizable_list && time - $t > 0.1;
    ok !$e && ref $r eq 'HASH', "$what: succeeds" or diag explain $e;
    $r ||= {};
    ok ref $r->{header} eq 'HASH', "$what: has a header";
    return check_members($what, $r->{members}, @expect);
}

my @expect3 = map {
    { name => $_->name, peer_urls => [ $_->peer_url ], client_urls => [ $_->client_url ],
      is_learner => 0 }
} @nodes;

# ---------------------------------------------------------------------------
# member_list
# ---------------------------------------------------------------------------
my %id_of;       # name => member id
{
    my $r = ok_call('member_list', $c1, 'member_list');
    my $by = check_members('member_list', $r->{members}, @expect3);
    %id_of = map { $_ => $by->{$_}{id} } keys %$by;
    $cluster_id = $r->{header}{cluster_id};
    ok $cluster_id, 'member_list: header has a cluster_id';
    is $r->{header}{member_id}, $id_of{node1}, 'member_list: answered by node1 (header member_id)';

    $r = ok_call('member_list linearizable', $c1, 'member_list', { linearizable => 1 });
    check_members('member_list linearizable', $r->{members}, @expect3);

    for my $n (qw(node2 node3)) {
        $r = ok_call("member_list via $n", $client{$n}, 'member_list');
        is_deeply { map { $_->{name} => $_->{id} } @{ $r->{members} || [] } }, \%id_of,
            "member_list via $n: same members and ids";
        is $r->{header}{cluster_id}, $cluster_id, "member_list via $n: same cluster_id";
        is $r->{header}{member_id}, $id_of{$n}, "member_list via $n: header member_id is $n";
    }
}
my %name_of = reverse %id_of;

# Member ids are 64-bit: compare with what etcd's own JSON gateway reports
# (decimal strings there), so no precision is lost on the way to Perl.
{
    my $body = http_request('POST', $nodes[0]->client_port, '/v3/cluster/member/list', '{}', 10);
    my %gw;
    while (($body // '') =~ /\{[^{}]*?"ID":"(\d+)"[^{}]*?"name":"([^"]*)"/g) { $gw{$2} = $1 }
    is scalar(keys %gw), 3, 'the JSON gateway lists three members';
    is_deeply \%id_of, \%gw, 'member ids equal the JSON gateway ids digit for digit'
        or diag $body;
}

# ---------------------------------------------------------------------------
# move_leader (must be sent to the current leader)
# ---------------------------------------------------------------------------
sub leader_name {
    my ($via) = @_;
    my ($s, $e) = call($client{$via // 'node1'}, 'status');
    return undef unless $s && $s->{leader};
    return $name_of{ $s->{leader} };
}

sub wait_leader {
    my ($want, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        # every member must agree
        my @seen = map { leader_name($_) // '' } sort keys %client;
        return 1 if !grep { $_ ne $want } @seen;
        pause(0.2);
    }
    return 0;
}

my $leader = leader_name('node1');
ok defined $leader, 'status names a leader among the members';
if (defined $leader) {
    is leader_name($_), $leader, "status via $_ agrees on the leader" for qw(node2 node3);
    {
        my ($s) = call($client{$leader}, 'status');
        is $s->{header}{member_id}, $id_of{$leader}, "the leader's own status names itself";
    }

    my ($target) = grep { $_ ne $leader } sort keys %client;
    my ($bystander) = grep { $_ ne $leader && $_ ne $target } sort keys %client;

    err_call('move_leader sent to a follower',
             { status => 'FAILED_PRECONDITION', code => 9, message => 'etcdserver: not leader' },
             $client{$bystander}, 'move_leader', $id_of{$target});
    err_call('move_leader to an unknown member',
             { status => 'FAILED_PRECONDITION', code => 9, message => 'etcdserver: bad leader transferee' },
             $client{$leader}, 'move_leader', 4242);

    my $r = ok_call("move_leader $leader -> $target", $client{$leader}, 'move_leader', $id_of{$target});
    is_deeply [ sort keys %$r ], ['header'], 'move_leader: header only';
    ok wait_leader($target, 20), "every member now sees $target as leader";

    err_call('move_leader sent to the former leader',
             { status => 'FAILED_PRECONDITION', code => 9, message => 'etcdserver: not leader' },
             $client{$leader}, 'move_leader', $id_of{$leader});

    ok_call("move_leader $target -> $leader (back)", $client{$target}, 'move_leader', $id_of{$leader});
    ok wait_leader($leader, 20), "leadership is back with $leader";

    ok_call('writes work after the transfers', $c1, 'put', 'after/move', 'ok');
}

# ---------------------------------------------------------------------------
# a fourth member: learner, start, promote, update, remove
# ---------------------------------------------------------------------------
my $peer_port = free_port();
my $peer_url  = "http://127.0.0.1:$peer_port";
my ($new_id, $member4);
{
    # etcd refuses membership changes ("unhealthy cluster", UNAVAILABLE)
    # until every member has been connected for a few seconds: retry.
    my ($r, $e, $noted);
    my $deadline = time + 30;
    while (time < $deadline) {
        ($r, $e) = call($c1, 'member_add', [$peer_url], { is_learner => 1 });
        last if $r;
        last unless $e && $e->{status} eq 'UNAVAILABLE'
                    && $e->{message} eq 'etcdserver: unhealthy cluster';
        is $e->{retryable}, 1, 'member_add refused while the cluster settles: retryable'
            unless $noted++;
        pause(0.5);
    }
    ok $r && !$e, 'member_add (learner) accepted' or diag explain $e;
    $r ||= {};
    ok ref $r->{header} eq 'HASH', 'member_add: header';
    is $r->{header}{cluster_id}, $cluster_id, 'member_add: same cluster';
    my $m = $r->{member} || {};
    like $m->{id}, qr/^[1-9]\d*$/, 'member_add: new member id';
    $new_id = $m->{id};
    is $m->{name}, '', 'member_add: an unstarted member has no name yet';
    is_deeply $m->{peer_urls}, [$peer_url], 'member_add: peer_urls';
    is_deeply $m->{client_urls}, [], 'member_add: no client_urls yet';
    is $m->{is_learner}, 1, 'member_add: is_learner 1';
    is scalar(@{ $r->{members} || [] }), 4, 'member_add: members lists four';
    my ($listed) = grep { $_->{id} eq ($new_id // '') } @{ $r->{members} || [] };
    ok $listed && $listed->{is_learner}, 'member_add: members include the new learner';
}

if ($new_id) {    # (false only when member_add already failed above)

    err_call('adding a member with a peer URL already in use',
             { status => 'FAILED_PRECONDITION', code => 9,
               message => 'etcdserver: Peer URLs already exists' },
             $c1, 'member_add', [ $nodes[1]->peer_url ], { is_learner => 1 });

    $member4 = start_member(name => 'node4', cluster => \@nodes, peer_port => $peer_port,
                            timeout => 30);
    ok $member4->is_running && $member4->is_healthy, 'node4 runs as a real etcd and is healthy';
    my $c4 = EV::Etcd->new(endpoints => [ $member4->endpoint ], timeout => 20);
    my $learner = { name => 'node4', peer_urls => [$peer_url],
                    client_urls => [ $member4->client_url ], is_learner => 1 };

    my $r = ok_call('member_list with the learner', $c1, 'member_list');
    my $by = check_members('member_list with the learner', $r->{members}, @expect3, $learner);
    is $by->{node4} && $by->{node4}{id}, $new_id, 'the learner keeps the id member_add gave';

    {
        my ($s, $e);
        my $deadline = time + 20;
        while (time < $deadline) {
            ($s, $e) = call($c4, 'status');
            last if $s && $s->{header}{member_id} eq $new_id && $s->{leader};
            pause(0.3);
        }
        is $s && $s->{is_learner}, 1, "the learner's own status says is_learner 1";
        ok $s && $name_of{ $s->{leader} // '' }, 'the learner knows the leader';
    }

    err_call('member_promote of a voting member',
             { status => 'FAILED_PRECONDITION', code => 9,
               message => 'etcdserver: can only promote a learner member' },
             $c1, 'member_promote', $id_of{node2});

    # a learner can only be promoted once it has caught up with the leader
    my $e;
    my $deadline = time + 40;
    while (time < $deadline) {
        ($r, $e) = call($c1, 'member_promote', $new_id);
        last if $r;
        last unless $e && ($e->{message} // '') eq
            'etcdserver: can only promote a learner member which is in sync with leader';
        pause(1);
    }
    ok $r && !$e, 'member_promote accepted' or diag explain $e;
    $r ||= {};
    ok ref $r->{header} eq 'HASH', 'member_promote: header';
    $learner->{is_learner} = 0;
    check_members('member_promote response', $r->{members}, @expect3, $learner);

    settled_member_list('member_list after promote', $c1, @expect3, $learner);

    my $new_url = "http://localhost:$peer_port";
    $r = ok_call('member_update', $c1, 'member_update', $new_id, [$new_url]);
    $learner->{peer_urls} = [$new_url];
    check_members('member_update response', $r->{members}, @expect3, $learner);

    settled_member_list('member_list after update (via node2)', $client{node2}, @expect3, $learner);

    $r = ok_call('member_remove', $c1, 'member_remove', $new_id);
    check_members('member_remove response', $r->{members}, @expect3);

    settled_member_list('member_list after remove', $c1, @expect3);

    err_call('member_remove of the removed member',
             { status => 'NOT_FOUND', code => 5, message => 'etcdserver: member not found' },
             $c1, 'member_remove', $new_id);
    err_call('member_update of the removed member',
             { status => 'NOT_FOUND', code => 5, message => 'etcdserver: member not found' },
             $c1, 'member_update', $new_id, [$peer_url]);
    # (an id that never existed: promoting a removed id makes etcd time out)
    err_call('member_promote of an unknown member',
             { status => 'NOT_FOUND', code => 5, message => 'etcdserver: member not found' },
             $c1, 'member_promote', 4242);

    undef $c4;
    $member4->stop(5);
    ok !$member4->is_running, 'node4 process stopped';
}

err_call('member_add with a malformed peer URL',
         { status => 'INVALID_ARGUMENT', code => 3,
           message => 'etcdserver: given member URLs are invalid' },
         $c1, 'member_add', ['not a url']);

my $rev = ok_call('the three members still serve writes', $client{node3}, 'put', 'after/remove', 'ok')
    ->{header}{revision};
{
    my $r = ok_call('read back through another member', $client{node2}, 'get', 'after/remove');
    is $r->{kvs} && $r->{kvs}[0]{value}, 'ok', 'value written via node3 read via node2';

    # every member holds the same history: same hash_kv at the same revision
    my %hash;
    for my $n (sort keys %client) {
        ok_call("linearizable read on $n", $client{$n}, 'get', 'after/remove');
        my $h = ok_call("hash_kv($rev) on $n", $client{$n}, 'hash_kv', $rev);
        $hash{$n} = $h->{hash};
        is $h->{header}{member_id}, $id_of{$n}, "hash_kv on $n answered by $n";
    }
    my %distinct = map { ($_ // 'undef') => 1 } values %hash;
    is scalar(keys %distinct), 1, 'hash_kv agrees on all three members' or diag explain \%hash;
    like((values %hash)[0], qr/^\d+$/, 'hash_kv gives a number');
}

# argument checks: croak before anything is sent
{
    eval { $c1->member_add('http://127.0.0.1:1', sub {}) };
    like $@, qr/^member_add: peer_urls must be an array reference/, 'member_add wants an array ref';
    eval { $c1->member_update($id_of{node1}, 'http://127.0.0.1:1', sub {}) };
    like $@, qr/^member_update: peer_urls must be an array reference/, 'member_update wants an array ref';
    eval { $c1->member_remove('node1', sub {}) };
    like $@, qr/^member_remove: member id must be an integer, got 'node1'/, 'member_remove wants an id';
    eval { $c1->move_leader('node2', sub {}) };
    like $@, qr/^move_leader: .*must be an integer, got 'node2'/, 'move_leader wants an id';
    eval { $c1->member_list({ linearisable => 1 }, sub {}) };
    like $@, qr/^member_list: unknown option 'linearisable'/, 'member_list: unknown option croaks';
}

$_->stop for @nodes;
diag sprintf 'finished after %.1fs', time - $t0;
done_testing;
