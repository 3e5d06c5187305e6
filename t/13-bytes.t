#!/usr/bin/env perl
# Keys and values are byte strings: NUL and high bytes round-trip, UTF-8
# flagged input is stored as its UTF-8 bytes and comes back unflagged, a
# value close to etcd's request limit works, and so does one range response
# of more than 100 MB.
use strict;
use warnings;

use Test::More;
use Digest::MD5 ();
use Encode ();
use lib 't/lib';
use EtcdTest qw(:DEFAULT wait_for);

need_etcd();

use EV;
use EV::Etcd;

my $srv = start_etcd();
my $c   = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 60);


sub must {
    my ($what, $start, $limit) = @_;
    my ($r, $e) = wait_for($what, $start, $limit);
    ok !$e && ref $r eq 'HASH', "$what: succeeded" or diag explain $e;
    return $r // {};
}

# --- NUL and high bytes ------------------------------------------------------------
my $all_bytes = join '', map { chr } 0 .. 255;
my @pairs = (
    [ "bin/\0",               "\0" ],
    [ "bin/\0\0mid\0",        "a\0b\0c" ],
    [ "bin/\xff\xfe\x80",     $all_bytes ],
    [ "bin/\x01\x7f",         scalar(reverse $all_bytes) x 3 ],
    [ "bin/trail\xff",        "\xc3\x28 not valid utf-8 \xe2\x82" ],
    [ "bin/empty-value",      '' ],
);
for my $p (@pairs) {
    my ($k, $v) = @$p;
    ok !utf8::is_utf8($k) && !utf8::is_utf8($v), 'fixture strings are plain bytes';
    must('put binary', sub { $c->put($k, $v, $_[0]) });
}
for my $p (@pairs) {
    my ($k, $v) = @$p;
    my $r = must('get binary', sub { $c->get($k, $_[0]) });
    is $r->{count}, 1, 'binary key found: ' . unpack('H*', $k);
    ok $r->{kvs}[0]{key} eq $k, 'key bytes round-trip exactly';
    ok $r->{kvs}[0]{value} eq $v, 'value bytes round-trip exactly';
    is length $r->{kvs}[0]{value}, length $v, '... same length (' . length($v) . ')';
    ok !utf8::is_utf8($r->{kvs}[0]{key}) && !utf8::is_utf8($r->{kvs}[0]{value}),
        'returned key and value are not UTF-8 flagged';
}
{
    my $r = must('get bin/ prefix', sub { $c->get('bin/', { prefix => 1 }, $_[0]) });
    is_deeply [ map { $_->{key} } @{ $r->{kvs} } ], [ sort map { $_->[0] } @pairs ],
        'binary keys in byte order through a prefix range';
    is $r->{kvs}[0]{key}, "bin/\0", 'a key ending in NUL is not cut short';

    # "bin/\0" must not be confused with "bin/"
    $r = must('get bin/', sub { $c->get('bin/', $_[0]) });
    is $r->{count}, 0, 'the key bin/ (without the NUL) does not exist';

    $r = must('delete with prev_kv', sub { $c->delete("bin/\0\0mid\0", { prev_kv => 1 }, $_[0]) });
    is $r->{deleted}, 1, 'delete of a key with NULs';
    ok $r->{prev_kvs}[0]{value} eq "a\0b\0c", 'prev_kvs value with NULs intact';

    $r = must('txn binary', sub {
        $c->txn([ { key => "bin/\xff\xfe\x80", target => 'value', value => $all_bytes } ],
                [ { put => { key => "bin/\xff\xfe\x80", value => "\0\xff", prev_kv => 1 } } ], [], $_[0]);
    });
    is $r->{succeeded}, 1, 'txn compares a value with every byte 0..255';
    ok $r->{responses}[0]{response_put}{prev_kv}{value} eq $all_bytes, 'txn prev_kv bytes intact';
}

