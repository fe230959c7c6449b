/* hoody-probe: network probes run inside containers by the end-to-end tests.
 *
 *   probe tcp ADDR PORT [TIMEOUT_MS] [TAG]  connect; send TAG; exit 0 connected, 1 refused, 2 timeout, 3 error
 *   probe udp ADDR PORT [TIMEOUT_MS] [TAG]  send TAG, await a reply; 0 reply, 1 refused, 2 timeout, 3 error
 *   probe tcp6 ADDR PORT [TIMEOUT_MS]       IPv6 connect, same codes
 *   probe spoof SRC DST PORT TAG            one UDP datagram with a forged source (raw socket); 0 sent
 *   probe badsum SRC DST PORT TAG           one TCP SYN carrying TAG with a wrong TCP checksum (raw); 0 sent
 *   probe icmperr SRC DST PORT TAG          connect to DST:PORT (must succeed), then send DST an ICMP
 *                                           "fragmentation needed" about that connection's packets
 *                                           (so conntrack calls it related), TAG after the quoted
 *                                           header; "sent" 0, "connect failed" 1
 *   probe rate ADDR PORT MS                 for MS milliseconds: connect, close (RST), again; prints
 *                                           "rate N" connections per second; 0 if any failed
 *   probe writer PATH SIZE                  forever: rewrite PATH with SIZE bytes of one letter, the
 *                                           next letter each time, in single pwrite calls
 *   probe ioctl DIR REQUEST NAME            ioctl(open(DIR), REQUEST) with a zeroed 4 KiB argument whose
 *                                           name field (at offset 8, or 56 for the _V2 layouts when
 *                                           REQUEST's size is 4096 and its number is 23, 24 or 63)
 *                                           is NAME; REQUEST is hex and may carry high bits; prints
 *                                           "ok" or "errno N NAME"; 0 when the call succeeded
 *   probe ficlone SRC DST                   DST made as a reflink of SRC (FICLONE); "ok" or "errno N"
 *   probe getfd PID FD                      take descriptor FD of process PID (pidfd_getfd); prints its type:
 *                                           "fifo", "file", "dir", "chr", "sock", "other" or "errno N"
 *   probe swap A B                          forever: swap A and B atomically (renameat2 RENAME_EXCHANGE);
 *                                           prints "errno N" and exits 1 if a swap fails
 *
 *   probe dns SERVER NAME TIMEOUT_MS [udp|tcp] [QTYPE]
 *                                           one DNS query (QTYPE a number, 1 = A by default) to
 *                                           SERVER:53; prints "rcode N" and one "a ADDR TTL" line per
 *                                           A record of the answer; 0 answered, 1 refused (ICMP or
 *                                           RST), 2 timeout, 3 error
 *   probe dnsrate SERVER NAME MS [COUNT]    for MS milliseconds (or until COUNT names were asked): A
 *                                           queries one after the other over UDP, NAME itself or, with
 *                                           COUNT, h0.NAME … h<COUNT-1>.NAME in turn; prints "rate N
 *                                           p50 US p99 US answered N"; 0 unless a query timed out
 *   probe hold ADDR PORT SECONDS            connect, then every half second send a byte and await its
 *                                           echo, for SECONDS; "held" 0, "broken after N" 1, else as tcp
 *
 * Every outcome is printed on one line, so a test can tell "refused fast" from "timed out".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int btrfs_ioctl(const char *dir, const char *request, const char *name) {
    unsigned long req = strtoul(request, NULL, 16);
    static char arg[4096];
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) { printf("open errno %d\n", errno); return 3; }
    unsigned nr = req & 0xff;
    size_t off = (nr == 23 || nr == 24 || nr == 63) ? 56 : 8;
    memset(arg, 0, sizeof arg);
    strncpy(arg + off, name, sizeof arg - off - 1);
    /* syscall(2) passes all 64 bits of the request, high bits included. */
    long rc = syscall(SYS_ioctl, fd, req, arg);
    if (rc < 0) { printf("errno %d %s\n", errno, strerror(errno)); return 1; }
    printf("ok\n");
    return 0;
}

static int ficlone(const char *src, const char *dst) {
    int s = open(src, O_RDONLY), d = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (s < 0 || d < 0) { printf("open errno %d\n", errno); return 3; }
    if (ioctl(d, 0x40049409UL /* FICLONE */, s) < 0) { printf("errno %d %s\n", errno, strerror(errno)); return 1; }
    printf("ok\n");
    return 0;
}

