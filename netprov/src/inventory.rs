//! What netprov owns on this host, found from its marks alone: the host-wide commands
//! `list`, `status`, `gc` and `reconcile`.
//!
//! Unlike apply/plan/check (O(one container), never a host dump), these commands ask
//! about the whole host, so they dump it once: the host netns's links (netprov's are in
//! its link group or carry a `netprov:` alias) and protocol-77 routes, its `inet
//! netprov-<id>` tables, the `/run/netns` handles whose `lo` carries netprov's owner mark,
//! and — when OVSDB is reachable — the Port rows with `external_ids:netprov-id`. Nothing
//! is attributed by name alone: a link called `ve-web-wan` without netprov's alias, or a
//! `/run/netns/web` made by `ip netns add`, is not netprov's and is neither listed nor
//! collected.
//!
//! A container is *orphaned* when it has objects here but no props file in the props
//! directory and no running machine (`/run/systemd/machines/<id>`), and no process
//! lives in its netns. `gc` destroys exactly the orphans, each re-checked under the
//! container's lock (so a container whose start raced the scan is left alone).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;
use serde_json::Value;

use crate::engine::blocking::blocking;
use crate::engine::{DestroyFailed, DestroyReport, DestroyTarget, Engine};
use crate::error::{Invalid, OpError};
use crate::kernel::address;
use crate::kernel::link::{self, LinkState, NETPROV_GROUP};
use crate::kernel::netlink::Netlink;
use crate::kernel::netns_owner::{self, Owner};
use crate::kernel::route;
use crate::model::{ContainerId, Desired, NetnsSpec};
use crate::nft::{self, HostState, RulesetState};
use crate::ovsdb::ops::{optional_member, parse_string_map, parse_uuid, set_members, Op};
use crate::ovsdb::port::OWNER_KEY;
use crate::ovsdb::{Client, Endpoint, Txn};

/// Where the host-wide commands look besides the kernel.
#[derive(Debug, Clone)]
pub struct Places {
    /// The props directory (`/etc/netprov`, what the generator reads).
    pub props_dir: PathBuf,
    /// systemd-machined's state directory: `<dir>/<name>` exists while machine `<name>`
    /// runs (`/run/systemd/machines`).
    pub machines_dir: PathBuf,
}

impl Default for Places {
    fn default() -> Self {
        Self {
            props_dir: PathBuf::from(PROPS_DIR),
            machines_dir: PathBuf::from(MACHINES_DIR),
        }
    }
}

/// The default props directory.
pub const PROPS_DIR: &str = "/etc/netprov";
/// systemd-machined's per-machine state files.
pub const MACHINES_DIR: &str = "/run/systemd/machines";

/// The objects one container has on this host, by their marks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holdings {
    /// `/run/netns/<id>` is there and carries the owner mark (or, from an older netprov,
    /// holds links with this container's alias: `netns_unmarked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub netns_unmarked: bool,
    /// Host-netns links with this container's alias (veth host ends, ports back in the
    /// host).
    pub host_links: Vec<String>,
    /// Protocol-77 routes in the host netns through those links.
    pub host_routes: Vec<String>,
    /// The host nftables table `inet netprov-<id>` exists.
    pub host_table: bool,
    /// OVS ports marked `external_ids:netprov-id=<id>`.
    pub ovs_ports: Vec<String>,
    /// A veth host end's peer lives in another netns although `/run/netns/<id>` is not
    /// there: something (a process, a bind mount elsewhere) still holds the container's
    /// netns. Its processes cannot be told from here, so such a container is never
    /// collected.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held_elsewhere: bool,
}

impl Holdings {
    pub fn is_empty(&self) -> bool {
        self == &Holdings::default()
    }

