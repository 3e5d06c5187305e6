#!/usr/bin/env perl
# Memory stability of EV::Etcd under a sustained mix of operations,
# against a throwaway etcd that the script starts and stops itself.
#
#   perl -Mblib -It/lib bench/leak.pl [--ops N] [--batch B] [--window M]
#        [--warmup W] [--rss-slack KB] [--sv-slack N] [--stall SECS]
#
#   # once under valgrind (fewer operations; about 15 times slower here)
#   PERL_DESTRUCT_LEVEL=2 valgrind --leak-check=full \
#       --show-leak-kinds=definite perl -Iblib/lib -Iblib/arch -It/lib \
#       bench/leak.pl --ops 20000 --batch 2000 --rss-slack 0
#
# Needs Devel::Leak (Debian: libdevel-leak-perl) to count Perl's SVs;
# scripts/install-deps.sh installs it. Not part of the test suite.
#
# Under valgrind, PERL_DESTRUCT_LEVEL=2 makes perl free everything at exit
# (without it, perl leaves its SVs to the OS and valgrind reports some of
# them as lost). What is then left "still reachable" is Devel::Leak's own
# pool of table entries (one per SV counted), ld.so's and EV's; its size
# does not depend on the number of operations.
#
# What it does: N client calls (default 200,000) made of a fixed mix of
# small scenarios, at most M scenarios (default 100) in flight at a time.
# Every 20 scenarios make exactly 50 calls:
#
#   kv           put, get (value checked), delete (deleted == 1)
#   txn          txn "key absent?" -> success branch puts; the same txn
#                again -> failure branch reads the value back; txn
#                "value == v?" -> success branch deletes it
#   watch        watch, 'created' arrives, cancel
#   watch-event  watch, 'created' arrives, put the key, the PUT event
#                arrives (value checked), cancel
#   lease        lease_grant, put attached to the lease, lease_keepalive,
#                first refresh arrives, cancel the keepalive, lease_revoke,
#                get (the key went with the lease)
#   errors       lease_revoke of an unknown lease (NOT_FOUND), put with an
#                unknown lease (NOT_FOUND), put ignore_value of a missing
#                key (INVALID_ARGUMENT), compact to a future revision
#                (OUT_OF_RANGE), txn putting one key twice
#                (INVALID_ARGUMENT), lease_keepalive of an unknown lease
#                (stream error NOT_FOUND) then cancel, watch from a
#                compacted revision (stream error OUT_OF_RANGE) then cancel
#   croak        one call with a bad argument, caught with eval (bad key,
#                bad lease, negative lease id, compare without a value,
#                timeout on a watch, in turn); its callback must never run
#
# Every unary callback is wrapped so that a second call dies, and the
# total of wrapped callbacks made must equal the total run; stream
# callbacks must see exactly the messages listed above. Each kind of call,
# error and croak is counted and printed at the end.
#
# After every batch of B calls (default 10,000) it compacts the store and
# records the process RSS (VmRSS in /proc/self/status) and the number of
# live Perl SVs (Devel::Leak::NoteSV, which walks the SV arenas). Verdict:
# taking the end of batch W (default 3) as the reference, neither may rise
# above it by more than the slack in any later batch:
#
#   --sv-slack 100 SVs. The program does the same thing in every batch, so
#     the count comes back to the same value (it is exactly flat after
#     batch 1 on etcd 3.4 and 3.5); a leak of one SV per 1,700 calls
#     already exceeds 100 over the 17 batches after warm-up (a reference
#     cycle made once every 100 scenarios fails with +680), and a leaked
#     response hash costs dozens.
#   --rss-slack 4096 kB. After warm-up RSS still creeps up by 150-300 kB
#     in steps of 4-60 kB (heap high-water marks; it slows down: +308 kB over
#     a million calls), not by a per-call amount. 4 MB over the 170,000
#     calls after warm-up is 25 bytes a call, less than a single leaked
#     malloc block per call (32 bytes and up), let alone a leaked request,
#     response, callback box or stream entry; a leak of 400 bytes per kv
#     scenario (one in five) fails with +5.3 MB. 0 turns the test off
#     (RSS under valgrind means nothing).
#
# Exit status: 0 pass, 1 growth beyond the slack, a wrong callback count or
# any unexpected result, 2 bad usage or a missing module.
use strict;
use warnings;
BEGIN {
    eval { require Devel::Leak; 1 } or do {
        print STDERR "bench/leak.pl needs Devel::Leak to count Perl's SVs: "
            . "apt-get install libdevel-leak-perl (Debian), or cpan Devel::Leak\n";
        exit 2;
    };
}
use EV;
use EV::Etcd;
use EtcdTest;
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time);