static int finish(const char *what, int code) {
    printf("%s\n", what);
    return code;
}

static int wait_connect(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r = poll(&p, 1, timeout_ms);
    if (r == 0) return finish("timeout", 2);
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err == 0) return 0;
    if (err == ECONNREFUSED) return finish("refused", 1);
    printf("error %s\n", strerror(err));
    return 3;
}

static int tcp(int family, const char *addr, int port, int timeout_ms, const char *tag) {
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        if (inet_pton(AF_INET, addr, &a->sin_addr) != 1) return finish("bad address", 3);
        sl = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1) return finish("bad address", 3);
        sl = sizeof *a;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        printf("error %s\n", strerror(errno));
        return 3;
    }
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        if (errno == ECONNREFUSED) return finish("refused", 1);
        if (errno != EINPROGRESS) {
            printf("error %s\n", strerror(errno));
            return 3;
        }
        int r = wait_connect(fd, timeout_ms);
        if (r) return r;
    }
    if (tag) (void)!write(fd, tag, strlen(tag));
    char buf[64] = {0};
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 500) > 0) (void)!read(fd, buf, sizeof buf - 1);
    printf("connected %s\n", buf);
    return 0;
}

static int udp(const char *addr, int port, int timeout_ms, const char *tag) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) return finish("bad address", 3);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        printf("error %s\n", strerror(errno));
        return 3;
    }
    const char *msg = tag ? tag : "ping";
    if (send(fd, msg, strlen(msg), 0) < 0) {
        if (errno == ECONNREFUSED || errno == EPERM) return finish("refused", 1);
        printf("error %s\n", strerror(errno));
        return 3;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r == 0) return finish("timeout", 2);
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        if (errno == ECONNREFUSED) return finish("refused", 1);
        printf("error %s\n", strerror(errno));
        return 3;
    }
    buf[n] = 0;
    printf("reply %s\n", buf);
    return 0;
}

static unsigned short csum(const void *data, int len) {
    const unsigned short *p = data;
    unsigned long sum = 0;
    for (; len > 1; len -= 2) sum += *p++;
    if (len) sum += *(const unsigned char *)p;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

/* A raw IPv4 packet: header filled in around `body` (protocol `proto`), sent to dst. */
static int send_raw(const char *src, const char *dst, int proto, const void *body, size_t len) {
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0) {
        printf("error raw socket: %s\n", strerror(errno));
        return 3;
    }
    char pkt[512] = {0};
    struct iphdr *ip = (struct iphdr *)pkt;
    memcpy(pkt + sizeof *ip, body, len);
    ip->ihl = 5;
    ip->version = 4;
    ip->ttl = 64;
    ip->protocol = proto;
    ip->tot_len = htons(sizeof *ip + len);
    inet_pton(AF_INET, src, &ip->saddr);
    inet_pton(AF_INET, dst, &ip->daddr);
    ip->check = csum(ip, sizeof *ip);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = ip->daddr;
    if (sendto(fd, pkt, ntohs(ip->tot_len), 0, (struct sockaddr *)&a, sizeof a) < 0) {
        printf("error %s\n", strerror(errno));
        return 3;
    }
    return finish("sent", 0);
}

/* One UDP datagram with a forged source address. */
static int spoof(const char *src, const char *dst, int port, const char *tag) {
    unsigned char seg[256] = {0};
    size_t tl = strlen(tag);
    struct udphdr *udp = (struct udphdr *)seg;
    memcpy(seg + sizeof *udp, tag, tl);
    udp->source = htons(40000);
    udp->dest = htons(port);
    udp->len = htons(sizeof *udp + tl);
    return send_raw(src, dst, IPPROTO_UDP, seg, sizeof *udp + tl);
}

/* A SYN whose checksum is wrong on purpose: conntrack (nf_conntrack_checksum=1) calls it invalid. */
static int badsum(const char *src, const char *dst, int port, const char *tag) {
    unsigned char seg[256] = {0};
    size_t tl = strlen(tag);
    seg[0] = 0x9c; seg[1] = 0x41;                 /* source port 40001 */
    seg[2] = port >> 8; seg[3] = port & 0xff;
    seg[4] = 0x12; seg[5] = 0x34; seg[6] = 0x56; seg[7] = 0x78; /* sequence */
    seg[12] = 5 << 4;                             /* data offset: 20 bytes */
    seg[13] = 0x02;                               /* SYN */
    seg[14] = 0xff; seg[15] = 0xff;               /* window */
    seg[16] = 0xde; seg[17] = 0xad;               /* checksum: wrong */
    memcpy(seg + 20, tag, tl);
    return send_raw(src, dst, IPPROTO_TCP, seg, 20 + tl);
}

