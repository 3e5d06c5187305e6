#!/usr/bin/env perl
# Author test: no debugging output left in the shipped code: no dbg! or
# eprintln! in the Rust core, no Data::Dumper or bare STDERR prints in lib/.
use strict;
use warnings;
use Test::More;

# (build.rs is left out: println! is how a build script talks to cargo)
my @rust = (glob('src/*.rs'), glob('src/*/*.rs'));
my @perl = (glob('lib/EV/*.pm'), glob('lib/EV/Etcd/*.pm'));
my @xs   = (glob('xs-glue/*.xs'), glob('xs-glue/*.xsh'), glob('xs-glue/*.h'));
for my $file (@rust, @perl, @xs) {
    open my $fh, '<', $file or die "$file: $!";
    my @hits;
    while (my $line = <$fh>) {
        next if $line =~ m{^\s*(?://|#)};    # comments may name them
        push @hits, "$.: $line" if $file =~ /\.rs$/ && $line =~ /\b(?:dbg!|eprintln!|println!)/;
        push @hits, "$.: $line" if $file =~ /\.pm$/ && $line =~ /\b(?:Data::Dumper|print\s+STDERR|warn\s+["']DEBUG)/;
        push @hits, "$.: $line" if $file =~ /\.(?:xsh?|h)$/ && $line =~ /\b(?:fprintf\s*\(\s*stderr|printf\s*\()/;
    }
    is_deeply \@hits, [], "$file: no debugging output";
}
done_testing;
