#!/usr/bin/env perl
# EV::Etcd->new: validation of every option, the defaults, both endpoint
# spellings, moving on from a dead endpoint, health reporting, auth_token.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use EtcdTest qw(:DEFAULT wait_for);

need_etcd();

use EV;
use EV::Etcd;


my $srv  = start_etcd();
my $ep   = $srv->endpoint;
my $port = $srv->client_port;

# --- validation ---------------------------------------------------------------------
my @bad = (
    [ 'unknown option',               [ endpoints => [$ep], bogus => 1 ],   qr/^EV::Etcd->new: unknown option 'bogus'/ ],
    [ 'unknown option (typo)',        [ timout => 5 ],                      qr/unknown option 'timout'/ ],
    [ 'odd number of arguments',      [ 'endpoints' ],                      qr/name => value pairs/ ],
    [ 'timeout not a number',         [ timeout => 'soon' ],                qr/timeout must be a number/ ],
    [ 'timeout undef',                [ timeout => undef ],                 qr/timeout must be a number/ ],
    [ 'timeout a reference',          [ timeout => [5] ],                   qr/timeout must be a number/ ],
    [ 'max_retries not a number',     [ max_retries => 'many' ],            qr/max_retries must be an integer, got 'many'/ ],
    [ 'max_retries undef',            [ max_retries => undef ],             qr/max_retries must be an integer/ ],
    [ 'max_retries a reference',      [ max_retries => {} ],                qr/max_retries must be an integer/ ],
    [ 'health_interval negative',     [ health_interval => -1 ],            qr/health_interval must be a non-negative number/ ],
    [ 'health_interval not a number', [ health_interval => 'often' ],       qr/health_interval must be a non-negative number/ ],
    [ 'on_health_change a string',    [ on_health_change => 'main::cb' ],   qr/on_health_change must be a code reference/ ],
    [ 'on_health_change a hash',      [ on_health_change => {} ],           qr/on_health_change must be a code reference/ ],
    [ 'endpoints a string',           [ endpoints => $ep ],                 qr/endpoints must be an array reference/ ],
    [ 'endpoints a hash',             [ endpoints => { $ep => 1 } ],        qr/endpoints must be an array reference/ ],
    [ 'endpoints empty',              [ endpoints => [] ],                  qr/endpoints must not be empty/ ],
    [ 'endpoints with undef',         [ endpoints => [ $ep, undef ] ],      qr/endpoints\[1\] is undefined/ ],
    [ 'endpoints with empty string',  [ endpoints => [''] ],                qr/endpoints\[0\] is empty/ ],
    [ 'https mixed with http',        [ endpoints => [ "http://$ep", "https://$ep" ] ], qr/endpoints mix TLS and plaintext/ ],
    [ 'TLS option, plaintext endpoint', [ endpoints => [$ep], tls_ca_file => 'ca.pem' ], qr/tls_ca_file was given, but the endpoints are plaintext/ ],
    [ 'garbage endpoint',             [ endpoints => ['not an endpoint'] ], qr/'not an endpoint'/ ],
    [ 'auth_token a reference',       [ auth_token => [] ],                 qr/auth_token must be a string/ ],
);
for my $t (@bad) {
    my ($what, $args, $re) = @$t;
    my $obj = eval { EV::Etcd->new(@$args) };
    ok !$obj, "new croaks: $what";
    like $@, $re, "message: $what";
    like $@, qr/ at \Q$0\E line \d+/, "reported at the caller: $what";
}

# --- accepted values ----------------------------------------------------------------
{
    my $d = EV::Etcd->new;
    isa_ok $d, 'EV::Etcd', 'new without options (default endpoint 127.0.0.1:2379)';
    undef $d;

    for my $ok (
        [ 'timeout below 1 (becomes 1)', [ timeout => 0.1 ] ],
        [ 'timeout 0',                   [ timeout => 0 ] ],
        [ 'timeout fractional',          [ timeout => 2.5 ] ],
        [ 'max_retries 0',               [ max_retries => 0 ] ],
        [ 'max_retries negative',        [ max_retries => -1 ] ],
        [ 'health_interval 0',           [ health_interval => 0 ] ],
        [ 'on_health_change undef',      [ on_health_change => undef ] ],
        [ 'auth_token undef',            [ auth_token => undef ] ],
        [ 'every option at once',        [ endpoints => [$ep], timeout => 5, max_retries => 2,
                                           health_interval => 10, on_health_change => sub { },
                                           auth_token => 'tok' ] ],
    ) {
        my ($what, $args) = @$ok;
        my $obj = eval { EV::Etcd->new(endpoints => [$ep], @$args) };
        isa_ok $obj, 'EV::Etcd', "accepted: $what" or diag $@;
    }

    # a client with a sub-second timeout still gets answers (it is raised to 1 s)
    my $fast = EV::Etcd->new(endpoints => [$ep], timeout => 0.01);
    my ($r, $e) = wait_for('timeout 0.01 put', sub { $fast->put('opt/fast', 'v', $_[0]) });
    ok !$e, 'a client made with timeout => 0.01 works' or diag explain $e;
}

