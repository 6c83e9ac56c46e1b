//! Address steps of one link.

use ipnetwork::IpNetwork;

use crate::engine::diff::Differ;
use crate::engine::observe::NsState;
use crate::engine::plan::{AddressStep, At, Step};
use crate::model::IfName;

impl Differ<'_> {
    /// Address steps for one link; `owned`: extra permanent addresses are removed.
    pub(super) fn addrs(
        &mut self,
        at: At,
        side: &NsState,
        name: &IfName,
        exists: bool,
        want: &[IpNetwork],
        owned: bool,
    ) {
        let have: &[IpNetwork] = if exists {
            side.addrs_of(name.as_str())
        } else {
            &[]
        };
        let deleted: Vec<&IpNetwork> = if owned {
            have.iter().filter(|a| !want.contains(a)).collect()
        } else {
            Vec::new()
        };
        // IPv4: deleting a primary address deletes the secondaries of its subnet too
        // (unless promote_secondaries is on, which netprov does not read). Kept
        // addresses sharing a subnet with a deleted one are at risk: re-added after
        // the deletes (EEXIST, when promoted, is success).
        let at_risk = |a: &IpNetwork| {
            a.is_ipv4()
                && deleted
                    .iter()
                    .any(|d| d.is_ipv4() && d.prefix() == a.prefix() && d.network() == a.network())
        };
        let survivors = have
            .iter()
            .filter(|a| a.is_ipv4() && !deleted.contains(a) && !at_risk(a))
            .count();
        // With every IPv4 address gone, the kernel flushes every IPv4 route through the
        // link (fib_disable_ip), including routes this plan keeps.
        if deleted.iter().any(|a| a.is_ipv4()) && survivors == 0 {
            self.v4_flushed.insert((at == At::Host, name.to_string()));
        }
        for a in &deleted {
            self.steps.push(Step::Address(AddressStep::DelAddress {
                at: at.clone(),
                link: name.clone(),
                addr: **a,
            }));
        }
        for a in want {
            if !have.contains(a) {
                self.steps.push(Step::Address(AddressStep::AddAddress {
                    at: at.clone(),
                    link: name.clone(),
                    addr: *a,
                }));
            } else if at_risk(a) {
                self.steps.push(Step::Address(AddressStep::ReAddAddress {
                    at: at.clone(),
                    link: name.clone(),
                    addr: *a,
                }));
            }
        }
    }
}
