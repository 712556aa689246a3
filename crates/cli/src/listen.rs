//! `gradtone listen` (live streams) and `gradtone render` (recorded metrics): any source of
//! frames through the same sinks as `train`. This is the wiring (the source and the outputs
//! from the flags); the frame loop is [`gradtone_ingest::stream`].

use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use gradtone_ingest::{StreamOptions, stream};

use crate::args::{ListenArgs, RenderArgs, show};
use crate::interrupt_flag;

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
    let finished = if gradtone_tensorboard::is_event_input(&args.input) {
        let say = |m: &str| eprintln!("{m}");
        let frames = gradtone_tensorboard::frames_of(&args.input, &args.tags, &say)?;
        let (frames, outputs) = (frames.into_iter().map(Ok), sinks.open(None, &title)?);
        stream::run_frames(frames, None, outputs, &args.ranks, &opts)?
    } else {
        let source = gradtone_ingest::open(&args.input)?;
        stream::run_source(source, sinks.open(None, &title)?, &args.ranks, &opts)?
    };
    show(&finished, false);
    Ok(())
}

pub fn listen(args: &ListenArgs) -> Result<()> {
    let stop = interrupt_flag();
    let listened = args.source.open(&stop, &|m| eprintln!("{m}"))?;
    let opts = StreamOptions {
        // A script piped in must not block or die on a broken pipe because our outputs failed.
        drain_on_failure: listened.piped,
        name: listened.name,
    };
    let source = listened.source;
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
