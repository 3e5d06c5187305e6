package EV::Etcd;

use strict;
use warnings;
use Carp ();
use Scalar::Util ();
use EV ();
use EV::Etcd::Util ();

our $VERSION = '0.01';

require XSLoader;
XSLoader::load('EV::Etcd', $VERSION);

# new and txn are Perl subs in front of XS functions of their own (_new,
# _txn), reached by goto so that the XS side's croaks name our caller's
# line. The XS functions name the public method in their messages.

# new knows one option that the XS constructor does not: namespace, which
# makes the client an EV::Etcd::Namespace (lib/EV/Etcd/Namespace.pm, loaded
# only then). Everything else, a list that is not pairs included, goes to
# the XS constructor as it is, and a client without a namespace is a plain
# EV::Etcd whose methods are the XS functions themselves.
sub new {
    if (@_ % 2) {
        for (my $i = 1; $i < @_; $i += 2) {
            next unless defined $_[$i] && $_[$i] eq 'namespace';
            require EV::Etcd::Namespace;
            goto &EV::Etcd::Namespace::new;
        }
    }
    goto &_new;
}

# txn accepts named arguments as well as the four positional ones. Named
# calls start with one of the argument names; anything else goes straight to
# the XS function, which checks the callback and the lists itself.
my %TXN_ARG = map { $_ => 1 } qw(compare success failure callback);

sub txn {
    # (_txn_is_named written out: txn may be called in hot loops)
    goto &_txn unless @_ > 1 && defined $_[1] && !ref $_[1] && $TXN_ARG{ $_[1] };
    &_txn_named;
    goto &_txn;
}

# Whether txn's arguments (those after the invocant) are given by name.
sub _txn_is_named { @_ > 1 && defined $_[1] && !ref $_[1] && $TXN_ARG{ $_[1] } }

# The one parser of txn's named arguments (EV::Etcd::Namespace's txn uses
# it too). Called as &_txn_named, with the caller's @_, which it turns into
# the positional ($self, $compare, $success, $failure, $cb); a bare
# callback at the end is allowed.
sub _txn_named {
    my $self = shift;
    my $cb;
    $cb = pop if @_ % 2 && ref $_[-1] eq 'CODE';
    Carp::croak('callback must be a code reference (txn)') if @_ % 2;
    my %arg = @_;
    my $named_cb = delete $arg{callback};
    $cb //= $named_cb;
    Carp::croak('callback must be a code reference (txn)') unless ref $cb eq 'CODE';
    for my $list (qw(compare success failure)) {
        Carp::croak("txn '$list' must be an array reference")
            if defined $arg{$list} && ref $arg{$list} ne 'ARRAY';
    }
    my @unknown = grep { !$TXN_ARG{$_} } sort keys %arg;
    Carp::croak("txn: unknown argument '$unknown[0]'") if @unknown;
    @_ = ($self, $arg{compare} // [], $arg{success} // [], $arg{failure} // [], $cb);
    return;
}

# The namespace of a client made with one (EV::Etcd::Namespace), else undef.
sub namespace { undef }

# Paging through a range at one revision (lib/EV/Etcd/RangeIterator.pm).
sub range_iterator { require EV::Etcd::RangeIterator; EV::Etcd::RangeIterator->new(@_) }

# A live local copy of a prefix (lib/EV/Etcd/Mirror.pm).
sub mirror { require EV::Etcd::Mirror; EV::Etcd::Mirror->new(@_) }

# Transactions that run again after a conflict (lib/EV/Etcd/STM.pm).
sub stm { require EV::Etcd::STM; EV::Etcd::STM::_run(@_) }

# Handles of the three streams; cancel is the same for all of them. Each
# package states its version as a literal, which PAUSE and metacpan read
# without running the code (xt/version.t checks they agree). Past these
# packages, a bare $VERSION would name the last one's: write
# $EV::Etcd::VERSION in EV::Etcd's code below.
package EV::Etcd::Stream;
our $VERSION = '0.01';

sub cancel {
    my ($self, $cb) = @_;
    # _is_live: made by this module in this thread, not forged or copied
    Carp::croak('cancel: called on something that is not a live stream handle')
        unless _is_live($self) && EV::Etcd::Util::holds_client($self)
        && $self->{client}->isa('EV::Etcd');
    $self->{client}->_assert_usable;    # croaks in a child after fork()
    EV::Etcd::Util::need_cb($cb, 'cancel');
    if ($self->{cancelled}) {
        $cb->({}, undef);    # already cancelled: answer at once
        return;
    }
    # Marked first (a closed client answers inside), unmarked if refused.
    $self->{cancelled} = 1;
    return if eval { $self->{client}->_cancel_stream($self->{kind}, $self->{id}, $cb); 1 };
    $self->{cancelled} = 0;
    EV::Etcd::Util::rethrow($@);
}

package EV::Etcd::Watch;
our $VERSION = '0.01';
our @ISA = ('EV::Etcd::Stream');

sub progress {
    my ($self) = @_;
    Carp::croak('progress: called on something that is not a live watch handle')
        unless EV::Etcd::Stream::_is_live($self) && EV::Etcd::Util::holds_client($self, 'EV::Etcd::Watch')
        && $self->{client}->isa('EV::Etcd');
    Carp::croak('progress: the watch has been cancelled') if $self->{cancelled};
    return if eval { $self->{client}->_watch_progress($self->{id}); 1 };
    EV::Etcd::Util::rethrow($@);    # fork or closed client
}

package EV::Etcd::Keepalive;
our $VERSION = '0.01';
our @ISA = ('EV::Etcd::Stream');

package EV::Etcd::Observe;
our $VERSION = '0.01';
our @ISA = ('EV::Etcd::Stream');

# The stream behind snapshot; cancelled only by snapshot itself.
package EV::Etcd::Snapshot;
our $VERSION = '0.01';
our @ISA = ('EV::Etcd::Stream');

package EV::Etcd;

# snapshot($fh | $chunk_cb, $cb): the pieces the XS stream delivers are
# written (or handed to the chunk callback) as they come; a failed write
# ends the stream.
sub snapshot {
    my ($self, $target, $cb) = @_;
    Carp::croak('snapshot: called on something that is not a live EV::Etcd client')
        unless EV::Etcd::Util::is_client($self);
    EV::Etcd::Util::need_cb($cb, 'snapshot');
    my $write;
    if (ref $target eq 'CODE') {
        $write = $target;
    } elsif (defined $target && (ref $target || ref \$target eq 'GLOB')) {
        my $fh = Scalar::Util::openhandle($target)
            or Carp::croak('snapshot: the file handle is not open');
        binmode $fh;
        $write = sub { print {$fh} $_[0] or die "$!\n" };
    } else {
        Carp::croak('snapshot: the target must be a file handle or a code reference');
    }
    my ($failed, $stream);
    my $on_piece = sub {
        my ($msg, $err) = @_;
        return if $failed;
        return $cb->(undef, $err) if $err;
        return $cb->($msg, undef) unless exists $msg->{blob};
        return if eval { $write->($msg->{blob}); 1 };
        (my $why = $@) =~ s/\s+\z//;
        $failed = 1;
        $stream->cancel(sub {});
        undef $stream;
        $cb->(undef, { code => 13, status => 'INTERNAL', source => 'snapshot', retryable => 0,
                       message => "snapshot: writing the snapshot failed: $why" });
    };
    # (the XS side's croaks, fork or closed client, belong at our caller)
    $stream = eval { $self->_snapshot($on_piece) } or EV::Etcd::Util::rethrow($@);
    return;
}

1;
__END__

=encoding utf8

=head1 NAME

EV::Etcd - asynchronous etcd v3 client for the EV event loop

=head1 SYNOPSIS

=for ev-etcd example prints ^/config/color = blue$

  use strict;
  use warnings;
  use EV;
  use EV::Etcd;

  my $etcd = EV::Etcd->new(endpoints => ['127.0.0.1:2379']);

  # Store a value, then read it back once the write is acknowledged.
  $etcd->put('/config/color', 'blue', sub {
      my ($resp, $err) = @_;
      die "put failed: $err->{message}\n" if $err;
      printf "stored at revision %d\n", $resp->{header}{revision};

      $etcd->get('/config/', { prefix => 1 }, sub {
          my ($resp, $err) = @_;
          die "get failed: $err->{message}\n" if $err;
          print "$_->{key} = $_->{value}\n" for @{ $resp->{kvs} };
      });
  });

  # Returns by itself once both calls have completed.
  EV::run;

=head1 DESCRIPTION

EV::Etcd talks to an etcd v3 cluster over its native gRPC API and reports
every result through a callback on the L<EV> loop. It covers the key-value
store, transactions, watches, leases, locks, elections, authentication,
maintenance and cluster membership.

Each client object owns one background thread. That thread runs a tokio
runtime and a tonic gRPC channel written in Rust; the Perl side is a thin XS
layer. A method call checks its arguments, encodes the request and hands it
over without waiting, so the call returns at once. When an answer (or a
stream message) arrives, a completion is pushed onto a queue and the EV loop
is woken through a file descriptor that an EV I/O watcher listens on. The
watcher drains every ready completion in one go, turns each into ordinary
Perl hashes and arrays, and calls the matching callback. All callbacks
therefore run on the Perl thread, from inside the EV loop, and no Perl data
is ever touched by Rust code. Each delivery is an event of the loop, so
C<EV::run(EV::RUN_ONCE)> returns once a callback has run (the idiom behind
AnyEvent's condition variables).

Lease keepalives, C<election_observe> and C<snapshot> run on the
background thread, so they keep going while your program is busy
elsewhere: a lease is kept alive even during a long computation outside
the loop. Unary calls (everything that has one answer) and watches take a
shorter way: they run on a second, small runtime that lives on the Perl
thread and is moved forward from the EV loop, by an I/O watcher on its
descriptor, right after a call is made, by a timer while calls are
unanswered, and ten times a second while watches are open (for their
reconnect, probe and keepalive-ping timers). A call made outside a
callback is sent before the method returns; calls made from callbacks are
sent together once the callbacks of that turn of the loop have run. This
spares each call, and each watch event, two thread wake-ups, which cost
more than the rest of the round trip on small machines. Unary calls and
watches share one connection; the background thread keeps its own, so a
client that also has a lease keepalive, an observer or a snapshot open
holds two connections to etcd.

The price is that this work only moves while the EV loop runs. Watch
events that arrive while the program blocks outside the loop wait on the
connection and are delivered, in order and complete, when the loop runs
again. A call whose C<timeout> passes meanwhile may fail with
C<DEADLINE_EXCEEDED> even when its answer had arrived: when the loop runs
again, the expired deadline and the answer are seen together, and either
may win. Likewise, a block longer than C<keepalive_time> plus
C<keepalive_timeout> that starts just after a keepalive ping went out can
make that connection look dead: its calls fail with C<UNAVAILABLE> and its
watches reconnect, resuming after the last revision they delivered.

A program that blocks for long (a slow database query in a callback, a
C<sleep>) can choose the other way with C<< io_mode => 'background' >>
(see L</new>): then unary calls and watches run on the background thread
too, and keep moving while Perl is away; their answers wait in the queue
until the loop runs again. Each call and each watch event then costs the
two thread wake-ups. The small runtime on the Perl thread finds its
descriptor through F</proc/self/fd>; where it cannot be set up, the
client takes the background mode and warns, and L</io_mode> says
which mode a client is in.

Requests issued one after the other without waiting are in flight at the
same time and may complete in any order: a C<get> started right after a
C<put> may well be answered first, and etcd may apply two C<put>s made
back to back in either order. When one step depends on another, start it
from the earlier step's callback, as the SYNOPSIS does.

One order is kept for you: a watch made before a call sees what that call
does. Calls made while a watch created before them is not yet created on
the server wait until it is (its C<< created => 1 >> message), so this
watch always sees the put, in either I/O mode:

=for ev-etcd example client prints ^seen: /jobs/1 = build$

  my $w;
  $w = $etcd->watch('/jobs/', { prefix => 1 }, sub {
      my ($msg, $err) = @_;
      die "watch: $err->{message}\n" if $err;
      for my $ev (@{ $msg->{events} }) {
          print "seen: $ev->{kv}{key} = $ev->{kv}{value}\n";
          $w->cancel(sub { });
      }
  });
  $etcd->put('/jobs/1', 'build', sub { die "put: $_[1]{message}\n" if $_[1] });

The wait is one round trip, and only for calls made right after a watch;
calls made before it go at once. When the watch cannot be created (etcd
unreachable, or the watch cancelled first), the calls go without waiting
for its reconnects.

=head1 CONSTRUCTOR

=head2 new

  my $etcd = EV::Etcd->new(
      endpoints        => ['10.0.0.1:2379', 'http://10.0.0.2:2379'],
      timeout          => 10,
      max_retries      => -1,
      health_interval  => 5,
      on_health_change => sub {
          my ($healthy, $endpoint) = @_;
          warn "etcd $endpoint is ", ($healthy ? 'up' : 'down'), "\n";
      },
  );

Creates a client. All options are optional and are given as a flat list of
name/value pairs; an odd-sized list croaks, and so does any name not listed
below (C<EV::Etcd-E<gt>new: unknown option 'NAME'>). Creating a client does
not contact the server: the connection is made when the first request needs
it, so a wrong address shows up as an C<UNAVAILABLE> error on that request.

=over 4

=item endpoints => \@list

Servers to talk to, each written C<host:port>, C<http://host:port> or
C<https://host:port>. The default is C<['127.0.0.1:2379']>. The list must
not be empty and no entry may be undefined or empty. A client speaks either
TLS or plaintext to all of its endpoints: an C<https://> entry switches the
whole client to TLS (bare C<host:port> entries included), and a list that
has both C<https://> and C<http://> entries croaks with C<endpoints mix TLS
and plaintext>. See L</tls> for the rest.

Requests go to the first endpoint. When a request fails because the
connection itself failed (status C<UNAVAILABLE> from the transport), the
client switches to the next endpoint in the list (wrapping around) for the
requests that follow. The request that failed is I<not> resent: it gets its
error, and retrying it is up to you (see L</Retryable errors>). Streams
reconnect on their own, to the next endpoint; see L</Reconnection>. The
list can be replaced later with L</set_endpoints>, or kept up to date by
the client itself (C<auto_sync_interval>).

=item retry => $n

How many times a unary call that failed with C<UNAVAILABLE> is repeated,
after a short pause (50 ms, doubling) and on the next endpoint when there
are several. Default 0: calls are not repeated. Only what cannot do harm
twice is repeated:

=over 4

=item * reads, always: L</get>, L</lease_time_to_live>, L</lease_leases>,
L</status>, L</member_list>, L</alarm> with C<GET>, L</hash_kv>,
L</user_get>, L</user_list>, L</role_get>, L</role_list>,
L</auth_status> and L</election_leader>;

=item * writes (everything else: put, delete, txn, lease_grant,
lease_revoke, compact, lock, unlock, changes of auth or membership, ...)
only when no connection to the server could be made, so the request
provably never left the client. A write that failed after it was sent
(the server died with it in flight, say) is never repeated: it may have
been applied.

=back

A login (C<username>, C<password>) that failed with C<UNAVAILABLE> counts
as an attempt of the call that waited for it and is repeated the same way.
C<DEADLINE_EXCEEDED> is never retried: the deadline covers all attempts.
L</on_request> reports how many repeats a call needed. An integer from 0
to 100.

=item auto_sync_interval => $seconds

Every this many seconds, ask the cluster for its members
(L</member_list>) and make the client URLs of the started, voting members
the endpoint list, as L</set_endpoints> would. Starting from one endpoint,
a client thus learns every member and carries on when the one it started
with goes away. The current endpoint stays in use while it is listed. A
round that fails, or that returns URLs this client cannot use (C<https://>
ones for a plaintext client, say), leaves the list as it is. Default 0: no
syncing. Values below 0.1 are raised to 0.1; a negative or non-numeric
value croaks.

=item watch_probe_interval => $seconds

Checks that the watch stream is alive. When the stream has delivered
nothing for this many seconds, the client sends the server a progress
request on it; the answer is taken in silently (no callback sees it). When
nothing at all arrives within the client's C<timeout> after such a probe,
the stream is taken as dead, although its connection may still look open
(a frozen server, a network path that drops everything, a proxy that
stopped forwarding): the client drops the connection, opens a new one (to
the next endpoint when there are several) and re-creates every watch from
the revision after the last one it delivered, as under L</Reconnection>.
Watches with C<< auto_reconnect => 0 >> end instead, with C<UNAVAILABLE>
and a message saying that no answer came to a probe. Default 0: no
probes. Values below 0.1 are raised to 0.1; a negative or non-numeric
value croaks. The HTTP/2 pings of C<keepalive_time> notice a dead
connection as well; a probe works with pings switched off and checks the
watch stream itself rather than the connection under it.

  # A watch that may sit idle for hours behind a load balancer: probe it
  # after 30 s of silence, and give up on the stream 5 s after a probe.
  my $etcd = EV::Etcd->new(endpoints => \@endpoints, timeout => 5,
                           watch_probe_interval => 30);

=item timeout => $seconds

Deadline for every unary request, in seconds (fractions allowed), L</lock>
and L</election_campaign> included. Default 30. Values below 1 are raised
to 1; a value that is not a number croaks. A request that runs past its
deadline fails with C<DEADLINE_EXCEEDED> (retryable), and the server is
told the same deadline, so it stops working on the request too. One call
can ask for another deadline with its own C<timeout> option (see
L</Per-call deadlines>). Streams (watch, keepalive, observe) have no
deadline.

=item io_mode => 'inline' | 'background'

Where unary calls and watches run (see L</DESCRIPTION>). C<inline>, the
default on Linux, runs them on the Perl thread, moved forward by the EV
loop: the fastest way, and the work waits while Perl blocks outside the
loop. C<background> runs them on the client's background thread, which
keeps them moving (answers read, HTTP/2 pings answered, watches fed) while
Perl is busy elsewhere; the answers wait until the loop runs. It is the
default on systems other than Linux, where C<inline> is not available. Lease
keepalives, C<election_observe> and C<snapshot> run on the background
thread in both modes.

When the option is not given (or is C<undef>), the environment variable
C<EV_ETCD_IO_MODE> supplies it, so a whole program, or a test suite, can
be switched without changing its code. Anything else croaks
(C<EV::Etcd-E<gt>new: io_mode must be 'inline' or 'background'>). When
C<inline> cannot be set up, the client warns
(C<EV::Etcd-E<gt>new: io_mode 'inline' cannot be set up on this system;
...>) and runs in the background mode; L</io_mode> reports the mode in
use.

=item max_retries => $n

How many times a broken stream (watch, keepalive, observe) is reopened
before giving up. An integer; default 3. With 0, streams never reconnect:
the first connection loss ends them with an error. A negative value means
retry forever. This setting does not apply to unary requests, which are
not retried. See L</Reconnection> for the schedule.

=item health_interval => $seconds

When greater than 0, the client probes the current endpoint every so many
seconds (values between 0 and 0.1 become 0.1) with a small maintenance
status request. Any answer from the server counts as healthy, even a
refusal; no answer within the interval (at least 1 second, at most
C<timeout>) counts as unhealthy, and an unhealthy probe also moves the
client to the next endpoint. Default 0, which turns the probe off. A
negative or non-numeric value croaks.

The probe alone does not keep C<EV::run> running: see
L</Keeping the loop running>.

=item on_health_change => sub { my ($healthy, $endpoint) = @_; ... }

Called with C<1> or C<0> and the endpoint that was probed: once after the
first probe, and afterwards only when the result differs from the previous
one. Only useful together with C<health_interval>. Must be a code reference
(undef is accepted and means none).

=item username => $user, password => $password

Log in as this user. The login starts as soon as the client is created;
calls and streams made before it has finished wait for it and are sent
with the new token, so none fails for lack of one. From then on the
client logs in again by itself whenever etcd says the token is no longer
good (see L</authenticate>), and every stream that opens or reopens does so
with a current token.

When the login fails (a wrong password, say), every call waiting for it
gets that failure once, with etcd's status and message (for a wrong
password C<INVALID_ARGUMENT>, C<etcdserver: authentication failed, invalid
user ID or password>) under the call's own C<source>; a stream waiting for
it ends with the same error. Nothing is retried in a loop: the next call
made after the failure tries one new login. If the server has auth
switched off, the login is skipped and calls go out without a token. Both
must be given together; the user name must not be empty and both must be
UTF-8 text (undef means no login).

=item auth_token => $token

A token obtained earlier (for example from L</authenticate> in another
process). It is sent as C<token> metadata with every request and with every
stream opened later, exactly as if C<authenticate> had just returned it.
It must be printable ASCII. Undef means none.

=item tls => $bool

Talk TLS to every endpoint. With a true value, bare C<host:port> endpoints
(and the default one) are reached over TLS, and an endpoint written
C<http://...> croaks, since it asks for plaintext. A false value insists on
plaintext: an C<https://> endpoint or any of the C<tls_*> options below then
croaks. Leaving the option out (or passing undef) lets the endpoints decide:
TLS when one of them is written C<https://>, plaintext otherwise.

  my $etcd = EV::Etcd->new(
      endpoints     => ['etcd1.example.net:2379', 'etcd2.example.net:2379'],
      tls           => 1,
      tls_ca_file   => '/etc/etcd/pki/ca.pem',
      tls_cert_file => '/etc/etcd/pki/client.pem',   # only for mutual TLS
      tls_key_file  => '/etc/etcd/pki/client-key.pem',
  );

The TLS options below only make sense when the client uses TLS: giving one
to a client whose endpoints are plaintext croaks with, for example,
C<tls_ca_file was given, but the endpoints are plaintext: add tls =E<gt> 1
or use https:// endpoints>. Undef counts as not given; an empty string
croaks. The files are read and checked when the client is made, so a
missing or unreadable file, or one with nothing usable in it, croaks right
there, naming the option and the path:

  EV::Etcd->new: tls_ca_file '/etc/etcd/ca.pem': cannot read it: No such file or directory (os error 2) at app.pl line 12.
  EV::Etcd->new: tls_key_file '/tmp/c.pem': no private key in it (expected a PEM 'BEGIN PRIVATE KEY' block) at app.pl line 12.

All files are PEM text. The module supports TLS 1.2 and 1.3 only, through
rustls, and keys of type RSA, ECDSA (P-256, P-384) and Ed25519.

=item tls_ca_file => $path

The certificate authorities that the server's certificate must chain up
to: one or more C<BEGIN CERTIFICATE> blocks. Without this option the
system's trusted roots are used instead (on Linux, the distribution's CA
bundle; the C<SSL_CERT_FILE> and C<SSL_CERT_DIR> environment variables, if
set when the client is made, replace it), and a system with no roots at
all croaks. A file in which no certificate can be found, or holding one
that does not parse as a certificate, croaks.

