//! sysctls, read and written through `/proc/sys` from a thread inside the container
//! netns (`/proc/sys/net` shows the netns of the reading thread).

use std::path::Path;

use crate::error::OpError;

fn file(path: &str) -> std::path::PathBuf {
    Path::new("/proc/sys").join(path)
}

/// Current values of `paths` (relative to /proc/sys); `None` where unreadable (e.g. an
/// interface-specific key whose interface does not exist yet). Call inside the netns.
pub fn read_all(paths: &[String]) -> Vec<Option<String>> {
    paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(file(p))
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .collect()
}

/// Normalises whitespace the way the kernel prints multi-value sysctls (tabs).
pub fn same_value(current: &str, wanted: &str) -> bool {
    current.split_whitespace().eq(wanted.split_whitespace())
}

/// Writes `value` unless it is already there. Call inside the netns. Returns whether it
/// wrote.
pub fn ensure(key: &str, path: &str, value: &str, netns: &str) -> Result<bool, OpError> {
    let f = file(path);
    let op = format!("set sysctl {key}={value} in {netns}");
    if let Ok(cur) = std::fs::read_to_string(&f) {
        if same_value(&cur, value) {
            return Ok(false);
        }
    }
    std::fs::write(&f, value).map_err(|e| OpError::io(op, &e))?;
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
