#!/usr/bin/env perl
# fork(): a client inherited by a child croaks on every use, warns when the
# child destroys it, and leaves the parent's connection alone; a client made
# in the child works; the parent's client keeps working throughout, whether
# the child destroys its copy of the client or keeps it while running EV.
#
# Children call EV::default_loop->loop_fork, as EV asks of a child that goes
# on using the loop (not every EV build does it by itself).
use strict;
use warnings;

use Test::More;
use POSIX ();
use IO::Handle;
use lib 't/lib';
use EtcdTest qw(:DEFAULT wait_for);

need_etcd();

use EV;
use EV::Etcd;

my $srv = start_etcd();
my $ep  = $srv->endpoint;
my $c   = EV::Etcd->new(endpoints => [$ep], timeout => 20);


my ($lg) = wait_for('lease', sub { $c->lease_grant(120, $_[0]) });
my $lid = $lg->{id};
ok $lid, 'lease for the fixtures';
my ($p) = wait_for('put', sub { $c->put('fork/k', 'parent', $_[0]) });
ok $p && $p->{header}, 'parent put before the fork';

my @watch_msgs;
my $w = $c->watch('fork/watched', sub { push @watch_msgs, $_[0] });
ok run_until(sub { @watch_msgs }, 10), 'parent watch is live before the fork';
my $ka_ticks = 0;
my $ka = $c->lease_keepalive($lid, sub { $ka_ticks++ });
ok run_until(sub { $ka_ticks }, 10), 'parent keepalive is live before the fork';

# Everything the child tries with the inherited client; each must croak.
my $leader = { name => 'e', key => 'e/1', rev => 1, lease => $lid };
my $cb = sub { };
my @attempts = (
    [ put                => sub { $c->put('fork/child', 'x', $cb) } ],
    [ get                => sub { $c->get('fork/k', $cb) } ],
    [ 'get with options' => sub { $c->get('fork/', { prefix => 1 }, $cb) } ],
    [ delete             => sub { $c->delete('fork/k', $cb) } ],
    [ 'txn positional'   => sub { $c->txn([], [], [], $cb) } ],
    [ 'txn named'        => sub { $c->txn(compare => [], success => [], callback => $cb) } ],
    [ compact            => sub { $c->compact(1, $cb) } ],
    [ watch              => sub { $c->watch('fork/x', $cb) } ],
    [ lease_grant        => sub { $c->lease_grant(10, $cb) } ],
    [ lease_revoke       => sub { $c->lease_revoke($lid, $cb) } ],
    [ lease_keepalive    => sub { $c->lease_keepalive($lid, $cb) } ],
    [ lease_time_to_live => sub { $c->lease_time_to_live($lid, $cb) } ],
    [ lease_leases       => sub { $c->lease_leases($cb) } ],
    [ lock               => sub { $c->lock('fork/lock', $lid, $cb) } ],
    [ unlock             => sub { $c->unlock('fork/lock/1', $cb) } ],
    [ authenticate       => sub { $c->authenticate('u', 'p', $cb) } ],
    [ auth_status        => sub { $c->auth_status($cb) } ],
    [ user_add           => sub { $c->user_add('u', 'p', $cb) } ],
    [ user_list          => sub { $c->user_list($cb) } ],
    [ role_get           => sub { $c->role_get('r', $cb) } ],
    [ role_grant_permission => sub { $c->role_grant_permission('r', 'READ', 'a', undef, $cb) } ],
    [ status             => sub { $c->status($cb) } ],
    [ alarm              => sub { $c->alarm('GET', $cb) } ],
    [ defragment         => sub { $c->defragment($cb) } ],
    [ hash_kv            => sub { $c->hash_kv($cb) } ],
    [ move_leader        => sub { $c->move_leader(1, $cb) } ],
    [ election_campaign  => sub { $c->election_campaign('e', $lid, 'v', $cb) } ],
    [ election_leader    => sub { $c->election_leader('e', $cb) } ],
    [ election_proclaim  => sub { $c->election_proclaim($leader, 'v', $cb) } ],
    [ election_resign    => sub { $c->election_resign($leader, $cb) } ],
    [ election_observe   => sub { $c->election_observe('e', $cb) } ],
    [ member_list        => sub { $c->member_list($cb) } ],
    [ member_add         => sub { $c->member_add(['http://127.0.0.1:1'], $cb) } ],
    [ member_remove      => sub { $c->member_remove(1, $cb) } ],
    [ 'watch cancel'     => sub { $w->cancel($cb) } ],
    [ 'watch cancel, second try' => sub { $w->cancel($cb) } ],
    [ 'keepalive cancel' => sub { $ka->cancel($cb) } ],
    [ 'bad callback too' => sub { $c->put('fork/child', 'x', 'not code') } ],
);


