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
use overload ();
use EV::Etcd ();

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
    return _call(\&EV::Etcd::new, $class, @_) if @_ % 2;    # not pairs: the XS new croaks
    my (@opt, $ns);
    while (@_) {
        my ($k, $v) = splice @_, 0, 2;
        if (defined $k && $k eq 'namespace') { $ns = $v } else { push @opt, $k, $v }
    }
    my $mine = UNIVERSAL::isa($class, __PACKAGE__);
    if (!defined $ns) {
        # undef means "no namespace", as for new's other optional strings
        Carp::croak("EV::Etcd->new: $class needs a namespace") if $mine;
        return _call(\&EV::Etcd::new, $class, @opt);
    }
    $class = __PACKAGE__ if !ref $class && $class eq 'EV::Etcd';
    Carp::croak("EV::Etcd->new: a client with a namespace is an EV::Etcd::Namespace, and $class does not inherit from it")
        unless UNIVERSAL::isa($class, __PACKAGE__);
    Carp::croak('EV::Etcd->new: namespace must be a string, not a reference')
        if ref $ns && !overload::Overloaded($ns);
    $ns = "$ns";
    utf8::downgrade($ns, 1)
        or Carp::croak('EV::Etcd->new: namespace must be a byte string, but it has characters above 0xFF (encode it first)');
    Carp::croak('EV::Etcd->new: namespace must not be empty (leave it out, or pass undef, for no namespace)')
        if $ns eq '';
    my $self = _call(\&EV::Etcd::new, $class, @opt);
    $space{$self} = [ $ns, _end_of($ns) ];
    return $self;
}

# The [ namespace, end ] of a client, or nothing for anything else.
sub _space { defined $_[0] ? $space{ $_[0] } : undef }

sub namespace { my $sp = _space($_[0]); $sp ? $sp->[0] : undef }

# The first key after every key that starts with $ns: its last byte below
# 0xff raised by one, the 0xff bytes after it dropped. A namespace made of
# 0xff bytes only reaches to the end of the keyspace, which etcd writes as
# "\0".
sub _end_of {
    my ($ns) = @_;
    (my $end = $ns) =~ s/\xff+\z//;
    return "\0" if $end eq '';
    substr($end, -1, 1, chr(ord(substr($end, -1)) + 1));
    return $end;
}

# ---- calling the EV::Etcd method --------------------------------------------

# Calls an EV::Etcd method. The XS code croaks with the line of its own
# caller, which is here: such a croak is raised again, unchanged but for
# the location, from the line that called the public method. (A croak that
# already names another place, like Carp's in EV::Etcd::txn, is passed on
# as it is.)
my $here = __FILE__;
sub _call {
    my $code = shift;
    my @ret;
    local $@;
    return wantarray ? @ret : $ret[0] if eval { @ret = &$code; 1 };
    my $err = $@;
    die $err if ref $err
        || $err !~ s/ at \Q$here\E line \d+(?:, <[^>]*> (?:line|chunk) \d+)?\.\n\z//;
    Carp::croak($err);
}

# ---- arguments going in -------------------------------------------------------

# What is not a string (undef, a plain reference) stays as it is, so that
# the XS method croaks about it in its own words. Strings carrying the
# UTF-8 flag go in as their UTF-8 bytes, as they do on a plain client.
sub _string {
    my ($s) = @_;
    return undef if !defined $s || ref $s && !overload::Overloaded($s);
    $s = "$s";
    utf8::encode($s) if utf8::is_utf8($s);
    return $s;
}

sub _key {
    my ($sp, $k) = @_;
    my $s = _string($k);
    return defined $s ? $sp->[0] . $s : $k;
}

# A range end. "" (a single key) stays "", "\0" (everything from the key
# on) becomes the end of the namespace, and any other end is prefixed like
# a key. A prefixed end starts with the namespace, so it lies before the
# namespace's end and cannot reach past it: the range stays inside.
sub _range_end {
    my ($sp, $e) = @_;
    my $s = _string($e);
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

# Takes the namespace off every key in a reply of one of the methods below,
# in place (each reply is a fresh hash that only its callback sees).
sub _strip {
    my ($ns, $r) = @_;
    return unless ref $r eq 'HASH';
    # records: get, delete, put, election_leader and election_observe (the
    # lists and hashes are only read, so no reply gains an entry)
    _unprefix($ns, $_->{key}) for @{ $r->{kvs} || [] }, @{ $r->{prev_kvs} || [] },
        map { $r->{$_} || () } qw(prev_kv kv);
    for my $ev (@{ $r->{events} || [] }) {    # watch
        _unprefix($ns, $_->{key}) for map { $ev->{$_} || () } qw(kv prev_kv);
    }
    for my $item (@{ $r->{responses} || [] }) {    # txn, one hash per operation
        _strip($ns, $_) for values %$item;
    }
    if (my $l = $r->{leader}) {    # election_campaign
        _unprefix($ns, $l->{$_}) for qw(name key);
    }
    _unprefix($ns, $r->{key});    # lock
    if ($r->{keys}) {    # lease_time_to_live: a lease may hold keys of other namespaces too
        my @mine = grep { substr($_, 0, length $ns) eq $ns } @{ $r->{keys} };
        _unprefix($ns, $_) for @mine;
        if (@mine) { $r->{keys} = \@mine } else { delete $r->{keys} }
    }
}

# The callback, wrapped to strip its reply; anything that is not code stays
# as it is for the XS method to refuse.
sub _cb {
    my ($sp, $cb) = @_;
    return $cb unless (Scalar::Util::reftype($cb) // '') eq 'CODE';
    my $ns = $sp->[0];
    return sub { _strip($ns, $_[0]) if $_[0]; goto &$cb };
}

# The "[\%opts], $cb" that ends most argument lists: the callback wrapped,
# the options' range_end moved into the namespace when $range is set.
sub _tail {
    my ($sp, $range, @tail) = @_;
    return @tail unless @tail == 1 || @tail == 2;
    $tail[-1] = _cb($sp, $tail[-1]);
    $tail[0] = _range_opts($sp, $tail[0]) if $range && @tail == 2;
    return @tail;
}

# ---- the methods ----------------------------------------------------------------

# Each one falls back to the EV::Etcd method when called on something that
# is not a namespaced client, which then croaks as it would.

sub put {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::put, @_);
    my ($self, $key, $value, @tail) = @_;
    return _call(\&EV::Etcd::put, $self, _key($sp, $key), $value, _tail($sp, 0, @tail));
}

sub get {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::get, @_);
    my ($self, $key, @tail) = @_;
    return _call(\&EV::Etcd::get, $self, _key($sp, $key), _tail($sp, 1, @tail));
}

