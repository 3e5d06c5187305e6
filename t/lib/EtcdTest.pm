package EtcdTest;

# Test harness for EV::Etcd: starts throwaway etcd servers (single node or a
# loopback cluster) on free ports with temporary data directories, and gives
# tests a bounded way to run the EV loop.  See the POD at the end.

use strict;
use warnings;

use Carp qw(croak);
use Config ();
use Exporter qw(import);
use File::Path ();
use File::Spec ();
use File::Temp ();
use IO::Select ();
use IO::Socket::INET ();
use POSIX qw(WNOHANG);
use Scalar::Util qw(refaddr weaken);
use Time::HiRes qw(time sleep);

our @EXPORT = qw(
    etcd_bin need_etcd start_etcd start_cluster start_member
    free_port run_until
);
our @EXPORT_OK = qw(
    etcd_version etcd_version_ge ci_mode http_request http_get
    wait_all_healthy wait_for call ok_call cancel_sync
    test_hooks_missing need_test_hooks default_etcd_bin
);
our %EXPORT_TAGS = (all => [@EXPORT, @EXPORT_OK]);

our $HEALTH_TIMEOUT = 20;    # seconds to wait for /health to say true
our $STOP_GRACE     = 10;    # seconds between SIGTERM and SIGKILL

my %LIVE;          # refaddr => weak ref to every server this process started
my %PORT_GIVEN;    # ports already handed out by free_port in this process
my $TOKEN_SEQ = 0;
my %VERSION_CACHE;

# ---------------------------------------------------------------------------
# Locating the binary, CI policy
# ---------------------------------------------------------------------------

sub _find_in_path {
    my ($cmd) = @_;
    for my $dir (File::Spec->path) {
        next unless length $dir;
        my $p = File::Spec->catfile($dir, $cmd);
        return $p if -f $p && -x _;
    }
    return undef;
}

# For the benchmarks: unless ETCD_BIN is set, sets it to the etcd of
# version $version that scripts/etcd-bin.sh finds (or installs); dies
# without one.
sub default_etcd_bin {
    my ($version) = @_;
    return $ENV{ETCD_BIN} if $ENV{ETCD_BIN};
    require File::Basename;
    my $script = File::Basename::dirname(__FILE__) . '/../../scripts/etcd-bin.sh';
    chomp(my $bin = `bash $script $version`);
    die "no etcd $version (set ETCD_BIN)\n" unless $bin && -x $bin;
    return $ENV{ETCD_BIN} = $bin;
}

sub etcd_bin {
    my $env = $ENV{ETCD_BIN};
    if (defined $env && length $env) {
        return $env =~ m{/} ? ((-f $env && -x _) ? $env : undef)
                            : _find_in_path($env);
    }
    return _find_in_path('etcd');
}

# Strict mode: what a test needs (etcd, a module, openssl) must be there,
# and a missing piece fails instead of skipping. This project's own runs
# ask for it (scripts/test.sh sets EV_ETCD_STRICT_TESTS), and so does
# RELEASE_TESTING; the generic CI variable does not, so that installing the
# module inside somebody else's pipeline without etcd skips, saying why.
sub ci_mode {
    for my $v (@ENV{qw(EV_ETCD_STRICT_TESTS RELEASE_TESTING)}) {
        return 1 if defined $v && length $v && $v !~ /^(?:0|false|no|off)$/i;
    }
    return 0;
}

# What ci_mode's messages name as the reason.
sub _strict_why { 'EV_ETCD_STRICT_TESTS or RELEASE_TESTING is set' }

sub need_etcd {
    my $bin = etcd_bin();
    return $bin if defined $bin;

    my $why = (defined $ENV{ETCD_BIN} && length $ENV{ETCD_BIN})
        ? "ETCD_BIN='$ENV{ETCD_BIN}' is not an executable etcd"
        : 'no etcd: install etcd or set ETCD_BIN';
    require Test::More;
    if (ci_mode()) {
        # Under CI a missing server is an error: a run that skipped every
        # etcd test would look green while proving nothing.
        Test::More::diag("FATAL: $why; " . _strict_why() . ', so this is a failure, not a skip');
        die "EtcdTest: $why (" . _strict_why() . ": refusing to skip)\n";
    }
    _skip_rest($why);
}

# Skips the rest of the file: all of it (skip_all) when no test has run
# yet, else one skip saying why after the checks that needed no server,
# which keeps their results (skip_all after them would be a bad plan).
sub _skip_rest {
    my ($why) = @_;
    require Test::More;
    my $tb = Test::More->builder;
    if ($tb->current_test == 0) {
        Test::More::plan(skip_all => $why);
    }
    $tb->skip($why);
    Test::More::done_testing();
    exit 0;
}