    /// "netns, 2 links, 1 route, host table, 1 OVS port".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.netns.is_some() {
            parts.push(if self.netns_unmarked {
                "netns (unmarked)".to_owned()
            } else {
                "netns".to_owned()
            });
        } else if self.held_elsewhere {
            parts.push("netns held elsewhere (no /run/netns handle)".to_owned());
        }
        let n =
            |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        if !self.host_links.is_empty() {
            parts.push(n(self.host_links.len(), "host link", "host links"));
        }
        if !self.host_routes.is_empty() {
            parts.push(n(self.host_routes.len(), "route", "routes"));
        }
        if self.host_table {
            parts.push("host table".into());
        }
        if !self.ovs_ports.is_empty() {
            parts.push(n(self.ovs_ports.len(), "OVS port", "OVS ports"));
        }
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Everything netprov owns on this host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scan {
    pub ids: BTreeMap<String, Holdings>,
    /// netprov's objects whose container is unknown: links in netprov's group without
    /// alias (a creation interrupted before its mark; the next apply of their container
    /// finishes it) and protocol-77 host routes through links that are not netprov's.
    /// Listed, never collected.
    pub unattributed: Vec<String>,
    /// OVSDB was not consulted: why (no socket, or unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ovsdb_skipped: Option<String>,
}

/// The container an alias names: `netprov:<id>` or `netprov:<id>:<ifname>`.
pub fn alias_owner(alias: &str) -> Option<ContainerId> {
    let rest = alias.strip_prefix("netprov:")?;
    let id = rest.split(':').next()?;
    ContainerId::new(id).ok()
}

/// Scans the host netns, `/run/netns` and OVSDB for netprov's objects.
pub fn scan(engine: &Engine) -> Result<Scan, OpError> {
    let (host, host_path, rt, ep) = engine.parts();
    let mut s = Scan::default();
    rt.block_on(scan_host(host, &mut s))?;
    for id in nft::host::list_host_tables(host_path)? {
        s.ids.entry(id.to_string()).or_default().host_table = true;
    }
    rt.block_on(scan_netns(rt.handle(), &mut s));
    match rt.block_on(blocking("list OVS ports", move || ovs_ports(&ep))) {
        Ok(Ok(ports)) => {
            for (port, id) in ports {
                s.ids.entry(id).or_default().ovs_ports.push(port);
            }
        }
        Ok(Err(why)) => s.ovsdb_skipped = Some(why),
        Err(e) => s.ovsdb_skipped = Some(e.to_string()),
    }
    Ok(s)
}

async fn scan_host(host: &Netlink, s: &mut Scan) -> Result<(), OpError> {
    let links = host
        .dump(link::dump())
        .await
        .map_err(|e| OpError::errno("list links in host netns", e))?;
    let mut owner_of = BTreeMap::new();
    let mut names = BTreeMap::new();
    for m in links {
        let RouteNetlinkMessage::NewLink(m) = m else {
            continue;
        };
        let l = LinkState::parse(&m);
        names.insert(l.index, l.name.clone());
        match l.alias.as_deref().and_then(alias_owner) {
            Some(id) => {
                let h = s.ids.entry(id.to_string()).or_default();
                h.host_links.push(l.name.clone());
                h.held_elsewhere |= l.kind == link::Kind::Veth && l.link_netnsid.is_some();
                owner_of.insert(l.index, id.to_string());
            }
            None if l.group == NETPROV_GROUP && l.alias.is_none() => s
                .unattributed
                .push(format!("link {} (netprov's group, no alias)", l.name)),
            None => {}
        }
    }
    for v6 in [false, true] {
        let routes = host
            .dump(route::dump(v6, None))
            .await
            .map_err(|e| OpError::errno("list netprov routes in host netns", e))?;
        for m in routes {
            let RouteNetlinkMessage::NewRoute(m) = m else {
                continue;
            };
            let Some(r) = route::parse(&m) else { continue };
            let spec = route::RouteSpec {
                dest: r.dest,
                gateway: r.gateway,
                dev: r.oif.and_then(|i| names.get(&i).cloned()),
                metric: r.metric,
            };
            match r.oif.and_then(|i| owner_of.get(&i)) {
                Some(id) => s
                    .ids
                    .entry(id.clone())
                    .or_default()
                    .host_routes
                    .push(spec.to_string()),
                None => s.unattributed.push(format!("route {spec} (protocol 77)")),
            }
        }
    }
    Ok(())
}

