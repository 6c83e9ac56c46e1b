//! Route steps (netprov's protocol-77 routes, main table).

use std::fmt;

use serde::Serialize;

use crate::engine::drift::{Drift, Object};
use crate::engine::plan::{At, Phase};
use crate::kernel::route::RouteSpec;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RouteStep {
    DelRoute {
        at: At,
        route: RouteSpec,
    },
    ReplaceRoute {
        at: At,
        route: RouteSpec,
        /// The netprov route with the same key it replaces, if any.
        was: Option<RouteSpec>,
    },
}

impl RouteStep {
    pub fn phase(&self) -> Phase {
        Phase::Routes
    }

    pub fn as_drift(&self) -> Drift {
        match self {
            RouteStep::DelRoute { at, route } => Drift::extra(
                Object::Route,
                format!("route {route} in {at}"),
                "is not desired",
            ),
            RouteStep::ReplaceRoute {
                at,
                route,
                was: Some(w),
            } => Drift::differs(
                Object::Route,
                format!("route {w} in {at}"),
                format!("changed, want {route}"),
            ),
            RouteStep::ReplaceRoute { at, route, .. } => {
                Drift::missing(Object::Route, format!("route {route} in {at}"))
            }
        }
    }
}

impl fmt::Display for RouteStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteStep::DelRoute { at, route } => write!(f, "delete route {route} in {at}"),
            RouteStep::ReplaceRoute { at, route, .. } => {
                write!(f, "replace route {route} in {at}")
            }
        }
    }
}
