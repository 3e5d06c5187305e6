#!/usr/bin/env perl
# stm: transactions that run again after a conflict (lib/EV/Etcd/STM.pm),
# against one etcd. Conflicts are made deterministic with the module's
# test hook ($EV::Etcd::STM::_BEFORE_COMMIT), which holds a commit back
# while a second client changes a key; reads are interleaved with writes
# by calls made from inside the function (a test may do what a user's
# function must not). The last part: four processes add 1 to one counter
# 500 times each.
use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call);

need_etcd();
use EV;
use EV::Etcd;
use EV::Etcd::STM;

my $srv = start_etcd(name => 'stm');
my $ep  = $srv->endpoint;
my $c   = EV::Etcd->new(endpoints => [$ep], timeout => 10);
my $other = EV::Etcd->new(endpoints => [$ep], timeout => 10);

sub value_of { my $kv = ok_call($c, 'get', $_[0])->{kvs}[0]; $kv ? $kv->{value} : undef }

# ---- bad arguments croak at the caller's line --------------------------------
{
    my $fn = sub { };
    my $cb = sub { };
    my @cases = (
        [ sub { $c->stm($fn) },                         qr/^callback must be a code reference \(stm\)/ ],
        [ sub { $c->stm('x', $cb) },                    qr/^stm: the function must be a code reference, got 'x'/ ],
        [ sub { $c->stm($fn, [], $cb) },                qr/^stm: options must be a hash reference/ ],
        [ sub { $c->stm($fn, { tries => 1 }, $cb) },    qr/^stm: unknown option 'tries'/ ],
        [ sub { $c->stm($fn, { max_attempts => 0 }, $cb) }, qr/^stm: max_attempts must be a positive integer, got '0'/ ],
        [ sub { $c->stm($fn, { backoff => -1 }, $cb) }, qr/^stm: backoff must be a finite number of seconds/ ],
        [ sub { $c->stm($fn, { prefetch => 'k' }, $cb) }, qr/^stm: prefetch must be an array reference/ ],
        [ sub { $c->stm($fn, { prefetch => [undef] }, $cb) }, qr/^stm: a prefetch key must be defined/ ],
        [ sub { $c->stm($fn, {}, $cb, 1) },             qr/^callback must be a code reference \(stm\)/ ],
        [ sub { $c->stm($fn, {}, {}, $cb) },            qr/^stm: takes a function, an optional options hash and a callback/ ],
        [ sub { EV::Etcd::stm('x', $fn, $cb) },         qr/^stm: called on something that is not a live EV::Etcd client/ ],
    );
    for my $case (@cases) {
        my ($code, $re) = @$case;
        my $line = __LINE__ + 1;
        eval { $code->(); 1 } and do { fail("no croak for $re"); next };
        like $@, $re, "croaks: $re";
        like $@, qr/ at \Q${\__FILE__}\E line \d+\.$/, '... at a line of this file';
    }
    my $closed = EV::Etcd->new(endpoints => [$ep]);
    $closed->close;
    ok !eval { $closed->stm($fn, $cb); 1 }, 'a closed client croaks';
    like $@, qr/^EV::Etcd: this client was closed at \Q${\__FILE__}\E line \d+\.$/, '... at the caller';
}

# ---- a counter; the response -------------------------------------------------
ok_call($c, 'put', '/stm/n', 41);
{
    my ($r, $e) = call($c, 'stm', sub {
        my ($tx) = @_;
        my $n = $tx->get('/stm/n');
        $tx->put('/stm/n', $n + 1);
        return "was $n";
    });
    ok !$e, 'increment succeeds' or diag explain $e;
    is $r->{attempts}, 1, 'one attempt';
    is $r->{conflicts}, 0, 'no conflict';
    is $r->{result}, 'was 41', "the function's return value";
    is $r->{revision}, $r->{header}{revision}, 'revision is the commit header revision';
    is scalar @{ $r->{responses} }, 1, 'one response per write';
    is value_of('/stm/n'), 42, 'committed';
    my $kv = ok_call($c, 'get', '/stm/n')->{kvs}[0];
    is $kv->{mod_revision}, $r->{revision}, 'the key was written at that revision';
}

