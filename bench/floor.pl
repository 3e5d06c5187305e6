#!/usr/bin/env perl
# The floor under bench/compare.sh's Perl rows: what a put costs when no
# etcd is involved, so that the part of each row that is the Perl
# interpreter's and EV's own, and the part that is the bridge to the Rust
# runtime, are known. Needs no etcd; prints a table and one JSON line per
# case.
#
#   perl -Mblib bench/floor.pl [--ops N] [--rounds R]
#
# Cases, each 'seq' (one call in flight, EV::run per call, as seq_put) and
# 'pipe' (100 in flight, refilled from the callbacks, as pipe_put):
#   perl_*   a client written in Perl whose put answers from an EV idle
#            watcher with a put-shaped reply: the interpreter, EV and the
#            benchmark's own loop, nothing else
#   echo_*   EV::Etcd with its test hook that answers every call with its
#            decoded request instead of sending it: argument checks, encoding,
#            the hand-off to the runtime thread and back, conversion to Perl
#            data and the callback, without network or server; only in a
#            build with the test hooks (EV_ETCD_TEST_HOOKS=1 perl Makefile.PL
#            && make), left out with a note otherwise
# and perl_range, big_range's floor (per key): a get whose reply of 10,000
# key-value hashes is built in Perl, then read and checked as big_range
# reads it, then freed; no client, no etcd; and perl_watch, many_watch's
# floor (per event): 1,000 watch callbacks, and puts with 100 in flight
# whose fake client answers each with a put reply and an event message of
# our client's shape, checked as many_watch checks them
# CPU is getrusage(RUSAGE_SELF), user+system, of every thread of the process.
use strict;
use warnings;
use Config;
use EV;
use Getopt::Long qw(GetOptions);
use JSON::PP ();
use Time::HiRes qw(time);

BEGIN { $ENV{EV_ETCD_TEST_HOOKS} = 1 }
use EV::Etcd;

my %opt = (ops => 20_000, rounds => 3);
GetOptions(\%opt, 'ops=i', 'rounds=i') or die "usage: $0 [--ops N] [--rounds R]\n";

my %SYS_GETRUSAGE = (x86_64 => 98, aarch64 => 165, i386 => 77, i686 => 77, riscv64 => 165);
my $SYS_getrusage = eval { require 'syscall.ph'; SYS_getrusage() }
    // $SYS_GETRUSAGE{ ($Config{archname} =~ /^([^-]+)/)[0] // '' }
    // die "no getrusage syscall number for $Config{archname}\n";

sub cpu_us {
    my $buf = "\0" x 512;
    syscall($SYS_getrusage, 0, $buf) == 0 or die "getrusage: $!\n";
    my ($us, $uus, $ss, $sus) = unpack 'l!4', $buf;
    return ($us + $ss) * 1_000_000 + $uus + $sus;
}

# A client in Perl: put answers from the loop, never inside the call.
package FakeClient {
    sub new { bless { queue => [] }, shift }
    sub put {
        my ($self, $key, $value, $cb) = @_;
        $self->answer($cb, { header => { cluster_id => 1, member_id => 2, revision => 3, raft_term => 4 } });
    }
    # a range reply of the given keys and values, built when it is answered
    sub get {
        my ($self, $keys, $values, $cb) = @_;
        $self->answer($cb, sub {
            my $rev = 10;
            my @kvs = map {
                { key => $keys->[$_], value => $values->[$_], create_revision => $rev + $_,
                  mod_revision => $rev + $_, version => 1, lease => 0 }
            } 0 .. $#$keys;
            return { header => { cluster_id => 1, member_id => 2, revision => 3, raft_term => 4 },
                     kvs => \@kvs, count => scalar @kvs, more => 0 };
        });
    }
    # watch callbacks by key: a put also answers the key's watch
    sub watch {
        my ($self, $key, $cb) = @_;
        $self->{watches}{$key} = $cb;
    }
    sub put_and_notify {
        my ($self, $key, $value, $cb) = @_;
        $self->put($key, $value, $cb);
        my $watch = $self->{watches}{$key} or return;
        $self->answer($watch, sub {
            my $rev = ++$self->{rev};
            return { header => { cluster_id => 1, member_id => 2, revision => $rev, raft_term => 4 },
                     watch_id => 7, created => 0,
                     events => [ { type => 'PUT',
                                   kv => { key => $key, value => $value, create_revision => 5,
                                           mod_revision => $rev, version => 2, lease => 0 } } ] };
        });
    }
    sub answer {
        my ($self, $cb, $reply) = @_;
        push @{ $self->{queue} }, [ $cb, $reply ];
        $self->{idle} //= EV::idle(sub {
            my $q = $self->{queue};
            $self->{queue} = [];
            delete $self->{idle};
            $_->[0]->(ref $_->[1] eq 'CODE' ? $_->[1]->() : $_->[1], undef) for @$q;
        });
    }
}

sub value { my $s = "$_[0]|"; substr($s x (int(100 / length $s) + 1), 0, 100) }

sub seq {
    my ($client, $n) = @_;
    for my $i (0 .. $n - 1) {
        my $key = sprintf '/floor/%05d', $i;
        my @got;
        $client->put($key, value($key), sub { @got = @_ });
        EV::run;
        die "put $i: no reply\n" unless ref $got[0] eq 'HASH';
    }
}

