//! `download_files` against a tiny HTTP server on 127.0.0.1 that the tests start themselves.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;

use common::{Reply, Server, TempDir, gz, images, labels, md5_hex};
use gradtone_mnist::{MnistError, Progress, RemoteFile, Split, download_files, load_dir, md5_file};

/// Records every progress event.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
}

#[derive(Debug, PartialEq)]
enum Event {
    Start(String, String, Option<u64>),
    Advance(u64),
    Finish(String),
    Note(String),
}

impl Progress for Recorder {
    fn start(&mut self, file: &str, url: &str, total_bytes: Option<u64>) {
        self.events
            .push(Event::Start(file.into(), url.into(), total_bytes));
    }
    fn advance(&mut self, bytes: u64) {
        self.events.push(Event::Advance(bytes));
    }
    fn finish(&mut self, file: &str) {
        self.events.push(Event::Finish(file.into()));
    }
    fn note(&mut self, message: &str) {
        self.events.push(Event::Note(message.into()));
    }
}

impl Recorder {
    fn notes(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Note(n) => Some(n.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Four small valid gz IDX files: (name, bytes).
fn dataset_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("train-images-idx3-ubyte.gz", gz(&images(5))),
        ("train-labels-idx1-ubyte.gz", gz(&labels(&[5, 0, 4, 1, 9]))),
        ("t10k-images-idx3-ubyte.gz", gz(&images(2))),
        ("t10k-labels-idx1-ubyte.gz", gz(&labels(&[7, 2]))),
    ]
}

fn specs(files: &[(&'static str, Vec<u8>)], md5s: &[String]) -> Vec<RemoteFile<'static>> {
    files
        .iter()
        .zip(md5s)
        .map(|((name, _), md5)| RemoteFile {
            name,
            md5: Box::leak(md5.clone().into_boxed_str()),
        })
        .collect()
}

fn no_leftovers(dir: &Path, name: &str) {
    assert!(
        !dir.join(name).exists(),
        "{name} must not exist under its final name"
    );
    assert!(
        !dir.join(format!("{name}.part")).exists(),
        "{name}.part must be cleaned up"
    );
}

#[test]
fn downloads_verifies_then_reuses_the_cache() {
    let files = dataset_files();
    let md5s: Vec<String> = files.iter().map(|(_, b)| md5_hex(b)).collect();
    let routes = files
        .iter()
        .map(|(n, b)| (format!("/m/{n}"), Reply::ok(b.clone())))
        .collect();
    let server = Server::start(routes);
    let cache = TempDir::new("dl-ok");
    let cache_dir = cache.path().join("nested/cache"); // created on demand
    let mirrors = vec![server.url("/m")]; // no trailing slash: one is added
    let specs = specs(&files, &md5s);

    let mut rec = Recorder::default();
    download_files(&cache_dir, &mirrors, &specs, &mut rec).unwrap();
    assert_eq!(server.total_hits(), 4);
    for (name, bytes) in &files {
        assert_eq!(std::fs::read(cache_dir.join(name)).unwrap(), *bytes);
        assert!(!cache_dir.join(format!("{name}.part")).exists());
    }
    // Progress: per file one start with the right total, advances summing to it, one finish.
    let mut events = rec.events.iter().peekable();
    for (name, bytes) in &files {
        let total = bytes.len() as u64;
        assert_eq!(
            events.next(),
            Some(&Event::Start(
                name.to_string(),
                format!("{}/{name}", mirrors[0]),
                Some(total)
            ))
        );
        let mut sum = 0;
        while let Some(Event::Advance(n)) = events.peek() {
            sum += n;
            events.next();
        }
        assert_eq!(sum, total, "{name}");
        assert_eq!(events.next(), Some(&Event::Finish(name.to_string())));
    }
    assert_eq!(events.next(), None);

    // The downloaded folder loads.
    let train = load_dir(&cache_dir, Split::Train).unwrap();
    assert_eq!(train.labels(), &[5, 0, 4, 1, 9]);
    assert_eq!(load_dir(&cache_dir, Split::Test).unwrap().len(), 2);

    // Second call: everything cached and correct, nothing fetched, nothing reported.
    let mut rec = Recorder::default();
    download_files(&cache_dir, &mirrors, &specs, &mut rec).unwrap();
    assert_eq!(server.total_hits(), 4);
    assert!(rec.events.is_empty(), "{:?}", rec.events);

    // A damaged cached file is noticed and fetched again (only that one).
    let damaged = cache_dir.join(files[3].0);
    std::fs::write(&damaged, b"garbage").unwrap();
    let mut rec = Recorder::default();
    download_files(&cache_dir, &mirrors, &specs, &mut rec).unwrap();
    assert_eq!(server.total_hits(), 5);
    assert_eq!(server.hits(&format!("/m/{}", files[3].0)), 2);
    assert_eq!(md5_file(&damaged).unwrap(), md5s[3]);
    assert!(
        rec.notes().iter().any(|n| n.contains("wrong checksum")),
        "{:?}",
        rec.events
    );
}

#[test]
fn bad_checksum_is_rejected_and_the_next_mirror_tried() {
    let good = gz(&labels(&[1, 2, 3]));
    let name = "train-labels-idx1-ubyte.gz";
    let routes = HashMap::from([
        (format!("/bad/{name}"), Reply::ok(gz(&labels(&[1, 2, 4])))),
        (format!("/good/{name}"), Reply::ok(good.clone())),
    ]);
    let server = Server::start(routes);
    let md5 = md5_hex(&good);
    let spec = [RemoteFile { name, md5: &md5 }];

    // Only the bad mirror: the file is rejected, nothing left behind.
    let cache = TempDir::new("dl-badsum");
    let mut rec = Recorder::default();
    let err = download_files(cache.path(), &[server.url("/bad/")], &spec, &mut rec).unwrap_err();
    assert!(
        matches!(&err, MnistError::AllMirrorsFailed { file, failures } if file == name && failures.len() == 1),
        "{err:?}"
    );
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    no_leftovers(cache.path(), name);
    assert!(!rec.events.iter().any(|e| matches!(e, Event::Finish(_))));

    // Bad mirror first, good second: succeeds from the second, the first's failure noted.
    let mut rec = Recorder::default();
    let mirrors = [server.url("/bad/"), server.url("/good/")];
    download_files(cache.path(), &mirrors, &spec, &mut rec).unwrap();
    assert_eq!(std::fs::read(cache.path().join(name)).unwrap(), good);
    assert_eq!(server.hits(&format!("/bad/{name}")), 2);
    assert_eq!(server.hits(&format!("/good/{name}")), 1);
    let notes = rec.notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("/bad/") && notes[0].contains("checksum mismatch"),
        "{notes:?}"
    );
}

#[test]
fn not_found_on_first_mirror_then_success_on_second() {
    let body = gz(&images(1));
    let name = "t10k-images-idx3-ubyte.gz";
    let server = Server::start(HashMap::from([(
        format!("/b/{name}"),
        Reply::ok(body.clone()),
    )]));
    let md5 = md5_hex(&body);
    let cache = TempDir::new("dl-404");
    let mut rec = Recorder::default();
    let mirrors = [server.url("/a/"), server.url("/b/")];
    download_files(
        cache.path(),
        &mirrors,
        &[RemoteFile { name, md5: &md5 }],
        &mut rec,
    )
    .unwrap();
    assert_eq!(std::fs::read(cache.path().join(name)).unwrap(), body);
    assert_eq!(server.hits(&format!("/a/{name}")), 1);
    let notes = rec.notes();
    assert!(
        notes.len() == 1 && notes[0].contains("404") && notes[0].contains("/a/"),
        "{notes:?}"
    );
    // The failed mirror never started a transfer: the only start is the second mirror's.
    let starts: Vec<_> = rec
        .events
        .iter()
        .filter(|e| matches!(e, Event::Start(..)))
        .collect();
    assert_eq!(
        starts,
        [&Event::Start(
            name.into(),
            format!("{}{name}", mirrors[1]),
            Some(body.len() as u64)
        )]
    );
}

#[test]
fn cut_off_transfer_fails_and_leaves_nothing() {
    let body = gz(&images(4));
    let name = "train-images-idx3-ubyte.gz";
    let reply = Reply {
        status: 200,
        body: body[..body.len() / 2].to_vec(),
        content_length: Some(body.len()),
    };
    let server = Server::start(HashMap::from([(format!("/m/{name}"), reply)]));
    let md5 = md5_hex(&body);
    let cache = TempDir::new("dl-cut");
    let mut rec = Recorder::default();
    let err = download_files(
        cache.path(),
        &[server.url("/m/")],
        &[RemoteFile { name, md5: &md5 }],
        &mut rec,
    )
    .unwrap_err();
    assert!(
        matches!(&err, MnistError::AllMirrorsFailed { file, .. } if file == name),
        "{err:?}"
    );
    no_leftovers(cache.path(), name);
    println!("{err}");
    assert!(err.to_string().contains("--data"), "{err}");
}

#[test]
fn nothing_listening_gives_a_clear_error_listing_the_mirror() {
    // Take a free port, then free it again: connections to it are refused.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mirror = format!("http://127.0.0.1:{port}/mnist/");
    let mirrors = [mirror.clone()];
    let cache = TempDir::new("dl-refused");
    let mut rec = Recorder::default();
    let err = download_files(cache.path(), &mirrors, &gradtone_mnist::FILES, &mut rec).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(
        matches!(&err, MnistError::AllMirrorsFailed { file, .. } if file == "train-images-idx3-ubyte.gz")
    );
    assert!(
        msg.contains(&format!("{mirror}train-images-idx3-ubyte.gz")),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one paragraph: {msg}");
    let fix = "pass --data DIR (or set GRADTONE_MNIST_DIR) to a folder holding \
               train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
               t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz";
    assert!(msg.contains(fix), "{msg}");
    no_leftovers(cache.path(), "train-images-idx3-ubyte.gz");
    assert_eq!(rec.notes().len(), 1);
}

#[test]
fn no_mirrors_is_an_error() {
    let cache = TempDir::new("dl-none");
    let err = download_files(
        cache.path(),
        &[],
        &gradtone_mnist::FILES,
        &mut gradtone_mnist::NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, MnistError::NoMirrors { .. }), "{err:?}");
}

#[test]
fn load_from_download_source_downloads_first() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cache = TempDir::new("load-dl");
    let source = gradtone_mnist::Source::Download {
        cache_dir: cache.path().to_path_buf(),
        mirrors: vec![format!("http://127.0.0.1:{port}/")],
    };
    let err =
        gradtone_mnist::load(&source, Split::Test, &mut gradtone_mnist::NoProgress).unwrap_err();
    assert!(
        matches!(err, MnistError::AllMirrorsFailed { .. }),
        "{err:?}"
    );
}
