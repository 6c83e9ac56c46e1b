//! The container netns step.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::engine::drift::{Drift, Object};
use crate::engine::plan::Phase;
use crate::model::ContainerId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NetnsStep {
    CreateNetns {
        #[serde(serialize_with = "crate::ser::display")]
        netns: ContainerId,
        path: PathBuf,
    },
}

impl NetnsStep {
    pub fn phase(&self) -> Phase {
        Phase::Netns
    }

    pub fn as_drift(&self) -> Drift {
        let NetnsStep::CreateNetns { path, .. } = self;
        Drift::missing(Object::Netns, format!("netns {}", path.display()))
    }
}

impl fmt::Display for NetnsStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NetnsStep::CreateNetns { netns, path } = self;
        write!(f, "create netns {netns} at {}", path.display())
    }
}
