//! The syntax check: a libnftables dry run of exactly what a load would submit, on a
//! thread inside a throwaway netns.

use std::os::fd::AsRawFd;

use super::syntax::syntax_error;
use super::{ctx_error, load_commands, sha, CheckError, NftSyntaxError, MARKER_TABLE, PENDING};
use crate::error::OpError;
use crate::model::{IfName, Ruleset};
use crate::nft::ffi;

/// Checks `text` with a libnftables dry run, exactly as [`super::load`] would submit it, on a
/// thread inside a throwaway netns: the dry run parses, evaluates and sends the batch to
/// the kernel *without* the batch-end message, so the kernel validates and aborts it —
/// and the throwaway netns makes sure no real ruleset is even read. Needs CAP_SYS_ADMIN
/// (to unshare the netns).
///
/// A ruleset that names interfaces by index (`iif`, `oif`, netdev hooks) needs them to
/// exist: use [`check_syntax_with_interfaces`] with the container's interface names.
pub fn check_syntax(text: &str) -> Result<(), CheckError> {
    check_syntax_with_interfaces(text, &[])
}

/// [`check_syntax`] with placeholder interfaces of these names in the throwaway netns
/// (non-persistent tun devices, gone with the check), so `iif lan` resolves as it will
/// in the container.
pub fn check_syntax_with_interfaces(text: &str, ifnames: &[IfName]) -> Result<(), CheckError> {
    if let Some(e) = reserved_name(text) {
        return Err(CheckError::Syntax(e));
    }
    let user_lines = text.lines().count().max(1);
    let cmds = load_commands(text, &sha(text.as_bytes()), PENDING);
    let names: Vec<IfName> = ifnames.to_vec();
    let handle = std::thread::Builder::new()
        .name("nft-check".into())
        .spawn(move || -> Result<ffi::RunResult, OpError> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                OpError::errno(
                    "create a scratch netns to check the nftables ruleset",
                    e as i32,
                )
            })?;
            let _placeholders = names
                .iter()
                .map(placeholder_interface)
                .collect::<Result<Vec<_>, _>>()?;
            ffi::with_ctx(|ctx| {
                ctx.set_dry_run(true);
                ctx.run_as_file(&cmds)
            })
            .map_err(|e| ctx_error("check nftables ruleset", e))
        })
        .map_err(|e| CheckError::Op(OpError::io("spawn nftables check thread", &e)))?;
    let res = handle
        .join()
        .map_err(|_| CheckError::Op(OpError::new("check nftables ruleset", "thread panicked")))?
        .map_err(CheckError::Op)?;
    if res.rc == 0 {
        Ok(())
    } else {
        Err(CheckError::Syntax(syntax_error(&res.error, user_lines)))
    }
}

/// The interfaces of `d` that the ruleset names (placeholders for a dry run in a
/// scratch netns: `iif lan` needs `lan` to exist). Only those: each placeholder costs a
/// device, and its teardown waits for the kernel.
pub fn placeholder_names(d: &crate::model::Desired, r: &Ruleset) -> Vec<IfName> {
    d.interfaces
        .iter()
        .flat_map(|i| {
            std::iter::once(i.name.clone()).chain(i.macvlan.iter().map(|m| m.name.clone()))
        })
        .filter(|n| mentions(&r.text, n.as_str()))
        .collect()
}

/// `name` occurs in `text` as a whole word (interface-name characters on neither side).
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// The marker table's name is netprov's; a ruleset that uses it would clobber (or be
/// clobbered by) the marker.
pub(super) fn reserved_name(text: &str) -> Option<NftSyntaxError> {
    // Also the self-containment rule (see include.rs): checked again here, right before
    // libnftables would read the text, whoever built the Ruleset.
    if let Some((line, col)) = crate::nft::include::find(text) {
        return Some(NftSyntaxError {
            message: crate::nft::include::message(line, col),
            line: Some(line),
        });
    }
    let (i, _) = text.lines().enumerate().find(|(_, l)| {
        l.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == MARKER_TABLE)
    })?;
    Some(NftSyntaxError {
        message: format!(
            "nft:{}: Error: the table name {MARKER_TABLE} is reserved for netprov's marker",
            i + 1
        ),
        line: Some(i + 1),
    })
}

/// A tun device named `name` in the calling thread's netns, alive while the file is.
fn placeholder_interface(name: &IfName) -> Result<std::fs::File, OpError> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca; // _IOW('T', 202, int)
    let op = || format!("create placeholder interface {name} to check the nftables ruleset");
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| OpError::io(op(), &e))?;
    // struct ifreq: char ifr_name[16]; then a union whose first member here is
    // short ifr_flags.
    let mut ifr = [0u8; 40];
    ifr[..name.as_str().len()].copy_from_slice(name.as_str().as_bytes());
    let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: TUNSETIFF reads/writes an ifreq, which `ifr` is large enough to hold.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
    if rc < 0 {
        return Err(OpError::io(op(), &std::io::Error::last_os_error()));
    }
    Ok(tun)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_whole_words_only() {
        assert!(mentions("iif lan accept", "lan"));
        assert!(mentions("iifname \"lan\" accept", "lan"));
        assert!(!mentions("iif lan0 accept", "lan"));
        assert!(!mentions("iif wlan accept", "lan"));
        assert!(!mentions("table inet filter {}", "lan"));
    }

    #[test]
    fn marker_name_is_reserved() {
        let e = reserved_name("table inet f {}\ntable inet netprov_state {}\n").unwrap();
        assert_eq!(e.line, Some(2));
        assert!(reserved_name("table inet netprov_statex {}").is_none());
    }
}
