//! The compiled-ruleset cache: the netlink batch libnftables built for a load into a
//! fresh netns, kept so that the next load of the same text into a fresh netns sends
//! it again without libnftables.
//!
//! Why: loading libnftables (four libraries), its parser, its caches and its symbol
//! tables are ~1.1 ms of a ~5 ms cold apply (docs/benchmarks.md, "Round 5"); sending a
//! batch the kernel has already accepted once is ~0.15 ms. A host typically starts
//! many containers with the same ruleset, and every restart loads the same one again.
//!
//! What makes a replay mean exactly what a libnftables run would have meant:
//!
//! * **Only into a never-committed netns.** The load reads the netns's generation
//!   first; the kernel starts every netns at 1 and adds one per commit, so 1 means the
//!   ruleset is empty and has always been. Only such a load is captured, and only such
//!   a load replays: libnftables evaluated the text against an empty cache both times.
//!   The marker in the batch records `gen=2`, which is what the replay's commit makes.
//! * **The key is everything the batch was built from**: the commands (user text,
//!   `flush ruleset`, the marker with the text's digest), netprov's version, the
//!   kernel, the library search environment, and the identity (device, inode, size,
//!   times) of each host file libnftables reads while parsing: services and protocols
//!   (and nsswitch.conf, which says where those come from), iproute2's mark, realm
//!   and group names, connlabel.conf, the time zone. The entry records which file
//!   libnftables was loaded from, and is used only while that file is unchanged.
//! * **No host names.** libnftables resolves a host name in the text with
//!   `getaddrinfo` (DNS, /etc/hosts); a run that looked one up is not cached
//!   (`capture` sees the lookups; libnftables 1.0.6 has no switch to turn DNS off).
//! * **The batch must be portable** ([`portable::check`]): nothing in it may be an
//!   interface index, uid, gid or cgroup id resolved in the netns or host it was built
//!   in.
//! * **The kernel still validates every replay**, atomically. A refused replay
//!   changes nothing; the entry is dropped and libnftables loads the text.
//!
//! The entries live under `/run/netprov/nft-batches` (tmpfs: gone at reboot), one
//! file per key (a few KiB; at most 4096 files), written whole and renamed into place;
//! a file that is not a regular file owned by this user and writable by nobody else,
//! not this format, or not matching its checksum is ignored. Removing the directory is
//! always safe. `NETPROV_NFT_CACHE=off` turns the cache off; an
//! absolute path moves it.

pub mod portable;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use sha2::{Digest, Sha256};

use crate::nft::capture::Seen;

/// The generation of a netns whose ruleset was never committed.
pub const FRESH_GENERATION: u32 = 1;

const DEFAULT_DIR: &str = "/run/netprov/nft-batches";
const MAGIC: &[u8] = b"netprov nft batch 1\n";
/// Larger entries are not read (a ruleset's batch is a few KiB; the kernel's own
/// limit for one datagram is far above what a container ruleset needs).
const MAX_ENTRY: u64 = 16 << 20;
/// No more entries are stored past this many (a host whose every container has a
/// ruleset of its own gains nothing from them; /run is memory).
const MAX_ENTRIES: usize = 4096;

/// Host files whose content libnftables turns into numbers while parsing.
const HOST_FILES: &[&str] = &[
    "/etc/nsswitch.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/iproute2/rt_marks",
    "/etc/iproute2/rt_realms",
    "/etc/iproute2/group",
    "/etc/iproute2/rt_protos",
    "/usr/share/iproute2/rt_marks",
    "/usr/share/iproute2/rt_realms",
    "/usr/share/iproute2/group",
    "/etc/connlabel.conf",
    "/etc/localtime",
];
/// Environment that changes which libnftables loads or how it reads the text.
const ENV: &[&str] = &["LD_LIBRARY_PATH", "LD_PRELOAD", "TZ"];

