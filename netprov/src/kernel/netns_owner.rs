//! Whose network namespace is it: the owner mark on a netns netprov creates, the checks
//! on `/run/netns/<id>` before netprov uses or removes it, and the host-netns guard on
//! `netns_path`.
//!
//! The mark is the alias (`IFLA_IFALIAS`) of the netns's `lo`: `netprov-netns:<id>`. It
//! lives in the kernel with the netns (a crash cannot lose it, unlike a state file), it
//! cannot be set on a netns by accident (`ip netns add` leaves `lo` without alias), and
//! reading it is free: observe dumps the links of the container netns anyway. It is set
//! by the thread that `unshare`d the new netns, *before* that thread bind-mounts the
//! handle, so `/run/netns/<id>` is never visible unmarked — a SIGKILL at any point
//! leaves either no handle or a marked one.
//!
//! A handle without the mark is foreign: apply refuses it (adopting it on purpose is
//! what `network.netns_path` is for) and destroy leaves it. Migration from netprov
//! versions that did not mark: a netns whose links carry this container's alias
//! `netprov:<id>` was made by netprov for this container; apply marks it (one step),
//! destroy treats it as netprov's.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::OpError;
use crate::kernel::link::{container_alias, LinkState};
use crate::model::ContainerId;

/// Prefix of the owner mark on `lo`.
pub const MARK_PREFIX: &str = "netprov-netns:";

/// `lo`'s ifindex: always 1 in a network namespace (`LOOPBACK_IFINDEX`).
const LO_INDEX: u32 = 1;

/// The owner mark of container `id`'s netns.
pub fn mark(id: &ContainerId) -> String {
    format!("{MARK_PREFIX}{id}")
}

/// Whose the netns is, from its links (as observe dumps them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// `lo` carries this container's mark.
    Ours,
    /// No mark, but links with this container's alias: made by an older netprov for
    /// this container. Counts as ours; apply adds the mark.
    Unmarked,
    /// Marked for another container.
    Other(String),
    /// Not netprov's.
    Foreign,
}

impl Owner {
    pub fn is_ours(&self) -> bool {
        matches!(self, Owner::Ours | Owner::Unmarked)
    }
}

/// Reads the owner of a netns from its links by name.
pub fn owner(id: &ContainerId, links: &BTreeMap<String, LinkState>) -> Owner {
    let lo = links.get("lo").and_then(|l| l.alias.as_deref());
    match lo.and_then(|a| a.strip_prefix(MARK_PREFIX)) {
        Some(other) if other == id.as_str() => return Owner::Ours,
        Some(other) => return Owner::Other(other.to_owned()),
        None => {}
    }
    let alias = container_alias(id);
    if links.values().any(|l| l.alias.as_deref() == Some(&alias)) {
        Owner::Unmarked
    } else {
        Owner::Foreign
    }
}

/// Why netprov will not use the netns at `path` as container `id`'s own.
pub fn not_ours(id: &ContainerId, path: &Path, o: &Owner) -> OpError {
    let whose = match o {
        Owner::Other(other) => format!("it is netprov's netns of container {other}"),
        _ => format!(
            "it has no owner mark ({}) — made by `ip netns add` or another tool",
            mark(id)
        ),
    };
    OpError::new(
        format!("use netns {} for {id}", path.display()),
        format!(
            "{whose}; refusing to take it over. To adopt it on purpose, set \"network.netns_path\": \"{}\" (netprov then never deletes it, nor anything in it that it did not create)",
            path.display()
        ),
    )
}

