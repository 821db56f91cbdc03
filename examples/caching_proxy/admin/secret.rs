//! The admin secret file: where it lives, how it is written and read.

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::TOKEN_BYTES;

/// The contents of a secret file.
#[derive(PartialEq, Eq)]
pub(super) struct Secret {
    /// The admin listener's address.
    pub(super) admin: SocketAddr,
    /// The bearer token, as hex text.
    pub(super) token: String,
    /// The public listener's address, for messages.
    pub(super) proxy: Option<SocketAddr>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("admin", &self.admin)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// `admin=ADDR`, `token=HEX` and `proxy=ADDR` lines.
    pub(super) fn to_text(&self) -> String {
        let mut text = format!("admin={}\ntoken={}\n", self.admin, self.token);
        if let Some(proxy) = self.proxy {
            let _ = writeln!(text, "proxy={proxy}");
        }
        text
    }

    /// Parses `key=value` lines; blank lines, `#` comments and unknown keys are ignored.
    pub(super) fn parse(text: &str) -> Result<Self, &'static str> {
        let (mut admin, mut token, mut proxy) = (None, None, None);
        for line in text.lines().map(str::trim) {
            match line.split_once('=') {
                Some(("admin", value)) => {
                    admin = Some(value.trim().parse().map_err(|_| "a bad admin= line")?);
                }
                Some(("token", value)) => token = Some(value.trim().to_owned()),
                Some(("proxy", value)) => proxy = value.trim().parse().ok(),
                _ => {}
            }
        }
        match (admin, token) {
            (Some(admin), Some(token)) if !token.is_empty() => Ok(Self {
                admin,
                token,
                proxy,
            }),
            (None, _) => Err("no admin= line"),
            _ => Err("no token= line"),
        }
    }
}

/// A new random token: [`TOKEN_BYTES`] bytes from the operating system's generator, as
/// lowercase hex.
pub(super) fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("cannot generate the admin token: {e}"))?;
    let mut hex = String::with_capacity(2 * TOKEN_BYTES);
    for byte in bytes {
        write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
    }
    Ok(hex)
}

/// The secret file of the proxy whose public listener is on `port`, for this user:
///
/// 1. `$XDG_RUNTIME_DIR/tower-cache-layer/proxy-<port>.admin`, else
/// 2. `$XDG_CACHE_HOME/tower-cache-layer/proxy-<port>.admin`, else
/// 3. `$HOME/.cache/tower-cache-layer/proxy-<port>.admin`, else
/// 4. `<temp dir>/tower-cache-layer-<uid>/proxy-<port>.admin` (on Unix; elsewhere the temp
///    dir is the user's own, and the directory is `tower-cache-layer`).
///
/// Relative or empty variables are ignored, as the XDG base directory spec asks.
pub(super) fn default_secret_path(port: u16) -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let file = format!("proxy-{port}.admin");
    if let Some(runtime) = var("XDG_RUNTIME_DIR") {
        return runtime.join("tower-cache-layer").join(file);
    }
    if let Some(cache) = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))) {
        return cache.join("tower-cache-layer").join(file);
    }
    #[cfg(unix)]
    let dir = format!("tower-cache-layer-{}", current_uid());
    #[cfg(not(unix))]
    let dir = "tower-cache-layer";
    std::env::temp_dir().join(dir).join(file)
}

/// The effective user id of this process.
#[cfg(unix)]
pub(super) fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (and missing parents) with mode 0700. A directory that exists already is
/// left as it is (it may be `/tmp` given in `--admin-file`), but must belong to this user or to
/// root, and must not be writable by others unless it is sticky: nobody else may replace the
/// file in it.
#[cfg(unix)]
pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    let uid = current_uid();
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(io::Error::other(format!(
            "the directory {} belongs to uid {}, not to you (uid {uid}) or root",
            dir.display(),
            meta.uid()
        )));
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(io::Error::other(format!(
            "the directory {} is writable by others (mode {:03o})",
            dir.display(),
            meta.mode() & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes `secret` to `path`, mode 0600: to a temporary file in the same directory, then
/// renamed into place, so that a reader never sees a half-written file.
pub(super) fn write_secret(path: &Path, secret: &Secret) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    // A leftover from a crashed process with the same pid.
    let _ = std::fs::remove_file(&tmp);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(secret.to_text().as_bytes())?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Why `--clear-cache` could not read a secret file.
#[derive(Debug)]
pub(super) enum ReadError {
    /// No file at that path.
    Missing,
    /// Any other reason, as one line.
    Other(String),
}

/// Reads a secret file, refusing one that another user owns or that group or others may read.
pub(super) fn read_secret(path: &Path) -> Result<Secret, ReadError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(err) => {
            return Err(ReadError::Other(format!(
                "cannot read {}: {err}",
                path.display()
            )));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file
            .metadata()
            .map_err(|e| ReadError::Other(format!("cannot read {}: {e}", path.display())))?;
        let uid = current_uid();
        if meta.uid() != uid {
            return Err(ReadError::Other(format!(
                "refusing to read {}: it is owned by uid {}, not by you (uid {uid})",
                path.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(ReadError::Other(format!(
                "refusing to read {}: it is readable by group or others (mode {:03o}); \
                 it must be mode 600",
                path.display(),
                meta.mode() & 0o777
            )));
        }
    }
    let mut text = String::new();
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(|e| ReadError::Other(format!("cannot read {}: {e}", path.display())))?;
    Secret::parse(&text).map_err(|why| {
        ReadError::Other(format!(
            "{} is not a caching_proxy admin file ({why})",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_text_round_trips() {
        let secret = Secret {
            admin: SocketAddr::from(([127, 0, 0, 1], 41023)),
            token: "ab".repeat(32),
            proxy: Some(SocketAddr::from(([0, 0, 0, 0], 3000))),
        };
        let text = secret.to_text();
        assert_eq!(
            text,
            format!(
                "admin=127.0.0.1:41023\ntoken={}\nproxy=0.0.0.0:3000\n",
                "ab".repeat(32)
            )
        );
        assert_eq!(Secret::parse(&text), Ok(secret));
        assert_eq!(Secret::parse("token=ab\n"), Err("no admin= line"));
        assert_eq!(Secret::parse("admin=127.0.0.1:1\n"), Err("no token= line"));
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token().expect("token"), new_token().expect("token"));
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
