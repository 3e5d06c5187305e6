#!/usr/bin/env perl
# put / get / delete against a real etcd, with every option they take, and
# the response header on every answer.
use strict;
use warnings;

use Test::More;
use lib 't/lib';
use EtcdTest qw(:DEFAULT wait_for);

need_etcd();

use EV;
use EV::Etcd;

my $srv = start_etcd();
my $c   = EV::Etcd->new(endpoints => [ $srv->endpoint ], timeout => 20);


# Every answer must carry a complete header from the same cluster/member,
# and the store revision never goes backwards (writes move it forward).
my ($cluster_id, $member_id);
my $last_rev = 0;

sub check_header {
    my ($what, $resp, $write) = @_;
    my $h = ref $resp eq 'HASH' ? $resp->{header} : undef;
    ok ref $h eq 'HASH', "$what: response has a header" or return;
    is_deeply [ sort keys %$h ], [qw(cluster_id member_id raft_term revision)],
        "$what: header keys";
    ok $h->{cluster_id} && $h->{member_id}, "$what: cluster_id and member_id are non-zero";
    cmp_ok $h->{raft_term}, '>=', 1, "$what: raft_term";
    $cluster_id //= $h->{cluster_id};
    $member_id  //= $h->{member_id};
    is $h->{cluster_id}, $cluster_id, "$what: same cluster_id as before";
    is $h->{member_id},  $member_id,  "$what: same member_id as before";
    if ($write) {
        cmp_ok $h->{revision}, '>', $last_rev, "$what: write moved the revision forward";
    } else {
        cmp_ok $h->{revision}, '>=', $last_rev, "$what: revision did not go backwards";
    }
    $last_rev = $h->{revision} if $h->{revision} > $last_rev;
    return $h->{revision};
}

sub ok_resp {
    my ($what, $resp, $err, $write) = @_;
    ok !$err, "$what: no error" or diag explain $err;
    ok ref $resp eq 'HASH', "$what: response is a hash" or return;
    return check_header($what, $resp, $write);
}

sub put_ok {
    my ($key, $value, $opt, $what) = @_;
    $what //= "put $key";
    my ($r, $e) = wait_for($what, sub {
        $opt ? $c->put($key, $value, $opt, $_[0]) : $c->put($key, $value, $_[0]);
    });
    ok_resp($what, $r, $e, 1);
    return $r;
}

sub get_ok {
    my ($key, $opt, $what) = @_;
    $what //= "get $key";
    my ($r, $e) = wait_for($what, sub {
        $opt ? $c->get($key, $opt, $_[0]) : $c->get($key, $_[0]);
    });
    ok_resp($what, $r, $e, 0);
    return $r;
}

