#!/usr/bin/env perl
# Author test: the release tarball. `make dist` gives a small tarball with
# the sources and none of the build products; `make distcheck` finds
# MANIFEST and the files in agreement; the tarball unpacked into a fresh
# directory configures, builds the shipped way (cargo from scratch, in its
# own target dir, without the test hooks, whose code is nowhere in its
# Etcd.so) and passes a cross-section of the tests against etcd; and
# Makefile.PL on a machine without cargo says how to get it and exits 0
# without a Makefile.
#
# Needs a configured checkout (scripts/test.sh builds before running xt/)
# and etcd: ETCD_BIN, or etcd 3.5 from scripts/etcd-bin.sh.
use strict;
use warnings;
use Test::More;
use Cwd qw(getcwd);
use File::Temp qw(tempdir);
use JSON::PP ();

-e 'Makefile' or BAIL_OUT('xt/dist.t needs a configured checkout (perl Makefile.PL)');
my $root = getcwd();
my $tmp  = tempdir('ev-etcd-dist-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# Runs a shell command, returns (exit status, output).
sub sh {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    return ($?, $out);
}

my ($version) = do { local (@ARGV, $/) = 'lib/EV/Etcd.pm'; <> } =~ /^our \$VERSION = '([^']+)';/m;
my $name = "EV-Etcd-$version";

# ---- the tarball --------------------------------------------------------------
my ($rc, $out) = sh('make -s dist');
is $rc, 0, 'make dist' or diag $out;
ok -f "$name.tar.gz", "it writes $name.tar.gz";
my $tarball = "$tmp/$name.tar.gz";
rename "$name.tar.gz", $tarball or die "moving $name.tar.gz: $!";
my $size = -s $tarball // 0;
cmp_ok $size, '<', 3 * 1024 * 1024, sprintf('the tarball is small (%.0f kB)', $size / 1024);

my @files = map { s{^\Q$name\E/}{}r } grep { m{[^/]\z} } split /\n/, `tar tzf $tarball`;
my %in = map { $_ => 1 } @files;
is_deeply [ grep { m{^(?:target|blib|bench/native/target|bench/results)/|^MYMETA|^Makefile\z|\.o\z|\.so\z|^xs-glue/Etcd\.c\z} } @files ],
    [], 'no build products in it';
ok $in{$_}, "it has $_" for qw(Makefile.PL Cargo.toml Cargo.lock build.rs META.json META.yml
    MANIFEST README.md Changes lib/EV/Etcd.pm xs-glue/Etcd.xs src/lib.rs t/lib/EtcdTest.pm);
ok scalar(grep { m{^proto/.+\.proto\z} } @files), 'and the .proto files';