# The test hooks are in Etcd.so only when it was configured with
# EV_ETCD_TEST_HOOKS=1. Returns why they are missing, or undef when they are
# there. With EV_ETCD_TEST_HOOKS set (scripts/test.sh sets it), missing
# hooks are a failure: the suite must not skip their tests unseen.
sub test_hooks_missing {
    my @missing = grep { !defined &{"EV::Etcd::$_"} }
        qw(_echo_requests_for_testing _crash_streams_for_testing _panic_for_testing);
    return undef unless @missing;
    my $why = 'built without test hooks: run EV_ETCD_TEST_HOOKS=1 perl Makefile.PL';
    if ($ENV{EV_ETCD_TEST_HOOKS}) {
        require Test::More;
        Test::More::diag("FATAL: $why (missing: @missing); EV_ETCD_TEST_HOOKS is set, "
            . 'so this is a failure, not a skip');
        die "EtcdTest: $why (EV_ETCD_TEST_HOOKS is set: refusing to skip)\n";
    }
    return $why;
}

# need_test_hooks(): skips the whole file when the hooks are missing (see
# test_hooks_missing).
sub need_test_hooks {
    my $why = test_hooks_missing() // return 1;
    require Test::More;
    Test::More::plan(skip_all => $why);
    return undef;    # not reached: skip_all exits
}

sub etcd_version {
    my ($bin) = @_;
    $bin //= etcd_bin();
    return undef unless defined $bin;
    return $VERSION_CACHE{$bin} if exists $VERSION_CACHE{$bin};
    local ($?, $!);
    my $out = '';
    if (open my $fh, '-|', $bin, '--version') {
        local $/;
        $out = <$fh> // '';
        close $fh;
    }
    my ($v) = $out =~ /etcd Version:\s*v?(\d+(?:\.\d+)*)/i;
    return $VERSION_CACHE{$bin} = $v;
}

# etcd_version_ge('3.5') -- true when the etcd in use is at least that version.
sub etcd_version_ge {
    my ($want, $bin) = @_;
    my $have = etcd_version($bin) // return 0;
    my @h = split /\./, $have;
    my @w = split /\./, $want;
    while (@w) {
        my $x = shift(@h) // 0;
        my $y = shift(@w);
        return 1 if $x > $y;
        return 0 if $x < $y;
    }
    return 1;
}

# ---------------------------------------------------------------------------
# Ports and tiny HTTP client
# ---------------------------------------------------------------------------

# Ports come from below the kernel's ephemeral range when it is known: a
# port from that range, free when picked, can be taken by any outgoing
# connection meanwhile, and then a server restarted on it cannot listen
# again (seen: a metrics port lost during the seconds a killed etcd was
# down). Below the range, only another listener can take it.
sub _ephemeral_low {
    open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range' or return undef;
    my ($low) = split ' ', scalar(<$fh> // '');
    return defined $low && $low =~ /^\d+$/ ? $low : undef;
}

sub _bindable {
    my ($port) = @_;
    my $sock = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => $port,
        Proto     => 'tcp',
        Listen    => 1,
    ) or return undef;
    my $got = $sock->sockport;
    close $sock;
    return $got;
}

sub free_port {
    my $low = _ephemeral_low();
    if (defined $low && $low > 12_000) {
        for (1 .. 200) {
            my $port = 10_000 + int rand($low - 10_000);
            next if $PORT_GIVEN{$port};
            next unless _bindable($port);
            $PORT_GIVEN{$port} = 1;
            return $port;
        }
    }
    for (1 .. 100) {
        my $port = _bindable(0)
            or croak "free_port: cannot bind 127.0.0.1:0: $!";
        next if $PORT_GIVEN{$port}++;
        return $port;
    }
    croak 'free_port: no unused port found';
}

# http_request($method, $port, $path, $body, $timeout) against 127.0.0.1.
# In list context: (status, body, raw_headers); in scalar context: body.
# Returns empty list / undef when nothing could be read in time.
sub http_request {
    my ($method, $port, $path, $body, $timeout) = @_;
    $timeout //= 5;
    my $deadline = time + $timeout;
    local $SIG{PIPE} = 'IGNORE';

    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => $timeout,
    ) or return;
    binmode $sock;

    my $req = "$method $path HTTP/1.0\r\nHost: 127.0.0.1:$port\r\n"
            . "Connection: close\r\n";
    if (defined $body) {
        $req .= "Content-Type: application/json\r\n"
              . 'Content-Length: ' . length($body) . "\r\n";
    }
    $req .= "\r\n" . ($body // '');

    my $sel = IO::Select->new($sock);
    while (length $req) {
        my $left = $deadline - time;
        return if $left <= 0 || !$sel->can_write($left);
        my $n = syswrite($sock, $req);
        return unless defined $n;
        substr($req, 0, $n, '');
    }

    my $buf = '';
    while (1) {
        my $left = $deadline - time;
        return if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        return unless defined $n;
        last if $n == 0;
    }
    close $sock;

    my ($head, $content) = split /\r\n\r\n/, $buf, 2;
    return unless defined $head;
    my ($status) = $head =~ m{^HTTP/\d(?:\.\d)?\s+(\d{3})};
    return unless defined $status;
    $content //= '';
    $content = _dechunk($content) if $head =~ /^Transfer-Encoding:\s*chunked/mi;
    return wantarray ? ($status, $content, $head) : $content;
}

