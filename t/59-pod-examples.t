#!/usr/bin/env perl
# Runs the code examples of the POD against a throwaway etcd.
#
# An example counts as runnable when a paragraph
#
#   =for ev-etcd example [client] [interrupt] [own-etcd] [prints REGEX]
#
# comes right before its verbatim paragraph(s). Without "client" the code is
# a whole program; with it, the code is a fragment that uses a connected
# client in $etcd, and EV::run follows it unless it calls EV::run itself.
# Every example must connect to 127.0.0.1:2379 (replaced here by the test
# server's address), end by itself within 20 s - or, with "interrupt", keep
# running until SIGINT and then exit - exit 0, write nothing to stderr (a
# die inside a callback shows up there), and print what "prints" asks for.
# "own-etcd" gives the example a fresh server (for one that enables auth).
# An example whose modules (AnyEvent, say) are missing is skipped, except
# in strict mode (EtcdTest::ci_mode), where that fails.
# Every SYNOPSIS must be runnable, or be listed in %FRAGMENT_SYNOPSIS.
use strict;
use warnings;

use Test::More;
use File::Find qw(find);
use File::Spec;
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

use lib 't/lib';
use EtcdTest;

need_etcd();

# Synopses that only sketch calls (their methods have runnable examples).
my %FRAGMENT_SYNOPSIS = ();

my @pm;
find({ wanted => sub { push @pm, $File::Find::name if /\.pm\z/ }, no_chdir => 1 }, 'lib');
@pm = sort @pm;

# ---- extraction ---------------------------------------------------------------
# Paragraphs of the POD, each [first line number, text].
sub pod_paragraphs {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    my (@paras, $cur, $in_pod);
    my $flush = sub { push @paras, $cur if $cur; undef $cur };
    while (my $line = <$fh>) {
        if (!$in_pod) {
            $in_pod = 1 if $line =~ /^=[a-zA-Z]/;
            next unless $in_pod;
        }
        if ($line =~ /^\s*$/) { $flush->(); next }
        if ($line =~ /^=cut\b/) { $flush->(); $in_pod = 0; next }
        $cur //= [ $., '' ];
        $cur->[1] .= $line;
    }
    $flush->();
    return @paras;
}

my @examples;
for my $file (@pm) {
    my @paras = pod_paragraphs($file);
    my $section = '';
    my %has_synopsis_example;
    for (my $i = 0; $i < @paras; $i++) {
        my ($line, $text) = @{ $paras[$i] };
        $section = $1 if $text =~ /^=head\d\s+(.+?)\s*$/;
        next unless $text =~ /^=for\s+ev-etcd\s+example\b(.*)/s;
        my $spec = $1;
        $spec =~ s/^\s+|\s+$//g;
        my %flag;
        $flag{prints} = qr/$1/m if $spec =~ s/\bprints\s+(.+)\z//s;
        $flag{$_} = 1 for split ' ', $spec;
        my @bad = grep { !/^(client|interrupt|own-etcd|prints)$/ } keys %flag;
        fail("$file line $line: unknown example flag(s) @bad") if @bad;

        my ($code, $start) = ('', undef);
        while ($i + 1 < @paras && $paras[ $i + 1 ][1] =~ /^[ \t]/) {
            my ($l, $t) = @{ $paras[ ++$i ] };
            $start //= $l;
            $code .= "\n" if length $code;
            $code .= $t;
        }
        if (!defined $start) {
            fail("$file line $line: '=for ev-etcd example' is not followed by code");
            next;
        }
        # Remove the common indentation.
        my ($indent) = sort { length $a <=> length $b } $code =~ /^([ \t]*)\S/mg;
        $code =~ s/^\Q$indent\E//mg;
        $has_synopsis_example{$file} = 1 if $section eq 'SYNOPSIS';
        push @examples, {
            file => $file, line => $start, section => $section, code => $code, %flag,
        };
    }
    my $has_synopsis = grep { $_->[1] =~ /^=head1\s+SYNOPSIS\b/ } @paras;
    if ($has_synopsis && !$FRAGMENT_SYNOPSIS{$file}) {
        ok $has_synopsis_example{$file}, "$file: its SYNOPSIS is a runnable example";
    }
}