/// `/run/netns/<id>` handles that are netprov's for `<id>` (owner mark, or an older
/// netprov's links). Handles that vanish meanwhile, foreign ones and names that are no
/// valid id are skipped.
async fn scan_netns(rt: &tokio::runtime::Handle, s: &mut Scan) {
    let Ok(dir) = std::fs::read_dir(crate::props::NETNS_DIR) else {
        return;
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let Ok(id) = ContainerId::new(&name) else {
            continue;
        };
        let path = Path::new(crate::props::NETNS_DIR).join(&name);
        if netns_owner::handle(&path).ok() != Some(netns_owner::Handle::Netns) {
            continue;
        }
        let Ok(links) = netns_links(&path, rt).await else {
            continue;
        };
        let o = netns_owner::owner(&id, &links);
        if o.is_ours() {
            let h = s.ids.entry(name).or_default();
            h.netns = Some(path);
            h.netns_unmarked = o == Owner::Unmarked;
        }
    }
}

async fn netns_links(
    path: &Path,
    rt: &tokio::runtime::Handle,
) -> Result<BTreeMap<String, LinkState>, OpError> {
    let nl = Netlink::open(Some(path), rt, format!("netns {}", path.display()))?;
    links_of(&nl).await
}

/// The links of the netns `nl` is bound to, by name.
async fn links_of(nl: &Netlink) -> Result<BTreeMap<String, LinkState>, OpError> {
    let msgs = nl
        .dump(link::dump())
        .await
        .map_err(|e| OpError::errno(format!("list links in {}", nl.label), e))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(m) => {
                let l = LinkState::parse(&m);
                Some((l.name.clone(), l))
            }
            _ => None,
        })
        .collect())
}

/// Every OVS port marked with a container id: `(port, id)`. `Err(why)` when OVSDB was
/// not consulted (no socket: no OVS on this host; or it does not answer).
fn ovs_ports(ep: &Endpoint) -> Result<Result<Vec<(String, String)>, String>, OpError> {
    let mut c = match Client::connect_if_present(ep) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(Err(format!("no OVSDB socket at {}", ep.path().display()))),
        Err(e) => return Ok(Err(e.to_string())),
    };
    let rows = select_all(&mut c, "Port", &["name", "external_ids"])?;
    Ok(Ok(rows
        .iter()
        .filter_map(|r| {
            let ids = parse_string_map(&r["external_ids"]);
            let owner = ids.get(OWNER_KEY)?;
            ContainerId::new(owner).ok()?;
            Some((r["name"].as_str()?.to_owned(), owner.clone()))
        })
        .collect()))
}

fn select_all(
    c: &mut Client,
    table: &'static str,
    columns: &[&'static str],
) -> Result<Vec<Value>, OpError> {
    let mut txn = Txn::new();
    txn.push(
        Op::Select {
            table,
            conds: vec![],
            columns: columns.to_vec(),
        },
        None,
    );
    let res = c
        .transact(&format!("list OVS {table} rows"), &txn)
        .map_err(OpError::from)?;
    Ok(res
        .first()
        .and_then(|r| r["rows"].as_array().cloned())
        .unwrap_or_default())
}

/// The props files of `dir` by container id: `*.json`, not hidden, whose name is a
/// valid id (the generator's rule). A missing directory has none.
pub fn props_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            if name.starts_with('.') || ContainerId::new(stem).is_err() {
                return None;
            }
            let path = e.path();
            path.is_file().then(|| (stem.to_owned(), path))
        })
        .collect()
}

/// Whether machine `id` is registered with systemd-machined.
pub fn machine_running(places: &Places, id: &str) -> bool {
    places.machines_dir.join(id).exists()
}

/// Processes whose network namespace is the one at `netns` (compared by nsfs inode
/// against every `/proc/<pid>/ns/net`). Processes of other PID namespaces are seen too:
/// /proc here is the host's.
pub fn netns_processes(netns: &Path) -> Vec<u32> {
    let Ok(md) = std::fs::metadata(netns) else {
        return Vec::new();
    };
    let target = (md.dev(), md.ino());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| (m.dev(), m.ino()) == target)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether the container's props say so, compared with the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SyncState {
    /// No props file: nothing to compare with.
    NoProps,
    InSync,
    Drifted {
        differences: Vec<String>,
    },
    /// The props file does not validate.
    Invalid {
        error: String,
    },
    /// The comparison failed.
    Error {
        error: String,
    },
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncState::NoProps => f.write_str("-"),
            SyncState::InSync => f.write_str("in sync"),
            SyncState::Drifted { differences } => write!(f, "drifted ({})", differences.len()),
            SyncState::Invalid { .. } => f.write_str("invalid props"),
            SyncState::Error { .. } => f.write_str("error"),
        }
    }
}

