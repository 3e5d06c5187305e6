#!/usr/bin/env perl
# snapshot and hash. A snapshot written to a file handle is what etcdutl
# reads, restores, and a server started on the restored data serves; the
# chunk-callback form gets the same bytes; a byte damaged in transit (a
# TCP proxy flips one) fails the checksum with DATA_LOSS; a failed write
# or a dying chunk callback ends the copy with an error.
use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha256);
use File::Temp ();
use Time::HiRes qw(time);

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call free_port);
use TcpProxy;

need_etcd();
use EV;
use EV::Etcd;

# etcdutl comes with the etcd 3.5 the project installs (scripts/etcd-bin.sh).
chomp(my $etcd35 = `bash scripts/etcd-bin.sh 3.5 2>/dev/null` // '');
(my $etcdutl = $etcd35) =~ s{etcd$}{etcdutl};
ok -x $etcdutl, "etcdutl found ($etcdutl)" or BAIL_OUT('no etcdutl: run scripts/install-deps.sh');

my $srv = start_etcd(name => 'snap');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ]);

# About 1 MB of data.
{
    my $done = 0;
    $c->put(sprintf('snap/%05d', $_), "value $_ " . ('x' x 480), sub { $done++ }) for 1 .. 2000;
    ok run_until(sub { $done == 2000 }, 60), '2000 keys loaded';
}
my $rev = ok_call($c, 'put', 'snap/last', 'the end')->{header}{revision};
my $tmp = File::Temp->newdir('ev-etcd-snap-XXXXXX', TMPDIR => 1);

sub snapshot_to {
    my ($client, $target) = @_;
    my ($r, $e, $n);
    $client->snapshot($target, sub { ($r, $e) = @_; $n++ });
    ok run_until(sub { $n }, 60), 'snapshot calls back';
    pause(0.2);
    is $n, 1, '... once';
    return ($r, $e);
}
sub pause { run_until(sub { 0 }, $_[0]) }

# --- to a file handle ------------------------------------------------------------------
my $file = "$tmp/snap.db";
{
    open my $fh, '>', $file or die "$file: $!";
    my ($r, $e) = snapshot_to($c, $fh);
    close $fh or die "close: $!";
    ok !$e, 'snapshot to a file succeeds' or diag explain $e;
    is_deeply [ sort keys %$r ], [qw(header size)], '... with size and header';
    cmp_ok $r->{size}, '>', 1_000_000, "... of $r->{size} bytes";
    is -s $file, $r->{size}, '... every byte written';
    open my $in, '<:raw', $file or die;
    my $data = do { local $/; <$in> };
    is sha256(substr $data, 0, -32), substr($data, -32), 'the file ends with the SHA-256 of the rest';

    my $status = `$etcdutl snapshot status $file -w json 2>&1`;
    like $status, qr/"revision":$rev\b/, "etcdutl snapshot status reads it, at revision $rev" or diag $status;
    my ($keys) = $status =~ /"totalKey":(\d+)/;
    cmp_ok $keys // 0, '>=', 2001, "... with every key ($keys)";

    # restore it and serve it
    my $peer = free_port();
    my $restored = "$tmp/restored";
    my $out = `$etcdutl snapshot restore $file --data-dir $restored --name back --initial-cluster back=http://127.0.0.1:$peer --initial-advertise-peer-urls http://127.0.0.1:$peer 2>&1`;
    is $?, 0, 'etcdutl snapshot restore accepts it (its own hash check included)' or diag $out;
    my $back = start_etcd(name => 'back', bin => $etcd35, data_dir => $restored, peer_port => $peer);
    my $bc = EV::Etcd->new(endpoints => [ $back->endpoint ]);
    my $got = ok_call($bc, 'get', 'snap/', { prefix => 1, count_only => 1 });
    is $got->{count}, 2001, 'a server started on the restored data has every key';
    is ok_call($bc, 'get', 'snap/01234')->{kvs}[0]{value}, 'value 1234 ' . ('x' x 480), '... with its value';
    $back->stop;
}