sub piped {
    my ($client, $n) = @_;
    my ($issued, $done) = (0, 0);
    my $fill;
    $fill = sub {
        while ($issued < $n && $issued - $done < 100) {
            my $key = sprintf '/floor/%05d', $issued++;
            $client->put($key, value($key), sub {
                die "no reply\n" unless ref $_[0] eq 'HASH';
                $done++;
                $fill->();
            });
        }
    };
    $fill->();
    EV::run;
    undef $fill;
    die "$done of $n answered\n" unless $done == $n;
}

# big_range's read of a reply, as bench/compare-client.pl does it
my @range_keys   = map { sprintf '/bench/range/%05d', $_ } 0 .. 9_999;
my @range_values = map { value($_) } @range_keys;
sub range_reads {
    my ($client, $n) = @_;    # $n keys in all, read 10,000 at a time
    for (1 .. $n / @range_keys) {
        my @got;
        $client->get(\@range_keys, \@range_values, sub { @got = @_ });
        EV::run;
        my $kvs = $got[0]{kvs};
        die "range: wrong count\n" unless $got[0]{count} == @range_keys && @$kvs == @range_keys;
        my $i = 0;
        for my $kv (@$kvs) {
            die "range: wrong key at $i\n"   unless $kv->{key} eq $range_keys[$i];
            die "range: wrong value at $i\n" unless $kv->{value} eq $range_values[$i];
            $i++;
        }
    }
}

# many_watch's timed round, as bench/compare-client.pl runs it
my @watch_keys = map { sprintf '/bench/scratch/mw/%06d', $_ } 0 .. 999;
sub watch_round {
    my ($client, $n) = @_;    # $n events in all, 1,000 per round
    my (@vals, @sent, @seen, @lat, $events);
    for my $i (0 .. $#watch_keys) {
        my $key = $watch_keys[$i];
        $client->watch($key, sub {
            my ($m, $e) = @_;
            die "watch $i: no reply
" if $e || ref $m ne 'HASH';
            die "watch $i: a second event
" if $seen[$i]++;
            push @lat, time - $sent[$i];
            my $evs = $m->{events};
            die "watch: one event expected
" unless @$evs == 1;
            my $ev = $evs->[0];
            die "watch: wrong event
"
                unless $ev->{type} eq 'PUT' && $ev->{kv}{key} eq $key && $ev->{kv}{value} eq $vals[$i];
            $events++;
        });
    }
    for my $phase (1 .. $n / @watch_keys) {
        @vals = map { value("$_#$phase") } @watch_keys;
        @sent = @seen = ();
        $events = 0;
        my ($issued, $acked) = (0, 0);
        my $fill;
        $fill = sub {
            while ($issued < @watch_keys && $issued - $acked < 100) {
                my $i = $issued++;
                $sent[$i] = time;
                $client->put_and_notify($watch_keys[$i], $vals[$i], sub {
                    die "put: no revision
" unless ($_[0]{header}{revision} // 0) > 0;
                    $acked++;
                    $fill->();
                });
            }
        };
        $fill->();
        EV::run(EV::RUN_ONCE) until $acked == @watch_keys && $events == @watch_keys;
        undef $fill;
    }
}

# The shipped build has no test hooks, so no echo client.
my $echo;
if (defined &EV::Etcd::_echo_requests_for_testing) {
    $echo = EV::Etcd->new(endpoints => ['127.0.0.1:1']);
    $echo->_echo_requests_for_testing;
} else {
    print "floor: no echo_* rows: this build has no test hooks"
        . " (EV_ETCD_TEST_HOOKS=1 perl Makefile.PL && make adds them)\n";
}
my $fake = FakeClient->new;
my @cases = grep { $echo || $_->[0] !~ /^echo_/ } (
    [ perl_seq  => sub { seq($fake,  @_) } ],
    [ echo_seq  => sub { seq($echo,  @_) } ],
    [ perl_pipe => sub { piped($fake, @_) } ],
    [ echo_pipe => sub { piped($echo, @_) } ],
    [ perl_range => sub { range_reads($fake, 20 * @range_keys) }, 20 * @range_keys ],
    [ perl_watch => sub { watch_round($fake, 10 * @watch_keys) }, 10 * @watch_keys ],
);

my %best;
for my $round (1 .. $opt{rounds}) {
    for my $case (@cases) {
        my ($name, $run, $ops) = @$case;
        $ops //= $opt{ops};
        $run->(200) unless $name =~ /^perl_(?:range|watch)$/;    # warm-up
        my ($c0, $t0) = (cpu_us(), time);
        $run->($ops);
        my ($t1, $c1) = (time, cpu_us());
        my $r = { case => $name, ops => $ops, round => $round,
                  cpu_us_per_op => ($c1 - $c0) / $ops,
                  wall_us_per_op => ($t1 - $t0) * 1e6 / $ops };
        print JSON::PP->new->canonical->encode($r), "\n";
        $best{$name} = $r if !$best{$name} || $r->{cpu_us_per_op} < $best{$name}{cpu_us_per_op};
    }
}
printf "\n%-10s %14s %15s   (best of %d by CPU; %d puts each, perl_range per key, perl_watch per event)\n",
    'case', 'CPU us/op', 'wall us/op', $opt{rounds}, $opt{ops};
printf "%-10s %14.2f %15.2f\n", $_->[0], @{ $best{ $_->[0] } }{qw(cpu_us_per_op wall_us_per_op)}
    for @cases;
