#!/usr/bin/env perl
# What used to end a program with a crash, each run in a perl of its own so
# that a crash fails one test instead of the file: close() inside every kind
# of callback; a client or stream handle copied by Storable (dclone,
# freeze/thaw) or by a thread; an object blessed by hand; a panic inside the
# Rust core while a call starts (with the test hooks only: see EtcdTest's
# test_hooks_missing).
#
# Each child prints "name=value" lines and "DONE" at its end; the checks
# here read them, the exit status and stderr.
use strict;
use warnings;

use Test::More;
use Config;

use lib 't/lib';
use EtcdTest qw(:DEFAULT ok_call test_hooks_missing);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'crash');
my $ep  = $srv->endpoint;

# Runs $body in a fresh perl with $etcd connected to our etcd and the
# helpers below; returns its exit status, its stdout as a hash of the
# name=value lines, and its whole output.
my $prelude = <<'PERL';
use strict; use warnings; use EV; use EV::Etcd;
$| = 1;
our $ep = shift;
our $etcd = EV::Etcd->new(endpoints => [$ep]);
our %said;
sub say_ { my ($k, $v) = @_; print "$k=", (defined $v ? $v : 'undef'), "\n" }
# Runs the loop until $$flag is true or $secs pass.
sub wait_for { my ($flag, $secs) = @_; my $t = EV::timer($secs, 0, sub { EV::break });
               EV::run(EV::RUN_ONCE) until $$flag || !$t->is_active; }
# The croak of a call, without its place.
sub croak_of { my ($code) = @_; return 'none' if eval { $code->(); 1 };
               (my $e = $@) =~ s/ at \S+ line \d+(?: thread \d+)?\.?\n\z//; $e }
PERL

sub isolated {
    my ($name, $body, %opt) = @_;
    my %env = %{ $opt{env} || {} };
    local @ENV{ keys %env } = values %env;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT or die;
        exec $^X, '-Mblib', '-e', "$prelude\n$body\n;print qq{DONE\\n};", $ep;
        die "exec: $!";
    }
    local $/;
    my $out = <$fh>;
    close $fh;
    my $status = $?;
    my %kv = $out =~ /^(\w+)=(.*)$/mg;
    ok(($status & 127) == 0, "$name: no signal") or diag "signal " . ($status & 127) . "\n$out";
    is($status >> 8, 0, "$name: exits 0") or diag $out;
    like($out, qr/^DONE$/m, "$name: runs to its end");
    my $alarming = qr/panicked|Attempt to free|Segmentation|EV: error|in cleanup|Use of uninit/i;
    (my $rest = $out) =~ s/$opt{expected}//g if $opt{expected};
    unlike($rest, $alarming, "$name: nothing alarming on stderr") or diag $out;
    return (\%kv, $out);
}

# --- close() inside each kind of callback -------------------------------------
# Several calls are in flight, so the drain that runs the closing callback
# still has completions queued when the client goes away.
{
    my ($kv) = isolated('close in a put callback', <<'PERL');
# Whichever answer comes first closes the client; none may follow it.
my $ran = 0;
$etcd->put("/crash/n$_", 'x', sub { $etcd->close unless $ran++ }) for 1 .. 21;
EV::run;
say_(ran => $ran);
say_(after => croak_of(sub { $etcd->get('/crash/a', sub {}) }));
undef $etcd;
PERL
    is $kv->{ran}, 1, 'the closing callback ran, and none of the 20 still pending after it';
    is $kv->{after}, 'EV::Etcd: this client was closed', 'a call after close croaks';
}

{
    my ($kv) = isolated('close in a cancel callback', <<'PERL');
my $w = $etcd->watch('/crash/w', sub {});
my $done = 0;
$etcd->put('/crash/w', 1, sub {
    $w->cancel(sub { $done++; $etcd->close });
});
EV::run;
say_(done => $done);
say_(again => croak_of(sub { my $n = 0; $w->cancel(sub { $n++ }); die "no answer\n" unless $n }));
PERL
    is $kv->{done}, 1, 'the cancel callback ran';
    is $kv->{again}, 'none', 'cancel again afterwards answers at once';
}

{
    my ($kv) = isolated('close in a watch event callback', <<'PERL');
my $events = 0;
my $w; $w = $etcd->watch('/crash/ev', { prefix => 1 }, sub {
    my ($resp, $err) = @_;
    return if $err || !@{ $resp->{events} || [] };
    $events++;
    $etcd->close;
});
# Another client writes until the first event (the watch may not be on
# the server yet for the first puts), and on for a while after the close.
my $other = EV::Etcd->new(endpoints => [$ep]);
my $n = 0;
my $writer = EV::timer(0, 0.02, sub { $other->put('/crash/ev/' . $n++, 1, sub {}) });
wait_for(\$events, 10);
wait_for(\my $never, 0.3);
say_(events => $events);
say_(puts_after => $n > 5 ? 'many' : $n);
PERL
    is $kv->{events}, 1, 'no event is delivered after close';
    is $kv->{puts_after}, 'many', '... while puts went on';
}

