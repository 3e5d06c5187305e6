#!/usr/bin/env perl
# Streams of a client that logs in, once its token is gone (issue #20):
# etcd checks each new watch against the token its stream was opened with,
# and forgets simple tokens when they expire or the server restarts. A
# refusal a fresh login can cure must lead to one login and one retry;
# the error comes only when the fresh token is refused too.
#   1. a watch-only client opening watches after idle periods > the TTL
#   2. an idle watch through a kill -9 and restart of etcd
#   3. JWT tokens made stale by password changes
#   4. a user without permission: one PERMISSION_DENIED, no login loop
#   5. election observe (etcd ends it without a word when the token is
#      gone) opened after the token expired, and through a restart
use strict;
use warnings;

use Test::More;
use File::Spec;

use lib 't/lib';
use EtcdTest qw(:DEFAULT ok_call);

need_etcd();
use EV;
use EV::Etcd;

# Runs the loop for $secs seconds, nothing else to do.
sub pause { run_until(sub { 0 }, $_[0]) }

sub rec_watch {
    my ($client, $key, $opt) = @_;
    my $rec = { msgs => [], errs => [] };
    $rec->{handle} = $client->watch($key, $opt // {}, sub {
        my ($resp, $err) = @_;
        if ($err) { push @{ $rec->{errs} }, $err }
        else      { push @{ $rec->{msgs} }, $resp }
    });
    return $rec;
}

sub created { scalar grep { $_->{created} } @{ $_[0]{msgs} } }
sub keys_of { [ map { $_->{kv}{key} } map { @{ $_->{events} || [] } } @{ $_[0]{msgs} } ] }

sub cancel_all {
    my @recs = grep { $_->{handle} } @_;
    my $n = 0;
    $_->{handle}->cancel(sub { $n++ }) for @recs;
    run_until(sub { $n == @recs }, 10);
}

# The value of metric $name on the server, summed over the lines whose
# labels contain $labels.
sub metric {
    my ($srv, $name, $labels) = @_;
    my $sum = 0;
    for my $line (split /\n/, $srv->metrics) {
        next unless $line =~ /^\Q$name\E(\{[^}]*\})?\s+([0-9.eE+-]+)\s*$/;
        next if index($1 // '', $labels) < 0;
        $sum += $2;
    }
    return $sum;
}
sub logins { metric($_[0], 'grpc_server_started_total', 'grpc_method="Authenticate"') }

# Users: root; "watcher" may read and write /sa/; "outsider" only /other/.
sub enable_auth {
    my ($srv) = @_;
    my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);
    ok_call($c, 'user_add', 'root', 'rootpw');
    ok_call($c, 'user_grant_role', 'root', 'root');
    ok_call($c, 'role_add', 'sa');
    ok_call($c, 'role_grant_permission', 'sa', 'READWRITE', '/sa/', '/sa0');
    ok_call($c, 'user_add', 'watcher', 'wpw');
    ok_call($c, 'user_grant_role', 'watcher', 'sa');
    ok_call($c, 'role_add', 'other');
    ok_call($c, 'role_grant_permission', 'other', 'READWRITE', '/other/', '/other0');
    ok_call($c, 'user_add', 'outsider', 'opw');
    ok_call($c, 'user_grant_role', 'outsider', 'other');
    ok_call($c, 'auth_enable');
    return EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10,
                         username => 'root', password => 'rootpw');
}

# Puts $prefix$from .. $prefix$to one at a time, each a create-if-absent
# txn (a retry cannot make a second event), retrying failures every 0.2 s.
sub start_writer {
    my ($client, $prefix, $from, $to, $pause) = @_;
    my $st = { n => $from, failures => 0, done => 0 };
    my $step;
    $step = sub {
        if ($st->{n} > $to) { $st->{done} = 1; undef $step; return }
        my $key = "$prefix$st->{n}";
        $client->txn(
            compare  => [ { key => $key, target => 'version', result => '=', version => 0 } ],
            success  => [ { put => { key => $key, value => $st->{n} } } ],
            callback => sub {
                my (undef, $err) = @_;
                if ($err) { $st->{failures}++ } else { $st->{n}++ }
                $st->{timer} = EV::timer($err ? 0.2 : $pause, 0, sub { $step->() if $step });
            },
        );
    };
    $step->();
    return $st;
}

