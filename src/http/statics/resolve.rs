//! Finding a request's file on disk, and its precompressed siblings.
//!
//! These are plain blocking calls made on the I/O thread, as nginx makes
//! them on its event loop: a lookup of a file the page cache holds costs
//! a few microseconds, less than a hand-off to tokio's blocking pool and
//! back. What is found is kept open for a moment (see `cache`), so most
//! requests make none of these lookups.
//!
//! Containment: the mount is canonicalised once at start-up, and a file
//! reached through a symlink must have its canonical path below it. So a
//! symlink inside the mount may point anywhere inside it, and one that
//! points outside is refused like a missing file. The path so checked is
//! then opened from the mount's directory with `openat2`, which refuses
//! to leave it or to follow any symlink: a component swapped for a
//! symlink between the check and the open cannot lead outside.

use std::fs::{File, Metadata};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use hyper::StatusCode;
use hyper::header::HeaderValue;

use super::Mount;
use super::cache::{Kept, OpenFiles};
use super::conditional::Validators;
use super::encoding::Coding;

/// A request path's file found and opened, with its precompressed
/// siblings: what [`super::cache`] keeps for a moment.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The file itself; one that could not be opened is its status (a
    /// sibling may still be sent).
    pub(crate) identity: Result<Variant, StatusCode>,
    /// The siblings that are regular files in the mount, in the order of
    /// [`Coding::ALL`]; one that could not be opened is its status.
    pub(crate) siblings: Vec<(Coding, Result<Variant, StatusCode>)>,
    /// From the name the request asked for (the index file for a
    /// directory), also for a sibling.
    pub(crate) content_type: HeaderValue,
}

/// One representation of a file, open, with the headers made from it.
#[derive(Debug)]
pub(crate) struct Variant {
    pub(crate) file: File,
    pub(crate) len: u64,
    modified: SystemTime,
    pub(crate) validators: Validators,
    pub(crate) etag: HeaderValue,
    pub(crate) last_modified: HeaderValue,
    /// The whole contents, read by the first response that sends any.
    kept: OnceLock<Option<Kept>>,
}

/// Which of a [`Resolved`]'s variants a response sends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which {
    Identity,
    Sibling(usize),
}

impl Resolved {
    /// Whether the response varies with `Accept-Encoding`: the file has a
    /// sibling, chosen or not.
    pub(crate) fn has_siblings(&self) -> bool {
        !self.siblings.is_empty()
    }

    /// The best sibling `take` accepts, else the file itself.
    pub(crate) fn choose(
        &self,
        take: impl Fn(Coding) -> bool,
    ) -> Result<(Which, Option<Coding>), StatusCode> {
        for (i, (coding, variant)) in self.siblings.iter().enumerate() {
            if take(*coding) {
                return variant
                    .as_ref()
                    .map(|_| (Which::Sibling(i), Some(*coding)))
                    .map_err(|status| *status);
            }
        }
        self.identity
            .as_ref()
            .map(|_| (Which::Identity, None))
            .map_err(|status| *status)
    }

    pub(crate) fn variant(&self, which: Which) -> &Variant {
        match which {
            Which::Identity => self
                .identity
                .as_ref()
                .expect("only an opened file is chosen"),
            Which::Sibling(i) => self.siblings[i]
                .1
                .as_ref()
                .expect("only an opened sibling is chosen"),
        }
    }
}

impl Variant {
    /// Opens `path` (judged to lie in the mount, with no symlink in it)
    /// and makes its headers.
    fn open(mount: &Mount, path: &Path, coding: Option<Coding>) -> Result<Self, StatusCode> {
        let file = open_checked(mount, path).map_err(|err| status(&err))?;
        // What was opened is judged, not what was looked at before: the
        // name may have been replaced in between.
        let meta = file.metadata().map_err(|err| status(&err))?;
        if !meta.is_file() {
            return Err(StatusCode::NOT_FOUND);
        }
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let validators = Validators::new(meta.len(), modified, coding.map(Coding::token));
        Ok(Self {
            etag: HeaderValue::try_from(validators.etag.as_str())
                .expect("an ETag made of visible ASCII"),
            last_modified: validators.last_modified(),
            validators,
            file,
            len: meta.len(),
            modified,
            kept: OnceLock::new(),
        })
    }

    /// The file's contents, read at most once (see [`super::cache::KEEP_MAX`]);
    /// `None` for a larger file, when the mount's budget is spent, or when
    /// reading failed.
    pub(crate) fn contents(&self, files: &OpenFiles<Resolved>) -> Option<Bytes> {
        self.kept
            .get_or_init(|| {
                files.keep(self.len, || {
                    let len = usize::try_from(self.len).ok()?;
                    read_at(&self.file, 0, len).ok().map(Bytes::from)
                })
            })
            .as_ref()
            .map(|kept| kept.bytes.clone())
    }