/// Where the entries are; `None` when the cache is off.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache `NETPROV_NFT_CACHE` names (default `/run/netprov/nft-batches`).
    pub fn from_env() -> Option<Self> {
        match std::env::var_os("NETPROV_NFT_CACHE") {
            None => Some(Self::at(DEFAULT_DIR)),
            Some(v) if v == "off" => None,
            Some(v) if Path::new(&v).is_absolute() => Some(Self::at(v)),
            Some(v) => {
                tracing::warn!(
                    "NETPROV_NFT_CACHE={}: neither `off` nor an absolute path; the cache is off",
                    v.to_string_lossy()
                );
                None
            }
        }
    }

    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The batch stored under `key`, if any and still valid.
    pub fn get(&self, key: &Key) -> Option<Vec<u8>> {
        let path = self.dir.join(&key.0);
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .ok()?;
        let meta = f.metadata().ok()?;
        if !meta.is_file() || !trusted(&meta) || meta.len() > MAX_ENTRY {
            return None;
        }
        let mut b = Vec::with_capacity(meta.len() as usize);
        f.read_to_end(&mut b).ok()?;
        let entry = Entry::decode(&b)?;
        if fs::metadata(&entry.library).ok().map(|m| identity(&m)) != Some(entry.library_id) {
            tracing::debug!(
                "nft batch cache: {} changed since {} was built",
                entry.library.display(),
                key.0
            );
            return None;
        }
        Some(entry.batch.to_vec())
    }

    /// Stores what a successful libnftables run sent under `key` if it is one portable
    /// batch and no host name was looked up; never fails the load (a cache that cannot
    /// be written is only slower).
    pub fn put(&self, key: &Key, seen: &Seen, library: Option<&Path>) {
        if seen.looked_up_hosts {
            tracing::debug!("nft batch cache: the text names hosts (DNS), not cached");
            return;
        }
        let [batch] = &seen.sent[..] else {
            tracing::debug!(
                "nft batch cache: {} datagrams sent, not cached",
                seen.sent.len()
            );
            return;
        };
        if let Err(why) = portable::check(batch) {
            tracing::debug!("nft batch cache: not cached: {why}");
            return;
        }
        let Some(library) = library else {
            return;
        };
        let Ok(meta) = fs::metadata(library) else {
            return;
        };
        let mut batch = batch.clone();
        portable::normalize(&mut batch);
        if let Err(e) = self.write(key, &Entry::encode(library, &identity(&meta), &batch)) {
            tracing::debug!("nft batch cache: store {}: {e}", key.0);
        }
    }

    /// Drops the entry under `key` (the kernel refused its batch).
    pub fn forget(&self, key: &Key) {
        let _ = fs::remove_file(self.dir.join(&key.0));
    }

    fn write(&self, key: &Key, bytes: &[u8]) -> std::io::Result<()> {
        match fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&self.dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let dir = fs::symlink_metadata(&self.dir)?;
        if !dir.is_dir() || !trusted(&dir) {
            return Err(std::io::Error::other(
                "the cache directory is not this user's alone",
            ));
        }
        let path = self.dir.join(&key.0);
        if !path.exists() && fs::read_dir(&self.dir)?.count() >= MAX_ENTRIES {
            return Err(std::io::Error::other(format!(
                "{MAX_ENTRIES} entries already"
            )));
        }
        static STORES: AtomicU32 = AtomicU32::new(0);
        let n = STORES.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{}.{}.{n}", key.0, std::process::id()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        let done = f
            .write_all(bytes)
            .and_then(|()| fs::rename(&tmp, self.dir.join(&key.0)));
        if done.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        done
    }
}

/// Owned by this user and writable by no one else.
fn trusted(m: &fs::Metadata) -> bool {
    // SAFETY: geteuid cannot fail.
    m.uid() == unsafe { libc::geteuid() } && m.mode() & 0o022 == 0
}

/// A file's identity: changes whenever the file is replaced or written.
struct Identity([i64; 7]);

impl Identity {
    fn of(m: &fs::Metadata) -> Self {
        // dev, ino and size are u64 in `stat`; as i64 they only change sign past 2^63,
        // which keeps them distinct all the same.
        Self([
            m.dev() as i64,
            m.ino() as i64,
            m.size() as i64,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ])
    }

    /// As hashed into a [`Key`]: the numbers as they are (formatting them as text for
    /// each of the dozen host files was ~25,000 instructions of every cold apply).
    fn bytes(&self) -> [u8; 56] {
        let mut b = [0; 56];
        for (chunk, v) in b.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// As recorded in an entry: `dev ino size mtime.nsec ctime.nsec`.
fn identity(m: &fs::Metadata) -> String {
    let [dev, ino, size, mt, mtn, ct, ctn] = Identity::of(m).0;
    format!(
        "{} {} {} {mt}.{mtn} {ct}.{ctn}",
        dev as u64, ino as u64, size as u64
    )
}

/// The name of an entry: SHA-256 over everything its batch was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// The key of a libnftables run of `cmds` on this host, now.
    pub fn new(cmds: &str) -> Self {
        let mut h = Sha256::new();
        let mut field = |k: &str, v: &[u8]| {
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v);
        };
        field("format", MAGIC);
        field("netprov", env!("CARGO_PKG_VERSION").as_bytes());
        field("kernel", kernel().as_bytes());
        for v in ENV {
            let val = std::env::var_os(v).unwrap_or_default();
            field(v, val.as_encoded_bytes());
        }
        for f in HOST_FILES {
            let id = fs::metadata(f).map(|m| Identity::of(&m).bytes());
            field(f, id.as_ref().map_or(&[][..], |b| &b[..]));
        }
        let tz = fs::read_link("/etc/localtime").unwrap_or_default();
        field("localtime", tz.as_os_str().as_encoded_bytes());
        field("commands", cmds.as_bytes());
        Self(crate::marks::hex(&h.finalize()))
    }
}

/// `uname -rv`: the kernel decides which attributes libnftables may send.
fn kernel() -> String {
    // SAFETY: uname fills a zeroed utsname; its fields are NUL-terminated.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::new();
        }
        let f = |a: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(a.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        format!("{} {}", f(&u.release), f(&u.version))
    }
}

