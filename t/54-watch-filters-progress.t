#!/usr/bin/env perl
# Watch options no_put, no_delete and fragment, and $watch->progress: the
# server's filters drop one kind of event; a revision the server splits
# (it is larger than its --max-request-bytes) reaches the callback as one
# message; a progress request is answered to the watch that asked, with the
# current revision, also when asked before the watch exists or while the
# client reconnects.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;

sub pause { run_until(sub { 0 }, $_[0]) }

# The server splits watch messages above 64 KiB plus its gRPC allowance (512 KiB).
my $srv = start_etcd(name => 'wfp', extra => [ '--max-request-bytes', 65536 ]);
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10, max_retries => -1);

# Starts a watch that records every message and error.
sub watch_rec {
    my ($key, $opt) = @_;
    my $rec = { msgs => [], errs => [] };
    $rec->{w} = $c->watch($key, $opt, sub {
        my ($m, $e) = @_;
        if ($e) { push @{ $rec->{errs} }, $e } else { push @{ $rec->{msgs} }, $m }
    });
    return $rec;
}
sub created { my ($rec) = @_; run_until(sub { grep { $_->{created} } @{ $rec->{msgs} } }, 10) }
sub events  { my ($rec) = @_; [ map { @{ $_->{events} } } @{ $rec->{msgs} } ] }
sub summary { [ map { "$_->{type} $_->{kv}{key}" } @{ events($_[0]) } ] }
# Messages after the created one that carry no events.
sub empties { my ($rec) = @_; [ grep { !$_->{created} && !@{ $_->{events} } } @{ $rec->{msgs} } ] }

# --- filters ---------------------------------------------------------------------
{
    my %rec = (
        all       => watch_rec('f/', { prefix => 1 }),
        no_put    => watch_rec('f/', { prefix => 1, no_put => 1 }),
        no_delete => watch_rec('f/', { prefix => 1, no_delete => 1 }),
        neither   => watch_rec('f/', { prefix => 1, no_put => 1, no_delete => 1 }),
        off       => watch_rec('f/', { prefix => 1, no_put => 0, no_delete => 0 }),
    );
    ok created($rec{$_}), "watch $_ created" for sort keys %rec;
    ok_call($c, 'put', 'f/a', 1);
    ok_call($c, 'put', 'f/b', 2);
    ok_call($c, 'delete', 'f/a');
    my $last = ok_call($c, 'put', 'f/c', 3)->{header}{revision};
    ok run_until(sub { @{ events($rec{all}) } == 4 && @{ events($rec{off}) } == 4 }, 10),
        'the unfiltered watches see all four changes';
    # the filtered ones are on the same stream, so by now they have had theirs
    $rec{neither}{w}->progress;
    ok run_until(sub { @{ empties($rec{neither}) } }, 10), 'progress on the watch that filters everything';
    pause(0.3);
    is_deeply summary($rec{no_put}), ['DELETE f/a'], 'no_put: only the delete';
    is_deeply summary($rec{no_delete}), [ 'PUT f/a', 'PUT f/b', 'PUT f/c' ], 'no_delete: only the puts';
    is_deeply summary($rec{neither}), [], 'both filters: no events at all';
    is $rec{neither}{msgs}[-1]{header}{revision}, $last, '... yet its progress reaches the latest revision';
    is_deeply summary($rec{off}), [ 'PUT f/a', 'PUT f/b', 'DELETE f/a', 'PUT f/c' ], 'filters off: everything';
    is scalar(map { @{ $_->{errs} } } values %rec), 0, 'no errors';
    cancel_all(values %rec);
}

sub cancel_all {
    my $n = 0;
    $_->{w}->cancel(sub { $n++ }) for @_;
    run_until(sub { $n == @_ }, 10);
}

