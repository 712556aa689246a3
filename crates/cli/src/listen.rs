//! `gradtone listen` (live streams) and `gradtone render` (recorded metrics): any source of
//! frames through the same sinks as `train`.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::Args;
use gradtone_ingest::{
    FollowOptions, FrameSource, JsonlReader, MAX_MESSAGE_CHARS, MergeMode, MergeOptions, OscSource,
    RankAlarms, RankMerger, UdpOptions, UdpSource, shorten,
};
use gradtone_sound::{Frame, Shared};

use crate::outputs::Outputs;
use crate::{LiveArgs, SinkArgs, interrupt_flag};

/// Flags for streams that may carry several ranks.
#[derive(Args, Debug, Clone)]
pub struct RankArgs {
    /// Combine the ranks of a distributed run (frames with `rank`/`world`).
    #[arg(long, value_enum, default_value_t = MergeMode::Mean)]
    merge: MergeMode,
    /// Emit a step without the ranks that are this many steps behind (they raise a lag alarm).
    #[arg(long, default_value_t = 8)]
    max_lag: u64,
    /// A rank whose norm differs from the other ranks' median by this factor raises an alarm.
    #[arg(long, default_value_t = 10.0)]
    disagreement: f64,
    /// Sound the mean of every N steps as one (non-finite values win): hear a million-step run in minutes.
    #[arg(long, value_name = "N", default_value_t = 1)]
    steps_per_frame: usize,
}

/// `gradtone render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Input: a JSONL stream (`-` for stdin), a CSV (`step,loss,<name>...`), or a TensorBoard
    /// event file or log folder (a `runs/` folder of several runs: each run's tags as `RUN/TAG`).
    input: PathBuf,
    /// WAV to write (same as --wav).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// TensorBoard input: scalar tags to sonify, `*` globs (default: everything); in a folder of
    /// several runs, `RUN/*` picks one run.
    #[arg(long, value_name = "PATTERN")]
    tags: Vec<String>,
    #[command(flatten)]
    ranks: RankArgs,
    #[command(flatten)]
    sinks: SinkArgs,
}

/// `gradtone listen`.
#[derive(Args, Debug)]
pub struct ListenArgs {
    /// A JSONL file to read (`-` or nothing: stdin).
    input: Option<PathBuf>,
    /// Keep reading lines appended to the file, like `tail -f`, until Ctrl-C (a file that does
    /// not exist yet is waited for: the hook creates it at its first step).
    #[arg(long)]
    follow: bool,
    /// Receive JSONL datagrams on this address: `9999` (127.0.0.1), `localhost:9999`,
    /// `[::1]:9999`, `HOST:9999`. Loopback unless --allow-remote.
    #[arg(long, value_name = "[HOST:]PORT", conflicts_with_all = ["input", "osc"])]
    udp: Option<String>,
    /// Receive OSC messages (`/gradtone/frame`, docs/osc.md) on this address (as --udp).
    #[arg(long, value_name = "[HOST:]PORT", conflicts_with_all = ["input", "udp"])]
    osc: Option<String>,
    /// Let --udp/--osc bind an address other than loopback (e.g. 0.0.0.0:9999). Datagrams carry
    /// no authentication: any machine that can reach the port can send frames.
    #[arg(long)]
    allow_remote: bool,
    /// Stop after this many seconds without a frame (UDP, OSC, --follow), counted from the last
    /// frame, or from the start while none has arrived (then nothing is written and the exit
    /// status is 1).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    idle_timeout: Option<f64>,
    #[command(flatten)]
    ranks: RankArgs,
    #[command(flatten)]
    sinks: SinkArgs,
    #[command(flatten)]
    live: LiveArgs,
}

/// A positive, finite number of seconds.
fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x < 1e9 => Ok(x),
        _ => Err(format!("{s:?} is not a number of seconds above 0")),
    }
}

