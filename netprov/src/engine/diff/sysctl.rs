//! Sysctl steps: the props' values the container netns does not have.

use crate::engine::observe::Observed;
use crate::engine::plan::{Step, SysctlStep};
use crate::kernel::sysctl;
use crate::model::Desired;

pub(super) fn steps(d: &Desired, o: &Observed) -> Vec<Step> {
    let mut steps = Vec::new();
    for s in &d.sysctls {
        let cur = o.sysctls.get(&s.key).cloned().flatten();
        if !cur
            .as_deref()
            .is_some_and(|c| sysctl::same_value(c, &s.value))
        {
            steps.push(Step::Sysctl(SysctlStep::WriteSysctl {
                netns: d.id.clone(),
                key: s.key.clone(),
                path: s.path.clone(),
                value: s.value.clone(),
                current: cur,
            }));
        }
    }
    steps
}
