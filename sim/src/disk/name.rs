//! `Name`: a path as the disk's namespace keys it.
//!
//! The namespace maps are ordered (a crash walks the durable names in order, drawing
//! from the disk's stream per file, and `list` answers in order), and `Path`'s order
//! compares component by component, parsing both paths on every comparison: with a
//! few hundred files that parsing was a fifth of a Urza-heavy run's instructions
//! (`ci/bench/run --callgrind`). A `Name` carries its components encoded once into
//! bytes whose plain byte order is exactly `Path`'s order, so a map lookup compares
//! with `memcmp` and the maps iterate in the same order as before.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::path::{Component, Path, PathBuf};

/// Separates encoded components; no component's bytes contain it (Unix paths hold no NUL).
const SEPARATOR: u8 = 0;
/// The tag of `.`, which is also the whole key of the path `.`.
const CURRENT_DIR: u8 = 3;

/// A path and its order-preserving key (see the module docs).
#[derive(Debug, Clone)]
pub(super) struct Name {
    key: Vec<u8>,
    path: PathBuf,
}

impl Name {
    pub(super) fn new(path: &Path) -> Self {
        Self { key: key_of(path), path: path.to_path_buf() }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The key of the directory holding this name, as `storage::parent_dir` names
    /// it, cut from this key rather than parsed again: the key up to its last
    /// separator (`Path::parent` drops the last component), or `.`'s key for a name
    /// of one component or none.
    pub(super) fn parent_key(&self) -> Vec<u8> {
        match self.key.iter().rposition(|&byte| byte == SEPARATOR) {
            Some(end) => self.key[..end].to_vec(),
            None => vec![CURRENT_DIR],
        }
    }
}

/// The key of `path`: each component as a tag byte in `Component`'s variant order
/// (root, `.`, `..`, then a normal name followed by its bytes), components joined by
/// [`SEPARATOR`]. Byte order of keys equals `Path`'s order: up to the first component
/// that differs the keys agree; there the tags decide, or for two names their bytes,
/// a name that is a prefix of the other sorting first as the separator (or the key's
/// end) sorts below every byte a name can hold; a path that runs out of components
/// first is a prefix of the other key.
pub(super) fn key_of(path: &Path) -> Vec<u8> {
    let mut key = Vec::with_capacity(path.as_os_str().len() + 4);
    for (index, component) in path.components().enumerate() {
        if index > 0 {
            key.push(SEPARATOR);
        }
        match component {
            // Windows drive prefixes: this disk models a Unix file system.
            Component::Prefix(prefix) => {
                key.push(1);
                key.extend_from_slice(prefix.as_os_str().as_encoded_bytes());
            }
            Component::RootDir => key.push(2),
            Component::CurDir => key.push(CURRENT_DIR),
            Component::ParentDir => key.push(4),
            Component::Normal(name) => {
                key.push(5);
                key.extend_from_slice(name.as_encoded_bytes());
            }
        }
    }
    key
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// Lets the maps be searched with a bare key (`map.get(key_of(path).as_slice())`).
impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The maps must iterate exactly as they did keyed by `PathBuf`: a crash draws
    /// from the disk's stream per file in this order, and `list` answers in it.
    #[test]
    fn key_order_is_path_order() {
        let paths = [
            "a",
            "a.b",
            "a/b",
            "a/b/c",
            "a/bc",
            "a\u{1}/b",
            "ab",
            "a//b",
            "a/./b",
            "./a",
            ".",
            "..",
            "../a",
            "/",
            "/a",
            "/a/b",
            "b",
            "a/",
            "",
            "urza/kernels/k-1.bin",
            "urza/kernels/k-10.bin",
            "urza/kernels.tmp",
            "urza-x/a",
            "forge_wal.json",
            "forge_wal.json.tmp",
        ];
        for left in paths {
            for right in paths {
                let (left_path, right_path) = (Path::new(left), Path::new(right));
                assert_eq!(
                    key_of(left_path).cmp(&key_of(right_path)),
                    left_path.cmp(right_path),
                    "{left:?} vs {right:?}"
                );
                assert_eq!(Name::new(left_path) == Name::new(right_path), left_path == right_path);
            }
            let parent = esper_core::storage::parent_dir(Path::new(left));
            assert_eq!(Name::new(Path::new(left)).parent_key(), key_of(&parent), "parent of {left:?}");
        }
    }
}