/// One line of `netprov list`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub props: Option<PathBuf>,
    pub running: bool,
    /// Processes in its netns.
    pub processes: usize,
    pub objects: Holdings,
    pub sync: SyncState,
    /// No props file, no machine, no process in its netns: `gc` removes it.
    pub orphaned: bool,
}

fn load_props(path: &Path) -> Result<Desired, String> {
    crate::props::load(path).map_err(|errs| {
        errs.iter()
            .map(Invalid::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn sync_of(engine: &Engine, props: Option<&PathBuf>) -> SyncState {
    let Some(p) = props else {
        return SyncState::NoProps;
    };
    let d = match load_props(p) {
        Ok(d) => d,
        Err(error) => return SyncState::Invalid { error },
    };
    match engine.check(&d) {
        Ok(drift) if drift.is_empty() => SyncState::InSync,
        Ok(drift) => SyncState::Drifted {
            differences: drift.iter().map(|x| x.to_string()).collect(),
        },
        Err(e) => SyncState::Error {
            error: e.to_string(),
        },
    }
}

/// How many processes are in each network namespace, by nsfs (device, inode): one pass
/// over `/proc`, however many containers are listed.
fn netns_users() -> BTreeMap<(u64, u64), usize> {
    let mut users = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return users;
    };
    for pid in procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            *users.entry((m.dev(), m.ino())).or_default() += 1;
        }
    }
    users
}

fn entry(
    engine: Option<&Engine>,
    places: &Places,
    users: &BTreeMap<(u64, u64), usize>,
    id: &str,
    objects: Holdings,
    props: Option<PathBuf>,
) -> Entry {
    let running = machine_running(places, id);
    let processes = objects
        .netns
        .as_deref()
        .and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| users.get(&(m.dev(), m.ino())).copied())
        .unwrap_or(0);
    let sync = match engine {
        Some(e) => sync_of(e, props.as_ref()),
        None if props.is_some() => SyncState::Error {
            error: "not checked".into(),
        },
        None => SyncState::NoProps,
    };
    // The handle is the netns the peers live in; without it, a live peer means the
    // netns is held by something else.
    let held = objects.netns.is_none() && objects.held_elsewhere;
    let orphaned = props.is_none() && !running && processes == 0 && !held && !objects.is_empty();
    Entry {
        id: id.to_owned(),
        props,
        running,
        processes,
        objects,
        sync,
        orphaned,
    }
}

/// `netprov list`: every id with objects here or a props file, restricted to `only`
/// when it is not empty.
pub fn list(
    engine: &Engine,
    places: &Places,
    only: &[ContainerId],
) -> Result<(Vec<Entry>, Scan), OpError> {
    entries(engine, places, only, true)
}

/// The entries of `list`; `check` compares each with its props file (`gc` does not
/// need that).
fn entries(
    engine: &Engine,
    places: &Places,
    only: &[ContainerId],
    check: bool,
) -> Result<(Vec<Entry>, Scan), OpError> {
    let mut scan = scan(engine)?;
    let users = netns_users();
    let mut props = props_files(&places.props_dir);
    let mut ids: BTreeSet<String> = scan.ids.keys().cloned().collect();
    ids.extend(props.keys().cloned());
    let wanted = |id: &String| only.is_empty() || only.iter().any(|o| o.as_str() == id);
    let entries = ids
        .into_iter()
        .filter(wanted)
        .map(|id| {
            let objects = scan.ids.remove(&id).unwrap_or_default();
            let p = props.remove(&id);
            entry(check.then_some(engine), places, &users, &id, objects, p)
        })
        .collect();
    Ok((entries, scan))
}

/// What `gc` did (or, dry, would do) with one orphan.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub id: String,
    /// What it held when scanned.
    pub objects: Holdings,
    /// What destroy removed (`None`: dry run, or no longer an orphan under its lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<DestroyReport>,
    /// Why it was kept after all (it became live between the scan and its lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
    /// Failures of a partial destroy.
    pub errors: Vec<String>,
}

