#!/usr/bin/env perl
# Author test: every public method is documented, under a heading (or an
# =item) of its own, so that metacpan's contents list shows it. Run with
# prove -b: EV::Etcd's XS methods are only there once it is built.
#
# - EV::Etcd, EV::Etcd::Session, EV::Etcd::RangeIterator, EV::Etcd::Mirror,
#   EV::Etcd::Namespace and EV::Etcd::STM (with its EV::Etcd::STM::Tx):
#   against their own pages.
# - The stream handle classes (EV::Etcd::Stream's cancel, EV::Etcd::Watch's
#   progress) live in lib/EV/Etcd.pm and are documented there.
# - EV::Etcd::Namespace and EV::Etcd::RangeIterator are also described in
#   full in EV::Etcd's page, so their public subs must each be named there.
use strict;
use warnings;
use Test::More;
use Test::Pod::Coverage 1.08;
use Pod::Text ();

pod_coverage_ok('EV::Etcd', { trustme => [qr/^bootstrap$/] },
                'EV::Etcd: every public method is documented');
pod_coverage_ok('EV::Etcd::Session', 'EV::Etcd::Session: every public method is documented');
# new: iterators are made by EV::Etcd's range_iterator, which documents it
pod_coverage_ok('EV::Etcd::RangeIterator', { trustme => [qr/^new$/] },
                'EV::Etcd::RangeIterator: every public method is documented on its page');
# new: mirrors are made by EV::Etcd's mirror
pod_coverage_ok('EV::Etcd::Mirror', { trustme => [qr/^new$/] },
                'EV::Etcd::Mirror: every public method is documented on its page');
pod_coverage_ok('EV::Etcd::STM', 'EV::Etcd::STM: every public method is documented on its page');
# the transaction object's class shares lib/EV/Etcd/STM.pm and its page
require EV::Etcd::STM;
$INC{'EV/Etcd/STM/Tx.pm'} = $INC{'EV/Etcd/STM.pm'};
pod_coverage_ok('EV::Etcd::STM::Tx', { pod_from => 'blib/lib/EV/Etcd/STM.pm' },
                'EV::Etcd::STM::Tx: its methods are documented in EV::Etcd::STM');
pod_coverage_ok('EV::Etcd::Namespace',
                'EV::Etcd::Namespace: every public method is documented on its page');
require EV::Etcd;
for my $class (qw(EV::Etcd::Stream EV::Etcd::Watch)) {
    # defined by lib/EV/Etcd.pm: let Pod::Coverage's require find them loaded
    (my $file = "$class.pm") =~ s{::}{/}g;
    $INC{$file} = $INC{'EV/Etcd.pm'};
    pod_coverage_ok($class, { pod_from => 'blib/lib/EV/Etcd.pm' },
                    "$class: its methods are documented in EV::Etcd");
}

my $pod = '';
{
    open my $out, '>', \$pod or die;
    Pod::Text->new->parse_from_file('lib/EV/Etcd.pm', $out);
}
for my $module (qw(EV::Etcd::Namespace EV::Etcd::RangeIterator)) {
    # from the symbol table: Namespace makes most of its methods from a table
    eval "require $module; 1" or die $@;
    my @subs = sort grep { !/^_/ && defined &{"${module}::$_"} } do { no strict 'refs'; keys %{"${module}::"} };
    ok @subs, "$module has public subs (@subs)";
    for my $sub (@subs) {
        next if $sub eq 'new';    # made by EV::Etcd->new or range_iterator
        like $pod, qr/\b\Q$sub\E\b/, "$module: $sub is documented in EV::Etcd";
    }
}
done_testing;
