//! The netns ownership mark: set whenever netprov's handle exists, added to an older
//! netprov's netns, required to reuse a handle.

use super::*;

/// The mark exists from the moment the handle is visible: after a crash at any step
/// (fault injection) and after real SIGKILLs at generated moments, a `/run/netns/<id>`
/// that exists carries the mark, and the next apply converges.
#[test]
fn a_netprov_netns_is_marked_whenever_its_handle_exists() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("m");
    let f = dir.write_props(&props(&id, &unique("v"), 5, json!({})));
    let handle = Path::new("/run/netns").join(&id);
    let marked = |when: &str| {
        if netprov::kernel::netns_owner::is_handle(&handle) {
            let lo = lo_alias(&id);
            assert!(
                lo.contains(&format!("alias netprov-netns:{id}")),
                "{when}: {lo}"
            );
        }
    };
    for k in 1..4 {
        let o = host.netprov(&["apply", "--fail-after", &k.to_string(), &f]);
        assert_eq!(code(&o), 1, "{}", text(&o));
        marked(&format!("fail-after {k}"));
        assert_eq!(code(&host.netprov(&["apply", &f])), 0);
        assert_eq!(code(&host.netprov(&["destroy", &id])), 0);
        assert!(!handle.exists());
    }
    // Kill moments spread over the first milliseconds, where the netns is made.
    let mut seed = 0x9e37_79b9u32;
    for _ in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let micros = u64::from(seed % 8000);
        let bin = testkit::netprov_bin();
        let mut child = host
            .cmd(bin.to_str().unwrap(), &["apply", &f])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(micros));
        let _ = child.kill();
        let _ = child.wait();
        marked(&format!("SIGKILL after {micros} µs"));
        let o = host.netprov(&["apply", &f]);
        assert_eq!(code(&o), 0, "after SIGKILL at {micros} µs: {}", text(&o));
        host.ok("ping", &["-c1", "-W2", "10.79.5.2"]);
        assert_eq!(code(&host.netprov(&["destroy", &id])), 0);
        assert!(!handle.exists());
    }
}

/// A netns made by a netprov that did not mark (its links carry this container's alias)
/// is netprov's: apply marks it, in one step, and destroy removes it.
#[test]
fn an_unmarked_netns_of_an_older_netprov_is_marked_on_apply() {
    let mut host = HostNetns::new();
    let dir = Dir::new();
    let id = host.new_id("u");
    let f = dir.write_props(&props(&id, &unique("v"), 6, json!({})));
    assert_eq!(code(&host.netprov(&["apply", &f])), 0);
    // What an older netprov left: no mark on lo.
    ns(&id, "ip", &["link", "set", "lo", "alias", ""]);
    assert!(!lo_alias(&id).contains("alias"), "{}", lo_alias(&id));
    let o = host.netprov(&["check", &f]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    let o = host.netprov(&["apply", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("applied 1 changes"),
        "{}",
        text(&o)
    );
    assert!(lo_alias(&id).contains(&format!("alias netprov-netns:{id}")));
    assert_eq!(code(&host.netprov(&["destroy", &id])), 0);
    assert!(!Path::new("/run/netns").join(&id).exists());
}

/// `create_handle` itself: a new netns is marked; a netns mounted at the path since it
/// was observed (a concurrent run) is reused only with this container's mark.
#[test]
fn create_handle_marks_and_reuses_only_a_marked_netns() {
    use netprov::kernel::netns::{create_handle, remove_handle};
    use netprov::model::ContainerId;
    let mut host = HostNetns::new();
    let id = host.new_id("r");
    let cid = ContainerId::new(&id).unwrap();
    let path = Path::new("/run/netns").join(&id);
    create_handle(&path, &cid).unwrap();
    assert!(lo_alias(&id).contains(&format!("alias netprov-netns:{id}")));
    create_handle(&path, &cid).unwrap();
    let other = ContainerId::new(&unique("r")).unwrap();
    let e = create_handle(&path, &other).unwrap_err().to_string();
    assert!(
        e.contains(&format!("netprov's netns of container {id}")),
        "{e}"
    );
    remove_handle(&path).unwrap();
    ok("ip", &["netns", "add", &id]);
    let e = create_handle(&path, &cid).unwrap_err().to_string();
    assert!(e.contains("no owner mark"), "{e}");
    assert!(!lo_alias(&id).contains("alias"));
}
