#!/usr/bin/env perl
# Author test: every public method is documented. EV::Etcd (its XS methods
# included: run with prove -b) and EV::Etcd::Session carry their own POD;
# EV::Etcd::Namespace and EV::Etcd::RangeIterator are documented in
# EV::Etcd's, so their public subs must each be named there.
use strict;
use warnings;
use Test::More;
use Test::Pod::Coverage 1.08;
use Pod::Text ();

# The user and role calls are documented together, in prose under "Users"
# and "Roles", rather than one heading each.
my @in_prose = qw(user_add user_delete user_change_password user_grant_role user_revoke_role
                  role_add role_delete);
pod_coverage_ok('EV::Etcd', { trustme => [ qr/^bootstrap$/, map { qr/^\Q$_\E$/ } @in_prose ] },
                'EV::Etcd: every public method is documented');
pod_coverage_ok('EV::Etcd::Session', 'EV::Etcd::Session: every public method is documented');

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
