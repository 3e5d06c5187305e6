package EVEtcdPlatform;

# What the build does differently per system ($^O), kept out of
# Makefile.PL so that t/02-platforms.t can ask for any system's choices on
# this one. Build-time only: not installed.

use strict;
use warnings;

# What Etcd.so exports: the boot function that DynaLoader looks up, and the
# C ABI under its one prefix; every other symbol of the Rust library stays
# local, so it cannot clash with another module's. Both export files below
# are written from this list.
our @EXPORTS = qw(boot_EV__Etcd evetcd_*);

# Why this system gets no build, or undef. The Rust core and the XS glue
# are written for Unix (file descriptors watched by EV, Unix sockets).
sub refusal {
    my ($os) = @_;
    return undef unless $os =~ /^(?:MSWin32|cygwin|msys)$/;
    return "EV::Etcd does not support Windows ($os): its Rust core and XS glue\n"
         . "are written for Unix systems (Linux, macOS, the BSDs).\n";
}

# The linker's kind: 'gnu' (GNU ld, gold or lld, which take a version
# script), 'apple' (ld64), or 'other' (exports left as the linker has them).
sub linker {
    my ($os) = @_;
    return 'apple' if $os eq 'darwin';
    return 'gnu'
        if $os =~ /^(?:linux|android|gnu|gnukfreebsd|freebsd|midnightbsd|openbsd|netbsd|dragonfly)$/;
    return 'other';
}

# The export file for this system's linker: (path, contents), or () when
# it takes none.
sub exports_file {
    my ($os) = @_;
    my $kind = linker($os);
    if ($kind eq 'gnu') {
        return ('xs-glue/exports.map',
            "/* Written by Makefile.PL from inc/EVEtcdPlatform.pm. */\n{\n  global:\n"
            . join('', map { "    $_;\n" } @EXPORTS) . "  local:\n    *;\n};\n");
    }
    if ($kind eq 'apple') {
        # Mach-O names carry a leading underscore; ld64 takes wildcards.
        return ('xs-glue/exports.list',
            "# Written by Makefile.PL from inc/EVEtcdPlatform.pm.\n"
            . join('', map { "_$_\n" } @EXPORTS));
    }
    return ();
}

# Linker flags for Etcd.so: the export file, dropping the code that no
# export reaches (most of the Rust library's dependencies), and, unless
# $keep_debug, dropping debug info and local symbols: Rust's standard
# library brings its debug info along, which was half the file. (GNU ld
# and lld: -s, strip all but the dynamic symbols; ld64: -S, no debug info,
# and -x, no local symbols.)
sub link_flags {
    my ($os, $keep_debug) = @_;
    my ($file) = exports_file($os);
    my $kind = linker($os);
    if ($kind eq 'gnu') {
        return "-Wl,--version-script=$file -Wl,--gc-sections" . ($keep_debug ? '' : ' -Wl,-s');
    }
    if ($kind eq 'apple') {
        return "-Wl,-exported_symbols_list,$file -Wl,-dead_strip" . ($keep_debug ? '' : ' -Wl,-S -Wl,-x');
    }
    return '';
}

# ---- the Rust toolchain ------------------------------------------------------
# Makefile.PL finds cargo and rustc once, as absolute paths, and the make
# step runs exactly those: make may run under another PATH (sudo make
# install has root's), and then must neither fail nor pick another cargo.

# The absolute path of an executable $name on $path (a PATH string), or
# undef. A $name with a slash in it is taken as it is.
sub which {
    my ($name, $path) = @_;
    return undef unless defined $name && length $name;
    require File::Spec;
    if ($name =~ m{/}) {
        return -f $name && -x _ ? File::Spec->rel2abs($name) : undef;
    }
    for my $dir (split /:/, $path // '') {
        next unless length $dir;
        my $candidate = File::Spec->catfile($dir, $name);
        return File::Spec->rel2abs($candidate) if -f $candidate && -x _;
    }
    return undef;
}

# cargo: the CARGO environment variable, else the PATH, else rustup's
# ~/.cargo/bin (a non-login shell may not have it on the PATH).
sub find_cargo {
    my (%env) = @_;
    return which($env{CARGO}, $env{PATH}) if defined $env{CARGO} && length $env{CARGO};
    return which('cargo', $env{PATH})
        // which('cargo', join('/', $env{HOME} // '', '.cargo', 'bin'));
}

# rustc: the RUSTC environment variable, else the rustc beside that cargo
# (a toolchain installs both together), else the PATH's.
sub find_rustc {
    my ($cargo, %env) = @_;
    return which($env{RUSTC}, $env{PATH}) if defined $env{RUSTC} && length $env{RUSTC};
    if (defined $cargo) {
        (my $dir = $cargo) =~ s{/[^/]*\z}{};
        my $beside = which('rustc', $dir);
        return $beside if $beside;
    }
    return which('rustc', $env{PATH});
}

# "1.88.0" from what `cargo --version` or `rustc --version` prints, or undef.
sub tool_version {
    my ($program) = @_;
    return undef unless defined $program;
    my $out = `'$program' --version 2>/dev/null`;
    return undef if $?;
    return $out =~ /^(?:cargo|rustc) (\d+\.\d+\.\d+)/ ? $1 : undef;
}

