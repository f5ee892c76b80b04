//! Builds the interposition shim (`shim/`, a cdylib) and leaves it in OUT_DIR, where
//! `src/guest/spawn.rs` embeds it (`include_bytes!`): `cargo run -- sim` and `cargo test` find
//! it on a fresh clone with no extra step.
//!
//! The shim is built by a nested cargo with a target directory of its own (the outer build
//! holds a lock on the main one), always in release mode, and without the outer build's flags: a
//! fuzzing or coverage build instruments the main crate, never a library preloaded into
//! someone else's program.

use std::path::{Path, PathBuf};
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
    let target_dir = shim_target_dir(&out);
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

/// Where the nested cargo builds the shim: `selectlab-shim/` beside the outer build's profile
/// directories, so that every profile's build (the README's `--release` demo, then `cargo
/// test`) shares one release build of the shim instead of building it again (13 s on a fresh
/// clone's first `cargo test`). The nested cargo locks that directory, so builds that run at
/// once take turns. When OUT_DIR is not laid out as
/// `<target>/<profile>/build/<package>/out`, the shim is built inside OUT_DIR.
fn shim_target_dir(out: &Path) -> PathBuf {
    let build = out.ancestors().nth(2);
    match build.and_then(Path::parent).and_then(Path::parent) {
        Some(target) if build.and_then(Path::file_name) == Some("build".as_ref()) => {
            target.join("selectlab-shim")
        }
        _ => out.join("shim-target"),
    }
}
