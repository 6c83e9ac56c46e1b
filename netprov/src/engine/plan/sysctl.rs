//! The sysctl step (in the container netns).

use std::fmt;

use serde::Serialize;

use crate::engine::drift::{Drift, Object};
use crate::engine::plan::Phase;
use crate::model::ContainerId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SysctlStep {
    WriteSysctl {
        #[serde(serialize_with = "crate::ser::display")]
        netns: ContainerId,
        key: String,
        path: String,
        value: String,
        current: Option<String>,
    },
}

impl SysctlStep {
    pub fn phase(&self) -> Phase {
        Phase::Sysctls
    }

    pub fn as_drift(&self) -> Drift {
        let SysctlStep::WriteSysctl {
            netns,
            key,
            value,
            current,
            ..
        } = self;
        let how = match current {
            Some(c) => format!("is {c:?}, want {value:?}"),
            None => format!("is unset, want {value:?}"),
        };
        Drift::differs(
            Object::Sysctl,
            format!("sysctl {key} in netns {netns}"),
            how,
        )
    }
}

impl fmt::Display for SysctlStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SysctlStep::WriteSysctl {
            netns, key, value, ..
        } = self;
        write!(f, "set sysctl {key}={value} in netns {netns}")
    }
}
