//! Downloading the official MNIST files, checksum-verified, into a cache folder.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::{MirrorFailure, MnistError};

/// Mirrors of the official files, tried in order (the first two are what torchvision uses).
pub const DEFAULT_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// A file to download: its name (appended to a mirror URL and used in the cache) and its md5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteFile<'a> {
    /// File name, e.g. `train-images-idx3-ubyte.gz`.
    pub name: &'a str,
    /// Expected md5, lowercase hex.
    pub md5: &'a str,
}

/// The four official MNIST files and their md5 checksums.
pub const FILES: [RemoteFile<'static>; 4] = [
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        md5: "d53e105ee54ea40749a09fcbcd1e9432",
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        md5: "9fb629c4189551a2d022fa330f9573f3",
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        md5: "ec29112dd5afa0611ce80d1b7f02629c",
    },
];

/// Receives download progress; the library never prints, the caller decides how to show it.
///
/// Per file and mirror attempt: `start`, then `advance` for each chunk received, then `finish`
/// when the file is verified and in place. A failed attempt ends with a `note` instead, and the
/// next mirror begins with a fresh `start`.
pub trait Progress {
    /// A download of `file` from `url` begins; `total_bytes` is the announced size, if any.
    fn start(&mut self, file: &str, url: &str, total_bytes: Option<u64>);
    /// `bytes` more bytes of the current file arrived.
    fn advance(&mut self, bytes: u64);
    /// `file` is downloaded, verified and in place.
    fn finish(&mut self, file: &str);
    /// Something worth telling the user (a mirror failed, a cached file was bad, ...).
    fn note(&mut self, message: &str) {
        let _ = message;
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _file: &str, _url: &str, _total_bytes: Option<u64>) {}
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self, _file: &str) {}
}

/// The platform cache folder for MNIST: `<cache dir>/gradtone/mnist` (e.g.
/// `~/.cache/gradtone/mnist` on Linux); `None` where the platform has none.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("gradtone").join("mnist"))
}

/// The md5 of a file's contents, lowercase hex.
pub fn md5_file(path: &Path) -> Result<String, MnistError> {
    let io_err = |source| MnistError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Makes sure the four official files ([`FILES`]) are in `cache_dir` with the right md5,
/// downloading what is missing or wrong from `mirrors` (tried in order).
///
/// See [`download_files`] for the details.
pub fn download(
    cache_dir: &Path,
    mirrors: &[String],
    progress: &mut dyn Progress,
) -> Result<(), MnistError> {
    download_files(cache_dir, mirrors, &FILES, progress)
}

/// Most a single file may weigh; the largest MNIST file is under 10 MB. Guards against a
/// misbehaving server filling the disk.
const MAX_FILE_BYTES: u64 = 256 << 20;

/// Makes sure each of `files` is in `cache_dir` with its md5.
///
/// A file already there with the right md5 is left alone; one with the wrong md5 is removed and
/// downloaded again. Each file is tried from each mirror in turn (`mirror + name`; a missing
/// trailing `/` on the mirror is added), every failure reported through [`Progress::note`]. A
/// download streams into `<name>.part` while being hashed, and only a file whose md5 matches is
/// renamed to `<name>`: nothing partial or unverified is ever left under the final name.
///
/// Timeouts: 10 s to connect, 30 s for the response headers and for each read of the body.
pub fn download_files(
    cache_dir: &Path,
    mirrors: &[String],
    files: &[RemoteFile<'_>],
    progress: &mut dyn Progress,
) -> Result<(), MnistError> {
    fs::create_dir_all(cache_dir).map_err(|source| MnistError::Io {
        path: cache_dir.to_path_buf(),
        source,
    })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(30)))
        .user_agent(concat!("gradtone-mnist/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();

    for file in files {
        let target = cache_dir.join(file.name);
        if target.is_file() {
            if md5_file(&target)?.eq_ignore_ascii_case(file.md5) {
                continue;
            }
            progress.note(&format!(
                "{} has the wrong checksum; downloading it again",
                target.display()
            ));
            fs::remove_file(&target).map_err(|source| MnistError::Io {
                path: target.clone(),
                source,
            })?;
        }
        if mirrors.is_empty() {
            return Err(MnistError::NoMirrors {
                file: file.name.to_string(),
            });
        }
        let part = cache_dir.join(format!("{}.part", file.name));
        let mut failures = Vec::new();
        let mut done = false;
        for mirror in mirrors {
            let url = if mirror.ends_with('/') {
                format!("{mirror}{}", file.name)
            } else {
                format!("{mirror}/{}", file.name)
            };
            let result = fetch(&agent, &url, file, &part, progress);
            match result.and_then(|()| {
                fs::rename(&part, &target).map_err(|e| format!("cannot move it into place: {e}"))
            }) {
                Ok(()) => {
                    progress.finish(file.name);
                    done = true;
                    break;
                }
                Err(error) => {
                    // Best effort: the .part may not exist (e.g. the connection failed).
                    let _ = fs::remove_file(&part);
                    progress.note(&format!("{url} failed: {error}"));
                    failures.push(MirrorFailure { url, error });
                }
            }
        }
        if !done {
            return Err(MnistError::AllMirrorsFailed {
                file: file.name.to_string(),
                failures,
            });
        }
    }
    Ok(())
}

/// Downloads `url` into `part`, checking the md5; the error is a short description.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    file: &RemoteFile<'_>,
    part: &Path,
    progress: &mut dyn Progress,
) -> Result<(), String> {
    let response = agent.get(url).call().map_err(describe)?;
    let total = response.body().content_length();
    progress.start(file.name, url, total);
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(MAX_FILE_BYTES)
        .reader();

    let mut out =
        File::create(part).map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("transfer broke off after {received} bytes: {e}")),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        received += n as u64;
        progress.advance(n as u64);
    }
    // ureq already errors on a short body; this also covers a server that lies the other way.
    if let Some(total) = total
        && received != total
    {
        return Err(format!(
            "received {received} bytes of the {total} announced"
        ));
    }
    let got = hex(&hasher.finalize());
    if !got.eq_ignore_ascii_case(file.md5) {
        return Err(format!(
            "checksum mismatch (md5 {got}, expected {})",
            file.md5
        ));
    }
    // Flush to disk before the rename makes the file visible under its final name.
    out.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    Ok(())
}

/// A short description of a request failure.
fn describe(error: ureq::Error) -> String {
    match error {
        ureq::Error::StatusCode(code) => format!("HTTP {code}"),
        ureq::Error::Io(e) => e.to_string(),
        other => other.to_string(),
    }
}