=item tls_cert_file => $path

=item tls_key_file => $path

The client's own certificate (its chain, leaf first) and that
certificate's private key, for servers that demand one (etcd's
C<--client-cert-auth>). The two go together: either one alone croaks, and
so does a key that does not belong to the certificate (C<tls_key_file
'...' is not the key of the certificate in tls_cert_file '...'>). The key
must be unencrypted (PKCS#8, PKCS#1 or SEC1).

=item tls_server_name => $name

The name the server's certificate must carry. By default that is the
host part of the endpoint being contacted, which may be a DNS name or an
IP address (matched against the certificate's IP address entries). Set
this when the certificates name the servers differently from the way you
reach them, for instance when connecting by IP address to a server whose
certificate only lists C<etcd.internal>. It is also sent as the TLS SNI
name when it is a DNS name. The same name is checked for every endpoint.

=item keepalive_time => $seconds, keepalive_timeout => $seconds

HTTP/2 pings that find a dead connection: while calls or streams are open,
the client pings the server after C<keepalive_time> seconds without
traffic and gives the connection up when no answer comes within
C<keepalive_timeout> seconds. A server that died without closing the
connection, or a network path that silently drops everything (a
half-open connection), is thus noticed within about C<keepalive_time +
keepalive_timeout>: calls in flight on it fail with C<UNAVAILABLE>, and
streams reconnect, to the next endpoint when there are several. Defaults:
10 and 5. An idle client (no calls, no streams) never pings.

etcd refuses pings that come more often than its
C<--grpc-keepalive-min-time> (5 s unless configured), by closing the
connection (a C<too_many_pings> GOAWAY); keep C<keepalive_time> at or above
that. C<< keepalive_time => 0 >> switches the pings off. Both take
fractions; a negative or non-numeric value croaks, as does a
C<keepalive_timeout> of 0.

=item max_send_size => $bytes, max_recv_size => $bytes

Limits, in bytes, on one unary request (as encoded) and on one unary
reply. By default there are none: etcd answers ranges far larger than
gRPC's usual 4 MiB. A call whose request is too large fails with
C<RESOURCE_EXHAUSTED> before anything is sent; a reply that is too large
fails its call the same way while the server is told to stop sending it.
Either way only that call is affected. Streams are not limited, since a
single large event would otherwise end every watch sharing the stream.
Each must be a positive integer; undef means no limit.

=item on_request => sub { my ($info) = @_; ... }

A hook for metrics and logging, called once for every unary call when it
has finished, just before that call's own callback, with a hash:

  {
      method   => 'put',              # the method as you called it
      endpoint => '10.0.0.7:2379',    # host:port the (last) attempt went to
      duration => 0.00042,            # seconds from the call to its answer
      status   => 'OK',               # or the error's status, e.g. 'UNAVAILABLE'
      retries  => 0,                  # how often the client repeated it
  }

C<retries> counts the repeats the client makes on its own, such as the one
after logging in again when the server forgot the token. Streams (watch,
keepalive, observe) and their cancels are not reported, nor are calls that
croaked. A hook that dies is reported through C<$EV::DIED> like a dying
callback; the call's callback still runs. Without a hook the client does
not measure anything. Must be a code reference (undef means none).
F<eg/request-metrics.pl> keeps Prometheus-style counters and a latency
histogram with it. A hook that refers to its own client keeps the client
alive (see L</DESTRUCTION>).

=item namespace => $prefix

Gives the client a part of the keyspace of its own: every key it sends gets
C<$prefix> put in front of it, every key it receives loses it again, and no
read, write, watch or range of the client reaches a key outside the
prefix. Several programs (or several parts of one) can thus share a
cluster without agreeing on key names, and code written for a whole
keyspace runs unchanged under a prefix. What exactly is prefixed, and what
is not, is under L</NAMESPACES>.

=for ev-etcd example prints ^rate = 0\.19$

  use strict;
  use warnings;
  use EV;
  use EV::Etcd;

  my $billing = EV::Etcd->new(endpoints => ['127.0.0.1:2379'], namespace => '/billing/');

  # Stored as /billing/rate; read back as "rate".
  $billing->put('rate', '0.19', sub {
      my (undef, $err) = @_;
      die "put failed: $err->{message}\n" if $err;
      # An empty prefix: everything under /billing/, and nothing else.
      $billing->get('', { prefix => 1 }, sub {
          my ($resp, $err) = @_;
          die "get failed: $err->{message}\n" if $err;
          print "$_->{key} = $_->{value}\n" for @{ $resp->{kvs} };
      });
  });
  EV::run;

The prefix is bytes, like a key. It must not be empty, nor a reference, nor
hold characters above 0xFF (encode such text first, see L</ENCODING>); any
of these croaks. A string that merely carries the UTF-8 flag but has no
such characters is taken as the bytes it holds. C<undef> means no
namespace. A client with a namespace belongs to the class
L<EV::Etcd::Namespace>, a subclass of EV::Etcd; a client without one is a
plain EV::Etcd and pays nothing for the feature.

=back

=head2 TLS errors

A handshake that fails is reported to the callback of the call that needed
the connection (or to the stream's callback), like any other connection
failure: status C<UNAVAILABLE>, C<retryable> 1, and, when there are
several endpoints, the client moves on to the next one. The message
begins with what went wrong, for example:

  TLS handshake with 10.0.0.5:2379 failed: invalid peer certificate: UnknownIssuer
  TLS handshake with 10.0.0.5:2379 failed: invalid peer certificate: certificate not valid for name "10.0.0.5"; ...
  TLS handshake with 10.0.0.5:2379 failed: received fatal alert: BadCertificate

The first means the server's certificate was not issued by a CA in
C<tls_ca_file> (or the system's roots); the second, that it does not name
the host (see C<tls_server_name>); the third, that the server rejected the
client: no C<tls_cert_file> was given, or the server does not trust the CA
that issued it (some servers send C<CertificateRequired> instead). Retrying
such a call cannot succeed until the configuration changes, even though it
is marked retryable: look at the message before retrying forever.

Connecting to a TLS port without TLS fails with an C<UNAVAILABLE> error
too, whose message is less telling (a broken pipe or a reset connection);
a TLS client that reaches a plaintext port gets C<TLS handshake with ...
failed: tls handshake eof> or similar.

=head1 CALLBACKS AND ERRORS

=head2 The ($resp, $err) convention

The last argument of every method is a code reference. Anything else there
(or nothing) makes the method croak with C<callback must be a code
reference>, and nothing is sent.

The callback receives two arguments, and exactly one of them is defined:

  sub {
      my ($resp, $err) = @_;
      if ($err) {
          warn "$err->{source} failed: $err->{status}: $err->{message}\n";
          return;
      }
      ...   # use $resp, a hash reference
  }

For a unary request the callback runs exactly once. For a stream (watch,
lease keepalive, election observe) it runs once per message, and an error
always ends that stream: nothing follows an error.

=head2 The error hash

=over 4

=item code

The numeric gRPC status code, e.g. C<14>.

=item status

The name of that code: C<CANCELLED>, C<UNKNOWN>, C<INVALID_ARGUMENT>,
C<DEADLINE_EXCEEDED>, C<NOT_FOUND>, C<ALREADY_EXISTS>,
C<PERMISSION_DENIED>, C<RESOURCE_EXHAUSTED>, C<FAILED_PRECONDITION>,
C<ABORTED>, C<OUT_OF_RANGE>, C<UNIMPLEMENTED>, C<INTERNAL>,
C<UNAVAILABLE>, C<DATA_LOSS> or C<UNAUTHENTICATED>. Test this rather than
C<code> or C<message> when deciding what to do.

=item message

Text describing the failure. When the server produced the error, this is
the server's own text, untouched, e.g.
C<etcdserver: requested lease not found>. Transport failures carry a
description of what went wrong on the connection.

=item source

Which method failed: its name (C<get>, C<put>, C<delete>, C<txn>,
C<compact>, C<lease_grant>, C<user_add>, C<member_list>, ...), or C<watch>,
C<keepalive>, C<observe> or C<snapshot> for errors delivered on a stream.
The errors an L<EV::Etcd::Session> makes itself (a lost lease, a call
that could not wait for one) have source C<session>. A
L</range_iterator> reports its pages' errors as C<get> does.

=item retryable

C<1> when the failure is of a transient kind and sending the same request
again may succeed, C<0> otherwise. See below.

=back

A server that cannot be reached gives C<UNAVAILABLE> with C<retryable> set.
A transport breakdown in the middle of a request (a reset connection, a
failed keep-alive ping) is reported as C<UNAVAILABLE> too, not as
C<UNKNOWN>: C<UNKNOWN> is kept for errors the server itself reported that
way (for example C<election: no leader>).

=head2 Per-call deadlines

Every unary method that takes an options hash (L</put>, L</get>,
L</delete>, L</compact>, L</lease_time_to_live>, L</alarm>,
L</member_list>, L</member_add>, L</lock>, L</election_campaign>) also
takes C<timeout>, which replaces the client's C<timeout> (L</new>) for that one
call:

  $etcd->get('/config/', { prefix => 1, timeout => 0.25 }, $cb);
  $etcd->lock('job', $lease_id, { timeout => 0 }, $cb);   # no deadline

The value is in seconds, fractions allowed and not rounded up to 1 as the
client option is; C<0> means no deadline at all, and C<undef> the client's.
A negative, infinite or non-numeric value croaks
(C<get: timeout must be a finite number of seconds, 0 or more>). The
streams and the operations inside a L</txn> have no deadline to set: a
C<timeout> there croaks (C<watch: timeout does not apply here ...>).

When a write (put, delete, compact, ...) ends in C<DEADLINE_EXCEEDED>, it
may or may not have been applied: the server may have received it just
before giving up.

=head2 Retryable errors

C<retryable> is 1 for exactly four statuses: C<UNAVAILABLE>,
C<RESOURCE_EXHAUSTED>, C<ABORTED> and C<DEADLINE_EXCEEDED>. Unless the
client was made with L</retry>, it does not resend a failed unary request
by itself (the one exception is the transparent re-login described under
L</authenticate>); even with it, a write that may have reached the server
is handed back to you. A small helper is enough for your own policy:

=for ev-etcd example client prints ^stored after at most 3 tries$

  sub put_with_retry {
      my ($etcd, $key, $value, $tries, $done) = @_;
      $etcd->put($key, $value, sub {
          my ($resp, $err) = @_;
          if ($err && $err->{retryable} && $tries > 1) {
              my $t; $t = EV::timer(0.5, 0, sub {
                  undef $t;
                  put_with_retry($etcd, $key, $value, $tries - 1, $done);
              });
              return;
          }
          $done->($resp, $err);
      });
  }

  put_with_retry($etcd, '/jobs/next', 42, 3, sub {
      my (undef, $err) = @_;
      die "gave up: $err->{message}\n" if $err;
      print "stored after at most 3 tries\n";
  });

Keep in mind that a write which timed out may have been applied anyway.

=head2 When callbacks run

A callback never runs inside the method call that started the request,
even when the answer is already known (a dead endpoint, say): it always
runs later, from the EV loop. The one exception is C<cancel> on a stream
handle that has already been cancelled, which calls back immediately (see
L</EV::Etcd::Watch-E<gt>cancel>).

Callbacks run in the order their answers arrived. One turn of the loop
delivers at most 1024 answers, or as many as fit in about 10 ms of
callbacks, before the loop runs its other watchers and comes back for the
rest, so timers and other I/O keep their pace while a backlog (a watch
catching up on thousands of events, say) is worked off.

A callback that runs the loop itself (C<EV::run> inside a callback, or a
framework's blocking wait, see L</USING WITH ANYEVENT AND MOJO>) gets
the answers that arrive meanwhile delivered from within it, nested one
level deeper. Nothing is lost that way, but the code around it is
harder to follow: start the next step from the callback instead.

=head2 Exceptions in callbacks

If a callback dies, the exception is handed to C<$EV::DIED>, the same hook
EV uses for its own watchers. EV's default handler prints a warning
(C<EV: error in callback (ignoring): ...>) and carries on. The client is
not affected: the remaining completions are still delivered, and a stream
whose callback died keeps running. To stop the program on such an error,
install your own handler:

  $EV::DIED = sub { warn "fatal: $@"; EV::break(EV::BREAK_ALL()) };

The short examples in this document simply C<die> on errors; under EV's
default handler that amounts to a warning.

=head2 Keeping the loop running

A client holds the EV loop only while it has something in flight: unary
requests waiting for an answer, and streams that are still alive. So
C<EV::run> returns by itself once all requests have completed and every
watch, keepalive and observe has been cancelled or has ended. An idle
client does not hold the loop, even with C<health_interval> set; a live
stream holds it until it is cancelled or fails. A program that only wants
health reports must keep the loop busy some other way, e.g. with an
C<EV::timer>.

=head2 Bad arguments

Arguments are checked before anything is sent, and a bad one croaks with a
message that names the method and the argument:

  get: key must be defined
  get: options must be a hash reference
  get: unknown option 'prefx'
  get: unknown sort_order 'x' (expected ascend, descend or none)
  put: lease must be an integer, got 'abc'
  member_remove: member id must not be negative, got '-1'
  lease_revoke: lease id is too large (must be at most 9223372036854775807), got '9223372036854775808'
  callback must be a code reference (put)

Integer arguments (ids, revisions, counts) may be Perl numbers, including
floating-point ones that hold a whole number, or decimal strings. A string
is read digit by digit, so it keeps its exact value even beyond the 53
bits a floating-point number holds; surrounding whitespace and a sign are
allowed, as in Perl's own numbers, but not fractions, exponents or
trailing garbage. References (other than objects that overload
stringification) are refused, and so is C<undef> except for the options
where it means "not given". A value outside the argument's range croaks
saying which limit it crosses.

Where a method takes an options hash, it sits just before the callback and
may be omitted or passed as C<undef>. Option names are checked: a
misspelt one croaks instead of being ignored.

=head2 The response header

Every response has a C<header> entry:

  header => {
      cluster_id => ...,   # id of the cluster
      member_id  => ...,   # id of the member that answered
      revision   => ...,   # store revision when the request was served
      raft_term  => ...,   # raft term at that moment
  }

etcd sends no header with the answers to L</defragment> and
L</move_leader>, nor (on etcd 3.4) to L</alarm>; these get a header whose
four fields are all 0. Inside a transaction, the per-operation responses
carry a header in which only C<revision> is filled in.

=head1 ENCODING

etcd stores keys and values as opaque bytes, and so does this client: no
character set is assumed. Any byte string works, including ones containing
NUL or bytes above 0x7F. Strings you pass that carry Perl's UTF-8 flag are
sent as their UTF-8 encoding. Keys and values that come back are plain
byte strings, never flagged as UTF-8, so text with non-ASCII characters
comes back as UTF-8 bytes and does not compare equal to the original
character string until decoded. Encode and decode at the edges:

=for ev-etcd example client prints ^round trip ok$

  use utf8;
  use Encode qw(encode decode);

  my $city = 'Zürich';
  $etcd->put('/city', encode('UTF-8', $city), sub {
      my (undef, $err) = @_;
      die $err->{message} if $err;
      $etcd->get('/city', sub {
          my ($resp, $err) = @_;
          die $err->{message} if $err;
          my $back = decode('UTF-8', $resp->{kvs}[0]{value});
          die "the text changed on its way\n" unless $back eq $city;
          print "round trip ok\n";
      });
  });

The client imposes no size limit of its own: responses of any size are
accepted, so a range read returning hundreds of megabytes works. The size
of a single I<request> is limited by the server (etcd's
C<--max-request-bytes>, 1.5 MiB by default).

=head1 KEY-VALUE

A key-value record, wherever one appears in a response (C<kvs>,
C<prev_kv>, C<prev_kvs>, watch events, election leaders), is a hash:

  {
      key             => '/config/color',
      value           => 'blue',
      create_revision => 12,   # revision of the put that created the key
      mod_revision    => 15,   # revision of the latest change
      version         => 3,    # number of changes since creation
      lease           => 0,    # attached lease id, 0 when none
  }

=head2 put

  $etcd->put($key, $value, $cb);
  $etcd->put($key, $value, \%opt, $cb);

Sets C<$key> to C<$value>. Options:

=over 4

=item lease => $lease_id

Attach the key to a lease (see L</LEASE>); the key is deleted when the
lease expires or is revoked. Must be a non-negative integer (a number or
a decimal string, see L</LEASE>).

=item prev_kv => 1

Return the record as it was before this write.

=item ignore_value => 1

Keep the stored value and change only the other attributes (typically the
lease). C<$value> is not sent and may be C<undef>. The key must exist.

=item ignore_lease => 1

Keep the key's current lease while changing its value.

=back

Response: C<header>, plus C<prev_kv> (a record) when the C<prev_kv> option
was set and the key existed before.

=head2 get

  $etcd->get($key, $cb);
  $etcd->get($key, \%opt, $cb);

Reads one key, or a range of keys. Options:

=over 4

=item prefix => 1

Every key that starts with C<$key>. With an empty C<$key> this means every
key in the store. Takes precedence over C<range_end>.

=item range_end => $end

Every key from C<$key> up to, but not including, C<$end>. The special end
C<"\0"> means "every key from C<$key> onwards".

=item limit => $n

Return at most C<$n> records (0, the default, means no limit).

=item revision => $rev

Read the store as it was at that revision (it must not have been compacted
away).

=item keys_only => 1

Return records without their values.

=item count_only => 1

Return no records, only C<count>.

=item sort_order => 'ascend' | 'descend' | 'none'

Ordering of the records (case does not matter). Default C<none>, which
etcd returns in key order.

=item sort_target => 'key' | 'version' | 'create' | 'mod' | 'value'

What to sort by when C<sort_order> is given: the key, the version, the
create revision, the mod revision or the value.

=item serializable => 1

Let the member that receives the request answer from its local data
without consulting the leader: faster, but possibly slightly stale.

=item min_mod_revision, max_mod_revision => $rev

Keep only records whose mod revision is at least / at most this.

=item min_create_revision, max_create_revision => $rev

Keep only records whose create revision is at least / at most this.

=back

Response:

  {
      header => { ... },
      kvs    => [ { key => ..., value => ..., ... }, ... ],
      count  => 2,   # number of keys in the range, ignoring limit
      more   => 0,   # 1 when limit left some of them out
  }

A key that does not exist is not an error: C<kvs> is simply empty and
C<count> is 0.

=head2 range_iterator

  my $it = $etcd->range_iterator($key, \%opt);
  $it->next(sub { my ($page, $err) = @_; ... });

Walks a range of keys one page at a time, without holding the whole range
in memory. Each page is one L</get> with C<limit> set to the page size,
and every page after the first is read at the revision the first one was
read at, so the pages together are one consistent picture of the range:
keys written, changed or deleted by anyone while the walk is under way
are not seen, and no key turns up twice or goes missing. A page continues
with the key that comes right after the last key of the page before (that
key followed by a NUL byte), up to the same end.

Creating the iterator sends nothing; the first request goes out with the
first C<next>. Options:

=over 4

=item prefix => 1, range_end => $end

Select the range exactly as for L</get>. Without either, the "range" is
the single key C<$key>: one page holding it (or nothing).

=item page_size => $n

How many records one page holds at most: a positive integer (a number or
a decimal string). Default 1000.

=item keys_only, serializable, timeout

As for L</get>, applied to every page.

=item revision => $rev

Walk the store as it was at this revision instead of the revision of the
first page. 0 (or undef) means the latest, that is the first page's.

=item min_mod_revision, max_mod_revision, min_create_revision, max_create_revision

As for L</get>. These work, but etcd cannot combine them with C<limit>
cheaply: to answer each page it reads the whole rest of the range, so a
walk with one of them costs about as much as the pages times the range.

=item sort_order => 'ascend' | 'none', sort_target => 'key'

Accepted for symmetry with L</get> and not sent, since pages always come
in ascending key order; any other order or target croaks, as paging
depends on the key order.

=back

C<limit> and C<count_only> are not options of the iterator (it owns the
limit, and counting needs no iterator: use L</get> with C<count_only>);
they croak, as do unknown option names.

=head3 EV::Etcd::RangeIterator->next

  $it->next(sub {
      my ($page, $err) = @_;
      ...
  });

Fetches the next page and calls back with it, from the loop (never inside
C<next>). A page is a hash:

  {
      kvs    => [ { key => ..., value => ..., ... }, ... ],  # as get returns them
      header => { ... },   # header of the get that read this page
      more   => 1,         # 0 when this page is the last one
  }

The header is that of the request that read the page, so its C<revision>
is the store's revision at the time of that request, not the snapshot's:
ask C<< $it->revision >> for that. Once the last page (the one with
C<< more => 0 >>) has been delivered, C<next> calls back with an empty
C<kvs>, C<< more => 0 >> and the last header, and goes on doing so; no
request is sent for it. A range with no keys at all gives that empty page
straight away (from a real request, with the server's header).

Only one C<next> may be in flight: calling it again before its callback
has run croaks (C<next: the previous page has not arrived yet ...>).
Call C<next> again from the callback instead.

A failed page reaches the callback as C<(undef, $err)>, C<$err> being the
L</get>'s error hash unchanged (C<source> C<get>). The iterator stays
where it was: the following C<next> asks for the same page again, which
helps after a transient error such as C<UNAVAILABLE>. When the snapshot
revision has been compacted away in the middle of a walk, the error is
C<OUT_OF_RANGE> (C<etcdserver: mvcc: required revision has been
compacted>) and asking again cannot help: start a new iterator, which
reads a newer snapshot.

The client holds one page at a time, so its memory does not grow with
the range (F<bench/range_walk.pl> walks a million keys in pages of 1000
with the process growing by well under a megabyte, where one C<get> of
the same keys takes some 600 MB). The server's work does grow with it:
etcd counts the keys left in the range for every page (the C<count> of
a limited C<get>), so a page costs it time in proportion to what remains,
and early pages of a long walk are slower than late ones. Larger pages
mean fewer of those counts.

The iterator keeps its client alive, as a stream handle does. Dropping
the iterator with a page in flight is harmless: that page is still
delivered to its callback.

=head3 EV::Etcd::RangeIterator->revision

  my $rev = $it->revision;

The revision every page is read at: undef until the first page has
arrived, unless the C<revision> option gave it.

=head3 EV::Etcd::RangeIterator->done

  if ($it->done) { ... }

True once the last page has been delivered; from then on C<next> calls
back with empty pages and sends nothing (see
L</EV::Etcd::RangeIterator-E<gt>next>).

=head3 EV::Etcd::RangeIterator->page_size

  my $n = $it->page_size;

The page size in use: the C<page_size> option, or 1000.

=head3 Bad arguments

These croak, at the line that called C<range_iterator> or C<next>:

  range_iterator: key must be defined
  range_iterator: options must be a hash reference
  range_iterator: page_size must be a positive integer, got '0'
  range_iterator: limit is not an option here: the iterator sets it (use page_size)
  range_iterator: count_only makes no sense for an iterator (use get with count_only)
  range_iterator: unknown option 'prefx'
  range_iterator: pages come in key order; sort_order 'descend' is not supported
  range_iterator: revision must be an integer, got 'abc'
  callback must be a code reference (next)
  next: the previous page has not arrived yet (call next again from its callback)

Option values that only L</get> checks (a negative C<timeout>, say, or a
revision beyond the 64-bit range) croak from the first C<next>, with
C<get>'s message, at the line that called C<next>; so do the croaks of a
client that was closed or inherited across C<fork>.

Counting the keys under a prefix, 500 at a time:

=for ev-etcd example client prints ^\d+ keys under /jobs/ at revision \d+$

  my $it = $etcd->range_iterator('/jobs/', { prefix => 1, page_size => 500 });
  my $count = 0;
  my $step;
  $step = sub {
      $it->next(sub {
          my ($page, $err) = @_;
          if ($err) {
              warn "walk failed: $err->{status}: $err->{message}\n";
              undef $step;
              return;
          }
          $count += @{ $page->{kvs} };
          return $step->() if $page->{more};
          printf "%d keys under /jobs/ at revision %d\n", $count, $it->revision;
          undef $step;    # the closure refers to itself: break that cycle
      });
  };
  $step->();
  EV::run;

=head2 delete

  $etcd->delete($key, $cb);
  $etcd->delete($key, \%opt, $cb);

Deletes one key or a range. Options C<prefix> and C<range_end> select a
range exactly as for L</get>; C<< prev_kv => 1 >> returns the deleted
records.

Response: C<header>; C<deleted>, the number of keys removed; and
C<prev_kvs>, an array that is always present and holds the deleted records
when C<prev_kv> was set (it is empty otherwise).

=head2 compact

  $etcd->compact($revision, $cb);
  $etcd->compact($revision, { physical => 1 }, $cb);

Discards the history older than C<$revision>: earlier revisions can no
longer be read, and watches can no longer start from them. With
C<< physical => 1 >> the answer is delayed until the data has actually been
removed from the backend. Response: C<header>. Compacting to a revision
that has already been compacted, or to one in the future, fails with an
error from the server.

=head1 TRANSACTIONS

=head2 txn

  # named arguments
  $etcd->txn(
      compare  => \@compares,
      success  => \@ops_if_all_compares_hold,
      failure  => \@ops_otherwise,
      callback => $cb,
  );

  # the same, with the callback last instead of named
  $etcd->txn(compare => \@compares, success => \@ops, $cb);

  # positional
  $etcd->txn(\@compares, \@success_ops, \@failure_ops, $cb);

Evaluates every compare against the current store; if all of them hold,
runs the C<success> operations, otherwise the C<failure> operations. The
whole thing is one atomic step with one revision. Any of the three lists
may be left out in the named form and then counts as empty. A list that is
not an array reference croaks (C<txn 'compare' must be an array
reference>), as does an unknown argument name.

=head3 Compares

Each compare is a hash:

  { key => '/job/owner', target => 'value',   value           => 'worker-7' }
  { key => '/job/owner', target => 'version', version         => 0          }
  { key => '/job/owner', target => 'create',  create_revision => 42         }
  { key => '/job/owner', target => 'mod',     mod_revision    => 57         }
  { key => '/job/owner', target => 'lease',   lease           => $lease_id  }

=over 4

=item key

The key to look at. Required.

=item target

What to compare: C<value>, C<version>, C<create> (also spelled
C<create_revision>), C<mod> (also C<mod_revision>) or C<lease>. Required.

=item the expected value

Given under the field that belongs to the target: C<value>, C<version>,
C<create_revision>, C<mod_revision> or C<lease>. Required; a compare
without it croaks.

=item result

The relation that must hold between the stored attribute and the expected
value: C<=> (also C<==> or C<EQUAL>), C<!=> (C<NOT_EQUAL>), C<< < >>
(C<LESS>) or C<< > >> (C<GREATER>). Default C<=>.

=item range_end

Optional: apply the compare to every key from C<key> up to this end
instead of to one key.

=back

A key that does not exist has version, create revision and mod revision 0,
so C<< { target => 'version', version => 0 } >> tests "key is absent" and
C<< { target => 'create', result => '>', create_revision => 0 } >> tests
"key exists".

=head3 Operations

Each element of C<success> and C<failure> is a hash holding exactly one
operation:

=over 4

=item request_put => { key => ..., value => ..., %put_options }

Also written C<put>. Accepts the options of L</put>: C<lease>,
C<prev_kv>, C<ignore_value>, C<ignore_lease>.

=item request_range => { key => ..., %get_options }

Also written C<range>. Accepts every option of L</get>.

=item request_delete_range => { key => ..., %delete_options }

Also written C<delete>. Accepts C<prefix>, C<range_end> and C<prev_kv>.

=back

=head3 Response

  {
      header    => { ... },
      succeeded => 1,     # 1: the success list ran, 0: the failure list ran
      responses => [      # one entry per operation that ran, in order
          { response_put          => { header => ..., prev_kv => ... } },
          { response_range        => { header => ..., kvs => [...], count => ..., more => ... } },
          { response_delete_range => { header => ..., deleted => ..., prev_kvs => [...] } },
      ],
  }

Each inner response has the shape of the matching plain call's response;
its header carries only the revision.

A compare-and-swap, replacing a value only if nobody changed it since it
was read (a counter that does not exist yet counts as 0, and then must
still not exist: its create revision is 0):

=for ev-etcd example client prints ^(incremented|lost the race, counter is now \d+)$

  $etcd->get('/counter', sub {
      my ($resp, $err) = @_;
      die $err->{message} if $err;
      my $kv = $resp->{kvs}[0];
      my $unchanged = $kv
          ? { key => '/counter', target => 'mod', mod_revision => $kv->{mod_revision} }
          : { key => '/counter', target => 'create', create_revision => 0 };
      $etcd->txn(
          compare  => [ $unchanged ],
          success  => [ { put => { key => '/counter', value => ($kv ? $kv->{value} : 0) + 1 } } ],
          failure  => [ { range => { key => '/counter' } } ],
          callback => sub {
              my ($resp, $err) = @_;
              die $err->{message} if $err;
              if ($resp->{succeeded}) {
                  print "incremented\n";
              } else {
                  my $now = $resp->{responses}[0]{response_range}{kvs}[0];
                  print "lost the race, counter is now $now->{value}\n";
              }
          },
      );
  });

=head1 TRANSACTIONS THAT RETRY

=head2 stm

  $etcd->stm(sub {
      my ($tx) = @_;
      my $n = $tx->get('/counter') // 0;     # undef: no such key
      $tx->put('/counter', $n + 1);
  }, { max_attempts => 30 }, sub {
      my ($resp, $err) = @_;
      ...   # $resp->{revision}, $resp->{attempts}; $err->{outcome}
  });

Software transactional memory: runs a function of the keys it reads,
through the transaction object C<$tx> (C<get>, C<put>, C<delete>), all
its reads at one revision, and commits its writes in one L</txn> that
compares every key it read. When another client changed one of them
first, the whole function runs again on fresh values after a short random
pause, up to C<max_attempts> (default 30). The function may choose what to
read from what it has read, runs several times per call and must have no
side effects. A commit that failed in transit is not repeated: its error
says C<< outcome => 'unknown' >>. The reference (options, response,
errors, the rules for the function) is L<EV::Etcd::STM>.

=for ev-etcd example client prints ^counter is now \d+ \(1 attempts?\)$

  $etcd->stm(sub {
      my ($tx) = @_;
      my $n = $tx->get('/counter') // 0;
      $tx->put('/counter', $n + 1);
      return $n + 1;
  }, sub {
      my ($resp, $err) = @_;
      die "$err->{message}\n" if $err;    # it starts with "stm: "
      print "counter is now $resp->{result} ($resp->{attempts} attempt)\n";
  });

=head1 WATCH

=head2 watch

  my $w = $etcd->watch($key, $cb);
  my $w = $etcd->watch($key, \%opt, $cb);

Reports changes to a key or a range of keys as they happen, until the
watch is cancelled or ends with an error. Returns an
L<EV::Etcd::Watch|/EV::Etcd::Watch-E<gt>cancel> handle. Options:

=over 4

=item prefix => 1, range_end => $end

Select a range, exactly as for L</get>.

=item start_revision => $rev

Begin with the changes made at this revision (and replay everything since
then). Without it, only changes after the watch is created are reported.
A revision that has been compacted away ends the watch with an error; see
below.

=item prev_kv => 1

Include the record as it was before each change.

=item progress_notify => 1

Ask the server to send an empty message now and then while nothing
changes, so you learn how far the store has advanced.

=item no_put => 1, no_delete => 1

Have the server leave out one kind of event: C<no_put> drops changes
(C<PUT>), C<no_delete> drops deletions, so a watch that only cares about
keys going away can say so and save the traffic. Filtered events never
reach the client; the watch's revision still advances past them.

  # Only hear about sessions going away.
  my $gone = $etcd->watch('/sessions/', { prefix => 1, no_put => 1 }, sub {
      my ($msg, $err) = @_;
      return warn "watch ended: $err->{message}\n" if $err;
      print "session ended: $_->{kv}{key}\n" for @{ $msg->{events} };
  });

=item fragment => 0 | 1

Whether the server may split a revision with very many or very large
events (a delete of a big prefix with C<prev_kv>, say) into several
messages, each under its request size limit (C<--max-request-bytes>).
Default 1. The client puts the pieces back together, so the callback
always sees one message per revision whichever you choose; 0 makes the
server send each revision in one piece however large.

=item on_compacted => 'resync' | 'error'

What to do when the history the watch needs has been compacted away (at
creation, or when resuming after a reconnect). C<'error'>, the default,
ends the watch with the C<OUT_OF_RANGE> error described below.
C<'resync'> keeps it going: the client reads the watched key or range as
it is now and passes that to the callback as one message

  {
      resync   => 1,
      header   => { revision => $rev, ... },  # the revision of that read
      kvs      => [ { key => ..., value => ..., ... }, ... ],  # as get gives them
      events   => [],
      watch_id => $id,
      created  => 0,
  }

and then watches on from revision C<$rev + 1>, so every change after the
read arrives as an event, none twice. The changes in between are lost
(that is what compaction means); C<kvs> is the state they led to, with
deleted keys simply absent. Replace whatever you built from earlier
events with it. The read is retried like a reconnect (C<max_retries>);
when it cannot be done the watch ends with its error, the message
starting C<resync after compaction failed>. Anything other than these two
strings croaks.

  my %config;
  my $w = $etcd->watch('/config/', { prefix => 1, on_compacted => 'resync' }, sub {
      my ($msg, $err) = @_;
      return warn "config watch ended: $err->{message}\n" if $err;
      if ($msg->{resync}) {    # history lost: start again from what is there now
          %config = map { $_->{key} => $_->{value} } @{ $msg->{kvs} };
          return;
      }
      for my $ev (@{ $msg->{events} }) {
          if ($ev->{type} eq 'PUT') { $config{ $ev->{kv}{key} } = $ev->{kv}{value} }
          else                      { delete $config{ $ev->{kv}{key} } }
      }
  });

=item watch_id => $id

Choose the watch's id yourself. Ids otherwise come from the client,
counting up from 1. Choosing one that is already in use on this client
makes the watch fail with C<ALREADY_EXISTS>.

=item auto_reconnect => 0 | 1

Whether to survive connection loss; default 1. See L</Reconnection>.

=back

Each message passed to the callback is a hash:

  {
      header   => { ... },       # revision: how far this message brings you
      watch_id => 1,
      created  => 0,             # 1 on the first message only, 0 afterwards
      events   => [
          { type    => 'PUT',    # or 'DELETE'
            kv      => { key => ..., value => ..., ... },
            prev_kv => { ... },  # only with the prev_kv option
          },
          ...
      ],
      compact_revision => $rev,  # only present when not 0
  }

The first message confirms that the watch exists (C<< created => 1 >>,
normally with no events). A message with an empty C<events> list after
that is a progress notification. One message may carry several events,
all in revision order. For a DELETE event, C<kv> holds the key
and the revision of the deletion; its value is empty.

When the server cancels the watch, the callback gets an error
(C<source> C<watch>) and the watch is over. The usual reason is
compaction: the history the watch needed (its C<start_revision>, or the
point it was resuming from) is gone. That error has status
C<OUT_OF_RANGE> and a message containing the server's reason and
C<compact_revision N>, N being the oldest revision still available. It
may follow the C<< created => 1 >> message, since etcd creates the watch
before it discovers that the history is missing. To
continue, read the current state with L</get> and start a new watch from
the revision in that response's header plus one, or let the client do
exactly that with C<< on_compacted => 'resync' >> (below).

  my $w = $etcd->watch('/jobs/', { prefix => 1 }, sub {
      my ($msg, $err) = @_;
      if ($err) {
          warn "watch ended: $err->{status} $err->{message}\n";
          return;
      }
      for my $ev (@{ $msg->{events} }) {
          printf "%s %s at %d\n", $ev->{type}, $ev->{kv}{key},
              $ev->{kv}{mod_revision};
      }
  });

A whole round: change a key once the watch is live, see both changes,
then cancel, after which nothing holds the loop any more:

=for ev-etcd example client prints ^PUT /jobs/7 = queued\nDELETE /jobs/7$

  my @seen;
  my $w;
  $w = $etcd->watch('/jobs/', { prefix => 1 }, sub {
      my ($msg, $err) = @_;
      die "watch ended: $err->{message}\n" if $err;
      if ($msg->{created}) {    # from now on no change is missed
          $etcd->put('/jobs/7', 'queued', sub { $etcd->delete('/jobs/7', sub { }) });
          return;
      }
      for my $ev (@{ $msg->{events} }) {
          push @seen, $ev->{type} eq 'PUT'
              ? "PUT $ev->{kv}{key} = $ev->{kv}{value}"
              : "DELETE $ev->{kv}{key}";
      }
      return if @seen < 2;
      print "$_\n" for @seen;
      $w->cancel(sub { });
  });
  EV::run;

=head2 EV::Etcd::Watch->progress

  $w->progress;

Asks the server how far the store has got. The answer reaches this
watch's callback as a message with an empty C<events> list and
C<< created => 0 >>, whose C<header>'s C<revision> is the server's
current revision. Use it on a quiet watch to learn that it is up to date,
or to check that the server still answers on the watch's stream. Only the
watch that asked gets the answer, even when other watches share the
stream. A request made while an earlier one from the same watch is still
unanswered is served by that same answer; one made before the server has
confirmed the watch, or while reconnecting, goes out once the watch
exists. Returns nothing. Calling it on a cancelled watch croaks.

  my $w = $etcd->watch('/jobs/', { prefix => 1 }, sub {
      my ($msg, $err) = @_;
      return warn "watch ended: $err->{message}\n" if $err;
      printf "caught up to revision %d\n", $msg->{header}{revision}
          if !$msg->{created} && !@{ $msg->{events} };
  });
  my $t = EV::timer(30, 30, sub { $w->progress });

=head2 EV::Etcd::Watch->cancel

  $w->cancel(sub {
      my ($resp, $err) = @_;   # ({}, undef)
      ...
  });

Stops the watch. From the moment C<cancel> returns, nothing more reaches
the watch's callback, not even events that had already arrived and were
waiting to be delivered. The cancel's own callback is called with an empty
hash on the next turn of the loop: a single C<EV::run(EV::RUN_ONCE)> after
C<cancel> is enough to see it, so an C<EV::break> in it cannot leak into a
later C<EV::run>. The server is told to drop the watch in the background;
a new watch may be created at once, even one that asks for the same
C<watch_id> (it starts as soon as the server has let go of the old one).
Calling C<cancel> on a watch that has already been cancelled is
harmless: its callback is then called immediately, inside the C<cancel>
call, again with C<({}, undef)>. This is the only case in which a callback
runs synchronously. Cancelling a watch that has already ended with an
error is harmless as well; it answers C<({}, undef)> from the loop.

=head2 Dropping the handle

The returned handle exists only so that you can cancel the watch. Letting
it go out of scope does I<not> stop the watch: it keeps running, and
keeps the loop busy, until it is cancelled, until it fails, or until the
client is destroyed. Keep the handle for as long as you may want to stop
the watch. The handle holds a reference to its client, so a client whose
watch handle you still keep stays alive.

=head2 Reconnection

Watches, lease keepalives and election observers share one policy for
connection loss, controlled per stream by C<auto_reconnect> (default on)
and per client by C<max_retries> (default 3).

When the connection breaks, the client waits and reopens the stream, on the
next endpoint when several are configured. The waits before successive
attempts are 1, 2, 4, 8 and 16 seconds, then 16 seconds for every further
attempt; with the default three attempts, those happen 1, 3 and 7 seconds
after the failure. After a successful reconnect the attempt count starts
again from zero, so a later failure gets the full number of attempts and
the schedule starts again at 1 second. C<max_retries> of 0 disables
reconnection, and a negative C<max_retries> keeps trying forever.

Keepalives do not wait that long between attempts: a wait of 4 seconds
while a leader is elected could let a lease of 5 seconds lapse. Their
wait is at most a third of the shortest TTL being kept (at least 0.2
seconds), and the attempts made sooner than the schedule above are extra:
they do not count toward C<max_retries>, so a keepalive gives up no sooner
than other streams, having tried more often.

After reconnecting, every watch is recreated on the server starting at the
revision just after the last event it delivered, under the same
C<watch_id>. Events are neither lost nor repeated, and no second
C<< created => 1 >> message is sent: the callback simply continues with
the next change. (If that history was compacted while the connection was
down, the watch ends with the compaction error described above.)

A member that loses its leader (cut off from the rest of the cluster,
or in a cluster that lost its quorum) counts as a broken connection too.
Every stream asks etcd to end it in that case (etcd's require-leader
metadata): the member ends it with C<etcdserver: no leader> once it has
been without a leader for three election timeouts (3 to 4 s with etcd's
default of 1 s), and the client
reopens it on the next endpoint as above, without reporting an error. A
keepalive is back well before a lease of a few seconds' TTL can lapse.
Unary calls carry the same request, so a leaderless member refuses them
at once with C<UNAVAILABLE> (C<retryable> 1, message C<etcdserver: no
leader>) instead of holding them until their deadline, and the client's
next calls go to the next endpoint. Two kinds of call are left for the
member to answer alone: a C<serializable> L</get>, and the maintenance
calls (L</status> shows C<< leader => 0 >> on such a member).

When the attempts run out, every affected stream gets exactly one error,
with status C<UNAVAILABLE>, C<retryable> 1, and the stream's C<source>
(C<watch>, C<keepalive> or C<observe>), and ends. A stream created with
C<< auto_reconnect => 0 >> ends with such an error on the first
connection loss.

Should the client's own task behind a kind of stream stop unexpectedly
(a bug in this module, not a network problem), every stream it served
gets exactly one error, status C<INTERNAL>, C<retryable> 0, message
C<< <source> stream stopped unexpectedly (internal error); start it
again >>, and the client no longer holds the loop for them. New streams
of that kind start on a fresh task.

=head2 One stream for all watches

However many watches a client has, they all travel over a single gRPC
Watch stream to the server, so ten thousand watches cost one stream, not
ten thousand. Create a second client if you want watches isolated from
each other.

=head1 LEASE

A lease is a server-side timer. Keys attached to it (through the C<lease>
option of L</put>, or by L</lock> and L</election_campaign>) are deleted
when it expires or is revoked. Lease ids are 64-bit integers chosen by the
server.

etcd's lease ids are signed 64-bit integers that are never negative, so
every method taking one accepts 0 to 9223372036854775807 (2**63-1), as a
number or as a decimal string (for instance an id kept in a file or JSON);
a negative id, or one beyond 2**63-1, croaks rather than being sent
wrapped around.

=head2 lease_grant

  $etcd->lease_grant($ttl, $cb);

Creates a lease that expires C<$ttl> seconds from now unless refreshed.
C<$ttl> must be a positive integer. Response: C<header>, C<id> (the lease
id), C<ttl> (the time to live the server actually granted, which may be
larger than asked for).

=head2 lease_revoke

  $etcd->lease_revoke($lease_id, $cb);

Ends the lease at once and deletes every key attached to it. Response:
C<header>. Revoking an unknown lease fails with C<NOT_FOUND>
(C<etcdserver: requested lease not found>).

=head2 lease_time_to_live

  $etcd->lease_time_to_live($lease_id, $cb);
  $etcd->lease_time_to_live($lease_id, { keys => 1 }, $cb);

Asks how long a lease has left. Response: C<header>; C<id>; C<ttl>, the
seconds remaining, or -1 when the lease has expired or never existed;
C<granted_ttl>, the time to live it was granted with; and, with
C<< keys => 1 >>, C<keys>, an array of the keys attached to it (present
only when there are some).

=head2 lease_leases

  $etcd->lease_leases($cb);

Lists the leases that currently exist. Response: C<header>, C<leases>, an
array of hashes each holding an C<id>.

=head2 lease_keepalive

  my $ka = $etcd->lease_keepalive($lease_id, $cb);
  my $ka = $etcd->lease_keepalive($lease_id, { auto_reconnect => 0 }, $cb);

Keeps a lease alive for as long as the keepalive runs. The first refresh
is sent immediately, and from then on one every third of the lease's TTL
(every 10 seconds for a 30-second lease). Every answer from the server is
passed to the callback as C<{ id =E<gt> ..., ttl =E<gt> ..., header =E<gt>
... }>, C<ttl> being the refreshed time to live. C<$lease_id> must not be
0.

If the server reports a TTL of 0, the lease no longer exists (it expired,
or was revoked): the callback then gets one error, status C<NOT_FOUND>,
source C<keepalive>, message C<etcdserver: requested lease not found>, and
the keepalive ends. Refreshing a lease that does not exist ends the same
way.

Loss is also noticed locally. When no answer has come for as long as the
lease's TTL since the last one (the server is frozen, unreachable, or
the connection is down and reconnecting), the lease may already have
expired on the server, and the callback gets one error: status
C<DEADLINE_EXCEEDED>, source C<keepalive>, a message saying that no reply
came within the lease's TTL. This error does not end the keepalive: it
goes on trying, and if answers resume while the lease still exists, ticks
resume too (a lease that did expire ends with the C<NOT_FOUND> error
instead). Treat the error as "assume the lease is gone": stop acting as
the holder of whatever the lease guards until a tick says otherwise. The
clock starts with the first answer; until then there is no known TTL.

  my $ka = $etcd->lease_keepalive($lease_id, sub {
      my ($resp, $err) = @_;
      if (!$err) { $holding = 1; return }
      $holding = 0;    # DEADLINE_EXCEEDED: maybe lost; NOT_FOUND: lost for good
      warn "lease trouble: $err->{status}: $err->{message}\n";
  });

The only option is C<auto_reconnect> (default 1), which works as described
under L</Reconnection>. A lease can expire while the connection is down;
after reconnecting, that shows up as the C<NOT_FOUND> error above. As with
watches, all keepalives of one client share a single LeaseKeepAlive
stream.

A member can stop answering while its connection stays open (a stalled
disk, a long fsync, a stopped process), and HTTP/2 pings notice that only
after C<keepalive_time> plus C<keepalive_timeout>. So when a refresh is
left unanswered for a third of the lease's TTL, the keepalive drops that
connection and sends the refresh to the next endpoint at once, which
leaves the lease a third of its TTL to spare. The callback hears nothing
of the move; it counts as a reconnect attempt under L</Reconnection>,
and a keepalive made with C<< auto_reconnect => 0 >> ends instead, with
an C<UNAVAILABLE> error. With a single endpoint the stream is opened
again on that endpoint after the keepalive's reconnect delay (at most a
third of the TTL, as described under L</Reconnection>).

=head2 lease_keepalive_once

  $etcd->lease_keepalive_once($lease_id, $cb);

Refreshes a lease once, for programs that schedule their own refreshes.
Response: C<header>, C<id>, C<ttl> (the refreshed time to live). A lease
that does not exist (expired, revoked, never granted) gives an error with
status C<NOT_FOUND>, source C<lease_keepalive_once>, message
C<etcdserver: requested lease not found>. A refresh may safely be sent
twice, so the call is retried like a read (L</Retryable errors>).

  # Refresh only while the work is going well.
  my $t = EV::timer(5, 5, sub {
      return unless work_is_healthy();
      $etcd->lease_keepalive_once($lease_id, sub {
          my ($resp, $err) = @_;
          warn "lease $lease_id is gone\n" if $err && $err->{status} eq 'NOT_FOUND';
      });
  });

=head2 EV::Etcd::Keepalive->cancel

  $ka->cancel(sub { my ($resp, $err) = @_; ... });

Stops refreshing the lease; it does not revoke it (use L</lease_revoke>
for that). As for watches, nothing reaches the keepalive's callback
once C<cancel> has returned, and the cancel's callback is called with
C<({}, undef)> on the next turn of the loop. A second C<cancel> calls back immediately. Dropping the handle without
cancelling does not stop the keepalive, exactly as for watches.

=head1 LOCK

Distributed mutual exclusion built on leases: whoever holds the lock owns
a key attached to their lease, so a holder that dies releases the lock
when its lease expires.

=head2 lock

  $etcd->lock($name, $lease_id, $cb);
  $etcd->lock($name, $lease_id, { timeout => $seconds }, $cb);

Waits until the lock called C<$name> is free, takes it, and calls back
with C<header> and C<key>: the key that represents this ownership,
C<$name> followed by C</> and the lease id in hexadecimal. It is unique
per lease, not per call: two locks of one name taken with the same
lease share one key, so give each holder its own lease.

The wait is bounded by the client's C<timeout> (L</new>), or by the call's own
C<timeout> option; C<< timeout => 0 >> waits as long as it takes. When the
deadline passes first, the callback gets C<DEADLINE_EXCEEDED> with source
C<lock>, and the server withdraws the request from the queue (its key is
deleted), so a timed-out request never holds the lock later. C<timeout> is
the only option.

Losing the lease while waiting (it expires, or you revoke it) removes this
request's place in the queue, but it does not end the request right away:
etcd answers only once the holders ahead of it are gone. etcd 3.5 then
reports an error (C<mutex: session is expired>); etcd 3.4 reports the lock
as acquired although its key has already been deleted with the lease. If
the lease may have lapsed while you waited, check it (L</lease_time_to_live>)
before trusting the lock. A waiting request cannot be withdrawn from the
client side before its deadline; to give up earlier, revoke the lease
(which frees the queue for others) and ignore the eventual answer, or drop
the client (see L</DESTRUCTION>).

=head2 unlock

  $etcd->unlock($key, $cb);

Releases the lock whose ownership key L</lock> returned. Response:
C<header>. Revoking the lease releases the lock as well.

=for ev-etcd example client prints ^holding nightly-report/\w+$

  $etcd->lease_grant(15, sub {
      my ($lease, $err) = @_;
      die $err->{message} if $err;
      $etcd->lock('nightly-report', $lease->{id}, sub {
          my ($held, $err) = @_;
          die $err->{message} if $err;
          # Only one process at a time gets here.
          print "holding $held->{key}\n";
          $etcd->unlock($held->{key}, sub {
              $etcd->lease_revoke($lease->{id}, sub {});
          });
      });
  });

For work that takes longer than the lease's TTL, run a
L</lease_keepalive> on the lease while holding the lock.

=head1 ELECTION

Leader election built on leases: candidates campaign under an election
name; the first one becomes leader and the others wait in line. Leadership
ends when the leader resigns or its lease disappears.

=head2 election_campaign

  $etcd->election_campaign($name, $lease_id, $value, $cb);
  $etcd->election_campaign($name, $lease_id, $value, { timeout => 0 }, $cb);

Enters the election C<$name> with the value C<$value> (typically something
that identifies the candidate, such as its address) and waits until this
candidate is leader. Like L</lock>, the wait is bounded by the client's
C<timeout> (L</new>) or the call's own C<timeout> (C<0>: no deadline, usual for a
standby that may wait for days); on C<DEADLINE_EXCEEDED> (source
C<election_campaign>) the server withdraws the candidate. Losing the
lease while waiting does not end the call: it is answered only when the
candidates ahead of it are gone, and then reports success (on etcd 3.4 and
3.5 alike) even though the candidate key went away with the lease. Give up
the same way as for a lock: revoke the lease and ignore the answer, or
drop the client. Response:

  {
      header => { ... },
      leader => {
          name  => $name,     # the election
          key   => ...,       # the key that represents this leadership
          rev   => ...,       # its create revision
          lease => $lease_id,
      },
  }

Keep the C<leader> hash: L</election_proclaim> and L</election_resign>
take it as it is.

=head2 election_leader

  $etcd->election_leader($name, $cb);

Who leads now. Response: C<header> and C<kv>, the leader's record (its
C<value> is the value it campaigned or last proclaimed with). When nobody
leads, the callback gets an error instead: status C<UNKNOWN>, message
C<election: no leader>.

=head2 election_proclaim

  $etcd->election_proclaim($leader, $value, $cb);

Lets the current leader replace its value without giving up leadership.
C<$leader> is the hash from L</election_campaign>. Response: C<header>.

=head2 election_resign

  $etcd->election_resign($leader, $cb);

Gives up leadership; the next candidate in line takes over. Response:
C<header>.

=head2 election_observe

  my $obs = $etcd->election_observe($name, $cb);
  my $obs = $etcd->election_observe($name, { auto_reconnect => 0 }, $cb);

Follows an election. The callback receives one message, C<{ header =E<gt>
..., kv =E<gt> ... }>, per change of leader (or of the leader's value),
C<kv> being the leader's record. If the election has a leader when the
observer starts, that leader is reported first. C<auto_reconnect> (default
1) works as under L</Reconnection>; after a reconnect, a leader that has
not changed meanwhile is not reported a second time. Returns an
EV::Etcd::Observe handle.

=head2 EV::Etcd::Observe->cancel

  $obs->cancel(sub { my ($resp, $err) = @_; ... });

Stops observing, with the same rules as L</EV::Etcd::Watch-E<gt>cancel>:
C<({}, undef)> once it is done, nothing delivered afterwards, a second
cancel answers immediately, and dropping the handle alone does not stop
the observer.

=head1 SESSIONS

L<EV::Etcd::Session> manages a lease for you: it grants it, keeps it
alive, attaches it to the keys, locks and campaigns made through the
session, calls you back once when the lease is lost (revoked, expired, or
silent for longer than its TTL), and can replace a lost lease and put the
session's keys back under the new one:

  use EV::Etcd::Session;

  my $session = EV::Etcd::Session->new(
      client  => $etcd,
      ttl     => 10,
      rebuild => 1,
      on_lost => sub { my ($lease_id, $err) = @_; warn "lost $lease_id: $err->{status}\n" },
  );
  $session->put('/services/api/host-7', '10.0.0.7:8080', sub { ... });
  $session->lock('/locks/nightly', sub { my ($held, $err) = @_; ... });
  $session->campaign('/elections/api', 'host-7', { timeout => 0 }, sub { ... });
  $session->close(sub { ... });    # revokes the lease

See L<EV::Etcd::Session> for the methods, the error it gives once the
lease is gone, and how a rebuild works.

=head1 MIRRORS

=head2 mirror

  my $m = $etcd->mirror($prefix, \%opt, $cb);

Returns an L<EV::Etcd::Mirror>, which keeps a copy of every key under a prefix in memory
and keeps it equal to the store: it reads the prefix in pages at one
revision (as L</range_iterator> does; option C<page_size>), then
watches from the next revision on. The callback gets C<< { ready => 1,
revision => $rev, count => $n } >> once the read is complete, and then
one message per revision, C<< { revision => $rev, changes => [ { type,
key, value, prev_value, revision }, ... ] } >>. The view answers
C<< $m->get($key) >>, C<< $m->keys >>, C<< $m->all >> and
C<< $m->revision >>, the revision it shows exactly; C<< $m->cancel($cb) >>
stops it as a watch's C<cancel> does. Across reconnects and restarts the
watch resumes where it was; after a compaction that cut its history the
mirror reads the prefix again and delivers the difference as one
message marked C<< resync => 1 >>. See L<EV::Etcd::Mirror> for the
options, the messages, the errors and what it costs in memory.

=head1 AUTHENTICATION

With authentication enabled, etcd requires a token with each request. You
get one by logging in; the client remembers it.

=head2 authenticate

  $etcd->authenticate($user, $password, $cb);

Logs in. Response: C<header> and C<token>. The token is stored in the
client and sent with every later request and with every stream opened
afterwards (open streams are not re-checked by etcd). Call
C<authenticate> again to switch to another user.

The client also remembers the user name and password of the last
successful login (or those given to L</new>). When etcd rejects the token as no longer valid (a
simple token expires after some idle time, C<--auth-token-ttl>; and a
change to users or roles makes tokens stale), the client logs in again
with those credentials, without sending the rejected token, and repeats
the request once; a stream that fails this way is reopened with the new
token. Calls that meet the stale token together share one new login. You
only see the error if that fails too: then it is etcd's answer to the call,
with the reason the new login failed added to the message (C<etcdserver:
invalid auth token; logging in again failed: ...>). A client that was given
a token through L</new> (C<auth_token>) and never called
C<authenticate> has no credentials to do this with: it passes etcd's
error on (e.g. C<etcdserver: invalid auth token>).

Streams need this too: etcd checks each new watch against the token its
stream was opened with, which may have expired or been forgotten by a
restarted server meanwhile. A watch refused in a way a new login may cure
(a stale token, or C<PERMISSION_DENIED> for a client with credentials)
makes the client log in once; the stream then reopens with the new token
and every watch on it resumes after the last revision it delivered,
nothing lost or repeated. The watch gets the error only if the new token
is refused too (so a user who lacks the right gets one
C<PERMISSION_DENIED>), or, with the reason added, if the login fails; the
other watches carry on. An election observe that etcd ends for want of a
good token is reopened after one new login the same way.

=head2 auth_enable

  $etcd->auth_enable($cb);

Switches authentication on for the whole cluster: from then on etcd
wants a token with every request (see L</authenticate>). Response:
C<header>. etcd agrees only once a user named C<root> exists and holds
the C<root> role; until then the callback gets C<FAILED_PRECONDITION>,
with C<etcdserver: root user does not exist> or C<etcdserver: root user
does not have root role>. L</Setting up authentication> goes through the
steps in order.

=head2 auth_disable

  $etcd->auth_disable($cb);

Switches authentication off for the whole cluster. Response: C<header>.
Only a user with the C<root> role may do this; anyone else gets
C<PERMISSION_DENIED> (C<etcdserver: permission denied>). Once it has
succeeded, the client drops its token and the user name and password it
remembered: etcd without authentication turns away requests that still
carry a token.

=head2 auth_status

  $etcd->auth_status($cb);

Response: C<header>, C<enabled> (0 or 1) and C<auth_revision>. etcd 3.4
does not have this request: there it fails with status C<UNIMPLEMENTED>.

=head2 Users

The seven calls below manage etcd's users. What they have in common:

=over 4

=item *

User names, passwords and role names are byte strings. C<undef> or a
reference in their place croaks, naming the method and the argument
(C<user_add: username must be defined>, C<user_grant_role: role name must
be defined>), and nothing is sent.

=item *

None of them takes an options hash; the client's C<timeout> (L</new>) is
their deadline. For L</retry>, C<user_get> and C<user_list> are reads and
the others writes.

=item *

While authentication is enabled, they need the token of a user that
holds the C<root> role. Anyone else gets C<PERMISSION_DENIED>
(C<etcdserver: permission denied>); the one exception is L</user_get> of
one's own name.

=item *

A user name that etcd does not know gives C<FAILED_PRECONDITION> with the
message C<etcdserver: user name not found>.

=back

Changes to users and roles make the tokens etcd handed out before them
stale; a client that has credentials logs in again by itself when etcd
rejects its token (see L</authenticate>).

=head3 user_add

  $etcd->user_add($user, $password, $cb);

Creates a user with this password and no roles. Response: C<header>. A
name that is taken gives C<FAILED_PRECONDITION> (C<etcdserver: user name
already exists>), an empty one C<INVALID_ARGUMENT> (C<etcdserver: user
name is empty>).

=head3 user_delete

  $etcd->user_delete($user, $cb);

Removes a user. Response: C<header>. While authentication is enabled,
etcd refuses to remove C<root>, with C<INVALID_ARGUMENT> (C<etcdserver:
invalid auth management>).

=head3 user_change_password

  $etcd->user_change_password($user, $password, $cb);

Gives a user a new password. Response: C<header>. Changing one's own
password is an administrative request like the others: a user without
the C<root> role cannot do it.

=head3 user_grant_role

  $etcd->user_grant_role($user, $role, $cb);

Gives a user a role, and with it the role's permissions (see L</Roles>).
Response: C<header>. Granting a role the user already has is not an
error. A role that does not exist gives C<FAILED_PRECONDITION>
(C<etcdserver: role name not found>). C<root> is a role of its own that
need not be created: granting it to the user C<root> is what
L</auth_enable> waits for.

=head3 user_revoke_role

  $etcd->user_revoke_role($user, $role, $cb);

Takes a role away from a user. Response: C<header>. A role the user does
not have gives C<FAILED_PRECONDITION> (C<etcdserver: role is not granted
to the user>). While authentication is enabled, etcd refuses to take the
C<root> role from the user C<root> (C<INVALID_ARGUMENT>, C<etcdserver:
invalid auth management>).

=head3 user_get

  $etcd->user_get($user, $cb);

Response: C<header> and C<roles>, an array with the names of the user's
roles (empty when it has none). A user may ask about itself without the
C<root> role.

=head3 user_list

  $etcd->user_list($cb);

Response: C<header> and C<users>, an array with the names of all users
(empty when there are none).

=head2 Roles

A role is a named set of permissions on keys; users get permissions only
through the roles granted to them (L</user_grant_role>). The six calls
below follow the rules listed under L</Users>: names are byte strings
(C<undef> or a reference croaks), there is no options hash, and once
authentication is enabled they need the C<root> role, except that a user
may read a role it holds with L</role_get>. For L</retry>, C<role_get>
and C<role_list> are reads and the others writes. A role that etcd does not
know gives C<FAILED_PRECONDITION> with C<etcdserver: role name not
found>.

The keys of a permission are always whole keys as etcd stores them, also
when the client has a L</namespace>.

=head3 role_add

  $etcd->role_add($role, $cb);

Creates a role without permissions. Response: C<header>. A name that is
taken gives C<FAILED_PRECONDITION> (C<etcdserver: role name already
exists>), an empty one C<INVALID_ARGUMENT> (C<etcdserver: role name is
empty>).

=head3 role_delete

  $etcd->role_delete($role, $cb);

Removes a role; the users that had it lose it. Response: C<header>.
While authentication is enabled, etcd refuses to remove the C<root>
role (C<INVALID_ARGUMENT>, C<etcdserver: invalid auth management>).

=head3 role_get

  $etcd->role_get($role, $cb);

Response: C<header> and C<perm>, an array with one hash per permission
of the role (empty when it has none):

  perm => [
      { perm_type => 'READWRITE', key => '/app/', range_end => '/app0' },
      { perm_type => 'READ',      key => '/motd', range_end => ''      },
  ]

C<perm_type> is C<READ>, C<WRITE> or C<READWRITE>; C<range_end> is
always present, C<''> for a permission on the single key C<key>.

=head3 role_list

  $etcd->role_list($cb);

Response: C<header> and C<roles>, an array with the names of all roles
(empty when there are none).

=head3 role_grant_permission

  $etcd->role_grant_permission($role, $perm_type, $key, $range_end, $cb);

Lets the role read (C<READ>), write (C<WRITE>) or do both (C<READWRITE>)
on some keys. C<$perm_type> may be in any case; anything else croaks
(C<role_grant_permission: unknown perm_type 'x' (expected READ, WRITE or
READWRITE)>). C<$range_end> chooses the keys, as C<range_end> does for
L</get>:

=over 4

=item * C<undef> (or C<''>): the key C<$key> alone;

=item * another string: every key from C<$key> up to, not including,
C<$range_end>. For every key that starts with a prefix, give the prefix
with its last byte raised by one (C</app0> for C</app/>);

=item * C<"\0">: every key from C<$key> on.

=back

Response: C<header>. Granting again for the same C<$key> and
C<$range_end> replaces the permission's type.

=head3 role_revoke_permission

  $etcd->role_revoke_permission($role, $key, $range_end, $cb);

Withdraws the permission that was granted with this very C<$key> and
C<$range_end> (C<undef> and C<''> alike mean a single key), whatever its
type. Response: C<header>. A permission the role does not have, for
instance one asked for with another range, gives
C<FAILED_PRECONDITION> (C<etcdserver: permission is not granted to the
role>).

=head2 Setting up authentication

The order matters: the user C<root> with the C<root> role comes first,
as L</auth_enable> refuses without it, and everything else is easier
done before authentication is on. This program sets up a user that may
only touch keys under C</app/>, then enables authentication (run it
once, against a cluster without authentication):

=for ev-etcd example client own-etcd prints ^stored$

  my @steps = (
      sub { $etcd->user_add('root', 'root-secret', shift) },
      sub { $etcd->user_grant_role('root', 'root', shift) },
      sub { $etcd->role_add('app', shift) },
      sub { $etcd->role_grant_permission('app', 'READWRITE', '/app/', '/app0', shift) },
      sub { $etcd->user_add('svc', 'svc-secret', shift) },
      sub { $etcd->user_grant_role('svc', 'app', shift) },
      sub { $etcd->auth_enable(shift) },
  );
  my $next; $next = sub {
      my $step = shift @steps or return;
      $step->(sub {
          my (undef, $err) = @_;
          die "setup failed: $err->{source}: $err->{message}\n" if $err;
          $next->();
      });
  };
  $next->();
  EV::run;

  # From now on, log in first:
  $etcd->authenticate('svc', 'svc-secret', sub {
      my (undef, $err) = @_;
      die $err->{message} if $err;
      $etcd->put('/app/ready', 1, sub {        # sent with the token
          my (undef, $err) = @_;
          print $err ? "refused: $err->{message}\n" : "stored\n";
      });
  });
  EV::run;

=head1 MAINTENANCE

These requests go to the member the client is currently talking to,
unless they name another. L</status>, L</hash>, L</hash_kv> and
L</defragment> take an options hash with

=over 4

=item endpoint => 'host:port'

The member to ask, in the form the C<endpoints> of L</new> take (a
scheme is allowed, and must agree with the client's TLS setting). It need
not be one of the client's endpoints: a program connected to one member
can check, or defragment, each member of the cluster in turn. The call is
made once, on a connection of its own to that member, and is never moved
to another one: when the member cannot be reached the callback gets
C<UNAVAILABLE>. A malformed endpoint croaks. The client's own endpoint
list is not changed.

=item timeout => $seconds

The call's own deadline, as for every call (L</Per-call deadlines>).

=back

Asking every member of the cluster for its status:

=for ev-etcd example client prints ^\S+: db \d+ bytes, leader \d+$

  $etcd->member_list(sub {
      my ($resp, $err) = @_;
      die "member_list failed: $err->{message}\n" if $err;
      for my $member (map { $_->{client_urls}[0] } @{ $resp->{members} }) {
          $etcd->status({ endpoint => $member }, sub {
              my ($s, $err) = @_;
              return warn "$member: $err->{message}\n" if $err;
              printf "%s: db %d bytes, leader %s\n", $member, $s->{db_size}, $s->{leader};
          });
      }
  });

=head2 status

  $etcd->status($cb);
  $etcd->status({ endpoint => $member }, $cb);

Response: C<header>; C<version>, the server's version string;
C<db_size>, the size of the backend database file in bytes;
C<db_size_in_use>, how much of it holds live data; C<leader>, the member
id of the current leader; C<raft_index>, C<raft_term> and
C<raft_applied_index>, the member's raft state; C<is_learner>, 1 for a
learner member; and C<errors>, an array of error strings, present only
when the member reports any.

=head2 alarm

  $etcd->alarm($action, $cb);
  $etcd->alarm($action, { member_id => $id, alarm => $type }, $cb);

C<$action> is C<GET> (list the raised alarms), C<ACTIVATE> or
C<DEACTIVATE> (any case). The options pick the member (C<member_id>, 0 =
all members, the default; a number or a decimal string up to 2**64-1, see
L</CLUSTER>) and the alarm type (C<alarm>: C<NONE>, the
default, C<NOSPACE> or C<CORRUPT>). Response: C<header> and C<alarms>:

  alarms => [ { member_id => $id, alarm => 1, alarm_type => 'NOSPACE' } ]

C<alarm> is the numeric type and C<alarm_type> its name. A raised
C<NOSPACE> alarm (the database reached its quota) makes the cluster refuse
writes until space is freed (compact, defragment) and the alarm is
deactivated. On etcd 3.4 this response has a header of zeros.

=head2 defragment

  $etcd->defragment($cb);
  $etcd->defragment({ endpoint => $member }, $cb);

Rewrites the member's database file to give back the space freed by
compaction. The member stalls while it does this. Response: C<header>,
all zeros (etcd sends none).

=head2 hash_kv

  $etcd->hash_kv($cb);
  $etcd->hash_kv($revision, $cb);
  $etcd->hash_kv($revision, { endpoint => $member }, $cb);

A checksum of the key-value store up to C<$revision> (0 or omitted: the
latest), for comparing members. Response: C<header>, C<hash> and
C<compact_revision>, the revision of the last compaction (etcd reports -1
when there has been none).

=head2 hash

  $etcd->hash($cb);
  $etcd->hash({ endpoint => $member }, $cb);

A checksum of the member's whole backend database (every bucket, not just
the keys; see L</hash_kv> for a checksum members can be compared by).
Response: C<header> and C<hash>, an unsigned 32-bit number.

=for ev-etcd example client prints ^member \d+: backend hash \d+$

  $etcd->hash(sub {
      my ($resp, $err) = @_;
      die "hash failed: $err->{message}\n" if $err;
      printf "member %s: backend hash %u\n", $resp->{header}{member_id}, $resp->{hash};
  });

=head2 snapshot

  $etcd->snapshot($fh, $cb);
  $etcd->snapshot(sub { my ($piece) = @_; ... }, $cb);

Copies the member's backend database, as C<etcdctl snapshot save> does.
The first argument says where the bytes go: an open file handle (the
client switches it to binary mode and prints each piece to it as it
arrives) or a code reference called with each piece in turn. The
callback runs once at the end. On success the response has C<size>, the
number of bytes written, and C<header>. The last 32 bytes of a snapshot
are the SHA-256 of the rest; the client checks them, and when they do not
match the callback gets an error with status C<DATA_LOSS>, source
C<snapshot> and a message starting C<snapshot checksum mismatch>: throw
the file away. The bytes written, checksum included, are exactly what
C<etcdutl snapshot restore> (or C<etcdctl snapshot restore> before etcd
3.5) expects. A failed write to the handle (a full disk), or a chunk
callback that dies, ends the copy at once with status C<INTERNAL> and a
message naming the reason. A snapshot is never resumed after a
connection failure; that failure is the callback's error. There is no
deadline: a large database takes as long as it takes. Returns nothing.

=for ev-etcd example client prints ^saved \d+ bytes$

  open my $fh, '>', 'etcd-backup.db' or die "open: $!";
  $etcd->snapshot($fh, sub {
      my ($resp, $err) = @_;
      close $fh or die "close: $!";
      die "snapshot failed: $err->{message}\n" if $err;
      print "saved $resp->{size} bytes\n";
  });

=head2 move_leader

  $etcd->move_leader($member_id, $cb);

Hands leadership to another voting member, given by its member id (a
number or a decimal string, see L</CLUSTER>). Must be sent to the current
leader. Response: C<header>, all zeros (etcd sends none).

=head2 downgrade

  $etcd->downgrade($action, $version, [\%opt,] $cb);
  $etcd->downgrade('cancel', [\%opt,] $cb);

Drives etcd's cluster downgrade (etcd 3.5 and newer: etcd 3.4 answers
every action with C<UNIMPLEMENTED>). C<$action> is one of (in any case):

=over 4

=item validate

Asks whether the cluster could go down to C<$version>, which must be the
minor version just below the cluster's (C<'3.4'> for a 3.5 cluster),
without changing anything.

=item enable

Starts the downgrade to C<$version>: from then on members may be restarted
on the older etcd.

=item cancel

Stops a downgrade in progress; no C<$version>.

=back

The only option is C<timeout>. Response: C<header> and C<version>, the
cluster's version as etcd reports it (C<'3.5.0'>). etcd refuses a wrong
target with C<INVALID_ARGUMENT> (C<etcdserver: invalid downgrade target
version>, or C<etcdserver: wrong downgrade target version format>), and
answers C<FAILED_PRECONDITION> to an C<enable> or C<validate> while a
downgrade is in progress (C<etcdserver: cluster has a downgrade job in
progress>) and to a C<cancel> with none (C<etcdserver: no inflight
downgrade job>). A bad action, a missing version, or an unknown option
croaks.

etcd 3.5 applies C<enable> and C<cancel> but does not answer them: the
call ends with C<UNAVAILABLE> (C<etcdserver: request timed out>) after the
server's request timeout, or with C<DEADLINE_EXCEEDED> at your own
C<timeout> if that comes first. Check the outcome with C<validate>, as
here:

=for ev-etcd example client prints ^downgrade to 3\.4: (possible|not possible)

  $etcd->downgrade(validate => '3.4', sub {
      my ($resp, $err) = @_;
      if ($err) { print "downgrade to 3.4: not possible ($err->{status})\n" }
      else      { print "downgrade to 3.4: possible from $resp->{version}\n" }
  });

=head1 CLUSTER

Member ids are unsigned 64-bit integers and are often above the largest
signed one; they arrive as Perl unsigned integers. Pass them back exactly
as you received them (do not format them with C<%d>).

Wherever a member id goes in (L</member_remove>, L</member_update>,
L</member_promote>, L</move_leader>, and the C<member_id> option of
L</alarm>), it may be a number or a decimal string, over the whole range
0 to 18446744073709551615 (2**64-1): an id read back from JSON or a
configuration file, or interpolated as C<"$member-E<gt>{id}">, works
as is. Negative values and values beyond 2**64-1 croak.

Every member request answers with C<header> and C<members>, the list of
members after the request:

  members => [
      { id          => $id,
        name        => 'node1',     # empty until the member has started
        peer_urls   => [ 'http://10.0.0.1:2380' ],
        client_urls => [ 'http://10.0.0.1:2379' ],
        is_learner  => 0,
      },
      ...
  ]

=head2 member_list

  $etcd->member_list($cb);
  $etcd->member_list({ linearizable => 1 }, $cb);

The current members. With C<< linearizable => 1 >> the answer is
guaranteed to be up to date (it goes through the leader); otherwise the
member may answer from its local view. etcd 3.4 does not know this flag
and always answers from its local view.

=head2 member_add

  $etcd->member_add(\@peer_urls, $cb);
  $etcd->member_add(\@peer_urls, { is_learner => 1 }, $cb);

Announces a new member reachable at C<@peer_urls> (must not be empty).
The new server must then be started with C<--initial-cluster-state
existing>. With C<< is_learner => 1 >> it joins as a non-voting learner.
The response also has C<member>, the hash of the new member, whose C<id>
you need for the calls below.

=head2 member_remove

  $etcd->member_remove($member_id, $cb);

Removes a member from the cluster.

=head2 member_update

  $etcd->member_update($member_id, \@peer_urls, $cb);

Changes a member's peer URLs.

=head2 member_promote

  $etcd->member_promote($member_id, $cb);

Turns a learner into a voting member; etcd refuses while the learner is
still catching up.

=head1 ENDPOINTS AT RUN TIME

=head2 set_endpoints

  $etcd->set_endpoints(['10.0.0.5:2379', '10.0.0.6:2379']);

Replaces the endpoint list, checked like the C<endpoints> option of
L</new> (a bad list croaks and changes nothing); the entries must use the
client's scheme: C<https://> entries croak on a plaintext client
(C<endpoint '...' asks for TLS; this client uses plaintext>) and
C<http://> ones on a TLS client. When the new list contains the endpoint
in use, the client stays on it and nothing else happens. Otherwise new
calls go to the first entry of the new list and open streams (watches,
keepalives, observes) reopen there at once, resuming where they were, so
no event is lost or repeated and no callback is told about the move. Calls
already in flight finish on the connection they started on.

=head2 endpoints

  my $list = $etcd->endpoints;   # ['127.0.0.1:2379', ...]

The endpoint list in use, as given to L</new> or L</set_endpoints> (or as
the last automatic sync found it), as a new array reference.

=head2 io_mode

  my $mode = $etcd->io_mode;     # 'inline' or 'background'

Where this client's unary calls and watches run: the C<io_mode> option of
L</new> as it took effect.

=head1 NAMESPACES

A client made with the C<namespace> option of L</new> works as if its
prefix were the whole keyspace. The translation happens in the client,
before a request leaves and after an answer arrives: etcd only ever sees
and stores the full keys, and it enforces nothing. A client without a
namespace (or with a shorter prefix) sees the same keys with the prefix in
place, as in this picture, for a client with the namespace C</app/>:

  the client writes      etcd stores       the client reads back
  put('cfg/port')        /app/cfg/port     key => 'cfg/port'
  lock('job')            /app/job/694d...  key => 'job/694d...'

Such a client is an L<EV::Etcd::Namespace>; that page sums up, method by
method, what this section describes, and shows how to make one by name.

=head2 What is translated

=over 4

=item * L</put>, L</get>, L</delete> and L</watch>

The key gets the prefix. A C<range_end> gets it too, except two special
ends: C<''> (one key only) stays as it is, and C<"\0">, which on a plain
client means "up to the end of the keyspace", means up to the end of the
namespace: the first key that no longer starts with the prefix. With
C<prefix> the range is worked out from the prefixed key, so
C<< get('', { prefix => 1 }) >> reads the whole namespace and nothing
else. A range made of a prefixed key and a prefixed end starts and ends
inside the namespace, so no range can reach beyond it.

=item * L</txn>

The same for the C<key> and C<range_end> of every compare, and for the
key, C<range_end> and C<prefix> of every operation in C<success> and
C<failure>.

=item * L</lock> and L</unlock>

The lock's name gets the prefix; the ownership key that L</lock> returns
comes without it, and L</unlock> expects it that way.

=item * L</election_campaign>, L</election_leader>, L</election_proclaim>, L</election_resign>, L</election_observe>

The election's name gets the prefix. The C<leader> hash of
L</election_campaign> comes with its C<name> and C<key> stripped; pass it
to L</election_proclaim> and L</election_resign> just as you received it.

=item * L</range_iterator> and L<EV::Etcd::Session>

Both work through the methods above, so they see the namespace: an
iterator over C<''> with C<prefix> walks the whole namespace and nothing
else, and a session's keys, locks and campaigns are made inside it.

=item * Responses

The prefix is taken off every key that comes back: C<kvs>, C<prev_kv>,
C<prev_kvs>, the C<kv> and C<prev_kv> of every watch event, the records in
the C<responses> of a transaction, the leader records of elections, and
the key that L</lock> returns. The key equal to the prefix itself comes
back as C<''>.

=item * L</lease_time_to_live> with C<< keys => 1 >>

A lease may carry keys of several namespaces. The answer lists only the
keys inside this client's namespace, stripped, and has no C<keys> entry
when none of the lease's keys is inside.

=back

Options hashes and the lists and hashes of a transaction are copied where
a key has to change; what you passed is never modified, so it may be used
again. Arguments are checked by the same code as on a plain client, and a
bad one croaks with the same message. Keys carrying the UTF-8 flag get the
prefix in front of their UTF-8 bytes, as L</ENCODING> describes for a plain
client.

=head2 What is not

Everything that names no key works as on a plain client and acts on the
whole cluster:

=over 4

=item * revisions: the C<revision> of every header counts the writes made
in all namespaces, and L</compact> discards the history of all of them;

=item * leases: L</lease_revoke> deletes the lease's keys in every
namespace, and L</lease_leases> lists every lease of the cluster;

=item * authentication: the keys given to L</role_grant_permission> and
L</role_revoke_permission> are full keys; to confine a user to the
namespace C</app/>, grant it the range from C</app/> to C</app0>;

=item * the maintenance and cluster requests, L</set_endpoints> and
L</endpoints>, L</close>, and the C<watch_id> of a watch.

=back

Namespaces can overlap: a client with C</app/> sees the keys of a client
with C</app/billing/> as C<billing/...>. Pick prefixes that end in a
separator, such as C</>, so that C</app> and C</apple> do not share keys.

=head2 namespace

  my $prefix = $etcd->namespace;   # '/app/', or undef without a namespace

The client's namespace, as bytes.

=head1 USING WITH ANYEVENT AND MOJO

EV::Etcd delivers its answers through an I/O watcher on EV's default
loop, so it works inside any framework that runs that loop: its callbacks
run whenever the framework waits for events. Two popular ones, AnyEvent
and Mojolicious, do so when they use their EV backends. Nothing needs to
be set up in the client for either of them; what matters is that the
framework runs EV, and that the program never waits from inside a
callback.

=head2 The backend must be EV

A framework running a loop of its own (AnyEvent's pure-Perl
AnyEvent::Loop, Mojo::Reactor::Poll) never runs EV, and then no EV::Etcd
callback is ever called. Check the backend once at start-up:

    AnyEvent::detect() eq 'AnyEvent::Impl::EV'
        or die "AnyEvent runs $AnyEvent::MODEL, not EV\n";

    Mojo::IOLoop->singleton->reactor->isa('Mojo::Reactor::EV')
        or die "Mojo::IOLoop does not run on EV\n";

=over

=item AnyEvent

AnyEvent chooses its backend when the first watcher (or condition
variable wait) is made. It takes the first event loop module that is
already loaded, trying EV before any other, and when none is loaded it
loads EV if it can. Since C<use EV::Etcd> loads EV, AnyEvent uses
AnyEvent::Impl::EV unless C<PERL_ANYEVENT_MODEL> names another backend.
Watchers made through AnyEvent (C<AE::timer>, C<AE::io>,
AnyEvent::Handle, AnyEvent::Socket, ...) are then EV watchers on the
same loop, and C<< $cv->recv >> runs that loop (one iteration at a time)
until the condition variable is sent.

=item Mojolicious

Mojo::IOLoop picks its reactor when Mojo::IOLoop is loaded: the class
named in C<MOJO_REACTOR> if that is set, otherwise Mojo::Reactor::EV
(except on Perls with pseudo-fork, such as Windows, where the default is
Mojo::Reactor::Poll). If the class cannot be loaded (Mojo::Reactor::EV
needs EV 4.32 or newer) it falls back to Mojo::Reactor::Poll without a
word. So with Mojolicious 9.31 and EV installed, the EV reactor is chosen
automatically; setting the variable before Mojo::IOLoop is loaded

    BEGIN { $ENV{MOJO_REACTOR} = 'Mojo::Reactor::EV' }

only makes the choice explicit and overrides an environment that says
C<Mojo::Reactor::Poll>. Only the first EV reactor of a process really
runs EV, since EV has one default loop: every further Mojo::IOLoop
object (C<< Mojo::IOLoop->new >>) gets a Mojo::Reactor::Poll. Drive
EV::Etcd from the singleton loop. In particular, a blocking
Mojo::UserAgent request runs on such a private Poll loop, so no EV::Etcd
callback runs while it waits; use the non-blocking requests
(C<get_p>, C<post_p>, ...) instead.

=back

=head2 AnyEvent: condition variables

A condition variable turns one call into a blocking wait at the top level
of a program: send the callback's arguments to it and C<recv> them.
Several calls in flight at once are waited for with C<begin> and C<end>.
An C<AE::timer> makes a deadline. Because a C<die> inside an EV::Etcd
callback only reaches C<$EV::DIED> (a warning), report failures with
C<< $cv->croak >> instead: C<recv> then dies in the caller.

=for ev-etcd example prints ^ok$

    use strict;
    use warnings;
    use EV;
    use EV::Etcd;
    use AnyEvent;

    my $etcd = EV::Etcd->new(endpoints => ['127.0.0.1:2379']);

    AnyEvent::detect() eq 'AnyEvent::Impl::EV'
        or die "AnyEvent runs $AnyEvent::MODEL, not EV\n";

    # One call: recv returns what the callback was given.
    my $cv = AE::cv;
    $etcd->put('/demo/ae/color', 'blue', sub { $cv->send(@_) });
    my ($resp, $err) = $cv->recv;
    die "put failed: $err->{message}\n" if $err;

    # The same, with a failure turned into an exception of recv.
    $cv = AE::cv;
    $etcd->get('/demo/ae/color', sub {
        my ($resp, $err) = @_;
        $err ? $cv->croak("get failed: $err->{message}\n") : $cv->send($resp);
    });
    my $got = $cv->recv;
    $got->{kvs}[0]{value} eq 'blue' or die "read back the wrong value\n";

    # A group: ten puts in flight together, one wait for all of them.
    my (%rev, @failed);
    my $group = AE::cv;
    $group->begin;
    for my $n (1 .. 10) {
        $group->begin;
        $etcd->put("/demo/ae/job/$n", "task $n", sub {
            my ($resp, $err) = @_;
            if ($err) { push @failed, "$n: $err->{status}" }
            else      { $rev{$n} = $resp->{header}{revision} }
            $group->end;
        });
    }
    $group->end;    # recv returns once every begin has had its end
    $group->recv;
    die "puts failed: @failed\n" if @failed;
    keys %rev == 10 or die "missing answers\n";

    # A deadline: whichever comes first, the answer or the timer.
    $cv = AE::cv;
    $etcd->get('/demo/ae/job/', { prefix => 1 }, sub { $cv->send(answer => @_) });
    my $deadline = AE::timer(5, 0, sub { $cv->send('timeout') });
    my ($what, $list, $lerr) = $cv->recv;
    die "no answer within 5 s\n" if $what eq 'timeout';
    die "get failed: $lerr->{message}\n" if $lerr;
    @{ $list->{kvs} } == 10 or die "expected 10 jobs\n";

    # Errors arrive as the usual hash.
    $cv = AE::cv;
    $etcd->lease_revoke(424242, sub { $cv->send(@_) });
    (undef, $err) = $cv->recv;
    $err && $err->{status} eq 'NOT_FOUND' or die "expected NOT_FOUND\n";
    print "ok\n";

A deadline that fires does not cancel the call: its answer still comes
later, and goes to the callback (sending a condition variable that has
already been sent does no harm).

Watches work the same way: a watch callback runs whenever the loop does,
also while the program sits in C<recv> waiting for something else.

=head2 Mojolicious: promises

A small wrapper turns any method into one returning a Mojo::Promise,
resolved with the response or rejected with the error hash. Promises then
chain with C<then>, combine with C<< Mojo::Promise->all >>, and are
waited for at the top level with C<wait> (which runs Mojo::IOLoop, hence
EV, until the promise has settled).

=for ev-etcd example prints ^ok$

    use strict;
    use warnings;
    BEGIN { $ENV{MOJO_REACTOR} = 'Mojo::Reactor::EV' }
    use EV;
    use EV::Etcd;
    use Mojo::IOLoop;
    use Mojo::Promise;

    my $etcd = EV::Etcd->new(endpoints => ['127.0.0.1:2379']);

    Mojo::IOLoop->singleton->reactor->isa('Mojo::Reactor::EV')
        or die "Mojo::IOLoop does not run on EV\n";

    sub etcd_p {
        my ($etcd, $method, @args) = @_;
        my $p = Mojo::Promise->new;
        $etcd->$method(@args, sub {
            my ($resp, $err) = @_;
            $err ? $p->reject($err) : $p->resolve($resp);
        });
        return $p;
    }

    # A chain: each step starts when the one before has answered.
    my ($value, $failure);
    etcd_p($etcd, put => '/demo/mojo/color', 'green')->then(sub {
        return etcd_p($etcd, get => '/demo/mojo/color');
    })->then(sub {
        my ($resp) = @_;
        $value = $resp->{kvs}[0]{value};
    })->catch(sub { $failure = $_[0] })->wait;
    die "chain failed: $failure->{message}\n" if $failure;
    $value eq 'green' or die "read back the wrong value\n";

    # Many calls at once; all() gives their results in the order of the calls.
    my @results;
    Mojo::Promise->all(
        map { etcd_p($etcd, put => "/demo/mojo/job/$_", "task $_") } 1 .. 10
    )->then(sub { @results = @_ })
     ->catch(sub { $failure = $_[0] })->wait;
    die "puts failed: $failure->{message}\n" if $failure;
    @results == 10 or die "expected 10 results\n";
    my @revs = map { $_->[0]{header}{revision} } @results;

    # A rejection carries the error hash.
    my $err;
    etcd_p($etcd, lease_revoke => 424242)
        ->then(sub { die "revoking an unknown lease succeeded\n" })
        ->catch(sub { $err = $_[0] })->wait;
    ref $err eq 'HASH' && $err->{status} eq 'NOT_FOUND'
        or die "expected a NOT_FOUND error hash\n";

    # A deadline: race the call against a timer.
    my $list;
    Mojo::Promise->race(
        etcd_p($etcd, get => '/demo/mojo/job/', { prefix => 1 }),
        Mojo::Promise->timeout(5 => 'no answer within 5 s'),
    )->then(sub { $list = $_[0] })->catch(sub { $failure = $_[0] })->wait;
    die ref $failure ? "get failed: $failure->{message}\n" : "$failure\n" if $failure;
    my %mod = map { $_->{key} => $_->{mod_revision} } @{ $list->{kvs} };
    $mod{"/demo/mojo/job/$_"} == $revs[ $_ - 1 ] or die "job $_ is not as written\n"
        for 1 .. 10;
    print "ok\n";

The same promises mix freely with Mojo's own I/O: C<get_p> of a
non-blocking Mojo::UserAgent, C<< Mojo::IOLoop->server >> and
C<< Mojo::IOLoop->client >> streams, and C<< Mojo::IOLoop->timer >>s all
run in the same EV loop as the client. A program that runs the loop
itself with C<< Mojo::IOLoop->start >> (a server, say) needs no C<wait> at
all, and a watch's callback is called whenever a change arrives while the
loop runs; C<< Mojo::IOLoop->stop >> ends it.

Keep in mind that a promise left over from a race (the C<timeout> above)
still holds its timer: a later C<< Mojo::IOLoop->start >> runs until that
timer has fired.

=head2 Never wait inside a callback

C<< $cv->recv >> and C<< $promise->wait >> are for the top level of a
program, never for code running in a callback of EV::Etcd (or of any other
watcher). Start the next step from the callback instead, or return a
promise from C<then>. A wait nested in a callback does not do what it
seems to:

=over

=item AnyEvent

A C<recv> made while another C<recv> is already waiting croaks with
C<AnyEvent::CondVar: recursive blocking wait attempted>. Inside an
EV::Etcd callback that exception goes to C<$EV::DIED> (by default the
warning C<EV: error in callback (ignoring): ...>), the rest of the
callback is skipped, and the outer C<recv> goes on waiting, for ever if
the skipped code was what would have sent its condition variable. When the
loop is run by C<EV::run> instead of a C<recv>, AnyEvent does not notice:
the nested C<recv> then runs the EV loop recursively, which calls other
callbacks, other EV::Etcd callbacks included, from within the first one,
and any of them that waits in turn croaks as above.

=item Mojolicious

While Mojo::IOLoop is running, C<wait> returns at once without waiting:
the promise is still pending when it returns, and its result only comes
later, through C<then>. When the EV loop is run by something else
(C<EV::run>, or AnyEvent's C<recv>), Mojo::IOLoop does not count as
running, so C<wait> starts it in a nested loop; when the promise settles
it stops that loop with C<< Mojo::IOLoop->stop >>, which is
C<EV::break(EV::BREAK_ALL)> and so ends the outer C<EV::run> as well.

=back

=head1 FORK SAFETY

The background thread of a client does not exist in a child process after
C<fork>. A client created before the fork must therefore not be used in the
child: every method on it, C<cancel> on its handles included, croaks with
C<EV::Etcd: this client was created before fork() and cannot be used after
fork(); create a new client in the child>. When such an inherited client
is destroyed in the child, a warning (mentioning that it was
C<inherited across fork()>) is printed and the parent's connection is left
untouched; the parent can keep using its client normally. Create a fresh
client in the child when it needs etcd:

  my $pid = fork // die "fork: $!";
  if ($pid == 0) {
      undef $etcd;                       # warns; harmless
      my $child = EV::Etcd->new(endpoints => \@endpoints);
      ...
  }

Loading EV::Etcd also marks EV's default loop for C<loop_fork> in every
child (libev then builds a fresh epoll set the next time the loop runs).
Without that, a child that keeps running EV shares the kernel's epoll set
with its parent, and the watcher changes the child makes would silently
unhook the parent's clients.

=head1 DESTRUCTION

A client lives as long as something refers to it: your variables, but also
any callback closure that mentions it, and every stream handle it
returned. When the last reference goes away, the background thread is
stopped and everything still pending is discarded: the callbacks of
requests still in flight, and of streams still open, are never called -
not with a response, not with an error. Nothing crashes, and the server
simply sees the connection close, which ends its side of any open
watches and keepalives.

So if a request must complete, keep the client alive until its callback
has run. A callback that mentions C<$etcd> captures that variable, so the
client survives the variable going out of scope; it does not survive
C<undef $etcd>. To shut down in an orderly way, cancel the streams, let
the pending calls finish, and then drop the client.

Dropping the client is also the way to abandon requests that cannot be
cancelled, such as a L</lock> or L</election_campaign> that is still
waiting: F<eg/leader-election.pl> does this when interrupted while
waiting in line. It is safe to drop the last reference from inside one of
the client's own callbacks.

=head2 Callbacks that refer to their client

A callback stored by a client that mentions that client, or one of its
stream handles (which hold their client), makes a reference cycle: the
client keeps the callback, the callback keeps the client. Leaving the
scope then frees neither, and the client, its thread and its connection
live until the program ends. Either keep a weak reference in the
callback:

  use Scalar::Util qw(weaken);
  my $self = $etcd;
  weaken $self;
  $etcd->watch('/jobs/', { prefix => 1 }, sub {
      $self->get('/jobs/count', sub { ... }) if $self;
  });

or end the client explicitly with L</close> when you are done with it.

=head2 close

  $etcd->close;

Shuts the client down now: the background thread stops, the connection is
closed, nothing pending is answered (as when the client is dropped), and
every callback the client holds is released, which breaks any reference
cycle through them. Afterwards every call croaks (C<EV::Etcd: this client
was closed>), except C<cancel> on its stream handles, which calls back at
once as for an already cancelled stream. Calling C<close> again does
nothing.

C<close> may be called from inside any callback of the client: of a
call, a watch, a keepalive, an observer, a snapshot chunk, C<on_request>,
C<on_health_change>, and the callbacks of L<EV::Etcd::Session>,
L</range_iterator> and clients made with C<namespace>. The callback that
called it runs to its end; after it, nothing more is delivered, even
answers that had already arrived, as for any C<close>. Ending a program
from its last callback is therefore simply:

=for ev-etcd example client prints ^done at revision \d+$

  $etcd->put('/jobs/done', 1, sub {
      my ($resp, $err) = @_;
      die "put failed: $err->{message}\n" if $err;
      print "done at revision $resp->{header}{revision}\n";
      $etcd->close;    # the loop then ends, as nothing else is open
  });

=head1 COPIES, THREADS AND FORGED OBJECTS

A client, and each stream handle, knows that it is one through magic
attached by this module, not through the value of the object. A copy made
by code that does not know the module has no such magic and owns nothing:
using it croaks (C<put: called on something that is not a live EV::Etcd
client>, or C<cancel: called on something that is not a live stream
handle>), and dropping it frees nothing, so the original keeps working.

=over 4

=item *

L<Storable>'s C<dclone>, and C<freeze> followed by C<thaw>, succeed on a
structure holding a client or a handle; the copies in the result are
inert as described. Keep the original to talk to etcd.

=item *

With ithreads, a new thread gets the same kind of inert copy of every
client and handle that existed when it was created: the thread croaks if
it uses one, and the parent's clients are unaffected when the thread ends.
Create a client inside the thread if it needs etcd.

=item *

An object blessed into C<EV::Etcd> or a handle class by hand is refused
the same way.

=back

=head1 INTERNAL ERRORS

The Rust core catches its own panics. A panic while a call or a stream
is being started croaks in the method that started it, with
C<METHOD: internal error in the Rust core (panic in FUNCTION: MESSAGE at
FILE:LINE); nothing was started>; a panic in the task behind a call or a
stream reaches its callback as an C<INTERNAL> error (see
L</Reconnection>). Either is a bug: please report it with the message.

=head1 PLATFORMS

EV::Etcd is tested on Linux: x86_64, Debian 12, perl 5.36, against etcd
3.4 and 3.5.

It is written to build on macOS and on FreeBSD, OpenBSD and NetBSD too
(the build chooses each system's linker flags, and links the native
libraries that cargo names for it), but nobody has run it there yet:
reports are welcome. One thing differs there. The small runtime on the
Perl thread that carries unary calls and watches on Linux (see
L</DESCRIPTION>) finds its descriptor through Linux's F</proc>, so on the
other systems the default C<io_mode> is C<background>: unary calls and
watches run on the client's background thread, like lease keepalives.
Both modes are tested on Linux (the whole suite runs in each).

Building needs a C compiler, make and Rust 1.88 or newer (cargo and
rustc); nothing else, on any of these systems: etcd's protocol
definitions are compiled by a protobuf compiler written in Rust, not by
C<protoc>. With no Rust, or too old a one, F<Makefile.PL> says what is
needed and stops without writing a Makefile, which CPAN testers report as
"not applicable". The F<README.md> in the distribution describes the
build's switches and a packager's offline build.

Windows is not supported, Cygwin and MSYS included: F<Makefile.PL> says
so and stops without writing a Makefile.

=head1 DIFFERENCES FROM THE C MODULE

This module replaces an earlier EV::Etcd written in C on top of gRPC's C
core, and keeps its interface: the same methods with the same arguments,
the same options, the same response keys and the same error hash. A
program written for that module runs with this one unchanged. What
follows is where the two part.

=head2 What is new

=over 4

=item *

Connections to production clusters: TLS and mutual TLS (C<tls>,
C<tls_ca_file>, C<tls_cert_file>, C<tls_key_file>, C<tls_server_name>,
C<https://> endpoints), a login made by the client itself from
C<username> and C<password> and repeated whenever etcd rejects the
token, HTTP/2 pings that notice a dead connection (C<keepalive_time>,
C<keepalive_timeout>), message size limits (C<max_send_size>,
C<max_recv_size>), and an endpoint list that can be changed at run time
(L</set_endpoints>, L</endpoints>) or kept in step with the cluster
(C<auto_sync_interval>).

=item *

Per-call deadlines (the C<timeout> option of each unary call, fractions
of a second allowed), automatic repetition of failed calls that cannot
do harm twice (C<retry>), and a hook that sees every finished call
(C<on_request>).

=item *

Watches that look after themselves: C<watch_probe_interval> notices a
stream that went silent, C<< on_compacted => 'resync' >> starts again
from the current state when the history is gone, C<< $watch->progress >> asks how
far the store has got, and C<no_put>, C<no_delete> and C<fragment> are
passed to etcd.

=item *

Keepalives that say when a lease may be lost (C<DEADLINE_EXCEEDED> once
no reply has come within the TTL) and L</lease_keepalive_once> for a
single refresh.

=item *

L</range_iterator> (consistent paging at one revision), L</snapshot>
with its checksum checked, L</hash>, the C<endpoint> option of the
maintenance calls, clients confined to a key prefix (C<namespace>),
L</close>, and L<EV::Etcd::Session> (a lease kept alive for keys, locks
and elections, rebuilt when lost).

=item *

A negative C<max_retries> means that streams retry forever; the original
knew only zero and positive counts.

=back

=head2 What is stricter

=over 4

=item *

Unknown options croak, in L</new> and in every method's options hash,
instead of being ignored; so do options of the wrong kind (a string
where a number belongs, a value out of range). The croak names the
method and the problem and is reported at the caller's line (see
L</Bad arguments>).

=item *

Integer arguments are checked against their real range: unsigned 64-bit
ids (member ids, C<move_leader>'s target) accept 0 to 2**64-1, as
numbers or as decimal strings, and revisions and lease ids the whole
signed 64-bit range; negative, fractional and non-numeric values croak.

=back

=head2 What behaves differently

=over 4

=item *

Replies are not limited in size by the client (gRPC's usual limit is
4 MiB): a range of hundreds of megabytes is accepted unless
C<max_recv_size> says otherwise. Streams are never limited.

=item *

Everything else is meant to behave as it did, down to the order of
callbacks and the moment a C<cancel> answers (on the next turn of the
loop, so that C<EV::run(EV::RUN_ONCE)> after C<cancel> sees it). A
difference you meet that is not listed here is a bug: please report it.

=back

=head2 Limits

=over 4

=item *

TLS is rustls: TLS 1.2 and 1.3 only, no encrypted private keys, no
certificate revocation lists, and one C<tls_server_name> for all endpoints.
The certificate files are read once, when the client is made; to pick up
renewed certificates, make a new client.

=item *

A L</lock> or L</election_campaign> that is waiting cannot be withdrawn
before its deadline, and the loss of its lease does not end it either
(see L</lock>); revoke the lease and disregard the late answer, or drop
the client.

=item *

Failed unary requests are repeated only as C<retry> allows (and once
after an automatic re-login, see L</authenticate>); streams reconnect on
their own, as C<max_retries> says.

=back

=head1 SEE ALSO

L<EV>, the event loop this client runs on.

The etcd documentation at L<https://etcd.io/docs/>, in particular the
description of the v3 API (revisions, leases, watches and their
guarantees).

L<EV::Etcd::Session> (leases kept alive for keys, locks and elections),
L<EV::Etcd::RangeIterator> (paging, see L</range_iterator>) and
L<EV::Etcd::Namespace> (clients confined to a key prefix, see
L</NAMESPACES>).

The programs in the F<eg/> directory of the distribution, each run by
the test suite: F<demo.pl> (key-value, transactions, watch),
F<service-discovery.pl> (a registration under a lease kept alive, peers
followed with a prefix watch), F<config-watch.pl> (configuration that
follows a watched prefix), F<leader-election.pl> (campaign, observe,
resign), F<distributed-lock.pl> (a lock around a critical section),
F<cas-counter.pl> (a compare-and-swap counter with txn),
F<watch-restart.pl> (a watch that survives an etcd restart) and
F<request-metrics.pl> (the request hook feeding Prometheus-style
metrics); and the benchmarks in F<bench/>.

=head1 LICENSE

EV::Etcd is free software. You may distribute it and/or modify it under
the same terms as Perl 5 itself, that is under either the GNU General
Public License or the Artistic License.

=cut