/// Why `id` is not an orphan right now, if it is not.
fn alive(places: &Places, id: &str, netns: Option<&Path>) -> Option<String> {
    if let Some(p) = props_files(&places.props_dir).get(id) {
        return Some(format!("it has a props file ({})", p.display()));
    }
    if machine_running(places, id) {
        return Some(format!(
            "machine {id} is running ({})",
            places.machines_dir.join(id).display()
        ));
    }
    let pids = netns.map(netns_processes).unwrap_or_default();
    if !pids.is_empty() {
        return Some(format!("processes live in its netns (pid {:?})", pids));
    }
    None
}

/// `netprov gc`: destroys every orphan (restricted to `only` when not empty); with
/// `dry_run`, only says which.
pub fn gc(
    engine: &Engine,
    places: &Places,
    only: &[ContainerId],
    dry_run: bool,
) -> Result<Vec<Collected>, OpError> {
    // Without a readable props directory every container would look orphaned (a typo
    // in --props-dir must not collect them all).
    std::fs::read_dir(&places.props_dir).map_err(|e| {
        OpError::io(
            format!(
                "read props directory {} (refusing to collect: without it every container looks orphaned)",
                places.props_dir.display()
            ),
            &e,
        )
    })?;
    let (entries, _) = entries(engine, places, only, false)?;
    let mut out = Vec::new();
    for e in entries.into_iter().filter(|e| e.orphaned) {
        let mut c = Collected {
            id: e.id.clone(),
            objects: e.objects.clone(),
            removed: None,
            kept: None,
            errors: Vec::new(),
        };
        if !dry_run {
            let id = ContainerId::new(&e.id).expect("scanned ids are valid");
            let netns = e.objects.netns.clone();
            let mut why = None;
            let r = engine.destroy_if(
                &DestroyTarget::Id(id),
                || {
                    why = alive(places, &e.id, netns.as_deref());
                    why.is_none()
                },
                &e.objects.host_links,
            );
            match r {
                Ok(Some(rep)) => c.removed = Some(rep),
                Ok(None) => c.kept = why,
                Err(DestroyFailed { report, failures }) => {
                    c.removed = Some(*report);
                    c.errors = failures.iter().map(|f| f.to_string()).collect();
                }
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// Deletes the host-netns links `names` that are still there and carry container
/// `id`'s alias (`netprov:<id>` or `netprov:<id>:<if>`); a link renamed or re-marked
/// meanwhile is left. Adds what it deleted to `rep`; returns the failures.
pub(crate) async fn delete_host_links(
    host: &Netlink,
    id: &ContainerId,
    names: &[String],
    rep: &mut DestroyReport,
) -> Vec<OpError> {
    let mut fails = Vec::new();
    let count = crate::kernel::netlink::MutationCount::default();
    for name in names {
        let got = match host.get(link::get_by_name(name)).await {
            Ok(Some(RouteNetlinkMessage::NewLink(m))) => LinkState::parse(&m),
            Ok(_) => continue,
            Err(e) => {
                fails.push(OpError::errno(format!("get link {name} in host netns"), e));
                continue;
            }
        };
        if got.alias.as_deref().and_then(alias_owner).as_ref() != Some(id) {
            continue;
        }
        match host.mutate(link::delete(got.index), 0, &count).await {
            Ok(()) | Err(libc::ENODEV) => rep.links_deleted.push(format!("{name} (host netns)")),
            Err(e) => fails.push(OpError::errno(
                format!("delete link {name} in host netns"),
                e,
            )),
        }
    }
    rep.messages += count.get();
    fails
}

/// One container's outcome in `reconcile`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Reconciled {
    /// Applied: the number of changes (0: it was in sync).
    Applied {
        changes: usize,
        steps: Vec<String>,
    },
    /// Not applied: its network does not exist and its machine is not running (a
    /// stopped container; reconcile heals networks, it does not start containers).
    Skipped {
        why: String,
    },
    Invalid {
        error: String,
    },
    Failed {
        error: String,
        errno: Option<i32>,
    },
}

/// Whether a container's network is live: its netns exists (an owned handle, or the
/// adopted `netns_path`), or its machine runs.
fn network_live(places: &Places, d: &Desired) -> bool {
    let netns = match &d.netns {
        NetnsSpec::Owned { path } | NetnsSpec::Adopted { path } => path,
    };
    crate::kernel::netns::is_handle(netns) || machine_running(places, d.id.as_str())
}

/// `netprov reconcile`: re-applies every props file of the props directory whose
/// network is live, concurrently in this process; `all` applies stopped ones too.
/// Files are validated one by one, so a bad file is reported and the others still
/// applied; files that conflict with each other are all refused.
pub fn reconcile(engine: &Engine, places: &Places, all: bool) -> Vec<(String, Reconciled)> {
    let files = props_files(&places.props_dir);
    let mut out: BTreeMap<String, Reconciled> = BTreeMap::new();
    let mut ok: Vec<(PathBuf, Desired)> = Vec::new();
    for (id, p) in &files {
        match load_props(p) {
            Ok(d) if d.id.as_str() == id => ok.push((p.clone(), d)),
            Ok(d) => {
                out.insert(
                    id.clone(),
                    Reconciled::Invalid {
                        error: format!(
                            "{}: its \"id\" is {:?} but the file name says {id:?}",
                            p.display(),
                            d.id.as_str()
                        ),
                    },
                );
            }
            Err(error) => {
                out.insert(id.clone(), Reconciled::Invalid { error });
            }
        }
    }
    let (paths, ds): (Vec<PathBuf>, Vec<Desired>) = ok.into_iter().unzip();
    let mut conflicted = BTreeSet::new();
    for e in crate::props::check_conflicts(&ds, &paths) {
        if let Some(i) = e
            .file
            .as_ref()
            .and_then(|f| paths.iter().position(|p| p == f))
        {
            conflicted.insert(i);
            out.insert(
                ds[i].id.to_string(),
                Reconciled::Invalid {
                    error: e.to_string(),
                },
            );
        }
    }
    let ds: Vec<Desired> = ds
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !conflicted.contains(i))
        .map(|(_, d)| d)
        .collect();
    let results = engine.apply_many_if(&ds, |d| all || network_live(places, d));
    for (d, r) in ds.iter().zip(results) {
        let v = match r {
            None => Reconciled::Skipped {
                why: "not running: no netns and no machine".into(),
            },
            Some(Ok(rep)) => Reconciled::Applied {
                changes: rep.plan.steps.len(),
                steps: rep.plan.steps.iter().map(|s| s.to_string()).collect(),
            },
            Some(Err(e)) => Reconciled::Failed {
                error: e.to_string(),
                errno: e.errno,
            },
        };
        out.insert(d.id.to_string(), v);
    }
    out.into_iter().collect()
}

/// One link in `netprov status`.
#[derive(Debug, Clone, Serialize)]
pub struct LinkStatus {
    pub name: String,
    /// "host" or "netns".
    pub side: &'static str,
    pub kind: String,
    pub up: bool,
    pub addresses: Vec<String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// One OVS port in `netprov status`.
#[derive(Debug, Clone, Serialize)]
pub struct PortStatus {
    pub name: String,
    pub ofport: Option<i64>,
    pub tag: Option<i64>,
    pub trunks: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `netprov status <id>`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub props: Option<PathBuf>,
    pub running: bool,
    pub processes: Vec<u32>,
    pub links: Vec<LinkStatus>,
    pub ovs_ports: Vec<PortStatus>,
    /// Digest of the container ruleset netprov loaded (`None`: none loaded).
    pub nft_digest: Option<String>,
    /// The live ruleset is still what netprov loaded.
    pub nft_intact: Option<bool>,
    /// The host table `inet netprov-<id>` exists (whether it holds what the props
    /// generate is part of `sync`).
    pub host_table: bool,
    pub sync: SyncState,
    /// `/run/netns/<id>` exists but is not netprov's (nothing in it is shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_not_ours: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ovsdb_skipped: Option<String>,
}

fn link_status(m: &LinkMessage, side: &'static str, addrs: &[String]) -> LinkStatus {
    let l = LinkState::parse(m);
    let mut s = LinkStatus {
        name: l.name.clone(),
        side,
        kind: match &l.kind {
            link::Kind::Veth => "veth".into(),
            link::Kind::Macvlan => "macvlan".into(),
            link::Kind::Bridge => "bridge".into(),
            link::Kind::Other(k) => k.clone(),
            link::Kind::Unknown => "device".into(),
        },
        up: l.up,
        addresses: addrs.to_vec(),
        rx_packets: 0,
        rx_bytes: 0,
        tx_packets: 0,
        tx_bytes: 0,
        rx_dropped: 0,
        tx_dropped: 0,
    };
    for a in &m.attributes {
        if let LinkAttribute::Stats64(st) = a {
            s.rx_packets = st.rx_packets;
            s.rx_bytes = st.rx_bytes;
            s.tx_packets = st.tx_packets;
            s.tx_bytes = st.tx_bytes;
            s.rx_dropped = st.rx_dropped;
            s.tx_dropped = st.tx_dropped;
        }
    }
    s
}

/// Links of one netns (all, or only those `keep` accepts), with addresses and counters.
async fn links_with_state(
    nl: &Netlink,
    side: &'static str,
    keep: impl Fn(&LinkState) -> bool,
) -> Result<Vec<LinkStatus>, OpError> {
    let links = nl
        .dump(link::dump())
        .await
        .map_err(|e| OpError::errno(format!("list links in {}", nl.label), e))?;
    let addrs = nl
        .dump(address::dump(None))
        .await
        .map_err(|e| OpError::errno(format!("list addresses in {}", nl.label), e))?;
    let mut by_index: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for m in addrs {
        if let RouteNetlinkMessage::NewAddress(m) = m {
            if let Some((i, a)) = address::parse(&m) {
                by_index.entry(i).or_default().push(a.to_string());
            }
        }
    }
    Ok(links
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(m) => Some(m),
            _ => None,
        })
        .filter(|m| keep(&LinkState::parse(m)))
        .map(|m| {
            let a = by_index.get(&m.header.index).cloned().unwrap_or_default();
            link_status(m, side, &a)
        })
        .collect())
}

/// `netprov status <id>`: its links (host ends and the netns's) with addresses and
/// counters, its OVS ports with ofport and VLAN, the nftables digests and the drift
/// against its props file.
pub fn status(engine: &Engine, places: &Places, id: &ContainerId) -> Result<Status, OpError> {
    let (host, host_path, rt, ep) = engine.parts();
    let props = props_files(&places.props_dir).remove(id.as_str());
    let (netns, owned) = match props.as_deref().map(load_props) {
        Some(Ok(d)) => (
            d.netns.path().clone(),
            matches!(d.netns, NetnsSpec::Owned { .. }),
        ),
        _ => (Path::new(crate::props::NETNS_DIR).join(id.as_str()), true),
    };
    let alias_of = |l: &LinkState| l.alias.as_deref().and_then(alias_owner).as_ref() == Some(id);
    let mut links = rt.block_on(links_with_state(host, "host", alias_of))?;
    let mut processes = Vec::new();
    let mut nft_digest = None;
    let mut nft_intact = None;
    let mut netns_not_ours = None;
    // An owned handle is checked without following a symlink, and shown only when it
    // carries this container's mark: a foreign /run/netns/<id> is not this container's.
    let usable = if owned {
        netns_owner::handle(&netns).ok() == Some(netns_owner::Handle::Netns)
    } else {
        crate::kernel::netns::is_handle(&netns)
    };
    if usable {
        let nl = Netlink::open(Some(&netns), rt.handle(), format!("netns {id}"))?;
        let who = netns_owner::owner(id, &rt.block_on(links_of(&nl))?);
        if owned && !who.is_ours() {
            netns_not_ours = Some(netns_owner::not_ours(id, &netns, &who).to_string());
        } else {
            processes = netns_processes(&netns);
            links.extend(rt.block_on(links_with_state(&nl, "netns", |_| true))?);
            let state = nft::ruleset::observe(&netns).ok();
            if let Some(RulesetState::Loaded { source_digest, .. }) = &state {
                nft_digest = Some(source_digest.clone());
            }
            nft_intact = state.map(|r| r.is_intact());
        }
    }
    let host_table = matches!(
        nft::host::observe_host(host_path, id)?,
        HostState::Present(_)
    );
    let idc = id.clone();
    let (ovs_ports, ovsdb_skipped) =
        match rt.block_on(blocking("list OVS ports", move || port_status(&ep, &idc))) {
            Ok(Ok(p)) => (p, None),
            Ok(Err(why)) => (Vec::new(), Some(why)),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
    Ok(Status {
        id: id.to_string(),
        running: machine_running(places, id.as_str()),
        sync: sync_of(engine, props.as_ref()),
        props,
        processes,
        links,
        ovs_ports,
        nft_digest,
        nft_intact,
        host_table,
        netns_not_ours,
        ovsdb_skipped,
    })
}

fn port_status(
    ep: &Endpoint,
    id: &ContainerId,
) -> Result<Result<Vec<PortStatus>, String>, OpError> {
    let mut c = match Client::connect_if_present(ep) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(Err(format!("no OVSDB socket at {}", ep.path().display()))),
        Err(e) => return Ok(Err(e.to_string())),
    };
    let ports = select_all(
        &mut c,
        "Port",
        &["name", "tag", "trunks", "external_ids", "interfaces"],
    )?;
    let ifaces = select_all(&mut c, "Interface", &["_uuid", "ofport", "error"])?;
    let by_uuid: BTreeMap<String, &Value> = ifaces
        .iter()
        .filter_map(|r| Some((parse_uuid(&r["_uuid"])?, r)))
        .collect();
    Ok(Ok(ports
        .iter()
        .filter(|r| {
            parse_string_map(&r["external_ids"])
                .get(OWNER_KEY)
                .map(String::as_str)
                == Some(id.as_str())
        })
        .map(|r| {
            let iface = set_members(&r["interfaces"])
                .iter()
                .filter_map(parse_uuid)
                .find_map(|u| by_uuid.get(&u).copied());
            PortStatus {
                name: r["name"].as_str().unwrap_or_default().to_owned(),
                tag: optional_member(&r["tag"]).and_then(|v| v.as_i64()),
                trunks: set_members(&r["trunks"])
                    .iter()
                    .filter_map(Value::as_i64)
                    .collect(),
                ofport: iface
                    .and_then(|i| optional_member(&i["ofport"]))
                    .and_then(|v| v.as_i64()),
                error: iface
                    .and_then(|i| optional_member(&i["error"]))
                    .and_then(|v| v.as_str().map(str::to_owned)),
            }
        })
        .collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_owner_reads_both_alias_forms_only() {
        let id = |s: &str| alias_owner(s).map(|i| i.to_string());
        assert_eq!(id("netprov:web"), Some("web".into()));
        assert_eq!(id("netprov:web:wan"), Some("web".into()));
        assert_eq!(id("netprov-netns:web"), None);
        assert_eq!(id("netprov:"), None);
        assert_eq!(id("netprov:../x:y"), None);
        assert_eq!(id("other:web"), None);
    }

    #[test]
    fn props_files_follow_the_generator_rule() {
        let d = std::env::temp_dir().join(format!("netprov-inv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("dir.json")).unwrap();
        for n in [
            "web.json",
            ".web.json.swp",
            "bad name.json",
            "README",
            "db-1.json",
        ] {
            std::fs::write(d.join(n), "{}").unwrap();
        }
        let got: Vec<String> = props_files(&d).into_keys().collect();
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(got, ["db-1", "web"]);
        assert!(props_files(Path::new("/nonexistent/netprov")).is_empty());
    }

    #[test]
    fn processes_of_my_own_netns_include_me() {
        let me = std::process::id();
        assert!(netns_processes(Path::new("/proc/self/ns/net")).contains(&me));
        assert!(netns_processes(Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn holdings_summary() {
        let mut h = Holdings::default();
        assert_eq!(h.summary(), "nothing");
        h.netns = Some("/run/netns/web".into());
        h.host_links = vec!["ve-web-wan".into()];
        h.host_table = true;
        h.ovs_ports = vec!["a".into(), "b".into()];
        assert_eq!(h.summary(), "netns, 1 host link, host table, 2 OVS ports");
    }
}
