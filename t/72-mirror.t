#!/usr/bin/env perl
# EV::Etcd::Mirror against one etcd: the view read in many pages equals
# a fresh read at its revision after random writes; an empty prefix; a
# namespaced client; cancel; the resync after the watch's history was
# compacted while its connection was dead (a frozen proxy), delivered as
# exactly the difference; bad arguments.
use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);
use MirrorTest;
use TcpProxy;

need_etcd();
use EV;
use EV::Etcd;

my $T0 = time;
srand(($ENV{MIRROR_SEED} // time) & 0xffff);
note 'seed ' . ($ENV{MIRROR_SEED} // 'time');

my $srv = start_etcd(name => 'mirror');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);    # the writer

# --- bad arguments ----------------------------------------------------------------------
{
    my $cb = sub { };
    my @cases = (
        [ sub { $c->mirror() },                               qr/^callback must be a code reference \(mirror\)/ ],
        [ sub { $c->mirror('p/') },                           qr/^callback must be a code reference \(mirror\)/ ],
        [ sub { $c->mirror('p/', {}) },                       qr/^callback must be a code reference \(mirror\)/ ],
        [ sub { $c->mirror(undef, $cb) },                     qr/^mirror: prefix must be defined/ ],
        [ sub { $c->mirror([], $cb) },                        qr/^mirror: prefix must be a string, not ARRAY reference/ ],
        [ sub { $c->mirror('p/', [], $cb) },                  qr/^mirror: options must be a hash reference/ ],
        [ sub { $c->mirror('p/', { page_sise => 5 }, $cb) },  qr/^mirror: unknown option 'page_sise'/ ],
        [ sub { $c->mirror('p/', { prefix => 1 }, $cb) },     qr/^mirror: unknown option 'prefix'/ ],
        [ sub { $c->mirror('p/', { page_size => 0 }, $cb) },  qr/^mirror: page_size must be a positive integer, got '0'/ ],
        [ sub { $c->mirror('p/', { page_size => 'x' }, $cb) }, qr/^mirror: page_size must be a positive integer, got 'x'/ ],
        [ sub { $c->mirror('p/', { max_retries => 1.5 }, $cb) }, qr/^mirror: max_retries must be an integer, got '1.5'/ ],
        [ sub { $c->mirror('p/', {}, $cb, 1) },               qr/^mirror: takes a prefix, an optional options hash and a callback/ ],
        [ sub { EV::Etcd::mirror('EV::Etcd', 'p/', $cb) },    qr/^mirror: called on something that is not a live EV::Etcd client/ ],
    );
    for my $case (@cases) {
        my ($code, $re) = @$case;
        my $line = __LINE__ + 1;
        eval { $code->(); 1 } and do { fail("no croak for $re"); next };
        like $@, qr/$re.* at \Q$0\E line \d+\.$/, "croaks: $re";
    }
    my $line;
    eval { $line = __LINE__; $c->mirror('p/', { bogus => 1 }, $cb) };
    like $@, qr/ at \Q$0\E line $line\.$/, "... at the caller's line";
    eval { $line = __LINE__; EV::Etcd::Mirror::get({}, 'x') };
    like $@, qr/^get: called on something that is not an EV::Etcd::Mirror at \Q$0\E line $line\.$/,
        'a method on something else croaks';
}

# --- an empty prefix, ready once, then changes ---------------------------------------------
{
    my $rec = mirror_rec($c, 'empty/', { page_size => 5 });
    my $m = $rec->{m};
    isa_ok $m, 'EV::Etcd::Mirror';
    is $m->ready, 0, 'not ready at once';
    is $m->state, 'loading', '... loading';
    is $m->revision, undef, '... no revision yet';
    ok run_until(sub { @{ $rec->{readies} } || @{ $rec->{errs} } }, 10), 'an empty prefix gets ready';
    my $ready = $rec->{readies}[0];
    is_deeply [ sort keys %$ready ], [qw(count ready revision)], 'the ready message has count, ready and revision';
    is $ready->{count}, 0, '... count 0';
    is $m->revision, $ready->{revision}, '... the revision of the view';
    is $m->count, 0, 'count 0';
    is_deeply [ $m->keys ], [], 'no keys';
    is_deeply $m->all, {}, 'all is empty';
    is $m->get('empty/x'), undef, 'get of a missing key: undef';
    is $m->state, 'live', 'live';
    my $rev = ok_call($c, 'put', 'empty/a', 'A')->{header}{revision};
    ok_call($c, 'put', 'emptyish', 'not ours');
    my $rev2 = ok_call($c, 'txn', [], [ { put => { key => 'empty/b', value => 'B' } },
                                        { put => { key => 'empty/c', value => '' } } ], [])->{header}{revision};
    my $rev3 = ok_call($c, 'delete', 'empty/a')->{header}{revision};
    check_view($rec, $c, 'empty prefix', until => $rev3);
    is_deeply [ map { $_->{revision} } @{ $rec->{msgs} } ], [ $rev, $rev2, $rev3 ], 'one batch per revision';
    is_deeply $rec->{msgs}[0], { revision => $rev, changes => [
        { type => 'PUT', key => 'empty/a', value => 'A', prev_value => undef, revision => $rev } ] },
        'a PUT batch';
    is_deeply [ map { "$_->{type} $_->{key}" } @{ $rec->{msgs}[1]{changes} } ], [ 'PUT empty/b', 'PUT empty/c' ],
        'a transaction is one batch';
    is_deeply $rec->{msgs}[2]{changes}, [ { type => 'DELETE', key => 'empty/a', value => undef,
                                           prev_value => 'A', revision => $rev3 } ], 'a DELETE batch';
    is $m->get('empty/c'), '', 'an empty value is there';
    is $m->mod_revision('empty/b'), $rev2, 'mod_revision';
    is_deeply $m->all, { 'empty/b' => 'B', 'empty/c' => '' }, 'all';
    is scalar @{ $rec->{readies} }, 1, 'ready came once';

    # cancel: nothing delivered afterwards, the view freed
    my @cancel;
    $m->cancel(sub { push @cancel, [@_] });
    is $m->state, 'cancelled', 'cancelled';
    is $m->count, 0, '... the view is freed';
    is $m->revision, undef, '... no revision';
    is $m->ready, 0, '... not ready';
    is_deeply \@cancel, [], 'the cancel callback comes from the loop';
    EV::run(EV::RUN_ONCE());
    is_deeply \@cancel, [ [ {}, undef ] ], '... with ({}, undef)';
    my $n = @{ $rec->{msgs} };
    my $after = ok_call($c, 'put', 'empty/d', 'D')->{header}{revision};
    run_until(sub { 0 }, 0.5);
    is scalar @{ $rec->{msgs} }, $n, 'nothing delivered after cancel';
    my @again;
    $m->cancel(sub { push @again, [@_] });
    is_deeply \@again, [ [ {}, undef ] ], 'a second cancel answers at once';
}

# --- many pages, random writes ------------------------------------------------------------
my $keep;
{
    my $prefix = 'plain/';
    my @ops = map { { put => { key => sprintf('%sk%03d/%02d', $prefix, $_ / 10, $_ % 10), value => "init$_" } } } 0 .. 499;
    ok_call($c, 'txn', [], [ @ops[ $_ * 100 .. $_ * 100 + 99 ] ], []) for 0 .. 4;
    ok_call($c, 'put', 'plain', 'outside');
    ok_call($c, 'put', 'plain0', 'outside');

    my $rec = mirror_rec($c, $prefix, { page_size => 37 });
    # writes racing with the paged load
    my $last = random_writes($c, $prefix, 60);
    ok run_until(sub { @{ $rec->{readies} } || @{ $rec->{errs} } }, 20), 'the mirror gets ready';
    cmp_ok $rec->{readies}[0]{count}, '>=', 400, "loaded $rec->{readies}[0]{count} keys";
    check_view($rec, $c, 'plain, after the load', until => $last);
    for my $round (1 .. 3) {
        $last = random_writes($c, $prefix, 150);
        check_view($rec, $c, "plain, round $round", until => $last);
    }
    $keep = $rec;
}

# --- a namespaced client --------------------------------------------------------------------
{
    my $ns = EV::Etcd->new(endpoints => [ $srv->endpoint ], namespace => '/tenant-7/');
    ok_call($c, 'put', "/tenant-7/app/k$_", "v$_") for 1 .. 20;
    ok_call($c, 'put', '/other/app/k1', 'not in the namespace');
    my $rec = mirror_rec($ns, 'app/', { page_size => 6 });
    ok run_until(sub { @{ $rec->{readies} } || @{ $rec->{errs} } }, 10), 'namespaced: ready';
    is $rec->{readies}[0]{count}, 20, 'namespaced: 20 keys';
    is $rec->{m}->get('app/k7'), 'v7', 'keys are relative to the namespace';
    is $rec->{m}->get('/tenant-7/app/k7'), undef, '... not full keys';
    my $last = random_writes($ns, 'app/', 80, pool => 100);
    ok_call($c, 'put', '/other/app/k2', 'not in the namespace');
    check_view($rec, $c, 'namespaced', until => $last, prefix => '/tenant-7/app/', strip => '/tenant-7/');
    ok !grep({ index($_, '/tenant-7/') == 0 } $rec->{m}->keys), 'no key carries the namespace';
    my $done;
    $rec->{m}->cancel(sub { $done = 1 });
    run_until(\$done, 5);
}

# --- compaction while the watch is cut off: the resync ---------------------------------------
{
    my $prefix = 'cut/';
    ok_call($c, 'put', "${prefix}k$_", "v$_") for 1 .. 40;
    my $proxy = TcpProxy->new(upstream => $srv->client_port);
    my $far = EV::Etcd->new(endpoints => [ $proxy->endpoint, $srv->endpoint ], keepalive_time => 0,
                            watch_probe_interval => 0.5, timeout => 2, max_retries => -1);
    my $rec = mirror_rec($far, $prefix, { page_size => 7, max_retries => -1 });
    ok run_until(sub { @{ $rec->{readies} } || @{ $rec->{errs} } }, 10), 'through a proxy: ready';
    my $last = random_writes($c, $prefix, 40, pool => 60);
    check_view($rec, $c, 'before the cut', until => $last);

    my $before = snapshot_of($rec->{m});
    my $n_before = @{ $rec->{msgs} };
    $proxy->freeze;
    # Kinds of change while cut off: rewritten with the same value, deleted
    # and made again, deleted, new, new and deleted again, changed.
    my ($same) = grep { defined $before->{$_} } map { "${prefix}k$_" } 1 .. 40;
    ok_call($c, 'put', $same, $before->{$same}[0]);
    random_writes($c, $prefix, 60, pool => 60);
    ok_call($c, 'put', "${prefix}new", 'n');
    ok_call($c, 'put', "${prefix}gone", 'g');
    ok_call($c, 'delete', "${prefix}gone");
    my $cut = ok_call($c, 'put', 'elsewhere', 'x')->{header}{revision};
    ok_call($c, 'compact', $cut);
    my $t0 = time;
    ok run_until(sub { grep({ $_->{resync} } @{ $rec->{msgs} }) || @{ $rec->{errs} } }, 30),
        'after the compaction: a resync';
    note sprintf 'resynced %.1fs after the compaction', time - $t0;
    my @new = @{ $rec->{msgs} }[ $n_before .. $#{ $rec->{msgs} } ];
    is scalar @new, 1, 'nothing but the resync batch since the cut';
    my $r = $new[0];
    is $r->{revision}, $cut, '... at the revision of the read after the compaction';
    is $rec->{m}->revision, $cut, '... which the view now reflects';

    my $now = ok_call($c, 'get', $prefix, { prefix => 1, revision => $cut });
    my %after = map { $_->{key} => [ $_->{value}, $_->{mod_revision} ] } @{ $now->{kvs} };
    my @want;
    for my $k (sort(keys %{ { %$before, %after } })) {
        my ($b, $a) = ($before->{$k}, $after{$k});
        if (!$a) {
            push @want, { type => 'DELETE', key => $k, value => undef, prev_value => $b->[0], revision => $cut };
        } elsif (!$b || $b->[1] != $a->[1]) {
            push @want, { type => 'PUT', key => $k, value => $a->[0], prev_value => $b ? $b->[0] : undef,
                          revision => $a->[1] };
        }
    }
    ok scalar(grep { $_->{key} eq $same } @want), 'a key rewritten with the same value counts as changed';
    ok !grep({ $_->{key} eq "${prefix}gone" } @want), 'a key made and deleted while cut off is not in it';
    is_deeply $r->{changes}, \@want, sprintf 'the resync batch is exactly the difference (%d changes)', scalar @want;
    is_deeply [ sort keys %$r ], [qw(changes resync revision)], '... with changes, resync and revision';
    check_view($rec, $c, 'after the resync');
    $last = random_writes($c, $prefix, 60, pool => 60);
    check_view($rec, $c, 'after the resync and more writes', until => $last);
    $proxy->thaw;
    $proxy->stop;
    my $done;
    $rec->{m}->cancel(sub { $done = 1 });
    run_until(\$done, 5);
}

# --- the watch gone after cancel: nothing holds the loop -------------------------------------
{
    my $done;
    $keep->{m}->cancel(sub { $done = 1 });
    run_until(\$done, 5);
    my $guard_fired = 0;
    local $SIG{ALRM} = sub { $guard_fired = 1; EV::break(EV::BREAK_ALL()) };
    alarm 10;
    EV::run;
    alarm 0;
    is $guard_fired, 0, 'with every mirror cancelled EV::run returns by itself';
    my $watchers;
    for (1 .. 50) {
        ($watchers) = $srv->metrics =~ /^etcd_debugging_mvcc_watcher_total (\S+)$/m;
        last if defined $watchers && $watchers == 0;
        select undef, undef, undef, 0.1;
    }
    is $watchers, 0, 'the server has no watcher left';
}

note sprintf 'took %.1f s', time - $T0;
done_testing;
