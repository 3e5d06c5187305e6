#!/usr/bin/env perl
# Author test: the release tarball, installed the ways CPAN users and
# packagers install it.
#   - `make dist` gives a small tarball with the sources, none of the build
#     products, and META with every package's version; `make distcheck`
#     finds MANIFEST and the files in agreement.
#   - Makefile.PL without cargo, or with Debian 12's Rust 1.65, says what is
#     needed and exits 0 without a Makefile (CPAN's "not applicable").
#   - A packager's offline build: in a fresh directory, with an empty cargo
#     home, `cargo fetch` once, then configure and build with the network
#     off. The shipped build: no test hooks, no debug info. A second make
#     runs no cargo. A cross-section of the tests passes against etcd.
#   - `cpanm` installs the tarball into a local lib as a pipeline would:
#     CI set, no etcd to be found (the etcd tests skip, saying why), no
#     cargo on the PATH, and `sudo make install` under root's PATH, which
#     runs no cargo.
#   - scripts/smoke.pl, run from the installed copy against a throwaway etcd.
#   - realclean removes the build's own target directory, and leaves alone
#     a CARGO_TARGET_DIR it was given.
#
# Needs a configured checkout (scripts/test.sh builds before running xt/),
# cpanm (Debian's cpanminus), readelf, network access for the one fetch,
# and etcd: ETCD_BIN, or etcd 3.5 from scripts/etcd-bin.sh.
use strict;
use warnings;
use Test::More;
use Cwd qw(getcwd);
use File::Temp qw(tempdir);
use JSON::PP ();
use File::Spec;
use Time::HiRes qw(time);
use lib 'inc';
use EVEtcdPlatform ();

