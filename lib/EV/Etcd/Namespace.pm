package EV::Etcd::Namespace;

# The client that EV::Etcd->new returns when given a namespace. Every method
# that names a key puts the namespace in front of it before the EV::Etcd
# method (the XS code) sees the arguments, and takes it off again in what
# comes back. Methods that name no key are inherited unchanged, and so are
# DESTROY, close, fork handling and the stream handles. A plain client never
# comes through here. Documented in EV::Etcd, under "namespace" and
# NAMESPACES, and on this module's own page (the POD after __END__).

use strict;
use warnings;
use Carp ();
use Scalar::Util ();
use Hash::Util::FieldHash ();
use EV::Etcd ();
use EV::Etcd::Util ();

our $VERSION = '0.01';
our @ISA = ('EV::Etcd');

# client => [ namespace, end of the namespace ]. A field hash forgets an
# entry when its client is freed, so EV::Etcd's DESTROY is all a client
# needs.
Hash::Util::FieldHash::fieldhash(my %space);

# ---- construction -----------------------------------------------------------

# Reached from EV::Etcd->new (which comes here only when a namespace option
# is present) or directly as EV::Etcd::Namespace->new.
sub new {
    my $class = shift;
    return EV::Etcd::Util::call(\&EV::Etcd::_new, $class, @_) if @_ % 2;    # not pairs: the XS croaks
    my (@opt, $ns);
    while (@_) {
        my ($k, $v) = splice @_, 0, 2;
        if (defined $k && $k eq 'namespace') { $ns = $v } else { push @opt, $k, $v }
    }
    my $mine = UNIVERSAL::isa($class, __PACKAGE__);
    if (!defined $ns) {
        # undef means "no namespace", as for new's other optional strings
        Carp::croak("EV::Etcd->new: $class needs a namespace") if $mine;
        return EV::Etcd::Util::call(\&EV::Etcd::_new, $class, @opt);
    }
    $class = __PACKAGE__ if !ref $class && $class eq 'EV::Etcd';
    Carp::croak("EV::Etcd->new: a client with a namespace is an EV::Etcd::Namespace, and $class does not inherit from it")
        unless UNIVERSAL::isa($class, __PACKAGE__);
    Carp::croak('EV::Etcd->new: namespace must be a string, not a reference')
        unless EV::Etcd::Util::is_string($ns);
    $ns = "$ns";
    utf8::downgrade($ns, 1)
        or Carp::croak('EV::Etcd->new: namespace must be a byte string, but it has characters above 0xFF (encode it first)');
    Carp::croak('EV::Etcd->new: namespace must not be empty (leave it out, or pass undef, for no namespace)')
        if $ns eq '';
    my $self = EV::Etcd::Util::call(\&EV::Etcd::_new, $class, @opt);
    $space{$self} = [ $ns, EV::Etcd::Util::prefix_end($ns) ];
    return $self;
}

# The [ namespace, end ] of a client, or nothing for anything else.
sub _space { defined $_[0] ? $space{ $_[0] } : undef }

sub namespace { my $sp = _space($_[0]); $sp ? $sp->[0] : undef }

# ---- arguments going in -------------------------------------------------------

# What is not a string (undef, a plain reference) stays as it is, so that
# the XS method croaks about it in its own words. Strings carrying the
# UTF-8 flag go in as their UTF-8 bytes, as they do on a plain client.
sub _key {
    my ($sp, $k) = @_;
    my $s = EV::Etcd::Util::bytes($k);
    return defined $s ? $sp->[0] . $s : $k;
}

# A range end. "" (a single key) stays "", "\0" (everything from the key
# on) becomes the end of the namespace, and any other end is prefixed like
# a key. A prefixed end starts with the namespace, so it lies before the
# namespace's end and cannot reach past it: the range stays inside.
sub _range_end {
    my ($sp, $e) = @_;
    my $s = EV::Etcd::Util::bytes($e);
    return $e if !defined $s;
    return $s if $s eq '';
    return $sp->[1] if $s eq "\0";
    return $sp->[0] . $s;
}

