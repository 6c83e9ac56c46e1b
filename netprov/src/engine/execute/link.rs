//! Link operations: each link step is one call here.

use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use crate::engine::execute::{Exec, Op};
use crate::engine::plan::{At, LinkStep};
use crate::error::OpError;
use crate::kernel::link::{self, LinkChange};
use crate::model::{ContainerId, MacAddr};

impl Exec<'_> {
    pub(super) async fn link_step(&self, s: &LinkStep, op: Op<'_>) -> Result<(), OpError> {
        match s {
            LinkStep::CreateVeth {
                host,
                peer,
                netns,
                host_alias,
                peer_alias,
                mtu,
                mac,
            } => {
                self.create_veth(host.as_str(), peer.as_str(), netns, *mtu, *mac, op)
                    .await?;
                // The kernel ignores IFLA_IFALIAS at creation: mark both ends now. Until
                // then the netprov group marks them (see marks.rs). The host end was born
                // up; the peer, which cannot be (see `link::new_veth`), goes up with its
                // mark, in the same request.
                self.set_alias(&At::Host, host.as_str(), host_alias, op)
                    .await?;
                let c = LinkChange {
                    alias: Some(peer_alias.clone()),
                    up: true,
                    ..Default::default()
                };
                self.change_link(&At::Netns(netns.clone()), peer.as_str(), &c, op)
                    .await
            }
            LinkStep::DeleteLink { at, link } => self.delete_link(at, link.as_str(), op).await,
            LinkStep::RemoveLink { at, link } => self.delete_link(at, link, op).await,
            LinkStep::DeleteDeadOvsDevice { netns, link } => {
                self.delete_link(&At::Netns(netns.clone()), link.as_str(), op)
                    .await
            }
            // IFLA_MASTER 0: leave whatever bridge it is a port of.
            LinkStep::Release { link } => {
                let c = LinkChange {
                    controller: Some(0),
                    ..Default::default()
                };
                self.change_link(&At::Host, link.as_str(), &c, op).await
            }
            LinkStep::MarkLink { at, link, alias } => self.set_alias(at, link, alias, op).await,
            LinkStep::MoveLinkIn { link, alias, .. } => {
                self.move_in(link.as_str(), alias, op).await
            }
            LinkStep::CreateMacvlan {
                link,
                parent,
                netns,
                alias,
                mac,
            } => {
                let at = At::Netns(netns.clone());
                self.create_macvlan(&at, link.as_str(), parent.as_str(), alias, *mac, op)
                    .await
            }
            LinkStep::SetLink { at, link, mtu, mac } => {
                let c = LinkChange {
                    mtu: *mtu,
                    mac: *mac,
                    ..Default::default()
                };
                self.change_link(at, link.as_str(), &c, op).await
            }
            LinkStep::Enslave { link, bridge } => {
                self.enslave(link.as_str(), bridge.as_str(), op).await
            }
            LinkStep::LinkUp { at, link } => {
                let c = LinkChange {
                    up: true,
                    ..Default::default()
                };
                self.change_link(at, link, &c, op).await
            }
        }
    }

    /// One RTM_SETLINK on the link named `name` in `at`, addressed by its name: the
    /// kernel resolves the name when it runs the request (a missing link is ENODEV, as
    /// a lookup would say), which spares a GETLINK round trip per change — five in a
    /// veth container's first apply — and leaves no window between lookup and change.
    async fn change_link(
        &self,
        at: &At,
        name: &str,
        c: &LinkChange,
        op: Op<'_>,
    ) -> Result<(), OpError> {
        self.send(at, link::set_named(name, c), 0, op).await
    }

    async fn set_alias(&self, at: &At, name: &str, alias: &str, op: Op<'_>) -> Result<(), OpError> {
        let c = LinkChange {
            alias: Some(alias.to_owned()),
            ..Default::default()
        };
        self.change_link(at, name, &c, op).await
    }

    /// A veth pair: `host` here, `peer` born in the container netns.
    ///
    /// The kernel's echo of the new host end carries the indexes of both ends (the
    /// peer's is its `IFLA_LINK`), which the address and route steps then need: two
    /// requests fewer. Without an echo (a kernel before 6.3) they ask, as before.
    async fn create_veth(
        &self,
        host: &str,
        peer: &str,
        netns: &ContainerId,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
        op: Op<'_>,
    ) -> Result<(), OpError> {
        let ns = self.open_ns(op)?;
        let msg = link::new_veth(host, peer, ns.as_raw_fd(), mtu, mac);
        let made = self
            .nl(&At::Host)?
            .mutate_echo(msg, NLM_F_CREATE | NLM_F_EXCL, self.count)
            .await
            .map_err(|e| OpError::errno(op.to_string(), e))?;
        if let Some(l) = made
            .iter()
            .find(|l| l.name == host && l.kind == link::Kind::Veth)
        {
            let mut known = self.indexes.borrow_mut();
            known.push((At::Host, host.to_owned(), l.index));
            if let Some(p) = l.link.filter(|&p| p != 0) {
                known.push((At::Netns(netns.clone()), peer.to_owned(), p));
            }
        }
        Ok(())
    }

    /// Deletes a link; one already gone (with its peer or parent) is success.
    async fn delete_link(&self, at: &At, name: &str, op: Op<'_>) -> Result<(), OpError> {
        let l = match self.link(at, name, op).await {
            Err(e) if e.errno == Some(libc::ENODEV) => return Ok(()),
            l => l?,
        };
        match self.send(at, link::delete(l.index), 0, op).await {
            Err(e) if e.errno == Some(libc::ENODEV) => Ok(()),
            // A kernel-datapath OVS internal device cannot be deleted over rtnetlink;
            // it goes with its port (removed or re-created by the OVS step).
            Err(e)
                if e.errno == Some(libc::EOPNOTSUPP)
                    && !matches!(l.kind, link::Kind::Veth | link::Kind::Macvlan) =>
            {
                Ok(())
            }
            r => r,
        }
    }

    /// Moves a host link into the container netns.
    async fn move_in(&self, name: &str, alias: &Option<String>, op: Op<'_>) -> Result<(), OpError> {
        let l = self.link(&At::Host, name, op).await?;
        let ns = self.open_ns(op)?;
        // One message: the kernel moves the link first, then applies the alias
        // in its new netns, so a moved OVS port is never unmarked.
        let c = LinkChange {
            netns_fd: Some(ns.as_raw_fd()),
            alias: alias.clone(),
            ..Default::default()
        };
        self.send(&At::Host, link::set(l.index, &c), 0, op).await
    }

    async fn create_macvlan(
        &self,
        at: &At,
        name: &str,
        parent: &str,
        alias: &str,
        mac: Option<MacAddr>,
        op: Op<'_>,
    ) -> Result<(), OpError> {
        let p = self.link(at, parent, op).await?;
        let msg = link::new_macvlan(name, p.index, mac);
        self.send(at, msg, NLM_F_CREATE | NLM_F_EXCL, op).await?;
        // addrgenmode and alias are rejected/ignored at creation; set both before
        // the link goes up, so it never gets an EUI-64 link-local address.
        let c = LinkChange {
            alias: Some(alias.to_owned()),
            addrgen_random: true,
            ..Default::default()
        };
        self.change_link(at, name, &c, op).await
    }

    /// Makes the host link `name` a port of the Linux bridge `bridge`.
    async fn enslave(&self, name: &str, bridge: &str, op: Op<'_>) -> Result<(), OpError> {
        let br = self.link(&At::Host, bridge, op).await?;
        let c = LinkChange {
            controller: Some(br.index),
            ..Default::default()
        };
        self.change_link(&At::Host, name, &c, op).await
    }
}
