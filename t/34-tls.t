#!/usr/bin/env perl
# TLS and mutual TLS against real etcd servers with throwaway certificates
# made by openssl: the handshake and every kind of stream over it, each way
# a handshake is refused (unknown CA, wrong name, no client certificate),
# tls_server_name, https:// endpoints, failover between two TLS endpoints,
# and every croak of the TLS options.
use strict;
use warnings;

use Test::More;
use File::Spec ();
use File::Temp ();
use lib 't/lib';
use EtcdTest qw(:DEFAULT ci_mode call ok_call cancel_sync);

need_etcd();

use EV;
use EV::Etcd;

# --- throwaway certificates ------------------------------------------------------------
my $openssl = (grep { -x } '/usr/bin/openssl', map { File::Spec->catfile($_, 'openssl') } File::Spec->path)[0];
unless ($openssl) {
    die "t/34-tls.t: no openssl command (strict mode: refusing to skip)\n" if ci_mode();
    plan skip_all => 'no openssl command to make test certificates';
}

my $tmp = File::Temp->newdir('ev-etcd-tls-XXXXXX', TMPDIR => 1);
my $dir = "$tmp";
my $serial = 1;

sub openssl {
    my @args = @_;
    my $log = "$dir/openssl.log";
    open my $out, '>&', \*STDOUT or die "dup STDOUT: $!";
    open my $err, '>&', \*STDERR or die "dup STDERR: $!";
    open STDOUT, '>>', $log or die "$log: $!";
    open STDERR, '>&', \*STDOUT or die "STDERR: $!";
    my $rc = system { $openssl } $openssl, @args;
    open STDOUT, '>&', $out or die "restore STDOUT: $!";
    open STDERR, '>&', $err or die "restore STDERR: $!";
    return if $rc == 0;
    open my $fh, '<', $log;
    die "openssl @args failed:\n", (defined $fh ? <$fh> : ());
}

my @ec = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes');

