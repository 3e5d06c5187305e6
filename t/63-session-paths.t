#!/usr/bin/env perl
# EV::Etcd::Session's failure paths that a healthy etcd does not produce on
# demand: a registered key that cannot be put again under the rebuilt lease
# (an error answer, or a croak), a rebuild whose grant fails for good, and a
# queued call that croaks when it finally runs. A client subclass makes the
# chosen call fail; everything else goes to a real etcd.
use strict;
use warnings;

use Test::More;
use Scalar::Util qw(weaken);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;
use EV::Etcd::Session;

# A client whose put or lease_grant fails while told to: with an error
# answer from the loop, or by croaking inside the call.
package FlakyClient {
    our @ISA = ('EV::Etcd');
    our (%FAIL, @SEEN);
    my $unavailable = { code => 14, status => 'UNAVAILABLE', message => 'injected: no connection',
                        source => 'put', retryable => 1 };
    my $refused = { code => 3, status => 'INVALID_ARGUMENT', message => 'injected: refused for good',
                    source => 'lease_grant', retryable => 0 };
    sub put {
        my ($self, @args) = @_;
        push @SEEN, "put $args[0]";
        my $how = $FAIL{put} // '';
        die "put: injected croak\n" if $how eq 'croak';
        if ($how eq 'error') {
            my $cb = $args[-1];
            EV::once(undef, 0, 0, sub { $cb->(undef, {%$unavailable}) });
            return;
        }
        return $self->SUPER::put(@args);
    }
    sub lease_grant {
        my ($self, @args) = @_;
        push @SEEN, 'lease_grant';
        if (($FAIL{lease_grant} // '') eq 'error') {
            my $cb = $args[-1];
            EV::once(undef, 0, 0, sub { $cb->(undef, {%$refused}) });
            return;
        }
        return $self->SUPER::lease_grant(@args);
    }
}

my $srv = start_etcd(name => 'session-paths');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);
bless $c, 'FlakyClient';
my $o = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 5);

sub rec_session {
    my (%opt) = @_;
    my $rec = { lost => [], rebuilt => [], ready => [] };
    $rec->{session} = EV::Etcd::Session->new(
        client     => $c,
        ttl        => 5,
        on_lost    => sub { push @{ $rec->{lost} }, [@_] },
        on_rebuild => sub { push @{ $rec->{rebuilt} }, [@_] },
        on_ready   => sub { push @{ $rec->{ready} }, [@_] },
        %opt,
    );
    return $rec;
}

sub scall {
    my ($s, $method, @args) = @_;
    my ($done, @got) = (0);
    $s->$method(@args, sub { @got = @_; $done = 1 });
    run_until(\$done, 20) or fail("session $method: no callback in time");
    return @got;
}

sub lease_of { my $kv = ok_call($o, 'get', $_[0])->{kvs}[0]; $kv ? "$kv->{lease}" : undef }

# --- the subclass is a client the session accepts ------------------------------------
{
    isa_ok $c, 'EV::Etcd';
    my ($r, $e) = call($c, 'put', '/sp/probe', 1);
    ok !$e, 'the subclassed client talks to etcd' or diag explain $e;
}

