//! `RealStorage`: the local file system.
//!
//! Each operation is a plain blocking function (`*_blocking`) that the async
//! [`Storage`] methods call inline. The functions are public so a real-profile
//! caller that must keep its executor free (`esper up`, whose HTTP and heartbeats
//! share a thread with the storage users) can run them on a blocking thread
//! instead; `esper-core` itself never leaves the calling task (see the module
//! docs of `storage`).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use super::{OpenMode, Storage, StorageError, StorageFile, StorageOp};

/// Files on the local file system. Paths are used as given (relative paths resolve
/// against the process's working directory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RealStorage;

/// An open file on the local file system.
#[derive(Debug)]
pub struct RealFile {
    path: PathBuf,
    file: File,
}

fn io_error(op: StorageOp, path: &Path, len: u64) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |error| StorageError::from_io(&error, op, path, len)
}

impl RealStorage {
    /// [`Storage::open`], blocking the calling thread.
    pub fn open_blocking(path: &Path, mode: OpenMode) -> Result<RealFile, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(mode == OpenMode::Create)
            .open(path)
            .map_err(io_error(StorageOp::Open, path, 0))?;
        Ok(RealFile { path: path.to_path_buf(), file })
    }

    /// [`Storage::rename`], blocking the calling thread.
    pub fn rename_blocking(from: &Path, to: &Path) -> Result<(), StorageError> {
        std::fs::rename(from, to).map_err(io_error(StorageOp::Rename, from, 0))
    }

    /// [`Storage::remove`], blocking the calling thread.
    pub fn remove_blocking(path: &Path) -> Result<(), StorageError> {
        std::fs::remove_file(path).map_err(io_error(StorageOp::Remove, path, 0))
    }

    /// [`Storage::list`], blocking the calling thread.
    pub fn list_blocking(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(StorageError::from_io(&error, StorageOp::List, dir, 0)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(StorageOp::List, dir, 0))?;
            let is_file = entry.file_type().map_err(io_error(StorageOp::List, dir, 0))?.is_file();
            if is_file {
                paths.push(entry.path());
            }
        }
        paths.sort();
        Ok(paths)
    }

    /// [`Storage::create_dir_all`], blocking the calling thread.
    pub fn create_dir_all_blocking(dir: &Path) -> Result<(), StorageError> {
        std::fs::create_dir_all(dir).map_err(io_error(StorageOp::CreateDir, dir, 0))
    }

    /// [`Storage::sync_dir`], blocking the calling thread.
    pub fn sync_dir_blocking(dir: &Path) -> Result<(), StorageError> {
        // Opening a directory read-only and fsyncing it is how POSIX makes entry
        // changes (create, rename, unlink) durable.
        let handle = File::open(dir).map_err(io_error(StorageOp::SyncDir, dir, 0))?;
        handle.sync_all().map_err(io_error(StorageOp::SyncDir, dir, 0))
    }
}

impl Storage for RealStorage {
    type File = RealFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> Result<RealFile, StorageError> {
        Self::open_blocking(path, mode)
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        Self::rename_blocking(from, to)
    }

    async fn remove(&self, path: &Path) -> Result<(), StorageError> {
        Self::remove_blocking(path)
    }

    async fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
        Self::list_blocking(dir)
    }

    async fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        Self::create_dir_all_blocking(dir)
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        Self::sync_dir_blocking(dir)
    }
}

impl RealFile {
    /// [`StorageFile::append`], blocking the calling thread.
    pub fn append_blocking(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.file.write_all(bytes).map_err(io_error(StorageOp::Append, &self.path, bytes.len() as u64))
    }

    /// [`StorageFile::read`], blocking the calling thread.
    pub fn read_blocking(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let file_len = self.len_blocking()?;
        let end = offset.checked_add(len as u64).filter(|end| *end <= file_len);
        if end.is_none() {
            return Err(StorageError::OutOfRange { path: self.path.clone(), offset, len: len as u64, file_len });
        }
        let mut buffer = vec![0; len];
        self.file.seek(SeekFrom::Start(offset)).map_err(io_error(StorageOp::Read, &self.path, 0))?;
        self.file.read_exact(&mut buffer).map_err(io_error(StorageOp::Read, &self.path, 0))?;
        Ok(buffer)
    }

    /// [`StorageFile::len`], blocking the calling thread.
    pub fn len_blocking(&mut self) -> Result<u64, StorageError> {
        Ok(self.file.metadata().map_err(io_error(StorageOp::Len, &self.path, 0))?.len())
    }

    /// [`StorageFile::truncate`], blocking the calling thread.
    pub fn truncate_blocking(&mut self, len: u64) -> Result<(), StorageError> {
        let file_len = self.len_blocking()?;
        if len > file_len {
            // Another process shortened the file; growing it back with zeros would
            // forge bytes, so the caller is told instead.
            return Err(StorageError::TruncateBeyondEnd { path: self.path.clone(), len, file_len });
        }
        self.file.set_len(len).map_err(io_error(StorageOp::Truncate, &self.path, 0))
    }

    /// [`StorageFile::sync`], blocking the calling thread.
    pub fn sync_blocking(&mut self) -> Result<(), StorageError> {
        self.file.sync_all().map_err(io_error(StorageOp::Sync, &self.path, 0))
    }
}

impl StorageFile for RealFile {
    fn path(&self) -> &Path {
        &self.path
    }

    async fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.append_blocking(bytes)
    }

    async fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        self.read_blocking(offset, len)
    }

    async fn len(&mut self) -> Result<u64, StorageError> {
        self.len_blocking()
    }

    async fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        self.truncate_blocking(len)
    }

    async fn sync(&mut self) -> Result<(), StorageError> {
        self.sync_blocking()
    }
}
