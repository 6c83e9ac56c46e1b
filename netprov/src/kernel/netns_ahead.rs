//! A container's new network namespace, made ahead on a thread of its own while the
//! main thread validates the props, observes and plans; and its ruleset loaded into it
//! there while the main thread makes the links.
//!
//! Why: `unshare(CLONE_NEWNET)` is the costliest single request of a cold apply — the
//! kernel sets up every per-netns subsystem: about 0.4 ms of a 3 ms apply here — and
//! it needs nothing of the apply but the container id. Loading the ruleset is the next
//! (0.1–0.15 ms), and needs only the netns. On a machine with a second CPU both then
//! run beside the main thread's own work instead of before and after it
//! (docs/benchmarks.md, "Round 12"); the engine's netns step ([`super::netns`]) only
//! mounts the namespace, and its ruleset step finds the ruleset loaded.
//!
//! Why that is safe before anything is validated or locked: the namespace made ahead
//! is anonymous. One file descriptor of this process holds it and no path reaches it,
//! so nothing done in it is seen by anyone. When the apply does not use it — invalid
//! input, a netns already there, another run made it first, a failure — it goes away
//! when that descriptor is closed or the process exits, as if never made; a crash at
//! any moment leaves nothing behind. It carries the container's owner mark before it
//! is mounted, as the namespace the netns step makes itself does, so the handle is
//! never visible unmarked. The ruleset is loaded only from the compiled-ruleset cache
//! (`nft::ruleset::compiled`): a batch the kernel accepted before for exactly these
//! commands, into a never-committed netns, which the kernel validates again; without a
//! cached batch the ruleset step loads it as before. The load runs while the apply
//! makes the links, addresses and routes, and is done before the ruleset step returns,
//! as it was; the container, which starts after the apply, sees no difference.
//!
//! Only the one-container apply (what `ExecStartPre=` runs) makes one, and only when
//! the handle is absent: a no-op re-apply starts no thread.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::OpError;
use crate::kernel::netlink::Netlink;
use crate::model::{ContainerId, Ruleset};

/// What the helper thread shares with the apply.
struct Shared {
    id: ContainerId,
    ruleset: Option<Ruleset>,
    /// The CPUs the thread may use once it runs (the process's own).
    cpus: libc::cpu_set_t,
    /// Set first thing by the thread.
    started: AtomicBool,
    /// The netns (and then the ruleset load) is done: its result is in `state`.
    netns_done: AtomicBool,
    nft_done: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

/// A netns made ahead: the descriptor that holds it, and the netlink connection the
/// helper marked it over, which the apply keeps as its connection in that netns once
/// the netns is mounted ([`mounted`]).
pub struct Made {
    pub netns: File,
    pub conn: Netlink,
    /// The helper, while it may still load the ruleset into this netns: its load
    /// counts only once the netns is mounted ([`mounted`]).
    helper: Option<Arc<Shared>>,
}

#[derive(Default)]
struct State {
    netns: Option<Result<Made, OpError>>,
    /// The commands whose cached batch the thread committed in the netns.
    loaded: Option<String>,
}

/// A helper thread until its netns is taken: then it is detached (it may still be
/// loading the ruleset; nothing joins it).
struct Pending {
    shared: Arc<Shared>,
    thread: libc::pthread_t,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // SAFETY: a joinable thread made by `start`, detached once, here.
        unsafe { libc::pthread_detach(self.thread) };
    }
}

// SAFETY: a pthread_t is a handle that any thread may use.
unsafe impl Send for Pending {}

/// The helper of this process (one container per apply), until its netns is taken.
static SLOT: Mutex<Option<Pending>> = Mutex::new(None);
/// The helper whose netns was mounted, with the path it is mounted on, until its
/// ruleset load is asked for.
static LOADING: Mutex<Option<(PathBuf, Arc<Shared>)>> = Mutex::new(None);
/// The connection into a netns made ahead and mounted, with the handle path it is
/// mounted on, until the apply opens its connection in that netns ([`conn_at`]).
static MOUNTED: Mutex<Option<(PathBuf, Netlink)>> = Mutex::new(None);