{
    my ($kv) = isolated('close in a keepalive callback', <<'PERL');
my ($ticks, $id) = (0);
$etcd->lease_grant(10, sub { $id = $_[0]{id} });
wait_for(\$id, 10);
our $ka = $etcd->lease_keepalive($id, sub { $ticks++; $etcd->close });
wait_for(\$ticks, 10);
wait_for(\my $never, 0.3);
say_(ticks => $ticks);
PERL
    is $kv->{ticks}, 1, 'the keepalive callback ran once';
}

{
    my ($kv) = isolated('close in an observe callback', <<'PERL');
my ($seen, $id) = (0);
$etcd->lease_grant(10, sub { $id = $_[0]{id} });
wait_for(\$id, 10);
my $won;
$etcd->election_campaign('/crash/elect', $id, 'me', sub { $won = 1 });
wait_for(\$won, 10);
our $obs = $etcd->election_observe('/crash/elect', sub { $seen++; $etcd->close });
wait_for(\$seen, 10);
wait_for(\my $never, 0.3);
say_(seen => $seen);
PERL
    is $kv->{seen}, 1, 'the observe callback ran once';
}

{
    my ($kv) = isolated('close in a snapshot chunk callback', <<'PERL');
my ($chunks, $final) = (0, 0);
$etcd->put('/crash/snap', 'x' x 1000, sub {});
$etcd->snapshot(sub { $chunks++; $etcd->close }, sub { $final++ });
wait_for(\$chunks, 10);
wait_for(\my $never, 0.3);
say_(chunks => $chunks);
say_(final => $final);
PERL
    is $kv->{chunks}, 1, 'one chunk, then nothing';
    is $kv->{final}, 0, 'the final callback is pending, so not called';
}

{
    my ($kv) = isolated('close in on_request', <<'PERL');
my ($hook, $cb) = (0, 0);
our $c = EV::Etcd->new(endpoints => [$ep], on_request => sub { $hook++; our $c; $c->close });
$c->put('/crash/req', 1, sub { $cb++ });
$c->put('/crash/req', 2, sub { $cb++ });
wait_for(\$hook, 10);
wait_for(\my $never, 0.3);
say_(hook => $hook);
say_(cb => $cb);
PERL
    is $kv->{hook}, 1, 'on_request ran once';
    is $kv->{cb}, 0, 'the call it reported is not answered after the close';
}

{
    my ($kv) = isolated('close in on_health_change', <<'PERL');
my $changes = 0;
our $c = EV::Etcd->new(endpoints => [$ep], health_interval => 0.1,
    on_health_change => sub { $changes++; our $c; $c->close });
wait_for(\$changes, 10);
wait_for(\my $never, 0.5);
say_(changes => $changes);
PERL
    is $kv->{changes}, 1, 'on_health_change ran once';
}

{
    my ($kv) = isolated('dropping the last reference in a callback', <<'PERL');
my $ran = 0;
{
    my $c = EV::Etcd->new(endpoints => [$ep]);
    my $cr = \$c;
    $c->put('/crash/drop', 1, sub { $ran++; undef $$cr });
    $c->put("/crash/drop$_", 1, sub { $ran++ }) for 1 .. 10;
}
EV::run;
say_(ran => $ran);
PERL
    cmp_ok $kv->{ran}, '>=', 1, 'the dropping callback ran';
}

# --- the same in the Perl-level clients ---------------------------------------
{
    my ($kv) = isolated('close in Session callbacks', <<'PERL');
require EV::Etcd::Session;
my ($ready, $put) = (0, 0);
my $s = EV::Etcd::Session->new(client => $etcd, ttl => 10,
    on_ready => sub { $ready++ });
wait_for(\$ready, 10);
$s->put('/crash/session', 1, sub { $put++; $etcd->close });
wait_for(\$put, 10);
wait_for(\my $never, 0.3);
say_(put => $put);
undef $s;
my ($ready2) = (0);
our $c2 = EV::Etcd->new(endpoints => [$ep]);
my $s2 = EV::Etcd::Session->new(client => $c2, ttl => 10,
    on_ready => sub { $ready2++; our $c2; $c2->close });
wait_for(\$ready2, 10);
wait_for(\my $never2, 0.3);
say_(ready2 => $ready2);
say_(state => $s2->state);
undef $s2;
PERL
    is $kv->{put}, 1, 'a session put callback that closes the client';
    is $kv->{ready2}, 1, 'an on_ready that closes the client';
}