/// `PORT`, `HOST:PORT`, `[IPv6]:PORT` → the address to bind. A bare port is 127.0.0.1; a host
/// name resolving to several addresses prefers IPv4 loopback (what `localhost` senders use).
/// Anything but loopback needs `allow_remote`.
fn socket_addr(s: &str, allow_remote: bool) -> Result<SocketAddr> {
    let s = s.trim();
    let usage = "give PORT, HOST:PORT or [IPv6]:PORT, e.g. 9999, localhost:9999, [::1]:9999";
    let addr = if let Ok(port) = s.parse::<u16>() {
        SocketAddr::from(([127, 0, 0, 1], port))
    } else if let Ok(a) = s.parse::<SocketAddr>() {
        a
    } else {
        let Some((host, port)) = s.rsplit_once(':') else {
            bail!("{:?} is not an address: {usage}", shorten(s, 60));
        };
        let port: u16 = port.parse().map_err(|_| {
            anyhow::anyhow!(
                "{:?}: the port {:?} is not a number from 0 to 65535 ({usage})",
                shorten(s, 60),
                shorten(port, 20)
            )
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("{:?} has no host: {usage}", shorten(s, 60));
        }
        let found: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve the host {:?}", shorten(host, 60)))?
            .collect();
        let pick = found
            .iter()
            .find(|a| a.is_ipv4() && a.ip().is_loopback())
            .or_else(|| found.iter().find(|a| a.ip().is_loopback()))
            .or_else(|| found.first());
        match pick {
            Some(a) => *a,
            None => bail!("the host {:?} has no address", shorten(host, 60)),
        }
    };
    if !addr.ip().is_loopback() && !allow_remote {
        bail!(
            "refusing to listen on {addr}: it is not loopback, and any machine that can reach it \
             could send frames. Add --allow-remote to accept them, or listen on 127.0.0.1 and \
             run gradtone where the training runs"
        );
    }
    Ok(addr)
}

fn is_tensorboard(p: &Path) -> bool {
    p.is_dir()
        || p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("events.out.tfevents"))
}

/// Pulls frames from a source and ends with its diagnostics.
type Source = Box<dyn FrameSource + Send>;

fn file_source(path: &Path) -> Result<Source> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(if path == Path::new("-") {
        // A training script piped in keeps its prints: every line that is not a frame goes
        // on to our stdout unchanged.
        Box::new(
            JsonlReader::new(std::io::BufReader::new(std::io::stdin()), "stdin")
                .pass_through(Box::new(std::io::stdout())),
        )
    } else if ext.eq_ignore_ascii_case("csv") {
        Box::new(gradtone_ingest::csv_source(path)?)
    } else {
        Box::new(JsonlReader::open(path)?)
    })
}

pub fn render(args: &RenderArgs) -> Result<()> {
    let mut sinks = args.sinks.clone();
    if args.output.is_some() {
        sinks.wav = args.output.clone();
    }
    if sinks.wav.is_none()
        && sinks.plot.is_none()
        && sinks.midi.is_none()
        && sinks.csv.is_none()
        && sinks.tensorboard.is_none()
        && sinks.serve.is_none()
    {
        bail!(
            "nothing to write: give -o OUT.wav (or --plot, --midi, --csv, --tensorboard, --serve)"
        );
    }
    // A replay in the browser: serve until Ctrl-C unless told otherwise.
    if sinks.serve.is_some() && sinks.serve_linger.is_none() {
        sinks.serve_linger = Some(f64::INFINITY);
    }
    let title = args.input.display().to_string();
    if is_tensorboard(&args.input) {
        let patterns: Vec<&str> = if args.tags.is_empty() {
            vec!["*"]
        } else {
            args.tags.iter().map(String::as_str).collect()
        };
        let series = gradtone_tensorboard::read_scalars(&args.input, &patterns)?;
        for p in &series.problems {
            eprintln!("warning: {p}");
        }
        if series.skipped > 0 {
            eprintln!(
                "{}: {} damaged record(s) skipped, the rest read",
                args.input.display(),
                series.skipped
            );
        }
        if series.tags.is_empty() {
            bail!(
                "{}: no scalar tags match {:?}",
                args.input.display(),
                patterns
            );
        }
        eprintln!(
            "{} scalar tags: {}",
            series.tags.len(),
            series.tags.join(", ")
        );
        let frames = series.to_frames();
        let spec = sinks.spec(None, &title);
        return run(
            frames.into_iter().map(Ok),
            None,
            &spec,
            &args.ranks,
            Outputs::create(&spec)?,
        );
    }
    let source = file_source(&args.input)?;
    run_source(source, &sinks.spec(None, &title), &args.ranks)
}

