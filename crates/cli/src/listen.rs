//! `gradtone listen` (live streams) and `gradtone render` (recorded metrics): any source of
//! frames through the same sinks as `train`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use gradtone_ingest::{
    BoxedSource, FollowOptions, MAX_MESSAGE_CHARS, MergeOptions, OscSource, RankAlarms, RankMerger,
    UdpOptions, UdpSource, listen_addr, shorten,
};
use gradtone_sound::{Frame, Shared};

use crate::args::{ListenArgs, RankArgs, RenderArgs};
use crate::interrupt_flag;
use crate::outputs::Outputs;

fn is_tensorboard(p: &Path) -> bool {
    p.is_dir()
        || p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("events.out.tfevents"))
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
    let source = gradtone_ingest::open(&args.input)?;
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
    let (source, title): (BoxedSource, String) = if let Some(a) = &args.udp {
        let src = UdpSource::bind(listen_addr(a, args.allow_remote)?, udp_opts)?;
        eprintln!(
            "listening for JSONL datagrams on udp://{} (Ctrl-C to stop)",
            src.local_addr()
        );
        (Box::new(src), format!("udp {a}"))
    } else if let Some(a) = &args.osc {
        let src = OscSource::bind(listen_addr(a, args.allow_remote)?, udp_opts)?;
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
            Some(p) => (gradtone_ingest::open(p)?, p.display().to_string()),
            None => {
                if std::io::stdin().is_terminal() {
                    eprintln!(
                        "reading JSONL frames from stdin (pipe a training script in: python train.py | gradtone listen)"
                    );
                }
                (gradtone_ingest::open(Path::new("-"))?, "stdin".into())
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
    mut source: BoxedSource,
    spec: &crate::outputs::OutputSpec,
    ranks: &RankArgs,
) -> Result<()> {
    spec.precheck()?;
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
