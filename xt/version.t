#!/usr/bin/env perl
# Author test: one version everywhere. Every package in lib/ (as PAUSE and
# metacpan read them, with Module::Metadata: statically, from a literal
# "our $VERSION = '...';"), META (written by Makefile.PL), and the newest
# Changes entry say X.YY; Cargo.toml, which needs semver, says
# X.(YY as a number).0, e.g. 0.01 and 0.1.0.
use strict;
use warnings;
use Test::More;
use JSON::PP ();
use Module::Metadata ();

my $slurp = sub { open my $fh, '<', $_[0] or die "$_[0]: $!"; local $/; <$fh> };
my ($version) = $slurp->('lib/EV/Etcd.pm') =~ /^our \$VERSION = '([^']+)';/m;
like $version // '', qr/^\d+\.\d\d$/, "lib/EV/Etcd.pm has a version (" . ($version // 'none') . ")";

# Every package, the handle classes that share lib/EV/Etcd.pm included.
my $provides = Module::Metadata->provides(dir => 'lib', version => 2);
my @packages = sort keys %$provides;
my @expected = qw(
    EV::Etcd EV::Etcd::Keepalive EV::Etcd::Mirror EV::Etcd::Namespace EV::Etcd::Observe
    EV::Etcd::RangeIterator EV::Etcd::STM EV::Etcd::STM::NeedRead EV::Etcd::STM::Tx
    EV::Etcd::Session EV::Etcd::Snapshot
    EV::Etcd::Stream EV::Etcd::Util EV::Etcd::Watch
);
my %found = map { $_ => 1 } @packages;
ok $found{$_}, "Module::Metadata finds package $_" for @expected;
for my $package (@packages) {
    my $p = $provides->{$package};
    is $p->{version}, $version, "$package ($p->{file}): version $version, readable without running the code";
    # and the same once loaded (run with prove -b: EV::Etcd needs its XS part)
    (my $module = $p->{file}) =~ s{\Alib/|\.pm\z}{}g;
    $module =~ s{/}{::}g;
    eval "require $module; 1" or die $@;
    is $package->VERSION, $version, "$package->VERSION is $version";
}
my ($major, $minor) = $version =~ /^(\d+)\.(\d\d)$/;
my ($cargo) = $slurp->('Cargo.toml') =~ /^version = "([^"]+)"/m;
is $cargo, sprintf('%d.%d.0', $major, $minor), "Cargo.toml's version matches ($cargo)";
my ($changes) = $slurp->('Changes') =~ /^(\d+\.\d\d)\s/m;
is $changes, $version, "the newest Changes entry is $version";
ok -e 'MYMETA.json', 'MYMETA.json is there (Makefile.PL has run)';
is eval { JSON::PP::decode_json($slurp->('MYMETA.json'))->{version} }, $version, 'META agrees';
done_testing;
