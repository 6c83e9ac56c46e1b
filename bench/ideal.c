/* The ideal provisioner: the floor under netprov's per-container goals, measured.
 *
 * It asks the kernel for exactly what netprov's veth container needs (a named netns, a
 * veth pair with both ends up, a /31 and a /127 on each end, a host route each way
 * and the container's default routes,
 * one sysctl, the ruleset), or for exactly what netprov's no-op reads to verify it, and
 * does nothing else: no input file, no checks, no marks, no lock, no error messages
 * beyond the failing call. Its time is the kernel's share plus a bare C process start,
 * so no provisioner can be faster at the same work. bench/run times it like every
 * tool, side by side, and a goal that fails with a budget below this program's time is
 * one the kernel makes impossible here (docs/benchmarks.md, "Round 8").
 *
 * The ruleset is the netlink batch netprov's compiled-ruleset cache holds for the
 * bench's ruleset (sent as is: libnftables built it; the kernel validates it), so the
 * floor pays the commit but not a parser, as netprov's cached load does.
 *
 *   ideal cold    BATCH PROCFS SPEC...   make each container
 *   ideal noop    BATCH PROCFS SPEC...   read what netprov's no-op reads
 *   ideal destroy BATCH PROCFS SPEC...   remove each netns handle (as `ip netns del`)
 *
 * SPEC is `netns,hostif,host4,ct4,host6,ct6` (a /31 and a /127); PROCFS is `shared`
 * (sysctls through /proc/sys) or `private` (through a procfs instance of its own, as
 * netprov does in a host with many namespaces: see netprov/src/kernel/procsys.rs).
 * Exit 0, or 1 with the failing step on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NETNS_DIR "/run/netns/"
#define PROTO 77 /* netprov's route protocol */

static void die(const char *what, int err) {
    fprintf(stderr, "ideal: %s: %s\n", what, strerror(err));
    exit(1);
}

/* ------------------------------------------------------------------ netlink */

struct msg {
    struct nlmsghdr h;
    char buf[1024];
};

static unsigned seq;

static void *tail(struct nlmsghdr *h) { return (char *)h + NLMSG_ALIGN(h->nlmsg_len); }

static void put(struct nlmsghdr *h, int type, const void *data, int len) {
    struct rtattr *a = tail(h);
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

static struct rtattr *nest(struct nlmsghdr *h, int type) {
    struct rtattr *a = tail(h);
    put(h, type, NULL, 0);
    return a;
}

static void end(struct nlmsghdr *h, struct rtattr *a) { a->rta_len = (char *)tail(h) - (char *)a; }

static void *start(struct msg *m, int type, int flags, const void *hdr, int len) {
    memset(m, 0, sizeof(*m));
    m->h.nlmsg_type = type;
    m->h.nlmsg_flags = NLM_F_REQUEST | flags;
    m->h.nlmsg_seq = ++seq;
    m->h.nlmsg_len = NLMSG_LENGTH(len);
    memcpy(NLMSG_DATA(&m->h), hdr, len);
    return NLMSG_DATA(&m->h);
}

static int sock(int proto) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (fd < 0) die("socket", errno);
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
    return fd;
}

static char rx[1 << 16];

/* Sends one request and reads to its ack (or, for a dump, to NLMSG_DONE). */
static void talk(int fd, struct nlmsghdr *h, const char *what) {
    if (send(fd, h, h->nlmsg_len, 0) < 0) die(what, errno);
    for (;;) {
        ssize_t n = recv(fd, rx, sizeof(rx), 0);
        if (n < 0) die(what, errno);
        for (struct nlmsghdr *r = (void *)rx; NLMSG_OK(r, n); r = NLMSG_NEXT(r, n)) {
            if (r->nlmsg_seq != h->nlmsg_seq) continue;
            if (r->nlmsg_type == NLMSG_DONE) return;
            if (r->nlmsg_type == NLMSG_ERROR) {
                int e = ((struct nlmsgerr *)NLMSG_DATA(r))->error;
                if (e) die(what, -e);
                return;
            }
            if (!(r->nlmsg_flags & NLM_F_MULTI)) return; /* a GET's one answer */
        }
    }
}