/// The part of a properties file this needs, read before the whole file is
/// validated; anything else in it is ignored here.
#[derive(Deserialize)]
struct Peek {
    id: String,
    #[serde(default)]
    network: Option<PeekNetwork>,
}

#[derive(Deserialize)]
struct PeekNetwork {
    #[serde(default)]
    netns_path: Option<String>,
    #[serde(default)]
    nft: Option<String>,
}

/// The container id and ruleset of a props text whose netns netprov creates (no
/// `netns_path`), if the text says so plainly. Anything unclear is `None`: the apply
/// then makes the netns itself, after validation, which reports what is wrong.
fn owned(text: &[u8]) -> Option<(ContainerId, Option<Ruleset>)> {
    let p: Peek = serde_json::from_slice(text).ok()?;
    let (netns_path, nft) = p.network.map_or((None, None), |n| (n.netns_path, n.nft));
    if netns_path.is_some_and(|s| !s.is_empty()) {
        return None;
    }
    let ruleset = nft.filter(|t| !t.is_empty()).map(|text| Ruleset { text });
    Some((ContainerId::new(&p.id).ok()?, ruleset))
}

/// Starts making the netns of the container of props `text` (a file as read, not yet
/// validated), if the props ask netprov to create it, its handle under `netns_dir`
/// does not exist yet and the process has a second CPU. Never fails: without it, the
/// apply makes the netns itself.
pub fn start_for(text: &str, netns_dir: &Path) {
    let Some((id, ruleset)) = owned(text.as_bytes()) else {
        return;
    };
    // A handle (or anything else) there: the apply reuses, repairs or refuses it; no
    // namespace is needed ahead.
    match std::fs::symlink_metadata(netns_dir.join(id.as_str())) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => start(id, ruleset),
        _ => {}
    }
}

/// Starts making a netns marked for `id` (and loading `ruleset` into it) on a new
/// thread, started on another CPU than the calling thread's.
///
/// Why another CPU: a new thread is queued where its parent runs (measured here: it
/// ran only once the main thread waited for it, so nothing overlapped). It is started
/// on the other CPUs of the process's mask and, once running, allowed back on all of
/// them, so that a busy CPU cannot hold it.
pub fn start(id: ContainerId, ruleset: Option<Ruleset>) {
    let Some((cpus, others)) = other_cpus() else {
        return;
    };
    let shared = Arc::new(Shared {
        id,
        ruleset,
        cpus,
        started: AtomicBool::new(false),
        netns_done: AtomicBool::new(false),
        nft_done: AtomicBool::new(false),
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
    });
    // SAFETY: plain pthread calls on a local attribute object; the thread gets one
    // reference to `shared`, which `run` takes back. It stays joinable until `take`
    // (or a drop of its `Pending`) detaches it, so that its handle stays valid.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            return;
        }
        // A few system calls and netlink requests: a small stack is plenty.
        libc::pthread_attr_setstacksize(&mut attr, 128 << 10);
        libc::pthread_attr_setaffinity_np(
            &mut attr,
            std::mem::size_of::<libc::cpu_set_t>(),
            &others,
        );
        let arg = Arc::into_raw(shared.clone()) as *mut libc::c_void;
        let mut thread: libc::pthread_t = 0;
        let made = libc::pthread_create(&mut thread, &attr, run, arg);
        libc::pthread_attr_destroy(&mut attr);
        if made != 0 {
            drop(Arc::from_raw(arg as *const Shared));
            return;
        }
        if let Ok(mut slot) = SLOT.lock() {
            *slot = Some(Pending { shared, thread });
        } else {
            libc::pthread_detach(thread);
        }
    }
}

extern "C" fn run(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `start` passed one reference made by Arc::into_raw.
    let shared = unsafe { Arc::from_raw(arg as *const Shared) };
    shared.started.store(true, Ordering::Release);
    // SAFETY: sets this thread's own mask to the process's.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &shared.cpus) };
    let made = make(&shared.id);
    let ok = made.is_ok();
    shared.publish(&shared.netns_done, |s| s.netns = Some(made));
    let loaded = match (&shared.ruleset, ok) {
        (Some(r), true) => crate::nft::ruleset::load_cached_here(r),
        _ => None,
    };
    shared.publish(&shared.nft_done, |s| s.loaded = loaded);
    std::ptr::null_mut()
}

