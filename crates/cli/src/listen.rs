//! `gradtone listen` (live streams) and `gradtone render` (recorded metrics): any source of
//! frames through the same sinks as `train`. This is the wiring (the source and the outputs
//! from the flags); the frame loop is [`gradtone_pipeline::stream`].

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use gradtone_ingest::{BoxedSource, FollowOptions, OscSource, UdpOptions, UdpSource, listen_addr};
use gradtone_pipeline::{StreamOptions, stream};

use crate::args::{ListenArgs, RenderArgs, show};
use crate::interrupt_flag;

fn is_tensorboard(p: &Path) -> bool {
    p.is_dir()
        || p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("events.out.tfevents"))
}

pub fn render(args: &RenderArgs) -> Result<()> {
    let mut sinks = args.sinks.clone();
    if args.output.is_some() {
        sinks.wav.wav = args.output.clone();
    }
    if !sinks.keeps() {
        bail!(
            "nothing to write: give -o OUT.wav (or --plot, --midi, --csv, --alarms, --tensorboard, --serve)"
        );
    }
    // A replay in the browser: serve until Ctrl-C unless told otherwise.
    if sinks.serve.serve.is_some() && sinks.serve.serve_linger.is_none() {
        sinks.serve.serve_linger = Some(f64::INFINITY);
    }
    let title = args.input.display().to_string();
    let opts = StreamOptions {
        name: title.clone(),
        drain_on_failure: false,
    };
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
        let frames = series.to_frames().into_iter().map(Ok);
        let outputs = sinks.open(None, &title)?;
        let ranks = args.ranks;
        show(
            &stream::run_frames(frames, None, outputs, &ranks, &opts)?,
            false,
        );
        return Ok(());
    }
    let source = gradtone_ingest::open(&args.input)?;
    let outputs = sinks.open(None, &title)?;
    let finished = stream::run_source(source, outputs, &args.ranks, &opts)?;
    show(&finished, false);
    Ok(())
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
    let opts = StreamOptions {
        // A script piped in must not block or die on a broken pipe because our outputs failed.
        drain_on_failure: args.udp.is_none()
            && args.osc.is_none()
            && args.input.as_deref().is_none_or(|p| p == Path::new("-")),
        name: title,
    };
    let r = args
        .sinks
        .open(Some(&args.live), &opts.name)
        .and_then(|outputs| Ok(stream::run_source(source, outputs, &args.ranks, &opts)?));
    if let Ok(finished) = &r {
        // Stdout is the training's (a piped script's prints pass through): ours goes to stderr.
        show(finished, true);
    }
    if stop.load(Ordering::SeqCst) {
        eprintln!("stopped; outputs finalised");
    }
    r.map(drop)
}