static int ifindex(int fd, const char *name) {
    struct msg m;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    start(&m, RTM_GETLINK, 0, &ifi, sizeof(ifi));
    put(&m.h, IFLA_IFNAME, name, strlen(name) + 1);
    if (send(fd, &m, m.h.nlmsg_len, 0) < 0) die("get link", errno);
    ssize_t n = recv(fd, rx, sizeof(rx), 0);
    struct nlmsghdr *r = (void *)rx;
    if (n < 0 || !NLMSG_OK(r, n)) die("get link", errno);
    if (r->nlmsg_type == NLMSG_ERROR) die("get link", -((struct nlmsgerr *)NLMSG_DATA(r))->error);
    return ((struct ifinfomsg *)NLMSG_DATA(r))->ifi_index;
}

static void link_up(int fd, int index) {
    struct msg m;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = IFF_UP,
                            .ifi_change = IFF_UP};
    start(&m, RTM_NEWLINK, NLM_F_ACK, &ifi, sizeof(ifi));
    talk(fd, &m.h, "set link up");
}

static void addr(int fd, int index, int family, const char *text, int plen) {
    struct msg m;
    unsigned char a[16];
    if (inet_pton(family, text, a) != 1) die("address", EINVAL);
    struct ifaddrmsg ifa = {.ifa_family = family, .ifa_prefixlen = plen, .ifa_index = index,
                            .ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0};
    start(&m, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof(ifa));
    int len = family == AF_INET ? 4 : 16;
    put(&m.h, IFA_LOCAL, a, len);
    put(&m.h, IFA_ADDRESS, a, len);
    talk(fd, &m.h, "add address");
}

/* A route to `dst` (a host route) through the link, or the default route via `dst`. */
static void route(int fd, int index, int family, const char *dst, int is_default) {
    struct msg m;
    unsigned char a[16];
    int len = family == AF_INET ? 4 : 16;
    if (inet_pton(family, dst, a) != 1) die("route", EINVAL);
    struct rtmsg rt = {.rtm_family = family, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = PROTO,
                       .rtm_scope = is_default ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
                       .rtm_type = RTN_UNICAST, .rtm_dst_len = is_default ? 0 : len * 8};
    start(&m, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof(rt));
    put(&m.h, is_default ? RTA_GATEWAY : RTA_DST, a, len);
    put(&m.h, RTA_OIF, &index, 4);
    talk(fd, &m.h, "add route");
}

/* The dumps netprov's observe makes, strictly filtered as netprov asks for them. */
static void dump_links(int fd) {
    struct msg m;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    start(&m, RTM_GETLINK, NLM_F_DUMP, &ifi, sizeof(ifi));
    talk(fd, &m.h, "dump links");
}

static void dump_addrs(int fd, int index) {
    struct msg m;
    struct ifaddrmsg ifa = {.ifa_family = AF_UNSPEC, .ifa_index = index};
    start(&m, RTM_GETADDR, NLM_F_DUMP, &ifa, sizeof(ifa));
    talk(fd, &m.h, "dump addresses");
}

static void dump_routes(int fd, int family, int oif) {
    struct msg m;
    struct rtmsg rt = {.rtm_family = family, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = PROTO};
    start(&m, RTM_GETROUTE, NLM_F_DUMP, &rt, sizeof(rt));
    if (oif) put(&m.h, RTA_OIF, &oif, 4);
    talk(fd, &m.h, "dump routes");
}

/* -------------------------------------------------------------- nf_tables */

static char *batch;
static size_t batch_len;

static void load_batch(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(path, errno);
    batch = malloc(1 << 20);
    ssize_t n = read(fd, batch, 1 << 20);
    if (n <= 0) die(path, n < 0 ? errno : EINVAL);
    batch_len = n;
    close(fd);
}