# --- to a chunk callback -------------------------------------------------------------------
{
    my ($bytes, $pieces) = ('', 0);
    my ($r, $e) = snapshot_to($c, sub { $bytes .= $_[0]; $pieces++ });
    ok !$e, 'snapshot to a chunk callback succeeds' or diag explain $e;
    is length $bytes, $r->{size}, "... the pieces ($pieces of them) add up to size";
    cmp_ok $pieces, '>', 1, '... more than one piece';
    is sha256(substr $bytes, 0, -32), substr($bytes, -32), '... and carry a valid checksum';
}

# --- damaged in transit ----------------------------------------------------------------------
{
    my $proxy = TcpProxy->new(upstream => $srv->client_port, flip_down_at => 500_000);
    my $pc = EV::Etcd->new(endpoints => [ $proxy->endpoint ]);
    my $len = 0;
    my ($r, $e) = snapshot_to($pc, sub { $len += length $_[0] });
    ok !defined $r, 'a snapshot damaged in transit: no response';
    is $e->{status}, 'DATA_LOSS', '... DATA_LOSS';
    is $e->{code}, 15, '... code 15';
    is $e->{source}, 'snapshot', '... source snapshot';
    like $e->{message}, qr/^snapshot checksum mismatch/, '... the checksum did not match';
    cmp_ok $len, '>', 500_000, '... after every byte was passed on';
    $proxy->stop;
}

# --- failed writes ------------------------------------------------------------------------
{
    open my $full, '>', '/dev/full' or die "/dev/full: $!";
    my ($r, $e) = snapshot_to($c, $full);
    ok !defined $r, 'writing to a full device: no response';
    is $e->{status}, 'INTERNAL', '... INTERNAL';
    like $e->{message}, qr/^snapshot: writing the snapshot failed: No space left on device/, '... naming the reason';
    is $e->{source}, 'snapshot', '... source snapshot';
    close $full;    # fails as well; closed here, it fails quietly
}
{
    my $calls = 0;
    my ($r, $e) = snapshot_to($c, sub { $calls++; die "disk on fire\n" });
    is $e->{status}, 'INTERNAL', 'a chunk callback that dies ends the copy';
    like $e->{message}, qr/disk on fire/, '... with its message';
    pause(0.5);
    is $calls, 1, '... and is not called again';
    my $after = ok_call($c, 'get', 'snap/last');
    is $after->{kvs}[0]{value}, 'the end', 'the client works on afterwards';
}

# --- hash ------------------------------------------------------------------------------------
{
    my $h1 = ok_call($c, 'hash');
    is_deeply [ sort keys %$h1 ], [qw(hash header)], 'hash: hash and header';
    like $h1->{hash}, qr/^\d+$/, '... an unsigned number';
    cmp_ok $h1->{hash}, '<', 2**32, '... of 32 bits';
    is $h1->{header}{revision}, $rev, '... header at the current revision';
    is ok_call($c, 'hash')->{hash}, $h1->{hash}, 'the same again while nothing changes';
    ok_call($c, 'put', 'snap/more', 'x');
    isnt ok_call($c, 'hash')->{hash}, $h1->{hash}, 'a write changes it';
}

# --- argument checks -----------------------------------------------------------------------
{
    my $line;
    eval { $line = __LINE__; $c->snapshot('/tmp/x', sub {}) };
    like $@, qr/^snapshot: the target must be a file handle or a code reference at \Q$0\E line $line\.$/,
        'a file name instead of a handle croaks at the caller';
    open my $closed, '>', "$tmp/closed" or die;
    close $closed;
    eval { $line = __LINE__; $c->snapshot($closed, sub {}) };
    like $@, qr/^snapshot: the file handle is not open at \Q$0\E line $line\.$/, 'a closed handle croaks';
    eval { $line = __LINE__; $c->snapshot(sub {}) };
    like $@, qr/^callback must be a code reference \(snapshot\) at \Q$0\E line $line\.$/, 'no callback croaks';
    eval { $line = __LINE__; $c->hash };
    like $@, qr/^callback must be a code reference \(hash\) at \Q$0\E line $line\.$/, 'hash without callback croaks';
    my $cl = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
    $cl->close;
    eval { $line = __LINE__; $cl->snapshot(sub {}, sub {}) };
    like $@, qr/^EV::Etcd: this client was closed at \Q$0\E line $line\.$/, 'a closed client croaks at the caller';
}

done_testing;
