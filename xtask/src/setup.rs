//! Build prerequisites that cargo cannot fetch: libclang for RocksDB's bindgen step (and
//! a C++ compiler, which every machine of ours has), and `protoc` for the third-party
//! `etcd-client` crate the server's integration tests talk through (our own crates
//! generate their code without it).
//!
//! On a fresh Debian machine running as root, the missing package is installed with
//! apt-get; otherwise the exact command is printed and the task stops, so nothing is
//! installed behind the user's back.

use std::env;
use std::path::Path;
use std::process::Command;

/// Directories where Debian and most distributions put `libclang.so`.
const LIBCLANG_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
];

/// A prerequisite: what needs it, how to tell it is there, which Debian packages bring it.
struct Prerequisite {
    what: &'static str,
    needed_by: &'static str,
    present: fn() -> bool,
    packages: &'static [&'static str],
}

const PREREQUISITES: &[Prerequisite] = &[
    Prerequisite {
        what: "libclang",
        needed_by: "RocksDB's Rust binding",
        present: libclang_present,
        packages: &["libclang-dev", "clang"],
    },
    Prerequisite {
        what: "protoc",
        needed_by: "the etcd-client crate (used by the integration tests)",
        present: protoc_present,
        packages: &["protobuf-compiler"],
    },
];

/// Makes sure every prerequisite is available, installing it when we may.
pub fn ensure_build_prerequisites() -> Result<(), String> {
    ensure(PREREQUISITES)
}

/// Makes sure what building the server needs (not the tests) is available.
pub fn ensure_server_prerequisites() -> Result<(), String> {
    ensure(&PREREQUISITES[..1])
}

fn ensure(prerequisites: &[Prerequisite]) -> Result<(), String> {
    for p in prerequisites {
        if (p.present)() {
            continue;
        }
        let install = format!(
            "apt-get update && apt-get install -y {}",
            p.packages.join(" ")
        );
        if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
            return Err(format!(
                "{} needs {} at build time and it is not installed.\n\
                 Install it, then run the command again:\n    sudo sh -c '{install}'",
                p.needed_by, p.what
            ));
        }
        eprintln!("xtask: {} is missing; installing it: {install}", p.what);
        let status = Command::new("sh")
            .args(["-c", &install])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("could not run apt-get: {e}"))?;
        if !status.success() || !(p.present)() {
            return Err(format!("`{install}` did not provide {} ({status})", p.what));
        }
    }
    Ok(())
}

fn protoc_present() -> bool {
    let protoc = env::var("PROTOC").unwrap_or_else(|_| "protoc".to_string());
    Command::new(protoc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn libclang_present() -> bool {
    if let Ok(dir) = env::var("LIBCLANG_PATH") {
        if dir_has_libclang(Path::new(&dir)) {
            return true;
        }
    }
    let llvm_dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
        .map(|e| e.path().join("lib"));
    LIBCLANG_DIRS
        .iter()
        .map(|d| Path::new(d).to_path_buf())
        .chain(llvm_dirs)
        .any(|d| dir_has_libclang(&d))
}

fn dir_has_libclang(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libclang")
                && name.contains(".so")
                && !name.starts_with("libclang-cpp")
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