# ---- read-your-writes, deletes -----------------------------------------------
ok_call($c, 'put', '/stm/ryw/a', 'old');
{
    my @seen;
    my ($r, $e) = call($c, 'stm', sub {
        my ($tx) = @_;
        @seen = ();
        push @seen, $tx->get('/stm/ryw/a');
        $tx->put('/stm/ryw/a', 'new');
        push @seen, $tx->get('/stm/ryw/a');
        $tx->put('/stm/ryw/b', 'b1');
        $tx->put('/stm/ryw/b', 'b2');    # the last write to a key wins
        push @seen, $tx->get('/stm/ryw/b');
        $tx->delete('/stm/ryw/a');
        push @seen, $tx->get('/stm/ryw/a') // 'undef';
        $tx->put('/stm/ryw/a', 'again');
        return;
    });
    ok !$e, 'read-your-writes call succeeds' or diag explain $e;
    is_deeply \@seen, [qw(old new b2 undef)], 'get sees the buffered writes and deletes';
    is value_of('/stm/ryw/a'), 'again', 'final state of a';
    is value_of('/stm/ryw/b'), 'b2', 'one put per key';
    ok_call($c, 'put', '/stm/ryw/c', 'gone soon');
    ($r, $e) = call($c, 'stm', sub { my ($tx) = @_; $tx->get('/stm/ryw/c'); $tx->delete('/stm/ryw/c') });
    ok !$e && !defined value_of('/stm/ryw/c'), 'a delete is committed';
}

# ---- a key named by another key's value ----------------------------------------
ok_call($c, 'put', '/stm/ptr', 'x');
ok_call($c, 'put', '/stm/data/x', 10);
{
    my @runs;
    my $fn = sub {
        my ($tx) = @_;
        push @runs, 'start';
        my $name = $tx->get('/stm/ptr');
        push @runs, "ptr=$name";
        my $v = $tx->get("/stm/data/$name");
        push @runs, "v=$v";
        $tx->put("/stm/data/$name", $v * 2);
        return $v;
    };
    my ($r, $e) = call($c, 'stm', $fn);
    ok !$e, 'dependent read succeeds' or diag explain $e;
    is_deeply \@runs, ['start', 'start', 'ptr=x', 'start', 'ptr=x', 'v=10'],
        'the function ran three times: once per key it had not read';
    is $r->{attempts}, 1, '... within one attempt';
    is value_of('/stm/data/x'), 20, 'the dependent key was written';

    @runs = ();
    ($r, $e) = call($c, 'stm', $fn, { prefetch => ['/stm/ptr'] });
    ok !$e, 'with prefetch';
    is_deeply \@runs, ['start', 'ptr=x', 'start', 'ptr=x', 'v=20'], 'a prefetched key costs no re-run';
}

# ---- every read of an attempt sees one revision -------------------------------
ok_call($c, 'put', '/stm/snap/a', 'a1');
ok_call($c, 'put', '/stm/snap/b', 'b1');
{
    my ($b_seen, $runs, $rev) = (undef, 0, undef);
    my ($r, $e) = call($c, 'stm', sub {
        my ($tx) = @_;
        my $a = $tx->get('/stm/snap/a');
        if (!$runs++) {
            # between the read of a and the read of b, b changes
            ok_call($other, 'put', '/stm/snap/b', 'b2');
        }
        $rev = $tx->revision;
        $b_seen = $tx->get('/stm/snap/b');
        return;
    });
    ok !$e, 'read-only call succeeds' or diag explain $e;
    is $b_seen, 'b1', 'the later read is at the revision of the first one';
    is $r->{revision}, $rev, 'a read-only call reports the revision it read at';
    is_deeply $r->{responses}, [], 'and commits nothing';
    is $r->{attempts}, 1, 'read-only: one attempt';
}

# ---- a compacted snapshot restarts the attempt ---------------------------------
{
    my $runs = 0;
    my ($r, $e) = call($c, 'stm', sub {
        my ($tx) = @_;
        my $a = $tx->get('/stm/snap/a');
        if (!$runs++) {
            my $p = ok_call($other, 'put', '/stm/snap/a', 'a2');
            ok_call($other, 'compact', $p->{header}{revision});
        }
        my $b = $tx->get('/stm/snap/b');
        $tx->put('/stm/snap/sum', "$a$b");
        return;
    });
    ok !$e, 'compaction mid-attempt: succeeds' or diag explain $e;
    is $r->{attempts}, 2, '... in a second attempt';
    is $r->{conflicts}, 0, '... without a conflict';
    is value_of('/stm/snap/sum'), 'a2b2', '... on the new snapshot';
}