/// On the helper thread: a new netns for this thread (which ends in it: a thread that
/// exits needs no way back), marked for `id`, held by the returned descriptor.
///
/// The descriptor comes from the marking socket (`SIOCGSKNS`) rather than from
/// `/proc/thread-self/ns/net`: the same netns without a path lookup through procfs,
/// on the path the apply waits on.
fn make(id: &ContainerId) -> Result<Made, OpError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| OpError::errno(format!("create a netns for {id}"), e as i32))?;
    let conn = crate::kernel::netns_owner::set_mark_here(id)?;
    let netns = conn
        .netns()
        .map_err(|e| OpError::io(format!("open the new netns of {id}"), &e))?;
    Ok(Made {
        netns,
        conn,
        helper: None,
    })
}

/// How long the apply waits for a running helper by spinning before it sleeps: about
/// what a new netns takes here once its thread runs. Not longer: a helper that takes
/// longer has lost its CPU to other work, and this thread's CPU is better left to it.
const SPIN: Duration = Duration::from_micros(400);

impl Shared {
    fn publish(&self, done: &AtomicBool, f: impl FnOnce(&mut State)) {
        // The flag is set under the lock: a waiter checks it under the lock before it
        // sleeps, so it cannot miss the notification.
        match self.state.lock() {
            Ok(mut s) => {
                f(&mut s);
                done.store(true, Ordering::Release);
            }
            Err(_) => done.store(true, Ordering::Release),
        }
        self.changed.notify_all();
    }

    /// Waits until `done` is set. A helper that is running is waited for by spinning,
    /// for at most [`SPIN`]: what it makes is typically a few hundred microseconds
    /// away, and a thread that sleeps instead is woken by an interprocessor interrupt,
    /// which on a virtual machine is a round trip through the hypervisor (measured
    /// here: 50 µs more per cold apply). A helper that has not started yet (its CPUs
    /// are busy) is waited for asleep at once.
    fn wait(&self, done: &AtomicBool) {
        if self.started.load(Ordering::Acquire) {
            let t0 = Instant::now();
            let mut n = 0u32;
            while !done.load(Ordering::Acquire) {
                std::hint::spin_loop();
                n = n.wrapping_add(1);
                if n % 256 == 0 && t0.elapsed() > SPIN {
                    break;
                }
            }
        }
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        while !done.load(Ordering::Acquire) {
            s = match self.changed.wait(s) {
                Ok(s) => s,
                Err(_) => return,
            };
        }
    }
}

/// The netns made ahead for `id`, waiting for it if it is still being made. `None`
/// when none was started for `id`; an error is the helper's (the caller then makes the
/// netns itself, which reports what fails in its own words).
pub fn take(id: &ContainerId) -> Option<Result<Made, OpError>> {
    let pending = SLOT.lock().ok()?.take()?;
    let shared = pending.shared.clone();
    if shared.id != *id {
        // Not this container's (cannot happen with one container per apply).
        return None;
    }
    if !shared.started.load(Ordering::Acquire) {
        // Its CPUs are busy: let it run on this one too, which waits for it now
        // (otherwise it would wait there while this one stands idle).
        // SAFETY: `pending` holds the thread joinable, so the handle is valid.
        unsafe {
            libc::pthread_setaffinity_np(
                pending.thread,
                std::mem::size_of::<libc::cpu_set_t>(),
                &shared.cpus,
            )
        };
    }
    drop(pending);
    shared.wait(&shared.netns_done);
    let mut netns = shared.state.lock().ok()?.netns.take()?;
    if let Ok(m) = &mut netns {
        if shared.ruleset.is_some() {
            m.helper = Some(shared);
        }
    }
    Some(netns)
}

/// Records that the netns `made` ahead is now mounted on `path`: the apply's next
/// [`conn_at`] of `path` gets its connection instead of opening one (which visits the
/// netns by its path to make a socket there), and its ruleset step asks
/// [`ruleset_loaded`] what the helper loaded into it. Only a mounted netns is the
/// one at `path`: a netns made ahead and not mounted (a handle was there) is neither.
pub fn mounted(path: &Path, made: Made) {
    if let Ok(mut m) = MOUNTED.lock() {
        *m = Some((path.to_owned(), made.conn));
    }
    if let Some(helper) = made.helper {
        if let Ok(mut l) = LOADING.lock() {
            *l = Some((path.to_owned(), helper));
        }
    }
}