pub fn listen(args: &ListenArgs) -> Result<()> {
    let stop = interrupt_flag();
    let idle = args.idle_timeout.map(std::time::Duration::from_secs_f64);
    let udp_opts = UdpOptions {
        idle_timeout: idle,
        stop: Some(stop.clone()),
        ..UdpOptions::default()
    };
    let (source, title): (Source, String) = if let Some(a) = &args.udp {
        let src = UdpSource::bind(socket_addr(a, args.allow_remote)?, udp_opts)?;
        eprintln!(
            "listening for JSONL datagrams on udp://{} (Ctrl-C to stop)",
            src.local_addr()
        );
        (Box::new(src), format!("udp {a}"))
    } else if let Some(a) = &args.osc {
        let src = OscSource::bind(socket_addr(a, args.allow_remote)?, udp_opts)?;
        eprintln!(
            "listening for OSC on udp://{} (Ctrl-C to stop)",
            src.local_addr()
        );
        (Box::new(src), format!("osc {a}"))
    } else {
        match &args.input {
            Some(p) if p != Path::new("-") && args.follow => {
                let opts = FollowOptions {
                    idle_timeout: idle,
                    stop: Some(stop.clone()),
                    ..FollowOptions::default()
                };
                let src = gradtone_ingest::follow(p, opts)?;
                if src.waiting() {
                    eprintln!(
                        "waiting for {} to appear (the hook creates it at its first step; \
                         Ctrl-C to stop)",
                        p.display()
                    );
                }
                (Box::new(src), p.display().to_string())
            }
            Some(p) => (file_source(p)?, p.display().to_string()),
            None => {
                if std::io::stdin().is_terminal() {
                    eprintln!(
                        "reading JSONL frames from stdin (pipe a training script in: python train.py | gradtone listen)"
                    );
                }
                (file_source(Path::new("-"))?, "stdin".into())
            }
        }
    };
    let r = run_source(
        source,
        &args.sinks.spec(args.live.pace(), &title),
        &args.ranks,
    );
    if stop.load(Ordering::SeqCst) {
        eprintln!("stopped; outputs finalised");
    }
    r
}

pub(crate) fn run_source(
    mut source: Source,
    spec: &crate::outputs::OutputSpec,
    ranks: &RankArgs,
) -> Result<()> {
    precheck(spec)?;
    source.set_reporter(Box::new(|m: &str| eprintln!("warning: {m}")));
    // Opened before the first frame arrives: the page (--serve) is up and its URL printed while
    // the stream is still silent.
    let outputs = Outputs::create(spec)?;
    // Distributed streams are recognised from their first frame's rank/world.
    let first = source.next_record();
    let world = first
        .as_ref()
        .and_then(|r| r.world.or(r.frame.rank.map(|k| k + 1)));
    let mut first = first.map(|r| Ok(r.frame));
    let mut ended = false;
    // The source's I/O error (or a bad CSV row) arrives as the last item, before any file is
    // finalised, so a broken input never leaves a complete-looking output.
    let frames = std::iter::from_fn(move || {
        if let Some(f) = first.take() {
            return Some(f);
        }
        if ended {
            return None;
        }
        match source.next_record() {
            Some(r) => Some(Ok(r.frame)),
            None => {
                ended = true;
                if let Some(s) = source.diagnostics().summary() {
                    eprintln!("{s}");
                }
                source.take_error().map(|e| Err(e.into()))
            }
        }
    });
    run(frames, world, spec, ranks, outputs)
}

/// Fails, naming the file, when an output cannot be written where asked: checked before the
/// first frame (which may be hours away for a listener), though files are only created then.
fn precheck(spec: &crate::outputs::OutputSpec) -> Result<()> {
    let files = [
        (&spec.wav, "WAV file"),
        (&spec.csv, "CSV file"),
        (&spec.plot, "plot"),
        (&spec.midi, "MIDI file"),
    ];
    for (path, what) in files {
        if let Some(p) = path {
            crate::outputs::check_parent(p, what)?;
            if p.is_dir() {
                bail!("cannot write the {what} {}: it is a folder", p.display());
            }
        }
    }
    if let Some(d) = &spec.tensorboard
        && d.exists()
        && !d.is_dir()
    {
        bail!(
            "cannot write TensorBoard logs into {}: it is a file, not a folder",
            d.display()
        );
    }
    Ok(())
}

