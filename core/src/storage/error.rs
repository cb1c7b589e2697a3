//! Storage errors, typed so callers can tell "disk full" from "disk broken".

use std::fmt;
use std::path::PathBuf;

/// The storage operation that failed, for error messages and fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageOp {
    /// Opening or creating a file.
    Open,
    /// Appending bytes.
    Append,
    /// Reading bytes.
    Read,
    /// Asking a file's length.
    Len,
    /// Truncating a file.
    Truncate,
    /// fsync of a file.
    Sync,
    /// Renaming a file.
    Rename,
    /// Removing a file.
    Remove,
    /// Listing a directory.
    List,
    /// Creating a directory.
    CreateDir,
    /// fsync of a directory.
    SyncDir,
}

impl fmt::Display for StorageOp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Open => "open",
            Self::Append => "append",
            Self::Read => "read",
            Self::Len => "len",
            Self::Truncate => "truncate",
            Self::Sync => "fsync",
            Self::Rename => "rename",
            Self::Remove => "remove",
            Self::List => "list",
            Self::CreateDir => "create_dir",
            Self::SyncDir => "fsync_dir",
        };
        formatter.write_str(name)
    }
}

/// A failed storage operation. `Clone` so one failed fsync can be reported to every
/// append waiting on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The file does not exist.
    #[error("{op} {path}: no such file")]
    NotFound {
        /// The missing file.
        path: PathBuf,
        /// What was attempted.
        op: StorageOp,
    },
    /// The device refused the write for lack of space (ENOSPC).
    #[error("{op} {path}: no space left on device (writing {len} bytes)")]
    NoSpace {
        /// The file being written.
        path: PathBuf,
        /// What was attempted.
        op: StorageOp,
        /// How many bytes the write needed.
        len: u64,
    },
    /// A read asked for bytes past the end of the file.
    #[error("read {path}: {len} bytes at offset {offset} run past the end of the file ({file_len} bytes)")]
    OutOfRange {
        /// The file read.
        path: PathBuf,
        /// Requested start.
        offset: u64,
        /// Requested length.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A truncation asked to grow the file: it is shorter than the caller
    /// believed (cut from outside the process).
    #[error("truncate {path} to {len} bytes: the file is only {file_len} bytes (shortened from outside?)")]
    TruncateBeyondEnd {
        /// The file.
        path: PathBuf,
        /// The length asked for.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A whole-file read refused a file larger than the caller's bound.
    #[error("read {path}: file is {len} bytes, over the limit of {limit_bytes}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The bound.
        limit_bytes: u64,
    },
    /// The handle was opened before a crash of the (simulated) machine.
    #[error("{op} {path}: stale handle, opened before the disk crashed")]
    Stale {
        /// The file.
        path: PathBuf,
        /// What was attempted.
        op: StorageOp,
    },
    /// Any other I/O failure (EIO and friends).
    #[error("{op} {path}: I/O error: {detail}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was attempted.
        op: StorageOp,
        /// The operating system's (or the sim's) description.
        detail: String,
    },
}

impl StorageError {
    /// Maps an `std::io::Error` from operation `op` on `path`.
    pub fn from_io(error: &std::io::Error, op: StorageOp, path: impl Into<PathBuf>, len: u64) -> Self {
        let path = path.into();
        match error.kind() {
            std::io::ErrorKind::NotFound => Self::NotFound { path, op },
            std::io::ErrorKind::StorageFull => Self::NoSpace { path, op, len },
            _ => Self::Io { path, op, detail: error.to_string() },
        }
    }
}
