package EV::Etcd;

use strict;
use warnings;
use Carp ();
use EV ();

our $VERSION = '0.01';

require XSLoader;
XSLoader::load('EV::Etcd', $VERSION);

# txn accepts named arguments as well as the four positional ones.
{
    my $positional = \&txn;
    no warnings 'redefine';
    *txn = sub {
        my $self = shift;
        return $self->$positional(@_)
            if @_ == 4 && ref $_[0] eq 'ARRAY' && ref $_[1] eq 'ARRAY'
                && ref $_[2] eq 'ARRAY' && ref $_[3] eq 'CODE';
        my $cb;
        $cb = pop if @_ % 2 && ref $_[-1] eq 'CODE';
        Carp::croak('txn: arguments must be (\@compare, \@success, \@failure, $cb) or name => value pairs')
            if @_ % 2;
        my %arg = @_;
        $cb //= delete $arg{callback};
        delete $arg{callback};
        for my $list (qw(compare success failure)) {
            Carp::croak("txn '$list' must be an array reference")
                if defined $arg{$list} && ref $arg{$list} ne 'ARRAY';
        }
        my @unknown = grep { !/^(?:compare|success|failure)\z/ } sort keys %arg;
        Carp::croak("txn: unknown argument '$unknown[0]'") if @unknown;
        return $self->$positional($arg{compare} // [], $arg{success} // [],
            $arg{failure} // [], $cb);
    };
}

# Handles of the three streams; cancel is the same for all of them.
package EV::Etcd::Stream;

sub cancel {
    my ($self, $cb) = @_;
    Carp::croak('callback must be a code reference') unless ref $cb eq 'CODE';
    if ($self->{cancelled}++) {
        $cb->({}, undef);    # already cancelled: answer at once
        return;
    }
    $self->{client}->_cancel_stream($self->{kind}, $self->{id}, $cb);
    return;
}

package EV::Etcd::Watch;
our @ISA = ('EV::Etcd::Stream');

package EV::Etcd::Keepalive;
our @ISA = ('EV::Etcd::Stream');

package EV::Etcd::Observe;
our @ISA = ('EV::Etcd::Stream');

package EV::Etcd;

1;

__END__

=encoding utf8

=head1 NAME

EV::Etcd - asynchronous etcd v3 client for the EV event loop

=head1 SYNOPSIS

  use EV;
  use EV::Etcd;

  my $etcd = EV::Etcd->new(endpoints => ['127.0.0.1:2379']);
  $etcd->put('/config/color', 'blue', sub {
      my ($resp, $err) = @_;
      die "put failed: $err->{message}\n" if $err;
      print "stored at revision $resp->{header}{revision}\n";
  });
  EV::run;

=head1 DESCRIPTION

Documentation is being written; see the interface description in the
project repository.

=cut
