package EV::Etcd::RangeIterator;

# Reads a range of keys one page at a time, every page at the revision of
# the first, so the whole walk sees one snapshot. Made by
# EV::Etcd::range_iterator. The full reference is in lib/EV/Etcd.pm (under
# range_iterator); the POD below is this class's own page.

use strict;
use warnings;
use Carp ();
use EV ();
use EV::Etcd::Util ();

our $VERSION = '0.01';

# Croaks point at the code that called range_iterator or next, not at
# EV::Etcd's one-line wrapper.
our @CARP_NOT = ('EV::Etcd');

our $DEFAULT_PAGE_SIZE = 1000;

# get options handed on to every page as they are.
my %PASSED = map { $_ => 1 } qw(
    keys_only serializable timeout revision
    min_mod_revision max_mod_revision min_create_revision max_create_revision
);
my %INTEGER = map { $_ => 1 } qw(
    revision min_mod_revision max_mod_revision min_create_revision max_create_revision
);

sub new {
    my ($class, $client, $key, $opt, @rest) = @_;
    Carp::croak('range_iterator: called on something that is not a live EV::Etcd client')
        unless EV::Etcd::Util::is_client($client);
    eval { $client->_assert_usable; 1 } or EV::Etcd::Util::rethrow($@);
    Carp::croak('range_iterator: takes a key and an options hash, no callback (pass the callback to next)')
        if @rest || ref $opt eq 'CODE';
    Carp::croak('range_iterator: key must be defined') unless defined $key;
    Carp::croak('range_iterator: key must be a string, not a reference')
        unless EV::Etcd::Util::is_string($key);
    my %opt = %{ EV::Etcd::Util::opts($opt, 'range_iterator') };
    $key = EV::Etcd::Util::bytes($key);

    my $page_size = delete $opt{page_size};
    if (defined $page_size) {
        Carp::croak('range_iterator: page_size must be a positive integer, got ' . EV::Etcd::Util::show($page_size))
            unless EV::Etcd::Util::is_positive_int($page_size);
        $page_size = 0 + "$page_size";
    } else {
        $page_size = $DEFAULT_PAGE_SIZE;
    }
    Carp::croak('range_iterator: limit is not an option here: the iterator sets it (use page_size)')
        if exists $opt{limit};
    Carp::croak('range_iterator: count_only makes no sense for an iterator (use get with count_only)')
        if exists $opt{count_only};

    # Pages continue after the last key of the previous one, so they must
    # come in ascending key order. Asking for that order explicitly changes
    # nothing, but would make etcd read the whole rest of the range for
    # every page: such options are accepted and not passed on.
    my $order  = delete $opt{sort_order};
    my $target = delete $opt{sort_target};
    Carp::croak('range_iterator: pages come in key order; sort_order ' . EV::Etcd::Util::show($order) . ' is not supported')
        if defined $order && !(EV::Etcd::Util::is_string($order) && "$order" =~ /\A(?:none|ascend)\z/i);
    Carp::croak('range_iterator: pages come in key order; sort_target ' . EV::Etcd::Util::show($target) . ' is not supported')
        if defined $target && !(EV::Etcd::Util::is_string($target) && "$target" =~ /\Akey\z/i);

    my $prefix    = delete $opt{prefix};
    my $range_end = delete $opt{range_end};
    Carp::croak('range_iterator: range_end must be a string, not a reference')
        if defined $range_end && !EV::Etcd::Util::is_string($range_end);

    my %get;
    for my $name (sort keys %opt) {
        Carp::croak("range_iterator: unknown option '$name'") unless $PASSED{$name};
        my $v = $opt{$name};
        next unless defined $v;
        Carp::croak("range_iterator: $name must be an integer, got " . EV::Etcd::Util::show($v))
            if $INTEGER{$name} && !(EV::Etcd::Util::is_string($v) && "$v" =~ /\A\s*[+-]?[0-9]+\s*\z/);
        $get{$name} = $v;
    }

    # The first page asks for the range as the caller wrote it, so that the
    # client resolves it (a namespaced client maps prefix '' to its own
    # keys, the namespace itself included). Later pages start after the
    # last key read and end where that range ends.
    my (%first, $end);
    if ($prefix) {
        %first = (prefix => 1);
        $end = length $key ? EV::Etcd::Util::prefix_end($key) : "\0";
    } elsif (defined $range_end && length $range_end) {
        $end = EV::Etcd::Util::bytes($range_end);
        %first = (range_end => $end);
    }

    # A revision given by the caller fixes the snapshot; 0 means "the
    # latest", which the first page then decides.
    my $rev = delete $get{revision};
    if (defined $rev) {
        ($rev = "$rev") =~ s/\A\s*\+?|\s*\z//g;
        Carp::croak("range_iterator: revision must not be negative, got '$rev'") if $rev =~ /\A-/;
        $rev =~ s/\A0+(?=.)//;
        undef $rev if $rev eq '0';
    }
    return bless {
        client    => $client,
        first     => \%first,   # range options of the first page
        next_key  => $key,
        end       => $end,      # undef: a single key
        get       => \%get,
        page_size => $page_size,
        revision  => $rev,
        busy      => 0,
        done      => 0,
        header    => undef,
    }, $class;
}

