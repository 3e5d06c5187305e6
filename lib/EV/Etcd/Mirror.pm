package EV::Etcd::Mirror;

# A local copy of a prefix kept equal to etcd's: read page by page at one
# revision, then followed by a watch from the next revision on. Made by
# EV::Etcd::mirror. The POD is at the end of this file.

use strict;
use warnings;
use Carp ();
use EV ();
use EV::Etcd::Util ();

our $VERSION = '0.01';

# Croaks point at the code that called mirror, not at EV::Etcd's one-line
# wrapper.
our @CARP_NOT = ('EV::Etcd');

our $DEFAULT_PAGE_SIZE   = 1000;
our $DEFAULT_MAX_RETRIES = 3;

# Waits before retrying a page whose read failed with a retryable error
# (the same schedule as the client's stream reconnects).
our @BACKOFF = (1, 2, 4, 8, 16);

my %OPTION = map { $_ => 1 } qw(page_size max_retries);

# The view holds one string per key: the key's mod_revision as a BER
# integer ('w', any size on any perl), then the value. One scalar per key
# costs about 16 bytes more than the bare value; an array of two costs
# about 150 (bench/mirror.pl measures it).
sub _value { defined $_[0] ? (unpack 'w a*', $_[0])[1] : undef }

# --- helpers ---------------------------------------------------------------

# User callbacks run through EV::Etcd::Util::call_user: an exception goes
# to $EV::DIED and does not stop the mirror's own work (the rest of a
# watch message still has to be applied).

# An error of the mirror, shaped like the client's: the status and the
# retryable flag of the failure behind it, the message saying what failed.
sub _error {
    my ($what, $err) = @_;
    return { %$err, source => 'mirror', message => "mirror: $what failed: $err->{message}" };
}

# A croak of the client (closed, or used after fork) turned into an error.
sub _croak_error {
    my ($what, $msg) = @_;
    $msg = EV::Etcd::Util::unplaced($msg, __FILE__);
    $msg =~ s/\s+\z//;
    return { code => 9, status => 'FAILED_PRECONDITION', source => 'mirror', retryable => 0,
             message => "mirror: $what failed: $msg" };
}

sub _check_self {
    my ($self, $what) = @_;
    Carp::croak("$what: called on something that is not an EV::Etcd::Mirror")
        unless EV::Etcd::Util::holds_client($self, __PACKAGE__);
}

# --- construction ----------------------------------------------------------

sub new {
    my ($class, $client, $prefix, @rest) = @_;
    Carp::croak('mirror: called on something that is not a live EV::Etcd client')
        unless EV::Etcd::Util::is_client($client);
    eval { $client->_assert_usable; 1 } or EV::Etcd::Util::rethrow($@);
    Carp::croak('mirror: takes a prefix, an optional options hash and a callback')
        if @rest > 2;
    my $cb = EV::Etcd::Util::need_cb($rest[-1], 'mirror');
    EV::Etcd::Util::string_arg($prefix, 'mirror: prefix');
    my %opt = %{ EV::Etcd::Util::opts(@rest == 2 ? $rest[0] : undef, 'mirror') };
    for my $name (sort CORE::keys %opt) {
        Carp::croak("mirror: unknown option '$name'") unless $OPTION{$name};
    }
    my $page_size = $opt{page_size} // $DEFAULT_PAGE_SIZE;
    Carp::croak('mirror: page_size must be a positive integer, got ' . EV::Etcd::Util::show($page_size))
        unless EV::Etcd::Util::is_positive_int($page_size);
    my $retries = $opt{max_retries} // $DEFAULT_MAX_RETRIES;
    Carp::croak('mirror: max_retries must be an integer, got ' . EV::Etcd::Util::show($retries))
        unless EV::Etcd::Util::is_string($retries) && "$retries" =~ /\A\s*[+-]?[0-9]{1,9}\s*\z/;

    my $self = bless {
        client      => $client,
        prefix      => EV::Etcd::Util::bytes($prefix),
        page_size   => 0 + "$page_size",
        max_retries => 0 + "$retries",
        cb          => $cb,
        view        => {},      # key => pack('w', mod_revision) . value
        revision    => undef,   # the revision the view shows (once ready)
        ready       => 0,
        state       => 'loading',   # loading live resyncing failed cancelled
        gen         => 0,       # bumped by every restart and by cancel: late answers are ignored
        watch       => undef,
        read        => undef,   # the paged read under way
        timer       => undef,   # the wait before a page is asked for again
    }, $class;
    # The first page goes out from the loop, so that a croak of the client
    # in it becomes an error callback like any later failure.
    my $gen = $self->{gen};
    EV::Etcd::Util::later(sub { $self->_start_read if $self->{gen} == $gen });
    return $self;
}

