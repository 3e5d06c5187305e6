#!/usr/bin/env perl
# Author test: MANIFEST lists exactly the files under version control that
# MANIFEST.SKIP does not exclude, so `make dist` ships what the build needs
# and nothing more.
use strict;
use warnings;
use Test::More;

my @tracked = grep { length } split /\n/, `git ls-files 2>/dev/null`;
ok !$? && @tracked, 'git lists the tracked files' or BAIL_OUT('xt/manifest.t needs a git checkout');

open my $sk, '<', 'MANIFEST.SKIP' or die "MANIFEST.SKIP: $!";
my @skip = map { chomp; qr/$_/ } grep { !/^\s*(?:#|$)/ } <$sk>;
open my $mf, '<', 'MANIFEST' or die "MANIFEST: $!";
my @listed = map { (split ' ', $_)[0] } grep { /\S/ } <$mf>;

my %listed = map { $_ => 1 } @listed;
my @want = grep { my $f = $_; !grep { $f =~ $_ } @skip } @tracked;
is_deeply [ grep { !$listed{$_} } @want ], [], 'every shipped file is in MANIFEST';
my %want = map { $_ => 1 } @want;
is_deeply [ grep { !$want{$_} } @listed ], [], 'MANIFEST names only tracked, shipped files';
is_deeply \@listed, [ sort @listed ], 'MANIFEST is sorted';
done_testing;