# Runs $child_code in a child process that reports "name \t ok \t detail"
# lines through a pipe, while the parent keeps its own client busy.  Returns
# the child's exit status after turning each reported line into a test.
sub in_child {
    my ($label, $child_code) = @_;
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $rd;
        $wr->autoflush(1);
        my $report = sub {
            my ($name, $ok, $detail) = @_;
            $detail //= '';
            $detail =~ s/[\t\n]+/ /g;
            print {$wr} join("\t", $name, $ok ? 1 : 0, $detail), "\n";
        };
        my $ok = eval {
            local $SIG{ALRM} = sub { die "child timed out\n" };
            alarm 60;
            $child_code->($report);
            alarm 0;
            1;
        };
        $report->('child finished', $ok, $@);
        close $wr;
        POSIX::_exit($ok ? 0 : 3);
    }

    close $wr;
    my ($sent, $done, $bad) = (0, 0, 0);
    my $ticker = EV::timer(0, 0.02, sub {
        $sent++;
        $c->get('fork/k', sub {
            $done++;
            $bad++ if $_[1] || $_[0]{kvs}[0]{value} ne 'parent';
        });
    });
    my $exit;
    my $cw = EV::child($pid, 0, sub { $exit = $_[0]->rstatus });
    ok run_until(sub { defined $exit }, 90), "$label: child exited";
    undef $ticker;
    undef $cw;
    is $exit, 0, "$label: child exit status 0";

    my @lines = <$rd>;
    close $rd;
    chomp @lines;
    ok scalar(@lines), "$label: child reported results";
    for my $line (@lines) {
        my ($name, $ok, $detail) = split /\t/, $line, 3;
        ok $ok, "$label child: $name" or diag "child said: $detail";
    }

    ok run_until(sub { $done == $sent }, 10),
        "$label: every call the parent made meanwhile completed ($done of $sent)";
    is $bad, 0, "$label: ... without errors";
    cmp_ok $sent, '>', 5, "$label: the parent really was busy meanwhile";
    return $exit;
}

# Parent's client, watch and keepalive after a child.
sub parent_still_works {
    my ($label) = @_;
    my ($r, $e) = wait_for("$label: parent put", sub { $c->put('fork/parent', "after $label", $_[0]) }, 10);
    if (!$r && !$e) {
        # the client is stuck; the checks below would only wait out their time
        fail("$label: the parent's client still works (no answer at all)");
        fail("$label: the parent's watch still delivers (client stuck)");
        return 0;
    }
    ok !$e, "$label: the parent's client still works" or diag explain $e;
    ($r) = wait_for("$label: parent get", sub { $c->get('fork/parent', $_[0]) }, 10);
    is $r && $r->{kvs}[0]{value}, "after $label", "$label: ... put and get";

    my $before = @watch_msgs;
    wait_for("$label: watched put", sub { $c->put('fork/watched', $label, $_[0]) }, 10);
    ok run_until(sub { @watch_msgs > $before }, 10), "$label: the parent's watch still delivers";
    is $watch_msgs[-1] && $watch_msgs[-1]{events}[0]{kv}{value}, $label, "$label: ... the new event";
    return 1;
}

# Every attempt croaks with the fork message.
sub check_croaks {
    my ($report) = @_;
    for my $a (@attempts) {
        my ($name, $code) = @$a;
        my $lived = eval { $code->(); 1 };
        my $err = $@;
        $report->("croak: $name", !$lived && $err =~ /cannot be used after fork\(\)/,
            $lived ? 'did not croak' : $err);
    }
    eval { $c->get('x', $cb) };
    $report->('croak message in full',
        $@ =~ /^EV::Etcd: this client was created before fork\(\) and cannot be used after fork\(\); create a new client in the child/,
        $@);
}

