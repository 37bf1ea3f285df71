//! How much disk the data directory uses, and how much the filesystem has.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Size and free space of a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesystemUsage {
    /// Total size.
    pub total_bytes: u64,
    /// Space available to this (unprivileged) process.
    pub available_bytes: u64,
}

/// Reads size and free space of the filesystem holding `path` (`statvfs`).
#[allow(unsafe_code)]
#[allow(clippy::unnecessary_cast)] // the field types differ between platforms
pub fn filesystem_usage(path: &Path) -> io::Result<FilesystemUsage> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stats` points to writable memory
    // of the right type; statvfs fully initialises it when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let stats = unsafe { stats.assume_init() };
    let fragment = stats.f_frsize as u64;
    Ok(FilesystemUsage {
        total_bytes: (stats.f_blocks as u64).saturating_mul(fragment),
        available_bytes: (stats.f_bavail as u64).saturating_mul(fragment),
    })
}

/// Bytes allocated on disk to everything under `path` (files and directories, recursively).
///
/// Allocated blocks, not apparent lengths, are what fill a disk (sparse and preallocated files
/// differ). Entries that vanish during the walk (a partition dropped, a segment removed) are
/// skipped. A missing `path` counts as 0.
pub fn allocated_bytes(path: &Path) -> io::Result<u64> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let mut total = metadata.blocks().saturating_mul(512);
    if metadata.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            total = total.saturating_add(allocated_bytes(&entry.path())?);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nested_files_and_tolerates_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/b"), vec![1u8; 100_000]).unwrap();
        let bytes = allocated_bytes(dir.path()).unwrap();
        assert!(bytes >= 100_000, "{bytes}");
        assert_eq!(allocated_bytes(&dir.path().join("missing")).unwrap(), 0);
        let usage = filesystem_usage(dir.path()).unwrap();
        assert!(usage.total_bytes >= usage.available_bytes && usage.total_bytes > 0);
    }
}