sub _is_hash { (Scalar::Util::reftype($_[0]) // '') eq 'HASH' }

# A copy of options (of get, delete, watch, or a txn operation) with their
# range_end moved into the namespace. With prefix the range is derived
# from the (prefixed) key and range_end is not looked at.
sub _range_opts {
    my ($sp, $opts) = @_;
    return $opts unless _is_hash($opts) && defined $opts->{range_end} && !$opts->{prefix};
    return { %$opts, range_end => _range_end($sp, $opts->{range_end}) };
}

# A copy of a list, element by element; missing elements stay missing.
sub _each {
    my ($list, $f) = @_;
    return $list unless (Scalar::Util::reftype($list) // '') eq 'ARRAY';
    my @new;
    $#new = $#$list;
    exists $list->[$_] and $new[$_] = $f->($list->[$_]) for 0 .. $#$list;
    return \@new;
}

sub _compare {
    my ($sp, $cmp) = @_;
    return $cmp unless _is_hash($cmp);
    my %c = %$cmp;
    $c{key} = _key($sp, $c{key}) if exists $c{key};
    $c{range_end} = _range_end($sp, $c{range_end}) if defined $c{range_end};
    return \%c;
}

my %op_kind = (
    request_range => 'range', range => 'range', request_delete_range => 'range', delete => 'range',
    request_put => 'put', put => 'put',
);

sub _op {
    my ($sp, $op) = @_;
    return $op unless _is_hash($op);
    my %o = %$op;
    for my $name (grep { _is_hash($o{$_}) } grep { exists $o{$_} } keys %op_kind) {
        my $inner = { %{ $o{$name} } };
        $inner->{key} = _key($sp, $inner->{key}) if exists $inner->{key};
        $inner = _range_opts($sp, $inner) if $op_kind{$name} eq 'range';
        $o{$name} = $inner;
    }
    return \%o;
}

sub _leader {
    my ($sp, $leader) = @_;
    return $leader unless _is_hash($leader);
    my %l = %$leader;
    exists $l{$_} and $l{$_} = _key($sp, $l{$_}) for qw(name key);
    return \%l;
}

# ---- replies coming back -----------------------------------------------------

# Takes the namespace off the front of a key, in place.
sub _unprefix {
    my $n = length $_[0];
    substr($_[1], 0, $n, '') if defined $_[1] && substr($_[1], 0, $n) eq $_[0];
}

# The reply fields of a txn operation that hold keys.
my @TXN_OP_FIELDS = qw(kvs prev_kvs prev_kv responses);

# How the namespace comes off each reply field that holds keys, in place:
# ($ns, $reply, $field). The lists and hashes are only read, so no reply
# gains an entry.
my $kv_list = sub { _unprefix($_[0], $_->{key}) for @{ $_[1]{ $_[2] } } };
my $kv      = sub { _unprefix($_[0], $_[1]{ $_[2] }{key}) };
my %STRIP = (
    kvs       => $kv_list,
    prev_kvs  => $kv_list,
    kv        => $kv,
    prev_kv   => $kv,
    events    => sub {
        my ($ns, $r) = @_;
        for my $ev (@{ $r->{events} }) {
            _unprefix($ns, $_->{key}) for map { $ev->{$_} || () } qw(kv prev_kv);
        }
    },
    responses => sub {    # one hash per txn operation, holding its reply
        my ($ns, $r) = @_;
        for my $item (@{ $r->{responses} }) {
            _strip($ns, $_, @TXN_OP_FIELDS) for values %$item;
        }
    },
    leader    => sub { my ($ns, $r) = @_; _unprefix($ns, $r->{leader}{$_}) for qw(name key) },
    key       => sub { _unprefix($_[0], $_[1]{key}) },
    keys      => sub {    # a lease may hold keys of other namespaces too
        my ($ns, $r) = @_;
        my @mine = grep { substr($_, 0, length $ns) eq $ns } @{ $r->{keys} };
        _unprefix($ns, $_) for @mine;
        if (@mine) { $r->{keys} = \@mine } else { delete $r->{keys} }
    },
);

# Takes the namespace off the keys in @fields of a reply, in place (each
# reply is a fresh hash that only its callback sees).
sub _strip {
    my ($ns, $r, @fields) = @_;
    return unless ref $r eq 'HASH';
    defined $r->{$_} and $STRIP{$_}->($ns, $r, $_) for @fields;
}

# The callback, wrapped to strip @fields of its reply; anything that is
# not code stays as it is for the XS method to refuse.
sub _cb {
    my ($sp, $cb, @fields) = @_;
    return $cb unless (Scalar::Util::reftype($cb) // '') eq 'CODE';
    my $ns = $sp->[0];
    return sub { _strip($ns, $_[0], @fields) if $_[0]; goto &$cb };
}

# ---- the methods ----------------------------------------------------------------

# The methods that name keys, one entry each: what their first argument
# is (key: prefixed; leader: a hash whose name and key are prefixed; none:
# passed as it is), how many arguments come before the "[\%opts,] $cb"
# tail, whether the options may hold a range_end, and the reply fields
# that hold keys. A method whose reply holds none gets its tail as it is.
my %METHOD = (
    put                => { first => 'key',    fixed => 2, reply => [qw(prev_kv)] },
    get                => { first => 'key',    fixed => 1, reply => [qw(kvs)], range => 1 },
    delete             => { first => 'key',    fixed => 1, reply => [qw(prev_kvs)], range => 1 },
    watch              => { first => 'key',    fixed => 1, reply => [qw(events kvs)], range => 1 },    # kvs: a resync
    lease_time_to_live => {                    fixed => 1, reply => [qw(keys)] },
    lock               => { first => 'key',    fixed => 2, reply => [qw(key)] },
    unlock             => { first => 'key' },
    election_campaign  => { first => 'key',    fixed => 3, reply => [qw(leader)] },
    election_leader    => { first => 'key',    fixed => 1, reply => [qw(kv)] },
    election_proclaim  => { first => 'leader' },
    election_resign    => { first => 'leader' },
    election_observe   => { first => 'key',    fixed => 1, reply => [qw(kv)] },
);
my %IN = (key => \&_key, leader => \&_leader);

# Each method falls back to the EV::Etcd method when called on something
# that is not a namespaced client, which then croaks as it would. Only
# arguments given are translated, and the tail only when it has the length
# of one, so that a wrong call reaches the XS method as it came.
for my $name (sort keys %METHOD) {
    my $xs = \&{"EV::Etcd::$name"};
    my $first = $IN{ $METHOD{$name}{first} // '' };
    my ($fixed, $range) = @{ $METHOD{$name} }{qw(fixed range)};
    my @fields = @{ $METHOD{$name}{reply} || [] };
    my $method = sub {
        my $sp = _space($_[0]) or return EV::Etcd::Util::call($xs, @_);
        my ($self, @arg) = @_;
        $arg[0] = $first->($sp, $arg[0]) if $first && @arg;
        my $tail = @fields ? @arg - $fixed : 0;
        if ($tail == 1 || $tail == 2) {
            $arg[-1] = _cb($sp, $arg[-1], @fields);
            $arg[-2] = _range_opts($sp, $arg[-2]) if $range && $tail == 2;
        }
        return EV::Etcd::Util::call($xs, $self, @arg);
    };
    no strict 'refs';
    *$name = $method;
}

# txn's arguments, by name or in order, go through EV::Etcd's own parser
# first, so both clients croak alike.
sub txn {
    my $sp = _space($_[0]) or return EV::Etcd::Util::call(\&EV::Etcd::txn, @_);
    &EV::Etcd::_txn_named if EV::Etcd::_txn_is_named(@_);
    my ($self, @arg) = @_;
    $arg[0] = _each($arg[0], sub { _compare($sp, $_[0]) }) if @arg > 0;
    $arg[$_] = _each($arg[$_], sub { _op($sp, $_[0]) }) for grep { $_ < @arg } 1, 2;
    $arg[3] = _cb($sp, $arg[3], 'responses') if @arg > 3;
    return EV::Etcd::Util::call(\&EV::Etcd::_txn, $self, @arg);
}

1;

__END__

=encoding utf8

=head1 NAME

EV::Etcd::Namespace - an EV::Etcd client that sees only the keys under one prefix

=head1 SYNOPSIS

=for ev-etcd example prints ^inside: settings/theme = dark\nin etcd: /tenant-a/settings/theme$

  use strict;
  use warnings;
  use EV;
  use EV::Etcd;

  # A client of class EV::Etcd::Namespace: every key it names is
  # under /tenant-a/ in etcd.
  my $etcd = EV::Etcd->new(endpoints => ['127.0.0.1:2379'], namespace => '/tenant-a/');

  # A client without a namespace sees keys as etcd stores them.
  my $plain = EV::Etcd->new(endpoints => ['127.0.0.1:2379']);

  $etcd->put('settings/theme', 'dark', sub {
      my (undef, $err) = @_;
      die "put failed: $err->{message}\n" if $err;

      # '' with prefix: the whole namespace, and nothing outside it.
      $etcd->get('', { prefix => 1 }, sub {
          my ($resp, $err) = @_;
          die "get failed: $err->{message}\n" if $err;
          print "inside: $_->{key} = $_->{value}\n" for @{ $resp->{kvs} };

          $plain->get('/tenant-a/settings/theme', { keys_only => 1 }, sub {
              my ($resp, $err) = @_;
              die "get failed: $err->{message}\n" if $err;
              print "in etcd: $resp->{kvs}[0]{key}\n";
          });
      });
  });
  EV::run;

=head1 DESCRIPTION

A client of this class behaves as if a part of etcd's keyspace, the keys
that start with its namespace, were all there is. Each key it sends gets
the namespace put in front of it, each key that comes back has it taken
off, and ranges are kept within the namespace, so code written for a
whole keyspace (a service registry, a lock, a set of configuration keys)
runs unchanged below a prefix, next to other programs under other
prefixes.

The class is a subclass of L<EV::Etcd>. It replaces the methods that
name keys with wrappers that rewrite the arguments, call the method of
EV::Etcd, and rewrite the answer before your callback sees it. Every
other method is EV::Etcd's own, and so are the handles that watches and
the other streams return. The rewriting happens in the client: etcd stores
and reports the full keys and knows nothing about namespaces. A
namespace is therefore a convention between programs, not a barrier:
any client without one, or with a shorter one, reads and writes the same
keys under their full names. To keep a user out of other keys, give it a
role that only covers its prefix (see L<EV::Etcd/role_grant_permission>).

A plain EV::Etcd client (one made without a namespace) never goes
through this class and pays nothing for it.

=head1 CONSTRUCTION

=head2 new

  # the usual way: EV::Etcd->new loads this class when it sees namespace
  my $etcd = EV::Etcd->new(%options, namespace => '/app/');

  # or by name
  use EV::Etcd::Namespace;
  my $etcd = EV::Etcd::Namespace->new(%options, namespace => '/app/');

Both take the options of L<EV::Etcd/new> (endpoints, timeouts, TLS,
credentials, ...) plus C<namespace>, and both give an
EV::Etcd::Namespace. C<EV::Etcd-E<gt>new> loads this module only when it
sees a C<namespace> option, so calling C<EV::Etcd::Namespace-E<gt>new>
directly needs a C<use EV::Etcd::Namespace> first. The difference
between the two is what happens without a namespace (leaving the option
out, or passing C<undef>): C<EV::Etcd-E<gt>new> then makes a plain
EV::Etcd, while C<EV::Etcd::Namespace-E<gt>new> croaks
(C<EV::Etcd-E<gt>new: EV::Etcd::Namespace needs a namespace>).

The namespace is a string of bytes, compared and prefixed byte by byte.
It must not be empty, nor a reference, nor contain characters above
0xFF: each of these croaks, as does C<namespace> given to a subclass of
EV::Etcd that does not inherit from this class. Text with wider
characters must be encoded first (see L<EV::Etcd/ENCODING>). A subclass
of EV::Etcd::Namespace is constructed the same way.

A namespace is best ended with a separator such as C</>: the namespace
C</app> also covers the keys of C</apple/>, while C</app/> does not.
Namespaces may nest: a client of C</app/> sees the keys of a client of
C</app/billing/> as C<billing/...>.

A client made by name, taking a lock inside its namespace (the lock's
key in etcd starts with C</app/nightly/>; the client sees it without
C</app/>, and L</unlock> takes it back that way):

=for ev-etcd example prints ^holding nightly/[0-9a-f]+$

  use strict;
  use warnings;
  use EV;
  use EV::Etcd::Namespace;

  my $etcd = EV::Etcd::Namespace->new(endpoints => ['127.0.0.1:2379'], namespace => '/app/');

  $etcd->lease_grant(10, sub {
      my ($lease, $err) = @_;
      die "lease_grant failed: $err->{message}\n" if $err;
      $etcd->lock('nightly', $lease->{id}, sub {
          my ($held, $err) = @_;
          die "lock failed: $err->{message}\n" if $err;
          print "holding $held->{key}\n";
          $etcd->unlock($held->{key}, sub {
              my (undef, $err) = @_;
              die "unlock failed: $err->{message}\n" if $err;
              $etcd->lease_revoke($lease->{id}, sub { });
          });
      });
  });
  EV::run;

=head1 METHODS

=head2 namespace

  my $prefix = $etcd->namespace;    # '/app/'

The client's namespace, as the byte string it prefixes. On a plain
EV::Etcd client the same method returns C<undef>, so it also tells the
two apart.

=head2 Methods that translate keys

These take the arguments and give the answers described in L<EV::Etcd>;
what differs is only that the keys in them are relative to the
namespace. Options hashes, and the lists and hashes of a transaction,
are copied before a key in them is changed, so what you pass is left as
it was. Bad arguments croak exactly as on a plain client.

=over 4

=item put

The key is prefixed; the C<prev_kv> of the answer comes back without the
namespace.

=item get

The key is prefixed, and so is C<range_end>, with two exceptions: C<''>
still means the single key, and C<"\0"> (to the end) means up to the end
of the namespace, not of the keyspace. With C<prefix>, the range is
worked out from the prefixed key, so C<< get('', { prefix => 1 }) >>
reads exactly the namespace. A range therefore never reaches outside
it. The keys in C<kvs> are stripped; the key equal to the namespace
itself comes back as C<''>.

=item delete

The key and the range as for C<get>; the records in C<prev_kvs> are
stripped.

=item watch

The key and the range as for C<get>. The C<kv> and C<prev_kv> of each event are
stripped, and so are the records a watch delivers when it starts over
after a compaction (C<< on_compacted => 'resync' >>).

=item txn

In both calling forms, named and positional: the C<key> and
C<range_end> of each compare, and the key, C<range_end> and C<prefix> of
each operation (C<put>, C<range>, C<delete> and their C<request_*>
spellings) are handled as for the matching plain calls, and the records
in C<responses> are stripped.

=item lock

The lock's name is prefixed; the ownership C<key> of the answer is
stripped.

=item unlock

Takes that stripped key, as L</lock> returned it, and prefixes it.

=item election_campaign

The election's name is prefixed; the C<name> and C<key> of the C<leader>
hash in the answer are stripped.

=item election_proclaim

=item election_resign

Take the C<leader> hash as C<election_campaign> returned it; its C<name>
and C<key> are prefixed on the way out (on a copy).

=item election_leader

The name is prefixed; the C<kv> of the answer is stripped.

=item election_observe

The name is prefixed; the C<kv> of each message is stripped.

=item lease_time_to_live

With C<< keys => 1 >>, C<keys> lists only those of the lease's keys that
lie in the namespace, stripped; when none do, there is no C<keys> entry.
A lease belongs to the whole cluster and may hold keys of several
namespaces.

=back

L<EV::Etcd::RangeIterator> reads its pages with C<get>, and
L<EV::Etcd::Session> handles its keys, locks and campaigns with C<put>,
C<delete>, C<lock> and C<election_campaign>, so an iterator or a session made on a
namespaced client stays inside its namespace too.

=head1 WHAT IS NOT NAMESPACED

What names no key acts on the whole cluster, as on a plain client:

=over 4

=item *

revisions: they count the writes of every namespace, and C<compact>
drops the history of all of them;

=item *

leases: C<lease_revoke> deletes the lease's keys wherever they are, and
C<lease_leases> lists the leases of the whole cluster;

=item *

users and roles: the keys of C<role_grant_permission> and
C<role_revoke_permission> are full keys, prefix included;

=item *

maintenance and cluster calls, the endpoint methods, C<close>, and the
C<watch_id> of a watch.

=back

=head1 SEE ALSO

L<EV::Etcd/NAMESPACES>, the full account of what is translated and what
is not; the C<namespace> option of L<EV::Etcd/new>; L<EV::Etcd> for every
method named here.

=head1 LICENSE

EV::Etcd::Namespace is part of EV::Etcd and is free software. You may
distribute it and/or modify it under the same terms as Perl 5 itself,
that is under either the GNU General Public License or the Artistic
License.

=cut
