//! Hostile files and streams: an `include` refused without reading the file, a props
//! path that is not a regular file or is too large, a closed stdout and a full stderr.

use super::*;

/// `include` is refused before libnftables could read the file: its content appears
/// nowhere, and `/dev/zero` does not hang.
#[test]
fn include_is_refused_without_reading_the_file() {
    let host = HostNetns::new();
    let dir = Dir::new();
    let secret = format!("SECRET-{}", unique("s"));
    let secret_file = dir.write_text("secret.nft", &format!("{secret} line one\n"));
    for target in [secret_file.as_str(), "/dev/zero", "secret.nft"] {
        for nft in [
            format!("include \"{target}\"\n"),
            format!("table inet t {{\n  include \"{target}\"\n}}\n"),
        ] {
            let f = dir.write(
                "inc.json",
                &json!({ "id": unique("c"), "network": { "nft": nft } }),
            );
            for cmd in ["validate", "apply"] {
                let out = netprov_guarded(&host, &["--json", cmd, &f]);
                assert_eq!(code(&out), 2, "{}", text(&out));
                assert_eq!(error_paths(&out), ["network.nft"], "{}", text(&out));
                assert!(!text(&out).contains(&secret), "{}", text(&out));
                assert!(
                    text(&out).contains("`include` is not allowed"),
                    "{}",
                    text(&out)
                );
            }
        }
    }
}

/// A FIFO, a device, a directory or a socket as the props file exits 2 at once; so does
/// a regular file over the 2 MiB limit.
#[test]
fn props_must_be_a_regular_file_within_the_limit() {
    let host = HostNetns::new();
    let dir = Dir::new();
    let fifo = dir.path("fifo.json");
    let c = std::ffi::CString::new(fifo.clone()).unwrap();
    // SAFETY: plain syscall on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let sock = dir.path("sock.json");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let big = dir.write_text("big.json", &" ".repeat((2 << 20) + 1));
    for (p, why) in [
        (fifo.as_str(), "a FIFO"),
        ("/dev/zero", "a character device"),
        (dir.0.to_str().unwrap(), "a directory"),
        (sock.as_str(), "No such device"),
        (big.as_str(), "larger than 2097152 bytes"),
    ] {
        for cmd in ["validate", "apply", "plan", "check", "destroy"] {
            let out = netprov_guarded(&host, &[cmd, p]);
            assert_eq!(code(&out), 2, "{cmd} {p}: {}", text(&out));
            // destroy takes an argument not ending in .json that is no regular file
            // for a container id (and refuses it as one).
            if cmd != "destroy" || p.ends_with(".json") {
                assert!(text(&out).contains(why), "{cmd} {p}: {}", text(&out));
            }
        }
    }
}

/// `netprov apply f | head -0`: the pipe is closed before netprov prints; the work is
/// done and the exit code is the work's. `-v destroy f 2>/dev/full`: every log line
/// fails to write; destroy still completes.
#[test]
fn closed_stdout_and_full_stderr_do_not_stop_the_work() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("c");
    let f = dir.write("c.json", &props(&id, 2));
    let bin = testkit::netprov_bin();

    let log = dir.path("apply.log");
    let mut apply = host
        .cmd(bin.to_str().unwrap(), &["-v", "apply", &f])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    drop(apply.stdout.take()); // `head -0`: the reader is gone before the first write.
    wait_guarded(&mut apply, &["apply"]);
    let status = apply.wait().unwrap();
    let mut stderr = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The work is done: the container answers.
    host.ok("ping", &["-c1", "-W2", "10.78.2.2"]);

    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut destroy = host
        .cmd(bin.to_str().unwrap(), &["-vvv", "destroy", &f])
        .stdout(full())
        .stderr(full())
        .spawn()
        .unwrap();
    wait_guarded(&mut destroy, &["destroy"]);
    assert_eq!(destroy.wait().unwrap().code(), Some(0));
    assert!(!Path::new("/run/netns").join(&id).exists());
    let links = host.ok("ip", &["-o", "link"]);
    assert!(!links.contains(&format!("np-{id}")), "{links}");
    let ruleset = host.ok("nft", &["list", "ruleset"]);
    assert!(!ruleset.contains(&id), "{ruleset}");
}
