//! The documents stay true to the tree: every path `ARCHITECTURE.md` names in
//! backticks exists, every relative link in `README.md`, `ARCHITECTURE.md` and
//! `docs/` resolves, and the two top-level documents stay short enough to read in
//! ten minutes (250 lines each; the detail lives in `docs/`).

use std::path::{Path, PathBuf};

/// The longest `README.md` and `ARCHITECTURE.md` may be.
const MAX_LINES: usize = 250;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The backticked spans of `text` that name a file or directory: they hold a `/`
/// or end in a file extension, and are not code (`::`, spaces, globs, options).
fn backticked_paths(text: &str) -> Vec<&str> {
    let spans = text.split('`').skip(1).step_by(2);
    spans
        .filter(|span| !span.is_empty() && !span.contains([' ', '*', '<', '{', '=', '$']) && !span.contains("::"))
        .filter(|span| !span.starts_with(['-', '.']) || span.starts_with(".github") || span.starts_with(".config"))
        .filter(|span| !span.contains("://"))
        .filter(|span| {
            let extension = Path::new(span).extension().and_then(|e| e.to_str());
            span.contains('/') || matches!(extension, Some("rs" | "md" | "toml" | "json" | "yml" | "yaml" | "sh"))
        })
        .collect()
}

/// The targets of the relative markdown links in `text` (`[words](target)`), without
/// their `#anchor`.
fn relative_links(text: &str) -> Vec<&str> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|target| !target.contains("://") && !target.starts_with('#') && !target.starts_with("mailto:"))
        .map(|target| target.split('#').next().unwrap_or(target))
        .filter(|target| !target.is_empty())
        .collect()
}

/// What in `text` (a document in `dir`) names something missing.
fn missing(text: &str, dir: &Path, root: &Path, backticks: bool) -> Vec<String> {
    let named = if backticks { backticked_paths(text) } else { Vec::new() };
    let from_root = named.into_iter().filter(|path| !root.join(path.trim_end_matches('/')).exists());
    let linked = relative_links(text).into_iter().filter(|target| !dir.join(target).exists());
    from_root.map(|path| format!("`{path}`")).chain(linked.map(|target| format!("link ({target})"))).collect()
}

#[test]
fn every_path_architecture_names_exists() {
    let root = repo("");
    let missing = missing(&read(&repo("ARCHITECTURE.md")), &root, &root, true);
    assert!(missing.is_empty(), "ARCHITECTURE.md names what the tree lacks: {missing:?}");
}

#[test]
fn every_relative_link_in_the_documents_resolves() {
    let root = repo("");
    let mut documents = vec![repo("README.md"), repo("ARCHITECTURE.md")];
    let docs = std::fs::read_dir(repo("docs")).expect("docs/ exists");
    documents
        .extend(docs.filter_map(Result::ok).map(|entry| entry.path()).filter(|p| p.extension() == Some("md".as_ref())));
    let broken: Vec<String> = documents
        .iter()
        .flat_map(|document| {
            let dir = document.parent().unwrap_or(&root);
            let name = document.strip_prefix(&root).unwrap_or(document).display().to_string();
            missing(&read(document), dir, &root, false).into_iter().map(move |what| format!("{name}: {what}"))
        })
        .collect();
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

#[test]
fn readme_and_architecture_stay_short() {
    for document in ["README.md", "ARCHITECTURE.md"] {
        let lines = read(&repo(document)).lines().count();
        assert!(lines <= MAX_LINES, "{document} has {lines} lines, over {MAX_LINES}: move the detail to docs/");
    }
}

/// The checks above would catch a stale path, a stale link and a code span taken
/// for a path.
#[test]
fn a_stale_path_or_link_is_reported_and_code_is_not_taken_for_a_path() {
    let root = repo("");
    let text = "`sim/src/fault.rs` `sim/src/gone.rs` `Fault::end()` `--seeds 0..8` `cargo run -- x` \
                [ok](docs/drills.md#replay) [gone](docs/nowhere.md) [web](https://example.com)";
    assert_eq!(missing(text, &root, &root, true), ["`sim/src/gone.rs`", "link (docs/nowhere.md)"]);
}
