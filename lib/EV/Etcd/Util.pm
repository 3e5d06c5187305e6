package EV::Etcd::Util;

# What the Perl files of EV::Etcd share: croaking at the line that called
# the public method, and the argument checks they make before the XS code
# sees anything. Internal: no user calls these.

use strict;
use warnings;
use Carp ();
use EV ();
use Scalar::Util ();
use overload ();

our $VERSION = '0.01';

# Croaks from here are reported as if the sub that called these helpers
# croaked itself: at the line that called that sub.
$Carp::CarpInternal{ +__PACKAGE__ } = 1;

# ---- croaking at the caller's line ----------------------------------------

# A croak of the XS code names the line of the Perl code that called it,
# inside this distribution. Given such a message and the file of that line,
# returns the message without its location; anything else (a reference, a
# message placed elsewhere, by Carp or by a user's code) comes back as it is.
sub unplaced {
    my ($err, $file) = @_;
    return $err if ref $err;
    (my $msg = $err) =~ s/ at \Q$file\E line \d+(?:, <[^>]*> (?:line|chunk) \d+)?\.\n\z//
        or return $err;
    return $msg;
}

# Raises again an error caught by an eval in the calling file: a croak
# placed in that file moves to the line that called the public method,
# anything else passes on unchanged.
sub rethrow {
    my ($err) = @_;
    my $msg = unplaced($err, (caller)[1]);
    die $err if ref $msg || $msg eq $err;
    Carp::croak($msg);
}

# Calls an XS method and returns what it returns; its croaks, which name
# the line below, are raised again at the line that called the public
# method.
sub call {
    my $code = shift;
    my @ret;
    local $@;
    return wantarray ? @ret : $ret[0] if eval { @ret = &$code; 1 };
    rethrow($@);
}

# ---- argument checks ---------------------------------------------------------

# Runs a user's callback from inside a recipe's own machinery (a session,
# a mirror): an exception goes to $EV::DIED, as it would for a callback EV
# calls, and does not stop the recipe's work.
sub call_user {
    my ($cb, @args) = @_;
    return unless $cb;
    local $@;
    return if eval { $cb->(@args); 1 };
    if (ref $EV::DIED eq 'CODE') { $EV::DIED->() }
    else                         { warn "EV: error in callback (ignoring): $@" }
    return;
}

# Calls back on the next turn of the loop, never inside the method call.
sub later {
    my ($cb, @args) = @_;
    EV::once(undef, 0, 0, sub { $cb->(@args) });
    return;
}

# A value shown in a message.
sub show {
    my ($v) = @_;
    return 'undef' unless defined $v;
    return ref($v) . ' reference' if ref $v;
    return "'$v'";
}

# A string as the XS side takes one: defined, and not a reference unless
# an object with overloading (which counts by its string).
sub is_string {
    my ($v) = @_;
    return defined $v && (!ref $v || overload::Overloaded($v)) ? 1 : 0;
}

# The bytes of a string (as is_string has it; undef for anything else):
# characters above 0x7f, if the string carries the UTF-8 flag, as their
# UTF-8 encoding, as the XS side sends them. (The check is is_string's,
# written out: namespaced calls come through here for every key.)
sub bytes {
    my ($v) = @_;
    return undef unless defined $v && (!ref $v || overload::Overloaded($v));
    my $s = "$v";
    utf8::encode($s) if utf8::is_utf8($s);
    return $s;
}

# A string that is a whole number from 1 to 18 digits, blanks and a plus
# sign allowed around it.
sub is_positive_int {
    my ($v) = @_;
    return is_string($v) && "$v" =~ /\A\s*\+?0*[1-9][0-9]{0,17}\s*\z/ ? 1 : 0;
}

sub is_client { Scalar::Util::blessed($_[0]) && $_[0]->isa('EV::Etcd') ? 1 : 0 }

# An object (a hash; of $class, if given) that holds a client: a session,
# a range iterator, a stream handle.
sub holds_client {
    my ($self, $class) = @_;
    return Scalar::Util::blessed($self) && Scalar::Util::reftype($self) eq 'HASH'
        && (!defined $class || $self->isa($class)) && Scalar::Util::blessed($self->{client}) ? 1 : 0;
}

# Croaks "callback must be a code reference (METHOD)" unless $cb is one.
sub need_cb {
    my ($cb, $method) = @_;
    Carp::croak("callback must be a code reference ($method)") unless ref $cb eq 'CODE';
    return $cb;
}

# A copy of an options hash (undef: none); anything else croaks.
sub opts {
    my ($opt, $method) = @_;
    Carp::croak("$method: options must be a hash reference") if defined $opt && ref $opt ne 'HASH';
    return { %{ $opt // {} } };
}

# A string argument as the XS side sends it (is_string, bytes); anything
# else croaks "$what must be defined" or "$what must be a string, not ...".
sub string_arg {
    my ($v, $what) = @_;
    Carp::croak("$what must be defined") unless defined $v;
    Carp::croak("$what must be a string, not " . show($v)) unless is_string($v);
    return bytes($v);
}

# The first key after every key that starts with $prefix: its last byte
# below 0xff raised by one, the 0xff bytes after it dropped. A prefix made
# of 0xff bytes only (or none) reaches to the end of the keyspace, which
# etcd writes as "\0".
sub prefix_end {
    (my $end = $_[0]) =~ s/\xff+\z//;
    return "\0" if $end eq '';
    substr($end, -1, 1, chr(ord(substr($end, -1)) + 1));
    return $end;
}

1;

__END__

=encoding utf8

=head1 NAME

EV::Etcd::Util - internal helpers of the EV::Etcd distribution

=head1 DESCRIPTION

This module holds what the Perl parts of L<EV::Etcd> share: the checks
they make on arguments before the XS code sees them, and the code that
makes their croaks point at the line that called the public method. It
is loaded by EV::Etcd itself and is not meant to be used from outside
the distribution: it has no public interface, and its functions may
change or disappear in any release without notice.

Use L<EV::Etcd>, L<EV::Etcd::Session>, L<EV::Etcd::RangeIterator> and
L<EV::Etcd::Namespace> instead.

=head1 LICENSE

EV::Etcd::Util is part of EV::Etcd and is free software. You may
distribute it and/or modify it under the same terms as Perl 5 itself,
that is under either the GNU General Public License or the Artistic
License.

=cut
