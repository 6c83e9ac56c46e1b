//! Ownership marks: how netprov recognises, in the kernel and in OVSDB, what it made —
//! the reference for the ownership invariant.
//!
//! netprov keeps no state file. What it owns is whatever carries one of these marks,
//! written by netprov onto the object itself, so the record lives and dies with the
//! object (a crash cannot lose it, a reboot clears both together):
//!
//! | object | mark | here |
//! | --- | --- | --- |
//! | link | born in link group [`NETPROV_GROUP`], then alias `netprov:<id>` (container side) or `netprov:<id>:<ifname>` (veth host end) | [`container_alias`], [`host_alias`], [`alias_owner`], `LinkState::owned_as` (checks: `kernel::owned`) |
//! | route | `rtm_protocol` [`RTPROT_NETPROV`] (77) | |
//! | OVS Port/Interface, OVN logical switch port | `external_ids:`[`OWNER_KEY`]`=<id>` (and [`IFACE_KEY`]`=<interface>`) | |
//! | container nftables ruleset | the marker table `inet netprov_state` ([`NFT_MARKER_TABLE`]) holding the digests (and, in an adopted netns, the tables netprov loaded) | [`sha256_hex`] |
//! | host nftables rules | the table `inet netprov-<id>` ([`host_table_name`]) | [`host_table_owner`] |
//! | netns | alias `netprov-netns:<id>` on its `lo` ([`netns_mark`]) | [`netns_owner`], [`lo_mark_owner`] |
//! | files | `/run/netns/<id>` ([`NETNS_DIR`]), `/run/netprov/<id>.lock` ([`LOCK_DIR`]); host-wide, no container's: `/run/netprov/nft-batches/` (the compiled-ruleset cache, `nft::ruleset::compiled`) | |
//!
//! The invariant: **netprov changes or deletes only objects that carry its mark for the
//! container at hand.** An object with the name netprov wants but without that mark —
//! made by the admin, another tool or another container — is an error naming the owner,
//! never a takeover; host-wide commands (`list`, `gc`) attribute objects to containers by
//! their marks alone, and list an object whose mark is incomplete instead of collecting
//! it. Why: the host runs other software (NetworkManager, libvirt, docker, the admin's
//! own bridges and routes) whose objects look like netprov's; a name is not proof of
//! ownership, a mark netprov itself wrote is.
//!
//! Where a mark cannot be written atomically with the object, the object is born with a
//! partial mark that is already netprov's: the kernel ignores `IFLA_IFALIAS` in the
//! RTM_NEWLINK that creates a link, but applies `IFLA_GROUP` (to a veth's peer too), so
//! every link is born in [`NETPROV_GROUP`] and named by its alias in the next message of
//! the same step. A link in the group with no alias is netprov's, unfinished: apply
//! finishes it, destroy recognises it. A netns is marked by the thread that created it
//! before it bind-mounts the handle, so `/run/netns/<id>` is never visible unmarked.
//! An adopted netns (`network.netns_path`) is never marked: netprov owns only what it
//! made inside it (see [`adopted_routes`]) and never deletes the netns.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::OpError;
use crate::model::ContainerId;

// ---- links ---------------------------------------------------------------------------

/// `IFLA_GROUP` of every link netprov creates (0x4e50, "NP").
pub const NETPROV_GROUP: u32 = 0x4e50;

/// Prefix of every link alias netprov writes.
pub(crate) const ALIAS_PREFIX: &str = "netprov:";

/// Alias of a container-side link netprov created (veth peer, macvlan, moved OVS port).
pub fn container_alias(id: &ContainerId) -> String {
    format!("{ALIAS_PREFIX}{id}")
}

/// Alias of a veth host end: names the container and the container-side interface.
pub fn host_alias(id: &ContainerId, ifname: &str) -> String {
    format!("{ALIAS_PREFIX}{id}:{ifname}")
}

/// What a netprov link alias says: the container (as written) and, for a veth host
/// end, the container-side interface. `None`: not a netprov alias.
pub fn parse_alias(alias: &str) -> Option<(&str, Option<&str>)> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    Some(match rest.split_once(':') {
        Some((c, ifname)) => (c, Some(ifname)),
        None => (rest, None),
    })
}