/* One sendmsg; nfnetlink runs the whole batch inside it, so every ack is queued when it
 * returns. */
static void commit(void) {
    int fd = sock(NETLINK_NETFILTER);
    if (send(fd, batch, batch_len, 0) < 0) die("nft batch", errno);
    for (;;) {
        ssize_t n = recv(fd, rx, sizeof(rx), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN) break;
            die("nft batch", errno);
        }
        for (struct nlmsghdr *r = (void *)rx; NLMSG_OK(r, n); r = NLMSG_NEXT(r, n))
            if (r->nlmsg_type == NLMSG_ERROR && ((struct nlmsgerr *)NLMSG_DATA(r))->error)
                die("nft batch", -((struct nlmsgerr *)NLMSG_DATA(r))->error);
    }
    close(fd);
}

/* What netprov's no-op asks nf_tables: its marker table, and the generation. */
static void nft_reads(void) {
    int fd = sock(NETLINK_NETFILTER);
    struct msg m;
    struct nfgenmsg g = {.nfgen_family = NFPROTO_INET, .version = NFNETLINK_V0};
    start(&m, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, NLM_F_ACK, &g, sizeof(g));
    put(&m.h, NFTA_TABLE_NAME, "netprov_state", 14);
    talk(fd, &m.h, "get marker table");
    g.nfgen_family = AF_UNSPEC;
    start(&m, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_ACK, &g, sizeof(g));
    talk(fd, &m.h, "get generation");
    close(fd);
}

/* ---------------------------------------------------------------- sysctls */

static int procsys = -1; /* a /proc/sys directory fd */

