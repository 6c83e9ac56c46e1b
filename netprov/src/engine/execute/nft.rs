//! nftables operations: one transaction each, counted as one mutating message.

use crate::blocking::blocking;
use crate::engine::execute::{Exec, Op};
use crate::engine::plan::NftStep;
use crate::error::OpError;
use crate::model::Ruleset;
use crate::nft;

impl Exec<'_> {
    pub(super) async fn nft_step(&mut self, s: &NftStep, op: Op<'_>) -> Result<(), OpError> {
        self.count.bump();
        match s {
            NftStep::LoadRuleset { ruleset, .. } => self.load_ruleset(ruleset, op).await,
            NftStep::RemoveRuleset { .. } => self.remove_ruleset(op).await,
            NftStep::InstallHostRules { spec, .. } => {
                let (hp, spec) = (self.host_netns.clone(), spec.clone());
                blocking(op, move || nft::host::apply_host(&hp, &spec)).await
            }
            NftStep::RemoveHostRules { .. } => {
                let (hp, id) = (self.host_netns.clone(), self.id.clone());
                blocking(op, move || nft::host::remove_host(&hp, &id)).await
            }
        }
    }

    async fn load_ruleset(&mut self, ruleset: &Ruleset, op: Op<'_>) -> Result<(), OpError> {
        let (ns, r) = (self.netns_path.clone(), ruleset.clone());
        if self.adopted {
            let id = self.id.to_string();
            return blocking(op, move || nft::ruleset::load_adopted(&ns, &r, &id)).await;
        }
        // Inline, not on the blocking pool: into a fresh netns one small
        // transaction with nothing queued for destruction (see
        // nft::ruleset::load_checked) costs less than a thread hand-off.
        // Into a netns made ahead, the ruleset may be loaded already (kernel::netns_ahead).
        let loaded = crate::kernel::netns_ahead::ruleset_loaded(&self.id);
        match nft::ruleset::load_checked_with(&ns, &r, loaded) {
            Ok(()) => Ok(()),
            Err(nft::CheckError::Op(e)) => Err(e),
            Err(nft::CheckError::Syntax(e)) => {
                let err = OpError::new(op.to_string(), e.to_string());
                self.refused = Some(e);
                Err(err)
            }
        }
    }

    async fn remove_ruleset(&self, op: Op<'_>) -> Result<(), OpError> {
        let ns = self.netns_path.clone();
        if !self.adopted {
            return blocking(op, move || nft::ruleset::remove(&ns)).await;
        }
        let id = self.id.to_string();
        let removed = blocking(op, move || nft::ruleset::remove_adopted(&ns, &id)).await?;
        if !removed {
            return Err(OpError::new(
                op.to_string(),
                "the ruleset netprov manages in this netns is another container's",
            ));
        }
        Ok(())
    }
}