my %opt = (ops => 200_000, batch => 10_000, window => 100, warmup => 3,
           'rss-slack' => 4096, 'sv-slack' => 100, stall => 300);
GetOptions(\%opt, 'ops=i', 'batch=i', 'window=i', 'warmup=i', 'rss-slack=i', 'sv-slack=i',
           'stall=i')
    or exit 2;
my $MIX_CALLS = 50;    # calls made by one round of the 20 scenarios (@MIX below)
if ($opt{batch} <= 0 || $opt{batch} % $MIX_CALLS || $opt{window} <= 0 || $opt{warmup} < 0) {
    print STDERR "--batch must be a positive multiple of $MIX_CALLS, "
        . "--window positive, --warmup 0 or more\n";
    exit 2;
}

$EV::DIED = sub { print STDERR "FAIL: in a callback: $@"; exit 1 };
$| = 1;

sub rss_kb {
    open my $fh, '<', '/proc/self/status' or return -1;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)\s+kB/ }
    return -1;
}

# Live SVs, counted by walking the arenas. CheckSV frees the table NoteSV
# built (and would print any SV made in between: there are none).
sub sv_count {
    my $h;
    my $n = Devel::Leak::NoteSV($h);
    Devel::Leak::CheckSV($h);
    return $n;
}

# ---- bookkeeping -------------------------------------------------------------

my (%CALLS, %ERRORS, %CROAKS, %SCEN);
my ($cb_made, $cb_run, $croak_cb_ran) = (0, 0, 0);

my $srv  = start_etcd();
my $etcd = EV::Etcd->new(endpoints => [ $srv->endpoint ]);

# Every client call goes through here, so that each one is counted.
sub call {
    my $method = shift;
    $CALLS{$method}++;
    return $etcd->$method(@_);
}

sub cancel {
    my ($handle, $cb) = @_;
    $CALLS{cancel}++;
    $handle->cancel($cb);
}

# A unary callback that must run exactly once.
sub once {
    my ($what, $code) = @_;
    $cb_made++;
    my $ran = 0;
    return sub {
        die "$what: callback called twice\n" if $ran++;
        $cb_run++;
        $code->(@_);
    };
}

sub ok {
    my ($what, $err) = @_;
    die "$what failed: $err->{status} $err->{message}\n" if $err;
}