/// The protocol-77 routes (`st.routes`) of an adopted netns that container `d` may
/// delete: through a link it created or names, or with the key of one of `want`.
/// Another container's (or tool's) protocol-77 routes there are not netprov's for `d`.
pub fn adopted_routes(
    d: &crate::model::Desired,
    st: &crate::engine::observe::NsState,
    want: &[crate::kernel::route::RouteSpec],
) -> Vec<crate::kernel::route::RouteSpec> {
    let alias = container_alias(&d.id);
    let named = |dev: &str| {
        d.interfaces.iter().any(|i| {
            i.name.as_str() == dev || i.macvlan.as_ref().is_some_and(|m| m.name.as_str() == dev)
        })
    };
    st.routes
        .iter()
        .filter(|r| {
            let via_ours = r.dev.as_deref().is_some_and(|dev| {
                named(dev) || st.links.get(dev).is_some_and(|l| l.owned_as(&alias))
            });
            via_ours || want.iter().any(|w| w.same_key(r))
        })
        .cloned()
        .collect()
}

/// What is at an owned handle path (`/run/netns/<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handle {
    Absent,
    /// A regular empty file: left by a `create` interrupted before its bind mount.
    EmptyFile,
    /// A netns (an nsfs bind mount).
    Netns,
}

/// Checks an owned handle path without following a symlink: a symlink, or anything
/// but an nsfs bind mount or an empty regular file, is refused — netprov would
/// otherwise act on whatever it points to.
pub fn handle(path: &Path) -> Result<Handle, OpError> {
    let refuse = |what: &str| {
        OpError::new(
            format!("use netns handle {}", path.display()),
            format!("it is {what}, not a netns handle; refusing to use or remove it"),
        )
    };
    let md = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Handle::Absent),
        Err(e) => return Err(OpError::io(format!("stat {}", path.display()), &e)),
    };
    let ft = md.file_type();
    if ft.is_symlink() {
        return Err(refuse("a symlink"));
    }
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() || ft.is_socket() || ft.is_char_device() || ft.is_block_device() {
            "a special file"
        } else {
            "not a regular file"
        };
        return Err(refuse(what));
    }
    if crate::kernel::netns::is_handle(path) {
        Ok(Handle::Netns)
    } else if md.len() == 0 {
        Ok(Handle::EmptyFile)
    } else {
        Err(refuse("a regular file with content"))
    }
}

/// The (device, inode) of the nsfs inode a netns path refers to (symlinks followed:
/// `/proc/<pid>/ns/net` is one).
fn ns_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `Some(reason)` when `path` is the host netns — the same nsfs inode as `host` (the
/// netns netprov treats as host) or as PID 1's netns. A path that cannot be read is not
/// judged here (apply reports it as missing).
pub fn host_netns(path: &Path, host: &Path) -> Option<String> {
    let why = |what: &str, h: &Path| {
        format!(
            "{} is {what} ({}); adopting it would let netprov replace the host's nftables tables and routes. Use a container netns (or \"\" to let netprov create {}/<id>)",
            path.display(),
            h.display(),
            crate::props::NETNS_DIR
        )
    };
    // By name too: PID 1's netns may be unreadable (ptrace rules), and /proc/self is
    // whatever process reads the props.
    let named = |p: &str| path.components().eq(Path::new(p).components());
    if ["/proc/1/ns/net", "/proc/1/task/1/ns/net"]
        .iter()
        .any(|p| named(p))
    {
        return Some(why("PID 1's netns", Path::new("/proc/1/ns/net")));
    }
    if ["/proc/self/ns/net", "/proc/thread-self/ns/net"]
        .iter()
        .any(|p| named(p))
    {
        return Some(why("netprov's own netns, the host", path));
    }
    let ns = ns_id(path)?;
    for (h, what) in [
        (host, "the host netns netprov runs against"),
        (Path::new("/proc/1/ns/net"), "PID 1's netns"),
    ] {
        if ns_id(h) == Some(ns) {
            return Some(why(what, h));
        }
    }
    None
}

/// Refuses to use the host netns as a container netns (the apply-time twin of the
/// validation check, against the engine's actual host netns).
pub fn refuse_host(id: &ContainerId, path: &Path, host: &Path) -> Result<(), OpError> {
    match host_netns(path, host) {
        Some(why) => Err(OpError::new(
            format!("use netns {} for {id}", path.display()),
            why,
        )),
        None => Ok(()),
    }
}

/// Sets the owner mark on `lo` of the calling thread's netns, over a netlink socket
/// opened (and closed) on this thread. Used by the thread that just created the netns.
pub fn set_mark_here(id: &ContainerId) -> Result<(), OpError> {
    use netlink_packet_core::NetlinkPayload;
    use netlink_packet_core::NLM_F_ACK;
    let op = format!("mark new netns of {id} (alias {} on lo)", mark(id));
    let change = crate::kernel::link::LinkChange {
        alias: Some(mark(id)),
        ..Default::default()
    };
    match request_here(crate::kernel::link::set(LO_INDEX, &change), NLM_F_ACK, &op)? {
        NetlinkPayload::Error(e) => match e.code {
            None => Ok(()),
            Some(code) => Err(OpError::errno(op, -code.get())),
        },
        _ => Err(OpError::new(op, "no acknowledgement from the kernel")),
    }
}

/// The alias of `lo` in the calling thread's netns (the owner mark, if any).
pub fn mark_here() -> Result<Option<String>, OpError> {
    use netlink_packet_core::NetlinkPayload;
    use netlink_packet_route::RouteNetlinkMessage;
    let op = "read the owner mark (alias of lo) of a netns";
    match request_here(crate::kernel::link::get_by_index(LO_INDEX), 0, op)? {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
            Ok(LinkState::parse(&m).alias)
        }
        NetlinkPayload::Error(e) if e.code.is_some() => Err(OpError::errno(
            op,
            -e.code.map(|c| c.get()).unwrap_or(-libc::EIO),
        )),
        _ => Err(OpError::new(op, "unexpected netlink reply")),
    }
}

