#!/usr/bin/env perl
# What the build does on each system (inc/EVEtcdPlatform.pm, which
# Makefile.PL asks with $^O): Windows is refused; GNU-style linkers (Linux,
# the BSDs) get a version script, Apple's an exported-symbols list, both
# written from one list; debug info is dropped unless asked for; the Rust
# toolchain is found as absolute paths and refused (a reason, no Makefile)
# when too old or missing; the native libraries are the ones cargo names;
# the make step runs that cargo and keeps them; Makefile.PL run with $^O set
# to another system writes that system's Makefile, whose cargo step runs
# only when the library's inputs change. On this system, also: the built
# Etcd.so exports only what the list says. Needs no etcd.
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
    like $flags, qr/(?:^| )-Wl,-s$/, "$os: debug info and local symbols stripped";
    unlike EVEtcdPlatform::link_flags($os, 1), qr/-Wl,-s\b/, "$os: ... unless kept";
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
    like $flags, qr/ -Wl,-S -Wl,-x$/, 'darwin: debug info and local symbols stripped';
    unlike EVEtcdPlatform::link_flags('darwin', 1), qr/-Wl,-[Sx]\b/, 'darwin: ... unless kept';
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

# ---- the Rust toolchain -----------------------------------------------------
# Stand-in programs that print a version, in directories of their own.
sub fake_tool {
    my ($dir, $name, $version) = @_;
    mkpath($dir);
    my $path = "$dir/$name";
    open my $fh, '>', $path or die "$path: $!";
    print {$fh} "#!/bin/sh\necho '$name $version (0000000 2023-01-01)'\n";
    close $fh;
    chmod 0755, $path or die "$path: $!";
    return $path;
}
{
    my $dir = tempdir(CLEANUP => 1);
    my $new_cargo = fake_tool("$dir/new", 'cargo', '1.90.0');
    my $new_rustc = fake_tool("$dir/new", 'rustc', '1.90.0');
    my $old_rustc = fake_tool("$dir/old", 'rustc', '1.65.0');
    my $old_cargo = fake_tool("$dir/old", 'cargo', '1.65.0');
    fake_tool("$dir/home/.cargo/bin", 'cargo', '1.91.0');
    fake_tool("$dir/lone", 'cargo', '1.90.0');

    is EVEtcdPlatform::which('rustc', "$dir/nothing:$dir/old:$dir/new"), $old_rustc,
        'which: the first on the PATH';
    is EVEtcdPlatform::which('rustc', "$dir/nothing"), undef, '... undef when none is';
    is EVEtcdPlatform::find_cargo(PATH => "$dir/new", HOME => "$dir/home"), $new_cargo,
        'cargo: from the PATH';
    is EVEtcdPlatform::find_cargo(PATH => "$dir/nothing", HOME => "$dir/home"),
        "$dir/home/.cargo/bin/cargo", '... else from ~/.cargo/bin';
    is EVEtcdPlatform::find_cargo(PATH => "$dir/new", HOME => "$dir/home", CARGO => $old_cargo),
        $old_cargo, '... CARGO first';
    is EVEtcdPlatform::find_cargo(PATH => "$dir/nothing", HOME => "$dir/nohome"), undef,
        '... undef when there is none';
    is EVEtcdPlatform::find_rustc($new_cargo, PATH => "$dir/old"), $new_rustc,
        'rustc: the one beside cargo before the PATH\'s';
    is EVEtcdPlatform::find_rustc("$dir/lone/cargo", PATH => "$dir/old"), $old_rustc,
        '... else the PATH\'s';
    is EVEtcdPlatform::find_rustc($new_cargo, PATH => "$dir/new", RUSTC => $old_rustc),
        $old_rustc, '... RUSTC first';
    is EVEtcdPlatform::tool_version($old_rustc), '1.65.0', 'the version a rustc prints';

    ok EVEtcdPlatform::older('1.65.0', '1.88'), '1.65.0 is older than 1.88';
    ok EVEtcdPlatform::older('1.87.9', '1.88'), '1.87.9 is older than 1.88';
    ok !EVEtcdPlatform::older('1.88.0', '1.88'), '1.88.0 is not';
    ok !EVEtcdPlatform::older('1.100.0', '1.88'), '1.100.0 is not (numbers, not strings)';
    ok !EVEtcdPlatform::older('2.0.0', '1.88'), '2.0.0 is not';

    my $need = EVEtcdPlatform::rust_version_needed('Cargo.toml');
    like $need, qr/^1\.\d+$/, "Cargo.toml declares a rust-version ($need)";
    for my $doc (qw(README.md lib/EV/Etcd.pm)) {
        my @named = (slurp($doc) // '') =~ /\bRust (\d+\.\d+) or newer/g;
        ok @named, "$doc names the Rust it needs";
        is_deeply [ grep { $_ ne $need } @named ], [], "... which is Cargo.toml's $need";
    }
    is EVEtcdPlatform::toolchain_refusal($new_cargo, $new_rustc, '1.88'), undef,
        'a new enough toolchain is taken';
    like EVEtcdPlatform::toolchain_refusal($new_cargo, $old_rustc, '1.88'),
        qr/needs Rust 1\.88 or newer.*\Q$old_rustc\E is rustc 1\.65\.0.*rustup/s,
        'an old rustc is refused, saying which and what to install';
    like EVEtcdPlatform::toolchain_refusal($old_cargo, $new_rustc, '1.88'),
        qr/\Q$old_cargo\E is cargo 1\.65\.0/, '... and so is an old cargo';
    like EVEtcdPlatform::toolchain_refusal(undef, undef, '1.88'), qr/no cargo was\nfound.*rustup/s,
        'no cargo: refused, saying how to get one';
    like EVEtcdPlatform::toolchain_refusal($new_cargo, undef, '1.88'), qr/no rustc was found/,
        'no rustc: refused';
    like EVEtcdPlatform::toolchain_refusal(undef, undef, '1.88', "$dir/nothing/cargo"),
        qr/CARGO names '\Q$dir\E\/nothing\/cargo', which is not\nan executable file/,
        'CARGO naming no program: refused, saying so';
}

# ---- the make step, with a stand-in cargo -------------------------------------
{
    my $dir = tempdir(CLEANUP => 1);
    my $cargo = "$dir/cargo";
    open my $fh, '>', $cargo or die "$cargo: $!";
    print {$fh} <<"FAKE";
#!$^X
open my \$log, '>', "$dir/args" or die;
print {\$log} join("\\n", \@ARGV, 'RUSTC=' . (\$ENV{RUSTC} // ''),
    'DEBUG=' . (\$ENV{CARGO_PROFILE_RELEASE_DEBUG} // '')), "\\n";
print STDERR "   Compiling ev-etcd\\n";
print STDERR "note: native-static-libs: \$ENV{FAKE_LIBS}\\n" if length \$ENV{FAKE_LIBS};
exit(\$ENV{FAKE_EXIT} // 0);
FAKE
    close $fh;
    chmod 0755, $cargo or die "$cargo: $!";
    my $libs = "$dir/native-static-libs.txt";
    my $build = sub {
        my ($rustc, $hooks, $debug) = @_;
        $hooks //= 0;
        $debug //= 0;
        my $out = `$^X -Iinc -MEVEtcdPlatform -e 'EVEtcdPlatform::cargo_build(\@ARGV)' -- '$cargo' '$rustc' '$dir/target' '$libs' '$hooks' '$debug' 2>&1`;
        return ($? >> 8, $out);
    };

    local $ENV{FAKE_LIBS} = '-lfoo -lbar';
    mkpath("$dir/target/release");
    my $lib = "$dir/target/release/libev_etcd.a";
    open my $a, '>', $lib or die "$lib: $!";
    close $a;
    utime 1000, 1000, $lib or die "$lib: $!";
    my ($rc, $out) = $build->('/opt/rust/bin/rustc');
    is $rc, 0, 'make step: succeeds when cargo does';
    like $out, qr/Compiling ev-etcd/, "... and shows cargo's output";
    is slurp($libs), "-lfoo -lbar\n", '... and keeps the note\'s libraries';
    is_deeply [ split /\n/, slurp("$dir/args") ],
        [ qw(rustc --release --locked --lib --manifest-path Cargo.toml --target-dir), "$dir/target",
          qw(-- --print native-static-libs), 'RUSTC=/opt/rust/bin/rustc', 'DEBUG=' ],
        '... having run cargo rustc for the note, with the rustc Makefile.PL found';
    cmp_ok +(stat $lib)[9], '>', 1000, '... and touched the library, newer than its inputs';
    ($rc, $out) = $build->('', 1, 1);
    is_deeply [ split /\n/, slurp("$dir/args") ],
        [ qw(rustc --release --locked --lib --manifest-path Cargo.toml --target-dir), "$dir/target",
          qw(--features test-hooks -- --print native-static-libs), 'RUSTC=',
          'DEBUG=line-tables-only' ],
        'with the test hooks and debug info: the test-hooks feature, and line tables';

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
    skip 'Makefile.PL needs cargo', 36 unless $cargo;
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
        delete local $ENV{CARGO_TARGET_DIR};
        delete local $ENV{EV_ETCD_DEBUG_INFO};
        local @ENV{ keys %env } = values %env;
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
    like $mk, qr/cargo_build\(\@ARGV\)' -- '\Q$cargo\E' '\/[^']*rustc' '.*' '0' '0'$/m,
        '... the cargo found, as an absolute path, and its rustc; no test hooks, no debug info';
    like $out, qr/^EV::Etcd: Etcd\.so without debug info/m, '... saying so';
    my ($rule) = $mk =~ m{^(target/release/libev_etcd\.a:(?:[^\n]*\\\n)*[^\n]*)$}m;
    ok $rule, '... a rule for the Rust library' or diag $mk;
    my %inputs = map { $_ => 1 } grep { $_ ne '\\' } split ' ', ($rule // '') =~ s/^[^:]*://r;
    ok $inputs{$_}, "... whose inputs include $_"
        for qw(Cargo.toml Cargo.lock build.rs src/lib.rs src/ffi.rs proto/etcdserverpb/rpc.proto
               xs-glue/build-options.stamp);
    ok !$inputs{FORCE}, '... and not FORCE: make install runs no cargo';
    like $mk, qr/^\s*\$\(DISTVNAME\) target\s*$/m, '... realclean removes its own target/';
    unlike $mk, qr/^DEFINE = .*EVETCD_TEST_HOOKS/m, '... nor the XS';
    like $mk, qr/^OTHERLDFLAGS = -Wl,-exported_symbols_list,xs-glue\/exports\.list -Wl,-dead_strip -Wl,-S -Wl,-x\s*$/m,
        '... links with the exported-symbols list';
    unlike $mk, qr/version-script|gc-sections/, '... and no GNU ld flags';
    is slurp("$dir/xs-glue/exports.list"), (EVEtcdPlatform::exports_file('darwin'))[1],
        '... which it wrote';
    like $mk, qr/^LDLOADLIBS = `cat 'target\/release\/native-static-libs\.txt'`\s*$/m,
        "... with the native libraries of cargo's note";
    like $mk, qr/\$\(OTHERLDFLAGS\) -o \$\@ \$\(MYEXTLIB\)[^\n]*\\?\n[^\n]*\$\(LDLOADLIBS\)/,
        '... after the Rust library on the link line';

    my $shared = tempdir(CLEANUP => 1);
    ($rc, $out, $dir) = $configure->('freebsd', EV_ETCD_TEST_HOOKS => 1, EV_ETCD_DEBUG_INFO => 1,
        CARGO_TARGET_DIR => $shared);
    is $rc, 0, 'Makefile.PL as freebsd, with the test hooks and debug info' or diag $out;
    $mk = slurp("$dir/Makefile") // '';
    like $mk, qr/^OTHERLDFLAGS = -Wl,--version-script=xs-glue\/exports\.map -Wl,--gc-sections\s*$/m,
        '... links with the version script, keeping debug info';
    like $mk, qr/cargo_build\(\@ARGV\)' -- .* '\Q$shared\E' .* '1' '1'$/m,
        '... and hands the target dir, the test hooks and debug info to the cargo step';
    like $out, qr/^EV::Etcd: keeping debug info/m, '... saying it keeps debug info';
    unlike $mk, qr/^\s*\$\(DISTVNAME\) .*\Q$shared\E/m,
        "... and realclean leaves CARGO_TARGET_DIR's directory alone";
    like $out, qr/^EV::Etcd: building WITH test hooks/m, '... saying it builds the hooks';
    like $mk, qr/^DEFINE = -DEVETCD_TEST_HOOKS\s*$/m, '... which the XS gets too';
    is slurp("$dir/xs-glue/build-options.stamp"), "EV_ETCD_TEST_HOOKS=1\nEV_ETCD_DEBUG_INFO=1\n",
        '... noted in the stamp';
    like $mk, qr{^xs-glue/Etcd\$\(OBJ_EXT\) : xs-glue/build-options\.stamp\s*$}m,
        '... that the XS object depends on';
    like $mk, qr{^\$\(INST_DYNAMIC\): .*xs-glue/build-options\.stamp\s*$}m, '... and Etcd.so too';

    # Debian 12's own Rust (1.65), alone on the PATH.
    my $old = tempdir(CLEANUP => 1);
    fake_tool($old, $_, '1.65.0') for qw(cargo rustc);
    ($rc, $out, $dir) = $configure->('linux', CARGO => '', PATH => "$old:/usr/bin:/bin",
        HOME => "$old/nohome");
    is $rc, 0, 'with cargo and rustc 1.65 on the PATH: Makefile.PL exits 0';
    like $out, qr/needs Rust 1\.\d+ or newer .*\n.*rustc 1\.65\.0/, '... saying what is needed';
    ok !-e "$dir/Makefile", '... and writes no Makefile (NA)';
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