sub want_error {
    my ($what, $status, $resp, $err) = @_;
    die "$what: expected $status, got a response\n" unless $err;
    die "$what: expected $status, got $err->{status} ($err->{message})\n"
        unless $err->{status} eq $status;
    die "$what: error hash without a message\n" unless length($err->{message} // '');
    $ERRORS{"$what $status"}++;
}

# The result of a cancel: ({}, undef).
sub cancelled {
    my ($what, $resp, $err) = @_;
    ok("$what cancel", $err);
    die "$what cancel: answer is not an empty hash\n" unless ref $resp eq 'HASH' && !%$resp;
}

# Cancels the stream in $$handle, checks the answer, lets go of the handle
# (its callback holds it) and runs $then.
sub cancel_and {
    my ($handle, $what, $then) = @_;
    cancel($$handle, once(cancel => sub {
        cancelled($what => @_);
        undef $$handle;
        $then->();
    }));
}

my $NO_LEASE = 1_000_000_000;    # + n: ids etcd never hands out (its are ~2**48 and up)

# ---- the scenarios -------------------------------------------------------------
# Each takes its sequence number and a sub to call once, when it is over.

my %scenario;

$scenario{kv} = sub {
    my ($n, $fin) = @_;
    my $key   = "bench/leak/kv/$n";
    my $value = "value $n " . ('.' x ($n % 200));
    call(put => $key, $value, once(put => sub {
        ok(put => $_[1]);
        call(get => $key, once(get => sub {
            my ($resp, $err) = @_;
            ok(get => $err);
            die "get $key: wrong answer\n"
                unless $resp->{count} == 1 && $resp->{kvs}[0]{value} eq $value;
            call(delete => $key, once(delete => sub {
                my ($resp, $err) = @_;
                ok(delete => $err);
                die "delete $key: deleted $resp->{deleted}\n" unless $resp->{deleted} == 1;
                $fin->();
            }));
        }));
    }));
};

$scenario{txn} = sub {
    my ($n, $fin) = @_;
    my $key    = "bench/leak/txn/$n";
    my $value  = "txn $n";
    my $absent = [ { key => $key, target => 'version', version => 0 } ];
    my @branches = ([ { put => { key => $key, value => $value } } ],
                    [ { range => { key => $key } } ]);
    call(txn => $absent, @branches, once(txn => sub {
        my ($resp, $err) = @_;
        ok(txn => $err);
        die "txn $key: success branch did not run\n" unless $resp->{succeeded};
        call(txn => $absent, @branches, once(txn => sub {
            my ($resp, $err) = @_;
            ok(txn => $err);
            die "txn $key: failure branch did not run\n" if $resp->{succeeded};
            my $kv = $resp->{responses}[0]{response_range}{kvs}[0];
            die "txn $key: failure branch read the wrong value\n"
                unless $kv && $kv->{value} eq $value;
            call(txn =>
                compare  => [ { key => $key, target => 'value', value => $value } ],
                success  => [ { delete => { key => $key } } ],
                callback => once(txn => sub {
                    my ($resp, $err) = @_;
                    ok(txn => $err);
                    die "txn $key: delete branch did not run\n"
                        unless $resp->{succeeded}
                        && $resp->{responses}[0]{response_delete_range}{deleted} == 1;
                    $fin->();
                }));
        }));
    }));
};

$scenario{watch} = sub {
    my ($n, $fin) = @_;
    my ($w, $msgs) = (undef, 0);
    $w = call(watch => "bench/leak/watch/$n", sub {
        my ($msg, $err) = @_;
        ok(watch => $err);
        die "watch: unexpected message\n" if $msgs++ || !$msg->{created};
        cancel_and(\$w, watch => $fin);
    });
};

$scenario{'watch-event'} = sub {
    my ($n, $fin) = @_;
    my $key   = "bench/leak/wev/$n";
    my $value = "event $n";
    my ($w, $msgs, $left) = (undef, 0, 2);    # left: the put and the cancel
    $w = call(watch => $key, ($n % 2 ? { prev_kv => 1 } : ()), sub {
        my ($msg, $err) = @_;
        ok(watch => $err);
        $msgs++;
        if ($msgs == 1) {
            die "watch: first message is not 'created'\n" unless $msg->{created};
            call(put => $key, $value, once(put => sub {
                ok(put => $_[1]);
                $fin->() unless --$left;
            }));
        } elsif ($msgs == 2) {
            my $ev = $msg->{events};
            die "watch: expected one PUT of '$value'\n"
                unless @$ev == 1 && $ev->[0]{type} eq 'PUT' && $ev->[0]{kv}{value} eq $value;
            cancel_and(\$w, watch => sub { $fin->() unless --$left });
        } else {
            die "watch: message $msgs after cancel\n";
        }
    });
};

$scenario{lease} = sub {
    my ($n, $fin) = @_;
    my $key = "bench/leak/lease/$n";
    call(lease_grant => 30, once(lease_grant => sub {
        my ($resp, $err) = @_;
        ok(lease_grant => $err);
        my $id = $resp->{id};
        die "lease_grant: no id\n" unless $id;
        call(put => $key, "leased $n", { lease => $id }, once(put => sub {
            ok(put => $_[1]);
            my ($ka, $ticks) = (undef, 0);
            $ka = call(lease_keepalive => $id, sub {
                my ($msg, $err) = @_;
                ok(keepalive => $err);
                die "keepalive: more than one refresh before cancel\n" if $ticks++;
                die "keepalive: refresh of $msg->{id} ttl $msg->{ttl}, expected $id\n"
                    unless $msg->{id} == $id && $msg->{ttl} > 0;
                cancel_and(\$ka, keepalive => sub {
                    call(lease_revoke => $id, once(lease_revoke => sub {
                        ok(lease_revoke => $_[1]);
                        call(get => $key, once(get => sub {
                            my ($resp, $err) = @_;
                            ok(get => $err);
                            die "get $key: still there after lease_revoke\n" if $resp->{count};
                            $fin->();
                        }));
                    }));
                });
            });
        }));
    }));
};

# Server-side errors.
$scenario{'err-revoke'} = sub {
    my ($n, $fin) = @_;
    call(lease_revoke => $NO_LEASE + $n, once(lease_revoke => sub {
        want_error(lease_revoke => 'NOT_FOUND', @_);
        $fin->();
    }));
};

$scenario{'err-put-lease'} = sub {
    my ($n, $fin) = @_;
    call(put => "bench/leak/badlease/$n", 'x', { lease => $NO_LEASE + $n }, once(put => sub {
        want_error(put => 'NOT_FOUND', @_);
        $fin->();
    }));
};

$scenario{'err-ignore-value'} = sub {
    my ($n, $fin) = @_;
    call(put => "bench/leak/missing/$n", undef, { ignore_value => 1 }, once(put => sub {
        want_error(put => 'INVALID_ARGUMENT', @_);
        $fin->();
    }));
};

$scenario{'err-compact'} = sub {
    my ($n, $fin) = @_;
    call(compact => 2**62 + $n, once(compact => sub {
        want_error(compact => 'OUT_OF_RANGE', @_);
        $fin->();
    }));
};

$scenario{'err-txn-dup'} = sub {
    my ($n, $fin) = @_;
    my $key = "bench/leak/dup/$n";
    call(txn => [], [ { put => { key => $key, value => 1 } },
                      { put => { key => $key, value => 2 } } ], [],
        once(txn => sub {
            want_error(txn => 'INVALID_ARGUMENT', @_);
            $fin->();
        }));
};

# Stream errors, each followed by a (harmless) cancel of the ended stream.
$scenario{'err-keepalive'} = sub {
    my ($n, $fin) = @_;
    my ($ka, $msgs) = (undef, 0);
    $ka = call(lease_keepalive => $NO_LEASE + $n, sub {
        die "keepalive of an unknown lease: message after its error\n" if $msgs++;
        want_error(keepalive => 'NOT_FOUND', @_);
        cancel_and(\$ka, keepalive => $fin);
    });
};

$scenario{'err-watch-compacted'} = sub {
    my ($n, $fin) = @_;
    my ($w, $msgs) = (undef, 0);
    $w = call(watch => "bench/leak/compacted/$n", { start_revision => 1 }, sub {
        my ($msg, $err) = @_;
        $msgs++;
        # etcd may confirm the watch before it finds the history gone.
        if (!$err && $msgs == 1 && $msg->{created} && !@{ $msg->{events} }) {
            return;
        }
        die "watch from revision 1: message after its error\n" if $msgs > 2;
        want_error(watch => 'OUT_OF_RANGE', $msg, $err);
        cancel_and(\$w, watch => $fin);
    });
};

# Croaked calls: nothing is sent, the callback is released and never runs.
my $never = sub { $croak_cb_ran++ };
my @croaks = (
    [ 'get: key must be defined',
      sub { call(get => undef, sub { $never->() }) } ],
    [ 'put: lease must be an integer',
      sub { call(put => 'bench/leak/x', 'v', { lease => 'abc' }, sub { $never->() }) } ],
    [ 'lease_revoke: lease id must not be negative',
      sub { call(lease_revoke => -1 - $_[0], sub { $never->() }) } ],
    [ "txn: compare[0] on target 'value' needs a 'value' field",
      sub { call(txn => [ { key => 'bench/leak/x', target => 'value' } ], [], [], sub { $never->() }) } ],
    [ 'watch: timeout does not apply here',
      sub { call(watch => 'bench/leak/x', { timeout => 1 }, sub { $never->() }) } ],
);
$scenario{croak} = sub {
    my ($n, $fin) = @_;
    my ($want, $code) = @{ $croaks[ int($n / 20) % @croaks ] };
    my $ok = eval { $code->($n); 1 };
    die "croak: call expected to croak with '$want' did not\n" if $ok;
    die "croak: expected '$want', got: $@" unless index($@, $want) >= 0;
    (my $what = $want) =~ s/:.*//;
    $CROAKS{$what}++;
    $fin->();
};

# 20 scenarios, $MIX_CALLS (50) calls.
my @MIX = qw(kv txn watch lease kv err-revoke watch-event err-put-lease
             kv txn watch err-ignore-value lease watch-event kv err-compact
             err-txn-dup err-keepalive err-watch-compacted croak);

my $per_batch = $opt{batch} / $MIX_CALLS * @MIX;    # scenarios per batch
my $batches   = int(($opt{ops} + $opt{batch} - 1) / $opt{batch});
$batches = 1 if $batches < 1;

# ---- running -------------------------------------------------------------------

# One batch: scenarios $first .. $first+$n-1, at most $w in flight.
# EV::run returns once the client has nothing left in flight.
sub run_batch {
    my ($first, $n, $w) = @_;
    my ($issued, $done, $filling) = (0, 0, 0);
    my $fill;
    my $fin = sub { $done++; $fill->() unless $filling };
    $fill = sub {
        $filling = 1;
        while ($issued < $n && $issued - $done < $w) {
            my $s    = $first + $issued++;
            my $kind = $MIX[ $s % @MIX ];
            $SCEN{$kind}++;
            $scenario{$kind}->($s, $fin);
        }
        $filling = 0;
    };
    # A stream that never delivers would keep EV::run going for ever.
    my $stall = EV::timer($opt{stall}, 0, sub {
        die "batch stalled: $done of $n scenarios finished after $opt{stall} s\n";
    });
    $stall->keepalive(0);    # does not hold the loop by itself
    $fill->();
    EV::run;
    undef $stall;
    undef $fill;    # break the closure's self-reference
    die "batch incomplete: $done of $n scenarios finished\n" unless $done == $n;
}

sub compact {
    $etcd->get('bench/', { prefix => 1, count_only => 1 }, sub {
        ok(get => $_[1]);
        $etcd->compact($_[0]{header}{revision}, sub { ok(compact => $_[1]) });
    });
    EV::run;
}

# Give the store some history and compact it, so that a watch from
# revision 1 finds it gone from the first batch on.
$etcd->put('bench/leak/start', $_, sub { ok(put => $_[1]) }) for 1 .. 2;
EV::run;
compact();

printf "etcd %s at %s; %d calls (%d batches of %d, %d scenarios each), "
     . "at most %d scenarios in flight\n",
    $srv->version // '?', $srv->endpoint, $batches * $opt{batch}, $batches,
    $opt{batch}, $per_batch, $opt{window};

# Filled in place, so that recording a figure does not itself add an SV.
my @rss = (0) x ($batches + 1);
my @svs = (0) x ($batches + 1);
$rss[0] = rss_kb();
$svs[0] = sv_count();
printf "%-6s %8s %7s %8s %9s %8s %8s %7s\n",
    'batch', 'calls', 'secs', 'calls/s', 'RSS kB', '+kB', 'SVs', '+SVs';
printf "%-6s %8d %7s %8s %9d %8s %8d %7s\n", 'start', 0, '-', '-', $rss[0], '-', $svs[0], '-';

my $t_all = time;
# A failure outside the callbacks (a missing scenario, a wrong call count)
# ends the run the same way as one inside them.
eval {
    for my $b (1 .. $batches) {
        my $calls0 = 0;
        $calls0 += $_ for values %CALLS;
        my $t0 = time;
        run_batch(($b - 1) * $per_batch, $per_batch, $opt{window});
        my $dt = time - $t0;
        my $calls = 0;
        $calls += $_ for values %CALLS;
        die "batch $b made " . ($calls - $calls0) . " calls, expected $opt{batch}\n"
            unless $calls - $calls0 == $opt{batch};
        compact();
        $rss[$b] = rss_kb();
        $svs[$b] = sv_count();
        printf "%-6d %8d %7.2f %8.0f %9d %+8d %8d %+7d\n", $b, $calls, $dt,
            $opt{batch} / $dt, $rss[$b], $rss[$b] - $rss[$b - 1], $svs[$b], $svs[$b] - $svs[$b - 1];
    }
    1;
} or do { print STDERR "FAIL: $@"; exit 1 };
my $total = time - $t_all;

# ---- verdict -------------------------------------------------------------------

my @fail;
my $calls = 0;
$calls += $_ for values %CALLS;
push @fail, "$calls calls made, expected " . $batches * $opt{batch}
    unless $calls == $batches * $opt{batch};
push @fail, "$cb_made callbacks handed out, $cb_run run" unless $cb_made == $cb_run;
push @fail, "$croak_cb_ran callbacks of croaked calls ran" if $croak_cb_ran;

printf "\n%d calls in %.1f s (%.0f/s); %d scenarios; %d unary callbacks made and run once each\n",
    $calls, $total, $calls / $total, $batches * $per_batch, $cb_run;
print "calls:     ", join(', ', map { "$_ $CALLS{$_}" } sort keys %CALLS), "\n";
print "scenarios: ", join(', ', map { "$_ $SCEN{$_}" } sort keys %SCEN), "\n";
print "errors:    ", join(', ', map { "$_ $ERRORS{$_}" } sort keys %ERRORS), "\n";
print "croaks:    ", join(', ', map { "$_ $CROAKS{$_}" } sort keys %CROAKS), "\n";

my $w = $opt{warmup};
if ($batches > $w) {
    # $rss[$w] / $svs[$w]: at the end of batch $w (index 0 is the start).
    my ($rss_max) = sort { $b <=> $a } @rss[$w + 1 .. $#rss];
    my ($sv_max)  = sort { $b <=> $a } @svs[$w + 1 .. $#svs];
    my $rss_up = $rss_max - $rss[$w];
    my $sv_up  = $sv_max - $svs[$w];
    printf "RSS: %d kB after batch 1, %d kB after batch %d (warm-up), %d kB at the end; "
         . "peak after warm-up %+d kB (slack %s)\n",
        $rss[1], $rss[$w], $w, $rss[-1], $rss_up, $opt{'rss-slack'} ? "$opt{'rss-slack'} kB" : 'off';
    printf "SVs: %d after batch 1, %d after batch %d (warm-up), %d at the end; "
         . "peak after warm-up %+d (slack %d)\n",
        $svs[1], $svs[$w], $w, $svs[-1], $sv_up, $opt{'sv-slack'};
    push @fail, "RSS grew by $rss_up kB after warm-up"
        if $opt{'rss-slack'} && $rss_up > $opt{'rss-slack'};
    push @fail, "SV count grew by $sv_up after warm-up" if $sv_up > $opt{'sv-slack'};
} else {
    print "only $batches batch(es), warm-up $w: no verdict on growth\n";
}

$etcd->close;
undef $etcd;
$srv->stop;

if (@fail) {
    print "FAIL: $_\n" for @fail;
    exit 1;
}
print "PASS\n";
exit 0;
