//! The small part of `libnftables.h` netprov uses, and a safe context around it.
//!
//! libnftables is not safe to use from several threads or namespaces at once:
//!
//! * it keeps process-global state — most importantly the interface cache
//!   (`iface_cache`, a static list filled from a NETLINK_ROUTE dump of *the calling
//!   thread's* netns when a rule names an interface, released at the end of every run
//!   and in `nft_ctx_free`), plus the scanner/parser and symbol tables set up by
//!   `nft_ctx_new`/freed by `nft_ctx_free`;
//! * when it cannot open, bind or talk on a netlink socket (`netlink_init_error`, e.g.
//!   in `nft_ctx_new` and `iface_cache_update`) or cannot allocate memory
//!   (`memory_allocation_error`), it prints a message and calls `exit()`.
//!
//! So every use goes through [`with_ctx`]:
//!
//! * a process-wide mutex serializes all libnftables calls: two runs never interleave,
//!   so one netns's interface cache can never be used for another netns;
//! * one context per call, created **and freed on the calling thread** while that
//!   thread is inside the target netns (`netns::in_netns`, or a thread that unshared a
//!   scratch netns): the context's netfilter socket and the interface dump are opened
//!   inside that netns, and nothing outlives the call;
//! * before creating the context we open and close a `NETLINK_NETFILTER` socket
//!   ourselves, so the common way to hit `exit()` (no socket: fd exhaustion) becomes an
//!   error instead. The remaining `exit()` paths (out of memory, a NETLINK_ROUTE socket
//!   failing between our probe and libnftables' own) cannot be intercepted without
//!   forking, which netprov does not do.
//!
//! Output and errors are buffered in memory (`nft_ctx_buffer_output/error`) and copied
//! out before the context is freed: libnftables writes nothing to our stdout/stderr.

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Mutex;

use nix::sys::memfd::{memfd_create, MFdFlags};

#[repr(C)]
struct NftCtxRaw {
    _opaque: [u8; 0],
}

/// libnftables, loaded on first use (`dlopen`), not linked: linking it makes the
/// dynamic loader map and relocate it and its dependencies (libxtables, libjansson,
/// libgmp) at every process start, ~0.4 ms here — more than a tenth of a no-op apply,
/// which never loads a ruleset. A build can name the library's full path with the
/// environment variable `NETPROV_LIBNFTABLES` at compile time (nix/package.nix does:
/// without a link-time dependency the Nix store path is in no search path); otherwise
/// the loader looks up `libnftables.so.1` as it would have at start.
const LIBNFTABLES_SONAME: &str = match option_env!("NETPROV_LIBNFTABLES") {
    Some(p) => p,
    None => "libnftables.so.1",
};

/// The libnftables entry points netprov calls, resolved once.
struct Api {
    ctx_new: unsafe extern "C" fn(u32) -> *mut NftCtxRaw,
    ctx_free: unsafe extern "C" fn(*mut NftCtxRaw),
    set_dry_run: unsafe extern "C" fn(*mut NftCtxRaw, bool),
    clear_include_paths: unsafe extern "C" fn(*mut NftCtxRaw),
    output_set_flags: unsafe extern "C" fn(*mut NftCtxRaw, c_uint),
    buffer_output: unsafe extern "C" fn(*mut NftCtxRaw) -> c_int,
    get_output_buffer: unsafe extern "C" fn(*mut NftCtxRaw) -> *const c_char,
    buffer_error: unsafe extern "C" fn(*mut NftCtxRaw) -> c_int,
    get_error_buffer: unsafe extern "C" fn(*mut NftCtxRaw) -> *const c_char,
    run_cmd_from_buffer: unsafe extern "C" fn(*mut NftCtxRaw, *const c_char) -> c_int,
    run_cmd_from_filename: unsafe extern "C" fn(*mut NftCtxRaw, *const c_char) -> c_int,
    /// The file the loader mapped (`dladdr`), when it says.
    path: Option<std::path::PathBuf>,
}

static API: std::sync::OnceLock<Result<Api, String>> = std::sync::OnceLock::new();