# --- reading the prefix, page by page ----------------------------------------

# A fresh read: the first load, or a resync after the watch's history was
# compacted away. A resync leaves the view alone until the read is
# complete, noting only which keys it saw and which of them changed.
sub _start_read {
    my ($self) = @_;
    my $gen = ++$self->{gen};
    my $it = eval {
        $self->{client}->range_iterator($self->{prefix}, { prefix => 1, page_size => $self->{page_size} });
    } or return $self->_fail(_croak_error('range_iterator', $@));
    %{ $self->{view} } = () unless $self->{ready};
    $self->{read} = { it => $it, gen => $gen, attempt => 0, seen => {}, puts => [] };
    $self->_next_page;
    return;
}

sub _next_page {
    my ($self) = @_;
    my $read = $self->{read};
    my $gen  = $read->{gen};
    my $ok = eval {
        $read->{it}->next(sub {
            my ($page, $err) = @_;
            $self->_page($read, $page, $err) if $self->{gen} == $gen;
        });
        1;
    };
    $self->_fail(_croak_error('get', $@)) unless $ok;
    return;
}

sub _page {
    my ($self, $read, $page, $err) = @_;
    if ($err) {
        # The snapshot was compacted in the middle of the walk: only a new
        # walk, at a newer revision, can help.
        return $self->_start_read if $err->{status} eq 'OUT_OF_RANGE';
        my $n = $read->{attempt}++;
        return $self->_fail(_error('get', $err))
            unless $err->{retryable} && ($self->{max_retries} < 0 || $n < $self->{max_retries});
        my $gen = $read->{gen};
        $self->{timer} = EV::timer($BACKOFF[ $n < $#BACKOFF ? $n : $#BACKOFF ], 0, sub {
            undef $self->{timer};
            $self->_next_page if $self->{gen} == $gen;
        });
        return;
    }
    $read->{attempt} = 0;
    my $view = $self->{view};
    if (!$self->{ready}) {
        $view->{ $_->{key} } = pack('w', $_->{mod_revision}) . $_->{value} for @{ $page->{kvs} };
    } else {
        my ($seen, $puts) = @$read{qw(seen puts)};
        for my $kv (@{ $page->{kvs} }) {
            my $key = $kv->{key};
            $seen->{$key} = undef;
            my $old = $view->{$key};
            # a mod_revision is never reused: equal means unchanged
            push @$puts, $kv if !defined $old || (unpack 'w', $old) != $kv->{mod_revision};
        }
    }
    return $self->_next_page if $page->{more};

    my $rev = $read->{it}->revision;
    delete $self->{read};
    return $self->_loaded($rev) unless $self->{ready};
    $self->_resynced($rev, $read);
}

sub _loaded {
    my ($self, $rev) = @_;
    $self->{revision} = $rev;
    $self->{ready} = 1;
    $self->{state} = 'live';
    $self->_watch or return;
    EV::Etcd::Util::call_user($self->{cb}, { ready => 1, revision => $rev, count => scalar CORE::keys %{ $self->{view} } }, undef);
    return;
}