cmp_ok scalar @examples, '>=', 15, 'the POD marks at least 15 runnable examples';
my %in = map { ("$_->{file}:$_->{section}" => 1) } @examples;
ok $in{'lib/EV/Etcd.pm:SYNOPSIS'}, 'the main SYNOPSIS is among them';

# ---- running ------------------------------------------------------------------
my $shared = start_etcd(name => 'podex');
my $dir    = tempdir(CLEANUP => 1);
my @blib   = map { File::Spec->rel2abs($_) } 'blib/lib', 'blib/arch';

sub program_for {
    my ($ex, $endpoint) = @_;
    my $code = $ex->{code};
    my $n = ($code =~ s/'127\.0\.0\.1:2379'/'$endpoint'/g);
    my $where = qq{#line $ex->{line} "$ex->{file}"\n};
    if ($ex->{client}) {
        my $prelude = "use strict;\nuse warnings;\nuse EV;\nuse EV::Etcd;\n"
            . "my \$etcd = EV::Etcd->new(endpoints => ['$endpoint']);\n";
        my $tail = $code =~ /\bEV::run\b/ ? '' : "\nEV::run;\n";
        return "$prelude$where$code$tail";
    }
    return undef unless $n;    # a whole program must name the server
    return "$where$code";
}

# Runs a program; returns (exit status, stdout, stderr, how it ended).
sub run_program {
    my ($path, $ex) = @_;
    my ($out, $err) = ("$path.out", "$path.err");
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN,  '<', '/dev/null';
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        chdir $dir;
        exec $^X, (map { "-I$_" } @blib), $path;
        die "exec: $!";
    }
    my $ended = 'exited';
    my $t0 = time;
    my $waited;
    if ($ex->{interrupt}) {
        # It must still be running after a while, and stop on SIGINT.
        while (time - $t0 < 2) {
            last if $waited = waitpid($pid, WNOHANG);
            sleep 0.05;
        }
        if ($waited) { $ended = 'exited before SIGINT' }
        else         { kill 'INT', $pid; $t0 = time }
    }
    until ($waited) {
        $waited = waitpid($pid, WNOHANG);
        last if $waited;
        if (time - $t0 > 20) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            $ended = 'killed after 20 s';
            last;
        }
        sleep 0.05;
    }
    my $status = $?;
    my $slurp = sub { open my $fh, '<', $_[0] or return ''; local $/; scalar(<$fh>) // '' };
    return ($status, $slurp->($out), $slurp->($err), $ended);
}

my $n = 0;
# Examples with their own server last, so that a shared server is not needed
# by then; they need nothing else.
for my $ex (sort { ($a->{'own-etcd'} // 0) <=> ($b->{'own-etcd'} // 0) } @examples) {
    my $name = "$ex->{file} line $ex->{line} ($ex->{section})";
    # An example that uses another framework (AnyEvent, Mojolicious) needs
    # it; without it, it is skipped, except in strict mode.
    my @missing = grep { !eval "require $_; 1" }
        grep { !/^(?:strict|warnings|utf8|EV|EV::Etcd(?:::\w+)*)$/ } $ex->{code} =~ /^\s*use\s+([A-Z][\w:]*)/mg;
    if (@missing) {
        if (EtcdTest::ci_mode()) { fail("$name: needs @missing, which is missing") }
        else { SKIP: { skip("$name: needs @missing", 1) } }
        next;
    }
    my $srv  = $ex->{'own-etcd'} ? start_etcd(name => 'podex' . ++$n) : $shared;
    my $program = program_for($ex, $srv->endpoint);
    if (!defined $program) {
        fail("$name: a whole program must connect to '127.0.0.1:2379'");
        next;
    }
    my $path = "$dir/example" . ++$n . '.pl';
    open my $fh, '>', $path or die "$path: $!";
    print {$fh} $program;
    close $fh;
    my ($status, $out, $err, $ended) = run_program($path, $ex);
    my $ok = is($ended, 'exited', "$name: ends as it should");
    $ok &= is($status, 0, "$name: exit status 0");
    $ok &= is($err, '', "$name: nothing on stderr");
    $ok &= like($out, $ex->{prints}, "$name: prints what it says") if $ex->{prints};
    diag("program:\n$program\nstdout:\n$out") unless $ok;
    $srv->stop if $ex->{'own-etcd'};
}

done_testing;