sub _check_self {
    my ($self, $what) = @_;
    Carp::croak("$what: called on something that is not a range iterator")
        unless EV::Etcd::Util::holds_client($self, __PACKAGE__);
}

sub next {
    my ($self, $cb) = @_;
    _check_self($self, 'next');
    EV::Etcd::Util::need_cb($cb, 'next');
    Carp::croak('next: the previous page has not arrived yet (call next again from its callback)')
        if $self->{busy};

    if ($self->{done}) {
        # Nothing left to read: answer from the loop, not from inside next.
        $self->{busy} = 1;
        EV::once(undef, 0, 0, sub {
            $self->{busy} = 0;
            $cb->({ kvs => [], header => $self->{header}, more => 0 }, undef);
        });
        return;
    }

    my %o = (%{ $self->{get} }, limit => $self->{page_size});
    if (!$self->{header}) { %o = (%o, %{ $self->{first} }) }
    elsif (defined $self->{end}) { $o{range_end} = $self->{end} }
    $o{revision} = $self->{revision} if defined $self->{revision};
    eval {
        $self->{client}->get($self->{next_key}, \%o, sub { $self->_page($cb, @_) });
        1;
    } or EV::Etcd::Util::rethrow($@);
    $self->{busy} = 1;
    return;
}

sub _page {
    my ($self, $cb, $resp, $err) = @_;
    $self->{busy} = 0;
    # An error leaves the iterator where it was: the next call to next asks
    # for the same page again.
    return $cb->(undef, $err) if $err;

    my $kvs = $resp->{kvs};
    $self->{revision} //= $resp->{header}{revision};
    $self->{header} = $resp->{header};
    if (!defined $self->{end} || !$resp->{more} || !@$kvs) {
        $self->{done} = 1;
    } else {
        $self->{next_key} = $kvs->[-1]{key} . "\0";
    }
    $cb->({ kvs => $kvs, header => $resp->{header}, more => $self->{done} ? 0 : 1 }, undef);
}

sub revision  { _check_self($_[0], 'revision');  $_[0]{revision} }
sub done      { _check_self($_[0], 'done');      $_[0]{done} }
sub page_size { _check_self($_[0], 'page_size'); $_[0]{page_size} }

1;

__END__

=encoding utf8

=head1 NAME

EV::Etcd::RangeIterator - page through a range of etcd keys at one revision

=head1 SYNOPSIS

=for ev-etcd example client prints ^first page: \d+ keys, more to come: [01]$

  my $it = $etcd->range_iterator('/jobs/', { prefix => 1, page_size => 500 });
  $it->next(sub {
      my ($page, $err) = @_;
      die "range failed: $err->{message}\n" if $err;
      printf "first page: %d keys, more to come: %d\n",
          scalar @{ $page->{kvs} }, $page->{more};
  });

=head1 DESCRIPTION

An iterator walks a range of keys in pages: each page is one C<get> with
a C<limit>, and every page after the first is read at the revision the
first one was read at. Together the pages show the range as it was at
that one revision, however long the walk takes and whatever other
clients write meanwhile, and the client holds only one page in memory
at a time.

Iterators are made by the C<range_iterator> method of an L<EV::Etcd>
client (or of a namespaced client, whose namespace they then respect);
this class has no constructor of its own for you to call:

  my $it = $etcd->range_iterator($key, \%opt);

C<$key> and the options pick the range as for C<get> (C<prefix>,
C<range_end>), plus C<page_size> (default 1000) and C<revision>, which
fixes the snapshot in advance. Creating the iterator sends nothing. The
options, what each one means for the walk, and the croaks are listed
under L<EV::Etcd/range_iterator>.

=head1 METHODS

=head2 next

  $it->next(sub {
      my ($page, $err) = @_;
      ...
  });

Reads the next page and passes it to the callback, always from the loop,
never inside C<next>. A page is a hash with C<kvs> (the records, as
C<get> returns them, in ascending key order), C<header> (that of the
request that read this page) and C<more>, which is 0 on the last page.
After the last page, C<next> keeps answering with an empty page without
asking etcd.

Call C<next> once at a time: a second call before the first one's
callback has run croaks. On an error the callback gets C<(undef, $err)>
with the error hash of the failed C<get>, and the iterator does not
move, so calling C<next> again retries the same page; an
C<OUT_OF_RANGE> error means the snapshot revision has been compacted,
and only a new iterator helps. See
L<EV::Etcd/EV::Etcd::RangeIterator-E<gt>next> for the details.

=head2 revision

  my $rev = $it->revision;

The revision all pages are read at: undef until the first page has
arrived, unless the C<revision> option set it.

=head2 done

  my $finished = $it->done;

True once the last page, the one with C<< more => 0 >>, has arrived
(already inside that page's callback).

=head2 page_size

  my $n = $it->page_size;

How many records a page holds at most.

=head1 SEE ALSO

L<EV::Etcd/range_iterator> for the options, the errors and what a walk
costs etcd; L<EV::Etcd/get>, which each page is made of; and
F<bench/range_walk.pl> in the distribution.

=head1 LICENSE

EV::Etcd::RangeIterator is part of EV::Etcd and is free software. You
may distribute it and/or modify it under the same terms as Perl 5
itself, that is under either the GNU General Public License or the
Artistic License.

=cut