my $meta = eval {
    JSON::PP::decode_json(scalar `tar xzOf $tarball $name/META.json`);
};
is $meta && $meta->{version}, $version, 'META.json has the version';
ok $meta && $meta->{resources}{repository}{url}, 'META names the repository';
ok $meta && $meta->{resources}{bugtracker}{web}, 'META names the bug tracker';
for my $phase (qw(configure build runtime test)) {
    ok $meta && %{ $meta->{prereqs}{$phase}{requires} // {} }, "META has $phase prerequisites";
}
is $meta && $meta->{prereqs}{runtime}{requires}{EV}, '4.0', 'EV is a runtime prerequisite';

# ---- make distcheck -----------------------------------------------------------
($rc, $out) = sh('make -s distcheck');
is $rc, 0, 'make distcheck runs';
unlike $out, qr/^(?:No such file|Not in MANIFEST): /m, 'make distcheck: MANIFEST and the files agree'
    or diag $out;
unlink 'MANIFEST.bak';

# ---- a fresh directory --------------------------------------------------------
my $fresh = "$tmp/fresh";
mkdir $fresh or die "$fresh: $!";
($rc, $out) = sh("tar xzf $tarball -C $fresh");
is $rc, 0, 'the tarball unpacks' or diag $out;
my $dir = "$fresh/$name";

my $etcd = $ENV{ETCD_BIN} || `bash scripts/etcd-bin.sh 3.5 2>/dev/null`;
chomp $etcd;
ok $etcd && -x $etcd, "an etcd to test against ($etcd)";

{
    # Its own cargo target dir: nothing built here is reused. The shipped
    # build: no test hooks (scripts/test.sh sets EV_ETCD_TEST_HOOKS).
    local $ENV{CARGO_TARGET_DIR};
    delete $ENV{CARGO_TARGET_DIR};
    local $ENV{EV_ETCD_TEST_HOOKS};
    delete $ENV{EV_ETCD_TEST_HOOKS};
    chdir $dir or die "$dir: $!";
    ($rc, $out) = sh("$^X Makefile.PL");
    is $rc, 0, 'perl Makefile.PL in the fresh directory' or diag $out;
    like $out, qr/^EV::Etcd: building the shipped way, without test hooks/m,
        '... configures the shipped build';
    ($rc, $out) = sh('make');
    is $rc, 0, 'make builds it there (cargo from scratch)' or diag substr($out, -3000);
    my $so = 'blib/arch/auto/EV/Etcd/Etcd.so';
    ok -f $so, 'Etcd.so is built';

    # No test hook in it: no symbol of the C ABI's hooks, no XS sub's name,
    # no panic message of theirs.
    my $bytes = do { local $/; open my $fh, '<:raw', $so or die "$so: $!"; <$fh> } // '';
    my @hooks = sort keys %{ { map { $_ => 1 } $bytes =~ /(\w*for_testing\w*|crash requested by a test|panic requested by a test)/g } };
    is_deeply \@hooks, [], 'no test hook in the shipped Etcd.so';
    ($rc, $out) = sh('nm -D --defined-only ' . $so);
    SKIP: {
        skip 'no nm', 2 if $rc == -1 || $out =~ /not found/;
        like $out, qr/\bevetcd_call\b/, 'nm -D lists the C ABI';
        unlike $out, qr/for_testing/, '... and no hook among it';
    }
    ($rc, $out) = sh(qq{$^X -Mblib -MEV::Etcd -e 'print defined &EV::Etcd::_echo_requests_for_testing ? "defined" : "absent"'});
    is $out, 'absent', 'EV::Etcd::_echo_requests_for_testing is not defined';

    # A cross-section: harness, KV, txn, errors, watch, lease, lock,
    # election, the POD's examples and the eg/ programs.
    my @tests = grep { -f } map { "t/$_.t" } qw(00-harness 10-kv 11-txn 12-errors 20-watch
        23-lease 24-lock 25-election 59-pod-examples 60-examples);
    cmp_ok scalar @tests, '>=', 10, 'the chosen tests are in the tarball';
    local $ENV{ETCD_BIN} = $etcd;
    ($rc, $out) = sh("make test TEST_FILES='@tests'");
    is $rc, 0, "make test passes there (@tests)" or diag substr($out, -4000);
    like $out, qr/^Result: PASS$/m, '... with Result: PASS';
    unlike $out, qr/\bskipped\b/i, '... and nothing skipped';

    # A hook test skips there, saying why.
    ($rc, $out) = sh('prove -b t/48-request-encoding.t');
    is $rc, 0, 't/48 passes there' or diag $out;
    like $out, qr/skipped: built without test hooks: run EV_ETCD_TEST_HOOKS=1 perl Makefile.PL/,
        '... by skipping, saying why';
    chdir $root or die;
}

# ---- Makefile.PL without cargo ------------------------------------------------
{
    my $nocargo = "$tmp/nocargo";
    mkdir $nocargo or die;
    ($rc, $out) = sh("tar xzf $tarball -C $nocargo");
    chdir "$nocargo/$name" or die;
    # A PATH with perl but no cargo, and a HOME without ~/.cargo/bin.
    mkdir "$tmp/bin";
    symlink $^X, "$tmp/bin/perl";
    ($rc, $out) = sh("env -u CARGO PATH=$tmp/bin:/bin HOME=$tmp/nohome perl Makefile.PL");
    is $rc, 0, 'Makefile.PL without cargo exits 0';
    like $out, qr/rustup/, '... says how to get a Rust toolchain';
    ok !-e 'Makefile', '... and writes no Makefile';
    chdir $root or die;
}

done_testing;