/// The container an alias names: `netprov:<id>` or `netprov:<id>:<ifname>`.
pub fn alias_owner(alias: &str) -> Option<ContainerId> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    let id = rest.split(':').next()?;
    ContainerId::new(id).ok()
}

/// `alias` is the host-end alias of one of `id`'s interfaces (any interface).
pub fn is_host_end_of(alias: &str, id: &ContainerId) -> bool {
    alias
        .strip_prefix(ALIAS_PREFIX)
        .and_then(|r| r.strip_prefix(id.as_str()))
        .is_some_and(|r| r.starts_with(':'))
}

// ---- routes --------------------------------------------------------------------------

/// `rtm_protocol` of the routes netprov adds (77, unassigned in iproute2's `rt_protos`).
pub const RTPROT_NETPROV: u8 = 77;

// ---- OVSDB ---------------------------------------------------------------------------

/// `external_ids` key naming the container that owns an OVS Port/Interface row or an
/// OVN logical switch port.
pub const OWNER_KEY: &str = "netprov-id";
/// `external_ids` key naming the container-side interface of such a row.
pub const IFACE_KEY: &str = "netprov-iface";

// ---- nftables ------------------------------------------------------------------------

/// Prefix of every host table netprov owns (`inet netprov-<id>`).
pub const HOST_TABLE_PREFIX: &str = "netprov-";

/// The container's host table.
pub fn host_table_name(id: &ContainerId) -> String {
    format!("{HOST_TABLE_PREFIX}{id}")
}

/// The container a host table name belongs to (`netprov-<id>`, `<id>` a valid id).
pub fn host_table_owner(table: &str) -> Option<ContainerId> {
    ContainerId::new(table.strip_prefix(HOST_TABLE_PREFIX)?).ok()
}

/// Family and name of the marker table netprov adds to every container ruleset it
/// loads. A user ruleset must not define it.
pub const NFT_MARKER_FAMILY: &str = "inet";
pub const NFT_MARKER_TABLE: &str = "netprov_state";

/// Lowercase hex of `b`. (Not `format!("{x:02x}")` per byte: a String per byte made
/// the digests of a cold apply ~90,000 instructions, callgrind, docs/benchmarks.md
/// round 9.)
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * b.len());
    for &x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0xf)]));
    }
    s
}

/// Hex of the first `bytes` bytes of SHA-256(`data`): the digests recorded in the
/// container ruleset marker (16 bytes: a table comment holds at most 128 characters
/// and the marker holds two) and OVN's `iface-id-ver` (8 bytes).
pub fn sha256_hex(data: &[u8], bytes: usize) -> String {
    let d = Sha256::digest(data);
    hex(&d[..bytes.min(d.len())])
}

// ---- netns ---------------------------------------------------------------------------

/// Where netprov creates the netns handle of a container.
pub const NETNS_DIR: &str = "/run/netns";

/// Where the per-container lock files live (tmpfs: emptied at boot, like the locks).
pub const LOCK_DIR: &str = "/run/netprov";

/// Prefix of the owner mark on a netns's `lo`.
pub const NETNS_MARK_PREFIX: &str = "netprov-netns:";

/// The handle path of container `id`'s own netns.
pub fn netns_path(id: &ContainerId) -> std::path::PathBuf {
    Path::new(NETNS_DIR).join(id.as_str())
}