# --- fragment: a revision of about 1 MB; etcd splits above max-request-bytes + 512 KiB
{
    my $n = 900;
    my $value = 'v' x 1000;
    my $done = 0;
    $c->put(sprintf('big/%04d', $_), $value, sub { $done++ }) for 1 .. $n;
    ok run_until(sub { $done == $n }, 30), "$n keys of 1000 bytes loaded";

    my $split = watch_rec('big/', { prefix => 1, prev_kv => 1 });
    my $whole = watch_rec('big/', { prefix => 1, prev_kv => 1, fragment => 0 });
    ok created($split) && created($whole), 'both watches created';

    my $del = ok_call($c, 'delete', 'big/', { prefix => 1 });
    is $del->{deleted}, $n, "one delete removed all $n keys in one revision";
    my $after = ok_call($c, 'put', 'big/after', 'x')->{header}{revision};
    for ([ 'fragment on (default)', $split ], [ 'fragment => 0', $whole ]) {
        my ($what, $rec) = @$_;
        ok run_until(sub { @{ events($rec) } >= $n + 1 }, 20), "$what: every event arrives";
        my @m = grep { !$_->{created} } @{ $rec->{msgs} };
        is scalar @m, 2, "$what: as two messages, the big revision and the next put";
        my $big = $m[0] || { events => [] };
        is scalar @{ $big->{events} }, $n, "$what: the big revision is one message of $n events";
        is_deeply [ map { $_->{kv}{key} } @{ $big->{events} } ],
            [ map { sprintf 'big/%04d', $_ } 1 .. $n ], "$what: in key order, none twice";
        is scalar(grep { $_->{type} eq 'DELETE' && ($_->{prev_kv}{value} // '') eq $value }
                  @{ $big->{events} }), $n, "$what: every one a DELETE with its prev_kv";
        is $big->{header}{revision}, $del->{header}{revision}, "$what: with the delete's revision";
        is_deeply [ map { $_->{kv}{key} } @{ $m[1]{events} || [] } ], ['big/after'], "$what: then the put";
        is $m[1] && $m[1]{header}{revision}, $after, "$what: at its revision";
        is scalar @{ $rec->{errs} }, 0, "$what: no errors";
    }
    cancel_all($split, $whole);
}

# --- progress -----------------------------------------------------------------------
{
    my $asker = watch_rec('p/a', {});
    my $other = watch_rec('p/b', {});
    my $notify = watch_rec('p/c', { progress_notify => 1 });
    $asker->{w}->progress;    # before the server has confirmed the watch
    ok created($asker), 'watch created';
    ok run_until(sub { @{ empties($asker) } }, 10), 'a progress asked before creation is answered after it';
    created($other);
    created($notify);

    my $rev = ok_call($c, 'put', 'p/elsewhere', 1)->{header}{revision};
    my $before = @{ empties($asker) };
    $asker->{w}->progress;
    ok run_until(sub { @{ empties($asker) } > $before }, 10), 'progress answered';
    my $p = empties($asker)->[-1];
    is $p->{header}{revision}, $rev, '... with the current revision';
    is $p->{watch_id}, $asker->{msgs}[0]{watch_id}, "... under the asking watch's id";
    is $p->{created}, 0, '... created 0';
    is_deeply $p->{events}, [], '... and no events';
    pause(0.5);
    is scalar @{ empties($other) }, 0, 'another watch on the stream gets nothing';
    is scalar @{ empties($notify) }, 0, 'nor does one with progress_notify';

    # several requests in a row: each gets an answer, none is lost
    my $k = @{ empties($asker) };
    my $o = @{ empties($other) };
    $asker->{w}->progress;
    $other->{w}->progress;
    ok run_until(sub { @{ empties($asker) } > $k && @{ empties($other) } > $o }, 10),
        'two watches asking at once: each gets its answer';

    # asked while the client is reconnecting: answered once the watch is back
    $srv->stop;
    pause(0.5);
    $k = @{ empties($asker) };
    $asker->{w}->progress;
    $srv->restart;
    ok run_until(sub { @{ empties($asker) } > $k }, 30), 'a progress asked while the server was down is answered after';
    my $back = ok_call($c, 'put', 'p/a', 'back')->{header}{revision};
    ok run_until(sub { @{ events($asker) } }, 10), 'the watch delivers after the restart';
    is $asker->{msgs}[-1]{header}{revision}, $back, '... the new put';
    is scalar(map { @{ $_->{errs} } } $asker, $other, $notify), 0, 'no errors through it all';

    # croaks
    my $line;
    cancel_all($asker);
    eval { $line = __LINE__; $asker->{w}->progress };
    like $@, qr/^progress: the watch has been cancelled at \Q$0\E line $line\.$/, 'progress after cancel croaks at the caller';
    eval { $line = __LINE__; EV::Etcd::Watch::progress('nope') };
    like $@, qr/^progress: called on something that is not a live watch handle at \Q$0\E line $line\.$/,
        'progress on a non-handle croaks';
    my $ka_lease = ok_call($c, 'lease_grant', 30)->{id};
    my $ka = $c->lease_keepalive($ka_lease, sub {});
    eval { $line = __LINE__; EV::Etcd::Watch::progress($ka) };
    like $@, qr/^progress: called on something that is not a live watch handle at \Q$0\E line $line\.$/,
        'progress on a keepalive handle croaks';
    eval { $line = __LINE__; $c->watch('x', { no_puts => 1 }, sub {}) };
    like $@, qr/^watch: unknown option 'no_puts' at \Q$0\E line $line\.$/, 'a misspelt filter croaks';
    my $cl = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
    my $cw = $cl->watch('x', sub {});
    $cl->close;
    eval { $line = __LINE__; $cw->progress };
    like $@, qr/^EV::Etcd: this client was closed at \Q$0\E line $line\.$/, 'progress on a closed client croaks at the caller';
    my $n = 0;
    $ka->cancel(sub { $n++ });
    cancel_all($other, $notify);
}

done_testing;
