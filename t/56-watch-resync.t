#!/usr/bin/env perl
# on_compacted => 'resync': a watch whose history has been compacted away
# (at creation, or when it resumes after its connection went dead) reads
# the watched keys as they are now, delivers them as one resync message,
# and watches on from the revision after that read; without the option
# the compaction error ends the watch as before.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);
use TcpProxy;

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'resync');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ]);

sub watch_rec {
    my ($client, $key, $opt) = @_;
    my $rec = { msgs => [], errs => [] };
    $rec->{w} = $client->watch($key, $opt, sub {
        my ($m, $e) = @_;
        if ($e) { push @{ $rec->{errs} }, $e } else { push @{ $rec->{msgs} }, $m }
    });
    return $rec;
}
sub resyncs { [ grep { $_->{resync} } @{ $_[0]{msgs} } ] }
sub events  { [ map { map { "$_->{type} $_->{kv}{key}=$_->{kv}{value}" } @{ $_->{events} } } @{ $_[0]{msgs} } ] }
sub kv_list { [ map { "$_->{key}=$_->{value}" } @{ $_[0]{kvs} || [] } ] }

# History: a/1..3 written, a/2 rewritten, a/3 deleted, a/4 written; then
# everything up to now compacted.
my $first = ok_call($c, 'put', 'a/1', 'one')->{header}{revision};
ok_call($c, 'put', 'a/2', 'two');
ok_call($c, 'put', 'a/3', 'three');
ok_call($c, 'put', 'a/2', 'two again');
ok_call($c, 'delete', 'a/3');
ok_call($c, 'put', 'b', 'outside');
my $now = ok_call($c, 'put', 'a/4', 'four')->{header}{revision};
ok_call($c, 'compact', $now);

# --- at creation --------------------------------------------------------------------
{
    my $rec = watch_rec($c, 'a/', { prefix => 1, start_revision => $first, on_compacted => 'resync' });
    ok run_until(sub { @{ resyncs($rec) } }, 10), 'a watch from a compacted revision resyncs';
    my $r = resyncs($rec)->[0];
    is_deeply kv_list($r), [ 'a/1=one', 'a/2=two again', 'a/4=four' ],
        'the resync message holds the range as it is now (deleted key absent, outside key left out)';
    is $r->{header}{revision}, $now, '... read at the current revision';
    is $r->{created}, 0, '... created 0';
    is_deeply $r->{events}, [], '... no events';
    is $r->{watch_id}, $rec->{msgs}[0]{watch_id}, "... under the watch's id";
    is_deeply [ sort keys %$r ], [qw(created events header kvs resync watch_id)], '... and only the documented keys';
    is $rec->{msgs}[0]{created}, 1, 'the created message came first';
    is scalar @{ $rec->{errs} }, 0, 'no error';

    ok_call($c, 'put', 'a/5', 'five');
    ok_call($c, 'delete', 'a/1');
    ok run_until(sub { @{ events($rec) } >= 2 }, 10), 'changes after the read arrive as events';
    is_deeply events($rec), [ 'PUT a/5=five', 'DELETE a/1=' ], '... each once, nothing from before the read';
    is scalar @{ resyncs($rec) }, 1, 'one resync only';
    ok !exists $rec->{msgs}[-1]{resync}, 'ordinary messages carry no resync key';
    my $n = 0;
    $rec->{w}->cancel(sub { $n++ });
    run_until(sub { $n }, 5);
}

# --- a single key, which no longer exists -----------------------------------------------
{
    my $rec = watch_rec($c, 'a/3', { start_revision => $first, on_compacted => 'resync' });
    ok run_until(sub { @{ resyncs($rec) } }, 10), 'a single-key watch resyncs';
    is_deeply kv_list(resyncs($rec)->[0]), [], '... with empty kvs for a deleted key';
    ok_call($c, 'put', 'a/3', 'back');
    ok run_until(sub { @{ events($rec) } }, 10), '... then reports its return';
    is_deeply events($rec), ['PUT a/3=back'], '... once';
    my $n = 0;
    $rec->{w}->cancel(sub { $n++ });
    run_until(sub { $n }, 5);
}

# --- without the option: the error, as before -------------------------------------------
for my $opt ({}, { on_compacted => 'error' }, { on_compacted => undef }) {
    my $what = %$opt ? "on_compacted => " . ($opt->{on_compacted} // 'undef') : 'no option';
    my $rec = watch_rec($c, 'a/', { prefix => 1, start_revision => $first, %$opt });
    ok run_until(sub { @{ $rec->{errs} } }, 10), "$what: the watch ends";
    is $rec->{errs}[0]{status}, 'OUT_OF_RANGE', "$what: OUT_OF_RANGE";
    like $rec->{errs}[0]{message}, qr/compact_revision \d+/, "$what: naming the compact revision";
    is scalar @{ resyncs($rec) }, 0, "$what: no resync";
}

# --- when resuming: the connection went dead while history was compacted -----------------
{
    my $proxy = TcpProxy->new(upstream => $srv->client_port);
    my $far = EV::Etcd->new(endpoints => [ $proxy->endpoint, $srv->endpoint ], keepalive_time => 0,
                            watch_probe_interval => 0.5, timeout => 2, max_retries => -1);
    my $rec = watch_rec($far, 'c/', { prefix => 1, on_compacted => 'resync' });
    ok run_until(sub { @{ $rec->{msgs} } }, 10), 'a watch through a proxy';
    ok_call($c, 'put', 'c/1', 'x');
    ok run_until(sub { @{ events($rec) } }, 10), '... sees an event';

    $proxy->freeze;
    ok_call($c, 'put', 'c/1', 'y');
    ok_call($c, 'put', 'c/2', 'z');
    my $cut = ok_call($c, 'delete', 'c/1')->{header}{revision};
    ok_call($c, 'compact', $cut);
    my $t0 = time;
    ok run_until(sub { @{ resyncs($rec) } }, 15), 'resuming below the compaction: a resync';
    diag sprintf 'resynced %.1fs after the compaction', time - $t0;
    my $r = resyncs($rec)->[0];
    is_deeply kv_list($r), ['c/2=z'], '... with the state the lost changes led to';
    is $r->{header}{revision}, $cut, '... read at the current revision';
    is_deeply events($rec), ['PUT c/1=x'], 'no event from the compacted stretch';
    ok_call($c, 'put', 'c/3', 'w');
    ok run_until(sub { @{ events($rec) } >= 2 }, 10), 'and the watch goes on';
    is events($rec)->[-1], 'PUT c/3=w', '... with the next change';
    is scalar @{ $rec->{errs} }, 0, 'no errors';
    $proxy->thaw;
    $proxy->stop;
}

# --- option checks ------------------------------------------------------------------------
{
    my $line;
    eval { $line = __LINE__; $c->watch('x', { on_compacted => 'retry' }, sub {}) };
    like $@, qr/^watch: on_compacted must be 'resync' or 'error', got 'retry' at \Q$0\E line $line\.$/,
        'an unknown on_compacted croaks at the caller';
    eval { $line = __LINE__; $c->watch('x', { on_compacted => [] }, sub {}) };
    like $@, qr/^watch: on_compacted must be 'resync' or 'error', got a reference at \Q$0\E line $line\.$/,
        'a reference croaks';
}

done_testing;
