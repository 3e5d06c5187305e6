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
#            data and the callback, without network or server
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
        push @{ $self->{queue} }, $cb;
        $self->{idle} //= EV::idle(sub {
            my $q = $self->{queue};
            $self->{queue} = [];
            delete $self->{idle};
            $_->({ header => { cluster_id => 1, member_id => 2, revision => 3, raft_term => 4 } },
                undef) for @$q;
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

my $echo = EV::Etcd->new(endpoints => ['127.0.0.1:1']);
$echo->_echo_requests_for_testing;
my $fake = FakeClient->new;
my @cases = (
    [ perl_seq  => sub { seq($fake,  @_) } ],
    [ echo_seq  => sub { seq($echo,  @_) } ],
    [ perl_pipe => sub { piped($fake, @_) } ],
    [ echo_pipe => sub { piped($echo, @_) } ],
);

my %best;
for my $round (1 .. $opt{rounds}) {
    for my $case (@cases) {
        my ($name, $run) = @$case;
        $run->(200);    # warm-up
        my ($c0, $t0) = (cpu_us(), time);
        $run->($opt{ops});
        my ($t1, $c1) = (time, cpu_us());
        my $r = { case => $name, ops => $opt{ops}, round => $round,
                  cpu_us_per_op => ($c1 - $c0) / $opt{ops},
                  wall_us_per_op => ($t1 - $t0) * 1e6 / $opt{ops} };
        print JSON::PP->new->canonical->encode($r), "\n";
        $best{$name} = $r if !$best{$name} || $r->{cpu_us_per_op} < $best{$name}{cpu_us_per_op};
    }
}
printf "\n%-10s %14s %15s   (best of %d by CPU, %d puts each)\n",
    'case', 'CPU us/op', 'wall us/op', $opt{rounds}, $opt{ops};
printf "%-10s %14.2f %15.2f\n", $_->[0], @{ $best{ $_->[0] } }{qw(cpu_us_per_op wall_us_per_op)}
    for @cases;