/// Forgets what [`mounted`] recorded for `path` (the handle there is about to be made
/// or removed: whatever netns it holds next is not the one the connection is in, nor
/// the one the helper loaded a ruleset into).
pub fn forget(path: &Path) {
    if let Ok(mut m) = MOUNTED.lock() {
        if m.as_ref().is_some_and(|(p, _)| p == path) {
            *m = None;
        }
    }
    if let Ok(mut l) = LOADING.lock() {
        if l.as_ref().is_some_and(|(p, _)| p == path) {
            *l = None;
        }
    }
}

/// The connection into the netns made ahead and mounted on `path`, once; `None` if
/// there is none (the caller opens one).
pub fn conn_at(path: &Path) -> Option<Netlink> {
    let mut m = MOUNTED.lock().ok()?;
    if m.as_ref().is_some_and(|(p, _)| p == path) {
        m.take().map(|(_, c)| c)
    } else {
        None
    }
}

/// The commands whose cached batch the helper committed in `id`'s netns, which the
/// apply mounted ([`mounted`]), waiting for the load if it still runs; `None` if it
/// loaded nothing. The ruleset step compares them with its own
/// (`nft::ruleset::load_checked_with`); the verify's read of the marker and the
/// generation confirms them.
pub fn ruleset_loaded(id: &ContainerId) -> Option<String> {
    let (_, shared) = LOADING.lock().ok()?.take()?;
    if shared.id != *id {
        return None;
    }
    shared.wait(&shared.nft_done);
    let loaded = shared.state.lock().ok()?.loaded.take();
    loaded
}

