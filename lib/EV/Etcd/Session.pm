package EV::Etcd::Session;

# A lease granted and kept alive on behalf of its user, with keys, locks and
# campaigns tied to it, and (optionally) rebuilt when it is lost. The POD is
# at the end of this file.

use strict;
use warnings;
use Carp ();
use Scalar::Util ();
use EV ();
use EV::Etcd::Util ();

our $VERSION = '0.01';

# Waits between attempts to grant a new lease while the server cannot be
# reached: doubling from the first, then the last one for ever.
our @BACKOFF = (0.5, 1, 2, 4, 5);

my %NEW_OPTION = map { $_ => 1 } qw(client ttl on_lost rebuild on_rebuild on_ready);

# --- helpers ---------------------------------------------------------------

# A croak from inside the client names the line of our call to it: the
# message without it, for an error passed on to a callback. (Croaks that
# go to our caller go through EV::Etcd::Util::rethrow.)
sub _where_not { EV::Etcd::Util::unplaced($_[0], __FILE__) }

# An error hash shaped like the client's, for what the session itself decides.
sub _error {
    my ($message) = @_;
    return { code => 9, status => 'FAILED_PRECONDITION', message => "session: $message",
             source => 'session', retryable => 0 };
}

# The loss the session detects itself: no reply at all to a new lease's
# keepalive within the lease's TTL.
sub _silent {
    my ($ttl) = @_;
    return { code => 4, status => 'DEADLINE_EXCEEDED', source => 'session', retryable => 1,
             message => "session: no keepalive reply within the lease's TTL of ${ttl}s since it "
                      . 'was granted: the lease must be assumed lost' };
}

sub _nothing { }

sub _check_self {
    my ($self, $method) = @_;
    Carp::croak("session $method: called on something that is not an EV::Etcd::Session")
        unless EV::Etcd::Util::holds_client($self, __PACKAGE__);
}

# Splits "[\%opt,] $cb" off the end of a method's arguments and checks the
# option names (and the timeout's value) against @allowed.
sub _opts_and_cb {
    my ($method, $want, $args, @allowed) = @_;
    my $cb = EV::Etcd::Util::need_cb(@$args >= $want + 1 ? $args->[-1] : undef, "session $method");
    Carp::croak("session $method: wrong number of arguments") if @$args > $want + 2;
    my %opt = %{ EV::Etcd::Util::opts(@$args == $want + 2 ? $args->[$want] : undef, "session $method") };
    my %allowed = map { $_ => 1 } @allowed;
    for my $name (sort keys %opt) {
        if (!$allowed{$name}) {
            Carp::croak("session $method: $name is not an option here: the session attaches its own lease")
                if $name =~ /\A(?:lease|ignore_lease|ignore_value)\z/;
            Carp::croak("session $method: unknown option '$name'");
        }
        my $v = $opt{$name};
        Carp::croak("session $method: timeout must be a finite number of seconds, 0 or more")
            if $name eq 'timeout' && defined $v
            && !(EV::Etcd::Util::is_string($v) && Scalar::Util::looks_like_number("$v")
                 && "$v" >= 0 && "$v" != 9**9**9);
    }
    return (\%opt, $cb);
}

sub _need_string {
    my ($method, $what, $v) = @_;
    return EV::Etcd::Util::string_arg($v, "session $method: $what");
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
    Carp::croak('EV::Etcd::Session->new: client must be an EV::Etcd object, got ' . EV::Etcd::Util::show($client))
        unless EV::Etcd::Util::is_client($client);
    my $ttl = $arg{ttl};
    Carp::croak('EV::Etcd::Session->new: ttl must be a positive integer, got ' . EV::Etcd::Util::show($ttl))
        unless EV::Etcd::Util::is_positive_int($ttl);
    for my $name (qw(on_lost on_rebuild on_ready)) {
        Carp::croak("EV::Etcd::Session->new: $name must be a code reference")
            if defined $arg{$name} && ref $arg{$name} ne 'CODE';
    }
    eval { $client->_assert_usable; 1 } or EV::Etcd::Util::rethrow($@);

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
        timer      => undef,       # the next grant attempt of a rebuild
        watchdog   => undef,       # loss of a lease whose keepalive never answered
        closing    => [],          # close callbacks waiting for a grant in flight
        over       => undef,       # the error calls get once the session is over
    }, $class;
    eval { $self->_grant; 1 } or EV::Etcd::Util::rethrow($@);
    $self->ready($arg{on_ready}) if $arg{on_ready};
    return $self;
}

