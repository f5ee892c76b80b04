//! Builds the interposition shim (`shim/`, a cdylib) and leaves it in OUT_DIR, where
//! `src/guest/spawn.rs` embeds it (`include_bytes!`): `cargo run -- sim` and `cargo test` find
//! it on a fresh clone with no extra step.
//!
//! The shim is built by a nested cargo with its own target directory (the outer build holds a
//! lock on the main one), always in release mode, and without the outer build's flags: a
//! fuzzing or coverage build instruments the main crate, never a library preloaded into
//! someone else's program.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    for watched in [
        "shim/src",
        "shim/Cargo.toml",
        "slot/src",
        "slot/Cargo.toml",
        "wire/src",
        "wire/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={watched}");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = out.join("shim-target");
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("shim/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_PROFILE_RELEASE_DEBUG")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the shim (shim/) failed");
    let built = target_dir.join("release/libselectlab_shim.so");
    std::fs::copy(&built, out.join("libselectlab_shim.so")).expect("the shim was built");
}