/// The process's CPUs, and those of them other than the one this thread runs on;
/// `None` without a second one.
fn other_cpus() -> Option<(libc::cpu_set_t, libc::cpu_set_t)> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, filled in by the kernel.
    unsafe {
        let mut all: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut all) != 0 {
            return None;
        }
        let mut others = all;
        let here = libc::sched_getcpu();
        if here >= 0 {
            libc::CPU_CLR(here as usize, &mut others);
        }
        (libc::CPU_COUNT(&others) > 0 && libc::CPU_COUNT(&all) > 1).then_some((all, others))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn ino(f: &File) -> u64 {
        f.metadata().unwrap().ino()
    }

    /// One test for the whole slot: it is process-wide, and tests run side by side.
    #[test]
    fn a_netns_made_ahead_is_new_marked_and_only_for_its_container() {
        if other_cpus().is_none() {
            eprintln!("one CPU: nothing is made ahead (start does nothing)");
            return;
        }
        crate::kernel::nlsock::testing::in_fresh_netns(|| {
            let here = File::open("/proc/thread-self/ns/net").unwrap();
            let web = ContainerId::new("ahead-web").unwrap();
            assert!(take(&web).is_none(), "nothing started");

            start(web.clone(), None);
            let other = ContainerId::new("ahead-other").unwrap();
            assert!(take(&other).is_none(), "started for another container");
            assert!(take(&web).is_none(), "a mismatched take drops it");

            start(web.clone(), None);
            let made = take(&web).expect("started").expect("made");
            assert!(take(&web).is_none(), "taken once");
            let ns = made.netns.try_clone().unwrap();
            assert_ne!(ino(&ns), ino(&here), "a new netns");
            // The connection handed over talks to that netns.
            assert_eq!(ino(&made.conn.netns().unwrap()), ino(&ns));
            assert!(made.helper.is_none(), "no ruleset: no load to wait for");
            let handle = std::path::Path::new("/run/netns/ahead-web");
            let elsewhere = std::path::Path::new("/run/netns/ahead-other");
            mounted(handle, made);
            assert!(conn_at(elsewhere).is_none(), "only for its own path");
            let conn = conn_at(handle).expect("recorded");
            assert!(conn_at(handle).is_none(), "handed over once");
            let again = Made {
                netns: ns.try_clone().unwrap(),
                conn: conn.clone(),
                helper: None,
            };
            mounted(handle, again);
            forget(elsewhere);
            forget(handle);
            assert!(conn_at(handle).is_none(), "forgotten with its handle");
            // It is the apply's connection from here on: requests go into the netns.
            let lo = conn
                .get_link_now(crate::kernel::link::get_by_index(1))
                .unwrap()
                .unwrap();
            assert_eq!(lo.alias, Some(crate::marks::netns_mark(&web)));
            // The thread that made it is gone; the descriptor holds the netns, which
            // carries the container's mark.
            let path = std::path::PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&ns)
            ));
            let mark = crate::kernel::netns::in_netns(&path, crate::kernel::netns_owner::mark_here)
                .unwrap()
                .unwrap();
            assert_eq!(mark, Some(crate::marks::netns_mark(&web)));
            // and the calling thread is still where it was
            let after = File::open("/proc/thread-self/ns/net").unwrap();
            assert_eq!(ino(&after), ino(&here));

            // With a ruleset to load: what the helper loads counts only for a netns
            // this apply mounted (one it did not mount is not the one at the path).
            let ruleset = || {
                Some(Ruleset {
                    text: "table inet ahead_t {\n}".into(),
                })
            };
            start(web.clone(), ruleset());
            let made = take(&web).expect("started").expect("made");
            assert!(made.helper.is_some());
            drop(made);
            assert!(LOADING.lock().unwrap().is_none());
            assert!(
                ruleset_loaded(&web).is_none(),
                "not mounted: nothing counts"
            );
            start(web.clone(), ruleset());
            let made = take(&web).expect("started").expect("made");
            mounted(handle, made);
            assert!(
                LOADING.lock().unwrap().is_some(),
                "mounted: its load counts"
            );
            let _ = ruleset_loaded(&web);
            assert!(LOADING.lock().unwrap().is_none(), "asked for once");
            start(web.clone(), ruleset());
            let made = take(&web).expect("started").expect("made");
            mounted(handle, made);
            forget(handle);
            assert!(
                LOADING.lock().unwrap().is_none(),
                "the handle made or removed again: its load no longer counts"
            );

            // A handle (any file) already there: nothing is started.
            let dir = std::env::temp_dir().join(format!("netprov-ahead-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("ahead-web"), "").unwrap();
            start_for(r#"{"id": "ahead-web"}"#, &dir);
            assert!(take(&web).is_none(), "a handle is there");
            std::fs::remove_dir_all(&dir).unwrap();
            start_for(r#"{"id": "ahead-web"}"#, &dir);
            assert!(take(&web).expect("no handle: started").is_ok());
        });
    }

    #[test]
    fn only_a_netns_netprov_creates_is_made_ahead() {
        let id =
            |t: &str| owned(t.as_bytes()).map(|(i, r)| (i.as_str().to_string(), r.map(|r| r.text)));
        let web = |r: Option<&str>| Some(("web".to_string(), r.map(str::to_string)));
        assert_eq!(id(r#"{"id": "web"}"#), web(None));
        assert_eq!(id(r#"{"id": "web", "network": null}"#), web(None));
        assert_eq!(
            id(r#"{"network": {"netns_path": "", "interfaces": {}, "nft": ""}, "id": "web"}"#),
            web(None)
        );
        assert_eq!(
            id(r#"{"id": "web", "network": {"nft": "table inet t {}"}}"#),
            web(Some("table inet t {}"))
        );
        // adopted: never
        assert_eq!(
            id(r#"{"id": "web", "network": {"netns_path": "/run/netns/x"}}"#),
            None
        );
        // not a valid id, not JSON, not an object, no id, wrong types: the apply
        // reports it
        for bad in [
            r#"{"id": "../x"}"#,
            r#"{"id": ""}"#,
            r#"{"id": 5}"#,
            r#"{"network": {}}"#,
            "[1]",
            "{",
            r#"{"id": "web", "network": {"netns_path": 3}}"#,
            r#"{"id": "web", "network": {"nft": 3}}"#,
        ] {
            assert_eq!(id(bad), None, "{bad}");
        }
    }
}