# --- a registered key that cannot be put again: the put's error -----------------------
for my $how (qw(error croak)) {
    %FlakyClient::FAIL = ();
    my $rec = rec_session(rebuild => 1);
    my $s = $rec->{session};
    my ($r, $e) = scall($s, 'put', "/sp/$how/a", 'A');
    ok !$e, "$how: registered /sp/$how/a" or diag explain $e;
    scall($s, 'put', "/sp/$how/b", 'B');
    my $old = $s->lease_id;

    $FlakyClient::FAIL{put} = $how;
    @FlakyClient::SEEN = ();
    ok_call($o, 'lease_revoke', $old);
    ok run_until(sub { @{ $rec->{rebuilt} } }, 15), "$how: on_rebuild after the revoke";
    my ($new, $err) = @{ $rec->{rebuilt}[0] // [] };
    ok $new && "$new" ne "$old", "$how: a new lease all the same";
    is_deeply [ grep { /^put / } @FlakyClient::SEEN ], [ "put /sp/$how/a", "put /sp/$how/b" ],
        "$how: both registered keys were tried again";
    if ($how eq 'error') {
        is_deeply $err, { code => 14, status => 'UNAVAILABLE', message => 'injected: no connection',
                          source => 'put', retryable => 1 },
            'error: on_rebuild gets the first failed put\'s error as it came';
    } else {
        is ref $err, 'HASH', 'croak: on_rebuild gets an error hash';
        is $err->{source}, 'session', '... from the session';
        is $err->{status}, 'FAILED_PRECONDITION', '... FAILED_PRECONDITION';
        like $err->{message}, qr/^session: put: put: injected croak/, '... naming the croak';
        unlike $err->{message}, qr/ at \S+ line \d+/, '... without a location inside the session';
    }
    is $s->state, 'live', "$how: the session is live on the new lease";
    is_deeply [ $s->registered_keys ], [ "/sp/$how/a", "/sp/$how/b" ], "$how: the keys stay registered";
    is scalar @{ $rec->{lost} }, 1, "$how: on_lost once";

    # Later calls work again once the client does.
    %FlakyClient::FAIL = ();
    ($r, $e) = scall($s, 'put', "/sp/$how/a", 'A2');
    ok !$e, "$how: a later put succeeds" or diag explain $e;
    is lease_of("/sp/$how/a"), "$new", '... under the new lease';
    scall($s, 'close');
}

# --- a rebuild whose grant fails for good ---------------------------------------------
{
    %FlakyClient::FAIL = ();
    my ($rec, $s, $during);
    $rec = rec_session(rebuild => 1, on_lost => sub {
        push @{ $rec->{lost} }, [@_];
        # queued behind the grant that is going to fail
        $s->put('/sp/grant/during', 'D', sub { $during = [@_] });
    });
    $s = $rec->{session};
    weaken $s;
    scall($s, 'put', '/sp/grant/a', 'A');
    my $old = $s->lease_id;

    $FlakyClient::FAIL{lease_grant} = 'error';
    @FlakyClient::SEEN = ();
    ok_call($o, 'lease_revoke', $old);
    ok run_until(sub { @{ $rec->{rebuilt} } && $during }, 15), 'grant refused: on_rebuild and the queued put answer';
    my ($new, $err) = @{ $rec->{rebuilt}[0] };
    is $new, undef, 'on_rebuild without a lease id';
    is_deeply $err, { code => 3, status => 'INVALID_ARGUMENT', message => 'injected: refused for good',
                      source => 'lease_grant', retryable => 0 },
        '... with the grant\'s error';
    run_until(sub { 0 }, 1.5);    # longer than the first retry's pause
    is scalar(grep { $_ eq 'lease_grant' } @FlakyClient::SEEN), 1,
        'a grant refused for good is not tried again';
    is $s->state, 'lost', 'the session is lost';
    is $s->lease_id, undef, 'and has no lease';
    ok !defined $during->[0], 'the queued put has no response';
    is_deeply $during->[1], $err, '... and the same error';
    my ($r, $e) = scall($s, 'put', '/sp/grant/b', 'B');
    is_deeply $e, $err, 'a call after that gets the same error';
    is ok_call($o, 'get', '/sp/grant/', { prefix => 1 })->{count}, 0, 'nothing was put';
    %FlakyClient::FAIL = ();
    scall($s, 'close');
}

# --- a queued call that croaks when it finally runs ------------------------------------
{
    %FlakyClient::FAIL = (put => 'croak');
    my $rec = rec_session();
    my $s = $rec->{session};
    is $s->state, 'granting', 'a new session is still granting';
    my ($put, $lock);
    $s->put('/sp/queued/a', 'A', sub { $put = [@_] });
    $s->lock('/sp/queued-lock', sub { $lock = [@_] });
    ok run_until(sub { $put && $lock && @{ $rec->{ready} } }, 10), 'the queued calls answer once the lease exists';
    ok !defined $put->[0], 'the croaking put has no response';
    is $put->[1]{source}, 'session', '... but a session error';
    like $put->[1]{message}, qr/^session: put: injected croak/, '... naming the croak';
    ok !$lock->[1], 'the call queued after it still runs' or diag explain $lock;
    like $lock->[0]{key}, qr{^/sp/queued-lock/}, '... and takes the lock';
    is $s->state, 'live', 'the session is live';
    %FlakyClient::FAIL = ();
    scall($s, 'close');
}

done_testing;
