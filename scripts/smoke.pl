#!/usr/bin/env perl
# Usage: perl scripts/smoke.pl
# A quick check of an installed EV::Etcd, for packagers and for xt/dist.t:
# starts a throwaway etcd ($ETCD_BIN, or etcd on the PATH) on free loopback
# ports, runs one of each kind of call through whichever EV::Etcd perl
# loads (the installed one: run it without -Mblib), prints a line per
# step and where the module was loaded from, stops etcd and exits 0 when
# every step passed. Needs no file of this distribution but itself.
use strict;
use warnings;
use EV;
use EV::Etcd;
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

my $bin = $ENV{ETCD_BIN} || (grep { -x } map { File::Spec->catfile($_, 'etcd') } File::Spec->path)[0]
    or die "smoke: no etcd: install etcd or set ETCD_BIN\n";

# Two ports nobody listens on (the kernel picks; etcd binds them at once).
my @ports = map {
    IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, ReuseAddr => 1)
        or die "smoke: no free port: $!\n"
} 1 .. 2;
my ($client_port, $peer_port) = map { $_->sockport } @ports;
close $_ for @ports;

my $dir = tempdir('ev-etcd-smoke-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $client_url = "http://127.0.0.1:$client_port";
my $peer_url   = "http://127.0.0.1:$peer_port";
my $pid = fork // die "smoke: fork: $!\n";
if (!$pid) {
    open STDOUT, '>', "$dir/etcd.log" or POSIX::_exit(127);
    open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
    exec $bin, '--name', 'smoke', '--data-dir', "$dir/data",
        '--listen-client-urls', $client_url, '--advertise-client-urls', $client_url,
        '--listen-peer-urls', $peer_url, '--initial-advertise-peer-urls', $peer_url,
        '--initial-cluster', "smoke=$peer_url"
        or POSIX::_exit(127);
}
my $stopped = 0;
sub stop_etcd {
    return if $stopped++;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}
END { stop_etcd() if $pid }
$SIG{INT} = $SIG{TERM} = sub { stop_etcd(); exit 1 };

my $deadline = time + 20;
until (IO::Socket::INET->new(PeerAddr => "127.0.0.1:$client_port", Timeout => 1)) {
    if (time > $deadline || waitpid($pid, POSIX::WNOHANG()) == $pid) {
        $stopped = 1 if waitpid($pid, POSIX::WNOHANG()) == $pid;
        my $log = do { local (@ARGV, $/) = "$dir/etcd.log"; <> } // '';
        die "smoke: etcd ($bin) did not start:\n$log";
    }
    sleep 0.05;
}

my $etcd = EV::Etcd->new(endpoints => ["127.0.0.1:$client_port"], timeout => 10);
my ($passed, $failed) = (0, 0);
sub step {
    my ($ok, $what, $detail) = @_;
    printf "%s - %s%s\n", $ok ? 'ok' : 'not ok', $what, !$ok && defined $detail ? " ($detail)" : '';
    $ok ? $passed++ : $failed++;
}
sub why { my ($err) = @_; $err ? "$err->{source}: $err->{message}" : undef }

# The steps run one after another, each from the previous one's callback.
my ($lease_id, $watch);
my @steps = (
    sub {
        my $next = shift;
        $etcd->put('/smoke/a', 'one', sub {
            my ($resp, $err) = @_;
            step(!$err && $resp->{header}{revision} > 0, 'put', why($err));
            $next->();
        });
    },
    sub {
        my $next = shift;
        $etcd->get('/smoke/', { prefix => 1 }, sub {
            my ($resp, $err) = @_;
            my $kv = !$err && $resp->{kvs}[0];
            step($kv && $kv->{key} eq '/smoke/a' && $kv->{value} eq 'one', 'get with prefix', why($err));
            $next->();
        });
    },
    sub {
        my $next = shift;
        $etcd->txn(
            compare  => [ { key => '/smoke/a', target => 'value', value => 'one' } ],
            success  => [ { put => { key => '/smoke/b', value => 'two' } } ],
            callback => sub {
                my ($resp, $err) = @_;
                step(!$err && $resp->{succeeded}, 'txn', why($err));
                $next->();
            },
        );
    },
    sub {
        my $next = shift;
        my $put_sent = 0;
        $watch = $etcd->watch('/smoke/w', sub {
            my ($msg, $err) = @_;
            if ($err) { step(0, 'watch', why($err)); return $next->() }
            if ($msg->{created} && !$put_sent++) {
                $etcd->put('/smoke/w', 'seen', sub { step(!$_[1], 'put under a watch', why($_[1])) });
            }
            for my $ev (@{ $msg->{events} || [] }) {
                step($ev->{kv}{value} eq 'seen', 'watch event');
                $watch->cancel(sub { step(!$_[1], 'watch cancel', why($_[1])); $next->() });
                return;
            }
        });
    },
    sub {
        my $next = shift;
        $etcd->lease_grant(30, sub {
            my ($resp, $err) = @_;
            $lease_id = !$err && $resp->{id};
            step($lease_id, 'lease_grant', why($err));
            $etcd->lease_revoke($lease_id || 0, sub {
                step(!$_[1], 'lease_revoke', why($_[1]));
                $next->();
            });
        });
    },
    sub {
        my $next = shift;
        $etcd->status(sub {
            my ($resp, $err) = @_;
            step(!$err && $resp->{version}, 'status' . ($err ? '' : " (etcd $resp->{version})"), why($err));
            $next->();
        });
    },
    sub {
        my $next = shift;
        $etcd->delete('/smoke/', { prefix => 1 }, sub {
            my ($resp, $err) = @_;
            step(!$err && $resp->{deleted} == 3, 'delete with prefix', why($err) // "deleted $resp->{deleted}, not 3");
            $next->();
        });
    },
);
my $run;
$run = sub {
    my $step = shift @steps or return EV::break;
    $step->($run);
};
my $timeout = EV::timer(30, 0, sub { step(0, 'every step within 30 s'); EV::break });
$run->();
EV::run;
$etcd->close;
stop_etcd();

my $so = (grep { m{/Etcd\.[^/]+\z} } @DynaLoader::dl_shared_objects)[0] // '?';
printf "EV::Etcd %s from %s (%s)\n", EV::Etcd->VERSION, $INC{'EV/Etcd.pm'}, $so;
printf "smoke: %d passed, %d failed\n", $passed, $failed;
exit($failed || $passed < 10 ? 1 : 0);