# The difference between the view and the state just read, applied as
# one batch: PUT for new or rewritten keys, DELETE for keys that are gone.
sub _resynced {
    my ($self, $rev, $read) = @_;
    my ($view, $seen) = ($self->{view}, $read->{seen});
    my @changes;
    for my $kv (@{ $read->{puts} }) {
        my $key = $kv->{key};
        push @changes, { type => 'PUT', key => $key, value => $kv->{value},
                         prev_value => _value($view->{$key}), revision => $kv->{mod_revision} };
        $view->{$key} = pack('w', $kv->{mod_revision}) . $kv->{value};
    }
    for my $key (grep { !exists $seen->{$_} } CORE::keys %$view) {
        push @changes, { type => 'DELETE', key => $key, value => undef,
                         prev_value => _value(delete $view->{$key}), revision => $rev };
    }
    @changes = sort { $a->{key} cmp $b->{key} } @changes;
    $self->{revision} = $rev;
    $self->{state} = 'live';
    $self->_watch or return;
    EV::Etcd::Util::call_user($self->{cb}, { changes => \@changes, revision => $rev, resync => 1 }, undef);
    return;
}

# --- following the changes -----------------------------------------------------

sub _watch {
    my ($self) = @_;
    my $gen = $self->{gen};
    $self->{watch} = eval {
        $self->{client}->watch($self->{prefix}, { prefix => 1, start_revision => $self->{revision} + 1 },
                               sub { $self->_watched($gen, @_) if $self->{gen} == $gen });
    };
    return 1 if $self->{watch};
    $self->_fail(_croak_error('watch', $@));
    return 0;
}

sub _watched {
    my ($self, $gen, $msg, $err) = @_;
    if ($err) {
        delete $self->{watch};    # a watch that ended with an error is gone
        return $self->_fail(_error('watch', $err)) unless $err->{status} eq 'OUT_OF_RANGE';
        # The history after the view's revision has been compacted away:
        # read the prefix again and hand over the difference.
        $self->{state} = 'resyncing';
        return $self->_start_read;
    }
    # The created message and progress notifications carry no events. The
    # header's revision is not used: catching up, etcd may send events up
    # to some revision with a header naming a later one.
    my $events = $msg->{events};
    my $view   = $self->{view};
    my $i = 0;
    while ($i < @$events) {
        # Events of one revision always come in one message (the client
        # puts fragments back together): each revision is one batch.
        my $rev = $events->[$i]{kv}{mod_revision};
        my @changes;
        while ($i < @$events && $events->[$i]{kv}{mod_revision} == $rev) {
            my $ev  = $events->[ $i++ ];
            my $key = $ev->{kv}{key};
            if ($ev->{type} eq 'PUT') {
                push @changes, { type => 'PUT', key => $key, value => $ev->{kv}{value},
                                 prev_value => _value($view->{$key}), revision => $rev };
                $view->{$key} = pack('w', $rev) . $ev->{kv}{value};
            } else {
                push @changes, { type => 'DELETE', key => $key, value => undef,
                                 prev_value => _value(delete $view->{$key}), revision => $rev };
            }
        }
        $self->{revision} = $rev;
        EV::Etcd::Util::call_user($self->{cb}, { changes => \@changes, revision => $rev }, undef);
        return unless $self->{gen} == $gen;    # cancelled from the callback
    }
    return;
}

# --- the end ---------------------------------------------------------------------

# Stops all work; the view stays as it was.
sub _halt {
    my ($self) = @_;
    $self->{gen}++;
    undef $self->{timer};
    delete $self->{read};
    my $w = delete $self->{watch};
    eval { $w->cancel(sub { }) } if $w;
    return;
}

sub _fail {
    my ($self, $err) = @_;
    my $cb = delete $self->{cb};
    $self->_halt;
    $self->{state} = 'failed';
    # Called from inside a method of ours, a failure is reported from the
    # loop like every other callback.
    EV::Etcd::Util::later(sub { EV::Etcd::Util::call_user($cb, undef, $err) }) if $cb;
    return;
}

