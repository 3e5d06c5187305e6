#!/usr/bin/env perl
# Elections: campaign, leader, proclaim, resign; two campaigners (handover by
# resign and by lease revoke); observe (leader changes, cancel semantics);
# kill -9 and restart of the server in the middle of an observe.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call cancel_sync);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'election');
my $c1 = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10, max_retries => 10);
# shortest timeout: a waiting campaign must outlive it
my $c2 = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 1, max_retries => 10);



sub pause { run_until(sub { 0 }, $_[0]) }
sub lease { ok_call($c1, 'lease_grant', $_[0] // 60)->{id} }

# A campaigner; it waits without a deadline unless $opts says otherwise.
sub start_campaign {
    my ($client, $name, $lease, $value, $opts) = @_;
    my $rec = { done => 0 };
    $client->election_campaign($name, $lease, $value, $opts // { timeout => 0 }, sub {
        @$rec{qw(resp err at)} = (@_, time);
        $rec->{done}++;
    });
    return $rec;
}

sub rec_observe {
    my ($client, $name, $opt) = @_;
    my $rec = { msgs => [], errs => [], all => [] };
    $rec->{handle} = $client->election_observe($name, ($opt ? $opt : ()), sub {
        my ($resp, $err) = @_;
        push @{ $rec->{all} }, [ $resp, $err ];
        if ($err) { push @{ $rec->{errs} }, $err }
        else      { push @{ $rec->{msgs} }, $resp }
    });
    return $rec;
}
sub values_of { map { $_->{kv}{value} } @{ $_[0]{msgs} } }


# --- campaign, leader, proclaim, resign ----------------------------------------
{
    my (undef, $none) = call($c1, 'election_leader', 'el/basic');
    ok $none, 'election_leader with no leader is an error';
    is $none->{source}, 'election_leader', 'source election_leader';
    like $none->{message}, qr/no leader/, 'the server says there is no leader';

    my $obs = rec_observe($c1, 'el/basic');
    isa_ok $obs->{handle}, 'EV::Etcd::Observe';

    my $l = lease();
    my $camp = ok_call($c1, 'election_campaign', 'el/basic', $l, 'first');
    my $ld = $camp->{leader};
    is $ld->{name}, 'el/basic', 'leader name';
    like $ld->{key}, qr{^el/basic/}, 'leader key starts with the election name';
    is "$ld->{lease}", "$l", 'leader lease';
    is $ld->{rev}, $camp->{header}{revision}, 'leader rev is the campaign revision';
    ok $camp->{header}, 'campaign response has a header';

    my $who = ok_call($c1, 'election_leader', 'el/basic');
    is $who->{kv}{value}, 'first', 'election_leader: the campaigned value';
    is $who->{kv}{key}, $ld->{key}, 'election_leader: the leader key';
    is "$who->{kv}{lease}", "$l", 'election_leader: the leader lease';
    ok $who->{header}, 'election_leader has a header';

    ok run_until(sub { @{ $obs->{msgs} } >= 1 }, 10), 'observe reports the new leader';
    is $obs->{msgs}[0]{kv}{value}, 'first', 'with its value';
    ok $obs->{msgs}[0]{header}, 'observe message has a header';

    my $p = ok_call($c1, 'election_proclaim', $ld, 'second');
    ok $p->{header} && $p->{header}{revision} > $camp->{header}{revision}, 'proclaim returns a header';
    is ok_call($c1, 'election_leader', 'el/basic')->{kv}{value}, 'second', 'proclaim changed the value';
    ok run_until(sub { @{ $obs->{msgs} } >= 2 }, 10), 'observe sees the proclaim';
    is $obs->{msgs}[1]{kv}{value}, 'second', 'with the new value';
    is $obs->{msgs}[1]{kv}{key}, $ld->{key}, 'same leader key';

    # a late observer starts with the current leader
    my $late = rec_observe($c2, 'el/basic');
    ok run_until(sub { @{ $late->{msgs} } >= 1 }, 10), 'observe started later gets the current leader';
    is_deeply [ values_of($late) ], ['second'], 'just the current value';

    my $r = ok_call($c1, 'election_resign', $ld);
    ok $r->{header}, 'resign returns a header';
    my (undef, $gone) = call($c1, 'election_leader', 'el/basic');
    like $gone && $gone->{message}, qr/no leader/, 'no leader after resign';
    is ok_call($c1, 'get', $ld->{key})->{count}, 0, 'the leader key is gone';

    my (undef, $stale) = call($c1, 'election_proclaim', $ld, 'too late');
    ok $stale, 'proclaim by a resigned leader fails';
    is $stale && $stale->{source}, 'election_proclaim', 'source election_proclaim';

    pause(0.5);
    is_deeply [ values_of($obs) ], [qw(first second)], 'observe: nothing invented on resign';
    is scalar(@{ $obs->{errs} }) + @{ $late->{errs} }, 0, 'no observe errors';
    cancel_sync($_) for $obs, $late;
    ok_call($c1, 'lease_revoke', $l);
}

# --- two campaigners: handover by resign -------------------------------------
{
    my ($la, $lb) = (lease(), lease());
    my $obs = rec_observe($c1, 'el/pair');
    my $a = ok_call($c1, 'election_campaign', 'el/pair', $la, 'A');
    my $b = start_campaign($c2, 'el/pair', $lb, 'B');
    pause(2.5);    # longer than $c2's timeout
    is $b->{done}, 0, 'second campaigner waits while the first leads';
    is ok_call($c1, 'election_leader', 'el/pair')->{kv}{value}, 'A', 'first is leader';

    my $r = ok_call($c1, 'election_resign', $a->{leader});
    ok run_until(sub { $b->{done} }, 10), 'second campaigner elected after the resign';
    ok !$b->{err}, 'without error (timeout => 0: no deadline)'
        or diag "$b->{err}{status}: $b->{err}{message}";
    is $b->{resp}{leader}{name}, 'el/pair', 'new leader name';
    isnt $b->{resp}{leader}{key}, $a->{leader}{key}, 'new leader key';
    is "$b->{resp}{leader}{lease}", "$lb", 'new leader lease';
    cmp_ok $b->{resp}{leader}{rev}, '>', $a->{leader}{rev}, 'its leader key was created after the first one';
    cmp_ok $b->{resp}{leader}{rev}, '<', $r->{header}{revision}, '(created while waiting, before the resign)';
    is ok_call($c1, 'election_leader', 'el/pair')->{kv}{value}, 'B', 'election_leader reports the second';
    ok run_until(sub { @{ $obs->{msgs} } >= 2 }, 10), 'observe reports the change of leader';
    is_deeply [ values_of($obs) ], [qw(A B)], 'observe: A then B';
    is $obs->{msgs}[1]{kv}{key}, $b->{resp}{leader}{key}, 'observe: the new leader key';
    is $b->{done}, 1, 'campaign callback called once';

    ok_call($c2, 'election_resign', $b->{resp}{leader});
    cancel_sync($obs);
    ok_call($c1, 'lease_revoke', $_) for $la, $lb;
}

# --- two campaigners: handover by lease revoke -------------------------------
{
    my ($la, $lb) = (lease(), lease());
    my $a = ok_call($c1, 'election_campaign', 'el/revoke', $la, 'A');
    my $b = start_campaign($c2, 'el/revoke', $lb, 'B');
    pause(2);
    is $b->{done}, 0, 'second campaigner waits';
    ok_call($c1, 'lease_revoke', $la);
    ok run_until(sub { $b->{done} }, 10), 'second campaigner elected when the leader\'s lease is revoked';
    ok !$b->{err}, 'without error';
    is ok_call($c1, 'election_leader', 'el/revoke')->{kv}{value}, 'B', 'the second is leader';
    ok_call($c2, 'election_resign', $b->{resp}{leader});
    ok_call($c1, 'lease_revoke', $lb);
}

# --- a waiting campaign obeys the client's timeout, or its own -------------
{
    my ($la, $lb) = (lease(), lease());
    my $a = ok_call($c1, 'election_campaign', 'el/deadline', $la, 'A');
    my $t0 = time;
    my $b = { done => 0 };    # the 4-argument form: the client's timeout (1 s)
    $c2->election_campaign('el/deadline', $lb, 'B', sub { @$b{qw(resp err at)} = (@_, time); $b->{done}++ });
    ok run_until(sub { $b->{done} }, 10), 'a campaign waiting past the client timeout ends';
    is $b->{err}{status}, 'DEADLINE_EXCEEDED', '... with DEADLINE_EXCEEDED';
    is $b->{err}{source}, 'election_campaign', '... from election_campaign';
    cmp_ok $b->{at} - $t0, '>=', 0.9, '... after the client timeout';
    cmp_ok $b->{at} - $t0, '<', 5, '... not much later';

    my $t1 = time;
    my $own = start_campaign($c1, 'el/deadline', $lb, 'B', { timeout => 1.5 });
    ok run_until(sub { $own->{done} }, 10), 'a per-call timeout overrides the client\'s 10 s';
    is $own->{err}{status}, 'DEADLINE_EXCEEDED', '... DEADLINE_EXCEEDED';
    cmp_ok $own->{at} - $t1, '>=', 1.4, '... no sooner than 1.5 s';
    cmp_ok $own->{at} - $t1, '<', 6, '... and not at the client\'s 10 s';

    my $left;
    for (1 .. 50) {
        $left = ok_call($c1, 'get', 'el/deadline/', { prefix => 1 })->{kvs};
        last if @$left == 1;
        pause(0.1);
    }
    is_deeply [ map { $_->{value} } @$left ], ['A'], 'the timed-out campaigners left no key behind';
    is ok_call($c1, 'election_leader', 'el/deadline')->{kv}{value}, 'A', 'the leader is unchanged';
    ok_call($c1, 'election_resign', $a->{leader});
    ok_call($c1, 'lease_revoke', $_) for $la, $lb;
}

# --- observe: cancel semantics -----------------------------------------------
{
    my $l = lease();
    my $camp = ok_call($c1, 'election_campaign', 'el/cancel', $l, 'v0');
    my $obs = rec_observe($c2, 'el/cancel');
    ok run_until(sub { @{ $obs->{msgs} } }, 10), 'observe running';

    # keep proclaiming while the cancel is on its way
    my ($n, $going) = (0, 1);
    my $next; $next = sub {
        return unless $going;
        $c1->election_proclaim($camp->{leader}, 'v' . ++$n, sub { $next->() });
    };
    $next->();
    ok run_until(sub { @{ $obs->{msgs} } >= 4 }, 10), 'proclaims observed';

    my (@cb, $at_cb);
    $obs->{handle}->cancel(sub { push @cb, [@_]; $at_cb = @{ $obs->{all} } });
    is scalar(@cb), 0, 'first cancel does not call back inside the call';
    ok run_until(sub { @cb }, 10), 'cancel calls back';
    is_deeply $cb[0], [ {}, undef ], 'with ({}, undef)';
    pause(1);
    $going = 0;
    pause(0.3);
    is scalar(@{ $obs->{all} }), $at_cb, 'nothing observed after the cancel callback';
    cmp_ok $n, '>', 4, "proclaims went on during the cancel ($n)";

    my @second;
    $obs->{handle}->cancel(sub { push @second, [@_] });
    is_deeply \@second, [ [ {}, undef ] ], 'second cancel calls back before cancel returns';
    is scalar(@cb), 1, 'first cancel callback called once';

    my @vals = values_of($obs);
    my %seen; my @dups = grep { $seen{$_}++ } @vals;
    is scalar(@dups), 0, 'no value observed twice';

    ok_call($c1, 'election_resign', $camp->{leader});
    ok_call($c1, 'lease_revoke', $l);
}

# --- EV::run returns when no observe is live ---------------------------------
{
    my $fired = 0;
    my $guard = EV::timer(15, 0, sub { $fired = 1; EV::break(EV::BREAK_ALL()) });
    $guard->keepalive(0);
    EV::run();
    ok !$fired, 'EV::run returns by itself when no observe is live';
}

# --- kill -9 and restart during an observe -----------------------------------
{
    my $l = lease(120);
    my $camp = ok_call($c1, 'election_campaign', 'el/kill', $l, 'before');
    my $obs = rec_observe($c2, 'el/kill');
    my $off = rec_observe($c1, 'el/kill', { auto_reconnect => 0 });
    ok run_until(sub { @{ $obs->{msgs} } && @{ $off->{msgs} } }, 10), 'observers see the leader';
    is_deeply [ values_of($obs) ], ['before'], 'current leader observed once';

    $srv->kill9;
    ok run_until(sub { @{ $off->{errs} } }, 15), 'auto_reconnect => 0: error on connection loss';
    pause(1);
    $srv->restart;
    pause(4);    # observe reconnects; the leader did not change
    is_deeply [ values_of($obs) ], ['before'], 'after the restart the unchanged leader is not repeated';

    my $c3 = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);
    ok_call($c3, 'election_proclaim', $camp->{leader}, 'after');
    ok run_until(sub { @{ $obs->{msgs} } >= 2 }, 20), 'proclaim after the restart is observed';
    pause(1);
    is_deeply [ values_of($obs) ], [qw(before after)], 'exactly once';

    # second round: the proclaim happens right after the restart, possibly
    # before the observe has reconnected
    $srv->kill9;
    pause(1);
    $srv->restart;
    ok_call($c3, 'election_proclaim', $camp->{leader}, 'again');
    ok run_until(sub { @{ $obs->{msgs} } >= 3 }, 20), 'proclaim right after a restart is observed';
    pause(2);
    is_deeply [ values_of($obs) ], [qw(before after again)], 'once, and nothing repeated';
    is scalar(@{ $obs->{errs} }), 0, 'the reconnecting observe reported no error';

    is scalar(@{ $off->{errs} }), 1, 'auto_reconnect => 0: exactly one error';
    my $e = $off->{errs}[0];
    is $e->{status}, 'UNAVAILABLE', 'status UNAVAILABLE';
    is $e->{source}, 'observe', 'source observe';
    is $e->{retryable}, 1, 'retryable';
    is $off->{all}[-1][1], $e, 'nothing after the error';

    cancel_sync($_) for $obs, $off;
    ok_call($c1, 'election_resign', $camp->{leader});
    ok_call($c1, 'lease_revoke', $l);
}