/* An ICMP error quoting a packet of an allowed, open connection (DST:PORT -> SRC:local), so
 * conntrack calls it related to that connection; anything may follow the quote. */
static int icmperr(const char *src, const char *dst, int port, const char *tag) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, dst, &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) return finish("connect failed", 1);
    struct sockaddr_in l;
    socklen_t ll = sizeof l;
    getsockname(s, (struct sockaddr *)&l, &ll);
    unsigned char msg[400] = {0};
    size_t tl = strlen(tag);
    msg[0] = 3; msg[1] = 4;                       /* destination unreachable: fragmentation needed */
    msg[6] = 0x05; msg[7] = 0x00;                 /* next-hop MTU 1280 */
    struct iphdr *q = (struct iphdr *)(msg + 8);  /* the quoted packet: server -> container */
    q->ihl = 5; q->version = 4; q->ttl = 64; q->protocol = IPPROTO_TCP;
    q->tot_len = htons(1400);
    q->saddr = a.sin_addr.s_addr;
    inet_pton(AF_INET, src, &q->daddr);
    q->check = csum(q, sizeof *q);
    unsigned char *th = msg + 8 + sizeof *q;
    memcpy(th, &a.sin_port, 2);                   /* server port */
    memcpy(th + 2, &l.sin_port, 2);               /* our port */
    memcpy(th + 8, tag, tl);
    size_t len = 8 + sizeof *q + 8 + tl;
    unsigned short c = csum(msg, len);
    memcpy(msg + 2, &c, 2);
    int rc = send_raw(src, dst, IPPROTO_ICMP, msg, len);
    close(s);
    return rc;
}

static int writer(const char *path, long size) {
    char *buf = malloc(size);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (!buf || fd < 0) {
        printf("error %s\n", strerror(errno));
        return 3;
    }
    for (unsigned long i = 0;; i++) {
        memset(buf, 'a' + (int)(i % 26), size);
        if (pwrite(fd, buf, size, 0) != size) {
            printf("error %s\n", strerror(errno));
            return 3;
        }
    }
}

static long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000L + t.tv_nsec / 1000;
}

/* Connections per second through the firewall: each one a new conntrack entry whose first
 * packet walks the container's chain. Closed with RST, so no TIME_WAIT piles up. */
static int rate(const char *addr, int port, int ms) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) return finish("bad address", 3);
    long start = now_us(), end = start + ms * 1000L, n = 0;
    while (now_us() < end) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            printf("error after %ld: %s\n", n, strerror(errno));
            return 3;
        }
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(fd);
        n++;
    }
    printf("rate %ld\n", n * 1000000L / (now_us() - start));
    return 0;
}

static int getfd(int pid, int fd) {
    int pfd = syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0) { printf("errno %d\n", errno); return 1; }
    int got = syscall(SYS_pidfd_getfd, pfd, fd, 0);
    if (got < 0) { printf("errno %d\n", errno); return 1; }
    struct stat st;
    if (fstat(got, &st) < 0) { printf("errno %d\n", errno); return 1; }
    const char *t = S_ISFIFO(st.st_mode) ? "fifo" : S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir"
                  : S_ISCHR(st.st_mode) ? "chr" : S_ISSOCK(st.st_mode) ? "sock" : "other";
    printf("%s\n", t);
    return 0;
}

static int swap(const char *a, const char *b) {
    for (;;) {
        if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */) < 0) {
            printf("errno %d\n", errno);
            return 1;
        }
    }
}

/* Skips a (possibly compressed) name at p; returns the position after it or -1. */
static int skip_name(const unsigned char *m, int len, int p) {
    while (p < len) {
        unsigned char l = m[p];
        if (l == 0) return p + 1;
        if ((l & 0xc0) == 0xc0) return p + 2 <= len ? p + 2 : -1;
        p += l + 1;
    }
    return -1;
}