# prefix ranges on keys that end in 0xff bytes
{
    must('put p', sub { $c->put($_->[0], 'x', $_[0]) }) for ["pf\xff"], ["pf\xff\xff"], ["pf\xff\xffz"], ["pg"], ["pf\xfe"];
    my $r = must('prefix pf\xff', sub { $c->get("pf\xff", { prefix => 1, keys_only => 1 }, $_[0]) });
    is_deeply [ map { $_->{key} } @{ $r->{kvs} } ], [ "pf\xff", "pf\xff\xff", "pf\xff\xffz" ],
        'prefix ending in 0xff: the range end carries over to the previous byte';
    $r = must('prefix \xff\xff', sub { $c->get("\xff\xff", { prefix => 1 }, $_[0]) });
    is $r->{count}, 0, 'an all-0xff prefix is a valid (empty) range';
}

# --- UTF-8 flagged input --------------------------------------------------------------
{
    my $smile = "smile \x{263A} caf\x{e9} \x{1F600}";
    ok utf8::is_utf8($smile), 'fixture: the value is UTF-8 flagged';
    my $bytes = Encode::encode('UTF-8', $smile);
    my $key   = "utf8/\x{263A}";
    ok utf8::is_utf8($key), 'fixture: the key is UTF-8 flagged';
    my $kbytes = Encode::encode('UTF-8', $key);

    must('put utf8', sub { $c->put($key, $smile, $_[0]) });
    my $r = must('get by encoded key', sub { $c->get($kbytes, $_[0]) });
    is $r->{count}, 1, 'a UTF-8 flagged key is stored as its UTF-8 bytes';
    my $kv = $r->{kvs}[0];
    ok $kv->{value} eq $bytes, 'the value comes back as its UTF-8 bytes';
    is length $kv->{value}, length $bytes, '... byte length ' . length $bytes;
    ok !utf8::is_utf8($kv->{value}), 'the returned value has no UTF-8 flag';
    ok !utf8::is_utf8($kv->{key}), 'the returned key has no UTF-8 flag';
    ok $kv->{key} eq $kbytes, 'the returned key is the UTF-8 bytes';
    isnt $kv->{value}, $smile, 'bytes are not equal to the character string (no decoding)';
    is Encode::decode('UTF-8', $kv->{value}), $smile, 'decoding the bytes gives the characters back';

    $r = must('get by flagged key', sub { $c->get($key, $_[0]) });
    is $r->{count}, 1, 'looking up with the flagged key finds the same key';

    # an upgraded Latin-1 string is stored as its UTF-8 encoding too
    my $e_acute = "\x{e9}t\x{e9}";
    utf8::upgrade($e_acute);
    ok utf8::is_utf8($e_acute), 'fixture: upgraded Latin-1 string';
    must('put upgraded', sub { $c->put('utf8/upgraded', $e_acute, $_[0]) });
    $r = must('get upgraded', sub { $c->get('utf8/upgraded', $_[0]) });
    ok $r->{kvs}[0]{value} eq "\xc3\xa9t\xc3\xa9", 'upgraded string stored as UTF-8 bytes';

    # a plain byte string with high bytes is stored as is (not upgraded)
    must('put latin1', sub { $c->put('utf8/latin1', "\xe9t\xe9", $_[0]) });
    $r = must('get latin1', sub { $c->get('utf8/latin1', $_[0]) });
    ok $r->{kvs}[0]{value} eq "\xe9t\xe9", 'unflagged high bytes are stored unchanged';
    is length $r->{kvs}[0]{value}, 3, '... 3 bytes';

    # the UTF-8 flag on a compare value in a txn
    $r = must('txn utf8', sub {
        $c->txn([ { key => $key, target => 'value', value => $smile } ], [], [], $_[0]);
    });
    is $r->{succeeded}, 1, 'txn compare with a flagged value matches the stored UTF-8 bytes';
}

