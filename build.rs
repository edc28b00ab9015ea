//! Exports the daemon's `connect` so that the libraries' calls resolve to it
//! (see src/tcp_nodelay.rs for why). rustc exports `#[no_mangle]` items of an
//! executable today; saying so here keeps it true if that default changes.
fn main() {
    println!("cargo:rustc-link-arg-bin=farmcast=-Wl,--export-dynamic-symbol=connect");
    println!("cargo:rerun-if-changed=build.rs");
}