-e 'Makefile' or BAIL_OUT('xt/dist.t needs a configured checkout (perl Makefile.PL)');
my $root = getcwd();
# XT_DIST_KEEP=1 keeps the directory (builds, cpanm's logs) to look into.
my $tmp  = tempdir('ev-etcd-dist-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{XT_DIST_KEEP});
diag "xt/dist.t works in $tmp (kept)" if $ENV{XT_DIST_KEEP};

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
{
    # Every package in lib/, each with the distribution's version, as PAUSE
    # indexes them.
    my %seen;
    my @packages = sort grep { !$seen{$_}++ } map { /^\s*package\s+([\w:]+)\s*;/mg } map { scalar `cat $_` } glob('lib/EV/*.pm lib/EV/Etcd/*.pm');
    my $provides = $meta && $meta->{provides} || {};
    is_deeply [ sort keys %$provides ], \@packages, "META provides every package in lib/ (@packages)";
    is_deeply [ grep { ($provides->{$_}{version} // '') ne $version } sort keys %$provides ], [],
        "... each with version $version";
}

# ---- make distcheck -----------------------------------------------------------
($rc, $out) = sh('make -s distcheck');
is $rc, 0, 'make distcheck runs';
unlike $out, qr/^(?:No such file|Not in MANIFEST): /m, 'make distcheck: MANIFEST and the files agree'
    or diag $out;
unlink 'MANIFEST.bak';

# ---- Makefile.PL without a Rust toolchain, or with too old a one -----------
# Both are "not applicable": a reason, exit 0, no Makefile.
my $cargo = EVEtcdPlatform::find_cargo(%ENV);
ok $cargo, "the cargo to build with ($cargo)";
{
    my $na = "$tmp/na";
    mkdir $na or die;
    ($rc, $out) = sh("tar xzf $tarball -C $na");
    chdir "$na/$name" or die;
    # A PATH with perl and the system's tools, a HOME without ~/.cargo/bin.
    my $bin = "$tmp/na-bin";
    mkdir $bin;
    symlink $^X, "$bin/perl";
    ($rc, $out) = sh("env -u CARGO -u RUSTC PATH=$bin:/usr/bin:/bin HOME=$tmp/nohome perl Makefile.PL");
    is $rc, 0, 'Makefile.PL without cargo exits 0';
    like $out, qr/no cargo was\nfound.*rustup/s, '... says how to get a Rust toolchain';
    ok !-e 'Makefile', '... and writes no Makefile';

    # Debian 12's own cargo and rustc, 1.65, first on the PATH.
    for my $tool (qw(cargo rustc)) {
        open my $fh, '>', "$bin/$tool" or die;
        print {$fh} "#!/bin/sh\necho '$tool 1.65.0 (00000000 2022-11-02)'\n";
        close $fh;
        chmod 0755, "$bin/$tool";
    }
    ($rc, $out) = sh("env -u CARGO -u RUSTC PATH=$bin:/usr/bin:/bin HOME=$tmp/nohome perl Makefile.PL");
    is $rc, 0, 'Makefile.PL with Rust 1.65 exits 0';
    my $need = EVEtcdPlatform::rust_version_needed('Cargo.toml');
    like $out, qr/needs Rust \Q$need\E or newer.*\Q$bin\E\/rustc is rustc 1\.65\.0/s,
        "... says that Rust $need or newer is needed, and what it found";
    ok !-e 'Makefile', '... and writes no Makefile';
    chdir $root or die;
}

# ---- a packager's offline build -------------------------------------------------
my $fresh = "$tmp/fresh";
mkdir $fresh or die "$fresh: $!";
($rc, $out) = sh("tar xzf $tarball -C $fresh");
is $rc, 0, 'the tarball unpacks' or diag $out;
my $dir = "$fresh/$name";

my $etcd = $ENV{ETCD_BIN} || `bash scripts/etcd-bin.sh 3.5 2>/dev/null`;
chomp $etcd;
ok $etcd && -x $etcd, "an etcd to test against ($etcd)";

# The environment of the builds below: the shipped build (scripts/test.sh
# sets EV_ETCD_TEST_HOOKS and the strict test mode; a user has neither), a
# cargo home of its own, no target dir from outside.
my $cargo_home = "$tmp/cargo-home";
my %clean_env = (
    CARGO_HOME => $cargo_home, CARGO_TARGET_DIR => undef, EV_ETCD_TEST_HOOKS => undef,
    EV_ETCD_DEBUG_INFO => undef, EV_ETCD_STRICT_TESTS => undef, RELEASE_TESTING => undef,
    AUTHOR_TESTING => undef, CARGO_NET_OFFLINE => undef, EV_ETCD_IO_MODE => undef,
);
# Network off: a network namespace of its own where this system allows
# one (unshare -n), and in any case cargo told to stay offline and given a
# proxy that refuses, so that a fetch it tried would fail.
my $no_net = system('unshare -n true >/dev/null 2>&1') == 0 ? 'unshare -n ' : '';
my %offline = (CARGO_NET_OFFLINE => 'true', map { $_ => 'http://127.0.0.1:9' }
    qw(CARGO_HTTP_PROXY http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY));
my $lib = 'target/release/libev_etcd.a';
my $so  = 'blib/arch/auto/EV/Etcd/Etcd.so';
{
    local @ENV{ keys %clean_env } = values %clean_env;
    delete @ENV{ grep { !defined $clean_env{$_} } keys %clean_env };
    chdir $dir or die "$dir: $!";
    ok !-e $cargo_home, 'the cargo home starts empty';
    ($rc, $out) = sh("'$cargo' fetch --locked");
    is $rc, 0, 'cargo fetch --locked, once, with the network' or diag $out;
    {
        local @ENV{ keys %offline } = values %offline;
        note $no_net ? 'network off: unshare -n' : 'network off: CARGO_NET_OFFLINE and a refusing proxy';
        ($rc, $out) = sh("$^X Makefile.PL");
        is $rc, 0, 'perl Makefile.PL in the fresh directory' or diag $out;
        like $out, qr/^EV::Etcd: building the shipped way, without test hooks/m,
            '... configures the shipped build';
        like $out, qr/^EV::Etcd: Etcd\.so without debug info/m, '... without debug info';
        my $t0 = time;
        ($rc, $out) = sh("${no_net}make");
        my $took = time - $t0;
        is $rc, 0, 'make builds it with the network off (cargo from scratch)' or diag substr($out, -3000);
        unlike $out, qr/^\s*(?:Downloading|Updating) /m, '... downloading nothing';
        diag sprintf 'the build from scratch took %.0f s (at nice 15 beside the suites under .ci/run)', $took;
    }
    ok -f $so, 'Etcd.so is built';
    my $size = -s $so // 0;
    cmp_ok $size, '<', 6 * 1024 * 1024, sprintf('Etcd.so is %.1f MB', $size / 1024 / 1024);
    ($rc, $out) = sh("readelf -S -W $so");
    is $rc, 0, 'readelf -S runs' or diag $out;
    my @debug = $out =~ /\s(\.debug_\w+|\.symtab)\s/g;
    is_deeply \@debug, [], '... and finds no debug info and no local symbol table in it';

    # No test hook in it: no symbol of the C ABI's hooks, no XS sub's name,
    # no panic message of theirs.
    my $bytes = do { local $/; open my $fh, '<:raw', $so or die "$so: $!"; <$fh> } // '';
    my @hooks = sort keys %{ { map { $_ => 1 } $bytes =~ /(\w*for_testing\w*|crash requested by a test|panic requested by a test)/g } };
    is_deeply \@hooks, [], 'no test hook in the shipped Etcd.so';
    ($rc, $out) = sh('nm -D --defined-only ' . $so);
    is $rc, 0, 'nm -D runs' or diag $out;
    like $out, qr/\bevetcd_call\b/, 'nm -D lists the C ABI';
    unlike $out, qr/for_testing/, '... and no hook among it';
    ($rc, $out) = sh(qq{$^X -Mblib -MEV::Etcd -e 'print defined &EV::Etcd::_echo_requests_for_testing ? "defined" : "absent"'});
    is $out, 'absent', 'EV::Etcd::_echo_requests_for_testing is not defined';

    # Nothing changed: make runs no cargo, and the library stays as it is.
    my $mtime = (stat $lib)[9];
    ($rc, $out) = sh('env PATH=/usr/bin:/bin make');
    is $rc, 0, 'make again, with no cargo on the PATH';
    unlike $out, qr/cargo|Compiling|Finished/, '... runs no cargo' or diag $out;
    is +(stat $lib)[9], $mtime, '... and leaves the Rust library alone';

    # A cross-section: harness, KV, txn, errors, watch, lease, lock,
    # election, the POD's examples and the eg/ programs.
    my @tests = grep { -f } map { "t/$_.t" } qw(00-harness 10-kv 11-txn 12-errors 20-watch
        23-lease 24-lock 25-election 59-pod-examples 60-examples);
    cmp_ok scalar @tests, '>=', 10, 'the chosen tests are in the tarball';
    local $ENV{ETCD_BIN} = $etcd;
    local $ENV{EV_ETCD_STRICT_TESTS} = 1;
    ($rc, $out) = sh("make test TEST_FILES='@tests'");
    is $rc, 0, "make test passes there (@tests)" or diag substr($out, -4000);
    like $out, qr/^Result: PASS$/m, '... with Result: PASS';
    unlike $out, qr/\bskipped\b/i, '... and nothing skipped';

    # A hook test skips there, saying why.
    delete local $ENV{EV_ETCD_STRICT_TESTS};
    ($rc, $out) = sh('prove -b t/48-request-encoding.t');
    is $rc, 0, 't/48 passes there' or diag $out;
    like $out, qr/skipped: built without test hooks: run EV_ETCD_TEST_HOOKS=1 perl Makefile.PL/,
        '... by skipping, saying why';
    chdir $root or die;
}

# ---- cpanm into a local lib, as in somebody else's pipeline -------------------
# No etcd and no cargo on the PATH: a directory of links to every program
# on this one but those. cargo is named by CARGO (Makefile.PL keeps its
# absolute path for make). The install step goes through a stand-in sudo
# that, like the real one, runs it under root's PATH, and with a rustup
# that has no toolchain: a cargo run there would fail.
my $local = "$tmp/local";
my $cpanm_home = "$tmp/cpanm-home";
my $bin = "$tmp/bin-no-etcd-no-cargo";
mkdir $bin or die;
symlink $^X, "$bin/perl" or die;
for my $d (File::Spec->path) {
    opendir my $dh, $d or next;
    for my $f (readdir $dh) {
        next if $f =~ /^(?:\.\.?|etcd.*|cargo.*|rustc|rustdoc|rustup|perl|sudo)$/;
        next if -e "$bin/$f" || !-f "$d/$f" || !-x _;
        symlink "$d/$f", "$bin/$f";
    }
}
{
    open my $fh, '>', "$bin/sudo" or die;
    print {$fh} <<"SUDO";
#!/bin/sh
echo "\$*" >>'$tmp/sudo.log'
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME='$tmp/root-home' TERM=dumb \\
    RUSTUP_HOME='$tmp/root-home/.rustup' CARGO_HOME='$tmp/root-home/.cargo' "\$@" >>'$tmp/sudo.out' 2>&1
rc=\$?
cat '$tmp/sudo.out'
exit \$rc
SUDO
    close $fh;
    chmod 0755, "$bin/sudo";
}
SKIP: {
    my $cpanm = EVEtcdPlatform::which('cpanm', $ENV{PATH});
    ok $cpanm, "cpanm is there ($cpanm)" or skip 'no cpanm (apt-get install cpanminus)', 20;
    local @ENV{ keys %clean_env } = values %clean_env;
    delete @ENV{ grep { !defined $clean_env{$_} } keys %clean_env };
    local @ENV{ keys %offline } = values %offline;
    local $ENV{CI} = 'true';
    local $ENV{PATH} = $bin;
    local $ENV{CARGO} = $cargo;
    # The offline build's target dir, given from outside: its dependencies
    # are reused, and realclean must leave it.
    local $ENV{CARGO_TARGET_DIR} = "$dir/target";
    local $ENV{PERL_CPANM_HOME} = $cpanm_home;
    delete local $ENV{ETCD_BIN};
    delete local $ENV{PERL5LIB};
    delete local $ENV{PERL_MM_OPT};
    is EVEtcdPlatform::which('etcd', $ENV{PATH}), undef, 'no etcd on that PATH';
    is EVEtcdPlatform::which('cargo', $ENV{PATH}), undef, '... and no cargo';
    # Offline too: whatever cpanm wanted from CPAN would fail at once (all
    # prerequisites are installed on this system).
    ($rc, $out) = sh("$cpanm --verbose --sudo --mirror file://$tmp/no-mirror --mirror-only -l $local $tarball");
    is $rc, 0, 'cpanm --sudo -l (a local lib) installs the tarball' or diag substr($out, -5000);
    # (matched with ok: like would print cpanm's whole output on a failure)
    ok $out =~ /^Successfully installed \Q$name\E/m, '... saying so';
    my ($build) = glob "$cpanm_home/work/*/$name";
    ok $build && -d $build, "cpanm's build directory is kept ($build)";
    # (cpanm does not show what Makefile.PL prints; the Makefile says it)
    like scalar(`cat '$build/Makefile'`), qr/cargo_build\(\@ARGV\)' -- '\Q$cargo\E' /,
        "... whose Makefile runs CARGO's cargo, by its absolute path";
    ok $out =~ /^t\/10-kv\.t \.+ skipped: no etcd: install etcd or set ETCD_BIN$/m,
        '... the etcd tests skipping, with the reason (CI is set, the project\'s variable is not)';
    ok $out =~ /^Result: PASS$/m, '... and the test run passing';
    like scalar(`cat $tmp/sudo.log`), qr/^\S*make install$/m, 'the install step went through sudo';
    my $install = `cat $tmp/sudo.out`;
    like $install, qr/^Installing /m, '... which installed';
    unlike $install, qr/\bCompiling\b|\bFinished\b|rustup|cargo/,
        '... and ran no cargo' or diag $install;
    # Where INSTALL_BASE puts a file: lib/perl5, or its arch directory.
    my $installed = sub { (grep { -f } "$local/lib/perl5/$_[0]", glob("$local/lib/perl5/*/$_[0]"))[0] };
    ok $installed->($_), "$_ is installed" for qw(EV/Etcd.pm EV/Etcd/Namespace.pm EV/Etcd/Session.pm
        EV/Etcd/Mirror.pm EV/Etcd/STM.pm EV/Etcd/RangeIterator.pm auto/EV/Etcd/Etcd.so);

    # realclean in cpanm's build directory: the target dir it was given stays.
    # (never without the directory: an empty cd would clean this checkout)
    ($rc, $out) = $build ? sh("cd '$build' && make realclean") : (1, 'no build directory');
    is $rc, 0, 'make realclean there' or diag $out;
    ok -e "$dir/target/release/libev_etcd.a", "... leaves CARGO_TARGET_DIR's directory alone";
}

# ---- the smoke script, from the installed copy --------------------------------
{
    local $ENV{PERL5LIB} = "$local/lib/perl5";
    local $ENV{ETCD_BIN} = $etcd;
    ($rc, $out) = sh("cd $tmp && $^X $dir/scripts/smoke.pl");
    is $rc, 0, 'scripts/smoke.pl passes against a throwaway etcd' or diag $out;
    like $out, qr/^smoke: 10 passed, 0 failed$/m, '... every step';
    like $out, qr/^EV::Etcd \Q$version\E from \Q$local\E\/\S+ \(\Q$local\E\/\S+\/Etcd\.so\)$/m,
        '... with the module and Etcd.so loaded from the local lib';
}

# ---- realclean of the offline build: its own target dir goes ------------------
{
    chdir $dir or die;
    ($rc, $out) = sh('make realclean');
    is $rc, 0, 'make realclean in the offline build';
    ok !-e 'target', '... removes the target dir the build created';
    chdir $root or die;
}

done_testing;
