package EV::Etcd::STM;

# Software transactional memory over etcd: a function of what it reads is
# run against one snapshot and its writes are committed with a compare on
# every key it read; a conflict runs the whole thing again. Reached
# through EV::Etcd's stm method; the POD at the end is the reference.

use strict;
use warnings;
use Carp ();
use Scalar::Util ();
use EV ();
use EV::Etcd::Util ();

our $VERSION = '0.01';

# Croaks point at the code that called stm, not at EV::Etcd's one-line
# wrapper.
our @CARP_NOT = ('EV::Etcd');

our $DEFAULT_MAX_ATTEMPTS = 30;
our $DEFAULT_BACKOFF      = 0.01;
our $DEFAULT_MAX_BACKOFF  = 1;

# etcd's default --max-txn-ops: reads are sent in txns of at most this many
# ranges.
our $READ_BATCH = 128;

# For the tests only: called as ($attempt, $go) just before a commit is
# sent; the commit waits until $go is called.
our $_BEFORE_COMMIT;

my %OPTION = map { $_ => 1 } qw(max_attempts backoff max_backoff prefetch);

sub _number_ok {
    my ($v) = @_;
    return EV::Etcd::Util::is_string($v)
        && "$v" =~ /\A\s*\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*\z/
        && (0 + "$v") < 9**9**9 ? 1 : 0;
}

sub _key {
    my ($key, $what) = @_;
    return EV::Etcd::Util::string_arg($key, "stm: $what");
}

# $client->stm($fn, [\%opt], $cb)
sub _run {
    my ($client, $fn, @rest) = @_;
    Carp::croak('stm: called on something that is not a live EV::Etcd client')
        unless EV::Etcd::Util::is_client($client);
    # (io_mode croaks for a closed client too, which _assert_usable lets pass)
    eval { $client->_assert_usable; $client->io_mode; 1 } or EV::Etcd::Util::rethrow($@);
    my $cb = pop @rest;
    EV::Etcd::Util::need_cb($cb, 'stm');
    Carp::croak('stm: takes a function, an optional options hash and a callback') if @rest > 1;
    Carp::croak('stm: the function must be a code reference, got ' . EV::Etcd::Util::show($fn))
        unless ref $fn eq 'CODE';
    my %opt = %{ EV::Etcd::Util::opts($rest[0], 'stm') };
    for my $name (sort keys %opt) {
        Carp::croak("stm: unknown option '$name'") unless $OPTION{$name};
    }
    my $max = $opt{max_attempts} // $DEFAULT_MAX_ATTEMPTS;
    Carp::croak('stm: max_attempts must be a positive integer, got ' . EV::Etcd::Util::show($max))
        unless EV::Etcd::Util::is_positive_int($max);
    my %delay;
    for my $name (qw(backoff max_backoff)) {
        my $v = $opt{$name};
        next unless defined $v;
        Carp::croak("stm: $name must be a finite number of seconds, 0 or more, got " . EV::Etcd::Util::show($v))
            unless _number_ok($v);
        $delay{$name} = 0 + "$v";
    }
    my @prefetch;
    if (defined $opt{prefetch}) {
        Carp::croak('stm: prefetch must be an array reference of keys')
            unless ref $opt{prefetch} eq 'ARRAY';
        @prefetch = map { _key($_, 'a prefetch key') } @{ $opt{prefetch} };
    }

    my $run = bless {
        client      => $client,
        fn          => $fn,
        cb          => $cb,
        max         => 0 + "$max",
        backoff     => $delay{backoff} // $DEFAULT_BACKOFF,
        max_backoff => $delay{max_backoff} // $DEFAULT_MAX_BACKOFF,
        attempts    => 0,
        conflicts   => 0,
        read_errors => 0,
    }, __PACKAGE__;
    my %seen;
    @prefetch = grep { !$seen{$_}++ } @prefetch;
    # The first attempt starts from the loop: the callback never runs
    # inside the call, and neither does the function.
    EV::once(undef, 0, 0, sub { $run->_attempt(\@prefetch) });
    return;
}

