//! Address operations.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use crate::engine::execute::{Exec, Op};
use crate::engine::plan::AddressStep;
use crate::error::OpError;
use crate::kernel::address;

impl Exec<'_> {
    pub(super) async fn address_step(&self, s: &AddressStep, op: Op<'_>) -> Result<(), OpError> {
        let (at, name, addr) = s.parts();
        let name = name.as_str();
        match s {
            AddressStep::AddAddress { .. } => {
                let msg = address::add(self.index(at, name, op).await?, addr);
                self.send(at, msg, NLM_F_CREATE | NLM_F_EXCL, op).await
            }
            AddressStep::ReAddAddress { .. } => {
                let msg = address::add(self.index(at, name, op).await?, addr);
                match self.send(at, msg, NLM_F_CREATE | NLM_F_EXCL, op).await {
                    Err(e) if e.errno == Some(libc::EEXIST) => Ok(()),
                    r => r,
                }
            }
            AddressStep::DelAddress { .. } => {
                // Already gone is success: the link went (ENODEV), or the kernel took
                // the address with another one (a primary takes its secondaries).
                let index = match self.index(at, name, op).await {
                    Err(e) if e.errno == Some(libc::ENODEV) => return Ok(()),
                    i => i?,
                };
                match self.send(at, address::delete(index, addr), 0, op).await {
                    Err(e) if e.errno == Some(libc::EADDRNOTAVAIL) => Ok(()),
                    r => r,
                }
            }
        }
    }
}
