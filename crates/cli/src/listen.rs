//! `gradtone listen` (live streams) and `gradtone render` (recorded metrics): any source of
//! frames through the same sinks as `train`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::Args;
use gradtone_ingest::{
    FollowOptions, FrameSource, JsonlReader, MergeMode, MergeOptions, OscSource, RankMerger,
    UdpOptions, UdpSource,
};
use gradtone_sound::Frame;
use gradtone_sound::alarm::AlarmKind;

use crate::outputs::Outputs;
use crate::{LiveArgs, SinkArgs, interrupt_flag};

/// How ranks of a distributed run are combined.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MergeArg {
    /// One voice per value: the mean across ranks.
    #[default]
    Mean,
    /// Every rank's values as their own voices (`r0/fc1`, `r1/fc1`, ...).
    PerRank,
}

/// Flags for streams that may carry several ranks.
#[derive(Args, Debug, Clone)]
pub struct RankArgs {
    /// Combine the ranks of a distributed run (frames with `rank`/`world`).
    #[arg(long, value_enum, default_value_t = MergeArg::Mean)]
    merge: MergeArg,
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
    /// Keep reading lines appended to the file, like `tail -f`, until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Receive JSONL datagrams on this address (loopback by default: `--udp 9999` or `--udp 127.0.0.1:9999`).
    #[arg(long, value_name = "[HOST:]PORT", conflicts_with_all = ["input", "osc"])]
    udp: Option<String>,
    /// Receive OSC messages (`/gradtone/frame`, docs/osc.md) on this address.
    #[arg(long, value_name = "[HOST:]PORT", conflicts_with_all = ["input", "udp"])]
    osc: Option<String>,
    /// Stop after this many seconds without data (UDP, OSC, --follow).
    #[arg(long, value_name = "SECONDS")]
    idle_timeout: Option<f64>,
    #[command(flatten)]
    ranks: RankArgs,
    #[command(flatten)]
    sinks: SinkArgs,
    #[command(flatten)]
    live: LiveArgs,
}

fn socket_addr(s: &str) -> Result<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().with_context(|| {
        format!("{s:?} is not an address: give PORT or HOST:PORT, e.g. 127.0.0.1:9999")
    })
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
        Box::new(JsonlReader::new(
            std::io::BufReader::new(std::io::stdin()),
            "stdin",
        ))
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
    {
        bail!("nothing to write: give -o OUT.wav (or --plot, --midi, --csv, --tensorboard)");
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
        return run(
            frames.into_iter().map(Ok),
            None,
            &sinks.spec(None, &title),
            &args.ranks,
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
        let src = UdpSource::bind(socket_addr(a)?, udp_opts)?;
        eprintln!(
            "listening for JSONL datagrams on udp://{} (Ctrl-C to stop)",
            src.local_addr()
        );
        (Box::new(src), format!("udp {a}"))
    } else if let Some(a) = &args.osc {
        let src = OscSource::bind(socket_addr(a)?, udp_opts)?;
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
                (
                    Box::new(gradtone_ingest::follow(p, opts)?),
                    p.display().to_string(),
                )
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

fn run_source(
    mut source: Source,
    spec: &crate::outputs::OutputSpec,
    ranks: &RankArgs,
) -> Result<()> {
    source.set_reporter(Box::new(|m: &str| eprintln!("warning: {m}")));
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
    run(frames, world, spec, ranks)
}

/// Drives frames (merging ranks when `world` is above 1) through the sinks.
fn run(
    frames: impl Iterator<Item = Result<Frame>>,
    world: Option<u32>,
    spec: &crate::outputs::OutputSpec,
    ranks: &RankArgs,
) -> Result<()> {
    let mut outputs = Outputs::create(spec)?;
    let mut n = 0u64;
    let mut decimator = gradtone_sound::Decimator::new(ranks.steps_per_frame);
    let mut merger = world.filter(|&w| w > 1).map(|w| {
        eprintln!("{w} ranks: merging ({:?})", ranks.merge);
        RankMerger::new(MergeOptions {
            world: w,
            lag: ranks.max_lag,
            mode: match ranks.merge {
                MergeArg::Mean => MergeMode::Mean,
                MergeArg::PerRank => MergeMode::PerRank,
            },
            disagreement_factor: ranks.disagreement,
        })
    });
    let max_lag = ranks.max_lag;
    let drain = |merger: &mut RankMerger,
                 outputs: &mut Outputs,
                 decimator: &mut gradtone_sound::Decimator,
                 n: &mut u64|
     -> Result<()> {
        while let Some(m) = merger.pop() {
            let step = m.frame.step;
            if !m.lagging.is_empty() {
                let msg = format!(
                    "ALARM rank: step {step}: rank(s) {:?} not heard from for {max_lag} steps",
                    m.lagging
                );
                outputs.raise(step, AlarmKind::Rank, msg);
            }
            for (rank, name) in &m.disagreeing {
                let msg = format!(
                    "ALARM rank: step {step}: rank {rank} disagrees with the others on {name}"
                );
                outputs.raise(step, AlarmKind::Rank, msg);
            }
            if let Some(f) = decimator.push(m.frame) {
                emit(outputs, &f, n)?;
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
                        emit(&mut outputs, &f, &mut n)?;
                    }
                }
            }
        }
        if let Some(m) = &mut merger {
            m.finish();
            drain(m, &mut outputs, &mut decimator, &mut n)?;
        }
        if let Some(f) = decimator.finish() {
            emit(&mut outputs, &f, &mut n)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            let lines = outputs.finish()?;
            eprintln!("{n} frames");
            for l in lines {
                println!("wrote {l}");
            }
            Ok(())
        }
        Err(e) => {
            outputs.discard();
            Err(e)
        }
    }
}

/// One frame into the sinks; its alarms to the console.
fn emit(outputs: &mut Outputs, f: &Frame, n: &mut u64) -> Result<()> {
    *n += 1;
    for a in outputs.push(f)? {
        eprintln!("alarm: {}", a.message);
    }
    Ok(())
}