# A self-signed CA: $dir/NAME.pem and $dir/NAME.key.
sub make_ca {
    my ($name) = @_;
    openssl('req', '-x509', @ec, '-keyout', "$dir/$name.key", '-out', "$dir/$name.pem",
            '-days', 2, '-subj', "/CN=EV::Etcd test $name",
            '-addext', 'basicConstraints=critical,CA:TRUE',
            '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

# A certificate signed by CA $ca, valid for the subjectAltName $san.
sub make_cert {
    my ($name, $ca, $san, $usage) = @_;
    openssl('req', '-new', @ec, '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr",
            '-subj', "/CN=$name");
    open my $ext, '>', "$dir/$name.ext" or die "$dir/$name.ext: $!";
    print {$ext} "subjectAltName=$san\nextendedKeyUsage=$usage\n",
                 "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";
    close $ext;
    openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/$ca.pem",
            '-CAkey', "$dir/$ca.key", '-set_serial', $serial++, '-days', 2,
            '-out', "$dir/$name.pem", '-extfile', "$dir/$name.ext");
}

make_ca('ca');
make_ca('otherca');
# etcd's own gateway dials its client port with the server certificate,
# so that one serves as a client certificate too.
make_cert('server',   'ca',      'IP:127.0.0.1',  'serverAuth,clientAuth');
make_cert('named',    'ca',      'DNS:etcd.test', 'serverAuth,clientAuth');
make_cert('client',   'ca',      'DNS:client',    'clientAuth');
make_cert('stranger', 'otherca', 'DNS:stranger',  'clientAuth');

my %f = map { ($_ => "$dir/$_") } map { ("$_.pem", "$_.key") } qw(ca otherca server named client stranger);

sub write_file {
    my ($name, $text) = @_;
    open my $fh, '>', "$dir/$name" or die "$dir/$name: $!";
    print {$fh} $text;
    close $fh;
    return "$dir/$name";
}
my $empty   = write_file('empty.pem', '');
my $notpem  = write_file('notes.txt', "just some text\n");
my $bad_b64 = write_file('bad-base64.pem', "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
my $bad_der = write_file('bad-der.pem', "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
my $missing = "$dir/no-such-file.pem";

# --- croaks at new -------------------------------------------------------------------------
{
    my $ep = '127.0.0.1:2379';
    my @tls = (tls => 1);
    my @bad = (
        [ 'CA file missing',            [ @tls, tls_ca_file => $missing ],
          qr/^EV::Etcd->new: tls_ca_file '\Q$missing\E': cannot read it: No such file/ ],
        [ 'CA file is a directory',     [ @tls, tls_ca_file => $dir ],
          qr/^EV::Etcd->new: tls_ca_file '\Q$dir\E': cannot read it/ ],
        [ 'CA file empty',              [ @tls, tls_ca_file => $empty ],
          qr/^EV::Etcd->new: tls_ca_file '\Q$empty\E': no certificate in it/ ],
        [ 'CA file not PEM',            [ @tls, tls_ca_file => $notpem ],
          qr/^EV::Etcd->new: tls_ca_file '\Q$notpem\E': no certificate in it/ ],
        [ 'CA file holds only a key',   [ @tls, tls_ca_file => $f{'ca.key'} ],
          qr/^EV::Etcd->new: tls_ca_file '\Q$f{'ca.key'}\E': no certificate in it/ ],
        [ 'CA file with broken base64', [ @tls, tls_ca_file => $bad_b64 ],
          qr/^EV::Etcd->new: tls_ca_file '\Q$bad_b64\E': not valid PEM/ ],
        [ 'CA file with a non-certificate', [ @tls, tls_ca_file => $bad_der ],
          qr/^EV::Etcd->new: tls_ca_file '\Q$bad_der\E': certificate 1 cannot be used as a CA/ ],
        [ 'certificate without key',    [ @tls, tls_cert_file => $f{'client.pem'} ],
          qr/^EV::Etcd->new: tls_cert_file '\Q$f{'client.pem'}\E' needs its key: give tls_key_file too/ ],
        [ 'key without certificate',    [ @tls, tls_key_file => $f{'client.key'} ],
          qr/^EV::Etcd->new: tls_key_file '\Q$f{'client.key'}\E' needs its certificate: give tls_cert_file too/ ],
        [ 'certificate file missing',   [ @tls, tls_cert_file => $missing, tls_key_file => $f{'client.key'} ],
          qr/^EV::Etcd->new: tls_cert_file '\Q$missing\E': cannot read it/ ],
        [ 'key file missing',           [ @tls, tls_cert_file => $f{'client.pem'}, tls_key_file => $missing ],
          qr/^EV::Etcd->new: tls_key_file '\Q$missing\E': cannot read it/ ],
        [ 'certificate file holds a key', [ @tls, tls_cert_file => $f{'client.key'}, tls_key_file => $f{'client.key'} ],
          qr/^EV::Etcd->new: tls_cert_file '\Q$f{'client.key'}\E': no certificate in it/ ],
        [ 'key file holds a certificate', [ @tls, tls_cert_file => $f{'client.pem'}, tls_key_file => $f{'client.pem'} ],
          qr/^EV::Etcd->new: tls_key_file '\Q$f{'client.pem'}\E': no private key in it/ ],
        [ 'key file empty',             [ @tls, tls_cert_file => $f{'client.pem'}, tls_key_file => $empty ],
          qr/^EV::Etcd->new: tls_key_file '\Q$empty\E': no private key in it/ ],
        [ 'key of another certificate', [ @tls, tls_cert_file => $f{'client.pem'}, tls_key_file => $f{'server.key'} ],
          qr/^EV::Etcd->new: tls_key_file '\Q$f{'server.key'}\E' is not the key of the certificate in tls_cert_file '\Q$f{'client.pem'}\E'/ ],
        [ 'certificate that is not one', [ @tls, tls_cert_file => $bad_der, tls_key_file => $f{'client.key'} ],
          qr/^EV::Etcd->new: tls_cert_file '\Q$bad_der\E': the certificate cannot be used/ ],
        [ 'server name not a name',     [ @tls, tls_server_name => 'not a name!' ],
          qr/^EV::Etcd->new: tls_server_name 'not a name!' is neither a DNS name nor an IP address/ ],
        [ 'CA file empty string',       [ @tls, tls_ca_file => '' ],
          qr/^EV::Etcd->new: tls_ca_file must not be empty/ ],
        [ 'server name empty string',   [ @tls, tls_server_name => '' ],
          qr/^EV::Etcd->new: tls_server_name must not be empty/ ],
        [ 'key file a reference',       [ @tls, tls_key_file => [] ],
          qr/^EV::Etcd->new: tls_key_file must be a string/ ],
        [ 'CA file on plaintext endpoints', [ endpoints => [$ep], tls_ca_file => $f{'ca.pem'} ],
          qr/^EV::Etcd->new: tls_ca_file was given, but the endpoints are plaintext: add tls => 1 or use https:\/\/ endpoints/ ],
        [ 'client certificate on http:// endpoints', [ endpoints => ["http://$ep"], tls_cert_file => $f{'client.pem'}, tls_key_file => $f{'client.key'} ],
          qr/^EV::Etcd->new: tls_cert_file was given, but the endpoints are plaintext/ ],
        [ 'key file on the default endpoint', [ tls_key_file => $f{'client.key'} ],
          qr/^EV::Etcd->new: tls_key_file was given, but the endpoints are plaintext/ ],
        [ 'server name on plaintext endpoints', [ endpoints => [$ep], tls_server_name => 'etcd.test' ],
          qr/^EV::Etcd->new: tls_server_name was given, but the endpoints are plaintext/ ],
        [ 'CA file with tls => 0',      [ tls => 0, tls_ca_file => $f{'ca.pem'} ],
          qr/^EV::Etcd->new: tls_ca_file was given, but tls => 0 turns TLS off/ ],
        [ 'http:// endpoint with tls => 1', [ @tls, endpoints => ["http://$ep"] ],
          qr/^EV::Etcd->new: endpoint 'http:\/\/\Q$ep\E' asks for plaintext, but tls => 1 was given/ ],
        [ 'https:// endpoint with tls => 0', [ tls => 0, endpoints => ["https://$ep"] ],
          qr/^EV::Etcd->new: endpoint 'https:\/\/\Q$ep\E' asks for TLS, but tls => 0 was given/ ],
        [ 'https:// and http:// mixed', [ endpoints => ["https://$ep", "http://127.0.0.1:2380"] ],
          qr/^EV::Etcd->new: endpoints mix TLS and plaintext \('https:\/\/\Q$ep\E' and 'http:\/\/127\.0\.0\.1:2380'\)/ ],
        [ 'mixed, even with tls => 1',  [ @tls, endpoints => ["http://$ep", "https://127.0.0.1:2380"] ],
          qr/^EV::Etcd->new: endpoints mix TLS and plaintext/ ],
    );
    for my $t (@bad) {
        my ($what, $args, $re) = @$t;
        my $obj = eval { EV::Etcd->new(@$args) }; my ($err, $line) = ($@, __LINE__);
        ok !$obj, "new croaks: $what";
        like $err, $re, "message: $what";
        like $err, qr/ at \Q$0\E line $line\.\n\z/, "reported at the caller's line: $what";
    }

    {
        # Without tls_ca_file the system's roots are used; none at all croaks.
        local $ENV{SSL_CERT_FILE} = $empty;
        local $ENV{SSL_CERT_DIR};
        delete $ENV{SSL_CERT_DIR};
        my $obj = eval { EV::Etcd->new(@tls) }; my ($err, $line) = ($@, __LINE__);
        ok !$obj, 'new croaks: no tls_ca_file and an empty system root store';
        like $err, qr/^EV::Etcd->new: no tls_ca_file was given and no root certificates were found on this system/,
            'message: no system roots';
        like $err, qr/ at \Q$0\E line $line\.\n\z/, "reported at the caller's line: no system roots";
    }

    # accepted without contacting anyone (the system root store is set so
    # that these do not depend on the machine having a CA bundle)
    local $ENV{SSL_CERT_FILE} = $f{'ca.pem'};
    for my $ok (
        [ 'tls => 1 with the default endpoint',      [ @tls ] ],
        [ 'an https:// endpoint alone',              [ endpoints => ["https://$ep"] ] ],
        [ 'https:// with bare host:port entries',    [ endpoints => ["https://$ep", '127.0.0.1:2380'] ] ],
        [ 'tls => 1 with https:// endpoints',        [ @tls, endpoints => ["https://$ep"] ] ],
        [ 'tls => 0 on plaintext endpoints',         [ tls => 0, endpoints => [$ep] ] ],
        [ 'tls => undef means not given',            [ tls => undef, endpoints => ["https://$ep"] ] ],
        [ 'TLS file options undef mean not given',   [ endpoints => [$ep], tls_ca_file => undef,
                                                       tls_cert_file => undef, tls_key_file => undef,
                                                       tls_server_name => undef ] ],
        [ 'every TLS option at once',                [ @tls, tls_ca_file => $f{'ca.pem'},
                                                       tls_cert_file => $f{'client.pem'},
                                                       tls_key_file => $f{'client.key'},
                                                       tls_server_name => 'etcd.test' ] ],
        [ 'a server name that is an IP address',     [ @tls, tls_server_name => '10.1.2.3' ] ],
        [ 'a bracketed IPv6 endpoint',               [ @tls, endpoints => ['[::1]:2379'] ] ],
    ) {
        my ($what, $args) = @$ok;
        my $obj = eval { EV::Etcd->new(@$args) };
        isa_ok $obj, 'EV::Etcd', "accepted: $what" or diag $@;
    }
}

# --- servers -------------------------------------------------------------------------------
my @serve = ('--cert-file', $f{'server.pem'}, '--key-file', $f{'server.key'});
my $srv   = start_etcd(name => 'tls', tls => 1, extra => [@serve]);
my $named = start_etcd(name => 'named', tls => 1,
                       extra => ['--cert-file', $f{'named.pem'}, '--key-file', $f{'named.key'}]);
my $mtls  = start_etcd(name => 'mtls', tls => 1,
                       extra => [@serve, '--trusted-ca-file', $f{'ca.pem'}, '--client-cert-auth']);

my @ca = (tls_ca_file => $f{'ca.pem'});
my @me = (tls_cert_file => $f{'client.pem'}, tls_key_file => $f{'client.key'});

# The error of one put on a fresh client made with @opts (undef: it worked).
sub put_error {
    my (@opts) = @_;
    my $c = EV::Etcd->new(timeout => 10, @opts);
    my ($r, $e) = call($c, 'put', 'tls/probe', 'v');
    return $e;
}

sub is_refused {
    my ($e, $reason, $what) = @_;
    ok $e, "$what: refused" or return;
    is $e->{status}, 'UNAVAILABLE', "$what: status UNAVAILABLE";
    is $e->{retryable}, 1, "$what: retryable";
    is $e->{source}, 'put', "$what: source is the call";
    like $e->{message}, $reason, "$what: the message says why";
}

# --- a good handshake: unary calls and every stream ------------------------------------------
my $c = EV::Etcd->new(endpoints => [ $srv->endpoint ], tls => 1, @ca, timeout => 10);
{
    my $put = ok_call($c, 'put', 'tls/k', 'secret');
    ok $put->{header}{revision}, 'put over TLS (tls => 1, bare host:port, the cert names 127.0.0.1)';
    my $get = ok_call($c, 'get', 'tls/k');
    is $get->{kvs}[0]{value}, 'secret', 'get over TLS reads it back';

    my (@msgs, @errs);
    my $w = $c->watch('tls/w', sub { my ($r, $e) = @_; $e ? push @errs, $e : push @msgs, $r });
    ok run_until(sub { grep { $_->{created} } @msgs }, 10), 'a watch over TLS is created';
    ok_call($c, 'put', 'tls/w', 'event');
    ok run_until(sub { grep { @{ $_->{events} || [] } } @msgs }, 10), '... and receives the event';
    my ($ev) = map { @{ $_->{events} } } grep { $_->{events} } @msgs;
    is $ev && $ev->{kv}{value}, 'event', '... with the value put';
    is_deeply \@errs, [], '... and no error';
    cancel_sync({ handle => $w });

    my $lease = ok_call($c, 'lease_grant', 3)->{id};
    my (@ticks, @kerrs);
    my $ka = $c->lease_keepalive($lease, sub { my ($r, $e) = @_; $e ? push @kerrs, $e : push @ticks, $r });
    ok run_until(sub { @ticks >= 2 }, 10), 'a lease keepalive over TLS refreshes the lease (two answers)';
    ok $ticks[0] && $ticks[0]{ttl} > 0, '... with a positive TTL';
    is_deeply \@kerrs, [], '... and no error';
    cancel_sync({ handle => $ka });

    my $el_lease = ok_call($c, 'lease_grant', 60)->{id};
    my (@obs, @oerrs);
    my $o = $c->election_observe('tls/el', sub { my ($r, $e) = @_; $e ? push @oerrs, $e : push @obs, $r });
    ok_call($c, 'election_campaign', 'tls/el', $el_lease, 'tls-leader');
    ok run_until(sub { grep { ($_->{kv}{value} // '') eq 'tls-leader' } @obs }, 10),
        'election_observe over TLS sees the leader';
    is_deeply \@oerrs, [], '... and no error';
    cancel_sync({ handle => $o });
    ok_call($c, 'lease_revoke', $el_lease);
}

{
    my $hc = EV::Etcd->new(endpoints => [ 'https://' . $srv->endpoint ], @ca);
    my $r = ok_call($hc, 'get', 'tls/k');
    is $r->{kvs}[0]{value}, 'secret', 'an https:// endpoint implies TLS (no tls option)';

    my $lc = EV::Etcd->new(endpoints => [ 'localhost:' . $srv->client_port ], tls => 1, @ca,
                           tls_server_name => '127.0.0.1');
    ($r) = call($lc, 'get', 'tls/k');
    is $r && $r->{kvs}[0]{value}, 'secret',
        'a host name endpoint is resolved and dialled; tls_server_name may be an IP address';

    my $e = put_error(endpoints => [ $srv->endpoint ], tls => 0);
    ok $e, 'a plaintext client cannot talk to the TLS port';
    is $e && $e->{status}, 'UNAVAILABLE', '... and gets UNAVAILABLE, not a hang';
}

# --- refused handshakes ---------------------------------------------------------------------
my $ep = $srv->endpoint;
is_refused(put_error(endpoints => [$ep], tls => 1, tls_ca_file => $f{'otherca.pem'}),
           qr/^TLS handshake with \Q$ep\E failed: invalid peer certificate: UnknownIssuer/,
           'a server certificate from another CA');

{
    # Without tls_ca_file the system's roots decide (SSL_CERT_FILE stands in
    # for the machine's CA bundle): when our CA is not among them ...
    local $ENV{SSL_CERT_FILE} = $f{'otherca.pem'};
    local $ENV{SSL_CERT_DIR};
    delete $ENV{SSL_CERT_DIR};
    is_refused(put_error(endpoints => [ 'https://' . $srv->endpoint ]),
               qr/UnknownIssuer/, 'no tls_ca_file: the system roots do not know our CA');
    # ... unless the system's root store is pointed at it.
    $ENV{SSL_CERT_FILE} = $f{'ca.pem'};
    is put_error(endpoints => [ 'https://' . $srv->endpoint ]), undef,
        'no tls_ca_file: accepted once the system root store (SSL_CERT_FILE) holds our CA';
}

is_refused(put_error(endpoints => [ $named->endpoint ], tls => 1, @ca),
           qr/NotValidForName|not valid for name/, 'a certificate for etcd.test, reached as 127.0.0.1');
is put_error(endpoints => [ $named->endpoint ], tls => 1, @ca, tls_server_name => 'etcd.test'), undef,
    '... accepted with tls_server_name => etcd.test';
is_refused(put_error(endpoints => [ $srv->endpoint ], tls => 1, @ca, tls_server_name => 'etcd.test'),
           qr/NotValidForName|not valid for name/, 'tls_server_name is the name checked: etcd.test is not in the 127.0.0.1 certificate');

is_refused(put_error(endpoints => [ $mtls->endpoint ], tls => 1, @ca),
           qr/^TLS handshake with \Q${\ $mtls->endpoint }\E failed: received fatal alert: (?:BadCertificate|CertificateRequired)/,
           'a mutual-TLS server and a client without a certificate');
is_refused(put_error(endpoints => [ $mtls->endpoint ], tls => 1, @ca,
                     tls_cert_file => $f{'stranger.pem'}, tls_key_file => $f{'stranger.key'}),
           qr/^TLS handshake with \Q${\ $mtls->endpoint }\E failed: received fatal alert: (?:BadCertificate|UnknownCA)/,
           'a mutual-TLS server and a client certificate from another CA');
{
    my $mc = EV::Etcd->new(endpoints => [ $mtls->endpoint ], tls => 1, @ca, @me);
    ok_call($mc, 'put', 'tls/mutual', 'yes');
    is ok_call($mc, 'get', 'tls/mutual')->{kvs}[0]{value}, 'yes',
        'a mutual-TLS server accepts the client with its certificate';
    my (@msgs, @errs);
    my $w = $mc->watch('tls/mutual-w', sub { my ($r, $e) = @_; $e ? push @errs, $e : push @msgs, $r });
    ok run_until(sub { grep { $_->{created} } @msgs }, 10), '... and a watch on it';
    ok_call($mc, 'put', 'tls/mutual-w', 'x');
    ok run_until(sub { grep { @{ $_->{events} || [] } } @msgs }, 10), '... gets its event';
    cancel_sync({ handle => $w });
}

# --- failover between two TLS endpoints ----------------------------------------------------
{
    my $first = start_etcd(name => 'tls-first', tls => 1, extra => [@serve]);
    my $fc = EV::Etcd->new(endpoints => [ $first->endpoint, 'https://' . $srv->endpoint ],
                           @ca, timeout => 10, max_retries => 10);
    ok_call($fc, 'put', 'tls/where', 'first');

    my (@msgs, @errs);
    my $w = $fc->watch('tls/failover-w', sub { my ($r, $e) = @_; $e ? push @errs, $e : push @msgs, $r });
    ok run_until(sub { grep { $_->{created} } @msgs }, 10), 'a watch on the first TLS endpoint';

    $first->kill9;
    my (@fails, $ok);
    for my $try (1 .. 3) {
        my ($r, $e) = call($fc, 'get', 'tls/k');
        if ($e) { push @fails, $e; next }
        $ok = $r;
        last;
    }
    ok $ok, 'after the first TLS endpoint dies, a call lands on the second within three tries';
    is $ok && $ok->{kvs}[0]{value}, 'secret', '... which is the other server (it has tls/k)';
    ok @fails <= 2, scalar(@fails) . ' call(s) failed on the way';
    is $_->{status}, 'UNAVAILABLE', "a failure on the dead endpoint is UNAVAILABLE ($_->{message})" for @fails;

    ok_call($c, 'put', 'tls/failover-w', 'after');
    ok run_until(sub { grep { grep { $_->{kv}{value} eq 'after' } @{ $_->{events} || [] } } @msgs }, 30),
        'the watch reconnected over TLS to the second endpoint and gets its events';
    is_deeply [ grep { !$_->{retryable} } @errs ], [], '... with no final error';
    cancel_sync({ handle => $w });
}

done_testing;