sub del_ok {
    my ($key, $opt, $what, $write) = @_;
    $what //= "delete $key";
    my ($r, $e) = wait_for($what, sub {
        $opt ? $c->delete($key, $opt, $_[0]) : $c->delete($key, $_[0]);
    });
    ok_resp($what, $r, $e, $write // 1);
    return $r;
}

sub keys_of { [ map { $_->{key} } @{ $_[0]{kvs} || [] } ] }

# --- put and get: the basics -------------------------------------------------
my $r1 = put_ok('kv/one', 'first');
ok !exists $r1->{prev_kv}, 'put without prev_kv: no prev_kv in the response';
my $rev1 = $r1->{header}{revision};

my $r2 = put_ok('kv/one', 'second', { prev_kv => 1 }, 'put with prev_kv');
my $rev2 = $r2->{header}{revision};
is_deeply $r2->{prev_kv}, {
    key => 'kv/one', value => 'first', create_revision => $rev1,
    mod_revision => $rev1, version => 1, lease => 0,
}, 'prev_kv is the value that was replaced, with all its fields';

my $r3 = put_ok('kv/fresh', 'x', { prev_kv => 1 }, 'put with prev_kv on a new key');
ok !defined $r3->{prev_kv}, 'no prev_kv when there was no previous value';

my $g = get_ok('kv/one');
is_deeply $g->{kvs}, [ {
    key => 'kv/one', value => 'second', create_revision => $rev1,
    mod_revision => $rev2, version => 2, lease => 0,
} ], 'get returns the kv with every field';
is $g->{count}, 1, 'count 1';
is $g->{more}, 0, 'more 0';

$g = get_ok('kv/absent');
is_deeply $g->{kvs}, [], 'get of a missing key: kvs is an empty array';
is $g->{count}, 0, '... count 0';
is $g->{more}, 0, '... more 0';

# --- lease, ignore_value, ignore_lease ------------------------------------------
my ($lg1, $lerr1) = wait_for('lease_grant', sub { $c->lease_grant(120, $_[0]) });
my ($lg2, $lerr2) = wait_for('lease_grant', sub { $c->lease_grant(120, $_[0]) });
ok !$lerr1 && !$lerr2, 'two leases granted' or diag explain [$lerr1, $lerr2];
my ($lease1, $lease2) = ($lg1->{id}, $lg2->{id});
ok $lease1 && $lease2 && $lease1 != $lease2, 'distinct non-zero lease ids';
$last_rev = $lg2->{header}{revision} if $lg2->{header}{revision} > $last_rev;

put_ok('kv/leased', 'v1', { lease => $lease1 }, 'put with lease');
$g = get_ok('kv/leased');
is $g->{kvs}[0]{lease}, $lease1, 'the key carries the lease';
is $g->{kvs}[0]{value}, 'v1', '... and the value';

{
    my ($ttl) = wait_for('lease_time_to_live',
        sub { $c->lease_time_to_live($lease1, { keys => 1 }, $_[0]) });
    is_deeply $ttl->{keys}, ['kv/leased'], 'etcd lists the key under the lease';
}

put_ok('kv/leased', undef, { ignore_value => 1, lease => $lease2 },
    'put ignore_value with a new lease (value undef)');
$g = get_ok('kv/leased');
is $g->{kvs}[0]{value}, 'v1', 'ignore_value kept the stored value';
is $g->{kvs}[0]{lease}, $lease2, '... and moved the key to the new lease';
is $g->{kvs}[0]{version}, 2, '... as a new version';

put_ok('kv/leased', 'v2', { ignore_lease => 1 }, 'put ignore_lease');
$g = get_ok('kv/leased');
is $g->{kvs}[0]{value}, 'v2', 'ignore_lease stored the new value';
is $g->{kvs}[0]{lease}, $lease2, '... and kept the lease';

put_ok('kv/leased', 'v3', undef, 'plain put on a leased key');
$g = get_ok('kv/leased');
is $g->{kvs}[0]{value}, 'v3', 'plain put stored the value';
is $g->{kvs}[0]{lease}, 0, '... and detached the key from its lease';

put_ok('kv/leased', 'v4', { lease => $lease1, prev_kv => 1, ignore_lease => 0 },
    'put with lease and prev_kv together');
$g = get_ok('kv/leased');
is $g->{kvs}[0]{lease}, $lease1, 'lease set again';

# --- a population to sort and filter ---------------------------------------------
# Keys r/a..r/e are created in the order c a e b d, then updated so that the
# order by key, version, create, mod and value differ from each other.
my %model;    # key => {value, create, mod, version}
my %rev_at;   # label => revision
sub mput {
    my ($k, $v) = @_;
    my $r = put_ok("r/$k", $v, undef, "put r/$k=$v");
    my $rev = $r->{header}{revision};
    my $m = $model{$k} //= { create => $rev, version => 0 };
    $m->{mod} = $rev;
    $m->{version}++;
    $m->{value} = $v;
    return $rev;
}
$rev_at{c_first} = mput(c => 'q-old');
mput(a => 'm');
mput(e => 'f-old');
mput(b => 'z-old');
mput(d => 'a-old');
mput($_->[0], $_->[1]) for [d => 'a1'], [b => 'z1'], [d => 'a2'], [e => 'e1'],
    [b => 'z2'], [d => 'a3'], [c => 'q'], [b => 'z'], [e => 'f'], [d => 'a'];

my %order = (
    key     => [ sort keys %model ],
    version => [ sort { $model{$a}{version} <=> $model{$b}{version} } keys %model ],
    create  => [ sort { $model{$a}{create} <=> $model{$b}{create} } keys %model ],
    mod     => [ sort { $model{$a}{mod} <=> $model{$b}{mod} } keys %model ],
    value   => [ sort { $model{$a}{value} cmp $model{$b}{value} } keys %model ],
);
is_deeply \%order, {
    key     => [qw(a b c d e)],
    version => [qw(a c e b d)],
    create  => [qw(c a e b d)],
    mod     => [qw(a c b e d)],
    value   => [qw(d e a c b)],
}, 'the population has a distinct order for every sort target';
my @all = map { "r/$_" } @{ $order{key} };

# prefix
$g = get_ok('r/', { prefix => 1 }, 'get prefix');
is_deeply keys_of($g), \@all, 'prefix returns every key under it, in key order';
is $g->{count}, 5, 'count 5';
is $g->{more}, 0, 'more 0';
is_deeply { map { ($_->{key} => [ @$_{qw(value version create_revision mod_revision)} ]) } @{ $g->{kvs} } },
    { map { ("r/$_" => [ @{ $model{$_} }{qw(value version create mod)} ]) } keys %model },
    'value, version, create_revision and mod_revision of every key match';

$g = get_ok('r/', { prefix => 0 }, 'prefix => 0 is an exact key');
is $g->{count}, 0, 'prefix false: the key r/ itself, which does not exist';

$g = get_ok('', { prefix => 1, keys_only => 1 }, 'empty key with prefix');
is_deeply keys_of($g), [ 'kv/fresh', 'kv/leased', 'kv/one', @all ],
    'empty key with prefix means every key';

# range_end
$g = get_ok('r/b', { range_end => 'r/d' }, 'get range_end');
is_deeply keys_of($g), [qw(r/b r/c)], 'range_end is exclusive';
$g = get_ok('r/b', { range_end => "\0" }, 'get range_end "\\0"');
is_deeply keys_of($g), [qw(r/b r/c r/d r/e)], 'range_end "\\0" means every key from key on';

# limit: count is the full match, more says whether kvs was cut
$g = get_ok('r/', { prefix => 1, limit => 2 }, 'get limit 2');
is_deeply keys_of($g), [qw(r/a r/b)], 'limit 2 returns the first two keys';
is $g->{count}, 5, 'count is still the full number of matches';
is $g->{more}, 1, 'more is 1';
$g = get_ok('r/', { prefix => 1, limit => 5 }, 'get limit 5');
is scalar @{ $g->{kvs} }, 5, 'limit equal to the number of keys returns all';
is $g->{more}, 0, 'more is 0 when nothing was left out';
$g = get_ok('r/', { prefix => 1, limit => 0 }, 'get limit 0');
is scalar @{ $g->{kvs} }, 5, 'limit 0 means no limit';
$g = get_ok('r/', { prefix => 1, limit => 2, sort_order => 'descend' }, 'limit with descend');
is_deeply keys_of($g), [qw(r/e r/d)], 'limit applies after sorting';
is $g->{more}, 1, '... more 1';

# sort_order / sort_target
for my $target (qw(key version create mod value)) {
    my @asc = map { "r/$_" } @{ $order{$target} };
    $g = get_ok('r/', { prefix => 1, sort_target => $target, sort_order => 'ascend' },
        "sort $target ascend");
    is_deeply keys_of($g), \@asc, "sort_target $target ascend";
    $g = get_ok('r/', { prefix => 1, sort_target => $target, sort_order => 'descend' },
        "sort $target descend");
    is_deeply keys_of($g), [ reverse @asc ], "sort_target $target descend";
}
$g = get_ok('r/', { prefix => 1, sort_order => 'DESCEND' }, 'sort_order upper case');
is_deeply keys_of($g), [ reverse @all ], 'sort_order is case-insensitive; default target is key';
$g = get_ok('r/', { prefix => 1, sort_order => 'none' }, 'sort_order none');
is_deeply keys_of($g), \@all, 'sort_order none: etcd key order';
$g = get_ok('r/', { prefix => 1, sort_target => 'value' }, 'sort_target alone');
is_deeply keys_of($g), [ map { "r/$_" } @{ $order{value} } ],
    'sort_target without sort_order sorts ascending (etcd rule)';
$g = get_ok('r/', { prefix => 1, sort_target => 'VERSION', sort_order => 'Descend' },
    'sort target/order in mixed case');
is_deeply keys_of($g), [ reverse map { "r/$_" } @{ $order{version} } ], '... honoured';

# revision: a historic read
$g = get_ok('r/c', { revision => $rev_at{c_first} }, 'get at an old revision');
is $g->{kvs}[0]{value}, 'q-old', 'historic read returns the value of that revision';
is $g->{kvs}[0]{version}, 1, '... with the version of that time';
cmp_ok $g->{header}{revision}, '>', $rev_at{c_first}, 'the header still shows the current revision';
$g = get_ok('r/', { prefix => 1, revision => $rev_at{c_first} }, 'prefix at an old revision');
is_deeply keys_of($g), ['r/c'], 'only the keys that existed then';
$g = get_ok('r/c', { revision => 0 }, 'revision 0');
is $g->{kvs}[0]{value}, 'q', 'revision 0 means the current revision';

# keys_only and count_only
$g = get_ok('r/', { prefix => 1, keys_only => 1 }, 'keys_only');
is_deeply keys_of($g), \@all, 'keys_only returns the keys';
is_deeply [ map { $_->{value} } @{ $g->{kvs} } ], [ ('') x 5 ], 'keys_only: every value is empty';
is_deeply [ map { $_->{version} } @{ $g->{kvs} } ], [ map { $model{$_}{version} } @{ $order{key} } ],
    'keys_only keeps the metadata';
$g = get_ok('r/', { prefix => 1, count_only => 1 }, 'count_only');
is_deeply $g->{kvs}, [], 'count_only: kvs is empty';
is $g->{count}, 5, 'count_only: count 5';
$g = get_ok('r/', { prefix => 1, count_only => 0, keys_only => 0 }, 'count_only/keys_only false');
is $g->{kvs}[0]{value}, $model{a}{value}, 'false flags change nothing';

# serializable
$g = get_ok('r/d', { serializable => 1 }, 'serializable get');
is $g->{kvs}[0]{value}, 'a', 'serializable read sees the value';
is $g->{kvs}[0]{version}, 5, '... and its version';

# min/max mod/create revision filters
$g = get_ok('r/', { prefix => 1, min_mod_revision => $model{b}{mod} }, 'min_mod_revision');
is_deeply keys_of($g), [qw(r/b r/d r/e)], 'min_mod_revision keeps keys modified at or after it';
$g = get_ok('r/', { prefix => 1, max_mod_revision => $model{c}{mod} }, 'max_mod_revision');
is_deeply keys_of($g), [qw(r/a r/c)], 'max_mod_revision keeps keys modified at or before it';
$g = get_ok('r/', { prefix => 1, min_create_revision => $model{e}{create} }, 'min_create_revision');
is_deeply keys_of($g), [qw(r/b r/d r/e)], 'min_create_revision';
$g = get_ok('r/', { prefix => 1, max_create_revision => $model{a}{create} }, 'max_create_revision');
is_deeply keys_of($g), [qw(r/a r/c)], 'max_create_revision';
$g = get_ok('r/', { prefix => 1, min_mod_revision => $model{c}{mod},
                    max_mod_revision => $model{e}{mod} }, 'mod revision window');
is_deeply keys_of($g), [qw(r/b r/c r/e)], 'min and max mod_revision together';
$g = get_ok('r/', { prefix => 1, min_create_revision => $model{a}{create},
                    max_create_revision => $model{b}{create},
                    sort_order => 'descend', sort_target => 'create' }, 'create window sorted');
is_deeply keys_of($g), [qw(r/b r/e r/a)], 'create_revision window with sorting';

# --- delete ----------------------------------------------------------------------
put_ok($_, "val-$_") for qw(d d/1 d/2 d/3 d0 x/a x/b x/c x/d x/e);

my $d = del_ok('d/2', undef, 'delete one key');
is $d->{deleted}, 1, 'deleted 1';
is_deeply $d->{prev_kvs}, [], 'prev_kvs is present and empty without prev_kv';
is get_ok('d/2')->{count}, 0, 'the key is gone';

$d = del_ok('d/2', undef, 'delete a missing key', 0);
is $d->{deleted}, 0, 'deleting a missing key deletes 0';
is_deeply $d->{prev_kvs}, [], '... prev_kvs empty';

$d = del_ok('d/', { prefix => 1, prev_kv => 1 }, 'delete prefix with prev_kv');
is $d->{deleted}, 2, 'prefix delete removed d/1 and d/3';
is_deeply [ map { [ $_->{key}, $_->{value} ] } @{ $d->{prev_kvs} } ],
    [ [ 'd/1', 'val-d/1' ], [ 'd/3', 'val-d/3' ] ], 'prev_kvs holds the deleted pairs';
ok $d->{prev_kvs}[0]{create_revision} && $d->{prev_kvs}[0]{mod_revision}
    && $d->{prev_kvs}[0]{version} == 1, 'prev_kvs entries carry their metadata';
is_deeply keys_of(get_ok('d', { range_end => 'd1' })), [qw(d d0)],
    'keys just outside the prefix (d, d0) survive';

$d = del_ok('x/b', { range_end => 'x/d' }, 'delete range_end');
is $d->{deleted}, 2, 'range delete removed 2 keys';
is_deeply $d->{prev_kvs}, [], 'no prev_kvs without the option';
is_deeply keys_of(get_ok('x/', { prefix => 1 })), [qw(x/a x/d x/e)], 'range_end is exclusive for delete';

$d = del_ok('x/a', { range_end => 'x/z', prev_kv => 1 }, 'delete range_end with prev_kv');
is $d->{deleted}, 3, 'deleted 3';
is_deeply [ map { $_->{key} } @{ $d->{prev_kvs} } ], [qw(x/a x/d x/e)], 'prev_kvs in key order';

$d = del_ok('d0', { prev_kv => 1 }, 'delete one key with prev_kv');
is $d->{deleted}, 1, 'deleted 1';
is $d->{prev_kvs}[0]{value}, 'val-d0', 'prev_kvs holds the old value';

$d = del_ok('kv/', { prefix => 1 }, 'delete another prefix');
is $d->{deleted}, 3, 'three kv/ keys deleted';

# a key on a revoked lease disappears
put_ok('kv/temp', 't', { lease => $lease2 }, 'put on lease2');
{
    my ($r, $e) = wait_for('lease_revoke', sub { $c->lease_revoke($lease2, $_[0]) });
    ok !$e, 'lease revoked';
}
is get_ok('kv/temp')->{count}, 0, 'the key attached to the revoked lease is gone';

# --- every response carries the header; the store counted all our writes --------
$g = get_ok('', { prefix => 1, count_only => 1 }, 'final count');
is $g->{count}, 6, 'six keys left (d and r/a..r/e)';

done_testing;
