//! The determinism lint's two clippy.toml files stay in step. Clippy reads the
//! nearest clippy.toml and has no include, so `core/clippy.toml` (also `esper-sim`'s,
//! through the symlink `sim/clippy.toml`) repeats the root file's list before its
//! own stricter entries; an entry added to the root file alone would quietly not
//! apply to the two crates that run under the sim.

mod support;

use support::workspace_file;

/// The `{ path = "…", … }` entries of a clippy.toml, one per line as written.
fn entries(relative: &str) -> Vec<String> {
    let path = workspace_file(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    text.lines().map(str::trim).filter(|line| line.starts_with("{ path = ")).map(str::to_owned).collect()
}

#[test]
fn core_and_sim_lint_every_entry_of_the_root_list() {
    let root = entries("clippy.toml");
    assert!(root.len() >= 10, "the root list is read: {root:?}");
    for sim_crate in ["core/clippy.toml", "sim/clippy.toml"] {
        let strict = entries(sim_crate);
        let missing: Vec<&String> = root.iter().filter(|entry| !strict.contains(entry)).collect();
        assert!(missing.is_empty(), "{sim_crate} lacks entries of the root clippy.toml: {missing:#?}");
    }
}

#[test]
fn core_and_sim_also_ban_env_threads_process_ids_and_platform_maths() {
    for sim_crate in ["core/clippy.toml", "sim/clippy.toml"] {
        let strict = entries(sim_crate).join("\n");
        for path in [
            "std::env::var",
            "std::env::vars",
            "std::thread::spawn",
            "std::process::id",
            "std::time::SystemTime",
            "tokio::task::block_in_place",
            "f64::exp",
            "f32::ln",
            "f32::tanh",
            "f64::cos",
            "f64::powf",
        ] {
            assert!(strict.contains(&format!("{{ path = \"{path}\",")), "{sim_crate} does not ban {path}");
        }
    }
}