# ---- an absent key: a concurrent create is a conflict ---------------------------
ok_call($c, 'delete', '/stm/absent');
{
    my @seen;
    local $EV::Etcd::STM::_BEFORE_COMMIT = sub {
        my ($attempt, $go) = @_;
        return $go->() if $attempt > 1;
        $other->put('/stm/absent', 'created', sub { $go->() });
    };
    my ($r, $e) = call($c, 'stm', sub {
        my ($tx) = @_;
        my $v = $tx->get('/stm/absent');
        push @seen, $v // 'undef';
        $tx->put('/stm/absent-seen', $v // 'nothing');
        return;
    });
    ok !$e, 'absent key: succeeds in the end' or diag explain $e;
    is $r->{attempts}, 2, 'two attempts';
    is $r->{conflicts}, 1, 'one conflict';
    is_deeply \@seen, ['undef', 'created'], 'the retry saw the created key';
    is value_of('/stm/absent-seen'), 'created', 'the commit is based on it';
}

# ---- giving up ------------------------------------------------------------------
ok_call($c, 'put', '/stm/hot', 0);
{
    my $runs = 0;
    local $EV::Etcd::STM::_BEFORE_COMMIT = sub {
        my ($attempt, $go) = @_;
        $other->put('/stm/hot', "external $attempt", sub { $go->() });
    };
    my $t0 = time;
    my ($r, $e) = call($c, 'stm', sub {
        my ($tx) = @_;
        $runs++;
        $tx->put('/stm/hot-copy', $tx->get('/stm/hot'));
    }, { max_attempts => 3, backoff => 0.05 });
    ok !$r, 'no response after giving up';
    is $e->{status}, 'ABORTED', 'status ABORTED';
    is $e->{code}, 10, 'code 10';
    is $e->{source}, 'stm', 'source stm';
    is $e->{message}, 'stm: gave up after 3 conflicts in 3 attempts', 'message';
    is $e->{attempts}, 3, 'attempts';
    is $e->{conflicts}, 3, 'conflicts';
    is $e->{outcome}, 'not_committed', 'outcome';
    is $e->{retryable}, 1, 'retryable: nothing was committed';
    is $runs, 4, 'the function ran twice in the first attempt (once to learn what it reads), then once per attempt';
    ok !defined value_of('/stm/hot-copy'), 'nothing was committed';
    cmp_ok time - $t0, '<', 5, 'backoff stays short';
}

# ---- a function that dies; one that swallows the retry exception ---------------
{
    my ($r, $e) = call($c, 'stm', sub { my ($tx) = @_; $tx->get('/stm/n'); die "no funds\n" });
    ok !$r, 'a dying function: no response';
    is $e->{status}, 'INTERNAL', 'status INTERNAL';
    is $e->{message}, 'stm: the function died: no funds', 'the message has the exception';
    is $e->{exception}, "no funds\n", 'the exception as thrown';
    is $e->{outcome}, 'not_committed', 'nothing committed';

    my $obj = bless {}, 'My::Error';
    ($r, $e) = call($c, 'stm', sub { die $obj });
    is $e->{exception}, $obj, 'an exception object is handed back as it is';

    ($r, $e) = call($c, 'stm', sub { $_[0]->put('/stm/x', []) });
    like $e->{message}, qr/^stm: the function died: stm: put: value must be a string, not ARRAY reference at /,
        'a bad put in the function ends the call with its croak';

    my $kept;
    ($r, $e) = call($c, 'stm', sub { $kept = $_[0]; 1 });
    ok !$e, 'an empty function succeeds';
    ok !defined $r->{revision}, '... at no revision (it read nothing)';
    ok !eval { $kept->get('/stm/n'); 1 }, 'a transaction used after its function returned croaks';
    like $@, qr/^stm: get: the transaction is over/, '... saying so';

    my $is_retry;
    ($r, $e) = call($c, 'stm', sub {
        my ($tx) = @_;
        my $v = eval { $tx->get('/stm/n') };
        $is_retry = $tx->is_retry($@) if !defined $v;
        $tx->put('/stm/n-copy', $v // 'missing');
    });
    ok !$e, 'a function that swallows the retry exception';
    ok $is_retry, 'is_retry recognises it';
    is value_of('/stm/n-copy'), 42, 'its writes before the read is made are not committed';
    ok(EV::Etcd::STM::Tx->is_retry(bless {}, 'EV::Etcd::STM::NeedRead'), 'is_retry as a class method');
    ok !EV::Etcd::STM::Tx->is_retry("x\n"), 'is_retry: a string is not one';
}

# ---- a namespaced client ----------------------------------------------------------
{
    my $ns = EV::Etcd->new(endpoints => [$ep], namespace => '/stm-ns/');
    ok_call($c, 'put', '/stm-ns/count', 7);
    ok_call($c, 'put', '/stm-ns/ptr', 'count');
    my ($r, $e) = call($ns, 'stm', sub {
        my ($tx) = @_;
        my $k = $tx->get('ptr');
        $tx->put($k, $tx->get($k) + 1);
        $tx->put('by-stm', 'yes');
    });
    ok !$e, 'namespaced: succeeds' or diag explain $e;
    is value_of('/stm-ns/count'), 8, 'namespaced: the key inside the namespace changed';
    is value_of('/stm-ns/by-stm'), 'yes', 'namespaced: written inside';
    ok !defined value_of('/count') && !defined value_of('by-stm'), 'namespaced: nothing outside';
}

# ---- four processes, one counter ---------------------------------------------------
{
    my ($procs, $each) = (4, 500);
    ok_call($c, 'delete', '/stm/counter');
    my @kids;
    for my $i (1 .. $procs) {
        pipe(my $rd, my $wr) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $rd;
            EV::default_loop->loop_fork;
            my $mine = EV::Etcd->new(endpoints => [$ep], timeout => 10);
            my ($done, $attempts, $conflicts, $errors, $most) = (0, 0, 0, 0, 0);
            my $next;
            $next = sub {
                return if $done + $errors >= $each;
                # A hot key: an unlucky call can lose many times in a row.
                $mine->stm(sub {
                    my ($tx) = @_;
                    $tx->put('/stm/counter', ($tx->get('/stm/counter') // 0) + 1);
                }, { max_attempts => 100 }, sub {
                    my ($r, $e) = @_;
                    if ($e) { $errors++; print {$wr} "error $e->{message}\n" }
                    else {
                        $done++; $attempts += $r->{attempts}; $conflicts += $r->{conflicts};
                        $most = $r->{attempts} if $r->{attempts} > $most;
                    }
                    $next->();
                });
            };
            $next->();
            run_until(sub { $done + $errors >= $each }, 120);
            print {$wr} "done $done $attempts $conflicts $errors $most\n";
            close $wr;
            POSIX::_exit(0);
        }
        close $wr;
        push @kids, [ $pid, $rd ];
    }
    my ($done, $attempts, $conflicts, $errors, $most) = (0, 0, 0, 0, 0);
    for my $k (@kids) {
        my ($pid, $rd) = @$k;
        my @lines = <$rd>;
        waitpid $pid, 0;
        is $?, 0, "counter child $pid exits 0";
        for (@lines) {
            if (/^done (\d+) (\d+) (\d+) (\d+) (\d+)$/) {
                $done += $1; $attempts += $2; $conflicts += $3; $errors += $4;
                $most = $5 if $5 > $most;
            } else {
                diag "child $pid: $_";
            }
        }
    }
    is $done, $procs * $each, 'every increment reported committed';
    is $errors, 0, 'no errors';
    is value_of('/stm/counter'), $procs * $each, "the counter is exactly @{[ $procs * $each ]}";
    diag "counter: $done increments, $attempts attempts, $conflicts conflicts, at most $most attempts for one";
}

# ---- errors from the server ---------------------------------------------------------
# Last: they stop it.
{
    my $commit_err;
    local $EV::Etcd::STM::_BEFORE_COMMIT = sub {
        my ($attempt, $go) = @_;
        $srv->stop;
        $go->();
    };
    my ($r, $e) = call($c, 'stm', sub { $_[0]->put('/stm/late', $_[0]->get('/stm/n')) });
    ok !$r, 'a failed commit: no response';
    is $e->{outcome}, 'unknown', 'outcome unknown';
    is $e->{status}, 'UNAVAILABLE', 'with the transport status';
    is $e->{retryable}, 0, 'and not retryable';
    is $e->{attempts}, 1, 'after one attempt';
    is $e->{cause}{source}, 'txn', 'the txn error is under cause';
    like $e->{message}, qr/^stm: the commit failed and may or may not have been applied: /, 'message';

    ($r, $e) = call($c, 'stm', sub { $_[0]->get('/stm/n') }, { max_attempts => 2, backoff => 0.01 });
    is $e->{status}, 'UNAVAILABLE', 'a read that keeps failing: UNAVAILABLE';
    is $e->{attempts}, 2, '... after retrying it up to max_attempts';
    is $e->{outcome}, 'not_committed', '... nothing committed';
    like $e->{message}, qr/^stm: reading failed: /, '... message';
}

done_testing;