/// One rtnetlink request on a blocking socket opened on (and bound to the netns of)
/// the calling thread; returns the first reply.
fn request_here(
    msg: netlink_packet_route::RouteNetlinkMessage,
    flags: u16,
    op: &str,
) -> Result<netlink_packet_core::NetlinkPayload<netlink_packet_route::RouteNetlinkMessage>, OpError>
{
    use netlink_packet_core::{NetlinkMessage, NLM_F_REQUEST};
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

    let io = |e: std::io::Error| OpError::io(op.to_owned(), &e);
    let mut sock = Socket::new(NETLINK_ROUTE).map_err(io)?;
    sock.bind_auto().map_err(io)?;
    sock.connect(&SocketAddr::new(0, 0)).map_err(io)?;
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = NLM_F_REQUEST | flags;
    req.header.sequence_number = 1;
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    sock.send(&buf, 0).map_err(io)?;
    let (reply, _) = sock.recv_from_full().map_err(io)?;
    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
        .map(|m| m.payload)
        .map_err(|e| OpError::new(op, format!("bad netlink reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, alias: Option<&str>) -> (String, LinkState) {
        (
            name.to_owned(),
            LinkState {
                index: 1,
                name: name.to_owned(),
                alias: alias.map(str::to_owned),
                group: 0,
                kind: crate::kernel::link::Kind::Unknown,
                up: true,
                mtu: None,
                mac: None,
                link: None,
                controller: None,
                link_netnsid: None,
                addrgenmode: None,
            },
        )
    }

    #[test]
    fn owner_from_the_lo_mark_or_the_container_alias() {
        let id = ContainerId::new("web").unwrap();
        let links = |v: Vec<(String, LinkState)>| v.into_iter().collect::<BTreeMap<_, _>>();
        assert_eq!(
            owner(&id, &links(vec![link("lo", Some("netprov-netns:web"))])),
            Owner::Ours
        );
        assert_eq!(
            owner(&id, &links(vec![link("lo", Some("netprov-netns:db"))])),
            Owner::Other("db".into())
        );
        assert_eq!(owner(&id, &links(vec![link("lo", None)])), Owner::Foreign);
        // Another container's links do not make it ours; this container's do.
        assert_eq!(
            owner(
                &id,
                &links(vec![link("lo", None), link("x", Some("netprov:db"))])
            ),
            Owner::Foreign
        );
        assert_eq!(
            owner(
                &id,
                &links(vec![link("lo", None), link("x", Some("netprov:web"))])
            ),
            Owner::Unmarked
        );
        // A mark beats links: another container's mark with this one's links is theirs.
        assert_eq!(
            owner(
                &id,
                &links(vec![
                    link("lo", Some("netprov-netns:db")),
                    link("x", Some("netprov:web"))
                ])
            ),
            Owner::Other("db".into())
        );
    }

    /// Every combination of the link a protocol-77 route goes through and whether it is
    /// one of the container's routes: deletable exactly when either says it is ours.
    #[test]
    fn adopted_routes_matrix() {
        use crate::kernel::route::RouteSpec;
        use crate::model::*;
        let id = ContainerId::new("web").unwrap();
        let d = Desired {
            id: id.clone(),
            netns: NetnsSpec::Adopted {
                path: "/run/netns/x".into(),
            },
            interfaces: vec![Interface {
                name: IfName::new("lan").unwrap(),
                kind: InterfaceKind::Existing,
                addrs: vec![],
                mtu: None,
                mac: None,
                macvlan: None,
            }],
            routes: vec![],
            sysctls: vec![],
            nft: None,
            host_rules: HostRules::default(),
        };
        let mut st = crate::engine::observe::NsState::default();
        for (name, alias, ours) in [
            ("lan", None, true),                // named by the props
            ("wan", Some("netprov:web"), true), // created for this container
            ("db0", Some("netprov:db"), false), // another container's
            ("eth0", None, false),              // foreign
        ] {
            let (n, mut l) = link(name, alias);
            l.index = st.links.len() as u32 + 2;
            st.links.insert(n, l);
            for (k, wanted) in [false, true].into_iter().enumerate() {
                let dest = format!("10.{}.{k}.0/24", st.links.len()).parse().unwrap();
                let r = RouteSpec {
                    dest,
                    gateway: None,
                    dev: Some(name.to_owned()),
                    metric: 0,
                };
                st.routes.push(r.clone());
                let want: Vec<RouteSpec> = if wanted { vec![r.clone()] } else { vec![] };
                let got = adopted_routes(&d, &st, &want);
                assert_eq!(got.contains(&r), ours || wanted, "{name} wanted={wanted}");
                st.routes.pop();
            }
        }
    }

    #[test]
    fn handle_refuses_symlinks_and_other_files() {
        let dir = std::env::temp_dir().join(format!("netprov-owner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("empty");
        std::fs::write(&f, "").unwrap();
        assert_eq!(handle(&f).unwrap(), Handle::EmptyFile);
        let full = dir.join("full");
        std::fs::write(&full, "x").unwrap();
        assert!(handle(&full).is_err());
        let l = dir.join("link");
        let _ = std::fs::remove_file(&l);
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let e = handle(&l).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        assert!(handle(&dir).is_err());
        assert_eq!(handle(&dir.join("none")).unwrap(), Handle::Absent);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_netns_path_is_the_host_when_it_is_the_same_inode() {
        let host = Path::new("/proc/thread-self/ns/net");
        let me = format!("/proc/{}/ns/net", std::process::id());
        assert!(host_netns(Path::new(&me), host).is_some());
        assert!(host_netns(Path::new("/nonexistent/ns"), host).is_none());
        // By name, even where PID 1's netns cannot be read.
        for p in ["/proc/1/ns/net", "/proc/1/ns//net", "/proc/self/ns/net"] {
            assert!(
                host_netns(Path::new(p), Path::new("/nonexistent")).is_some(),
                "{p}"
            );
        }
    }
}
