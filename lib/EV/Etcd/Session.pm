package EV::Etcd::Session;

# A lease granted and kept alive on behalf of its user, with keys, locks and
# campaigns tied to it, and (optionally) rebuilt when it is lost. The POD is
# at the end of this file.

use strict;
use warnings;
use Carp ();
use Scalar::Util ();
use overload ();
use EV ();

our $VERSION = '0.01';

# Waits between attempts to grant a new lease while the server cannot be
# reached: doubling from the first, then the last one for ever.
our @BACKOFF = (0.5, 1, 2, 4, 5);

my %NEW_OPTION = map { $_ => 1 } qw(client ttl on_lost rebuild on_rebuild on_ready);

# --- helpers ---------------------------------------------------------------

sub _show { my $v = shift; defined $v ? (ref $v ? ref($v) . ' reference' : "'$v'") : 'undef' }

sub _is_string {
    my $v = shift;
    return 0 unless defined $v;
    return 1 unless ref $v;
    return Scalar::Util::blessed($v) && overload::Method($v, '""') ? 1 : 0;
}

# A croak from inside the client carries the location of our call to it:
# report it at our caller's line instead.
sub _rethrow {
    my ($e) = @_;
    $e =~ s/ at \S+ line \d+\.?\n\z//;
    Carp::croak($e);
}

# An error hash shaped like the client's, for what the session itself decides.
sub _error {
    my ($message) = @_;
    return { code => 9, status => 'FAILED_PRECONDITION', message => "session: $message",
             source => 'session', retryable => 0 };
}

# Runs a user's callback from inside the session's own machinery: an
# exception goes to $EV::DIED, as it would for a callback EV calls, and
# does not stop the session's work.
sub _call_user {
    my ($cb, @args) = @_;
    return unless $cb;
    local $@;
    return if eval { $cb->(@args); 1 };
    if (ref $EV::DIED eq 'CODE') { $EV::DIED->() }
    else                         { warn "EV: error in callback (ignoring): $@" }
    return;
}

# Calls back on the next turn of the loop, never inside the method call.
sub _later {
    my ($cb, @args) = @_;
    EV::once(undef, 0, 0, sub { $cb->(@args) });
    return;
}

sub _nothing { }

sub _weak {
    my $w = shift;
    Scalar::Util::weaken($w);
    return $w;
}

sub _check_self {
    my ($self, $method) = @_;
    Carp::croak("session $method: called on something that is not an EV::Etcd::Session")
        unless Scalar::Util::blessed($self) && Scalar::Util::reftype($self) eq 'HASH'
        && $self->isa(__PACKAGE__) && Scalar::Util::blessed($self->{client});
}