my $simple = start_etcd(name => 'stream-auth',
                        extra => [ '--auth-token', 'simple', '--auth-token-ttl', '2' ]);
my $root = enable_auth($simple);

# --- 1. new watches after the token expired while only watching ------------
{
    my $w = EV::Etcd->new(endpoints => [ $simple->endpoint ], timeout => 5,
                          username => 'watcher', password => 'wpw');
    my @recs = (rec_watch($w, '/sa/b1/', { prefix => 1 }));
    ok run_until(sub { created($recs[0]) }, 10), 'block 1: first watch created';
    my @keys;
    for my $round (1 .. 5) {
        pause(3);    # idle longer than the TTL: the token expires
        my $rec = rec_watch($w, '/sa/b1/', { prefix => 1 });
        push @recs, $rec;
        ok run_until(sub { created($rec) || @{ $rec->{errs} } }, 15),
            "block 1 round $round: the new watch is answered";
        is created($rec), 1, "block 1 round $round: created"
            or diag explain $rec->{errs};
        push @keys, "/sa/b1/$round";
        ok_call($root, 'put', $keys[-1], $round);
        ok run_until(sub { @{ keys_of($rec) } >= 1 && @{ keys_of($recs[0]) } >= $round }, 10),
            "block 1 round $round: the put reached the new watch and the first one";
    }
    pause(0.5);    # a repeated event would arrive now
    for my $i (0 .. $#recs) {
        my $from = $i == 0 ? 0 : $i - 1;
        is_deeply keys_of($recs[$i]), [ @keys[ $from .. $#keys ] ],
            "block 1: watch $i saw each later put once, in order";
        is scalar @{ $recs[$i]{errs} }, 0, "block 1: watch $i got no error"
            or diag explain $recs[$i]{errs};
        is created($recs[$i]), 1, "block 1: watch $i was announced once";
    }
    cancel_all(@recs);
}

# --- 4. a user whose role does not cover the key ----------------------------
{
    my $before = logins($simple);
    my $o = EV::Etcd->new(endpoints => [ $simple->endpoint ], timeout => 5,
                          username => 'outsider', password => 'opw');
    my $allowed = rec_watch($o, '/other/', { prefix => 1 });
    ok run_until(sub { created($allowed) }, 10), 'block 4: a permitted watch is created';
    is logins($simple) - $before, 1, 'block 4: one login so far';
    my $denied = rec_watch($o, '/sa/secret');
    ok run_until(sub { @{ $denied->{errs} } }, 10), 'block 4: the forbidden watch gets an error';
    my $mid = logins($simple);
    ok_call($root, 'put', '/other/x', 1);
    my $others = logins($simple) - $mid;    # root's, if its token had expired
    pause(5);    # longer than two TTLs: a login loop would show now
    is scalar @{ $denied->{errs} }, 1, 'block 4: exactly one error';
    is scalar @{ $denied->{msgs} }, 0, 'block 4: and no message';
    my $e = $denied->{errs}[0] || {};
    is $e->{status}, 'PERMISSION_DENIED', 'block 4: status PERMISSION_DENIED';
    is $e->{code}, 7, 'block 4: code 7';
    is $e->{source}, 'watch', 'block 4: source watch';
    like $e->{message} // '', qr/permission denied/, 'block 4: the server reason';
    is $e->{retryable}, 0, 'block 4: not retryable';
    is logins($simple) - $before - $others, 2,
        'block 4: the refusal cost one login, the refusal of its token none (no loop)';
    is_deeply keys_of($allowed), ['/other/x'], 'block 4: the permitted watch saw its put once';
    is scalar @{ $allowed->{errs} }, 0, 'block 4: and no error';
    cancel_all($allowed, $denied);
}

# --- a client with a token only (nothing to log in with) --------------------
{
    my $token = ok_call(EV::Etcd->new(endpoints => [ $simple->endpoint ]),
                        'authenticate', 'watcher', 'wpw')->{token};
    my $t = EV::Etcd->new(endpoints => [ $simple->endpoint ], timeout => 5, auth_token => $token);
    pause(3);    # the token expires
    my $rec = rec_watch($t, '/sa/tok');
    ok run_until(sub { @{ $rec->{errs} } || created($rec) }, 10), 'token only: the watch is answered';
    pause(0.5);
    is scalar @{ $rec->{errs} }, 1, 'token only: one error';
    my $e = $rec->{errs}[0] || {};
    # 3.4 says why in the cancel reason, 3.5 only "permission denied";
    # either way under the status the server gave, not CANCELLED.
    my ($status, $code) = ($e->{message} // '') =~ /invalid auth token/
        ? ('UNAUTHENTICATED', 16) : ('PERMISSION_DENIED', 7);
    is $e->{status}, $status, "token only: status $status" or diag explain $e;
    is $e->{code}, $code, "token only: code $code";
    like $e->{message} // '', qr/^etcdserver: /, 'token only: the server message, without the Go wrapping';
}

# --- 2. an idle watch through kill -9 and restart ---------------------------
{
    my $w = EV::Etcd->new(endpoints => [ $simple->endpoint ], timeout => 5, max_retries => 10,
                          username => 'watcher', password => 'wpw');
    my $rec = rec_watch($w, '/sa/b2/', { prefix => 1 });
    ok run_until(sub { created($rec) }, 10), 'block 2: watch created';
    my $total = 30;
    my $writer = start_writer($root, '/sa/b2/', 0, $total - 1, 0.05);
    ok run_until(sub { @{ keys_of($rec) } >= 5 }, 10), 'block 2: events before the kill';
    $simple->kill9;
    pause(1);    # the writer fails and retries meanwhile
    $simple->restart;
    ok run_until(sub { $writer->{done} }, 40), 'block 2: writer finished after the restart';
    ok run_until(sub { @{ keys_of($rec) } >= $total }, 20), 'block 2: the watch caught up';
    pause(0.5);
    is_deeply keys_of($rec), [ map { "/sa/b2/$_" } 0 .. $total - 1 ],
        'block 2: every put delivered once, in order';
    is scalar @{ $rec->{errs} }, 0, 'block 2: no error' or diag explain $rec->{errs};
    is created($rec), 1, 'block 2: announced once';
    my $late = rec_watch($w, '/sa/b2/late');
    ok run_until(sub { created($late) }, 10), 'block 2: a new watch after the restart works';
    ok_call($root, 'put', '/sa/b2/late', 1);
    ok run_until(sub { @{ keys_of($late) } }, 10), 'block 2: and gets its event';
    cancel_all($rec, $late);
}

# --- 5. election observe ------------------------------------------------------
{
    my $lease = ok_call($root, 'lease_grant', 120)->{id};
    my $leader = ok_call($root, 'election_campaign', '/sa/el', $lease, 'v0')->{leader};
    my $o = EV::Etcd->new(endpoints => [ $simple->endpoint ], timeout => 5, max_retries => 10,
                          username => 'watcher', password => 'wpw');
    pause(3);    # the token from new() expires unused
    my (@seen, @errs);
    my $obs = $o->election_observe('/sa/el', sub {
        my ($resp, $err) = @_;
        if ($err) { push @errs, $err } else { push @seen, $resp->{kv}{value} }
    });
    ok run_until(sub { @seen || @errs }, 15), 'block 5: observe opened after the token expired answers';
    is_deeply \@seen, ['v0'], 'block 5: with the leader' or diag explain \@errs;
    ok_call($root, 'election_proclaim', $leader, 'v1');
    ok run_until(sub { @seen >= 2 }, 10), 'block 5: a proclaim is observed';
    $simple->kill9;
    pause(0.5);
    $simple->restart;
    ok_call($root, 'election_proclaim', $leader, 'v2');
    ok run_until(sub { @seen >= 3 }, 20), 'block 5: a proclaim after the restart is observed';
    pause(0.5);
    is_deeply \@seen, [qw(v0 v1 v2)], 'block 5: each value once, in order';
    is scalar @errs, 0, 'block 5: no error' or diag explain \@errs;
    my $done;
    $obs->cancel(sub { $done = 1 });
    run_until(\$done, 10);
}
$simple->stop;

# --- 3. JWT tokens made stale by password changes ----------------------------
SKIP: {
    my $openssl = (grep { -x "$_/openssl" } File::Spec->path)[0];
    skip 'openssl is not installed: no keys for JWT tokens', 1 unless $openssl;
    my $dir = File::Spec->catdir(File::Spec->tmpdir, "ev-etcd-jwt-$$");
    mkdir $dir or die "mkdir $dir: $!";
    my ($priv, $pub) = map { "$dir/$_" } 'jwt.key', 'jwt.pub';
    system("$openssl/openssl genrsa -out $priv 2048 2>/dev/null") == 0
        && system("$openssl/openssl rsa -in $priv -pubout -out $pub 2>/dev/null") == 0
        or die "openssl failed to make an RSA key pair\n";
    my $jwt = start_etcd(name => 'stream-jwt',
        extra => [ '--auth-token', "jwt,pub-key=$pub,priv-key=$priv,sign-method=RS256" ]);
    my $admin = enable_auth($jwt);

    my $w = EV::Etcd->new(endpoints => [ $jwt->endpoint ], timeout => 5, max_retries => 10,
                          username => 'watcher', password => 'wpw');
    my $first = rec_watch($w, '/sa/b3/', { prefix => 1 });
    ok run_until(sub { created($first) }, 10), 'block 3: watch created';

    # The stream's token is stale now. Before the client knows the new
    # password, a new watch fails (with the reason) and the running one
    # goes on as it was.
    ok_call($admin, 'user_change_password', 'watcher', 'wpw2');
    my $early = rec_watch($w, '/sa/b3/', { prefix => 1 });
    ok run_until(sub { created($early) || @{ $early->{errs} } }, 10),
        'block 3: a watch made before the client knows the new password is answered';
    is scalar @{ $early->{errs} }, 1, 'block 3: with one error';
    like $early->{errs}[0]{message} // '', qr/; logging in again failed: .*invalid user ID or password/,
        'block 3: saying why the new login failed';
    is created($early), 0, 'block 3: and not created';
    ok_call($admin, 'put', '/sa/b3/0', 0);
    ok run_until(sub { @{ keys_of($first) } }, 10), 'block 3: the running watch still delivers';

    # The client is told the new password.
    ok_call($w, 'authenticate', 'watcher', 'wpw2');
    my $second = rec_watch($w, '/sa/b3/', { prefix => 1 });
    ok run_until(sub { created($second) || @{ $second->{errs} } }, 10),
        'block 3: a new watch after the password change is answered';
    is created($second), 1, 'block 3: and created' or diag explain $second->{errs};

    # Setting the password again makes every token stale once more: the
    # watches reopen after the restart with a token etcd refuses.
    ok_call($admin, 'user_change_password', 'watcher', 'wpw2');
    my $writer = start_writer($admin, '/sa/b3/', 1, 19, 0.05);
    ok run_until(sub { @{ keys_of($first) } >= 5 }, 10), 'block 3: events before the kill';
    $jwt->kill9;
    pause(1);
    $jwt->restart;
    ok run_until(sub { $writer->{done} }, 40), 'block 3: writer finished after the restart';
    my $third = rec_watch($w, '/sa/b3/x');
    ok run_until(sub { created($third) || @{ $third->{errs} } }, 10),
        'block 3: a watch created after the restart is answered';
    is created($third), 1, 'block 3: and created' or diag explain $third->{errs};
    ok run_until(sub { @{ keys_of($first) } >= 20 && @{ keys_of($second) } >= 19 }, 20),
        'block 3: both watches caught up';
    pause(0.5);
    my @want = map { "/sa/b3/$_" } 0 .. 19;
    for ([first => $first, 0], [second => $second, 1]) {
        my ($name, $rec, $from) = @$_;
        is_deeply keys_of($rec), [ @want[ $from .. $#want ] ],
            "block 3: $name watch saw every put once, in order";
        is scalar @{ $rec->{errs} }, 0, "block 3: $name watch got no error"
            or diag explain $rec->{errs};
    }
    cancel_all($first, $second, $third);
    $jwt->stop;
    unlink $priv, $pub;
    rmdir $dir;
}

done_testing;