sub delete {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::delete, @_);
    my ($self, $key, @tail) = @_;
    return _call(\&EV::Etcd::delete, $self, _key($sp, $key), _tail($sp, 1, @tail));
}

sub watch {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::watch, @_);
    my ($self, $key, @tail) = @_;
    return _call(\&EV::Etcd::watch, $self, _key($sp, $key), _tail($sp, 1, @tail));
}

# Both calling forms of EV::Etcd::txn, told apart as it does; EV::Etcd::txn
# then checks the arguments.
my %txn_arg = map { $_ => 1 } qw(compare success failure callback);

sub txn {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::txn, @_);
    my ($self, @arg) = @_;
    my $compares = sub { _each($_[0], sub { _compare($sp, $_[0]) }) };
    my $ops = sub { _each($_[0], sub { _op($sp, $_[0]) }) };
    if (@arg && defined $arg[0] && !ref $arg[0] && $txn_arg{ $arg[0] }) {
        # EV::Etcd::txn takes only plain code references in this form
        my $cb = sub { ref $_[0] eq 'CODE' ? _cb($sp, $_[0]) : $_[0] };
        $arg[-1] = $cb->($arg[-1]) if @arg % 2;
        for (my $i = 0; $i + 1 < @arg; $i += 2) {
            my $name = $arg[$i] // next;
            next if ref $name;
            if ($name eq 'compare') { $arg[ $i + 1 ] = $compares->($arg[ $i + 1 ]) }
            elsif ($name eq 'success' || $name eq 'failure') { $arg[ $i + 1 ] = $ops->($arg[ $i + 1 ]) }
            elsif ($name eq 'callback') { $arg[ $i + 1 ] = $cb->($arg[ $i + 1 ]) }
        }
    } else {
        $arg[0] = $compares->($arg[0]) if @arg > 0;
        $arg[$_] = $ops->($arg[$_]) for grep { $_ < @arg } 1, 2;
        $arg[3] = _cb($sp, $arg[3]) if @arg > 3;
    }
    return _call(\&EV::Etcd::txn, $self, @arg);
}

sub lease_time_to_live {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::lease_time_to_live, @_);
    my ($self, $lease, @tail) = @_;
    return _call(\&EV::Etcd::lease_time_to_live, $self, $lease, _tail($sp, 0, @tail));
}

sub lock {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::lock, @_);
    my ($self, $name, $lease, @tail) = @_;
    return _call(\&EV::Etcd::lock, $self, _key($sp, $name), $lease, _tail($sp, 0, @tail));
}

sub unlock {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::unlock, @_);
    my ($self, $key, @rest) = @_;
    return _call(\&EV::Etcd::unlock, $self, _key($sp, $key), @rest);
}

sub election_campaign {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::election_campaign, @_);
    my ($self, $name, $lease, $value, @tail) = @_;
    return _call(\&EV::Etcd::election_campaign, $self, _key($sp, $name), $lease, $value,
                 _tail($sp, 0, @tail));
}

sub election_leader {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::election_leader, @_);
    my ($self, $name, @tail) = @_;
    return _call(\&EV::Etcd::election_leader, $self, _key($sp, $name), _tail($sp, 0, @tail));
}

sub election_proclaim {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::election_proclaim, @_);
    my ($self, $leader, @rest) = @_;
    return _call(\&EV::Etcd::election_proclaim, $self, _leader($sp, $leader), @rest);
}

sub election_resign {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::election_resign, @_);
    my ($self, $leader, @rest) = @_;
    return _call(\&EV::Etcd::election_resign, $self, _leader($sp, $leader), @rest);
}

sub election_observe {
    my $sp = _space($_[0]) or return _call(\&EV::Etcd::election_observe, @_);
    my ($self, $name, @tail) = @_;
    return _call(\&EV::Etcd::election_observe, $self, _key($sp, $name), _tail($sp, 0, @tail));
}

1;
