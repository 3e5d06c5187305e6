package MirrorTest;
# Helpers of the mirror tests (t/72-mirror.t, t/73-mirror-faults.t):
#   my $rec = mirror_rec($client, $prefix, \%opt);  # $rec->{m}: the mirror
#   check_view($rec, $reader, $name, %o);  # view == a fresh read at its revision
#   random_writes($writer, $prefix, $n, %o); # puts, deletes, txns, range deletes
# The recorder keeps its own copy of the view, built from the ready
# message's snapshot and every batch since, and notes anything wrong in a
# batch (a revision that does not go up, a prev_value that is not what the
# key held) in $rec->{bad}.
use strict;
use warnings;

use Exporter 'import';
use Test::More;
use EV;
use EtcdTest qw(call ok_call run_until);

our @EXPORT = qw(mirror_rec check_view random_writes write_retrying snapshot_of);

sub _show { defined $_[0] ? "'$_[0]'" : 'undef' }

sub mirror_rec {
    my ($client, $prefix, $opt) = @_;
    my $rec = { msgs => [], errs => [], readies => [], bad => [], shadow => undef };
    $rec->{m} = $client->mirror($prefix, $opt // {}, sub {
        my ($msg, $err) = @_;
        if ($err) { push @{ $rec->{errs} }, $err; return }
        my $m = $rec->{m};
        if ($msg->{ready}) {
            push @{ $rec->{readies} }, $msg;
            $rec->{shadow} = { map { $_ => [ $m->get($_), $m->mod_revision($_) ] } $m->keys };
            $rec->{last} = $msg->{revision};
            return;
        }
        push @{ $rec->{msgs} }, $msg;
        my $bad = $rec->{bad};
        push @$bad, "batch before ready" unless $rec->{shadow};
        push @$bad, "revision $msg->{revision} after $rec->{last}"
            unless defined $rec->{last} && $msg->{revision} > $rec->{last};
        push @$bad, "batch at $msg->{revision}, view at " . ($m->revision // 'undef')
            unless ($m->revision // -1) == $msg->{revision};
        $rec->{last} = $msg->{revision};
        my $shadow = $rec->{shadow} //= {};
        for my $c (@{ $msg->{changes} }) {
            my $before = $shadow->{ $c->{key} };
            my $prev = $before ? $before->[0] : undef;
            push @$bad, "$c->{type} $c->{key}: prev_value " . _show($c->{prev_value}) . ', held ' . _show($prev)
                unless (defined $prev ? $prev : "\0undef") eq (defined $c->{prev_value} ? $c->{prev_value} : "\0undef");
            if ($c->{type} eq 'PUT') {
                push @$bad, "PUT $c->{key}: no value" unless defined $c->{value};
                push @$bad, "PUT $c->{key} at $c->{revision} in a batch at $msg->{revision}"
                    if !$msg->{resync} && $c->{revision} != $msg->{revision};
                $shadow->{ $c->{key} } = [ $c->{value}, $c->{revision} ];
            } elsif ($c->{type} eq 'DELETE') {
                push @$bad, "DELETE $c->{key}: a value" if defined $c->{value};
                push @$bad, "DELETE of $c->{key}, which was not there" unless $before;
                delete $shadow->{ $c->{key} };
            } else {
                push @$bad, "unknown type $c->{type}";
            }
        }
    });
    return $rec;
}

# key => [ value, mod_revision ] of what the mirror holds now.
sub snapshot_of {
    my ($m) = @_;
    return { map { $_ => [ $m->get($_), $m->mod_revision($_) ] } $m->keys };
}

# Waits until the mirror has reached $rev, then compares its view with a
# get of the prefix at the mirror's revision. %o: strip => a namespace to
# take off the keys read (when $reader sees more than the mirror's client),
# prefix => what to read (default the mirror's prefix).
sub check_view {
    my ($rec, $reader, $name, %o) = @_;
    my $m = $rec->{m};
    if (defined $o{until}) {
        ok run_until(sub { ($m->revision // 0) >= $o{until} || @{ $rec->{errs} } }, $o{wait} // 20),
            "$name: the mirror reaches revision $o{until}"
            or diag 'at ' . ($m->revision // 'undef');
    }
    my $rev = $m->revision;
    my $prefix = $o{prefix} // $m->prefix;
    my ($r, $err);
    for (1 .. 20) {    # a read during a leader change may fail: try again
        ($r, $err) = call($reader, 'get', $prefix, { prefix => 1, revision => $rev });
        last unless $err && $err->{retryable};
        run_until(sub { 0 }, 0.5);
    }
    die "get at $rev failed: $err->{status}: $err->{message}\n" if $err;
    my $strip = defined $o{strip} ? length $o{strip} : 0;
    my %want = map { substr($_->{key}, $strip) => [ $_->{value}, $_->{mod_revision} ] } @{ $r->{kvs} };
    my $got = snapshot_of($m);
    my $ok = is_deeply($got, \%want, sprintf '%s: the view equals a fresh read at revision %d (%d keys)',
                       $name, $rev, scalar keys %want);
    $ok &&= is_deeply($rec->{shadow}, $got, "$name: the batches delivered add up to the view");
    is_deeply($rec->{bad}, [], "$name: every batch was consistent") or splice @{ $rec->{bad} };
    is_deeply([ map { "$_->{status}: $_->{message}" } @{ $rec->{errs} } ], [], "$name: no error");
    is scalar @{ $rec->{readies} }, 1, "$name: one ready message";
    return $ok;
}

# A write that is tried again while it fails for a transient reason (a
# leader election, an endpoint that went away).
sub write_retrying {
    my ($client, $method, @args) = @_;
    for my $try (1 .. 60) {
        my ($resp, $err) = call($client, $method, @args);
        return $resp unless $err;
        die "$method failed: $err->{status}: $err->{message}\n" unless $err->{retryable};
        run_until(sub { 0 }, 0.25);
    }
    die "$method: no success after 60 tries\n";
}

# $n random changes under $prefix, keys from a pool of $o{pool} (default
# 600): puts (new and old keys), deletes, transactions of several keys,
# deletes of a small sub-prefix. Half are sent at once (pipelined), half
# one after the other. Returns the revision of the last one.
sub random_writes {
    my ($client, $prefix, $n, %o) = @_;
    my $pool = $o{pool} // 600;
    my $seq = ++$o{seq_base};
    my $key = sub { sprintf '%sk%03d/%02d', $prefix, int(rand $pool) / 10, int(rand 10) };
    my @ops;
    for my $i (1 .. $n) {
        my $r = rand;
        my $v = "v$i-" . int(rand 1e6) . ('x' x int(rand 40));
        if    ($r < 0.55) { push @ops, [ 'put', $key->(), $v ] }
        elsif ($r < 0.80) { push @ops, [ 'delete', $key->() ] }
        elsif ($r < 0.95) {
            my %k = map { $key->() => 1 } 1 .. 4;
            my @k = sort keys %k;
            my $del = @k > 1 ? pop @k : undef;
            push @ops, [ 'txn', [], [ (map { { put => { key => $_, value => "t$v" } } } @k),
                                      ($del ? { delete => { key => $del } } : ()) ], [] ];
        } else {
            push @ops, [ 'delete', sprintf('%sk%03d/', $prefix, int(rand $pool) / 10), { prefix => 1 } ];
        }
    }
    my $last = 0;
    my $half = int(@ops / 2);
    # first half: pipelined
    my ($left, @errs) = ($half);
    my @timers;
    my $send;
    $send = sub {
        my ($op, $tries) = @_;
        my ($method, @args) = @$op;
        $client->$method(@args, sub {
            my ($resp, $err) = @_;
            if ($err && $o{retry} && $err->{retryable} && $tries < 60) {
                push @timers, EV::timer(0.25, 0, sub { $send->($op, $tries + 1) });
                return;
            }
            $left--;
            if ($err) { push @errs, $err; return }
            $last = $resp->{header}{revision} if $resp->{header}{revision} > $last;
        });
    };
    $send->($_, 1) for @ops[ 0 .. $half - 1 ];
    run_until(sub { !$left }, 40) or die "random_writes: pipelined writes unanswered\n";
    undef $send;
    die "random_writes: $errs[0]{status}: $errs[0]{message}\n" if @errs;
    for my $op (@ops[ $half .. $#ops ]) {
        my ($method, @args) = @$op;
        my $resp = $o{retry} ? write_retrying($client, $method, @args) : ok_call($client, $method, @args);
        $last = $resp->{header}{revision} if $resp->{header}{revision} > $last;
    }
    return $last;
}

1;
