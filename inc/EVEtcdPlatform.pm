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

# Linker flags for Etcd.so: the export file, and dropping the code that no
# export reaches (most of the Rust library's dependencies).
sub link_flags {
    my ($os) = @_;
    my ($file) = exports_file($os);
    my $kind = linker($os);
    return "-Wl,--version-script=$file -Wl,--gc-sections" if $kind eq 'gnu';
    return "-Wl,-exported_symbols_list,$file -Wl,-dead_strip" if $kind eq 'apple';
    return '';
}

# Whether protoc-bin-vendored (build.rs) ships a protoc for this machine
# ($Config{archname} starts with the CPU on Linux); elsewhere build.rs
# needs PROTOC.
sub vendored_protoc {
    my ($os, $archname) = @_;
    return 1 if $os eq 'darwin';
    return 1
        if $os eq 'linux' && $archname =~ /^(?:x86_64|i[3-6]86|aarch64|powerpc64(?:le)?|s390x)-/;
    return 0;
}

# The native libraries that rustc's "native-static-libs" note in cargo's
# output says a link of the static library needs, or undef without one.
sub native_libs {
    my ($output) = @_;
    my @notes = $output =~ /^note: native-static-libs: *(.*?)\s*$/mg;
    return @notes ? $notes[-1] : undef;
}

# make's step: cargo builds the static library (with the test-hooks
# feature when $test_hooks is true), and the note's libraries go to
# $libs_file for the link. cargo repeats the note when nothing needed
# building. Exits with cargo's status.
sub cargo_build {
    my ($cargo, $target_dir, $libs_file, $protoc, $test_hooks) = @_;
    $ENV{PROTOC} = $protoc if defined $protoc && length $protoc;
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

1;