# --- a value close to the request limit ---------------------------------------------------
sub pattern {
    my ($seed, $len) = @_;
    my $block = Digest::MD5::md5("seed-$seed") x 4;    # 64 bytes, all byte values possible
    $block .= join '', map { chr(($_ * 7 + $seed) % 256) } 0 .. 191;
    my $v = $block x (int($len / length $block) + 1);
    substr($v, $len) = '';
    substr($v, 0, 12) = sprintf '%012d', $seed;
    return $v;
}
{
    my $big = pattern(1, 1_400_000);
    is length $big, 1_400_000, 'fixture: 1,400,000 bytes';
    my $r = must('put 1.4 MB', sub { $c->put('big/one', $big, $_[0]) }, 60);
    $r = must('get 1.4 MB', sub { $c->get('big/one', $_[0]) }, 60);
    is length $r->{kvs}[0]{value}, 1_400_000, 'the 1.4 MB value comes back at full length';
    is Digest::MD5::md5_hex($r->{kvs}[0]{value}), Digest::MD5::md5_hex($big), '... with the same content';

    # over etcd's limit the server refuses; the error says so
    my ($resp, $err) = wait_for('put 2 MB', sub { $c->put('big/too', pattern(2, 2_000_000), $_[0]) }, 60);
    ok !$resp && $err, 'a 2 MB put is refused by etcd (default --max-request-bytes 1.5 MiB)';
    like $err->{message}, qr/too large|larger than max|exceed/i, "... with the server's reason: $err->{message}";
    is $err->{source}, 'put', '... source put';
}

# --- one range response of more than 100 MB ------------------------------------------------
{
    # A server of its own with room for the data; no request is over 1.5 MiB.
    my $bulk = start_etcd(extra => [ '--quota-backend-bytes', 4 * 1024**3 ]);
    my $bc   = EV::Etcd->new(endpoints => [ $bulk->endpoint ], timeout => 120);
    my $n    = 80;
    my $size = 1_300_000;
    my $md5  = Digest::MD5->new;
    my ($next, $inflight, $done, @errs) = (0, 0, 0);
    my $pump;
    $pump = sub {
        while ($inflight < 4 && $next < $n) {
            my $i = $next++;
            $inflight++;
            $bc->put(sprintf('bulk/%03d', $i), pattern($i, $size), sub {
                $inflight--;
                $done++;
                push @errs, $_[1] if $_[1];
                $pump->();
            });
        }
    };
    $pump->();
    ok run_until(sub { $done == $n }, 120), "$n puts of $size bytes completed";
    ok !@errs, 'no put failed' or diag explain $errs[0];
    undef $pump;
    $md5->add(pattern($_, $size)) for 0 .. $n - 1;
    my $want = $md5->hexdigest;

    my ($r, $e) = wait_for('get 104 MB', sub { $bc->get('bulk/', { prefix => 1 }, $_[0]) }, 120);
    ok !$e, 'the >100 MB range succeeded' or diag explain $e;
    my $kvs = $r ? $r->{kvs} : [];
    is scalar @$kvs, $n, "all $n kvs in one response";
    is $r && $r->{count}, $n, 'count';
    is $r && $r->{more}, 0, 'more 0';
    my $total = 0;
    $total += length $_->{value} for @$kvs;
    is $total, $n * $size, "total size $total bytes";
    cmp_ok $total, '>', 100 * 1000 * 1000, 'more than 100 MB in one response';
    is_deeply [ map { $_->{key} } @$kvs ], [ map { sprintf 'bulk/%03d', $_ } 0 .. $n - 1 ],
        'keys in order';
    my $got = Digest::MD5->new;
    $got->add($_->{value}) for @$kvs;
    is $got->hexdigest, $want, 'checksum of all values matches what was written';
    ok !(grep { utf8::is_utf8($_->{value}) } @$kvs), 'no value is UTF-8 flagged';
    undef $r; undef $kvs;

    # the same data through a txn range
    ($r, $e) = wait_for('txn 104 MB', sub {
        $bc->txn([], [ { range => { key => 'bulk/', prefix => 1 } } ], [], $_[0]);
    }, 120);
    ok !$e, 'a >100 MB range inside a txn succeeded' or diag explain $e;
    my $rr = $r ? $r->{responses}[0]{response_range} : {};
    $total = 0;
    $total += length $_->{value} for @{ $rr->{kvs} || [] };
    is $total, $n * $size, 'txn range: total size';
    undef $r; undef $rr;
    # Let go of the client before the server: the client's connection then
    # closes against a live server.
    undef $bc;
    $bulk->stop;
}

done_testing;
