//! Reading the command line's inputs before anything is touched: properties files
//! (parsed, validated, checked across files, host-netns guard, nftables dry run),
//! container ids and `destroy` targets. Invalid input exits 2.

use std::path::{Path, PathBuf};

use super::output::{err, exit, report};
use crate::engine::DestroyTarget;
use crate::error::Invalid;
use crate::model::{ContainerId, Desired};
use crate::nft::CheckError;
use crate::props;

/// Container ids given on the command line; invalid ones are invalid input.
pub(super) fn ids_arg(args: &[String]) -> Result<Vec<ContainerId>, Vec<Invalid>> {
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for a in args {
        match ContainerId::new(a) {
            Ok(id) => ok.push(id),
            Err(m) => errs.push(Invalid {
                file: None,
                path: String::new(),
                location: None,
                message: format!("container id {a:?} {m}"),
            }),
        }
    }
    if errs.is_empty() {
        Ok(ok)
    } else {
        Err(errs)
    }
}

pub(super) fn load(props: &[PathBuf], json: bool, dry: Dry) -> Result<Vec<Desired>, i32> {
    // A one-container apply (what ExecStartPre runs) makes its new netns on another
    // CPU meanwhile (kernel::netns_ahead); `Dry::Never` is apply's.
    let ahead = dry == Dry::Never && props.len() == 1;
    let ds = tracing::info_span!("parse", files = props.len())
        .in_scope(|| {
            props::load_all_peeking(props, |text| {
                if ahead {
                    let dir = Path::new(crate::marks::NETNS_DIR);
                    crate::kernel::netns_ahead::start_for(text, dir);
                }
            })
        })
        .map_err(|errs| report(&errs, json))?;
    host_netns_check(props, &ds, json)?;
    tracing::info_span!("nft_check").in_scope(|| check_rulesets(props, &ds, json, dry))?;
    for (p, d) in props.iter().zip(&ds) {
        tracing::info!(file = %p.display(), id = %d.id, interfaces = d.interfaces.len(), "validated");
    }
    Ok(ds)
}

/// No `netns_path` may be the host netns (this process's, which the CLI's engine treats
/// as host, or PID 1's): invalid input at `network.netns_path`, before anything is read.
fn host_netns_check(files: &[PathBuf], ds: &[Desired], json: bool) -> Result<(), i32> {
    let mut errs = props::check_adopted_netns(ds, files, Path::new("/proc/self/ns/net"));
    if errs.is_empty() {
        return Ok(());
    }
    for e in &mut errs {
        e.location = e
            .file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| props::locate::locate(&t, &e.path));
    }
    Err(report(&errs, json))
}

/// When to dry-run a container's ruleset before anything is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dry {
    /// `validate`: every ruleset.
    Always,
    /// `apply`/`plan`/`check`: not the ruleset the container already runs (the kernel
    /// accepted exactly that text when netprov loaded it). A dry run costs a scratch
    /// netns and a kernel round trip — tens of milliseconds — which would otherwise
    /// dominate a no-op re-apply.
    UnlessLoaded,
    /// `apply`: never here. The engine checks a ruleset only when it is about to load
    /// it, after observing (so a no-op reads the marker once): a reload in an existing
    /// netns is dry-run first; into a netns the apply creates, the load itself is the
    /// check (the kernel refuses an invalid ruleset and commits nothing; apply then
    /// removes what it created and exits 2). See `Engine::apply_each`.
    Never,
}

/// Checks every `network.nft` ruleset with a libnftables dry run (in a throwaway netns
/// holding placeholders of the container's interfaces that the ruleset names), so a
/// syntax error is invalid input, reported before anything is touched. A check that
/// cannot run at all (e.g. no privilege to make the scratch netns) is an operational
/// failure: exit 1.
fn check_rulesets(files: &[PathBuf], ds: &[Desired], json: bool, dry: Dry) -> Result<(), i32> {
    let mut errs = Vec::new();
    for (p, d) in files.iter().zip(ds) {
        let Some(r) = &d.nft else { continue };
        if dry == Dry::Never || (dry == Dry::UnlessLoaded && already_loaded(d, r)) {
            continue;
        }
        let names = crate::nft::ruleset::placeholder_names(d, r);
        match crate::nft::ruleset::check_syntax_with_interfaces(&r.text, &names) {
            Ok(()) => {}
            Err(CheckError::Syntax(e)) => errs.push(ruleset_invalid(p, &e)),
            Err(CheckError::Op(e)) => {
                err(&format!("netprov: {}: {e}", p.display()));
                return Err(exit::FAILURE);
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(report(&errs, json))
    }
}

/// A ruleset libnftables or the kernel refused, as invalid input at `network.nft`.
pub(crate) fn ruleset_invalid(p: &Path, e: &crate::nft::NftSyntaxError) -> Invalid {
    Invalid {
        file: Some(p.to_owned()),
        path: "network.nft".into(),
        location: props::read(p)
            .ok()
            .and_then(|t| props::locate::locate(&t, "network.nft")),
        message: match e.line {
            Some(l) => format!("nftables ruleset line {l}: {}", e.message.trim_end()),
            None => format!("nftables ruleset: {}", e.message.trim_end()),
        },
    }
}

/// The container's netns exists and runs a ruleset netprov loaded from this very text.
fn already_loaded(d: &Desired, r: &crate::model::Ruleset) -> bool {
    use crate::nft::ruleset::{digest, observe, RulesetState};
    let path = d.netns.path();
    crate::kernel::netns_owner::is_handle(path)
        && matches!(observe(path), Ok(RulesetState::Loaded { source_digest, .. }) if source_digest == digest(r))
}

/// Resolves `destroy` arguments: an existing file or a `.json` name is a properties
/// file, anything else a container id.
pub fn destroy_targets(args: &[String]) -> Result<Vec<DestroyTarget>, Vec<Invalid>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for a in args {
        let p = Path::new(a);
        if p.is_file() || a.ends_with(".json") {
            match props::load(p) {
                Ok(d) => {
                    let host = Path::new("/proc/self/ns/net");
                    let bad =
                        props::check_adopted_netns(std::slice::from_ref(&d), &[p.into()], host);
                    if bad.is_empty() {
                        out.push(DestroyTarget::Props(d));
                    }
                    errs.extend(bad);
                }
                Err(e) => errs.extend(e),
            }
        } else {
            match ContainerId::new(a) {
                Ok(id) => out.push(DestroyTarget::Id(id)),
                Err(m) => errs.push(Invalid {
                    file: None,
                    path: String::new(),
                    location: None,
                    message: format!(
                        "{a:?} is neither a properties file nor a container id: the id {m}"
                    ),
                }),
            }
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroy_accepts_ids() {
        let t = destroy_targets(&["web2".into()]).unwrap();
        assert_eq!(
            t,
            vec![DestroyTarget::Id(ContainerId::new("web2").unwrap())]
        );
        assert!(destroy_targets(&["../etc".into()]).is_err());
        assert!(destroy_targets(&["/nonexistent/x.json".into()]).is_err());
    }
}
