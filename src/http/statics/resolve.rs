//! Finding a request's file on disk, and its precompressed siblings.
//!
//! These are plain blocking calls made on the I/O thread, as nginx makes
//! them on its event loop: a lookup of a file the page cache holds costs
//! a few microseconds, less than a hand-off to tokio's blocking pool and
//! back. Only a large body is read through the pool (see `serve`).
//!
//! Containment: the mount is canonicalised once at start-up, and a file
//! reached through a symlink must have its canonical path below it. So a
//! symlink inside the mount may point anywhere inside it, and one that
//! points outside is refused like a missing file.

use std::fs::{File, Metadata};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use hyper::StatusCode;

use super::Mount;
use super::encoding::Coding;

/// A file to send, open.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) file: File,
    pub(crate) meta: Metadata,
    /// The name the request asked for (the index file for a directory):
    /// its extension gives the content type, also of a sibling.
    pub(crate) name: PathBuf,
    /// `Some` when a precompressed sibling was chosen.
    pub(crate) coding: Option<Coding>,
    /// Whether the file has any sibling, chosen or not: then the
    /// response varies with `Accept-Encoding`.
    pub(crate) has_siblings: bool,
}

/// Opens the file `relative` names below `mount`, or the index file when
/// it names a directory; `take` says which sibling codings the client
/// accepts, best first. Errors are the status to answer with.
pub(crate) fn find(
    mount: &Mount,
    relative: &Path,
    dir_asked: bool,
    take: impl Fn(Coding) -> bool,
) -> Result<Found, StatusCode> {
    let mut name = mount.root.join(relative);
    let (mut canonical, mut meta) = inside(mount, &name)?;
    if meta.is_dir() {
        let index = mount.dir_to_file.as_ref().ok_or(StatusCode::NOT_FOUND)?;
        name.push(index);
        (canonical, meta) = inside(mount, &name)?;
    } else if dir_asked {
        // `file.css/`: no file has a child.
        return Err(StatusCode::NOT_FOUND);
    }
    if !meta.is_file() {
        return Err(StatusCode::NOT_FOUND);
    }
    let mut has_siblings = false;
    let mut chosen = None;
    for coding in Coding::ALL {
        let mut sibling = name.clone().into_os_string();
        sibling.push(".");
        sibling.push(coding.extension());
        let Ok((path, meta)) = inside(mount, Path::new(&sibling)) else {
            continue;
        };
        if meta.is_file() {
            has_siblings = true;
            if chosen.is_none() && take(coding) {
                chosen = Some((coding, path));
            }
        }
    }
    let (coding, path) = match chosen {
        Some((coding, path)) => (Some(coding), path),
        None => (None, canonical),
    };
    let file = File::open(&path).map_err(|err| status(&err))?;
    // What was opened is judged, not what was looked at before: the name
    // may have been replaced in between.
    let meta = file.metadata().map_err(|err| status(&err))?;
    if !meta.is_file() {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Found {
        file,
        meta,
        name,
        coding,
        has_siblings,
    })
}

/// `path` and what it is, when it lies in the mount. Each component below
/// the (canonical) mount is looked at with `lstat`: when none is a
/// symlink the path cannot leave the mount, and the last look already
/// says what the file is. Only a path through a symlink is canonicalised
/// and compared with the mount. (`canonicalize` on every request would
/// re-walk the mount's own components too: three times the system calls
/// for a file at the top of a mount.)
fn inside(mount: &Mount, path: &Path) -> Result<(PathBuf, Metadata), StatusCode> {
    let below = path
        .strip_prefix(&mount.root)
        .map_err(|_| StatusCode::NOT_FOUND)?;
    let mut walked = mount.root.clone();
    let mut meta = None;
    for component in below.components() {
        walked.push(component);
        let found = std::fs::symlink_metadata(&walked).map_err(|err| status(&err))?;
        if found.file_type().is_symlink() {
            return through_symlink(mount, path);
        }
        meta = Some(found);
    }
    let meta = match meta {
        Some(meta) => meta,
        None => std::fs::metadata(&mount.root).map_err(|err| status(&err))?,
    };
    Ok((walked, meta))
}

/// [`inside`] for a path through a symlink: its canonical form must lie
/// below the mount.
fn through_symlink(mount: &Mount, path: &Path) -> Result<(PathBuf, Metadata), StatusCode> {
    let canonical = std::fs::canonicalize(path).map_err(|err| status(&err))?;
    if !canonical.starts_with(&mount.root) {
        return Err(StatusCode::NOT_FOUND);
    }
    let meta = std::fs::metadata(&canonical).map_err(|err| status(&err))?;
    Ok((canonical, meta))
}

/// Missing and forbidden files look the same from outside; anything else
/// (out of descriptors, an I/O error) is the server's fault.
fn status(err: &std::io::Error) -> StatusCode {
    match err.kind() {
        ErrorKind::NotFound
        | ErrorKind::PermissionDenied
        | ErrorKind::NotADirectory
        | ErrorKind::InvalidFilename
        | ErrorKind::InvalidInput => StatusCode::NOT_FOUND,
        // Too many levels of symbolic links (a loop).
        _ if err.raw_os_error() == Some(40) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