/// The loaded library, or why it could not be loaded (every later call says the same).
fn api() -> Result<&'static Api, CtxError> {
    API.get_or_init(load_api)
        .as_ref()
        .map_err(|cause| CtxError {
            cause: cause.clone(),
            errno: None,
        })
}

fn dlerror_text() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call.
    unsafe { cstr_lossy(libc::dlerror()) }
}

fn load_api() -> Result<Api, String> {
    prefault_heap();
    let name = CString::new(LIBNFTABLES_SONAME).map_err(|_| "bad libnftables path".to_owned())?;
    // SAFETY: plain dlopen by name; the handle is never closed (the symbols are used
    // for the life of the process). RTLD_NOW: a broken install fails here, with a
    // message, not at the first call of a missing symbol.
    let lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return Err(format!(
            "cannot load {LIBNFTABLES_SONAME}: {}",
            dlerror_text()
        ));
    }
    // SAFETY (every `symbol` call): it names a libnftables function whose C prototype
    // (libnftables.h) the receiving field's type spells.
    let ctx_new: unsafe extern "C" fn(u32) -> *mut NftCtxRaw =
        unsafe { symbol(lib, c"nft_ctx_new")? };
    Ok(Api {
        ctx_new,
        ctx_free: unsafe { symbol(lib, c"nft_ctx_free")? },
        set_dry_run: unsafe { symbol(lib, c"nft_ctx_set_dry_run")? },
        clear_include_paths: unsafe { symbol(lib, c"nft_ctx_clear_include_paths")? },
        output_set_flags: unsafe { symbol(lib, c"nft_ctx_output_set_flags")? },
        buffer_output: unsafe { symbol(lib, c"nft_ctx_buffer_output")? },
        get_output_buffer: unsafe { symbol(lib, c"nft_ctx_get_output_buffer")? },
        buffer_error: unsafe { symbol(lib, c"nft_ctx_buffer_error")? },
        get_error_buffer: unsafe { symbol(lib, c"nft_ctx_get_error_buffer")? },
        run_cmd_from_buffer: unsafe { symbol(lib, c"nft_run_cmd_from_buffer")? },
        run_cmd_from_filename: unsafe { symbol(lib, c"nft_run_cmd_from_filename")? },
        path: loaded_from(ctx_new as *const libc::c_void),
    })
}

/// The path of the object that defines `addr`.
fn loaded_from(addr: *const libc::c_void) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: dladdr fills `info` for an address inside a loaded object; dli_fname is
    // then a NUL-terminated string owned by the loader (copied out at once).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let p = CStr::from_ptr(info.dli_fname).to_bytes();
        Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p)))
    }
}

/// The file libnftables was loaded from, once it is loaded (`None` before, or when the
/// loader does not say).
pub fn library_path() -> Option<&'static std::path::Path> {
    API.get()?.as_ref().ok()?.path.as_deref()
}

/// Faults in the top of the heap in one call, before libnftables first runs.
///
/// Why: libnftables (1.0.x) gives each of its caches — per table: chains, sets,
/// objects, flowtables; and the tables themselves — a hash table of 8192 list heads
/// (128 KiB) and writes every head, so even a one-table ruleset touches about 1.2 MiB
/// of fresh heap page by page: ~300 page faults, measured as half of a cold apply's
/// page faults and most of its libnftables time. `MADV_POPULATE_WRITE` (Linux 5.14)
/// makes the same pages present in one system call; the block is then freed back to
/// the top of the heap (main.rs keeps the heap untrimmed and serves such sizes from
/// it, not from mmap), where libnftables' allocations find it. On an older kernel
/// the madvise fails and nothing changes.
fn prefault_heap() {
    // About ten caches: a ruleset of one or two tables. Measured (libnftables 1.0.6,
    // this sandbox): 0.2 ms to populate 1.25 MiB against 0.35 ms of page faults for
    // the same pages; a larger block costs more than it saves.
    const BLOCK: usize = 1280 << 10;
    // SAFETY: a plain allocation, advised and freed; nothing reads it.
    unsafe {
        let p = libc::malloc(BLOCK);
        if p.is_null() {
            return;
        }
        let page = 4096usize;
        let start = (p as usize).div_ceil(page) * page;
        let end = (p as usize + BLOCK) / page * page;
        libc::madvise(
            start as *mut libc::c_void,
            end - start,
            libc::MADV_POPULATE_WRITE,
        );
        libc::free(p);
    }
}