    /// Whether the open file still has the size and modification time its
    /// headers were made from (one `fstat`): a file rewritten in place
    /// must not be sent with its old length and validators.
    pub(crate) fn unchanged(&self) -> bool {
        self.file.metadata().is_ok_and(|meta| {
            meta.is_file()
                && meta.len() == self.len
                && meta.modified().unwrap_or(UNIX_EPOCH) == self.modified
        })
    }
}

/// Opens the file `relative` names below `mount`, or the index file when
/// it names a directory, and each of its precompressed siblings. Errors
/// are the status to answer with.
pub(crate) fn find(
    mount: &Mount,
    relative: &Path,
    dir_asked: bool,
) -> Result<Resolved, StatusCode> {
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
    let mut siblings = Vec::new();
    for coding in Coding::ALL {
        let mut sibling = name.clone().into_os_string();
        sibling.push(".");
        sibling.push(coding.extension());
        let Ok((path, meta)) = inside(mount, Path::new(&sibling)) else {
            continue;
        };
        if meta.is_file() {
            siblings.push((coding, Variant::open(mount, &path, Some(coding))));
        }
    }
    Ok(Resolved {
        identity: Variant::open(mount, &canonical, None),
        siblings,
        content_type: content_type(&name),
    })
}

/// The type of the file `name`, from its extension (unknown:
/// `application/octet-stream`), with `charset=utf-8` for text, as nginx's
/// `charset utf-8` adds it (text and JavaScript).
fn content_type(name: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    if mime.starts_with("text/") || mime == "application/javascript" {
        HeaderValue::try_from(format!("{mime}; charset=utf-8")).expect("a MIME type is ASCII")
    } else {
        HeaderValue::from_static(mime)
    }
}

/// Up to `want` bytes of `file` from `offset` (fewer at its end), read
/// with `pread`, which leaves the file's offset alone (the file is shared
/// by the requests for it), into a buffer not zeroed first: zeroing would
/// be a third pass over every byte, with the read and the write.
pub(crate) fn read_at(file: &File, offset: u64, want: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(want);
    while buf.len() < want {
        let filled = buf.len();
        let at = libc::off_t::try_from(offset + filled as u64)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let spare = &mut buf.spare_capacity_mut()[..want - filled];
        // SAFETY: `pread` writes at most `spare.len()` bytes into `spare`,
        // the vector's unused capacity, and only the bytes it reports
        // written are then counted as the vector's.
        let n =
            unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at) };
        match n {
            0 => break,
            n if n > 0 => unsafe { buf.set_len(filled + n as usize) },
            _ => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(buf)
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

/// Whether `openat2` may be used: cleared for good the first time the
/// kernel (older than 5.6) or a seccomp filter refuses the call itself.
#[cfg(target_os = "linux")]
static OPENAT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Opens `path`, which [`inside`] found below the mount with no symlink
/// in it, such that it still is when opened: from the mount's directory,
/// beneath it, following no symlink (`openat2` with `RESOLVE_BENEATH` and
/// `RESOLVE_NO_SYMLINKS`: a component replaced by a symlink since the
/// check fails with `ELOOP`, answered 404). Where `openat2` is missing the
/// plain open is left, and only the check stands.
fn open_checked(mount: &Mount, path: &Path) -> std::io::Result<File> {
    #[cfg(target_os = "linux")]
    if OPENAT2.load(std::sync::atomic::Ordering::Relaxed) {
        let relative = path
            .strip_prefix(&mount.root)
            .map_err(|_| std::io::Error::from(ErrorKind::NotFound))?;
        match openat2_beneath(&mount.dir, relative) {
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                OPENAT2.store(false, std::sync::atomic::Ordering::Relaxed);
            }
            opened => return opened,
        }
    }
    File::open(path)
}

#[cfg(target_os = "linux")]
fn openat2_beneath(dir: &File, relative: &Path) -> std::io::Result<File> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;

    let name = std::ffi::CString::new(relative.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(ErrorKind::InvalidInput))?;
    // SAFETY: `open_how` is plain data; all-zero is its "nothing asked".
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: a directory descriptor we hold, a NUL-terminated name, and
    // `how` with its size, as openat2(2) takes them.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &raw const how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::from(ErrorKind::InvalidData))?;
    // SAFETY: a descriptor the kernel just opened for us, owned by no one.
    Ok(unsafe { File::from_raw_fd(fd) })
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
        // Too many levels of symbolic links (a loop), or a symlink where
        // `openat2` follows none; a path leading out of the mount.
        _ if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::EXDEV)) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
