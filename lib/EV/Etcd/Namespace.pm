package EV::Etcd::Namespace;

# The client that EV::Etcd->new returns when given a namespace. Every method
# that names a key puts the namespace in front of it before the EV::Etcd
# method (the XS code) sees the arguments, and takes it off again in what
# comes back. Methods that name no key are inherited unchanged, and so are
# DESTROY, close, fork handling and the stream handles. A plain client never
# comes through here. Documented in EV::Etcd, under "namespace" and
# NAMESPACES.

use strict;
use warnings;
use Carp ();
use Scalar::Util ();
use Hash::Util::FieldHash ();
use EV::Etcd ();
use EV::Etcd::Util ();

our $VERSION = $EV::Etcd::VERSION;
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