# ---- one attempt ------------------------------------------------------------

# Starts an attempt: forgets what the last one read, reads @$keys (all in
# one snapshot, at a revision the first read fixes), then runs the
# function.
sub _attempt {
    my ($self, $keys) = @_;
    $self->{attempts}++;
    $self->{revision} = undef;
    $self->{header}   = undef;
    $self->{reads}    = {};    # key => kv hash, or undef when absent
    $self->{order}    = [];    # keys in the order they were first read
    return $self->_run_fn unless @$keys;
    $self->_read($keys, sub { $self->_run_fn });
}

# Reads $keys at the attempt's revision (the first read of the attempt
# fixes it), adds them to the read set and calls $then. A failed read ends
# the attempt instead.
sub _read {
    my ($self, $keys, $then) = @_;
    my @batch = @$keys > $READ_BATCH ? @$keys[0 .. $READ_BATCH - 1] : @$keys;
    my @left  = @$keys[ @batch .. $#$keys ];
    my $rev   = $self->{revision};
    my @ops   = map { { range => { key => $_, defined $rev ? (revision => $rev) : () } } } @batch;
    my $sent = eval {
        $self->{client}->txn(compare => [], success => \@ops, callback => sub {
            my ($resp, $err) = @_;
            return $self->_read_failed($err, [ @{ $self->{order} }, @batch, @left ]) if $err;
            $self->{revision} //= $resp->{header}{revision};
            $self->{header}   //= $resp->{header};
            for my $i (0 .. $#batch) {
                my $kv = $resp->{responses}[$i]{response_range}{kvs}[0];
                push @{ $self->{order} }, $batch[$i] unless exists $self->{reads}{ $batch[$i] };
                $self->{reads}{ $batch[$i] } = $kv;
            }
            return $self->_read(\@left, $then) if @left;
            $then->();
        });
        1;
    };
    $self->_cannot_send('reading failed: ') unless $sent;
}

# A read failed: nothing was written, so a transient failure, or a pinned
# revision compacted away, starts a new attempt; anything else ends the call.
sub _read_failed {
    my ($self, $err, $keys) = @_;
    my $compacted = ($err->{status} // '') eq 'OUT_OF_RANGE' && ($err->{message} // '') =~ /compacted/;
    if (($compacted || $err->{retryable}) && $self->{attempts} < $self->{max}) {
        $self->{read_errors}++;
        my %seen;
        my @keys = grep { !$seen{$_}++ } @$keys;
        return $self->_attempt(\@keys) if $compacted;
        return $self->_later($self->_delay, sub { $self->_attempt(\@keys) });
    }
    $self->_finish(undef, $self->_error($err->{code}, $err->{status}, "reading failed: $err->{message}",
                                        retryable => $err->{retryable}, cause => $err));
}

# Runs the function on what the attempt has read. A key it has not read
# yet sends it back to _read, and the function runs again from the start.
sub _run_fn {
    my ($self) = @_;
    my $tx = bless { run => $self, writes => {}, worder => [], need => [] }, 'EV::Etcd::STM::Tx';
    my ($ok, $result, $died);
    {
        local $@;
        $ok = eval { $result = $self->{fn}->($tx); 1 };
        $died = $@ unless $ok;
    }
    $tx->{over} = 1;
    if (@{ $tx->{need} }) {
        # Even when the function caught the exception and went on (or died
        # of something that followed from it), what it did was based on a
        # missing read: read, then run it again.
        my %seen;
        my @need = grep { !$seen{$_}++ && !exists $self->{reads}{$_} } @{ $tx->{need} };
        return $self->_read(\@need, sub { $self->_run_fn }) if @need;
    }
    if (!$ok) {
        my $why = ref $died ? $died : _where_not($died);
        ($why = "$why") =~ s/\s+\z// unless ref $why;
        return $self->_finish(undef, $self->_error(13, 'INTERNAL', "the function died: $why",
                                                   exception => $died));
    }
    return $self->_commit($tx, $result);
}

# ---- the commit -------------------------------------------------------------

sub _commit {
    my ($self, $tx, $result) = @_;
    my @keys = @{ $tx->{worder} };
    if (!@keys) {
        # Read-only: its reads came from one snapshot, nothing to commit.
        return $self->_finish({
            revision  => $self->{revision},
            header    => $self->{header},
            responses => [],
            result    => $result,
        });
    }
    # One compare per key read: unchanged since the snapshot, or still absent.
    my @compare = map {
        my $kv = $self->{reads}{$_};
        $kv ? { key => $_, target => 'mod',    mod_revision    => $kv->{mod_revision} }
            : { key => $_, target => 'create', create_revision => 0 }
    } @{ $self->{order} };
    my @success = map {
        my $w = $tx->{writes}{$_};
        defined $w ? { put => { key => $_, value => $w } } : { delete => { key => $_ } }
    } @keys;
    my $send = sub {
        my $sent = eval {
            $self->{client}->txn(compare => \@compare, success => \@success, callback => sub {
                my ($resp, $err) = @_;
                if ($err) {
                    # It may have been applied: running the function again
                    # could apply its writes twice. The caller decides.
                    return $self->_finish(undef, $self->_error($err->{code}, $err->{status},
                        "the commit failed and may or may not have been applied: $err->{message}",
                        outcome => 'unknown', cause => $err));
                }
                if ($resp->{succeeded}) {
                    return $self->_finish({
                        revision  => $resp->{header}{revision},
                        header    => $resp->{header},
                        responses => $resp->{responses},
                        result    => $result,
                    });
                }
                $self->{conflicts}++;
                if ($self->{attempts} >= $self->{max}) {
                    return $self->_finish(undef, $self->_error(10, 'ABORTED',
                        "gave up after $self->{conflicts} conflicts in $self->{attempts} attempts",
                        retryable => 1));
                }
                my @again = @{ $self->{order} };
                $self->_later($self->_delay, sub { $self->_attempt(\@again) });
            });
            1;
        };
        $self->_cannot_send('the commit could not be sent: ') unless $sent;
    };
    return $send->() unless $_BEFORE_COMMIT;
    $_BEFORE_COMMIT->($self->{attempts}, $send);
}

# ---- helpers ----------------------------------------------------------------

sub _where_not { EV::Etcd::Util::unplaced($_[0], __FILE__) }

# Full jitter: a random wait up to base * 2^(failures so far - 1), capped.
sub _delay {
    my ($self) = @_;
    my $n = $self->{conflicts} + $self->{read_errors};
    $n = 30 if $n > 30;
    my $cap = $self->{backoff} * 2**($n > 0 ? $n - 1 : 0);
    $cap = $self->{max_backoff} if $cap > $self->{max_backoff};
    return rand $cap;
}

# The client croaked instead of sending. Closed meanwhile: a closed client
# answers nothing more, and neither does the call. Otherwise (after a
# fork, say) the call ends with the croak's message.
sub _cannot_send {
    my ($self, $what) = @_;
    my $why = _where_not($@);
    return delete @$self{qw(cb fn reads order)} if $why =~ /this client was closed/;
    $self->_finish(undef, $self->_error(13, 'INTERNAL', $what . $why));
}

sub _later {
    my ($self, $delay, $code) = @_;
    EV::once(undef, 0, $delay, $code);
}

sub _error {
    my ($self, $code, $status, $message, %more) = @_;
    return {
        code      => $code,
        status    => $status,
        message   => "stm: $message",
        source    => 'stm',
        retryable => 0,
        outcome   => 'not_committed',
        attempts  => $self->{attempts},
        conflicts => $self->{conflicts},
        %more,
    };
}

# The end of the call: the user's callback, once. (An exception from it
# goes where it would from any client callback: to $EV::DIED.)
sub _finish {
    my ($self, $resp, $err) = @_;
    return if $self->{finished}++;
    my $cb = delete $self->{cb};
    if ($resp) {
        $resp->{attempts}  = $self->{attempts};
        $resp->{conflicts} = $self->{conflicts};
    }
    delete @$self{qw(fn reads order)};
    $cb->($resp, $err);
}

# ---- what the function sees -------------------------------------------------

package EV::Etcd::STM::Tx;
our $VERSION = '0.01';

sub _live {
    my ($self, $what) = @_;
    Carp::croak("stm: $what: called on something that is not a transaction")
        unless Scalar::Util::blessed($self) && $self->isa(__PACKAGE__);
    Carp::croak("stm: $what: the transaction is over (its function has returned)") if $self->{over};
}

sub get {
    my ($self, $key) = @_;
    $self->_live('get');
    Carp::croak('stm: get takes one key') unless @_ == 2;
    $key = EV::Etcd::STM::_key($key, 'key');
    return $self->{writes}{$key} if exists $self->{writes}{$key};    # its own write
    my $reads = $self->{run}{reads};
    if (exists $reads->{$key}) {
        my $kv = $reads->{$key};
        return $kv ? $kv->{value} : undef;
    }
    push @{ $self->{need} }, $key;
    die bless { key => $key }, 'EV::Etcd::STM::NeedRead';
}

sub put {
    my ($self, $key, $value) = @_;
    $self->_live('put');
    Carp::croak('stm: put takes a key and a value') unless @_ == 3;
    $key = EV::Etcd::STM::_key($key, 'key');
    Carp::croak('stm: put: value must be defined') unless defined $value;
    Carp::croak('stm: put: value must be a string, not ' . EV::Etcd::Util::show($value))
        unless EV::Etcd::Util::is_string($value);
    push @{ $self->{worder} }, $key unless exists $self->{writes}{$key};
    $self->{writes}{$key} = EV::Etcd::Util::bytes($value);
    return;
}

sub delete {
    my ($self, $key) = @_;
    $self->_live('delete');
    Carp::croak('stm: delete takes one key') unless @_ == 2;
    $key = EV::Etcd::STM::_key($key, 'key');
    push @{ $self->{worder} }, $key unless exists $self->{writes}{$key};
    $self->{writes}{$key} = undef;
    return;
}

sub is_retry {
    my (undef, $err) = @_;
    return Scalar::Util::blessed($err) && $err->isa('EV::Etcd::STM::NeedRead') ? 1 : 0;
}

sub revision { $_[0]->_live('revision'); $_[0]{run}{revision} }

# The exception get throws for a key not read yet in this attempt.
package EV::Etcd::STM::NeedRead;
our $VERSION = '0.01';

use overload '""' => sub { "stm: key '$_[0]{key}' has not been read yet (rethrow this exception)\n" },
             fallback => 1;

1;

__END__

=encoding utf8

=head1 NAME

EV::Etcd::STM - etcd transactions that run again after a conflict

=head1 SYNOPSIS

=for ev-etcd example prints ^moved 30 at revision \d+ after 1 attempt\(s\)$

  use strict;
  use warnings;
  use EV;
  use EV::Etcd;

  my $etcd = EV::Etcd->new(endpoints => ['127.0.0.1:2379']);

  $etcd->put('/acct/alice', 100, sub {
      $etcd->put('/acct/bob', 0, sub {
          # Move 30 from alice to bob, unless alice has less.
          $etcd->stm(sub {
              my ($tx) = @_;
              my $alice = $tx->get('/acct/alice');
              return 0 if $alice < 30;
              $tx->put('/acct/alice', $alice - 30);
              $tx->put('/acct/bob', $tx->get('/acct/bob') + 30);
              return 30;
          }, sub {
              my ($resp, $err) = @_;
              die "transfer: $err->{message}\n" if $err;
              print "moved $resp->{result} at revision $resp->{revision}",
                    " after $resp->{attempts} attempt(s)\n";
          });
      });
  });
  EV::run;

=head1 DESCRIPTION

L<EV::Etcd/stm> runs a function that reads keys and decides what to write,
and commits its writes only if none of the keys it read has changed since:
software transactional memory, as Go's C<concurrency.STM> offers, without
blocking the loop. When another client got there first, the whole function
runs again on fresh values, after a short random pause, up to a limit.
The result is serializable: a commit succeeds only if every key the
function read still has the revision it was read at (or, for a key that
did not exist, still does not exist).

Everything goes through the client's L<EV::Etcd/txn>, so a client made
with a C<namespace> works inside its namespace, and the client's
C<endpoints>, C<timeout>, authentication and C<retry> apply.

=head1 METHODS

=head2 stm

  $etcd->stm(\&function, \%options, sub {
      my ($resp, $err) = @_;
      ...
  });

The options hash may be left out. The function is called with a
transaction object, C<$tx>, and uses it for every read and write:

  sub {
      my ($tx) = @_;
      my $owner = $tx->get('/job/owner');        # undef: no such key
      my $slot  = $tx->get("/slots/$owner");     # a key named by a value
      $tx->put('/job/owner', 'worker-7');
      $tx->delete('/job/pending');
      return 'taken';                            # becomes $resp->{result}
  }

=head3 How it runs

An attempt starts with an empty read set. The function runs; when it asks
for a key the attempt has not read yet, L</get> throws a private
exception, the key is read, and the function runs again from the start.
The first read of an attempt fixes its revision: every later read of the
attempt is made at that revision, so the function sees one snapshot of
the store even when it picks keys from values. When the function returns
normally, its writes are sent in one L<EV::Etcd/txn> that compares every
key it read: C<mod_revision> equal to what was read, or C<create_revision>
0 for a key that was absent. If a compare fails (a I<conflict>), nothing
is written, the call waits a random time (see C<backoff>), and a new
attempt begins by reading all the keys of the last one in one round trip,
at the current revision.

A function that wrote nothing commits nothing: its reads came from one
snapshot, so it is consistent as it is, and the call reports the revision
it read at.

=head3 The rules for the function

=over 4

=item * It may run several times per call: once more for every key it
reads for the first time in an attempt, and once more per attempt. It
must have no side effects (no output, no changes to outer variables that
a second run would repeat) and must decide only from what C<$tx> returns.
Random choices belong outside, before the call.

=item * It must use C<$tx> for every access to etcd. Calls on the client
would see other revisions and would not be part of the commit.

=item * It must not hide the exception L</get> throws for a key not read
yet. In an C<eval>, rethrow it: C<< die $@ if $tx->is_retry($@) >> (the
object is of class C<EV::Etcd::STM::NeedRead>). A function that swallows
it anyway still gets the read and runs again, and what it did without the
value is thrown away; but code that continues with a missing value may do
things it should not.

=item * It runs inside a client callback: it must not wait (no
C<EV::run>, no blocking calls).

=back

Its return value (taken in scalar context) is handed back as
C<< $resp->{result} >>. Keys given to L</put> and L</delete> must be
single keys; one commit holds at most as many compares and writes as the
server allows in a txn (C<--max-txn-ops>, 128 by default); beyond that the
commit fails with C<INVALID_ARGUMENT>.

=head3 Options

=over 4

=item max_attempts => $n

How many attempts the call makes before giving up. Default 30. A positive
integer. Every attempt counts: those that ended in a conflict, and those
started again after a failed read. A call that keeps losing can take a while:
after the first few conflicts each pause is up to C<max_backoff>. On a key
that many clients change all the time, an unlucky call can lose many times
in a row (four processes incrementing one counter needed up to 13 attempts
for one call in the tests): raise it there, or lower it where giving up
early is better than waiting.

=item backoff => $seconds

The pause after the first conflict is a random time from 0 to this;
each further conflict (or failed read) doubles the upper bound, up to
C<max_backoff>. Default 0.01.

=item max_backoff => $seconds

The upper bound of the pause. Default 1.

=item prefetch => \@keys

Keys the first attempt reads in one round trip before the function first
runs, so that it need not run once for each of them to find out.

=back

=head3 Response

  {
      revision  => 1234,      # the commit's revision; a read-only call: the
                              # revision it read at (undef if it read nothing)
      header    => { ... },   # of the commit's txn (read-only: of the read)
      responses => [ ... ],   # the txn's responses, one per write ([] if none)
      result    => ...,       # what the function returned
      attempts  => 2,
      conflicts => 1,
  }

=head3 Errors

The error hash has the fields of every error of the client (see
L<EV::Etcd/The error hash>), with C<source> C<stm> and a message starting
with C<stm:>, and also:

=over 4

=item attempts, conflicts

How many attempts were made, and how many of them ended in a conflict.

=item outcome

C<not_committed> when nothing was written, C<unknown> when the commit's
txn failed and may have been applied all the same.

=item cause

The client's own error, when one caused this one.

=item exception

The exception, when the function died, as it was thrown.

=back

The cases:

=over 4

=item Too many conflicts

C<ABORTED> (code 10), C<retryable> 1, message
C<stm: gave up after N conflicts in M attempts>. Nothing was written:
calling again is safe.

=item A read failed

A failure that may pass (C<retryable> set in the client's error), and a
read whose revision was compacted while the attempt was under way
(C<OUT_OF_RANGE>), start a new attempt: reads change nothing. Once
C<max_attempts> is used up, or for any other failure, the call ends with
the read's status, the message C<stm: reading failed: ...>, and
C<outcome> C<not_committed>.

=item The commit failed

When the txn itself fails (the connection broke, the deadline passed, the
server lost its leader), it may or may not have been applied. The call is
I<not> repeated, as running the function again would apply its changes a
second time if the first commit went through (a transfer made twice). The
error carries the txn's status and C<code>, the message
C<stm: the commit failed and may or may not have been applied: ...>,
C<outcome> C<unknown>, and C<retryable> 0. Find out by reading, or make
the writes tell: a transfer that also writes a log key of its own (or
reads a key it then writes) shows whether it happened. A refusal that the
server gives before applying anything (C<INVALID_ARGUMENT>,
C<PERMISSION_DENIED>) is reported the same way.

=item The function died

C<INTERNAL> (code 13), C<retryable> 0, message
C<stm: the function died: ...>, C<exception> the thrown value. Nothing
was written. The exception does not reach the loop.

=back

An exception from the callback itself goes to C<$EV::DIED>, as for any
callback of the client (see L<EV::Etcd/Exceptions in callbacks>).

=head3 Bad arguments

Arguments are checked before anything happens; a bad one croaks at the
line that called C<stm>:

  callback must be a code reference (stm)
  stm: the function must be a code reference, got 'x'
  stm: options must be a hash reference
  stm: unknown option 'tries'
  stm: max_attempts must be a positive integer, got '0'
  stm: backoff must be a finite number of seconds, 0 or more, got '-1'
  stm: prefetch must be an array reference of keys

Like every call, C<stm> croaks on a client that was closed or that was
made before a C<fork>. The callback runs later, from the loop, never
inside C<stm>; so does the function.

=head1 THE TRANSACTION OBJECT

=head2 get

  my $value = $tx->get($key);

The key's value, or C<undef> when it does not exist: the key's own write
in this run when the function made one (a L</delete> reads as C<undef>),
else the value read in this attempt. A key not read yet in this attempt
throws an C<EV::Etcd::STM::NeedRead> object; see the rules above.

=head2 put

  $tx->put($key, $value);

Records a write, made at the commit. Writing a key again replaces the
earlier write. Keys and values are strings (bytes; see
L<EV::Etcd/ENCODING>).

=head2 delete

  $tx->delete($key);

Records the deletion of one key, made at the commit.

=head2 is_retry

  my $v = eval { $tx->get($key) } // do { die $@ if $tx->is_retry($@); 'default' };

True when the exception is the one L</get> throws for a key not read
yet, which must be rethrown. Works as a class method too.

=head2 revision

The revision this attempt reads at; C<undef> before its first read.

=head1 SEE ALSO

L<EV::Etcd>, its L<TRANSACTIONS|EV::Etcd/TRANSACTIONS> section for
L<EV::Etcd/txn>, and F<eg/stm-transfer.pl> in the distribution.

=head1 LICENSE

EV::Etcd::STM is part of EV::Etcd and is free software. You may
distribute it and/or modify it under the same terms as Perl 5 itself,
that is under either the GNU General Public License or the Artistic
License.

=cut