{
    my ($kv) = isolated('close in a RangeIterator callback', <<'PERL');
my $n = 0;
$etcd->put("/crash/it/$_", 1, sub { $n++ }) for 1 .. 10;
EV::run;
my $pages = 0;
my $it = $etcd->range_iterator('/crash/it/', { prefix => 1, page_size => 3 });
$it->next(sub { $pages++; $etcd->close });
wait_for(\$pages, 10);
wait_for(\my $never, 0.3);
say_(pages => $pages);
say_(next => croak_of(sub { $it->next(sub {}) }));
PERL
    is $kv->{pages}, 1, 'the page callback ran once';
    like $kv->{next}, qr/closed/, 'the next page croaks: the client was closed';
}

{
    my ($kv) = isolated('close in a namespace client callback', <<'PERL');
my $ran = 0;
our $ns = EV::Etcd->new(endpoints => [$ep], namespace => '/crash/ns/');
$ns->put('k', 1, sub { $ran++; our $ns; $ns->close });
$ns->put("k$_", 1, sub { $ran++ }) for 1 .. 10;
EV::run;
say_(ran => $ran);
undef $ns;
PERL
    cmp_ok $kv->{ran}, '>=', 1, 'the namespace client callback ran';
}

# --- copies and forgeries -----------------------------------------------------
{
    my ($kv) = isolated('Storable dclone and freeze/thaw of a client and its handles', <<'PERL');
use Storable ();
my $lease; $etcd->lease_grant(20, sub { $lease = $_[0]{id} }); wait_for(\$lease, 10);
my $won; $etcd->election_campaign('/crash/st', $lease, 'me', sub { $won = 1 }); wait_for(\$won, 10);
# (the snapshot handle is internal to snapshot(); _snapshot returns it)
my %h = (
    watch     => $etcd->watch('/crash/st', sub {}),
    keepalive => $etcd->lease_keepalive($lease, sub {}),
    observe   => $etcd->election_observe('/crash/st', sub {}),
    snapshot  => $etcd->_snapshot(sub {}),
);
for my $how (qw(dclone freeze_thaw)) {
    my $copy = $how eq 'dclone'
        ? Storable::dclone({ client => $etcd, %h })
        : Storable::thaw(Storable::freeze({ client => $etcd, %h }));
    say_("${how}_client" => croak_of(sub { $copy->{client}->put('/crash/st', 1, sub {}) }));
    for my $k (sort keys %h) {
        say_("${how}_$k" => croak_of(sub { $copy->{$k}->cancel(sub {}) }));
    }
    say_("${how}_progress" => croak_of(sub { $copy->{watch}->progress }));
    undef $copy;    # frees nothing of the original
}
my $ok; $etcd->put('/crash/st/after', 1, sub { $ok = !$_[1] }); wait_for(\$ok, 10);
say_(original => $ok ? 1 : 0);
my $n = 0; $h{$_}->cancel(sub { $n++ }) for sort keys %h;
my $t = EV::timer(5, 0, sub { EV::break }); EV::run(EV::RUN_ONCE) while $n < 4 && $t->is_active;
say_(cancelled => $n);
undef $etcd;
PERL
    for my $how (qw(dclone freeze_thaw)) {
        like $kv->{"${how}_client"}, qr/^put: called on something that is not a live EV::Etcd client$/,
            "$how: the copied client croaks on use";
        for my $k (qw(keepalive observe snapshot watch)) {
            like $kv->{"${how}_$k"}, qr/^cancel: called on something that is not a live stream handle$/,
                "$how: a copied $k handle croaks on cancel";
        }
        like $kv->{"${how}_progress"}, qr/^progress: called on something that is not a live watch handle$/,
            "$how: a copied watch handle croaks on progress";
    }
    is $kv->{original}, 1, 'the original client works after its copies are gone';
    is $kv->{cancelled}, 4, 'the original handles cancel';
}

