#!/usr/bin/env perl
# Author test: one version everywhere. The Perl modules, META (written by
# Makefile.PL), and the newest Changes entry say X.YY; Cargo.toml, which
# needs semver, says X.(YY as a number).0, e.g. 0.01 and 0.1.0.
use strict;
use warnings;
use Test::More;
use JSON::PP ();

my $slurp = sub { open my $fh, '<', $_[0] or die "$_[0]: $!"; local $/; <$fh> };
my ($version) = $slurp->('lib/EV/Etcd.pm') =~ /^our \$VERSION = '([^']+)';/m;
like $version // '', qr/^\d+\.\d\d$/, "lib/EV/Etcd.pm has a version ($version)";

for my $pm (glob 'lib/EV/Etcd/*.pm') {
    my ($v) = $slurp->($pm) =~ /^our \$VERSION = (.+);/m;
    ok defined $v && ($v eq "'$version'" || $v eq '$EV::Etcd::VERSION'), "$pm: version $version";
}
my ($major, $minor) = $version =~ /^(\d+)\.(\d\d)$/;
my ($cargo) = $slurp->('Cargo.toml') =~ /^version = "([^"]+)"/m;
is $cargo, sprintf('%d.%d.0', $major, $minor), "Cargo.toml's version matches ($cargo)";
my ($changes) = $slurp->('Changes') =~ /^(\d+\.\d\d)\s/m;
is $changes, $version, "the newest Changes entry is $version";
ok -e 'MYMETA.json', 'MYMETA.json is there (Makefile.PL has run)';
is eval { JSON::PP::decode_json($slurp->('MYMETA.json'))->{version} }, $version, 'META agrees';
done_testing;
