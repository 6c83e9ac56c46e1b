//! Exports the executable's `sendmsg` and `getaddrinfo` to the libraries it loads (see src/main.rs and
//! src/nft/capture.rs): an executable exports no symbols unless told to.
fn main() {
    for sym in ["sendmsg", "getaddrinfo"] {
        println!("cargo:rustc-link-arg-bin=netprov=-Wl,--export-dynamic-symbol={sym}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
