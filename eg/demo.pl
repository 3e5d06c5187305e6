#!/usr/bin/env perl
# A guided tour of EV::Etcd against a running etcd:
#
#   watch a prefix, put two keys, read them back by prefix, run a
#   compare-and-swap transaction that wins and one that loses, delete the
#   keys, wait until the watch has reported every change, cancel the watch,
#   and let EV::run return on its own.
#
# Usage:  EV_ETCD_ENDPOINT=127.0.0.1:2379 perl -Mblib eg/demo.pl
#
# Exits with status 0 when every step worked, 1 on the first error.
use strict;
use warnings;
use EV;
use EV::Etcd;

$| = 1;

my $endpoint = $ENV{EV_ETCD_ENDPOINT} || '127.0.0.1:2379';
my $prefix   = "/ev-etcd-demo/$$/";    # private to this run
my $key_a    = "${prefix}alpha";
my $key_b    = "${prefix}beta";

# Changes the watch must report before we are done:
# put alpha, put beta, CAS put alpha, delete alpha, delete beta.
my $expected_events = 5;
my $seen_events     = 0;
my $steps_done      = 0;

sub fail {
    my ($what, $err) = @_;
    my $why = ref $err ? "$err->{status} ($err->{source}): $err->{message}" : $err;
    print STDERR "ERROR: $what: $why\n";
    exit 1;
}

# An exception inside any callback is an error too (EV's default would
# only warn and carry on).
$EV::DIED = sub { fail('callback died', $@) };

print "connecting to $endpoint, working under $prefix\n";
my $etcd = EV::Etcd->new(endpoints => [$endpoint], timeout => 5);

# Safety net: give up if the whole tour takes unreasonably long.
my $deadline = EV::timer(30, 0, sub { fail('timeout', 'demo did not finish within 30 s') });

my $watch;
my $started = 0;

# Step 0: make sure the server answers at all (fails fast when it does not).
$etcd->status(sub {
    my ($resp, $err) = @_;
    fail('status', $err) if $err;
    print "step 0: server is etcd $resp->{version}, store at revision $resp->{header}{revision}\n";
    start_watch();
});

sub start_watch {
    print "  watching prefix $prefix\n";
    $watch = $etcd->watch($prefix, { prefix => 1, prev_kv => 1 }, \&on_watch);
}

sub on_watch {
    my ($msg, $err) = @_;
    fail('watch', $err) if $err;

    if ($msg->{created}) {
        print "watch $msg->{watch_id} created at revision $msg->{header}{revision}\n";
        # Only now is the watch guaranteed to see what we write next.
        put_keys() unless $started++;
    }
    for my $ev (@{ $msg->{events} }) {
        $seen_events++;
        my $kv = $ev->{kv};
        if ($ev->{type} eq 'PUT') {
            my $was = $ev->{prev_kv} ? " (was '$ev->{prev_kv}{value}')" : '';
            print "  watch: PUT    $kv->{key} = '$kv->{value}'$was at revision $kv->{mod_revision}\n";
        } else {
            print "  watch: DELETE $kv->{key} at revision $kv->{mod_revision}\n";
        }
    }
    finish_if_done();
}

sub put_keys {
    print "step 1: put $key_a and $key_b\n";
    $etcd->put($key_a, 'apple', sub {
        my ($resp, $err) = @_;
        fail("put $key_a", $err) if $err;
        print "  put $key_a = 'apple' -> revision $resp->{header}{revision}\n";
        $etcd->put($key_b, 'banana', sub {
            my ($resp, $err) = @_;
            fail("put $key_b", $err) if $err;
            print "  put $key_b = 'banana' -> revision $resp->{header}{revision}\n";
            get_prefix();
        });
    });
}

sub get_prefix {
    print "step 2: get everything under $prefix\n";
    $etcd->get($prefix, { prefix => 1 }, sub {
        my ($resp, $err) = @_;
        fail('get', $err) if $err;
        fail('get', "expected 2 keys, got $resp->{count}") unless $resp->{count} == 2;
        for my $kv (@{ $resp->{kvs} }) {
            print "  $kv->{key} = '$kv->{value}' (version $kv->{version}, mod_revision $kv->{mod_revision})\n";
        }
        my ($alpha) = grep { $_->{key} eq $key_a } @{ $resp->{kvs} };
        cas_win($alpha);
    });
}

# Compare-and-swap: replace alpha only if it was not modified since we read it.
sub cas_win {
    my ($alpha) = @_;
    print "step 3: txn: if $key_a still has mod_revision $alpha->{mod_revision}, set it to 'apricot'\n";
    $etcd->txn(
        compare  => [ { key => $key_a, target => 'mod', mod_revision => $alpha->{mod_revision} } ],
        success  => [ { put => { key => $key_a, value => 'apricot' } } ],
        failure  => [ { range => { key => $key_a } } ],
        callback => sub {
            my ($resp, $err) = @_;
            fail('txn (expected to succeed)', $err) if $err;
            fail('txn', 'the compare should have held') unless $resp->{succeeded};
            print "  succeeded: yes, revision $resp->{header}{revision}\n";
            cas_lose($alpha);
        },
    );
}

# The same compare again: alpha has changed meanwhile, so this one loses and
# the failure branch tells us what the value is now.
sub cas_lose {
    my ($alpha) = @_;
    print "step 4: the same txn again, with the now outdated mod_revision $alpha->{mod_revision}\n";
    $etcd->txn(
        [ { key => $key_a, target => 'mod', mod_revision => $alpha->{mod_revision} } ],
        [ { put => { key => $key_a, value => 'avocado' } } ],
        [ { range => { key => $key_a } } ],
        sub {
            my ($resp, $err) = @_;
            fail('txn (expected to fail)', $err) if $err;
            fail('txn', 'the compare should not have held') if $resp->{succeeded};
            my $now = $resp->{responses}[0]{response_range}{kvs}[0];
            print "  succeeded: no; $key_a is '$now->{value}' (mod_revision $now->{mod_revision})\n";
            delete_prefix();
        },
    );
}

sub delete_prefix {
    print "step 5: delete everything under $prefix\n";
    $etcd->delete($prefix, { prefix => 1, prev_kv => 1 }, sub {
        my ($resp, $err) = @_;
        fail('delete', $err) if $err;
        fail('delete', "expected 2 deletions, got $resp->{deleted}") unless $resp->{deleted} == 2;
        print "  deleted $resp->{deleted} keys: ",
            join(', ', map { "$_->{key}='$_->{value}'" } @{ $resp->{prev_kvs} }), "\n";
        $steps_done = 1;
        print "step 6: waiting until the watch has reported all $expected_events changes",
            " ($seen_events so far)\n";
        finish_if_done();
    });
}

my $finishing = 0;

sub finish_if_done {
    return unless $steps_done && $seen_events >= $expected_events;
    return if $finishing++;
    fail('watch', "saw $seen_events events, expected $expected_events")
        if $seen_events != $expected_events;
    print "step 7: the watch saw all $seen_events changes; cancelling it\n";
    $watch->cancel(sub {
        my (undef, $err) = @_;
        fail('cancel', $err) if $err;
        print "  watch cancelled\n";
        undef $deadline;    # nothing is left to hold the loop: EV::run returns
    });
}

EV::run;

fail('loop', 'EV::run returned before the demo finished') unless $finishing;
print "done: EV::run returned by itself\n";
exit 0;