# Splits "[\%opt,] $cb" off the end of a method's arguments and checks the
# option names (and the timeout's value) against @allowed.
sub _opts_and_cb {
    my ($method, $want, $args, @allowed) = @_;
    my $cb = $args->[-1];
    Carp::croak("callback must be a code reference (session $method)")
        unless @$args >= $want + 1 && ref $cb eq 'CODE';
    Carp::croak("session $method: wrong number of arguments") if @$args > $want + 2;
    my $opt = @$args == $want + 2 ? $args->[$want] : undef;
    Carp::croak("session $method: options must be a hash reference")
        if defined $opt && ref $opt ne 'HASH';
    my %allowed = map { $_ => 1 } @allowed;
    my %opt = %{ $opt // {} };
    for my $name (sort keys %opt) {
        if (!$allowed{$name}) {
            Carp::croak("session $method: $name is not an option here: the session attaches its own lease")
                if $name =~ /\A(?:lease|ignore_lease|ignore_value)\z/;
            Carp::croak("session $method: unknown option '$name'");
        }
        my $v = $opt{$name};
        Carp::croak("session $method: timeout must be a finite number of seconds, 0 or more")
            if $name eq 'timeout' && defined $v
            && !(_is_string($v) && Scalar::Util::looks_like_number("$v")
                 && "$v" >= 0 && "$v" != 9**9**9);
    }
    return (\%opt, $cb);
}

sub _need_string {
    my ($method, $what, $v) = @_;
    Carp::croak("session $method: $what must be defined") unless defined $v;
    Carp::croak("session $method: $what must be a string, not " . _show($v)) unless _is_string($v);
    my $s = "$v";
    utf8::encode($s) if utf8::is_utf8($s);
    return $s;
}

# --- construction ----------------------------------------------------------

sub new {
    my ($class, @args) = @_;
    Carp::croak('EV::Etcd::Session->new: options must be name => value pairs') if @args % 2;
    my %arg = @args;
    for my $name (sort keys %arg) {
        Carp::croak("EV::Etcd::Session->new: unknown option '$name'") unless $NEW_OPTION{$name};
    }
    my $client = $arg{client};
    Carp::croak('EV::Etcd::Session->new: client must be an EV::Etcd object, got ' . _show($client))
        unless Scalar::Util::blessed($client) && $client->isa('EV::Etcd');
    my $ttl = $arg{ttl};
    Carp::croak('EV::Etcd::Session->new: ttl must be a positive integer, got ' . _show($ttl))
        unless _is_string($ttl) && "$ttl" =~ /\A\s*\+?0*[1-9][0-9]{0,17}\s*\z/;
    for my $name (qw(on_lost on_rebuild on_ready)) {
        Carp::croak("EV::Etcd::Session->new: $name must be a code reference")
            if defined $arg{$name} && ref $arg{$name} ne 'CODE';
    }
    eval { $client->_assert_usable; 1 } or _rethrow($@);

    my $self = bless {
        client     => $client,
        ttl        => 0 + "$ttl",
        rebuild    => $arg{rebuild} ? 1 : 0,
        on_lost    => $arg{on_lost},
        on_rebuild => $arg{on_rebuild},
        state      => 'granting',  # granting live rebuilding lost failed closed
        lease_id   => undef,
        granted    => undef,       # the TTL etcd granted
        gen        => 0,           # counts leases; late answers of older ones are ignored
        keepalive  => undef,
        queue      => [],          # calls waiting for a lease: [run, fail]
        keys       => {},          # registered key => value
        stale      => {},          # lost lease ids still to revoke
        attempt    => 0,
        timer      => undef,
        closing    => [],          # close callbacks waiting for a grant in flight
        over       => undef,       # the error calls get once the session is over
    }, $class;
    eval { $self->_grant; 1 } or _rethrow($@);
    $self->ready($arg{on_ready}) if $arg{on_ready};
    return $self;
}

# --- accessors -------------------------------------------------------------

sub lease_id { _check_self($_[0], 'lease_id'); $_[0]{lease_id} }
sub ttl      { _check_self($_[0], 'ttl');      $_[0]{granted} }
sub client   { _check_self($_[0], 'client');   $_[0]{client} }
sub state    { _check_self($_[0], 'state');    $_[0]{state} }
sub registered_keys { _check_self($_[0], 'registered_keys'); sort keys %{ $_[0]{keys} } }

# --- the lease's life ------------------------------------------------------

sub _grant {
    my ($self) = @_;
    my $weak   = _weak($self);
    my $client = $self->{client};
    $client->lease_grant($self->{ttl}, sub {
        my ($resp, $err) = @_;
        # The session went away while waiting: nobody will keep this lease
        # alive, so do not leave it (and what gets attached to it) behind.
        return $weak->_granted($resp, $err) if $weak;
        $client->lease_revoke($resp->{id}, \&_nothing) if $resp;
    });
    $self->{granting} = 1;
    return;
}

sub _retry_grant {
    my ($self) = @_;
    my $i     = $self->{attempt}++;
    my $delay = $BACKOFF[ $i < $#BACKOFF ? $i : $#BACKOFF ];
    my $weak  = _weak($self);
    $self->{timer} = EV::timer($delay, 0, sub {
        my $s = $weak or return;
        undef $s->{timer};
        return if $s->{state} eq 'closed';
        eval { $s->_grant; 1 } or $s->_give_up(_error("lease_grant: " . ($@ =~ s/ at \S+ line \d+\.?\n\z//r)));
    });
    return;
}

sub _granted {
    my ($self, $resp, $err) = @_;
    $self->{granting} = 0;
    if ($self->{state} eq 'closed') {
        # closed while the grant was under way: give the lease straight back
        my @cbs = splice @{ $self->{closing} };
        my $done = sub { _call_user($_, @_) for @cbs };
        return $done->({}, undef) if $err;
        return $self->_revoke($resp->{id}, $done);
    }
    if ($err) {
        return $self->_retry_grant if $err->{retryable} && $self->{rebuild};
        return $self->_give_up($err);
    }

    my $id  = $resp->{id};
    my $gen = ++$self->{gen};
    $self->{lease_id} = $id;
    $self->{granted}  = $resp->{ttl};
    $self->{attempt}  = 0;
    my $weak = _weak($self);
    $self->{keepalive} = eval {
        $self->{client}->lease_keepalive($id, sub {
            my (undef, $kerr) = @_;
            # Every error of the keepalive means the lease is, or must be
            # taken to be, gone: NOT_FOUND (expired or revoked), the end of
            # the stream, or no reply within the TTL (DEADLINE_EXCEEDED).
            $weak->_lost($gen, $kerr) if $kerr && $weak;
        });
    };
    return $self->_lost($gen, _error('lease_keepalive: ' . ($@ =~ s/ at \S+ line \d+\.?\n\z//r)))
        unless $self->{keepalive};
    $self->_revoke_stale;

    return $self->_live if $self->{state} eq 'granting';
    $self->_put_again($gen);
}

# Puts every registered key again under the new lease, then carries on.
sub _put_again {
    my ($self, $gen) = @_;
    my $id   = $self->{lease_id};
    my $weak = _weak($self);
    my @keys = sort keys %{ $self->{keys} };
    my ($left, $first_err) = (scalar @keys, undef);
    my $finish = sub {
        my $s = $weak or return;
        return unless $s->{gen} == $gen && $s->{state} eq 'rebuilding';
        $s->_live;
        _call_user($s->{on_rebuild}, $id, $first_err);
    };
    return $finish->() unless $left;
    for my $key (@keys) {
        my $ok = eval {
            $self->{client}->put($key, $self->{keys}{$key}, { lease => $id }, sub {
                my (undef, $err) = @_;
                $first_err //= $err;
                $finish->() unless --$left;
            });
            1;
        };
        next if $ok;
        $first_err //= _error('put: ' . ($@ =~ s/ at \S+ line \d+\.?\n\z//r));
        $finish->() unless --$left;
    }
    return;
}

sub _live {
    my ($self) = @_;
    $self->{state} = 'live';
    for my $op (splice @{ $self->{queue} }) {
        # a ready callback run just before may have closed the session
        if ($self->{state} ne 'live') {
            _call_user($op->[1], $self->{over});
            next;
        }
        next if eval { $op->[0]->($self->{lease_id}); 1 };
        _call_user($op->[1], _error($@ =~ s/ at \S+ line \d+\.?\n\z//r));
    }
    return;
}

# No lease now, and none will come: fail everything that waits.
sub _give_up {
    my ($self, $err) = @_;
    my $was = $self->{state};
    $self->{state} = $was eq 'granting' ? 'failed' : 'lost';
    $self->{over}  = $err;
    $self->_fail_queue($err);
    _call_user($self->{on_rebuild}, undef, $err) if $was eq 'rebuilding';
    return;
}

sub _fail_queue {
    my ($self, $err) = @_;
    _call_user($_->[1], $err) for splice @{ $self->{queue} };
    return;
}

sub _lost {
    my ($self, $gen, $err) = @_;
    return unless $gen == $self->{gen} && defined $self->{lease_id};
    return unless $self->{state} eq 'live' || $self->{state} eq 'rebuilding';
    my $old = delete $self->{lease_id};
    $self->{gen}++;    # late answers about the old lease no longer count
    $self->_stop_keepalive;
    # Make sure: the keys, locks and leadership of a lease we stopped
    # keeping alive must not linger. A revoke that cannot get through is
    # tried again after the next grant.
    $self->{stale}{$old} = 1;
    $self->_revoke_stale;
    if ($self->{rebuild}) {
        $self->{state} = 'rebuilding';
        $self->{attempt} = 0;
        eval { $self->_grant; 1 } or $self->_give_up(_error('lease_grant: ' . ($@ =~ s/ at \S+ line \d+\.?\n\z//r)));
    } else {
        $self->{state} = 'lost';
        $self->{over}  = _error('lease lost');
        $self->_fail_queue($self->{over});
    }
    _call_user($self->{on_lost}, $old, $err);
    return;
}

sub _stop_keepalive {
    my ($self) = @_;
    my $ka = delete $self->{keepalive} or return;
    eval { $ka->cancel(\&_nothing) };
    return;
}

sub _revoke {
    my ($self, $id, $cb) = @_;
    return if eval { $self->{client}->lease_revoke($id, $cb); 1 };
    my $err = _error('lease_revoke: ' . ($@ =~ s/ at \S+ line \d+\.?\n\z//r));
    _later($cb, undef, $err);
    return;
}

sub _revoke_stale {
    my ($self) = @_;
    my $weak = _weak($self);
    for my $id (sort keys %{ $self->{stale} }) {
        next if $self->{stale}{$id} eq 'sent';
        $self->{stale}{$id} = 'sent';
        $self->_revoke($id, sub {
            my (undef, $err) = @_;
            my $s = $weak or return;
            # gone, or refused for good: forget it; unreachable: later
            if ($err && $err->{retryable}) { $s->{stale}{$id} = 1 }
            else                           { delete $s->{stale}{$id} }
        });
    }
    return;
}

# --- calls that use the lease ------------------------------------------------

# Runs $run->($lease_id) now if there is a lease, queues it while one is
# being granted, and calls $fail->($err) from the loop once the session is
# over.
sub _submit {
    my ($self, $run, $fail) = @_;
    my $state = $self->{state};
    if ($state eq 'live') {
        eval { $run->($self->{lease_id}); 1 } or _rethrow($@);
    } elsif ($state eq 'granting' || $state eq 'rebuilding') {
        push @{ $self->{queue} }, [ $run, $fail ];
    } else {
        _later($fail, $self->{over});
    }
    return;
}

# A put refused because the lease is unknown tells of the loss before the
# keepalive does.
sub _watch_put {
    my ($self, $gen, $cb) = @_;
    my $weak = _weak($self);
    return sub {
        my ($resp, $err) = @_;
        $weak->_lost($gen, $err)
            if $err && $weak && $err->{status} eq 'NOT_FOUND' && $err->{message} =~ /lease not found/;
        $cb->($resp, $err);
    };
}

sub put {
    my ($self, @args) = @_;
    _check_self($self, 'put');
    my ($opt, $cb) = _opts_and_cb('put', 2, \@args, qw(prev_kv timeout));
    my $key   = _need_string('put', 'key', $args[0]);
    my $value = _need_string('put', 'value', $args[1]);
    # Queued calls hold the session weakly: a session dropped meanwhile
    # is not kept alive by them.
    my ($client, $weak) = ($self->{client}, _weak($self));
    $self->_submit(sub {
        my ($id) = @_;
        $client->put($key, $value, { %$opt, lease => $id }, $weak ? $weak->_watch_put($weak->{gen}, $cb) : $cb);
    }, sub { $cb->(undef, @_) });
    # what a rebuild puts again (a session that is over has nothing to rebuild)
    $self->{keys}{$key} = $value if $self->{state} =~ /\A(?:granting|live|rebuilding)\z/;
    return;
}

sub delete {
    my ($self, @args) = @_;
    _check_self($self, 'delete');
    my ($opt, $cb) = _opts_and_cb('delete', 1, \@args, qw(prev_kv timeout));
    my $key = _need_string('delete', 'key', $args[0]);
    delete $self->{keys}{$key};
    my $client = $self->{client};
    my $run = sub { $client->delete($key, $opt, $cb) };
    # The delete needs no lease: once the session is over it goes out as is.
    if ($self->{state} eq 'granting' || $self->{state} eq 'rebuilding') {
        push @{ $self->{queue} }, [ $run, sub { $cb->(undef, @_) } ];
    } else {
        eval { $run->(); 1 } or _rethrow($@);
    }
    return;
}

sub lock {
    my ($self, @args) = @_;
    _check_self($self, 'lock');
    my ($opt, $cb) = _opts_and_cb('lock', 1, \@args, qw(timeout));
    my $name = _need_string('lock', 'name', $args[0]);
    my $client = $self->{client};
    $self->_submit(sub { $client->lock($name, $_[0], $opt, $cb) }, sub { $cb->(undef, @_) });
    return;
}

sub campaign {
    my ($self, @args) = @_;
    _check_self($self, 'campaign');
    my ($opt, $cb) = _opts_and_cb('campaign', 2, \@args, qw(timeout));
    my $name  = _need_string('campaign', 'name', $args[0]);
    my $value = _need_string('campaign', 'value', $args[1]);
    my $client = $self->{client};
    $self->_submit(sub { $client->election_campaign($name, $_[0], $value, $opt, $cb) },
                   sub { $cb->(undef, @_) });
    return;
}

sub ready {
    my ($self, $cb) = @_;
    _check_self($self, 'ready');
    Carp::croak('callback must be a code reference (session ready)') unless ref $cb eq 'CODE';
    my $state = $self->{state};
    if    ($state eq 'live')                                { _later($cb, $self->{lease_id}, undef) }
    elsif ($state eq 'granting' || $state eq 'rebuilding') { push @{ $self->{queue} }, [ $cb, sub { $cb->(undef, @_) } ] }
    else                                                    { _later($cb, undef, $self->{over}) }
    return;
}

sub close {
    my ($self, $cb) = @_;
    _check_self($self, 'close');
    Carp::croak('callback must be a code reference (session close)') if defined $cb && ref $cb ne 'CODE';
    $cb //= \&_nothing;
    return _later($cb, {}, undef) if $self->{state} eq 'closed';

    $self->{state} = 'closed';
    $self->{over}  = _error('closed');
    $self->{gen}++;
    undef $self->{timer};
    $self->_stop_keepalive;
    %{ $self->{keys} } = ();
    $self->_fail_queue($self->{over});
    if (defined(my $id = delete $self->{lease_id})) {
        $self->_revoke($id, $cb);
    } elsif ($self->{granting}) {
        push @{ $self->{closing} }, $cb;     # answered by _granted
    } else {
        _later($cb, {}, undef);
    }
    $self->_revoke_stale;
    return;
}

# Dropping the last reference ends the session as close does, without a
# callback. At global destruction the client may be gone already: leave
# the lease to expire.
sub DESTROY {
    my ($self) = @_;
    return if ${^GLOBAL_PHASE} eq 'DESTRUCT';
    return if !$self->{client} || $self->{state} eq 'closed';
    local ($@, $!, $?);
    eval { $self->close; 1 };
    return;
}

1;
