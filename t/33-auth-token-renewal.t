use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use EtcdTest;
use EV;
use EV::Etcd;

# A simple token that expires while the client is idle must not break the
# client: it logs in again with the credentials it authenticated with.
need_etcd();
my $srv = start_etcd(extra => ['--auth-token', 'simple', '--auth-token-ttl', '2']);
my $ep  = $srv->endpoint;

sub wait_call {
    my ($client, $method, @args) = @_;
    my ($resp, $err, $done);
    $client->$method(@args, sub { ($resp, $err) = @_; $done = 1 });
    ok(run_until(\$done, 15), "$method answered") or return;
    return ($resp, $err);
}

my $root = EV::Etcd->new(endpoints => [$ep]);
my (undef, $err) = wait_call($root, 'user_add', 'root', 'rootpw');
is($err, undef, 'root user added');
(undef, $err) = wait_call($root, 'user_grant_role', 'root', 'root');
is($err, undef, 'root role granted');
(undef, $err) = wait_call($root, 'auth_enable');
is($err, undef, 'auth enabled');

my @calls;    # what on_request saw, to count the transparent re-login
my $client = EV::Etcd->new(endpoints => [$ep], on_request => sub { push @calls, $_[0] });
my ($resp);
($resp, $err) = wait_call($client, 'authenticate', 'root', 'rootpw');
is($err, undef, 'authenticated');
ok(length $resp->{token}, 'token returned');
my $first_token = $resp->{token};

($resp, $err) = wait_call($client, 'put', '/renew/a', '1');
is($err, undef, 'put with a fresh token');

# Let the token expire (TTL 2 s) while idle; the next call must still work.
sleep 5;
($resp, $err) = wait_call($client, 'put', '/renew/b', '2');
is($err, undef, 'put after the token expired succeeds (logged in again)')
    or diag explain $err;
is($calls[-1]{method}, 'put', 'on_request saw that put');
is($calls[-1]{retries}, 1, '... repeated once after the new login');
is($calls[-1]{status}, 'OK', '... and successful');
is($calls[-2]{retries}, 0, 'the put before the expiry was not repeated');
($resp, $err) = wait_call($client, 'get', '/renew/', { prefix => 1 });
is($err, undef, 'get after renewal');
is(scalar @{ $resp->{kvs} || [] }, 2, 'both keys visible');

# A client that was only given a token (no credentials) cannot renew it:
# the server's error reaches the caller unchanged.
my $token_only = EV::Etcd->new(endpoints => [$ep], auth_token => $first_token);
sleep 3;
($resp, $err) = wait_call($token_only, 'get', '/renew/a');
ok($err, 'expired token without credentials gives an error');
like($err->{message}, qr/invalid auth token/, 'server message passed through')
    if $err;
is($err->{source}, 'get', 'source is the method') if $err;

# Clean up: disable auth as root.
($resp, $err) = wait_call($client, 'auth_disable');
is($err, undef, 'auth disabled');

$srv->stop;
done_testing;