sub cancel {
    my ($self, $cb) = @_;
    _check_self($self, 'cancel');
    EV::Etcd::Util::need_cb($cb, 'cancel');
    if ($self->{state} eq 'cancelled') {
        $cb->({}, undef);    # as a stream's second cancel: at once
        return;
    }
    $self->_halt;
    delete $self->{cb};    # the user's callback may refer to the mirror
    $self->{state}    = 'cancelled';
    $self->{view}     = {};
    $self->{revision} = undef;
    $self->{ready}    = 0;
    EV::Etcd::Util::later($cb, {}, undef);
    return;
}

# --- the view ----------------------------------------------------------------------

sub get {
    my ($self, $key) = @_;
    _check_self($self, 'get');
    return _value($self->{view}{ EV::Etcd::Util::string_arg($key, 'get: key') });
}

sub mod_revision {
    my ($self, $key) = @_;
    _check_self($self, 'mod_revision');
    my $s = $self->{view}{ EV::Etcd::Util::string_arg($key, 'mod_revision: key') };
    return defined $s ? scalar unpack('w', $s) : undef;
}

sub keys {
    my ($self) = @_;
    _check_self($self, 'keys');
    my @k = sort CORE::keys %{ $self->{view} };
    return @k;
}

sub all {
    my ($self) = @_;
    _check_self($self, 'all');
    my $view = $self->{view};
    return { map { $_ => (unpack 'w a*', $view->{$_})[1] } CORE::keys %$view };
}

sub count    { _check_self($_[0], 'count');    scalar CORE::keys %{ $_[0]{view} } }
sub revision { _check_self($_[0], 'revision'); $_[0]{revision} }
sub ready    { _check_self($_[0], 'ready');    $_[0]{ready} }
sub state    { _check_self($_[0], 'state');    $_[0]{state} }
sub prefix   { _check_self($_[0], 'prefix');   $_[0]{prefix} }

1;

__END__

=encoding utf8

=head1 NAME

EV::Etcd::Mirror - a local copy of an etcd prefix, kept up to date

=head1 SYNOPSIS

