#!/usr/bin/env perl
# What the build does on each system (inc/EVEtcdPlatform.pm, which
# Makefile.PL asks with $^O): Windows is refused; GNU-style linkers (Linux,
# the BSDs) get a version script, Apple's an exported-symbols list, both
# written from one list; the native libraries are the ones cargo names; the
# make step runs cargo and keeps them; Makefile.PL run with $^O set to
# another system writes that system's Makefile. On this system, also: the
# built Etcd.so exports only what the list says. Needs no etcd.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use File::Path qw(mkpath);
use lib 'inc';
use EVEtcdPlatform;

# ---- refused ------------------------------------------------------------------
for my $os (qw(MSWin32 cygwin msys)) {
    like EVEtcdPlatform::refusal($os), qr/does not support Windows \($os\)/,
        "$os is refused, saying why";
}
for my $os (qw(linux darwin freebsd openbsd netbsd solaris)) {
    is EVEtcdPlatform::refusal($os), undef, "$os is not refused";
}

# ---- linker flags and export files --------------------------------------------
# The symbols a GNU version script makes global, in order; dies unless the
# script keeps everything else local.
sub version_script_globals {
    my ($text) = @_;
    $text =~ s{/\*.*?\*/}{}gs;
    my ($global, $local) = $text =~ /^\s*\{\s*global:\s*(.*?)\s*local:\s*(.*?)\s*\}\s*;\s*\z/s
        or die "not a version script:\n$text";
    die "local is not '*;': $local" unless $local eq '*;';
    return [ map { (my $n = $_) =~ s/;\z//; $n } split ' ', $global ];
}

for my $os (qw(linux freebsd openbsd netbsd dragonfly)) {
    my $flags = EVEtcdPlatform::link_flags($os);
    like $flags, qr/(?:^| )-Wl,--version-script=xs-glue\/exports\.map(?: |$)/,
        "$os: the version script";
    like $flags, qr/(?:^| )-Wl,--gc-sections(?: |$)/, "$os: unused sections dropped";
    unlike $flags, qr/exported_symbols_list|dead_strip|-framework/, "$os: no Apple ld flags";
    my ($file, $text) = EVEtcdPlatform::exports_file($os);
    is $file, 'xs-glue/exports.map', "$os: the script's path is the one the flags name";
    is_deeply version_script_globals($text), [qw(boot_EV__Etcd evetcd_*)],
        "$os: global are the boot function and the C ABI, the rest local";
}

{
    my $flags = EVEtcdPlatform::link_flags('darwin');
    like $flags, qr/(?:^| )-Wl,-exported_symbols_list,xs-glue\/exports\.list(?: |$)/,
        'darwin: the exported-symbols list';
    like $flags, qr/(?:^| )-Wl,-dead_strip(?: |$)/, 'darwin: unused code dropped';
    unlike $flags, qr/--version-script|--gc-sections/, 'darwin: no GNU ld flags';
    my ($file, $text) = EVEtcdPlatform::exports_file('darwin');
    is $file, 'xs-glue/exports.list', "darwin: the list's path is the one the flags name";
    my @names = grep { !/^#/ } split /\n/, $text;
    is_deeply \@names, [qw(_boot_EV__Etcd _evetcd_*)],
        'darwin: the same symbols, with Mach-O underscores';
    my (undef, $map) = EVEtcdPlatform::exports_file('linux');
    is_deeply [ map { substr $_, 1 } @names ], version_script_globals($map),
        'both files come from one list';
}

{
    is EVEtcdPlatform::link_flags('solaris'), '', 'another system: no linker flags';
    is_deeply [ EVEtcdPlatform::exports_file('solaris') ], [], '... and no export file';
}

# ---- native libraries ---------------------------------------------------------
# The notes rustc 1.95 printed here for this crate's static library, built
# for each system.
my %note = (
    linux   => '-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc',
    darwin  => '-framework Security -framework CoreFoundation -liconv -lSystem -lc -lm',
    freebsd => '-lrt -lutil -lexecinfo -lkvm -lmemstat -lkvm -lutil -lprocstat -lrt -ldevstat '
             . '-lexecinfo -lpthread -lgcc_s -lc -lm -lrt -lpthread -lrt -lutil -lexecinfo '
             . '-lkvm -lmemstat -lkvm -lutil -lprocstat -lrt -ldevstat',
);
for my $os (sort keys %note) {
    my $output = "   Compiling ev-etcd v0.1.0\n"
        . "note: link against the following native artifacts when linking against this "
        . "static library. The order and any duplication can be significant on some platforms\n\n"
        . "note: native-static-libs: $note{$os}\n\n"
        . "    Finished `release` profile [optimized] target(s) in 1.00s\n";
    is EVEtcdPlatform::native_libs($output), $note{$os}, "$os: the libraries of cargo's note";
}
like EVEtcdPlatform::native_libs("note: native-static-libs: $note{darwin}\n"),
    qr/^-framework Security -framework CoreFoundation /,
    'darwin: the frameworks of the system certificates (security-framework) come first, in pairs';
is EVEtcdPlatform::native_libs("    Finished `release` profile\n"), undef, 'no note: undef';

# ---- protoc -------------------------------------------------------------------
ok EVEtcdPlatform::vendored_protoc('linux', 'x86_64-linux-gnu-thread-multi'), 'linux x86_64: vendored protoc';
ok EVEtcdPlatform::vendored_protoc('linux', 'aarch64-linux-gnu-thread-multi'), 'linux aarch64: vendored protoc';
ok EVEtcdPlatform::vendored_protoc('darwin', 'darwin-thread-multi-2level'), 'darwin: vendored protoc';
ok !EVEtcdPlatform::vendored_protoc('linux', 'armv7l-linux-gnueabihf'), 'linux armv7: protoc needed';
ok !EVEtcdPlatform::vendored_protoc('freebsd', 'amd64-freebsd-thread-multi'), 'freebsd: protoc needed';
ok !EVEtcdPlatform::vendored_protoc('openbsd', 'OpenBSD.amd64-openbsd'), 'openbsd: protoc needed';

# ---- the make step, with a stand-in cargo -------------------------------------
{
    my $dir = tempdir(CLEANUP => 1);
    my $cargo = "$dir/cargo";
    open my $fh, '>', $cargo or die "$cargo: $!";
    print {$fh} <<"FAKE";
#!$^X
open my \$log, '>', "$dir/args" or die;
print {\$log} join("\\n", \@ARGV, 'PROTOC=' . (\$ENV{PROTOC} // '')), "\\n";
print STDERR "   Compiling ev-etcd\\n";
print STDERR "note: native-static-libs: \$ENV{FAKE_LIBS}\\n" if length \$ENV{FAKE_LIBS};
exit(\$ENV{FAKE_EXIT} // 0);
FAKE
    close $fh;
    chmod 0755, $cargo or die "$cargo: $!";
    my $libs = "$dir/native-static-libs.txt";
    my $build = sub {
        my ($protoc, $hooks) = @_;
        $hooks //= 0;
        my $out = `$^X -Iinc -MEVEtcdPlatform -e 'EVEtcdPlatform::cargo_build(\@ARGV)' -- '$cargo' '$dir/target' '$libs' '$protoc' '$hooks' 2>&1`;
        return ($? >> 8, $out);
    };

    local $ENV{FAKE_LIBS} = '-lfoo -lbar';
    my ($rc, $out) = $build->('/opt/protoc');
    is $rc, 0, 'make step: succeeds when cargo does';
    like $out, qr/Compiling ev-etcd/, "... and shows cargo's output";
    is slurp($libs), "-lfoo -lbar\n", '... and keeps the note\'s libraries';
    is_deeply [ split /\n/, slurp("$dir/args") ],
        [ qw(rustc --release --locked --lib --manifest-path Cargo.toml --target-dir), "$dir/target",
          qw(-- --print native-static-libs), 'PROTOC=/opt/protoc' ],
        '... having run cargo rustc for the note, with PROTOC when given';
    ($rc, $out) = $build->('', 1);
    is_deeply [ split /\n/, slurp("$dir/args") ],
        [ qw(rustc --release --locked --lib --manifest-path Cargo.toml --target-dir), "$dir/target",
          qw(--features test-hooks -- --print native-static-libs), 'PROTOC=' ],
        'with the test hooks: cargo builds the test-hooks feature';

    local $ENV{FAKE_LIBS} = '';
    ($rc, $out) = $build->('');
    is $rc, 0, 'no note (nothing rebuilt, no replay): succeeds';
    is slurp($libs), "-lfoo -lbar\n", '... keeping the libraries found before';
    unlink $libs;
    ($rc, $out) = $build->('');
    isnt $rc, 0, '... but fails when there were none';
    like $out, qr/no native-static-libs note/, '... saying so';

    local $ENV{FAKE_LIBS} = '-lnew';
    local $ENV{FAKE_EXIT} = 3;
    ($rc, $out) = $build->('');
    is $rc, 3, "cargo fails: the step fails with cargo's status";
    ok !-e $libs, '... writing nothing';
}

# ---- Makefile.PL itself, with $^O set to another system ----------------------
# ($^O can be assigned; MakeMaker then writes that system's kind of Makefile.)
SKIP: {
    my ($cargo) = grep { -x } ($ENV{CARGO} // ()),
        (map { "$_/cargo" } split /:/, $ENV{PATH} // ''), ($ENV{HOME} // '') . "/.cargo/bin/cargo";
    skip 'Makefile.PL needs cargo', 22 unless $cargo;
    my @files = do {
        open my $mf, '<', 'MANIFEST' or die "MANIFEST: $!";
        map { (split ' ')[0] } grep { /\S/ } <$mf>;
    };
    # Runs Makefile.PL as $os would in a fresh copy of the distribution;
    # returns (exit status, output, that directory).
    my $configure = sub {
        my ($os, %env) = @_;
        my $dir = tempdir(CLEANUP => 1);
        for my $f (@files) {
            (my $sub = "$dir/$f") =~ s{/[^/]+\z}{};
            mkpath($sub);
            copy($f, "$dir/$f") or die "$f: $!";
        }
        local $ENV{CARGO} = $cargo;
        local @ENV{ keys %env } = values %env;
        delete local $ENV{CARGO_TARGET_DIR};
        my $code = 'BEGIN { $^O = shift } do "./Makefile.PL"; die $@ if $@';
        my $pid = open(my $from, '-|') // die "fork: $!";
        if (!$pid) {
            open STDERR, '>&', \*STDOUT or die;
            chdir $dir or die "$dir: $!";
            exec $^X, '-e', $code, $os or die "$^X: $!";
        }
        my $out = do { local $/; <$from> };
        close $from;
        return ($?, $out, $dir);
    };

    my ($rc, $out, $dir) = $configure->('MSWin32');
    is $rc, 0, 'Makefile.PL as MSWin32: exits 0';
    like $out, qr/does not support Windows/, '... saying why';
    ok !-e "$dir/Makefile", '... and writes no Makefile';

    ($rc, $out, $dir) = $configure->('darwin', EV_ETCD_TEST_HOOKS => '');
    is $rc, 0, 'Makefile.PL as darwin' or diag $out;
    my $mk = slurp("$dir/Makefile") // '';
    like $out, qr/^EV::Etcd: building the shipped way, without test hooks/m,
        '... the shipped build, saying so';
    like $mk, qr/cargo_build\(\@ARGV\)' -- .* '0'$/m, '... cargo without the test hooks';
    unlike $mk, qr/^DEFINE = .*EVETCD_TEST_HOOKS/m, '... nor the XS';
    like $mk, qr/^OTHERLDFLAGS = -Wl,-exported_symbols_list,xs-glue\/exports\.list -Wl,-dead_strip\s*$/m,
        '... links with the exported-symbols list';
    unlike $mk, qr/version-script|gc-sections/, '... and no GNU ld flags';
    is slurp("$dir/xs-glue/exports.list"), (EVEtcdPlatform::exports_file('darwin'))[1],
        '... which it wrote';
    like $mk, qr/^LDLOADLIBS = `cat 'target\/release\/native-static-libs\.txt'`\s*$/m,
        "... with the native libraries of cargo's note";
    like $mk, qr/\$\(OTHERLDFLAGS\) -o \$\@ \$\(MYEXTLIB\)[^\n]*\\?\n[^\n]*\$\(LDLOADLIBS\)/,
        '... after the Rust library on the link line';

    ($rc, $out, $dir) = $configure->('freebsd', PROTOC => $^X, EV_ETCD_TEST_HOOKS => 1);
    is $rc, 0, 'Makefile.PL as freebsd, PROTOC given, with the test hooks' or diag $out;
    $mk = slurp("$dir/Makefile") // '';
    like $mk, qr/^OTHERLDFLAGS = -Wl,--version-script=xs-glue\/exports\.map -Wl,--gc-sections\s*$/m,
        '... links with the version script';
    like $mk, qr/cargo_build\(\@ARGV\)' -- .* '\Q$^X\E' '1'$/m,
        '... and hands PROTOC and the test hooks to the cargo step';
    like $out, qr/^EV::Etcd: building WITH test hooks/m, '... saying it builds the hooks';
    like $mk, qr/^DEFINE = -DEVETCD_TEST_HOOKS\s*$/m, '... which the XS gets too';
    is slurp("$dir/xs-glue/test-hooks.stamp"), "EV_ETCD_TEST_HOOKS=1\n", '... noted in the stamp';
    like $mk, qr{^xs-glue/Etcd\$\(OBJ_EXT\) : xs-glue/test-hooks\.stamp\s*$}m,
        '... that the XS object depends on';
    like $mk, qr{^\$\(INST_DYNAMIC\): .*xs-glue/test-hooks\.stamp\s*$}m, '... and Etcd.so too';

    my $bin = tempdir(CLEANUP => 1);
    ($rc, $out, $dir) = $configure->('freebsd', PROTOC => '', PATH => $bin);
    like $out, qr/Install protoc/, 'as freebsd without protoc: says what to install';
    ok !-e "$dir/Makefile", '... and writes no Makefile';
}

# ---- this system's build ------------------------------------------------------
SKIP: {
    my $so = 'blib/arch/auto/EV/Etcd/Etcd.so';
    skip 'checks the exports with GNU nm on Linux', 3 unless $^O eq 'linux';
    skip "$so is not built", 3 unless -f $so;
    my @syms = map { (split ' ')[-1] } grep { /\s[A-Z]\s/ } `nm -D --defined-only $so 2>/dev/null`;
    skip 'no nm -D here', 3 if $? || !@syms;
    ok scalar(grep { $_ eq 'boot_EV__Etcd' } @syms), 'Etcd.so exports boot_EV__Etcd';
    ok scalar(grep { /^evetcd_/ } @syms), '... and the evetcd_ ABI';
    is_deeply [ grep { $_ ne 'boot_EV__Etcd' && !/^evetcd_/ } @syms ], [], '... and nothing else';
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    return scalar <$fh>;
}

done_testing;
