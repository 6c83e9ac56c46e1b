//! sysctls, read and written through a `/proc/sys` (see [`super::procsys`]) from a
//! thread inside the container netns (`/proc/sys/net` shows the netns of the reading
//! thread).

use std::io::Read;

use super::procsys::ProcSys;
use crate::error::OpError;

/// Current values of `paths` (relative to /proc/sys); `None` where unreadable (e.g. an
/// interface-specific key whose interface does not exist yet). Call inside the netns.
pub fn read_all(sys: &ProcSys, paths: &[String]) -> Vec<Option<String>> {
    paths
        .iter()
        .map(|p| {
            let mut v = String::new();
            let mut f = sys.open(p, false).ok()?;
            f.read_to_string(&mut v).ok()?;
            Some(v.trim().to_owned())
        })
        .collect()
}

/// Normalises whitespace the way the kernel prints multi-value sysctls (tabs).
pub fn same_value(current: &str, wanted: &str) -> bool {
    current.split_whitespace().eq(wanted.split_whitespace())
}

/// Writes `value` unless it is already there. Call inside the netns. Returns whether it
/// wrote.
///
/// One open for both (read, then write at offset 0): where `sys` is the shared
/// `/proc/sys`, every path lookup under `/proc/sys/net` walks one dentry per netns
/// (see [`super::procsys`]).
pub fn ensure(
    sys: &ProcSys,
    key: &str,
    path: &str,
    value: &str,
    netns: &str,
) -> Result<bool, OpError> {
    use std::os::unix::fs::FileExt;
    let op = || format!("set sysctl {key}={value} in {netns}");
    let mut f = sys.open(path, true).map_err(|e| OpError::io(op(), &e))?;
    let mut cur = String::new();
    if f.read_to_string(&mut cur).is_ok() && same_value(&cur, value) {
        return Ok(false);
    }
    f.write_all_at(value.as_bytes(), 0)
        .map_err(|e| OpError::io(op(), &e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn multi_value_sysctls_compare_by_words() {
        assert!(super::same_value(
            "4096\t87380\t6291456\n",
            "4096 87380 6291456"
        ));
        assert!(!super::same_value("1\n", "0"));
    }
}