static int dns(const char *server, const char *name, int timeout_ms, int use_tcp, int qtype) {
    unsigned char q[512];
    int n = 0;
    unsigned short id = (unsigned short)(getpid() ^ time(NULL));
    q[n++] = id >> 8; q[n++] = id & 0xff;
    q[n++] = 0x01; q[n++] = 0x00; /* RD */
    q[n++] = 0; q[n++] = 1; q[n++] = 0; q[n++] = 0; q[n++] = 0; q[n++] = 0; q[n++] = 0; q[n++] = 0;
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        int l = dot ? (int)(dot - p) : (int)strlen(p);
        if (l > 63 || n + l + 6 > (int)sizeof q) return finish("bad name", 3);
        q[n++] = l;
        memcpy(q + n, p, l);
        n += l;
        p += l;
        if (*p == '.') p++;
    }
    q[n++] = 0;
    q[n++] = qtype >> 8; q[n++] = qtype & 0xff;
    q[n++] = 0; q[n++] = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    if (inet_pton(AF_INET, server, &a.sin_addr) != 1) return finish("bad address", 3);
    int fd = socket(AF_INET, (use_tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK, 0);
    if (fd < 0) return finish("error socket", 3);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (errno == ECONNREFUSED) return finish("refused", 1);
        if (errno != EINPROGRESS) { printf("error %s\n", strerror(errno)); return 3; }
        int r = wait_connect(fd, timeout_ms);
        if (r) return r;
    }
    unsigned char out[514];
    int olen = n;
    if (use_tcp) { out[0] = n >> 8; out[1] = n & 0xff; memcpy(out + 2, q, n); olen = n + 2; }
    else memcpy(out, q, n);
    if (send(fd, out, olen, 0) != olen) {
        if (errno == ECONNREFUSED) return finish("refused", 1);
        printf("error %s\n", strerror(errno));
        return 3;
    }
    static unsigned char m[65536];
    int len = 0, want = use_tcp ? -1 : 0;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, timeout_ms);
        if (r == 0) return finish("timeout", 2);
        ssize_t got = recv(fd, m + len, sizeof m - len, 0);
        if (got < 0) {
            if (errno == ECONNREFUSED || errno == ECONNRESET) return finish("refused", 1);
            printf("error %s\n", strerror(errno));
            return 3;
        }
        if (got == 0) return finish("closed", 3);
        len += got;
        if (!use_tcp) break;
        if (want < 0 && len >= 2) want = (m[0] << 8 | m[1]) + 2;
        if (want >= 0 && len >= want) { memmove(m, m + 2, len - 2); len -= 2; break; }
    }
    if (len < 12) return finish("short answer", 3);
    printf("rcode %d\n", m[3] & 0xf);
    int qd = m[4] << 8 | m[5], an = m[6] << 8 | m[7];
    int pos = 12;
    for (int i = 0; i < qd && pos > 0; i++) { pos = skip_name(m, len, pos); if (pos > 0) pos += 4; }
    for (int i = 0; i < an && pos > 0 && pos + 10 <= len; i++) {
        pos = skip_name(m, len, pos);
        if (pos < 0 || pos + 10 > len) break;
        int type = m[pos] << 8 | m[pos + 1];
        unsigned ttl = (unsigned)m[pos + 4] << 24 | m[pos + 5] << 16 | m[pos + 6] << 8 | m[pos + 7];
        int rdlen = m[pos + 8] << 8 | m[pos + 9];
        pos += 10;
        if (type == 1 && rdlen == 4 && pos + 4 <= len) printf("a %d.%d.%d.%d %u\n", m[pos], m[pos + 1], m[pos + 2], m[pos + 3], ttl);
        pos += rdlen;
    }
    return 0;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static int dnsrate(const char *server, const char *name, int ms, int count) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    if (inet_pton(AF_INET, server, &a.sin_addr) != 1) return finish("bad address", 3);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return finish("error socket", 3);
    static long lat[1000000];
    long start = now_us(), end = start + ms * 1000L, n = 0;
    unsigned short id = 1;
    while (now_us() < end && n < (long)(sizeof lat / sizeof lat[0]) && (count == 0 || n < count)) {
        char full[300];
        if (count > 0) snprintf(full, sizeof full, "h%ld.%s", n, name);
        else snprintf(full, sizeof full, "%s", name);
        unsigned char q[512];
        int k = 0;
        id++;
        q[k++] = id >> 8; q[k++] = id & 0xff; q[k++] = 1; q[k++] = 0;
        q[k++] = 0; q[k++] = 1; q[k++] = 0; q[k++] = 0; q[k++] = 0; q[k++] = 0; q[k++] = 0; q[k++] = 0;
        for (char *p = full; *p;) {
            char *dot = strchr(p, '.');
            int l = dot ? (int)(dot - p) : (int)strlen(p);
            q[k++] = l;
            memcpy(q + k, p, l);
            k += l;
            p += l;
            if (*p == '.') p++;
        }
        q[k++] = 0; q[k++] = 0; q[k++] = 1; q[k++] = 0; q[k++] = 1;
        long t0 = now_us();
        if (send(fd, q, k, 0) != k) { printf("error after %ld: %s\n", n, strerror(errno)); return 3; }
        unsigned char r[4096];
        for (;;) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 2000) != 1) { printf("timeout after %ld\n", n); return 2; }
            ssize_t got = recv(fd, r, sizeof r, 0);
            if (got < 0) { printf("error after %ld: %s\n", n, strerror(errno)); return 3; }
            if (got >= 12 && r[0] == (id >> 8) && r[1] == (id & 0xff)) break;
        }
        lat[n++] = now_us() - t0;
    }
    long took = now_us() - start;
    qsort(lat, n, sizeof lat[0], cmp_long);
    printf("rate %ld p50 %ld p99 %ld answered %ld\n", n * 1000000L / (took ? took : 1), n ? lat[n / 2] : 0, n ? lat[n * 99 / 100] : 0, n);
    return 0;
}