/// The symbol `name` of `lib` as a `T`.
///
/// # Safety
///
/// `T` must be the `unsafe extern "C" fn` type of the C function named `name`.
unsafe fn symbol<T: Copy>(lib: *mut libc::c_void, name: &CStr) -> Result<T, String> {
    assert_eq!(
        std::mem::size_of::<T>(),
        std::mem::size_of::<*mut libc::c_void>()
    );
    // SAFETY: lib is a live handle; name is NUL-terminated.
    let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
    if p.is_null() {
        return Err(format!(
            "{LIBNFTABLES_SONAME} has no {}: {}",
            name.to_string_lossy(),
            dlerror_text()
        ));
    }
    // SAFETY: a non-null function address, as a function pointer of the caller's type.
    Ok(unsafe { std::mem::transmute_copy::<*mut libc::c_void, T>(&p) })
}

/// `NFT_CTX_OUTPUT_STATELESS`: omit counters, quotas and other state that changes by
/// itself (so a listing is stable while traffic flows).
pub const OUTPUT_STATELESS: u32 = 1 << 2;
/// `NFT_CTX_OUTPUT_TERSE`: omit set elements (dynamic sets fill themselves).
pub const OUTPUT_TERSE: u32 = 1 << 11;

static LIBNFTABLES: Mutex<()> = Mutex::new(());

/// What one `nft_run_cmd_from_buffer` call produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunResult {
    /// 0 on success.
    pub rc: i32,
    pub output: String,
    pub error: String,
}

/// One libnftables context, alive only inside [`with_ctx`].
pub struct Ctx {
    raw: NonNull<NftCtxRaw>,
    api: &'static Api,
}

impl Ctx {
    pub fn set_dry_run(&mut self, dry: bool) {
        // SAFETY: raw is a live context owned by this thread.
        unsafe { (self.api.set_dry_run)(self.raw.as_ptr(), dry) }
    }

    pub fn set_output_flags(&mut self, flags: u32) {
        // SAFETY: as above.
        unsafe { (self.api.output_set_flags)(self.raw.as_ptr(), flags) }
    }

    /// Runs `cmds` (nft syntax, possibly many commands) as one transaction.
    pub fn run(&mut self, cmds: &str) -> RunResult {
        let Ok(buf) = CString::new(cmds) else {
            return RunResult {
                rc: -1,
                output: String::new(),
                error: "the ruleset contains a NUL byte".into(),
            };
        };
        // SAFETY: raw is live; buf is NUL-terminated and outlives the call; the buffers
        // returned by get_*_buffer are valid until the next run or free, and we copy them.
        unsafe {
            let rc = (self.api.run_cmd_from_buffer)(self.raw.as_ptr(), buf.as_ptr());
            let output = cstr_lossy((self.api.get_output_buffer)(self.raw.as_ptr()));
            let error = cstr_lossy((self.api.get_error_buffer)(self.raw.as_ptr()));
            RunResult { rc, output, error }
        }
    }

    /// Like [`Ctx::run`], but hands the text to libnftables as a file (an anonymous
    /// memfd read through `/proc/self/fd/N`): for buffers libnftables prints errors
    /// without a location, for files it prints `FILE:LINE:COLS: Error: …`. The file
    /// name is replaced by `nft` in the returned error text.
    pub fn run_as_file(&mut self, cmds: &str) -> RunResult {
        let file = match memfd_create(c"netprov-nft", MFdFlags::MFD_CLOEXEC) {
            Ok(fd) => std::fs::File::from(fd),
            Err(e) => {
                return RunResult {
                    rc: -1,
                    output: String::new(),
                    error: format!("memfd_create: {}", std::io::Error::from(e)),
                }
            }
        };
        let fd = file.as_raw_fd();
        if let Err(e) = (&file).write_all(cmds.as_bytes()) {
            return RunResult {
                rc: -1,
                output: String::new(),
                error: format!("write memfd: {e}"),
            };
        }
        let path = format!("/proc/self/fd/{fd}");
        let cpath = CString::new(path.clone()).expect("no NUL in a path we built");
        // SAFETY: raw is live; cpath outlives the call; buffers copied as in run().
        let mut res = unsafe {
            let rc = (self.api.run_cmd_from_filename)(self.raw.as_ptr(), cpath.as_ptr());
            let output = cstr_lossy((self.api.get_output_buffer)(self.raw.as_ptr()));
            let error = cstr_lossy((self.api.get_error_buffer)(self.raw.as_ptr()));
            RunResult { rc, output, error }
        };
        drop(file);
        res.error = res.error.replace(&path, "nft");
        res
    }
}