/// The sinks, created at the first frame so that a run which receives nothing writes nothing.
fn sinks<'a>(
    outputs: &'a mut Option<Outputs>,
    spec: &crate::outputs::OutputSpec,
) -> Result<&'a mut Outputs> {
    Ok(match outputs {
        Some(o) => o,
        None => outputs.insert(Outputs::create(spec)?),
    })
}

/// Drives frames (merging ranks when `world` is above 1) through the sinks.
fn run(
    frames: impl Iterator<Item = Result<Frame>>,
    world: Option<u32>,
    spec: &crate::outputs::OutputSpec,
    ranks: &RankArgs,
    mut outputs: Outputs,
) -> Result<()> {
    let alarms = Shared::new(RankAlarms::new(ranks.max_lag));
    if world.is_some_and(|w| w > 1) {
        outputs.add_watch(Box::new(alarms.clone()));
    }
    // Made up front (a `--serve` page is up before the first frame); a run that receives
    // nothing drops them unfinished, which removes every file they had begun.
    let mut outputs: Option<Outputs> = Some(outputs);
    let mut n = 0u64;
    let mut decimator = gradtone_sound::Decimator::new(ranks.steps_per_frame);
    let mut merger = world.filter(|&w| w > 1).map(|w| {
        eprintln!("{w} ranks: merging ({:?})", ranks.merge);
        RankMerger::new(MergeOptions {
            world: w,
            lag: ranks.max_lag,
            mode: ranks.merge,
            disagreement_factor: ranks.disagreement,
        })
    });
    let drain = |merger: &mut RankMerger,
                 outputs: &mut Option<Outputs>,
                 decimator: &mut gradtone_sound::Decimator,
                 n: &mut u64|
     -> Result<()> {
        while let Some(m) = merger.pop() {
            alarms.lock().note(&m);
            if let Some(f) = decimator.push(m.frame) {
                emit(sinks(outputs, spec)?, &f, n)?;
            }
        }
        Ok(())
    };
    let result = (|| -> Result<()> {
        for f in frames {
            let f = f?;
            match &mut merger {
                Some(m) => {
                    m.push(f);
                    drain(m, &mut outputs, &mut decimator, &mut n)?;
                }
                None => {
                    if let Some(f) = decimator.push(f) {
                        emit(sinks(&mut outputs, spec)?, &f, &mut n)?;
                    }
                }
            }
        }
        if let Some(m) = &mut merger {
            m.finish();
            drain(m, &mut outputs, &mut decimator, &mut n)?;
        }
        if let Some(f) = decimator.finish() {
            emit(sinks(&mut outputs, spec)?, &f, &mut n)?;
        }
        Ok(())
    })();
    if let Some(m) = &merger {
        let (late, rejected) = (m.late_frames(), m.rejected_frames());
        if late > 0 || rejected > 0 {
            eprintln!(
                "ranks: {late} frames arrived after their step was sounded, {rejected} with a \
                 rank beyond {} (dropped)",
                gradtone_ingest::MAX_WORLD
            );
        }
    }
    let repeats = alarms.lock().repeats();
    if repeats > 0 {
        eprintln!(
            "rank alarms: {repeats} repeats of an alarm already raised were not sounded again"
        );
    }
    match (result, outputs) {
        (Ok(()), Some(outputs)) if n == 0 => {
            drop(outputs);
            bail!(
                "no frames from {}: nothing was written (see the messages above)",
                shorten(&spec.title, MAX_MESSAGE_CHARS)
            )
        }
        (Ok(()), Some(outputs)) => {
            let lines = outputs.finish()?;
            eprintln!("{n} frames");
            for l in lines {
                if spec.summary_to_stderr {
                    eprintln!("wrote {l}");
                } else {
                    println!("wrote {l}");
                }
            }
            Ok(())
        }
        // Nothing arrived: no empty WAV, CSV or picture passes for a result.
        (Ok(()), None) => bail!(
            "no frames from {}: nothing was written (see the messages above)",
            shorten(&spec.title, MAX_MESSAGE_CHARS)
        ),
        (Err(e), Some(outputs)) => {
            outputs.discard();
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

/// One frame into the sinks; its alarms to the console.
fn emit(outputs: &mut Outputs, f: &Frame, n: &mut u64) -> Result<()> {
    *n += 1;
    for a in outputs.push(f)? {
        eprintln!("alarm: {}", shorten(&a.message, 2 * MAX_MESSAGE_CHARS));
    }
    Ok(())
}
