//! Static files served from Rust (`--static-path-route`/`--static-path-mount`):
//! a request whose path falls under a route is answered here, on the I/O
//! thread, and never reaches the app.
//!
//! `path` turns the request path into a file name that stays in the
//! mount, `resolve` finds the file (and its precompressed siblings) on
//! disk, `cache` keeps what it found open for a moment, `conditional`,
//! `range` and `encoding` read the request's headers, and `serve` puts the
//! answer together.

mod cache;
mod conditional;
mod encoding;
mod path;
mod range;
mod resolve;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use hyper::header::HeaderValue;

/// One route as the Python side gives it.
#[derive(Debug, Clone)]
pub(crate) struct MountSettings {
    /// URL prefix, starting with `/`.
    pub(crate) route: String,
    /// Directory; must exist.
    pub(crate) mount: PathBuf,
    /// File served for a request naming a directory (`index.html`).
    pub(crate) dir_to_file: Option<String>,
    /// `Cache-Control: max-age` in seconds; 0: no `Cache-Control`.
    pub(crate) expires: u64,
}

/// A route ready to serve: its directory canonical, once, so that each
/// request's canonical file path can be checked to lie below it.
#[derive(Debug)]
pub(crate) struct Mount {
    /// Without a trailing `/` (`/` itself stays `/`).
    route: String,
    root: PathBuf,
    /// `root`, open: files are opened relative to it (see
    /// `resolve::open_checked`).
    dir: std::fs::File,
    dir_to_file: Option<String>,
    cache_control: Option<HeaderValue>,
    /// Files looked up lately, kept open.
    files: cache::OpenFiles<resolve::Resolved>,
}

/// Every route of a server; cheap to clone (one per request).
#[derive(Debug, Clone, Default)]
pub(crate) struct StaticFiles {
    /// Longest route first, so the most specific one wins.
    mounts: Arc<[Mount]>,
}

/// Why the settings cannot be served.
#[derive(Debug)]
pub(crate) enum StaticError {
    Route(String),
    Mount(PathBuf, std::io::Error),
    NotADirectory(PathBuf),
    DirToFile(String),
    DuplicateRoute(String),
}

impl std::fmt::Display for StaticError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Route(route) => write!(f, "static route {route:?} does not start with /"),
            Self::Mount(path, err) => write!(f, "static mount {}: {err}", path.display()),
            Self::NotADirectory(path) => {
                write!(f, "static mount {} is not a directory", path.display())
            }
            Self::DirToFile(name) => write!(f, "static dir-to-file {name:?} is not a file name"),
            Self::DuplicateRoute(route) => write!(f, "static route {route:?} is given twice"),
        }
    }
}

impl std::error::Error for StaticError {}

impl StaticFiles {
    pub(crate) fn new(settings: Vec<MountSettings>) -> Result<Self, StaticError> {
        let mut mounts = Vec::with_capacity(settings.len());
        for given in settings {
            if !given.route.starts_with('/') {
                return Err(StaticError::Route(given.route));
            }
            let route = match given.route.trim_end_matches('/') {
                "" => "/".to_owned(),
                trimmed => trimmed.to_owned(),
            };
            if let Some(name) = &given.dir_to_file
                && !path::is_plain_name(name.as_bytes())
            {
                return Err(StaticError::DirToFile(name.clone()));
            }
            let root = std::fs::canonicalize(&given.mount)
                .map_err(|err| StaticError::Mount(given.mount.clone(), err))?;
            if !root.is_dir() {
                return Err(StaticError::NotADirectory(given.mount));
            }
            if mounts.iter().any(|m: &Mount| m.route == route) {
                return Err(StaticError::DuplicateRoute(route));
            }
            let dir = std::fs::File::open(&root)
                .map_err(|err| StaticError::Mount(given.mount.clone(), err))?;
            mounts.push(Mount {
                route,
                root,
                dir,
                dir_to_file: given.dir_to_file,
                cache_control: (given.expires > 0).then(|| {
                    HeaderValue::try_from(format!("max-age={}", given.expires))
                        .expect("digits are a valid header value")
                }),
                files: cache::OpenFiles::new(),
            });
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.route.len()));
        Ok(Self {
            mounts: mounts.into(),
        })
    }

    /// The mount whose route `path` (the raw request path) falls under:
    /// the route itself or below it at a segment boundary, so `/static`
    /// takes `/static/x` but not `/staticx`.
    pub(crate) fn find(&self, path: &str) -> Option<&Mount> {
        self.mounts.iter().find(|m| m.rest(path).is_some())
    }

    /// These files when there are any: what a request's future keeps, so
    /// that a server without routes clones nothing for it.
    pub(crate) fn if_any(&self) -> Option<Self> {
        (!self.mounts.is_empty()).then(|| self.clone())
    }
}

impl Mount {
    /// The part of `path` below this route (empty or starting with `/`).
    fn rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.route == "/" {
            return Some(path);
        }
        let rest = path.strip_prefix(self.route.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(routes: &[&str]) -> StaticFiles {
        let dir = std::env::temp_dir();
        StaticFiles::new(
            routes
                .iter()
                .map(|route| MountSettings {
                    route: (*route).to_owned(),
                    mount: dir.clone(),
                    dir_to_file: None,
                    expires: 0,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn routes_match_at_segment_boundaries_longest_first() {
        let statics = files(&["/static/", "/static/deep"]);
        let route = |path| statics.find(path).map(|m| m.route.as_str());
        assert_eq!(route("/static"), Some("/static"));
        assert_eq!(route("/static/"), Some("/static"));
        assert_eq!(route("/static/x.css"), Some("/static"));
        assert_eq!(route("/static/deep/x"), Some("/static/deep"));
        assert_eq!(route("/static/deeper"), Some("/static"));
        assert_eq!(route("/staticx"), None);
        assert_eq!(route("/other"), None);
        assert_eq!(route("/"), None);
        assert_eq!(
            files(&["/"]).find("/anything").map(|m| m.route.as_str()),
            Some("/")
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = std::env::temp_dir();
        let one = |route: &str, mount: PathBuf, dir_to_file: Option<&str>| {
            StaticFiles::new(vec![MountSettings {
                route: route.to_owned(),
                mount,
                dir_to_file: dir_to_file.map(str::to_owned),
                expires: 60,
            }])
        };
        assert!(matches!(
            one("static", dir.clone(), None),
            Err(StaticError::Route(_))
        ));
        assert!(matches!(
            one("/s", dir.join("no-such-dir-here"), None),
            Err(StaticError::Mount(..))
        ));
        for name in ["..", "a/b", "", "."] {
            assert!(
                matches!(
                    one("/s", dir.clone(), Some(name)),
                    Err(StaticError::DirToFile(_))
                ),
                "{name}"
            );
        }
        let ok = one("/s", dir.clone(), Some("index.html")).unwrap();
        assert_eq!(
            ok.mounts[0].cache_control.as_ref().unwrap(),
            &HeaderValue::from_static("max-age=60")
        );
        let twice = StaticFiles::new(vec![
            MountSettings {
                route: "/s".into(),
                mount: dir.clone(),
                dir_to_file: None,
                expires: 0,
            },
            MountSettings {
                route: "/s/".into(),
                mount: dir,
                dir_to_file: None,
                expires: 0,
            },
        ]);
        assert!(matches!(twice, Err(StaticError::DuplicateRoute(_))));
    }
}
