#!/usr/bin/env perl
# range_iterator: a prefix walked in pages at one revision (every key once,
# in order, writes made during the walk not seen), range_end, a single key,
# empty ranges, keys_only, the default page size, a given revision, the
# end of the walk, a compaction mid-walk, and bad arguments croaking at the
# caller's line.
use strict;
use warnings;
use utf8;

use Test::More;

use lib 't/lib';
use EtcdTest qw(:DEFAULT call ok_call wait_for);

need_etcd();
use EV;
use EV::Etcd;

my $srv = start_etcd(name => 'rangeiter');
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 10);

# One page: ($page, $err), failing the test when no callback comes.
sub next_page {
    my ($it) = @_;
    my ($page, $err) = wait_for('next', sub { $it->next(shift) });
    return ($page, $err);
}

# Walks to the end: (\@pages, $err); the empty page that ends the walk is
# not in @pages.
sub walk {
    my ($it) = @_;
    my @pages;
    for (1 .. 10_000) {
        my ($page, $err) = next_page($it);
        return (\@pages, $err) if $err || !$page;
        return (\@pages, undef) unless @{ $page->{kvs} };
        push @pages, $page;
    }
    die "walk: no end in sight\n";
}

sub keys_of { [ map { $_->{key} } map { @{ $_->{kvs} } } @{ $_[0] } ] }

# Stores key => value pairs with transactions of 100 puts.
sub load {
    my (@pairs) = @_;
    while (my @batch = splice @pairs, 0, 200) {
        my @ops;
        while (my ($k, $v) = splice @batch, 0, 2) { push @ops, { put => { key => $k, value => $v } } }
        ok_call($c, 'txn', [], \@ops, []);
    }
}