static void open_procsys(int private_instance) {
    if (!private_instance) {
        procsys = open("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (procsys < 0) die("/proc/sys", errno);
        return;
    }
    int fs = syscall(SYS_fsopen, "proc", 1 /* FSOPEN_CLOEXEC */);
    if (fs < 0) die("fsopen proc", errno);
    if (syscall(SYS_fsconfig, fs, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0) < 0)
        die("fsconfig", errno);
    int mnt = syscall(SYS_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */, 0);
    if (mnt < 0) die("fsmount", errno);
    procsys = openat(mnt, "sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (procsys < 0) die("proc sys", errno);
    close(fs);
    close(mnt);
}

static void sysctl(const char *path, const char *value) {
    int fd = openat(procsys, path, (value ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) die(path, errno);
    char b[32];
    if ((value ? write(fd, value, strlen(value)) : read(fd, b, sizeof(b))) < 0) die(path, errno);
    close(fd);
}

/* --------------------------------------------------------------- the work */

struct spec {
    char *netns, *hostif, *host4, *ct4, *host6, *ct6;
};

static void parse(char *s, struct spec *c) {
    char **f[] = {&c->netns, &c->hostif, &c->host4, &c->ct4, &c->host6, &c->ct6};
    for (int i = 0; i < 6; i++) {
        *f[i] = strsep(&s, ",");
        if (!*f[i]) die("SPEC: netns,hostif,host4,ct4,host6,ct6", EINVAL);
    }
}

static void cold(int host, int hostns, const struct spec *c) {
    char path[256];
    snprintf(path, sizeof(path), NETNS_DIR "%s", c->netns);
    int f = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (f < 0) die(path, errno);
    close(f);
    if (unshare(CLONE_NEWNET) < 0) die("unshare", errno);
    if (mount("/proc/self/ns/net", path, "none", MS_BIND, NULL) < 0) die("bind netns", errno);
    int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (ns < 0) die("netns fd", errno);
    int ct = sock(NETLINK_ROUTE);

    /* The host end made up, the peer straight into the container netns: one request.
     * (The peer cannot be made up too: veth refuses to open before its pair is linked,
     * ENOTCONN.) */
    struct msg m;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
    start(&m, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
    put(&m.h, IFLA_IFNAME, c->hostif, strlen(c->hostif) + 1);
    struct rtattr *li = nest(&m.h, IFLA_LINKINFO);
    put(&m.h, IFLA_INFO_KIND, "veth", 4);
    struct rtattr *data = nest(&m.h, IFLA_INFO_DATA);
    struct rtattr *peer = nest(&m.h, VETH_INFO_PEER);
    struct ifinfomsg *p = tail(&m.h);
    memset(p, 0, sizeof(*p));
    m.h.nlmsg_len = NLMSG_ALIGN(m.h.nlmsg_len) + NLMSG_ALIGN(sizeof(*p));
    put(&m.h, IFLA_IFNAME, "eth0", 5);
    put(&m.h, IFLA_NET_NS_FD, &ns, 4);
    end(&m.h, peer);
    end(&m.h, data);
    end(&m.h, li);
    talk(host, &m.h, "add veth");

    int h = ifindex(host, c->hostif);
    addr(host, h, AF_INET, c->host4, 31);
    addr(host, h, AF_INET6, c->host6, 127);
    route(host, h, AF_INET, c->ct4, 0);
    route(host, h, AF_INET6, c->ct6, 0);

    link_up(ct, 1);
    int e = ifindex(ct, "eth0");
    link_up(ct, e);
    addr(ct, e, AF_INET, c->ct4, 31);
    addr(ct, e, AF_INET6, c->ct6, 127);
    route(ct, e, AF_INET, c->host4, 0);
    route(ct, e, AF_INET6, c->host6, 0);
    route(ct, e, AF_INET, c->host4, 1);
    route(ct, e, AF_INET6, c->host6, 1);
    sysctl("net/ipv4/ip_forward", "1");
    commit();

    close(ct);
    close(ns);
    if (setns(hostns, CLONE_NEWNET) < 0) die("back to the host netns", errno);
}

static void noop(int host, int hostns, const struct spec *c) {
    char path[256];
    snprintf(path, sizeof(path), NETNS_DIR "%s", c->netns);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) die(path, errno);
    if (setns(ns, CLONE_NEWNET) < 0) die("enter netns", errno);
    int ct = sock(NETLINK_ROUTE);
    dump_links(ct);
    dump_addrs(ct, 0);
    dump_routes(ct, AF_INET, 0);
    dump_routes(ct, AF_INET6, 0);
    sysctl("net/ipv4/ip_forward", NULL);
    nft_reads();
    close(ct);
    close(ns);
    if (setns(hostns, CLONE_NEWNET) < 0) die("back to the host netns", errno);

    int h = ifindex(host, c->hostif);
    dump_addrs(host, h);
    dump_routes(host, AF_INET, h);
    dump_routes(host, AF_INET6, h);
}

static void destroy(const struct spec *c) {
    char path[256];
    snprintf(path, sizeof(path), NETNS_DIR "%s", c->netns);
    if (umount2(path, MNT_DETACH) < 0) die("umount netns", errno);
    if (unlink(path) < 0) die("unlink netns", errno);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: ideal cold|noop|destroy BATCH shared|private SPEC...\n");
        return 2;
    }
    const char *verb = argv[1];
    int is_cold = !strcmp(verb, "cold"), is_noop = !strcmp(verb, "noop");
    if (!is_cold && !is_noop && strcmp(verb, "destroy")) die(verb, EINVAL);
    if (is_cold) load_batch(argv[2]);
    if (!is_cold && !is_noop) {
        for (int i = 4; i < argc; i++) {
            struct spec c;
            parse(argv[i], &c);
            destroy(&c);
        }
        return 0;
    }
    open_procsys(!strcmp(argv[3], "private"));
    int hostns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (hostns < 0) die("host netns", errno);
    int host = sock(NETLINK_ROUTE);
    for (int i = 4; i < argc; i++) {
        struct spec c;
        parse(argv[i], &c);
        if (is_cold)
            cold(host, hostns, &c);
        else
            noop(host, hostns, &c);
    }
    return 0;
}