# --- endpoint spellings -----------------------------------------------------------------
for my $spelling ($ep, "http://$ep", "localhost:$port") {
    my $sc = EV::Etcd->new(endpoints => [$spelling]);
    my ($r, $e) = wait_for("put via $spelling", sub { $sc->put('opt/spelling', $spelling, $_[0]) });
    ok !$e, "endpoint spelled '$spelling' works" or diag explain $e;
    ($r, $e) = wait_for("get via $spelling", sub { $sc->get('opt/spelling', $_[0]) });
    is $r && $r->{kvs}[0]{value}, $spelling, "... round trip through '$spelling'";
}

# --- several endpoints, the first one dead --------------------------------------------
{
    my $dead = free_port();
    my $mc = EV::Etcd->new(endpoints => [ "127.0.0.1:$dead", $ep ], timeout => 10);
    my (@fails, $ok_resp);
    for my $try (1 .. 3) {
        my ($r, $e) = wait_for("multi-endpoint try $try", sub { $mc->put('opt/multi', "try $try", $_[0]) }, 30);
        if ($e) { push @fails, $e; next }
        $ok_resp = $r;
        last;
    }
    ok $ok_resp, 'a call succeeds within three tries: the client moved to the live endpoint';
    ok @fails <= 2, scalar(@fails) . ' call(s) failed first';
    for my $e (@fails) {
        is $e->{status}, 'UNAVAILABLE', 'a failure on the dead endpoint is UNAVAILABLE';
        is $e->{retryable}, 1, '... and retryable';
    }
    my $all_ok = 1;
    for my $i (1 .. 5) {
        my ($r, $e) = wait_for("multi-endpoint follow-up $i", sub { $mc->get('opt/multi', $_[0]) });
        $all_ok = 0 if $e || !$r;
    }
    ok $all_ok, 'later calls keep going to the live endpoint';

    # a watch on such a client reaches the live endpoint too
    my @msgs;
    my $mc2 = EV::Etcd->new(endpoints => [ "127.0.0.1:$dead", $ep ], timeout => 10);
    my $w = $mc2->watch('opt/multi-watch', sub { push @msgs, [@_] });
    ok run_until(sub { grep { $_->[0] && $_->[0]{created} } @msgs }, 20),
        'a watch on a client whose first endpoint is dead gets created';
    wait_for('put for multi watch', sub { $mc->put('opt/multi-watch', 'seen', $_[0]) });
    ok run_until(sub { grep { $_->[0] && @{ $_->[0]{events} || [] } } @msgs }, 10), '... and delivers events';
    my $done;
    $w->cancel(sub { $done = 1 });
    run_until(\$done, 10);
}

# --- health reporting -------------------------------------------------------------------
{
    my $hs = start_etcd();
    my $hp = $hs->client_port;
    my @calls;
    my $t0 = time;
    my $hc = EV::Etcd->new(endpoints => [ $hs->endpoint ], health_interval => 1,
                           on_health_change => sub { push @calls, [ @_, time - $t0 ] });
    run_until(sub { 0 }, 3.5);    # about three health checks
    is scalar(@calls), 1, 'while healthy, on_health_change was called exactly once';
    is $calls[0][0], 1, '... with healthy = 1';
    like $calls[0][1], qr/127\.0\.0\.1:$hp$/, '... and the endpoint';
    is scalar(@{ $calls[0] }), 3, '... and nothing else (two arguments)';

    $hs->kill9;
    ok run_until(sub { @calls >= 2 }, 20), 'after kill -9, on_health_change is called again';
    is $calls[1][0], 0, '... with healthy = 0';
    like $calls[1][1], qr/127\.0\.0\.1:$hp$/, '... for the same endpoint';
    run_until(sub { 0 }, 2.5);
    is scalar(@calls), 2, 'no repeats while the server stays down';

    $hs->restart;
    ok run_until(sub { @calls >= 3 }, 20), 'after the restart, on_health_change is called again';
    is $calls[2][0], 1, '... with healthy = 1';
    like $calls[2][1], qr/127\.0\.0\.1:$hp$/, '... for the same endpoint';
    run_until(sub { 0 }, 2.5);
    is scalar(@calls), 3, 'no repeats once healthy again';
    is_deeply [ map { $_->[0] } @calls ], [ 1, 0, 1 ], 'the sequence is healthy, unhealthy, healthy';

    my ($r, $e) = wait_for('after restart', sub { $hc->put('opt/health', 'back', $_[0]) });
    ok !$e, 'the client works against the restarted server' or diag explain $e;

    # health checks without a callback do no harm
    my $quiet = EV::Etcd->new(endpoints => [ $hs->endpoint ], health_interval => 0.5);
    run_until(sub { 0 }, 1.5);
    ($r, $e) = wait_for('quiet client', sub { $quiet->get('opt/health', $_[0]) });
    is $r && $r->{kvs}[0]{value}, 'back', 'health_interval without on_health_change works';
}

# --- auth_token ---------------------------------------------------------------------------
{
    my $tc = eval { EV::Etcd->new(endpoints => [$ep], auth_token => 'x') };
    isa_ok $tc, 'EV::Etcd', "auth_token => 'x' accepted";
    my ($r, $e) = wait_for('token put', sub { $tc->put('opt/token', 'v', $_[0]) });
    # etcd checks a token whenever one is sent: 'x' is not a valid one
    ok $e, 'the token is sent with the request (etcd rejects the bogus token)';
    is $e && $e->{status}, 'UNAUTHENTICATED', '... UNAUTHENTICATED';
    like $e && $e->{message}, qr/invalid auth token/, "... etcd's message";
    is $e && $e->{source}, 'put', '... source put';
}

done_testing;