# --- accessors -------------------------------------------------------------

sub lease_id { _check_self($_[0], 'lease_id'); $_[0]{lease_id} }
sub ttl      { _check_self($_[0], 'ttl');      $_[0]{granted} }
sub client   { _check_self($_[0], 'client');   $_[0]{client} }
sub state    { _check_self($_[0], 'state');    $_[0]{state} }
sub registered_keys { _check_self($_[0], 'registered_keys'); my @k = sort keys %{ $_[0]{keys} }; @k }

# --- the lease's life ------------------------------------------------------

sub _grant {
    my ($self) = @_;
    Scalar::Util::weaken(my $weak = $self);
    my $client = $self->{client};
    my $sent   = EV::time();
    $client->lease_grant($self->{ttl}, sub {
        my ($resp, $err) = @_;
        # The session went away while waiting: nobody will keep this lease
        # alive, so do not leave it (and what gets attached to it) behind.
        return $weak->_granted($resp, $err, $sent) if $weak;
        $client->lease_revoke($resp->{id}, \&_nothing) if $resp;
    });
    $self->{granting} = 1;
    return;
}

sub _retry_grant {
    my ($self) = @_;
    my $i     = $self->{attempt}++;
    my $delay = $BACKOFF[ $i < $#BACKOFF ? $i : $#BACKOFF ];
    Scalar::Util::weaken(my $weak = $self);
    $self->{timer} = EV::timer($delay, 0, sub {
        my $s = $weak or return;
        undef $s->{timer};
        return if $s->{state} eq 'closed';
        eval { $s->_grant; 1 } or $s->_give_up(_error("lease_grant: " . _where_not($@)));
    });
    return;
}

sub _granted {
    my ($self, $resp, $err, $sent) = @_;
    $self->{granting} = 0;
    if ($self->{state} eq 'closed') {
        # closed while the grant was under way: give the lease straight back
        my @cbs = splice @{ $self->{closing} };
        my $done = sub { EV::Etcd::Util::call_user($_, @_) for @cbs };
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
    Scalar::Util::weaken(my $weak = $self);
    # The keepalive notices a silent server only once it has had a first
    # reply. Until then the session watches the clock itself: without a
    # refresh the server expires the lease one TTL after granting it.
    my $ttl = $resp->{ttl} > 0 ? $resp->{ttl} : $self->{ttl};
    my $wait = $sent + $ttl - EV::time();
    $self->{watchdog} = EV::timer($wait > 0 ? $wait : 0, 0, sub {
        $weak->_lost($gen, _silent($ttl)) if $weak;
    });
    $self->{keepalive} = eval {
        $self->{client}->lease_keepalive($id, sub {
            my (undef, $kerr) = @_;
            my $s = $weak or return;
            # Every error of the keepalive means the lease is, or must be
            # taken to be, gone: NOT_FOUND (expired or revoked), the end of
            # the stream, or no reply within the TTL (DEADLINE_EXCEEDED).
            return $s->_lost($gen, $kerr) if $kerr;
            undef $s->{watchdog} if $s->{gen} == $gen;
        });
    };
    return $self->_lost($gen, _error('lease_keepalive: ' . _where_not($@)))
        unless $self->{keepalive};
    $self->_revoke_stale;

    return $self->_live if $self->{state} eq 'granting';
    $self->_put_again($gen);
}

# Puts every registered key again under the new lease, then carries on.
sub _put_again {
    my ($self, $gen) = @_;
    my $id   = $self->{lease_id};
    Scalar::Util::weaken(my $weak = $self);
    my @keys = sort keys %{ $self->{keys} };
    my ($left, $first_err) = (scalar @keys, undef);
    my $finish = sub {
        my $s = $weak or return;
        return unless $s->{gen} == $gen && $s->{state} eq 'rebuilding';
        $s->_live;
        EV::Etcd::Util::call_user($s->{on_rebuild}, $id, $first_err);
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
        $first_err //= _error('put: ' . _where_not($@));
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
            EV::Etcd::Util::call_user($op->[1], $self->{over});
            next;
        }
        next if eval { $op->[0]->($self->{lease_id}); 1 };
        EV::Etcd::Util::call_user($op->[1], _error(_where_not($@)));
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
    EV::Etcd::Util::call_user($self->{on_rebuild}, undef, $err) if $was eq 'rebuilding';
    return;
}

sub _fail_queue {
    my ($self, $err) = @_;
    EV::Etcd::Util::call_user($_->[1], $err) for splice @{ $self->{queue} };
    return;
}

sub _lost {
    my ($self, $gen, $err) = @_;
    return unless $gen == $self->{gen} && defined $self->{lease_id};
    return unless $self->{state} eq 'live' || $self->{state} eq 'rebuilding';
    my $old = delete $self->{lease_id};
    $self->{gen}++;    # late answers about the old lease no longer count
    undef $self->{watchdog};
    $self->_stop_keepalive;
    # Make sure: the keys, locks and leadership of a lease we stopped
    # keeping alive must not linger. A revoke that cannot get through is
    # tried again after the next grant.
    $self->{stale}{$old} = 1;
    $self->_revoke_stale;
    if ($self->{rebuild}) {
        $self->{state} = 'rebuilding';
        $self->{attempt} = 0;
        eval { $self->_grant; 1 } or $self->_give_up(_error('lease_grant: ' . _where_not($@)));
    } else {
        $self->{state} = 'lost';
        $self->{over}  = _error('lease lost');
        $self->_fail_queue($self->{over});
    }
    EV::Etcd::Util::call_user($self->{on_lost}, $old, $err);
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
    my $err = _error('lease_revoke: ' . _where_not($@));
    EV::Etcd::Util::later($cb, undef, $err);
    return;
}

sub _revoke_stale {
    my ($self) = @_;
    Scalar::Util::weaken(my $weak = $self);
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
        eval { $run->($self->{lease_id}); 1 } or EV::Etcd::Util::rethrow($@);
    } elsif ($state eq 'granting' || $state eq 'rebuilding') {
        push @{ $self->{queue} }, [ $run, $fail ];
    } else {
        EV::Etcd::Util::later($fail, $self->{over});
    }
    return;
}

# A put refused because the lease is unknown tells of the loss before the
# keepalive does.
sub _watch_put {
    my ($self, $gen, $cb) = @_;
    Scalar::Util::weaken(my $weak = $self);
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
    my $client = $self->{client};
    Scalar::Util::weaken(my $weak = $self);
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
        eval { $run->(); 1 } or EV::Etcd::Util::rethrow($@);
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
    EV::Etcd::Util::need_cb($cb, 'session ready');
    my $state = $self->{state};
    if ($state eq 'live') {
        EV::Etcd::Util::later($cb, $self->{lease_id}, undef);
    } elsif ($state eq 'granting' || $state eq 'rebuilding') {
        # through call_user: a callback that dies is not called a second
        # time with an error
        push @{ $self->{queue} }, [ sub { EV::Etcd::Util::call_user($cb, $_[0], undef) }, sub { $cb->(undef, @_) } ];
    } else {
        EV::Etcd::Util::later($cb, undef, $self->{over});
    }
    return;
}

sub close {
    my ($self, $cb) = @_;
    _check_self($self, 'close');
    $cb = defined $cb ? EV::Etcd::Util::need_cb($cb, 'session close') : \&_nothing;
    return EV::Etcd::Util::later($cb, {}, undef) if $self->{state} eq 'closed';

    $self->{state} = 'closed';
    $self->{over}  = _error('closed');
    delete @$self{qw(on_lost on_rebuild)};    # breaks cycles through them
    $self->{gen}++;
    undef $self->{timer};
    undef $self->{watchdog};
    $self->_stop_keepalive;
    %{ $self->{keys} } = ();
    $self->_fail_queue($self->{over});
    if (defined(my $id = delete $self->{lease_id})) {
        $self->_revoke($id, $cb);
    } elsif ($self->{granting}) {
        push @{ $self->{closing} }, $cb;     # answered by _granted
    } else {
        EV::Etcd::Util::later($cb, {}, undef);
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

__END__

=encoding utf8

=head1 NAME

EV::Etcd::Session - a kept-alive etcd lease for keys, locks and elections

=head1 SYNOPSIS

=for ev-etcd example interrupt

  use strict;
  use warnings;
  use EV;
  use EV::Etcd;
  use EV::Etcd::Session;

  my $etcd = EV::Etcd->new(endpoints => ['127.0.0.1:2379']);

  my $session = EV::Etcd::Session->new(
      client     => $etcd,
      ttl        => 10,
      rebuild    => 1,
      on_lost    => sub {
          my ($lease_id, $err) = @_;
          warn "lease $lease_id lost ($err->{status}): stop doing leader work\n";
      },
      on_rebuild => sub {
          my ($lease_id, $err) = @_;
          warn $lease_id ? "new lease $lease_id, keys are back\n"
                         : "giving up: $err->{message}\n";
      },
  );

  # Registered in service discovery for as long as the process lives.
  # Calls made before the lease exists wait for it.
  $session->put('/services/api/host-7', '10.0.0.7:8080', sub {
      my (undef, $err) = @_;
      die "register: $err->{message}\n" if $err;
  });

  # One instance at a time does the nightly job.
  $session->lock('/locks/nightly', sub {
      my ($held, $err) = @_;
      die "lock: $err->{message}\n" if $err;
      # ... work ...
      $etcd->unlock($held->{key}, sub { });
  });

  my $stop = EV::signal('INT', sub {
      $session->close(sub { EV::break });    # revokes the lease: all of it goes
  });
  EV::run;

=head1 DESCRIPTION

Much of what one does with etcd hangs off a lease: keys that must vanish
when their owner dies, locks, leadership. A session takes care of that
lease. It grants one with L<EV::Etcd/lease_grant>, keeps it alive with
L<EV::Etcd/lease_keepalive>, attaches it to the keys, locks and campaigns
you make through it, tells you when it is lost, and, if you ask it to,
replaces a lost lease with a new one and puts your keys back.

Everything goes through the client given to L</new>; the session adds no
connection of its own. Callbacks follow the client's conventions: the
last argument, called with C<($resp, $err)>, exactly once, always from the
loop and never inside the method call (for each method's own
callback), and C<$err> is an error hash with
C<code>, C<status>, C<message>, C<source> and C<retryable> (see
L<EV::Etcd/The error hash>).

=head1 CONSTRUCTOR

=head2 new

  my $session = EV::Etcd::Session->new(
      client     => $etcd,          # required
      ttl        => 10,             # required, seconds
      on_lost    => sub { my ($lease_id, $err) = @_; ... },
      rebuild    => 1,
      on_rebuild => sub { my ($lease_id, $err) = @_; ... },
      on_ready   => sub { my ($lease_id, $err) = @_; ... },
  );

Creates the session and asks for its lease at once; C<new> itself
returns before the answer, with the session in state C<granting>. Options
are name/value pairs:

=over 4

=item client => $etcd

The L<EV::Etcd> client to use. Required.

=item ttl => $seconds

The time to live to ask for, a positive integer. etcd may grant more
(its minimum is a few seconds); L</ttl> says what it granted. The session
refreshes the lease every third of the TTL. Required.

=item on_lost => sub { my ($lease_id, $err) = @_; ... }

Called once for each lease the session loses, with the lease id and the
error that showed the loss (see L</LOSING THE LEASE>). By the time it
runs, the session has stopped refreshing that lease and considers
everything attached to it gone.

=item rebuild => 0 | 1

Whether to replace a lost lease (see L</REBUILDING>). Default 0: a lost
lease ends the session.

=item on_rebuild => sub { my ($lease_id, $err) = @_; ... }

Called at the end of each rebuild. See L</REBUILDING> for its arguments.

=item on_ready => sub { my ($lease_id, $err) = @_; ... }

Called once the first lease exists, or once it is clear that there will
be none. The same as calling L</ready> right after C<new>.

=back

The callbacks are optional; each must be a code reference, undef meaning
none. An exception thrown by one of them is passed to C<$EV::DIED>, like
one from any callback, and does not disturb the session.

=head1 METHODS

=head2 put

  $session->put($key, $value, $cb);
  $session->put($key, $value, { prev_kv => 1, timeout => 5 }, $cb);

Stores the key with the session's lease attached, so it goes when the
lease goes, and registers it (the key with this value) for a rebuild to
put back. The callback gets what L<EV::Etcd/put> gives. The options are
those of that C<put> other than the ones about leases: C<prev_kv> and
C<timeout>; C<lease>, C<ignore_lease> and C<ignore_value> croak, since
the session decides the lease, and so does any other name.

The registration happens when C<put> is called and keeps the latest value
given for each key, whatever the outcome of the call; L</delete> removes
it. A put refused because the lease no longer exists (C<NOT_FOUND>,
C<etcdserver: requested lease not found>) counts as a loss of the lease,
even before the keepalive reports it.

=head2 delete

  $session->delete($key, $cb);
  $session->delete($key, { prev_kv => 1 }, $cb);

Unregisters the key and deletes it, answering as L<EV::Etcd/delete> does
(options C<prev_kv> and C<timeout>). As it needs no lease, it is sent
even when the session is over; it waits only behind calls that are
waiting for a lease, so that it cannot overtake a C<put> of the same key.

=head2 lock

  $session->lock($name, $cb);
  $session->lock($name, { timeout => 0 }, $cb);

L<EV::Etcd/lock> with the session's lease: the lock is released when you
unlock it (C<< $etcd->unlock($resp->{key}, ...) >>), when the session is
closed, or when the lease is lost. The only option is C<timeout>, as for
the client's C<lock>. A lock is not taken again by a rebuild: after
C<on_lost>, ask for it anew if you still want it. Read the caveats of
L<EV::Etcd/lock> about a lease lost while a request is waiting in line.

=head2 campaign

  $session->campaign($election, $value, $cb);
  $session->campaign($election, $value, { timeout => 0 }, $cb);

L<EV::Etcd/election_campaign> with the session's lease. Resign with
C<< $etcd->election_resign($resp->{leader}, ...) >>; leadership also ends
with the session's lease (close, loss), and a rebuild does not campaign
again.

=head2 ready

  $session->ready(sub { my ($lease_id, $err) = @_; ... });

Calls back with the lease id once the session has a live lease: on the
next turn of the loop if it has one now, otherwise when the grant (or the
rebuild) succeeds. When the session cannot get one, because it is over
or becomes so, the callback gets C<(undef, $err)> instead.

=head2 close

  $session->close;
  $session->close(sub { my ($resp, $err) = @_; ... });

Ends the session: stops the keepalive and revokes the lease, which
deletes the session's keys and releases its locks and leadership at
once, for everybody. The callback, which is optional, gets the answer of
L<EV::Etcd/lease_revoke>; if the lease was already gone, that is a
C<NOT_FOUND> error. A session without a lease at that moment (lost, or
still retrying a grant) answers C<({}, undef)>, and if a grant is under
way its lease is revoked as soon as it arrives, before the callback.
Calls waiting for a lease get the C<session: closed> error. Closing again
answers C<({}, undef)>. C<on_lost> is not called for a lease that is
closed; the session lets go of C<on_lost> and C<on_rebuild> (see
L</LIFETIME>).

=head2 Accessors

They send nothing and take no arguments; called on anything but a
session, each croaks (C<session state: called on something that is not
an EV::Etcd::Session>).

=head3 lease_id

  my $id = $session->lease_id;

The id of the live lease, or undef when there is none (before the first
grant, during a rebuild, after a loss or a close).

=head3 ttl

  my $seconds = $session->ttl;

The time to live etcd granted to the latest lease; undef before the first
grant.

=head3 state

  my $state = $session->state;

One of C<granting> (waiting for the first lease), C<live>, C<rebuilding>
(a lost lease is being replaced), C<lost> (over after a loss), C<failed>
(over: the first lease could not be had) and C<closed>.

=head3 registered_keys

  my @keys = $session->registered_keys;

The keys a rebuild would put back, sorted, as a list.

=head3 client

  my $etcd = $session->client;

The client given to L</new>.

=head1 CALLS MADE WITHOUT A LEASE

C<put>, C<lock>, C<campaign>, C<delete> and C<ready> called while the
session waits for a lease (state C<granting> or C<rebuilding>) are kept,
in order, and sent as soon as the lease exists. If it never comes, they
get the error that explains why. On a session that is over, C<put>,
C<lock> and C<campaign> send nothing and call back, from the loop, with
an error:

=over 4

=item *

after a loss without rebuild: C<session: lease lost>;

=item *

after C<close>: C<session: closed>;

=item *

when the first grant failed, or a rebuild gave up: the error
C<lease_grant> gave.

=back

The session's own errors are shaped like the client's:

  { code => 9, status => 'FAILED_PRECONDITION', message => 'session: lease lost',
    source => 'session', retryable => 0 }

A lease that could never be granted leaves the session in state
C<failed>. Without C<rebuild>, any failure of the first C<lease_grant>
does that; with C<< rebuild => 1 >>, retryable failures (the server
cannot be reached: C<UNAVAILABLE>, C<DEADLINE_EXCEEDED>) are tried again
as described under L</REBUILDING>, and only other errors (a permission
refused, say) end the session.

=head1 LOSING THE LEASE

The session takes its lease to be lost when its keepalive reports an
error, which can be:

=over 4

=item *

C<NOT_FOUND>: the lease has expired or was revoked (by another client, an
administrator, or C<lease_revoke> on the same client);

=item *

C<DEADLINE_EXCEEDED>: no answer to the refreshes for as long as the
lease's TTL (a frozen or unreachable server, a connection that takes too
long to come back), so the lease may have expired on the server; the
session does not wait to find out;

=item *

any other error that ends the keepalive, for instance C<UNAVAILABLE>
after the client's reconnection attempts (C<max_retries>) ran out.

=back

The keepalive can only time a silence once it has heard a first reply,
so the session covers the moments before that itself: when a new
lease's keepalive has not answered at all within the lease's TTL,
counted from the moment the grant was asked for (when the server's clock
for the lease started at the latest), the lease is lost with this error:

  { code => 4, status => 'DEADLINE_EXCEEDED', source => 'session', retryable => 1,
    message => "session: no keepalive reply within the lease's TTL of 10s since it was granted: ..." }

A C<put> through the session refused with C<NOT_FOUND> for the lease is a
loss as well. On a loss the session stops the keepalive, revokes the
lease (should the server still have it, so that its keys, locks and
leadership do not stay behind; a revoke that cannot get through is tried
again after the next successful grant), and calls C<on_lost> once, with
the lease id and the error. Without C<rebuild> the session is then over
(state C<lost>).

=head1 REBUILDING

With C<< rebuild => 1 >>, a lost lease is replaced: the session asks for
a new one right away and, as long as the server cannot be reached (the
grant fails with a retryable error), asks again after 0.5, 1, 2, 4 and
then every 5 seconds, without end, until it gets one or is closed. Once
the new lease exists, the session starts keeping it alive, puts every
registered key again with its latest value under the new lease, waits
for those puts, sends the calls that were waiting, and then calls
C<on_rebuild>:

=over 4

=item C<($new_lease_id, undef)>

rebuilt; all registered keys are back.

=item C<($new_lease_id, $err)>

rebuilt, but putting at least one key again failed; C<$err> is the first
such failure as L<EV::Etcd/put> gave it. The keys stay registered.

=item C<(undef, $err)>

the grant failed in a way that retrying cannot fix; the session is over
(state C<lost>) and C<$err> is the error of C<lease_grant>.

=back

Only keys come back. Locks and leadership belonged to the old lease and
went with it: take them again from C<on_lost> or C<on_rebuild> if you
want them. Keys are put back with the plain C<put> semantics, so a key
that someone else wrote since the loss is overwritten.

=head1 LIFETIME

A session holds its client (which therefore lives at least as long), and
while it has a live lease, the keepalive keeps C<EV::run> running; a
rebuild waiting to try again does too. Close the session to let the loop
end.

The session's own callbacks refer to it weakly, so the client does not
keep it alive: dropping the last reference to a session closes it, as
C<close> without a callback does (the lease is revoked), and a session
dropped before its first grant arrives revokes that lease when it comes.
At program exit (global destruction) nothing is sent and the lease simply
expires after its TTL.

Your own callbacks (C<on_lost>, C<on_rebuild>, C<on_ready>) are stored in
the session. One that mentions the session variable makes a cycle: the
session holds the callback, the callback holds the session, and dropping
your variable then frees neither, so the lease lives on. Either let the
callback use a weak copy:

  use Scalar::Util qw(weaken);
  my $weak;
  my $session = EV::Etcd::Session->new(
      client     => $etcd,
      ttl        => 10,
      rebuild    => 1,
      on_rebuild => sub {
          my ($lease_id) = @_;
          $weak->lock('/locks/job', sub { }) if $weak && $lease_id;
      },
  );
  weaken($weak = $session);

or end the session with L</close>, which also lets go of those callbacks
and so breaks the cycle.

=head1 BAD ARGUMENTS

Bad arguments croak at the line that made the call, before anything is
sent:

  EV::Etcd::Session->new: client must be an EV::Etcd object, got undef
  EV::Etcd::Session->new: ttl must be a positive integer, got '0'
  EV::Etcd::Session->new: unknown option 'tll'
  EV::Etcd::Session->new: on_lost must be a code reference
  callback must be a code reference (session put)
  session put: key must be defined
  session put: lease is not an option here: the session attaches its own lease
  session lock: unknown option 'ttl'

When the call is sent at once (the session is live), a croak of the
client's own method, for instance on a client that was closed, comes
from the session's method, at the same line.

=head1 SEE ALSO

L<EV::Etcd>, in particular its L<LEASE|EV::Etcd/LEASE>,
L<LOCK|EV::Etcd/LOCK> and L<ELECTION|EV::Etcd/ELECTION> sections, and
its L<SESSIONS|EV::Etcd/SESSIONS> section for a short introduction.

=head1 LICENSE

EV::Etcd::Session is part of EV::Etcd and is free software. You may
distribute it and/or modify it under the same terms as Perl 5 itself,
that is under either the GNU General Public License or the Artistic
License.

=cut