=for ev-etcd example client prints ^ready: \d+ flags at revision \d+\nPUT /flags/dark-mode = on \(was none\)$

  my $m;
  $m = $etcd->mirror('/flags/', { page_size => 500 }, sub {
      my ($msg, $err) = @_;
      die "mirror failed: $err->{message}\n" if $err;
      if ($msg->{ready}) {
          printf "ready: %d flags at revision %d\n", $msg->{count}, $msg->{revision};
          $etcd->put('/flags/dark-mode', 'on', sub { });
          return;
      }
      for my $c (@{ $msg->{changes} }) {
          printf "%s %s = %s (was %s)\n", $c->{type}, $c->{key},
              $c->{value} // 'none', $c->{prev_value} // 'none';
      }
      # the view already shows the change
      $m->cancel(sub { }) if ($m->get('/flags/dark-mode') // '') eq 'on';
  });
  EV::run;

=head1 DESCRIPTION

A mirror keeps a copy of every key under a prefix in the memory of the
process, and keeps it equal to what etcd holds: configuration, feature
flags, the members of a service. It reads the prefix with a
L<range iterator|EV::Etcd/range_iterator>, one page at a time and every
page at the same revision, then follows it with a
L<watch|EV::Etcd/watch> that starts at the revision right after that
read. Each change is applied to the copy, the I<view>, and handed to
your callback.

At every moment the view is exactly what the store held under the
prefix at the revision L</revision> reports: nothing missed, nothing
applied twice. The watch survives reconnects, a change of endpoint, the
loss of a leader and a restarted etcd (it resumes after the last
revision it delivered, see L<EV::Etcd/Reconnection>), so the view
survives them too. When the history the watch needs has been compacted
away, the mirror reads the prefix again and hands you the difference
(L</AFTER A COMPACTION>).

Mirrors are made by the C<mirror> method of an L<EV::Etcd> client:

  my $m = $etcd->mirror($prefix, $cb);
  my $m = $etcd->mirror($prefix, \%opt, $cb);

On a client made with a C<namespace> (L<EV::Etcd::Namespace>) the prefix
is inside the namespace, and the keys of the view and of the changes are
too: they do not start with the namespace.

C<mirror> sends nothing itself; the first page is asked for from the
loop.

=head1 OPTIONS

=over 4

=item page_size => $n

How many keys one page of a read holds at most, as for
L<range_iterator|EV::Etcd/range_iterator>: a positive integer, default
1000. A prefix of any size is never read in one reply.

=item max_retries => $n

How many times a page whose read failed for a transient reason
(C<retryable> set: the server is unreachable, a deadline ran out) is
asked for again, after waiting 1, 2, 4, 8 and then 16 seconds. Default
3; 0 gives up at the first failure, a negative number never gives up.
This concerns the reads only: the watch reconnects by the client's own
C<max_retries> (L<EV::Etcd/new>).

=back

Any other name croaks.

=head1 MESSAGES

The callback is called with C<($msg, $err)>, exactly one of them
defined, always from the loop. First comes, once:

  { ready => 1, revision => $rev, count => $n }

when the whole prefix has been read: the view holds C<$n> keys and shows
the store at revision C<$rev>. From then on, one message per revision
that changed something under the prefix, in revision order:

  {
      revision => $rev,
      changes  => [
          { type => 'PUT', key => ..., value => ..., prev_value => ..., revision => $rev },
          { type => 'DELETE', key => ..., value => undef, prev_value => ..., revision => $rev },
          ...
      ],
  }

A transaction that wrote several keys is one message with several
changes. C<prev_value> is what the key held before the change, undef
when it did not exist. C<value> is undef for a C<DELETE>. By the time
the callback runs, the view has the changes applied and L</revision>
is C<$rev>.

After a compaction comes one message with C<< resync => 1 >> (see
below). If the mirror cannot go on, the callback gets C<(undef, $err)>
once and nothing after that (L</ERRORS>).

An exception thrown by the callback goes to C<$EV::DIED> like one from
any other callback, and does not stop the mirror: the other revisions of
the same watch message are still applied and delivered.

=head1 AFTER A COMPACTION

If the watch cannot resume because the revisions it needs were
compacted (its connection was down while the server compacted past the
view's revision, say), the changes in between cannot be had. The mirror
then reads the prefix again, in pages as the first time, compares what
it finds with its view, and delivers the difference as one message:

  {
      resync   => 1,
      revision => $rev,         # the revision of the new read
      changes  => [ ... ],      # sorted by key
  }

with a C<PUT> for every key that is new or was written since (even if
written with the same value: its mod_revision changed), holding the
key's C<value>, its C<prev_value> from the view (undef if new) and its
own mod_revision as C<revision>; and a C<DELETE> for every key that is
gone, with C<prev_value> and the read's revision as C<revision>. Keys
that did not change are not in it, nor are keys that came and went
while the history was lost. The list may be empty. Then the mirror
watches on from C<$rev + 1>. Until the new read is complete, the view
stays as it was, at its old revision, and L</state> is C<resyncing>.

Should the snapshot of a read (the first one or a resync) itself be
compacted in the middle of the walk, the read starts over at a newer
revision.

=head1 ERRORS

The mirror ends, calling back with C<(undef, $err)>, when

=over 4

=item *

the watch ends with an error other than a compaction, such as
C<UNAVAILABLE> once the client's reconnect attempts (C<max_retries> of
L<EV::Etcd/new>) have run out, or C<PERMISSION_DENIED>;

=item *

a page cannot be read: a failure that is not transient, or a transient
one that has been retried C<max_retries> times;

=item *

the client refuses the call (closed, or used in the child after a
C<fork>).

=back

The error hash has the client's keys (L<EV::Etcd/The error hash>):
C<code>, C<status> and C<retryable> of the failure behind it, C<source>
C<mirror>, and a C<message> saying what failed, for instance
C<mirror: watch failed: ...> or C<mirror: get failed: ...>, followed by
the original message. A refused call has status C<FAILED_PRECONDITION>.
After an error, L</state> is C<failed>; the view stays readable and
still shows the store at L</revision>, but it no longer changes.

=head1 METHODS

=head2 get

  my $value = $m->get($key);

The value the view holds for C<$key>, or undef if there is none.

=head2 mod_revision

  my $rev = $m->mod_revision($key);

The revision at which C<$key> was last written, as C<get> on the client
would report it in C<mod_revision>; undef if the key is not in the
view.

=head2 keys

  my @keys = $m->keys;

All keys of the view, sorted.

=head2 all

  my $hash = $m->all;

A new hash of every key and its value. It is a copy: it does not follow
later changes.

=head2 count

  my $n = $m->count;

How many keys the view holds.

=head2 revision

  my $rev = $m->revision;

The revision the view shows; undef before the first read is complete
and after L</cancel>. It moves with the changes that concern the
prefix: writes elsewhere in the store do not advance it, although the
view stays equal to the store at those later revisions too.

=head2 ready

  if ($m->ready) { ... }

True once the first read is complete (from the C<ready> message on),
until L</cancel>. Before that, the view is being filled and is not a
consistent picture of anything.

=head2 state

  my $state = $m->state;

C<loading> (the first read), C<live> (watching), C<resyncing> (reading
again after a compaction), C<failed> or C<cancelled>.

=head2 prefix

  my $prefix = $m->prefix;

The prefix given to C<mirror> (as bytes).

=head2 cancel

  $m->cancel(sub {
      my ($resp, $err) = @_;   # ({}, undef)
      ...
  });

Stops the mirror, with the rules of L<EV::Etcd/EV::Etcd::Watch-E<gt>cancel>:
from the moment C<cancel> returns nothing more reaches the mirror's
callback; the watch is cancelled, a read under way is abandoned, the
view is emptied and its memory freed, and the mirror lets go of your
callback. The cancel's own callback gets C<({}, undef)> on the next turn
of the loop; cancelling again answers at once, inside the call.
Cancelling a mirror that ended with an error is fine too.

=head1 LIFETIME

Like a watch handle, the mirror keeps running when you drop it: the
client holds it through its watch and its reads, and it keeps the loop
running, until you cancel it or it ends with an error. Keep the handle
to read the view and to cancel. A callback that refers to the handle
makes a cycle that L</cancel> breaks.

=head1 MEMORY

The view keeps one Perl scalar per key: the value with the key's
mod_revision packed in front of it. With 100-byte values that is about
300 bytes per key in all on a 64-bit perl, hash entry included (see
F<bench/mirror.pl>). A resync needs, for as long as its read lasts, a
little over 100 bytes more per key (the set of keys seen) plus the
changed records.

=head1 BAD ARGUMENTS

These croak at the line that called C<mirror>, before anything is sent:

  callback must be a code reference (mirror)
  mirror: prefix must be defined
  mirror: prefix must be a string, not ARRAY reference
  mirror: options must be a hash reference
  mirror: unknown option 'page_sise'
  mirror: page_size must be a positive integer, got '0'
  mirror: max_retries must be an integer, got '1.5'
  mirror: takes a prefix, an optional options hash and a callback

and so does C<mirror> on a client that was closed or inherited across
C<fork>. The methods croak when called on something that is not a
mirror (C<get: called on something that is not an EV::Etcd::Mirror>),
C<get> and C<mod_revision> for a key that is undef or a reference, and
C<cancel> without a callback.

=head1 SEE ALSO

L<EV::Etcd/range_iterator> and L<EV::Etcd/watch>, which a mirror is made
of; F<eg/mirror.pl> in the distribution, a live view of a configuration
prefix; F<bench/mirror.pl>, its costs.

=head1 LICENSE

EV::Etcd::Mirror is part of EV::Etcd and is free software. You may
distribute it and/or modify it under the same terms as Perl 5 itself,
that is under either the GNU General Public License or the Artistic
License.

=cut