sub http_get { my ($port, $path, $timeout) = @_; http_request('GET', $port, $path, undef, $timeout) }

sub _dechunk {
    my ($in) = @_;
    my $out = '';
    while ($in =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $len = hex $1;
        last if $len == 0;
        $out .= substr($in, 0, $len, '');
        $in =~ s/^\r\n//;
    }
    return $out;
}

# ---------------------------------------------------------------------------
# Starting servers
# ---------------------------------------------------------------------------

sub _token { sprintf 'ev-etcd-test-%d-%d-%d', $$, time, ++$TOKEN_SEQ }

sub _port_conflict { ($_[0] // '') =~ /address already in use/i }

sub start_etcd {
    my (%opt) = @_;
    my $auto = !grep { defined $opt{$_} } qw(client_port peer_port metrics_port);
    my $tries = $auto ? 3 : 1;
    for my $try (1 .. $tries) {
        my $srv = EtcdTest::Server->_new(%opt);
        $srv->_spawn;
        my $ok = eval { $srv->wait_healthy($opt{timeout}); 1 };
        return $srv if $ok;
        my $err = $@;
        $srv->stop(2);
        die $err unless $try < $tries && _port_conflict($err);
    }
    die "start_etcd: unreachable\n";
}

sub wait_all_healthy {
    my ($timeout, @servers) = @_;
    $timeout //= $HEALTH_TIMEOUT;
    my $deadline = time + $timeout;
    my %done;
    while (1) {
        for my $i (0 .. $#servers) {
            next if $done{$i};
            my $s = $servers[$i];
            $s->_die_if_exited;
            $done{$i} = 1 if $s->is_healthy(3);
        }
        return 1 if keys %done == @servers;
        if (time > $deadline) {
            my @bad = map { $servers[$_] } grep { !$done{$_} } 0 .. $#servers;
            die "etcd members not healthy after ${timeout}s: "
              . join(', ', map { $_->name } @bad) . "\n"
              . join('', map { $_->_log_report } @bad);
        }
        sleep 0.1;
    }
}

sub start_cluster {
    my ($n, %opt) = @_;
    $n //= 3;
    croak 'start_cluster: member count must be a positive integer'
        unless $n =~ /^\d+$/ && $n > 0;
    my $prefix = delete $opt{name_prefix} // 'node';

    for my $try (1 .. 3) {
        my @spec = map {
            { name        => "$prefix$_",
              client_port => free_port(),
              peer_port   => free_port(),
              metrics_port => free_port() }
        } 1 .. $n;
        my $ic = join ',', map { "$_->{name}=http://127.0.0.1:$_->{peer_port}" } @spec;
        my $token = $opt{token} // _token();

        my @servers = map {
            EtcdTest::Server->_new(
                %opt, %$_,
                initial_cluster       => $ic,
                initial_cluster_state => 'new',
                token                 => $token,
            )
        } @spec;
        $_->_spawn for @servers;
        my $ok = eval { wait_all_healthy($opt{timeout}, @servers); 1 };
        return wantarray ? @servers : \@servers if $ok;
        my $err = $@;
        $_->stop(2) for @servers;
        die $err unless $try < 3 && _port_conflict($err);
    }
    die "start_cluster: unreachable\n";
}

sub start_member {
    my (%opt) = @_;
    my $name = $opt{name} // croak 'start_member: name is required';
    if (my $peers = delete $opt{cluster}) {
        $opt{initial_cluster} //= join ',', map { $_->initial_cluster_entry } @$peers;
        $opt{token}           //= $peers->[0]->cluster_token if @$peers;
    }
    my $ic   = $opt{initial_cluster}
        // croak 'start_member: initial_cluster (or cluster) is required';
    $opt{peer_port}    //= free_port();
    $opt{client_port}  //= free_port();
    $opt{metrics_port} //= free_port();
    my $self_entry = "$name=http://127.0.0.1:$opt{peer_port}";
    $ic .= ",$self_entry" unless grep { $_ eq $self_entry } split /,/, $ic;

    my $wait = exists $opt{wait} ? $opt{wait} : 'health';
    my $srv = EtcdTest::Server->_new(
        %opt,
        initial_cluster       => $ic,
        initial_cluster_state => $opt{initial_cluster_state} // 'existing',
    );
    $srv->_spawn;
    $srv->_wait_mode($wait, $opt{timeout});
    return $srv;
}

# ---------------------------------------------------------------------------
# Bounded EV loop
# ---------------------------------------------------------------------------

sub run_until {
    my ($cond, $timeout) = @_;
    $timeout //= 10;
    my $check;
    if (ref $cond eq 'CODE') {
        $check = $cond;
    } elsif (ref $cond eq 'SCALAR' || ref $cond eq 'REF') {
        $check = sub { ${$cond} };
    } else {
        croak 'run_until: first argument must be a scalar ref or a code ref';
    }
    require EV;
    return 1 if $check->();

    my $expired = 0;
    EV::now_update();    # the loop clock may be stale after blocking work
    my $guard = EV::timer($timeout, 0, sub { $expired = 1 });
    until ($expired || $check->()) {
        EV::run(EV::RUN_ONCE());
    }
    undef $guard;
    return $check->() ? 1 : 0;
}

# wait_for($what, sub { my $cb = shift; $client->get(..., $cb) }, $limit)
# starts one call, runs the loop until its callback fires, and returns the
# callback's arguments; a missing callback is a test failure.
sub wait_for {
    my ($what, $start, $limit) = @_;
    my ($done, @got);
    $start->(sub { @got = @_; $done = 1 });
    unless (run_until(\$done, $limit // 20)) {
        require Test::More;
        Test::More::fail("$what: no callback in time");
    }
    return @got;
}

# call($client, $method, @args): runs one call to completion and returns
# ($resp, $err); dies if no callback comes within 20 s.
sub call {
    my ($client, $method, @args) = @_;
    my ($resp, $err, $done);
    $client->$method(@args, sub { ($resp, $err) = @_; $done = 1 });
    run_until(\$done, 20) or die "$method did not complete in 20s\n";
    return ($resp, $err);
}

# ok_call: like call, for calls that must succeed; returns the response.
sub ok_call {
    my ($client, $method, @args) = @_;
    my ($resp, $err) = call($client, $method, @args);
    die "$method failed: $err->{status}: $err->{message}\n" if $err;
    return $resp;
}

# cancel_sync($rec): cancels $rec->{handle} (a watch, keepalive or observe
# handle) and returns the list of cancel callback argument lists seen
# within 10 s.
sub cancel_sync {
    my ($rec) = @_;
    my @got;
    $rec->{handle}->cancel(sub { push @got, [@_] });
    run_until(sub { @got }, 10);
    return @got;
}

# ---------------------------------------------------------------------------
# Cleanup of everything this process started
# ---------------------------------------------------------------------------

sub _register {
    my $s = $_[0];
    _once_per_process();
    $LIVE{refaddr $s} = $s;
    weaken $LIVE{refaddr $s};
}
sub _unregister { delete $LIVE{refaddr $_[0]} }

sub _stop_all {
    for my $s (grep { defined } values %LIVE) {
        eval { $s->stop(5) };
    }
}

END {
    local ($?, $!, $@);
    _stop_all();
}

# A test killed by INT/TERM/HUP skips END blocks and destructors: stop the
# servers and remove their directories here, then die of the same signal.
sub _on_signal {
    my ($sig) = @_;
    for my $s (grep { defined } values %LIVE) {
        eval { $s->stop(2) };
        eval { File::Path::remove_tree($s->dir) unless $s->{keep} };
    }
    # perl blocks the signal while its handler runs: unblock, then re-raise
    $SIG{$sig} = 'DEFAULT';
    my $num = eval { POSIX->can("SIG$sig")->() };
    POSIX::sigprocmask(POSIX::SIG_UNBLOCK(), POSIX::SigSet->new($num)) if $num;
    kill $sig, $$;
    POSIX::_exit(128 + ($num // 0));
}

# Data dirs (~120 MB each, WAL files are preallocated) of test processes that
# died by SIGKILL are never removed by their owner.  Their names carry the
# owner's pid; remove those whose owner is gone and which no running process
# still names on its command line.
sub _sweep_stale_dirs {
    return unless $^O eq 'linux' && -d '/proc';
    my $tmp = File::Spec->tmpdir;
    opendir my $dh, $tmp or return;
    my @cand = grep { /^ev-etcd-test-(\d+)-/ && $1 != $$ && !kill(0, $1) && !$!{EPERM} }
               readdir $dh;
    closedir $dh;
    return unless @cand;
    my $in_use = '';
    for my $cmdline (glob '/proc/[0-9]*/cmdline') {
        open my $fh, '<', $cmdline or next;
        local $/;
        my $c = <$fh> // '';
        $in_use .= "$c\n" if index($c, 'ev-etcd-test-') >= 0;
    }
    for my $d (@cand) {
        next if index($in_use, "$tmp/$d/") >= 0;
        my $path = "$tmp/$d";
        next unless -d $path && -M $path > 30 / 86400;    # older than 30 s
        File::Path::remove_tree($path);
    }
}

my $ONCE_PID = 0;
sub _once_per_process {
    return if $ONCE_PID == $$;
    $ONCE_PID = $$;
    eval { _sweep_stale_dirs() };
    for my $sig (qw(INT TERM HUP)) {
        my $cur = $SIG{$sig};
        $SIG{$sig} = \&_on_signal if !defined $cur || $cur eq '' || $cur eq 'DEFAULT';
    }
}

# ===========================================================================

package EtcdTest::Server;

use strict;
use warnings;

use Carp qw(croak);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

sub _new {
    my ($class, %o) = @_;
    my $bin = $o{bin} // EtcdTest::etcd_bin()
        // die "EtcdTest: no etcd binary (set ETCD_BIN)\n";
    my $name  = $o{name} // 'etcd0';
    my $keep  = $o{keep} // $ENV{EV_ETCD_TEST_KEEP};
    # the owner's pid in the name lets a later run sweep up after a test
    # that was SIGKILLed; kept dirs get another name so they are never swept
    my $dir   = File::Temp->newdir(($keep ? 'ev-etcd-keep-' : 'ev-etcd-test-') . "$$-XXXXXX",
                                   TMPDIR => 1, CLEANUP => !$keep);
    my $self = bless {
        bin          => $bin,
        name         => $name,
        dir          => $dir,
        data_dir     => $o{data_dir} // "$dir/data",
        log_file     => "$dir/etcd.log",
        log_offset   => 0,
        client_port  => $o{client_port}  // EtcdTest::free_port(),
        peer_port    => $o{peer_port}    // EtcdTest::free_port(),
        metrics_port => $o{metrics_port} // EtcdTest::free_port(),
        state        => $o{initial_cluster_state} // 'new',
        token        => $o{token} // EtcdTest::_token(),
        log_level    => $o{log_level} // $ENV{EV_ETCD_TEST_LOG_LEVEL} // 'warn',
        keep         => $keep,
        extra        => [ @{ $o{extra} // [] } ],
        env          => { %{ $o{env} // {} } },
        timeout      => $o{timeout},
        tls          => $o{tls} ? 1 : 0,
        owner        => $$,
        pid          => undef,
        exit_status  => undef,
    }, $class;
    $self->{initial_cluster} = $o{initial_cluster}
        // "$name=" . $self->peer_url;
    print STDERR "# EtcdTest: keeping $dir\n" if $keep;
    EtcdTest::_register($self);
    return $self;
}

# --- accessors ---
sub name            { $_[0]{name} }
sub pid             { $_[0]{pid} }
sub bin             { $_[0]{bin} }
sub dir             { "$_[0]{dir}" }
sub data_dir        { $_[0]{data_dir} }
sub log_file        { $_[0]{log_file} }
sub client_port     { $_[0]{client_port} }
sub peer_port       { $_[0]{peer_port} }
sub metrics_port    { $_[0]{metrics_port} }
sub endpoint        { "127.0.0.1:$_[0]{client_port}" }
sub client_url      { ($_[0]{tls} ? 'https' : 'http') . "://127.0.0.1:$_[0]{client_port}" }
sub tls             { $_[0]{tls} }
sub peer_url        { "http://127.0.0.1:$_[0]{peer_port}" }
sub metrics_url     { "http://127.0.0.1:$_[0]{metrics_port}" }
sub initial_cluster { $_[0]{initial_cluster} }
sub initial_cluster_entry { "$_[0]{name}=" . $_[0]->peer_url }
sub cluster_token   { $_[0]{token} }
sub version         { EtcdTest::etcd_version($_[0]{bin}) }
sub exit_status     { $_[0]{exit_status} }

sub args {
    my ($self) = @_;
    return (
        '--name'                        => $self->{name},
        '--data-dir'                    => $self->{data_dir},
        '--listen-client-urls'          => $self->client_url,
        '--advertise-client-urls'       => $self->client_url,
        '--listen-peer-urls'            => $self->peer_url,
        '--initial-advertise-peer-urls' => $self->peer_url,
        '--listen-metrics-urls'         => $self->metrics_url,
        '--initial-cluster'             => $self->{initial_cluster},
        '--initial-cluster-state'       => $self->{state},
        '--initial-cluster-token'       => $self->{token},
        '--logger'                      => 'zap',
        '--log-level'                   => $self->{log_level},
        @{ $self->{extra} },
    );
}

# PR_SET_PDEATHSIG: the server dies with the test process even when that
# process is SIGKILLed and never reaches its END block.
my %SYS_PRCTL = (x86_64 => 157, aarch64 => 167, i386 => 172, i686 => 172);

sub _set_pdeathsig {
    my ($parent) = @_;
    my ($arch) = $Config::Config{archname} =~ /^([^-]+)/;
    my $nr = $SYS_PRCTL{$arch // ''} // return;
    return unless $^O eq 'linux';
    syscall($nr, 1, 9);    # PR_SET_PDEATHSIG = 1, SIGKILL = 9
    POSIX::_exit(1) if getppid() != $parent;
}

sub _spawn {
    my ($self) = @_;
    croak 'etcd ' . $self->name . ' is already running' if $self->is_running;
    my @cmd = ($self->{bin}, $self->args);

    open my $log, '>>', $self->{log_file}
        or die "EtcdTest: cannot open $self->{log_file}: $!\n";
    $self->{log_offset} = -s $log // 0;
    printf {$log} "==== %s starting: %s\n", scalar localtime, join ' ', @cmd;
    close $log;

    my $parent = $$;
    my $pid = fork;
    die "EtcdTest: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        eval {
            _set_pdeathsig($parent);
            delete @ENV{ grep { /^ETCD/ } keys %ENV };   # etcd reads ETCD_* as flags
            @ENV{ keys %{ $self->{env} } } = values %{ $self->{env} };
            open STDIN,  '<',  '/dev/null'        or die "stdin: $!";
            open STDOUT, '>>', $self->{log_file}  or die "stdout: $!";
            open STDERR, '>&', \*STDOUT           or die "stderr: $!";
            exec { $cmd[0] } @cmd;
            die "exec $cmd[0]: $!";
        };
        print STDERR "EtcdTest child: $@\n";
        POSIX::_exit(127);
    }
    $self->{pid}         = $pid;
    $self->{owner}       = $$;
    $self->{exit_status} = undef;
    return $pid;
}

# Reap without blocking.  True when the child is gone (reaped here or by
# someone else, e.g. libev's SIGCHLD handler).
sub _reap {
    my ($self) = @_;
    my $pid = $self->{pid} // return 1;
    local ($?, $!);
    my $r = waitpid($pid, WNOHANG);
    return 0 if $r == 0;
    $self->{exit_status} = $r == $pid ? $? : -1;
    $self->{pid} = undef;
    return 1;
}

sub is_running {
    my ($self) = @_;
    return 0 unless $self->{pid} && $self->{owner} == $$;
    return !$self->_reap;
}

sub log_tail {
    my ($self, $lines) = @_;
    $lines //= 40;
    open my $fh, '<', $self->{log_file} or return '';
    seek $fh, $self->{log_offset}, 0;
    my @all = <$fh>;
    close $fh;
    splice @all, 0, @all - $lines if @all > $lines;
    return join '', @all;
}

sub _log_report {
    my ($self) = @_;
    my $tail = $self->log_tail;
    $tail =~ s/^/  | /mg;
    return "--- last lines of $self->{log_file} ($self->{name}):\n$tail";
}

sub _die_if_exited {
    my ($self) = @_;
    return if $self->is_running;
    my $st = $self->{exit_status};
    my $how = !defined $st ? 'is not running'
            : $st == -1    ? 'exited (reaped elsewhere)'
            : $st & 127    ? 'was killed by signal ' . ($st & 127)
            :                'exited with status ' . ($st >> 8);
    die "etcd $self->{name} ($self->{bin}) $how during startup\n"
      . $self->_log_report;
}

sub is_healthy {
    my ($self, $timeout) = @_;
    # A TLS client port does not speak plain HTTP: ask the metrics port,
    # which serves /health too.
    my $port = $self->{tls} ? $self->{metrics_port} : $self->{client_port};
    my ($code, $body) = EtcdTest::http_request(
        'GET', $port, '/health', undef, $timeout // 2);
    return defined $body && $body =~ /"health"\s*:\s*"true"/ ? 1 : 0;
}

# True once the client port answers HTTP at all, healthy or not.
sub is_listening {
    my ($self) = @_;
    my ($code) = EtcdTest::http_request('GET', $self->{client_port}, '/health', undef, 2);
    return defined $code ? 1 : 0;
}

sub wait_healthy {
    my ($self, $timeout) = @_;
    $timeout //= $self->{timeout} // $EtcdTest::HEALTH_TIMEOUT;
    my $deadline = time + $timeout;
    while (1) {
        $self->_die_if_exited;
        return 1 if $self->is_healthy(3);
        last if time > $deadline;
        sleep 0.1;
    }
    die "etcd $self->{name} not healthy after ${timeout}s on "
      . $self->endpoint . "\n" . $self->_log_report;
}

sub wait_listening {
    my ($self, $timeout) = @_;
    $timeout //= $self->{timeout} // $EtcdTest::HEALTH_TIMEOUT;
    my $deadline = time + $timeout;
    while (1) {
        $self->_die_if_exited;
        return 1 if $self->is_listening;
        last if time > $deadline;
        sleep 0.1;
    }
    die "etcd $self->{name} not answering after ${timeout}s on "
      . $self->endpoint . "\n" . $self->_log_report;
}

sub _wait_mode {
    my ($self, $mode, $timeout) = @_;
    return 1 unless $mode;
    return $self->wait_listening($timeout) if $mode eq 'listen';
    return $self->wait_healthy($timeout);
}

sub metrics {
    my ($self) = @_;
    my ($code, $body) = EtcdTest::http_request(
        'GET', $self->{metrics_port}, '/metrics', undef, 10);
    die "etcd $self->{name}: GET /metrics on port $self->{metrics_port} failed\n"
        unless defined $code && $code == 200;
    return $body;
}

sub stop {
    my ($self, $grace) = @_;
    $grace //= $EtcdTest::STOP_GRACE;
    return 1 unless $self->{pid} && $self->{owner} == $$;
    return 1 if $self->_reap;
    local ($?, $!);
    my $pid = $self->{pid};
    kill 'TERM', $pid;
    my $deadline = time + $grace;
    while (time < $deadline) {
        return 1 if $self->_reap;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    $self->{exit_status} = $?;
    $self->{pid} = undef;
    return 1;
}

sub kill9 {
    my ($self) = @_;
    return 1 unless $self->{pid} && $self->{owner} == $$;
    return 1 if $self->_reap;
    local ($?, $!);
    my $pid = $self->{pid};
    kill 'KILL', $pid;
    waitpid($pid, 0);
    $self->{exit_status} = $?;
    $self->{pid} = undef;
    return 1;
}

# Start again with the same name, ports and data dir.  Options:
#   wait => 'health' (default) | 'listen' | 0,   timeout => seconds
sub restart {
    my ($self, %opt) = @_;
    $self->stop if $self->is_running;
    my $wait     = exists $opt{wait} ? $opt{wait} : 'health';
    my $deadline = time + ($opt{port_retry} // 10);
    while (1) {
        $self->_spawn;
        my $ok = eval { $self->_wait_mode($wait, $opt{timeout}); 1 };
        return $self if $ok;
        my $err = $@;
        $self->stop(2);
        # Right after a SIGKILL a port can still be held for a moment.
        die $err unless EtcdTest::_port_conflict($err) && time < $deadline;
        sleep 0.3;
    }
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    if ($self->{pid} && $self->{owner} == $$) {
        eval { $self->stop(5) };
    }
    EtcdTest::_unregister($self);
}

1;

__END__

=head1 NAME

EtcdTest - start throwaway etcd servers for the EV::Etcd test suite

=head1 SYNOPSIS

    use Test::More;
    use lib 't/lib';
    use EtcdTest;

    need_etcd();                       # skip (or fail in strict mode) without etcd
    my $etcd = start_etcd();           # one member, free ports, temp dir
    my $client = EV::Etcd->new(endpoints => [ $etcd->endpoint ]);

    my $done;
    $client->put('k', 'v', sub { $done = 1 });
    ok run_until(\$done, 5), 'put completed';

    $etcd->kill9;  $etcd->restart;     # same ports, same data
    my @members = start_cluster(3);    # real three-member cluster

=head1 FUNCTIONS

=over

=item etcd_bin()

Path of the etcd to use: C<$ENV{ETCD_BIN}> when set (a path, or a command
name looked up on PATH), otherwise C<etcd> from PATH; undef if none.

=item need_etcd()

Returns the binary path.  Without one, the test is skipped with
C<plan skip_all>, except in strict mode (C<EV_ETCD_STRICT_TESTS> or
C<RELEASE_TESTING> set to a true value; C<scripts/test.sh> sets the
first): then it dies, so that the test file fails.  The generic C<CI>
variable does not count.  Call it before any plan.

=item start_etcd(%opt)

Starts one etcd and waits until C</health> reports true.  Returns an
C<EtcdTest::Server>.  Options: C<name>, C<extra> (arrayref of extra etcd
flags), C<timeout>, C<log_level> (default C<warn>), C<client_port>,
C<peer_port>, C<metrics_port>, C<token>, C<bin>, C<data_dir> (an existing
data directory, such as a restored snapshot), C<env> (hashref of
environment variables for etcd; inherited C<ETCD*> variables are removed),
C<keep> (keep the temp dir; also C<EV_ETCD_TEST_KEEP=1>), C<tls> (the
client URL is C<https://>; pass the certificate flags such as
C<--cert-file> in C<extra>; health is then checked on the plain-HTTP
metrics port).  Dies with the
tail of the server log if the server exits or stays unhealthy.

=item start_cluster($n, %opt)

Starts C<$n> (default 3) members forming one new cluster and waits until
all are healthy.  Returns the server objects (an arrayref in scalar
context).  Options as for start_etcd plus C<name_prefix> (default
C<node>, giving node1, node2, ...).

=item start_member(name => ..., initial_cluster => ..., %opt)

Starts a member that joins an existing cluster
(C<--initial-cluster-state existing>); add it with member_add first
(learner or voter) and pass the same C<peer_port>.  Instead of
C<initial_cluster> you may pass C<< cluster => \@servers >>, which also
supplies the token.  The new member's own C<name=peer_url> is appended
when missing.  C<wait> is C<health> (default; a learner reports healthy
too), C<listen> (the client port answers, healthy or not) or 0.

Note that etcd rejects member_add with C<etcdserver: unhealthy cluster>
until every member has been connected to the others for about five
seconds, so a test adding a member right after start_cluster must retry
(or pass C<< extra => ['--strict-reconfig-check=false'] >>).

=item free_port()

A currently unused TCP port on 127.0.0.1, never the same twice in one
process, taken from below the kernel's ephemeral port range where that
range is known (so no outgoing connection can occupy it while a server
that owns it is restarted).

=item run_until(\$flag | $coderef, $timeout)

Runs the EV loop until the flag (or the code's return value) is true or
C<$timeout> seconds (default 10) pass.  Returns 1 on success, 0 on
timeout.

=item wait_for($what, $start, $limit)

Calls C<< $start->($callback) >>, runs the loop until that callback has
been called (at most C<$limit> seconds, default 20; otherwise a failed
test named after C<$what>) and returns the callback's arguments.
Exported on request.

=item call($client, $method, @args), ok_call($client, $method, @args)

Run one client call to completion (dying after 20 s without a callback).
C<call> returns C<($resp, $err)>; C<ok_call> dies on an error and returns
the response. Exported on request.

=item cancel_sync($rec)

Cancels the stream handle in C<< $rec->{handle} >>, runs the loop until
the cancel callback came (at most 10 s) and returns its argument lists.
Exported on request.

=item need_test_hooks(), test_hooks_missing()

C<need_test_hooks> skips the file unless Etcd.so has the test hooks
(C<_echo_requests_for_testing> and the others, compiled in only by
C<EV_ETCD_TEST_HOOKS=1 perl Makefile.PL>); C<test_hooks_missing> returns the
reason, or undef when they are there. With C<EV_ETCD_TEST_HOOKS> set in the
environment both die instead: missing hooks are then a failure.

=item default_etcd_bin($version)

For the benchmarks: returns C<$ENV{ETCD_BIN}>, or sets it first to the etcd
of that version that F<scripts/etcd-bin.sh> provides; dies when there is
none. Exported on request.

=item etcd_version($bin), etcd_version_ge($version, $bin), ci_mode()

Version string of an etcd binary (e.g. C<3.5.1>), a comparison helper,
and whether strict mode is on (see L</need_etcd()>).  Exported on request.

=item http_request($method, $port, $path, $body, $timeout), http_get($port, $path, $timeout)

Minimal HTTP/1.0 client for 127.0.0.1 (e.g. the JSON gateway under
C</v3/>).  In list context returns (status, body, headers).  Exported
on request.

=back

=head1 SERVER METHODS

C<endpoint> (C<127.0.0.1:PORT>), C<client_url>, C<peer_url>,
C<metrics_url>, C<client_port>, C<peer_port>, C<metrics_port>, C<pid>,
C<name>, C<bin>, C<data_dir>, C<dir> (the temp dir holding data and log),
C<log_file>, C<log_tail($lines)>, C<args> (the etcd command-line flags),
C<initial_cluster>, C<initial_cluster_entry> (C<name=peer_url>),
C<cluster_token>, C<version>, C<exit_status>, C<tls>, C<is_running>,
C<is_healthy($timeout)>, C<wait_healthy($timeout)>,
C<wait_listening($timeout)>, C<metrics> (text of C</metrics> from the
metrics port; the client port serves it too), C<stop($grace)> (SIGTERM,
then SIGKILL after C<$grace> seconds, default 10), C<kill9> (SIGKILL; the
data dir stays), C<restart(%opt)> (same name, ports and data dir; options
C<wait> as for start_member, C<timeout>, C<port_retry> seconds to keep
retrying while a port is still held, default 10).

C<$EtcdTest::HEALTH_TIMEOUT> (default 20) and C<$EtcdTest::STOP_GRACE>
(default 10) set the default waits.  C<EV_ETCD_TEST_LOG_LEVEL> changes the
server log level (default C<warn>).

Every server is stopped when its object is destroyed and, at the latest,
in an END block (or by a SIGINT/SIGTERM/SIGHUP handler that the harness
installs where none is set); only the process that started a server ever
signals it, so forked children can exit freely.  etcd also gets
PR_SET_PDEATHSIG on Linux, so it dies with a test process that is killed
outright; the temp dirs such a process leaves behind (named after its pid)
are removed by the next test that starts a server.

=cut
