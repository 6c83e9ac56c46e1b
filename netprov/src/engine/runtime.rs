//! The engine's state: a private single-threaded tokio runtime, the one host-netns
//! netlink connection all containers share, and the options.

use std::fs::File;
use std::path::PathBuf;

use crate::error::OpError;
use crate::kernel::netlink::Netlink;
use crate::model::Desired;
use crate::ovsdb::Endpoint;

/// Engine options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The netns treated as "the host" (veth host ends, bridges); `None` = this
    /// process's own netns.
    pub host_netns: Option<PathBuf>,
    /// Fault injection: stop dead after this many executed steps, without rollback,
    /// like a SIGKILL.
    pub fail_after: Option<usize>,
    /// The OVSDB socket; `None` = the system's (`/run/openvswitch/db.sock`). Only
    /// connected to when a container has OVS interfaces (or on destroy, if it exists).
    pub ovsdb: Option<PathBuf>,
    /// Destroy returns once the container's netns is released, without waiting for the
    /// kernel's asynchronous netns cleanup to delete the veths' host ends (10–20 ms
    /// after, see `netns_release`); the report lists them in `host_ends_left_to_kernel`.
    /// The next apply of the same id is correct either way. Default (`false`): destroy
    /// returning means nothing is left.
    pub destroy_no_wait: bool,
}

/// The engine: its runtime, the host netns connection, options. Its operations are
/// in the files of `engine/` (plan and check in `mod.rs`, `apply.rs`, `stream.rs`,
/// `destroy/engine.rs`).
pub struct Engine {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) host: Netlink,
    /// The host netns, for moving links back on destroy.
    pub(super) host_ns: File,
    /// Its path, for threads that enter it (nftables).
    pub(super) host_path: PathBuf,
    pub(super) opts: Options,
    /// Test hook (see [`Engine::drop_step_for_tests`]); `usize::MAX`: off.
    pub(super) drop_step: std::sync::atomic::AtomicUsize,
    /// OVN Northbound endpoint and install timeout (see [`Engine::with_ovn`]).
    pub(super) ovn: crate::ovn::OvnOptions,
}

impl Engine {
    pub fn new(opts: Options) -> Result<Self, OpError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OpError::io("start async runtime", &e))?;
        let host = Netlink::open(opts.host_netns.as_deref(), "host netns".into())?;
        // /proc/self is the main thread: its netns is the process's.
        let opened = opts
            .host_netns
            .clone()
            .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
        let host_ns = File::open(&opened)
            .map_err(|e| OpError::io(format!("open host netns {}", opened.display()), &e))?;
        // Threads enter the host netns by this path. Not /proc/self/ns/net: that is
        // whatever netns the main thread is in at the moment, and the main thread enters
        // container netns briefly (see netns::in_netns). The open handle is stable.
        let host_path = match &opts.host_netns {
            Some(p) => p.clone(),
            None => PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&host_ns)
            )),
        };
        Ok(Self {
            rt,
            host,
            host_ns,
            host_path,
            opts,
            drop_step: std::sync::atomic::AtomicUsize::new(usize::MAX),
            ovn: Default::default(),
        })
    }

    /// Runs `f` on the engine's runtime on the calling thread, inside a
    /// [`crate::kernel::netns::Home`] scope: its visits of container netns return by a
    /// handle opened once, and its visits of the host netns from the host are none.
    pub(super) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        let _home = crate::kernel::netns::Home::enter(&self.host_path, &self.host_ns);
        self.rt.block_on(f)
    }

    /// Sets the OVN Northbound endpoint and install timeout (docs/ovn.md).
    pub fn with_ovn(mut self, ovn: crate::ovn::OvnOptions) -> Self {
        self.ovn = ovn;
        self
    }

    /// Fault injection for tests: in every pass of every apply, step `n` of the plan is
    /// not sent — a change the kernel silently lost. The verify loop must then repair
    /// it (when the next pass has fewer steps) or report the drift (`n = 0`: never
    /// converges).
    #[doc(hidden)]
    pub fn drop_step_for_tests(&self, n: Option<usize>) {
        self.drop_step.store(
            n.unwrap_or(usize::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    pub(super) fn container_conn(&self, d: &Desired) -> Result<Option<Netlink>, OpError> {
        let path = d.netns.path();
        // Never the host netns (also checked at validation, against this process's).
        crate::kernel::netns_owner::refuse_host(&d.id, path, &self.host_path)?;
        if let crate::model::NetnsSpec::Owned { .. } = d.netns {
            // /run/netns/<id> is checked without following a symlink; whether a netns
            // there is netprov's (its owner mark) is decided by the diff.
            if crate::kernel::netns_owner::handle(path)?
                != crate::kernel::netns_owner::Handle::Netns
            {
                return Ok(None);
            }
        }
        if !crate::kernel::netns_owner::is_handle(path) {
            return Ok(None);
        }
        Netlink::open(Some(path), format!("netns {}", d.id)).map(Some)
    }

    pub(super) fn endpoint(&self) -> Endpoint {
        match &self.opts.ovsdb {
            Some(p) => Endpoint::unix(p),
            None => Endpoint::system(),
        }
    }

    /// Netlink requests (reads and writes) sent in the host netns so far.
    pub fn host_requests(&self) -> usize {
        self.host.requests()
    }

    /// The host netns connection, its path, the runtime and the OVSDB endpoint, for
    /// the host-wide commands (`inventory.rs`).
    pub(crate) fn parts(
        &self,
    ) -> (
        &Netlink,
        &std::path::Path,
        &tokio::runtime::Runtime,
        Endpoint,
    ) {
        (&self.host, &self.host_path, &self.rt, self.endpoint())
    }
}