SKIP: {
    skip 'this perl has no threads', 11 unless $Config{useithreads};
    my ($kv) = isolated('threads', <<'PERL');
use threads;
my $lease; $etcd->lease_grant(20, sub { $lease = $_[0]{id} }); wait_for(\$lease, 10);
my $won; $etcd->election_campaign('/crash/th', $lease, 'me', sub { $won = 1 }); wait_for(\$won, 10);
my %h = (
    watch     => $etcd->watch('/crash/th', sub {}),
    keepalive => $etcd->lease_keepalive($lease, sub {}),
    observe   => $etcd->election_observe('/crash/th', sub {}),
    snapshot  => $etcd->_snapshot(sub {}),
);
my @k = sort keys %h;
my @r = threads->create({ context => 'list' }, sub {
    (croak_of(sub { $etcd->put('/crash/th', 1, sub {}) }),
     map { my $k = $_; croak_of(sub { $h{$k}->cancel(sub {}) }) } @k);
})->join;
say_(thread_client => shift @r);
say_("thread_$_" => shift @r) for @k;
threads->create(sub { 1 })->join for 1 .. 3;
my $ok; $etcd->put('/crash/th', 1, sub { $ok = !$_[1] }); wait_for(\$ok, 10);
say_(parent => $ok ? 1 : 0);
my $n = 0; $h{$_}->cancel(sub { $n++ }) for @k;
my $t = EV::timer(5, 0, sub { EV::break }); EV::run(EV::RUN_ONCE) while $n < @k && $t->is_active;
say_(cancelled => $n);
undef $etcd;
PERL
    like $kv->{thread_client}, qr/^put: called on something that is not a live EV::Etcd client$/,
        'in a thread the client croaks on use';
    for my $k (qw(keepalive observe snapshot watch)) {
        like $kv->{"thread_$k"}, qr/^cancel: called on something that is not a live stream handle$/,
            "... and so does the $k handle";
    }
    is $kv->{parent}, 1, 'the parent client works after the threads ended';
    is $kv->{cancelled}, 4, '... and its handles cancel';
}

{
    my ($kv) = isolated('objects blessed by hand', <<'PERL');
say_(int => croak_of(sub { bless(\(my $x = 99999), 'EV::Etcd')->status(sub {}) }));
say_(real => croak_of(sub { bless(\(my $x = 0 + $etcd), 'EV::Etcd')->status(sub {}) }));
say_(hash => croak_of(sub { bless({}, 'EV::Etcd')->put('a', 'b', sub {}) }));
say_(close => croak_of(sub { bless(\(my $x = 12345), 'EV::Etcd')->close }));
{ my $f = bless \(my $x = 4242), 'EV::Etcd'; }    # DESTROY of a forgery
my $ok; $etcd->status(sub { $ok = !$_[1] }); wait_for(\$ok, 10);
say_(real_client => $ok ? 1 : 0);
PERL
    for my $k (qw(int real)) {
        like $kv->{$k}, qr/^status: called on something that is not a live EV::Etcd client$/,
            "a forged client ($k) croaks";
    }
    like $kv->{hash}, qr/^put: called on something that is not a live EV::Etcd client$/,
        'a blessed hash croaks';
    like $kv->{close}, qr/^close: called on something that is not a live EV::Etcd client$/,
        'close on a forgery croaks';
    is $kv->{real_client}, 1, 'the real client is untouched';
}

# --- a panic inside the Rust core ----------------------------------------------
SKIP: {
    my $no_hooks = test_hooks_missing();
    skip $no_hooks, 10 if $no_hooks;    # isolated's 4 checks and the 6 below
    my %hooks = (
        env => { EV_ETCD_TEST_HOOKS => 1, RUST_BACKTRACE => 0 },
        # what the panic hook prints for the panics asked for
        expected => qr/^thread .* panicked at src\/ffi\.rs:\d+:\d+:\npanic requested by a test\n(?:note: .*\n)?/m,
    );
    my ($kv) = isolated('a panic while a call starts', <<'PERL', %hooks);
$etcd->_panic_for_testing;
say_(call => croak_of(sub { $etcd->put('/crash/p', 1, sub {}) }));
$etcd->_panic_for_testing;
say_(member => croak_of(sub { $etcd->status({ endpoint => $ep }, sub {}) }));
$etcd->_panic_for_testing;
say_(stream => croak_of(sub { $etcd->watch('/crash/p', sub {}) }));
say_(bad_endpoint => croak_of(sub { $etcd->status({ endpoint => 'no such host:x' }, sub {}) }));
my $ok; $etcd->put('/crash/p', 1, sub { $ok = !$_[1] }); wait_for(\$ok, 10);
say_(after => $ok ? 1 : 0);
PERL
    like $kv->{call},
        qr/^put: internal error in the Rust core \(panic in evetcd_call: panic requested by a test at src\/ffi\.rs:\d+\); nothing was started$/,
        'a panic in evetcd_call croaks saying so and where';
    like $kv->{member},
        qr/^status: internal error in the Rust core \(panic in evetcd_call_at: panic requested by a test at \S+:\d+\)/,
        '... in evetcd_call_at (a member call) too';
    like $kv->{stream},
        qr/^watch: internal error in the Rust core \(panic in evetcd_watch: /, '... and in a stream start';
    unlike $kv->{bad_endpoint}, qr/internal error|^none$/, 'an unusable endpoint is not called an internal error';
    like $kv->{bad_endpoint}, qr/^status: /, '... but croaks naming the method';
    is $kv->{after}, 1, 'the client works after the panics';
}

done_testing;