# --- 2,500 keys in pages of 300, at one revision ------------------------------
my @many = map { sprintf '/ri/many/%05d', $_ } 0 .. 2499;
load(map { ($many[$_], "v$_") } 0 .. $#many);
my $loaded_rev = ok_call($c, 'get', '/ri/many/00000')->{header}{revision};
{
    my $it = $c->range_iterator('/ri/many/', { prefix => 1, page_size => 300 });
    isa_ok $it, 'EV::Etcd::RangeIterator';
    is $it->page_size, 300, 'page_size';
    is $it->revision, undef, 'no revision before the first page';

    my $got;
    $it->next(sub { $got = [@_] });
    ok !$got, 'next does not call back inside the call';
    ok run_until(sub { $got }, 20), 'first page arrives';
    my ($first, $err) = @$got;
    ok !$err, 'no error';
    is scalar(@{ $first->{kvs} }), 300, 'first page: 300 keys';
    is $first->{more}, 1, 'more => 1';
    ok $first->{header} && $first->{header}{revision} > 0, 'page has a header';
    my $snap = $it->revision;
    is $snap, $first->{header}{revision}, 'snapshot revision: the first page\'s';
    is_deeply [ sort keys %{ $first->{kvs}[0] } ],
        [ sort keys %{ ok_call($c, 'get', $many[0])->{kvs}[0] } ], 'kv hashes as get gives them';

    # writes while the walk is under way
    ok_call($c, 'put', '/ri/many/02000', 'changed');
    ok_call($c, 'delete', '/ri/many/02400');
    ok_call($c, 'put', '/ri/many/01500x', 'new in the middle');
    ok_call($c, 'put', '/ri/many/99999', 'new at the end');
    ok_call($c, 'delete', '/ri/many/00000');    # already delivered

    my ($rest, $rerr) = walk($it);
    ok !$rerr, 'the rest of the walk without error' or diag explain $rerr;
    my @pages = ($first, @$rest);
    is scalar(@pages), 9, '9 pages';
    is_deeply [ map { scalar @{ $_->{kvs} } } @pages ], [ (300) x 8, 100 ], 'pages of 300, the last of 100';
    is_deeply keys_of(\@pages), \@many, 'every key exactly once, in order';
    is_deeply [ map { $_->{value} } map { @{ $_->{kvs} } } @pages ], [ map { "v$_" } 0 .. 2499 ],
        'values as they were at the snapshot';
    is_deeply [ map { $_->{more} } @pages ], [ (1) x 8, 0 ], 'more is 0 on the last page only';
    is $it->revision, $snap, 'revision unchanged through the walk';
    ok $it->done, 'done';
    cmp_ok $pages[-1]{header}{revision}, '>', $snap, 'later pages carry the current header';

    for my $n (1 .. 2) {
        my ($end, $eerr) = next_page($it);
        ok !$eerr && $end && !@{ $end->{kvs} } && $end->{more} == 0, "after the end, next gives an empty page ($n)";
        ok $end && $end->{header}, 'with a header';
    }
    my $late;
    $it->next(sub { $late = 1 });
    ok !$late, 'the empty page too comes from the loop, not from inside next';
    run_until(\$late, 5);

    my $now = ok_call($c, 'get', '/ri/many/', { prefix => 1 });
    is $now->{count}, 2500, 'the writes did happen (2,500 keys, 2 deleted, 2 added)';

    # the snapshot again, through a revision given by the caller
    my $at = $c->range_iterator('/ri/many/', { prefix => 1, page_size => 1000, revision => $loaded_rev });
    is $at->revision, $loaded_rev, 'a given revision is the snapshot';
    my ($old) = walk($at);
    is_deeply keys_of($old), \@many, 'revision option: the keys as they were';
    is_deeply [ map { scalar @{ $_->{kvs} } } @$old ], [ 1000, 1000, 500 ], 'in pages of 1000';

    my $def = $c->range_iterator('/ri/many/', { prefix => 1 });
    is $def->page_size, 1000, 'default page size 1000';
    my ($dp) = walk($def);
    is scalar(@$dp), 3, 'default page size: 3 pages for 2,500 keys';
    is_deeply keys_of($dp), [ map { $_->{key} } @{ $now->{kvs} } ], 'the current keys';
}

# --- range_end, single key, empty ranges, keys_only ---------------------------------
{
    ok_call($c, 'put', "/ri/r/$_", "val-$_") for 'a' .. 'j';
    my $it = $c->range_iterator('/ri/r/c', { range_end => '/ri/r/h', page_size => 2 });
    my ($pages) = walk($it);
    is_deeply [ map { [ map { $_->{key} } @{ $_->{kvs} } ] } @$pages ],
        [ [ '/ri/r/c', '/ri/r/d' ], [ '/ri/r/e', '/ri/r/f' ], [ '/ri/r/g' ] ], 'range_end: the range in pages of 2';

    ok_call($c, 'put', "zz/$_", $_) for 1 .. 5;
    my ($tail) = walk($c->range_iterator('zz/3', { range_end => "\0", page_size => 2 }));
    is_deeply keys_of($tail), [ 'zz/3', 'zz/4', 'zz/5' ], 'range_end "\0": everything from the key on';

    my $one = $c->range_iterator('/ri/r/e', { page_size => 5 });
    my ($p1) = next_page($one);
    is_deeply [ map { $_->{key} } @{ $p1->{kvs} } ], ['/ri/r/e'], 'a single key';
    is $p1->{kvs}[0]{value}, 'val-e', 'with its value';
    is $p1->{more}, 0, 'and no more';
    my ($p2) = next_page($one);
    is scalar(@{ $p2->{kvs} }), 0, 'then an empty page';

    my ($missing) = next_page($c->range_iterator('/ri/r/nothing'));
    is scalar(@{ $missing->{kvs} }), 0, 'a missing single key: the first page is empty';

    my $none = $c->range_iterator('/ri/none/', { prefix => 1, page_size => 3 });
    my ($e1, $ee) = next_page($none);
    ok !$ee, 'empty prefix: no error';
    is scalar(@{ $e1->{kvs} }), 0, 'empty prefix: the first page is empty';
    is $e1->{more}, 0, 'more 0';
    ok $e1->{header}{revision} > 0, 'with the server\'s header';
    my ($e2) = next_page($none);
    is scalar(@{ $e2->{kvs} }), 0, 'and so is the next';

    my ($ko) = walk($c->range_iterator('/ri/r/', { prefix => 1, keys_only => 1, page_size => 4 }));
    is_deeply keys_of($ko), [ map { "/ri/r/$_" } 'a' .. 'j' ], 'keys_only: every key';
    is_deeply [ map { $_->{value} } map { @{ $_->{kvs} } } @$ko ], [ ('') x 10 ], 'keys_only: no values';

    my ($opts) = walk($c->range_iterator('/ri/r/', { prefix => 1, page_size => 3, serializable => 1,
        timeout => 5, sort_order => 'ASCEND', sort_target => 'key', revision => 0 }));
    is_deeply keys_of($opts), [ map { "/ri/r/$_" } 'a' .. 'j' ],
        'serializable, timeout, key order asked for explicitly, revision 0';

    my $all_count = ok_call($c, 'get', '', { prefix => 1, count_only => 1 })->{count};
    my ($all) = walk($c->range_iterator('', { prefix => 1, page_size => 700 }));
    is scalar(@{ keys_of($all) }), $all_count, 'empty key with prefix: the whole keyspace';
}

# --- binary and UTF-8 prefixes ---------------------------------------------------
{
    my @in = ("ff/\xff", "ff/\xff\x00", "ff/\xff\xff", "ff/\xff\xff\x01");
    ok_call($c, 'put', $_, 'x') for @in, "ff/\xfe", 'ff0';
    my ($pages) = walk($c->range_iterator("ff/\xff", { prefix => 1, page_size => 1 }));
    is_deeply keys_of($pages), \@in, 'a prefix ending in 0xff: its keys only, one per page';

    my $city = 'Zürich/';
    ok_call($c, 'put', "${city}$_", $_) for 1 .. 3;
    my ($u) = walk($c->range_iterator($city, { prefix => 1, page_size => 2 }));
    my $bytes = $city;
    utf8::encode($bytes);
    is_deeply keys_of($u), [ map { "$bytes$_" } 1 .. 3 ], 'a UTF-8 flagged prefix reads its UTF-8 bytes';
}

# --- a client with a namespace ------------------------------------------------------
{
    my $ns = EV::Etcd->new(endpoints => [ $srv->endpoint ], namespace => 'ns50/');
    ok_call($ns, 'put', $_, "in-$_") for '', 'a', 'b', 'c', "c\xff";
    ok_call($c, 'put', 'ns50', 'outside');
    ok_call($c, 'put', 'ns500', 'outside');
    my ($all) = walk($ns->range_iterator('', { prefix => 1, page_size => 2 }));
    is_deeply keys_of($all), [ '', 'a', 'b', 'c', "c\xff" ],
        'namespace, prefix \'\': every key of the namespace (its own name too), unprefixed';
    is_deeply [ map { scalar @{ $_->{kvs} } } @$all ], [ 2, 2, 1 ], 'in pages of 2';
    my ($sub) = walk($ns->range_iterator('b', { range_end => "\0", page_size => 1 }));
    is_deeply keys_of($sub), [ 'b', 'c', "c\xff" ], 'namespace, range_end "\0": to the end of the namespace';
}

# --- compaction in the middle of a walk ---------------------------------------------
{
    load(map { (sprintf('/ri/cmp/%02d', $_), $_) } 0 .. 19);
    my $it = $c->range_iterator('/ri/cmp/', { prefix => 1, page_size => 5 });
    my ($p, $err) = next_page($it);
    is scalar(@{ $p->{kvs} }), 5, 'first page before the compaction';
    my $rev = ok_call($c, 'put', '/ri/cmp-bump', 1)->{header}{revision};
    ok_call($c, 'compact', $rev, { physical => 1 });

    my ($gone, $gerr) = next_page($it);
    ok !$gone, 'no page after the snapshot was compacted away';
    ok $gerr, 'an error instead';
    is $gerr->{status}, 'OUT_OF_RANGE', 'OUT_OF_RANGE';
    is $gerr->{source}, 'get', 'source get';
    is $gerr->{retryable}, 0, 'not retryable';
    like $gerr->{message}, qr/required revision has been compacted/, "the server's message";
    my (undef, $plain) = call($c, 'get', '/ri/cmp/05', { revision => $it->revision });
    is_deeply $gerr, $plain, 'exactly the error get gives';

    my (undef, $again) = next_page($it);
    is $again && $again->{status}, 'OUT_OF_RANGE', 'next again asks for the same page again';
    ok !$it->done, 'the iterator is not done';
}

# --- an iterator dropped with a page in flight ---------------------------------------
{
    my $got;
    {
        my $it = $c->range_iterator('/ri/r/', { prefix => 1, page_size => 2 });
        $it->next(sub { $got = $_[0] });
    }
    ok run_until(sub { $got }, 10), 'a dropped iterator still delivers the page in flight';
    is scalar(@{ $got->{kvs} }), 2, 'the whole page';
}

# --- bad arguments: croaks at the caller's line ------------------------------------------
{
    my $file = __FILE__;
    my @cases = (
        [ { page_size => 0 },       qr/^range_iterator: page_size must be a positive integer, got '0'/ ],
        [ { page_size => -1 },      qr/^range_iterator: page_size must be a positive integer, got '-1'/ ],
        [ { page_size => 'abc' },   qr/^range_iterator: page_size must be a positive integer, got 'abc'/ ],
        [ { page_size => 1.5 },     qr/^range_iterator: page_size must be a positive integer, got '1.5'/ ],
        [ { page_size => '' },      qr/^range_iterator: page_size must be a positive integer, got ''/ ],
        [ { page_size => [] },      qr/^range_iterator: page_size must be a positive integer/ ],
        [ { limit => 10 },          qr/^range_iterator: limit is not an option here: the iterator sets it \(use page_size\)/ ],
        [ { count_only => 1 },      qr/^range_iterator: count_only makes no sense for an iterator/ ],
        [ { prefx => 1 },           qr/^range_iterator: unknown option 'prefx'/ ],
        [ { sort_order => 'descend' }, qr/^range_iterator: pages come in key order; sort_order 'descend' is not supported/ ],
        [ { sort_target => 'mod' }, qr/^range_iterator: pages come in key order; sort_target 'mod' is not supported/ ],
        [ { revision => 'x' },      qr/^range_iterator: revision must be an integer, got 'x'/ ],
        [ { revision => -3 },       qr/^range_iterator: revision must not be negative, got '-3'/ ],
        [ { range_end => [] },      qr/^range_iterator: range_end must be a string, not a reference/ ],
        [ 'notahash',               qr/^range_iterator: options must be a hash reference/ ],
        [ [],                       qr/^range_iterator: options must be a hash reference/ ],
        [ sub { 1 },                qr/^range_iterator: takes a key and an options hash, no callback/ ],
    );
    for my $case (@cases) {
        my ($opt, $re) = @$case;
        my $line = __LINE__ + 1;
        my $ok = eval { $c->range_iterator('/ri/', $opt); 1 };
        ok !$ok, "croaks: $re";
        like $@, qr/$re.* at \Q$file\E line $line\.$/, '... naming the problem, at the caller\'s line';
    }
    my $line = __LINE__ + 1;
    eval { $c->range_iterator(undef, { prefix => 1 }) };
    like $@, qr/^range_iterator: key must be defined at \Q$file\E line $line\.$/, 'undefined key';
    eval { $c->range_iterator([], { prefix => 1 }) };
    like $@, qr/^range_iterator: key must be a string, not a reference/, 'key as a reference';
    eval { EV::Etcd->can('range_iterator')->(bless({}, 'Some::Thing'), '/ri/') };
    like $@, qr/^range_iterator: called on something that is not a live EV::Etcd client/, 'wrong invocant';
    ok eval { $c->range_iterator('/ri/', { page_size => undef, prefix => 1 }); 1 }, 'page_size undef: the default';
    ok eval { $c->range_iterator('/ri/', { page_size => ' 25 ' }); 1 }, 'page_size as a decimal string';

    my $it = $c->range_iterator('/ri/r/', { prefix => 1, page_size => 2 });
    $line = __LINE__ + 1;
    eval { $it->next };
    like $@, qr/^callback must be a code reference \(next\) at \Q$file\E line $line\.$/, 'next without a callback';
    eval { $it->next('x') };
    like $@, qr/^callback must be a code reference \(next\)/, 'next with a non-code callback';
    eval { EV::Etcd::RangeIterator::next({}, sub { }) };
    like $@, qr/^next: called on something that is not a range iterator/, 'next on something else';

    my $done;
    $it->next(sub { $done = 1 });
    $line = __LINE__ + 1;
    my $ok = eval { $it->next(sub { }); 1 };
    ok !$ok, 'a second next while the first is in flight croaks';
    like $@, qr/^next: the previous page has not arrived yet .* at \Q$file\E line $line\.$/, '... saying why, at the caller\'s line';
    ok run_until(\$done, 10), 'the first next still answers';
    my ($p) = next_page($it);
    is_deeply [ map { $_->{key} } @{ $p->{kvs} } ], [ '/ri/r/c', '/ri/r/d' ], 'and the walk goes on';

    # a value only get itself checks: its croak comes from next, at next's caller
    my $bad = $c->range_iterator('/ri/r/', { prefix => 1, timeout => -1 });
    $line = __LINE__ + 1;
    eval { $bad->next(sub { }) };
    like $@, qr/^get: timeout must be a finite number of seconds, 0 or more at \Q$file\E line $line\.$/,
        "get's own croak, at next's caller";
    $ok = eval { $bad->next(sub { }); 1 };
    ok !$ok && $@ !~ /previous page/, 'a croaking next leaves nothing in flight';

    my $closed = EV::Etcd->new(endpoints => [ $srv->endpoint ]);
    my $cit = $closed->range_iterator('/ri/', { prefix => 1 });
    $closed->close;
    $line = __LINE__ + 1;
    eval { $cit->next(sub { }) };
    like $@, qr/^EV::Etcd: this client was closed at \Q$file\E line $line\.$/, 'a closed client: next croaks';
}

done_testing;