/// The owner mark of container `id`'s netns.
pub fn netns_mark(id: &ContainerId) -> String {
    format!("{NETNS_MARK_PREFIX}{id}")
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

/// Whose the netns is by its `lo` alias alone: `Ours`, `Other`, or `None` (no mark).
pub fn lo_mark_owner(id: &ContainerId, lo_alias: Option<&str>) -> Option<Owner> {
    match lo_alias?.strip_prefix(NETNS_MARK_PREFIX)? {
        other if other == id.as_str() => Some(Owner::Ours),
        other => Some(Owner::Other(other.to_owned())),
    }
}

/// Why netprov will not use the netns at `path` as container `id`'s own.
pub fn netns_not_ours(id: &ContainerId, path: &Path, o: &Owner) -> OpError {
    let whose = match o {
        Owner::Other(other) => format!("it is netprov's netns of container {other}"),
        _ => format!(
            "it has no owner mark ({}) — made by `ip netns add` or another tool",
            netns_mark(id)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::link::LinkState;
    use crate::kernel::owned::{adopted_routes, netns_owner};
    use crate::kernel::route::RouteSpec;
    use std::collections::BTreeMap;

    fn link(name: &str, alias: Option<&str>) -> (String, LinkState) {
        let l = LinkState {
            index: 1,
            name: name.to_owned(),
            alias: alias.map(str::to_owned),
            up: true,
            ..Default::default()
        };
        (name.to_owned(), l)
    }

    #[test]
    fn owner_from_the_lo_mark_or_the_container_alias() {
        let id = ContainerId::new("web").unwrap();
        let links = |v: Vec<(String, LinkState)>| v.into_iter().collect::<BTreeMap<_, _>>();
        assert_eq!(
            netns_owner(&id, &links(vec![link("lo", Some("netprov-netns:web"))])),
            Owner::Ours
        );
        assert_eq!(
            netns_owner(&id, &links(vec![link("lo", Some("netprov-netns:db"))])),
            Owner::Other("db".into())
        );
        assert_eq!(
            netns_owner(&id, &links(vec![link("lo", None)])),
            Owner::Foreign
        );
        // Another container's links do not make it ours; this container's do.
        assert_eq!(
            netns_owner(
                &id,
                &links(vec![link("lo", None), link("x", Some("netprov:db"))])
            ),
            Owner::Foreign
        );
        assert_eq!(
            netns_owner(
                &id,
                &links(vec![link("lo", None), link("x", Some("netprov:web"))])
            ),
            Owner::Unmarked
        );
        // A mark beats links: another container's mark with this one's links is theirs.
        assert_eq!(
            netns_owner(
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
        use crate::model::InterfaceKind;
        let d = crate::props::parse_str(
            r#"{"id": "web", "network": {"netns_path": "/run/netns/x", "interfaces": {"lan": {}}}}"#,
            None,
        )
        .unwrap();
        assert_eq!(d.interfaces[0].kind, InterfaceKind::Existing);
        let mut st = crate::kernel::state::NsState::default();
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
    fn alias_forms_round_trip() {
        let id = ContainerId::new("web").unwrap();
        assert_eq!(parse_alias(&container_alias(&id)), Some(("web", None)));
        assert_eq!(
            parse_alias(&host_alias(&id, "lan")),
            Some(("web", Some("lan")))
        );
        assert_eq!(parse_alias("netprov-netns:web"), None);
        assert!(is_host_end_of(&host_alias(&id, "lan"), &id));
        assert!(!is_host_end_of(&container_alias(&id), &id));
        assert!(!is_host_end_of("netprov:web2:lan", &id));
        assert_eq!(alias_owner(&host_alias(&id, "lan")), Some(id.clone()));
    }

    #[test]
    fn host_table_names_round_trip() {
        let id = ContainerId::new("a.b").unwrap();
        assert_eq!(host_table_owner(&host_table_name(&id)), Some(id));
        assert_eq!(host_table_owner("filter"), None);
        assert_eq!(host_table_owner("netprov-"), None);
    }

    proptest::proptest! {
        #[test]
        fn hex_is_two_lowercase_digits_per_byte(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let want: String = b.iter().map(|x| format!("{x:02x}")).collect();
            proptest::prop_assert_eq!(hex(&b), want);
        }
    }

    #[test]
    fn sha256_hex_truncates_to_whole_bytes() {
        // SHA-256("") = e3b0c442…
        assert_eq!(sha256_hex(b"", 4), "e3b0c442");
        assert_eq!(sha256_hex(b"", 16).len(), 32);
        assert_eq!(sha256_hex(b"", 64).len(), 64);
    }
}
