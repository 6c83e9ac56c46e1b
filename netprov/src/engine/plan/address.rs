//! Address steps.

use std::fmt;

use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::engine::drift::{Drift, Object};
use crate::engine::plan::{At, Phase};
use crate::model::IfName;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AddressStep {
    DelAddress {
        at: At,
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
        #[serde(serialize_with = "crate::ser::display")]
        addr: IpNetwork,
    },
    AddAddress {
        at: At,
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
        #[serde(serialize_with = "crate::ser::display")]
        addr: IpNetwork,
    },
    /// Add again a wanted IPv4 address that the kernel may drop with a deleted
    /// address of its subnet (a primary takes its secondaries); present is success.
    ReAddAddress {
        at: At,
        #[serde(serialize_with = "crate::ser::display")]
        link: IfName,
        #[serde(serialize_with = "crate::ser::display")]
        addr: IpNetwork,
    },
}

impl AddressStep {
    pub fn phase(&self) -> Phase {
        Phase::Addresses
    }

    /// Where, on which link, which address.
    pub fn parts(&self) -> (&At, &IfName, &IpNetwork) {
        match self {
            AddressStep::DelAddress { at, link, addr }
            | AddressStep::AddAddress { at, link, addr }
            | AddressStep::ReAddAddress { at, link, addr } => (at, link, addr),
        }
    }

    pub fn as_drift(&self) -> Drift {
        let (at, link, addr) = self.parts();
        let label = format!("address {addr} on {link} in {at}");
        match self {
            AddressStep::DelAddress { .. } => Drift::extra(Object::Address, label, "is not desired"),
            AddressStep::AddAddress { .. } => Drift::missing(Object::Address, label),
            AddressStep::ReAddAddress { .. } => Drift::differs(
                Object::Address,
                label,
                "shares its subnet with an address that is not desired (the kernel drops it with that one)",
            ),
        }
    }
}

impl fmt::Display for AddressStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (at, link, addr) = self.parts();
        match self {
            AddressStep::DelAddress { .. } => {
                write!(f, "delete address {addr} from {link} in {at}")
            }
            AddressStep::AddAddress { .. } => write!(f, "add address {addr} to {link} in {at}"),
            AddressStep::ReAddAddress { .. } => {
                write!(f, "re-add address {addr} to {link} in {at}")
            }
        }
    }
}