# --- retries run out: the server goes away for good -------------------------
{
    my $l = lease();
    my $camp = ok_call($c1, 'election_campaign', 'el/end', $l, 'last');
    my $one = EV::Etcd->new(endpoints => [ $srv->endpoint ], max_retries => 1);
    my @obs = map { rec_observe($one, 'el/end') } 1 .. 2;
    ok run_until(sub { !grep { !@{ $_->{msgs} } } @obs }, 10), 'observers running';
    $srv->kill9;

    my $fired = 0;
    my $guard = EV::timer(40, 0, sub { $fired = 1; EV::break(EV::BREAK_ALL()) });
    $guard->keepalive(0);
    EV::run();
    ok !$fired, 'EV::run returns by itself once the observers have failed';
    for my $o (@obs) {
        is scalar(@{ $o->{errs} }), 1, 'max_retries 1: exactly one error';
        is $o->{errs}[0] && $o->{errs}[0]{status}, 'UNAVAILABLE', 'UNAVAILABLE';
        is $o->{errs}[0] && $o->{errs}[0]{source}, 'observe', 'source observe';
        is $o->{all}[-1][1], $o->{errs}[0], 'the error is the last callback';
        is_deeply [ values_of($o) ], ['last'], 'the leader was observed once before';
    }
}

# --- argument errors -----------------------------------------------------------
{
    ok !eval { $c1->election_campaign('e', 'zz', 'v', sub {}); 1 }, 'non-numeric campaign lease croaks';
    like $@, qr/^election_campaign: .*lease/, 'naming method and argument';
    ok !eval { $c1->election_proclaim('not a hash', 'v', sub {}); 1 }, 'proclaim with a non-hash leader croaks';
    like $@, qr/^election_proclaim: .*leader/, 'naming the leader argument';
    ok !eval { $c1->election_resign({}, sub {}); 1 }, 'resign with an empty leader hash croaks';
    like $@, qr/^election_resign: .*leader/, 'naming the leader argument';
    for my $case ([ election_campaign => 'e', 1, 'v' ], [ election_leader => 'e' ],
                  [ election_observe => 'e' ], [ election_resign => { name => 'e', key => 'k' } ]) {
        my ($m, @args) = @$case;
        ok !eval { $c1->$m(@args); 1 }, "$m without a callback croaks";
        like $@, qr/callback must be a code reference/, "$m: croak message names the callback";
    }
}

done_testing;