/// A copy of a C string (empty for NULL), from libnftables or libnftnl.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that stays valid during the call.
pub(super) unsafe fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: per the contract.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: created by nft_ctx_new on this thread, freed exactly once.
        unsafe { (self.api.ctx_free)(self.raw.as_ptr()) }
    }
}

/// Why a context could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtxError {
    pub cause: String,
    pub errno: Option<i32>,
}

/// Runs `f` with a fresh context on the current thread, holding the global libnftables
/// lock. The caller must be on a thread inside the intended netns.
pub fn with_ctx<T>(f: impl FnOnce(&mut Ctx) -> T) -> Result<T, CtxError> {
    // A poisoned lock only means another call panicked; libnftables itself holds no
    // state across contexts that the panic could have corrupted.
    let _guard = LIBNFTABLES.lock().unwrap_or_else(|p| p.into_inner());
    probe_netfilter_socket()?;
    new_ctx(f)
}

/// Proof that the calling thread holds the process-wide libnftables lock.
pub struct Locked(());

impl Locked {
    /// A fresh context, for a caller that holds a netfilter socket of its own open in
    /// this netns (the probe's purpose is served: a socket could be made). Saves a
    /// socket; each netfilter socket's close may wait for the kernel's nf_tables
    /// destroy work.
    pub fn ctx<T>(&self, f: impl FnOnce(&mut Ctx) -> T) -> Result<T, CtxError> {
        new_ctx(f)
    }
}

/// Runs `f` holding the libnftables lock without loading libnftables: for work that
/// must not interleave with a libnftables run in this process (reading a netns's
/// generation and committing the load that records it), and may not need the library
/// at all (a cached batch, `ruleset::compiled`).
pub fn locked<T>(f: impl FnOnce(&Locked) -> T) -> T {
    let _guard = LIBNFTABLES.lock().unwrap_or_else(|p| p.into_inner());
    f(&Locked(()))
}

fn new_ctx<T>(f: impl FnOnce(&mut Ctx) -> T) -> Result<T, CtxError> {
    let api = api()?;
    // SAFETY: plain constructor; NULL on allocation failure.
    let raw = NonNull::new(unsafe { (api.ctx_new)(0) }).ok_or(CtxError {
        cause: "nft_ctx_new failed".into(),
        errno: None,
    })?;
    let mut ctx = Ctx { raw, api };
    // Defence in depth behind nft/include.rs (which refuses `include` before any text
    // gets here): no include search path, so no relative include resolves (the
    // default path is /etc).
    // SAFETY: live context.
    unsafe { (api.clear_include_paths)(ctx.raw.as_ptr()) };
    // SAFETY: live context. Both return 0 on success.
    let ok = unsafe {
        (api.buffer_output)(ctx.raw.as_ptr()) == 0 && (api.buffer_error)(ctx.raw.as_ptr()) == 0
    };
    if !ok {
        return Err(CtxError {
            cause: "cannot buffer libnftables output".into(),
            errno: None,
        });
    }
    Ok(f(&mut ctx))
}

/// Opens and closes a netfilter netlink socket: libnftables `exit()`s when it cannot.
fn probe_netfilter_socket() -> Result<(), CtxError> {
    match super::netlink::NfSocket::open() {
        Ok(_closed_on_drop) => Ok(()),
        Err(e) => Err(CtxError {
            cause: format!("cannot open a netfilter netlink socket: {e}"),
            errno: e.raw_os_error(),
        }),
    }
}
