#!/usr/bin/env perl
# The endpoint option of status, hash, hash_kv and defragment: the call goes
# to the member named, which need not be one of the client's endpoints,
# and is answered by that member; a bad name croaks, an unreachable one
# fails with a structured error; the client's own endpoint is untouched.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call free_port);

need_etcd();
use EV;
use EV::Etcd;

my @nodes = start_cluster(3);
# The client knows only node1.
my @requests;
my $c = EV::Etcd->new(endpoints => [ $nodes[0]->endpoint ], timeout => 5,
                      on_request => sub { push @requests, $_[0] });
my %id_of = map { $_->{name} => $_->{id} } @{ ok_call($c, 'member_list')->{members} };
ok_call($c, 'put', 'member/k', 'v');

for my $n (@nodes[1, 2]) {
    my $name = $n->name;
    for my $method (qw(status hash hash_kv defragment)) {
        my ($r, $e) = call($c, $method, { endpoint => $n->endpoint }, );
        ok !$e, "$method on $name succeeds" or diag explain $e;
        is $r->{header}{member_id}, $id_of{$name}, "... answered by $name"
            unless $method eq 'defragment';    # etcd sends no header with a defragment answer
    }
    my ($r) = call($c, 'hash_kv', 0, { endpoint => 'http://' . $n->endpoint, timeout => 3 });
    is $r->{header}{member_id}, $id_of{$name}, "hash_kv with a revision, an http:// endpoint and a timeout on $name";
    is $requests[-1]{endpoint}, $n->endpoint, '... and on_request names that member';
}

# the same checksum on every member, each asked directly
{
    my %hash = map { $_->name => ok_call($c, 'hash_kv', { endpoint => $_->endpoint })->{hash} } @nodes;
    is scalar(keys %{{ reverse %hash }}), 1, 'hash_kv agrees on all three members' or diag explain \%hash;
    my $s = ok_call($c, 'status');
    is $s->{header}{member_id}, $id_of{node1}, 'without the option: the connected member';
    is_deeply $c->endpoints, [ $nodes[0]->endpoint ], 'the endpoint list is unchanged';
}

# a member that is not there
{
    my $port = free_port();
    my $t0 = time;
    my ($r, $e) = call($c, 'status', { endpoint => "127.0.0.1:$port" });
    ok !defined $r, 'an unreachable member: no response';
    is $e->{status}, 'UNAVAILABLE', '... UNAVAILABLE';
    is $e->{source}, 'status', '... source status';
    is $e->{retryable}, 1, '... retryable';
    cmp_ok time - $t0, '<', 6, '... within the timeout';
    ok_call($c, 'status');
    pass 'the client goes on working';
}

# argument checks
{
    my $line;
    eval { $line = __LINE__; $c->status({ endpoint => '' }, sub {}) };
    like $@, qr/^status: endpoint must not be empty at \Q$0\E line $line\.$/, 'an empty endpoint croaks';
    eval { $line = __LINE__; $c->hash_kv({ endpoint => 'https://127.0.0.1:1' }, sub {}) };
    like $@, qr/^hash_kv: endpoint 'https:\/\/127.0.0.1:1' asks for TLS; this client uses plaintext at \Q$0\E line $line\.$/,
        'a TLS endpoint on a plaintext client croaks';
    eval { $line = __LINE__; $c->defragment({ endpoint => 'not a host:port' }, sub {}) };
    like $@, qr/^defragment: endpoint 'not a host:port' is not host:port/, 'a malformed endpoint croaks';
    eval { $line = __LINE__; $c->hash({ member => 'x' }, sub {}) };
    like $@, qr/^hash: unknown option 'member' at \Q$0\E line $line\.$/, 'an unknown option croaks';
    eval { $line = __LINE__; $c->status({ endpoint => [] }, sub {}) };
    like $@, qr/^status: endpoint must be/, 'a reference croaks';
    eval { $line = __LINE__; $c->hash_kv(5, { endpoint => $nodes[1]->endpoint }) };
    like $@, qr/^callback must be a code reference \(hash_kv\) at \Q$0\E line $line\.$/, 'a missing callback croaks';
}

$_->stop for @nodes;
done_testing;
