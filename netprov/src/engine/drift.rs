//! Drift: one difference between the kernel and the desired state, as `check` reports
//! it. Every [`crate::engine::plan::Step`] reads as one (`Step::as_drift`): the step's
//! kind decides which object drifted and how (missing, extra, differs); the words are
//! the ones `check` has always printed.

use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// What kind of object drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    Netns,
    Veth,
    Link,
    /// A link the container wants moved in (OVS internal port, existing link).
    Interface,
    Macvlan,
    /// A dead OVS internal device left in the container.
    OvsDevice,
    Address,
    Route,
    Sysctl,
    Ruleset,
    HostRules,
    OvsPort,
    OvsInterface,
    OvnPort,
}

/// How it drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Problem {
    /// Wanted, absent.
    Missing,
    /// Present (and netprov's), not wanted.
    Extra,
    /// Present, but not as wanted.
    Differs,
}

/// One difference between the kernel and the desired state (`check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub object: Object,
    pub problem: Problem,
    /// The object as the user reads it ("link lan in netns web").
    pub label: String,
    /// The problem in words; `None`: the plain word of `problem` ("missing").
    pub how: Option<String>,
}

impl Drift {
    pub fn missing(object: Object, label: String) -> Self {
        Drift {
            object,
            problem: Problem::Missing,
            label,
            how: None,
        }
    }

    pub fn extra(object: Object, label: String, how: impl Into<String>) -> Self {
        Drift {
            object,
            problem: Problem::Extra,
            label,
            how: Some(how.into()),
        }
    }

    pub fn differs(object: Object, label: String, how: impl Into<String>) -> Self {
        Drift {
            object,
            problem: Problem::Differs,
            label,
            how: Some(how.into()),
        }
    }

    /// The problem as `check` prints it.
    pub fn problem_text(&self) -> &str {
        match (&self.how, self.problem) {
            (Some(h), _) => h,
            (None, Problem::Missing) => "missing",
            (None, Problem::Extra) => "is not desired",
            (None, Problem::Differs) => "differs",
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.label, self.problem_text())
    }
}

/// `check --json`: `{"object": <label>, "problem": <words>}`.
impl Serialize for Drift {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Drift", 2)?;
        st.serialize_field("object", &self.label)?;
        st.serialize_field("problem", self.problem_text())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_object_and_problem_text() {
        let d = Drift::missing(
            Object::Address,
            "address 10.0.0.2/31 on lan in netns web".into(),
        );
        assert_eq!(
            d.to_string(),
            "address 10.0.0.2/31 on lan in netns web: missing"
        );
        let j = serde_json::to_value(&d).unwrap();
        assert_eq!(j["object"], "address 10.0.0.2/31 on lan in netns web");
        assert_eq!(j["problem"], "missing");
    }
}
