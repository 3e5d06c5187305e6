package TcpProxy;
# A TCP proxy in a child process, for tests that need a connection to go
# bad in ways a server restart cannot show:
#   my $p = TcpProxy->new(upstream => $port);   # listens on 127.0.0.1:$p->port
#   $p->freeze;   # SIGSTOP: sockets stay open, nothing is forwarded (half-open)
#   $p->thaw;     # SIGCONT
#   $p->bytes_up; # bytes forwarded from clients to the upstream so far
#   $p->connections; # client connections accepted so far
#   $p->stop;     # also done when the object goes away
# With flip_down_at => N, byte N (from 0) of what the upstream sends back
# over the first connection has its lowest bit flipped: data damaged in
# transit, which TCP and HTTP/2 do not notice.
# With tag_header => 'X-Server-From', each connection is tagged with that
# header of its first HTTP request (etcd peers name themselves in it), and
#   $p->cut(@tags);  # stops forwarding, silently, on connections so tagged
#                    # (open ones and new ones): one member's traffic is
#                    # dropped while everyone else's still flows
use strict;
use warnings;

use Carp qw(croak);
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep);

sub new {
    my ($class, %o) = @_;
    my $upstream = $o{upstream} or croak 'TcpProxy: upstream port needed';
    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $o{port} // 0,
        Proto     => 'tcp',       Listen    => 64, ReuseAddr => 1,
    ) or croak "TcpProxy: cannot listen: $!";
    my $counter = File::Temp->new(TEMPLATE => 'ev-etcd-proxy-XXXXXX', TMPDIR => 1);
    my $control = File::Temp->new(TEMPLATE => 'ev-etcd-proxy-cut-XXXXXX', TMPDIR => 1);
    my $owner = $$;
    my $pid = fork // croak "TcpProxy: fork: $!";
    if (!$pid) {
        eval { _serve($listen, $upstream, "$counter", $o{tag_header}, "$control", $o{flip_down_at}) };
        POSIX::_exit(0);
    }
    my $port = $listen->sockport;
    close $listen;
    return bless { pid => $pid, port => $port, counter => $counter, owner => $owner,
                   control => $control, tagged => defined $o{tag_header} }, $class;
}

sub cut {
    my ($self, @tags) = @_;
    croak 'TcpProxy: cut needs tag_header' unless $self->{tagged};
    my $file = "$self->{control}";
    open my $fh, '>', "$file.tmp" or croak "TcpProxy: $file.tmp: $!";
    print $fh map { lc("$_") . "\n" } @tags;
    close $fh;
    rename "$file.tmp", $file or croak "TcpProxy: rename: $!";
    sleep 0.2;    # the child looks every 50 ms
}

sub port     { $_[0]{port} }
sub endpoint { "127.0.0.1:$_[0]{port}" }
sub pid      { $_[0]{pid} }

sub freeze {
    my ($self) = @_;
    kill 'STOP', $self->{pid};
    for (1 .. 200) {    # SIGSTOP is asynchronous
        open my $fh, '<', "/proc/$self->{pid}/stat" or last;
        last if (<$fh> // '') =~ /\)\s+T/;
        sleep 0.01;
    }
}

sub thaw { kill 'CONT', $_[0]{pid} }

sub _counts {
    my ($self) = @_;
    open my $fh, '<', "$self->{counter}" or return (0, 0);
    my ($up, $conns) = split ' ', (<$fh> // '');
    return ($up // 0, $conns // 0);
}
sub bytes_up    { ($_[0]->_counts)[0] }
sub connections { ($_[0]->_counts)[1] }

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    return unless $self->{owner} == $$;
    kill 'CONT', $pid;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

sub DESTROY { local ($?, $!, $@); $_[0]->stop }

# The child: one select loop over every client/upstream pair.
sub _serve {
    my ($listen, $upstream, $counter, $tag_header, $control, $flip_at) = @_;
    my ($first_up, $down) = (undef, 0);    # (for flip_down_at)
    my $sel = IO::Select->new($listen);
    my (%peer, %tag, %cut, $up, $conns);
    my $control_seen = '';
    my $count = sub {
        open my $fh, '>', "$counter.tmp" or return;
        print $fh "$up $conns";
        close $fh;
        rename "$counter.tmp", $counter;
    };
    # A cut connection stays open but is never read or written again.
    my $drop = sub {
        my ($fh) = @_;
        my $other = $peer{$fh} or return;
        $sel->remove($fh, $other);
    };
    my $load_cuts = sub {
        my @st = stat $control or return;
        my $stamp = "$st[9].$st[7].$st[1]";
        return if $stamp eq $control_seen;
        $control_seen = $stamp;
        open my $fh, '<', $control or return;
        %cut = map { chomp; ($_ => 1) } grep { /\S/ } <$fh>;
        for my $c (keys %tag) {
            $drop->($tag{$c}{fh}) if $cut{ $tag{$c}{tag} };
        }
    };
    ($up, $conns) = (0, 0);
    while (1) {
        $load_cuts->() if defined $tag_header;
        for my $fh ($sel->can_read(defined $tag_header ? 0.05 : undef)) {
            if ($fh == $listen) {
                my $c = $listen->accept or next;
                my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $upstream, Proto => 'tcp');
                if (!$u) { close $c; next }
                $_->autoflush(1) for $c, $u;
                @peer{ $c, $u } = ($u, $c);
                $peer{"up$c"} = 1;
                $first_up //= "$u";
                $sel->add($c, $u);
                $conns++;
                $count->();
                next;
            }
            my $other = $peer{$fh} or next;
            my $n = sysread $fh, my $buf, 65536;
            if (!$n) {
                $sel->remove($fh, $other);
                delete @peer{ $fh, $other, "up$fh", "up$other" };
                delete @tag{ $fh, $other };
                close $fh;
                close $other;
                next;
            }
            if (defined $tag_header && $peer{"up$fh"} && !$tag{$fh}
                && $buf =~ /^\Q$tag_header\E:[ \t]*(\S+)/mi) {
                $tag{$fh} = { fh => $fh, tag => lc $1 };
                if ($cut{ lc $1 }) { $drop->($fh); next }
            }
            if (defined $flip_at && defined $first_up && "$fh" eq $first_up) {
                if ($down <= $flip_at && $flip_at < $down + $n) {
                    my $i = $flip_at - $down;
                    substr($buf, $i, 1) = chr(ord(substr($buf, $i, 1)) ^ 1);
                }
                $down += $n;
            }
            my $off = 0;
            while ($off < $n) {
                my $w = syswrite $other, $buf, $n - $off, $off;
                last unless defined $w;
                $off += $w;
            }
            if ($peer{"up$fh"}) { $up += $n; $count->() }
        }
    }
}

1;