# The rust-version that Cargo.toml declares ("1.88").
sub rust_version_needed {
    my ($cargo_toml) = @_;
    open my $fh, '<', $cargo_toml or die "$cargo_toml: $!\n";
    local $/;
    my ($need) = <$fh> =~ /^rust-version\s*=\s*"([\d.]+)"/m
        or die "$cargo_toml declares no rust-version\n";
    return $need;
}

# Whether version $have is older than $need (dotted numbers).
sub older {
    my ($have, $need) = @_;
    my @h = split /\./, $have;
    my @n = split /\./, $need;
    for my $i (0 .. ($#h > $#n ? $#h : $#n)) {
        my ($x, $y) = ($h[$i] // 0, $n[$i] // 0);
        return $x < $y if $x != $y;
    }
    return 0;
}

# Why this toolchain cannot build EV::Etcd, or undef when it can. Given
# the cargo and rustc found (undef for none), the version needed, and the
# CARGO the environment named, if any.
sub toolchain_refusal {
    my ($cargo, $rustc, $need, $named) = @_;
    my $get = "Install Rust $need or newer (https://rustup.rs, or 'rustup update') and run\n"
            . "Makefile.PL again; CARGO=/path/to/cargo and RUSTC=/path/to/rustc name\n"
            . "a particular toolchain.\n";
    return "EV::Etcd is built with cargo, and CARGO names '$named', which is not\n"
         . "an executable file.\n$get"
        if !defined $cargo && defined $named && length $named;
    return "EV::Etcd is built with cargo, from a Rust toolchain, and no cargo was\n"
         . "found (not on the PATH, nor in ~/.cargo/bin).\n$get"
        unless defined $cargo;
    return "EV::Etcd is built with Rust, and no rustc was found beside $cargo\n"
         . "or on the PATH.\n$get"
        unless defined $rustc;
    for my $tool ([ rustc => $rustc ], [ cargo => $cargo ]) {
        my ($name, $path) = @$tool;
        my $have = tool_version($path);
        return "EV::Etcd could not tell the version of $path ('$name --version'\n"
             . "failed or printed no version).\n$get"
            unless defined $have;
        return "EV::Etcd needs Rust $need or newer (the rust-version of its Cargo.toml),\n"
             . "and $path is $name $have.\n$get"
            if older($have, $need);
    }
    return undef;
}

# The native libraries that rustc's "native-static-libs" note in cargo's
# output says a link of the static library needs, or undef without one.
sub native_libs {
    my ($output) = @_;
    my @notes = $output =~ /^note: native-static-libs: *(.*?)\s*$/mg;
    return @notes ? $notes[-1] : undef;
}

# make's step: cargo builds the static library (with the test-hooks
# feature when $test_hooks is true, with line tables when $debug_info is),
# and the note's libraries go to $libs_file for the link. cargo repeats the
# note when nothing needed building. make reaches this step only when an
# input of the library changed; the library is touched afterwards so that
# make sees it as newer than them even when cargo found nothing to redo.
# Exits with cargo's status.
sub cargo_build {
    my ($cargo, $rustc, $target_dir, $libs_file, $test_hooks, $debug_info) = @_;
    $ENV{RUSTC} = $rustc if defined $rustc && length $rustc;
    $ENV{CARGO_PROFILE_RELEASE_DEBUG} = 'line-tables-only' if $debug_info;
    my @cmd = ($cargo, qw(rustc --release --locked --lib --manifest-path Cargo.toml),
        '--target-dir', $target_dir, ($test_hooks ? qw(--features test-hooks) : ()),
        qw(-- --print native-static-libs));
    my $pid = open(my $from, '-|');
    defined $pid or die "cannot run $cargo: $!\n";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT or die "stderr: $!\n";
        exec @cmd or die "cannot run $cargo: $!\n";
    }
    my $output = '';
    while (my $line = <$from>) {
        print STDERR $line;
        $output .= $line if $line =~ /^note: native-static-libs:/;
    }
    close $from;
    exit($? >> 8 || 1) if $?;
    my $lib = "$target_dir/release/libev_etcd.a";
    utime undef, undef, $lib if -e $lib;
    my $libs = native_libs($output);
    if (!defined $libs) {
        return if -s $libs_file;
        die "cargo printed no native-static-libs note and $libs_file is missing:\n"
          . "touch src/lib.rs and run make again\n";
    }
    open my $to, '>', $libs_file or die "$libs_file: $!\n";
    print {$to} "$libs\n";
    close $to or die "$libs_file: $!\n";
    return;
}

# The files the Rust library is built from, for make's rule: cargo runs
# only when one of them is newer than the library.
sub rust_inputs {
    my @files = grep { -e } qw(Cargo.toml Cargo.lock build.rs);
    require File::Find;
    File::Find::find({ no_chdir => 1, wanted => sub { push @files, $_ if /\.(?:rs|proto)\z/ && -f } },
        grep { -d } qw(src proto));
    return sort @files;
}

1;