/// One entry file: the magic line, the library line (path, tab, identity), the
/// batch's SHA-256 in hex, then the batch.
struct Entry<'a> {
    library: PathBuf,
    library_id: String,
    batch: &'a [u8],
}

impl<'a> Entry<'a> {
    fn encode(library: &Path, library_id: &str, batch: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(library.as_os_str().as_encoded_bytes());
        b.push(b'\t');
        b.extend_from_slice(library_id.as_bytes());
        b.push(b'\n');
        b.extend_from_slice(crate::marks::hex(&Sha256::digest(batch)).as_bytes());
        b.push(b'\n');
        b.extend_from_slice(batch);
        b
    }

    fn decode(b: &'a [u8]) -> Option<Self> {
        let rest = b.strip_prefix(MAGIC)?;
        let nl = rest.iter().position(|c| *c == b'\n')?;
        let (lib_line, rest) = (&rest[..nl], &rest[nl + 1..]);
        let tab = lib_line.iter().position(|c| *c == b'\t')?;
        let library = PathBuf::from(std::str::from_utf8(&lib_line[..tab]).ok()?);
        let library_id = std::str::from_utf8(&lib_line[tab + 1..]).ok()?.to_owned();
        let nl = rest.iter().position(|c| *c == b'\n')?;
        let (sum, batch) = (&rest[..nl], &rest[nl + 1..]);
        if sum != crate::marks::hex(&Sha256::digest(batch)).as_bytes() {
            return None;
        }
        Some(Self {
            library,
            library_id,
            batch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch portable::check accepts: begin, one NEWTABLE, end.
    fn batch() -> Vec<u8> {
        let msg = |kind: u16| {
            let mut m = 20u32.to_ne_bytes().to_vec();
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(&[0; 10]);
            m.extend_from_slice(&[1, 0, 0, 10]);
            m
        };
        [msg(16), msg(10 << 8), msg(17)].concat()
    }

    fn sent(datagrams: &[Vec<u8>]) -> Seen {
        Seen {
            sent: datagrams.to_vec(),
            looked_up_hosts: false,
        }
    }

    /// A cache in a scratch directory and a stand-in library file, removed on drop.
    struct Scratch {
        dir: PathBuf,
        lib: PathBuf,
        c: Cache,
    }

    impl Scratch {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!(
                "netprov-nftc-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            let lib = dir.with_extension("lib");
            fs::write(&lib, b"v1").unwrap();
            let c = Cache::at(&dir);
            Self { dir, lib, c }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
            let _ = fs::remove_file(&self.lib);
        }
    }

    #[test]
    fn stores_and_returns_a_batch_while_its_library_is_unchanged() {
        let Scratch { dir, lib, c } = &Scratch::new();
        let k = Key::new("flush ruleset; table inet t {}");
        assert_eq!(c.get(&k), None);
        c.put(&k, &sent(&[batch()]), Some(lib));
        assert_eq!(c.get(&k), Some(batch()));
        assert_eq!(fs::metadata(dir).unwrap().mode() & 0o777, 0o700);
        // Another text, another key.
        assert_eq!(c.get(&Key::new("flush ruleset; table inet u {}")), None);
        // The library replaced: the entry is not used.
        fs::write(lib, b"version 2").unwrap();
        assert_eq!(c.get(&k), None);
        c.put(&k, &sent(&[batch()]), Some(lib));
        assert_eq!(c.get(&k), Some(batch()));
        c.forget(&k);
        assert_eq!(c.get(&k), None);
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let Scratch { dir, lib, c } = &Scratch::new();
        let k = Key::new("x");
        // Not one portable batch: nothing stored.
        c.put(&k, &sent(&[]), Some(lib));
        c.put(&k, &sent(&[batch(), batch()]), Some(lib));
        c.put(&k, &sent(&[batch()[20..].to_vec()]), Some(lib));
        let dns = Seen {
            looked_up_hosts: true,
            ..sent(&[batch()])
        };
        c.put(&k, &dns, Some(lib));
        c.put(&k, &sent(&[batch()]), None);
        assert_eq!(c.get(&k), None);
        c.put(&k, &sent(&[batch()]), Some(lib));
        let path = dir.join(&k.0);
        // A flipped byte in the batch fails the checksum.
        let mut b = fs::read(&path).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        fs::write(&path, &b).unwrap();
        assert_eq!(c.get(&k), None);
        // Writable by others, or a symlink: ignored.
        c.put(&k, &sent(&[batch()]), Some(lib));
        assert!(c.get(&k).is_some());
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        assert_eq!(c.get(&k), None);
        fs::remove_file(&path).unwrap();
        let other = dir.join("elsewhere");
        c.put(&Key::new("y"), &sent(&[batch()]), Some(lib));
        fs::rename(dir.join(&Key::new("y").0), &other).unwrap();
        std::os::unix::fs::symlink(&other, &path).unwrap();
        assert_eq!(c.get(&k), None);
    }

    #[test]
    fn the_key_is_stable_and_follows_the_text() {
        let a = Key::new("t");
        assert_eq!(a, Key::new("t"));
        assert_ne!(a, Key::new("t "));
        assert_eq!(a.0.len(), 64);
    }
}
