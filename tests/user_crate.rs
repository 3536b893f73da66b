//! A crate that uses `cgnet!` needs only cgnet and cgnet-runtime (and their light
//! dependencies) at run time: the compiler, syn, quote, proc-macro2 and serde
//! run at build time only, inside the proc macro; weight files are read by
//! cgnet-runtime's own `.safetensors` reader (JSON by miniserde).

use std::path::Path;
use std::process::Command;

#[test]
fn a_user_crate_links_no_compiler_at_run_time() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"user\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ncgnet = {{ path = {:?} }}\n\n[workspace]\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("src/main.rs"),
        "cgnet::cgnet! { model M { input: 3 x 16 x 16, classes: 2 } }\nfn main() { let _ = M::ARENA_BYTES; }\n",
    )
    .unwrap();
    // The same dependency versions as this workspace.
    std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(dir.path())
        .args(["tree", "--offline", "-e", "normal,no-proc-macro", "--prefix", "none"])
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"cgnet") && crates.contains(&"cgnet-runtime"), "{tree}");
    for compiler in [
        "cgnet-codegen",
        "cgnet-dsl",
        "syn",
        "quote",
        "proc-macro2",
        "serde",
        "serde_json",
        "safetensors",
        "clap",
        "sha2",
    ] {
        assert!(!crates.contains(&compiler), "`{compiler}` is a run-time dependency of a user crate:\n{tree}");
    }
    eprintln!("run-time dependencies of a crate using cgnet!:\n{tree}");
}