static int hold(const char *addr, int port, int seconds) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) return finish("bad address", 3);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return finish("error socket", 3);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (errno == ECONNREFUSED) return finish("refused", 1);
        if (errno != EINPROGRESS) { printf("error %s\n", strerror(errno)); return 3; }
        int r = wait_connect(fd, 2000);
        if (r) return r;
    }
    for (int i = 0; i < seconds * 2; i++) {
        char c = 'p', back = 0;
        if (send(fd, &c, 1, MSG_NOSIGNAL) != 1) { printf("broken after %d\n", i); return 1; }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) != 1 || recv(fd, &back, 1, 0) != 1 || back != 'p') { printf("broken after %d\n", i); return 1; }
        usleep(500000);
    }
    return finish("held", 0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 4) {
        fprintf(stderr, "usage: probe tcp|udp|tcp6 ADDR PORT [TIMEOUT_MS] [TAG] | probe spoof SRC DST PORT TAG\n");
        return 64;
    }
    int timeout = argc > 4 ? atoi(argv[4]) : 2000;
    const char *tag = argc > 5 ? argv[5] : NULL;
    if (!strcmp(argv[1], "tcp")) return tcp(AF_INET, argv[2], atoi(argv[3]), timeout, tag);
    if (!strcmp(argv[1], "tcp6")) return tcp(AF_INET6, argv[2], atoi(argv[3]), timeout, tag);
    if (!strcmp(argv[1], "udp")) return udp(argv[2], atoi(argv[3]), timeout, tag);
    if (!strcmp(argv[1], "spoof") && argc >= 6) return spoof(argv[2], argv[3], atoi(argv[4]), argv[5]);
    if (!strcmp(argv[1], "writer")) return writer(argv[2], atol(argv[3]));
    if (!strcmp(argv[1], "badsum") && argc >= 6) return badsum(argv[2], argv[3], atoi(argv[4]), argv[5]);
    if (!strcmp(argv[1], "icmperr") && argc >= 6) return icmperr(argv[2], argv[3], atoi(argv[4]), argv[5]);
    if (!strcmp(argv[1], "ioctl") && argc >= 5) return btrfs_ioctl(argv[2], argv[3], argv[4]);
    if (!strcmp(argv[1], "ficlone")) return ficlone(argv[2], argv[3]);
    if (!strcmp(argv[1], "swap")) return swap(argv[2], argv[3]);
    if (!strcmp(argv[1], "getfd")) return getfd(atoi(argv[2]), atoi(argv[3]));
    if (!strcmp(argv[1], "dnsrate") && argc >= 5) return dnsrate(argv[2], argv[3], atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 0);
    if (!strcmp(argv[1], "hold") && argc >= 5) return hold(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (!strcmp(argv[1], "dns") && argc >= 5)
        return dns(argv[2], argv[3], atoi(argv[4]), argc > 5 && !strcmp(argv[5], "tcp"), argc > 6 ? atoi(argv[6]) : 1);
    if (!strcmp(argv[1], "rate") && argc >= 5) return rate(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "unknown probe %s\n", argv[1]);
    return 64;
}