# A new client in the child: put, get, and a stream of gets for a while.
sub child_client_works {
    my ($report, $tag) = @_;
    my $mine = EV::Etcd->new(endpoints => [$ep], timeout => 20);
    my ($done, @r) = (0);
    $mine->put("fork/child-$tag", "child $$", sub { @r = @_; $done = 1 });
    my $fin = run_until(\$done, 20);
    $report->('new client in the child: put', $fin && $r[0] && !$r[1],
        $r[1] ? $r[1]{message} : ($fin ? '' : 'timeout'));
    ($done, @r) = (0);
    $mine->get('fork/k', sub { @r = @_; $done = 1 });
    $fin = run_until(\$done, 20);
    $report->("new client in the child: get sees the parent's value",
        $fin && $r[0] && ($r[0]{kvs}[0]{value} // '') eq 'parent',
        $r[1] ? $r[1]{message} : ($r[0] ? 'value ' . ($r[0]{kvs}[0]{value} // 'none') : 'timeout'));
    my $n = 0;
    my $t = EV::timer(0, 0.05, sub { $mine->get('fork/k', sub { $n++ }) });
    run_until(sub { 0 }, 1.5);
    undef $t;
    run_until(sub { 0 }, 0.3);
    $report->('new client in the child keeps working while EV runs', $n >= 5, "$n gets");
    return $mine;
}

# --- child A: croaks, destroys its copy (warning), then works with its own client ---
in_child('A', sub {
    my ($report) = @_;
    EV::default_loop->loop_fork;
    my ($watch0, $ka0) = (scalar(@watch_msgs), $ka_ticks);
    check_croaks($report);

    my @warn;
    {
        local $SIG{__WARN__} = sub { push @warn, $_[0] };
        undef $w;
        undef $ka;
        undef $c;    # the handles held references; this was the last one
    }
    $report->('destroying the inherited client warns once',
        scalar(grep { /inherited across fork\(\)/ } @warn) == 1, join(' | ', @warn) || 'no warning');

    my $mine = child_client_works($report, 'A');
    $report->('no callback of the inherited client ran in the child',
        @watch_msgs == $watch0 && $ka_ticks == $ka0,
        "watch messages $watch0 -> " . scalar(@watch_msgs) . ", keepalive ticks $ka0 -> $ka_ticks");
});
{
    my ($r) = wait_for('parent reads child A', sub { $c->get('fork/child-A', $_[0]) });
    like $r && $r->{kvs}[0]{value}, qr/^child \d+$/, "the parent sees child A's write";
}
parent_still_works('child A');

# --- child C: only destroys the inherited client, no EV in the child ----------------
{
    pipe(my $r2, my $w2) or die "pipe: $!";
    my $pid2 = fork // die "fork: $!";
    if (!$pid2) {
        close $r2;
        my @warn;
        local $SIG{__WARN__} = sub { push @warn, $_[0] };
        undef $w; undef $ka;
        undef $c;
        print {$w2} join(' | ', @warn), "\n";
        close $w2;
        POSIX::_exit(0);
    }
    close $w2;
    my $msg = <$r2> // '';
    close $r2;
    waitpid $pid2, 0;
    is $? >> 8, 0, 'child C exited normally';
    like $msg, qr/inherited across fork\(\)/, 'child C: destroying the inherited client warned';
}
parent_still_works('child C');

# --- child B: keeps the inherited client while it runs EV with a client of its own ---
in_child('B', sub {
    my ($report) = @_;
    EV::default_loop->loop_fork;
    my ($watch0, $ka0) = (scalar(@watch_msgs), $ka_ticks);
    check_croaks($report);
    my $mine = child_client_works($report, 'B');
    $report->('no callback of the inherited client ran in the child',
        @watch_msgs == $watch0 && $ka_ticks == $ka0,
        "watch messages $watch0 -> " . scalar(@watch_msgs) . ", keepalive ticks $ka0 -> $ka_ticks");
    # leaves with _exit, the inherited client never destroyed
});
# --- child D: runs EV (without loop_fork) while the parent's watch gets events ---
# The child writes to the key the parent watches while the parent sits in
# waitpid, so the parent's wake-up socket stays readable while the child's
# loop runs on the epoll set it inherited. The parent's client must not be
# unhooked by what the child's loop does with the inherited watcher.
{
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $mine = EV::Etcd->new(endpoints => [$ep], timeout => 20);
        my $acked = 0;
        $mine->put('fork/watched', "child D $_", sub { $acked++ unless $_[1] }) for 1 .. 20;
        run_until(sub { $acked >= 20 }, 20);
        run_until(sub { 0 }, 0.5);
        POSIX::_exit($acked == 20 ? 0 : 1);
    }
    waitpid $pid, 0;    # the parent's loop does not run meanwhile
    is $?, 0, 'child D wrote 20 watched values with its own client';
    ok run_until(sub { (grep { ($_->{events}[0]{kv}{value} // '') =~ /^child D/ } @watch_msgs) >= 20 }, 10),
        "the parent's watch delivers the child's 20 writes afterwards";
}
parent_still_works('child D');

if (parent_still_works('child B')) {
    my $done;
    $ka->cancel(sub { $done = 1 });
    ok run_until(\$done, 10), "the parent's keepalive can be cancelled";
    $done = 0;
    $w->cancel(sub { $done = 1 });
    ok run_until(\$done, 10), "the parent's watch can be cancelled";
}

done_testing;
