//! `gradtone bench`: time per training step of the seed network (forward, backward, the four
//! norms read back, optimiser step) at several batch sizes, the cost of the norms and of the
//! sound, and peak memory. Timings are medians over steps after a warm-up, as PyTorch's
//! `bench_torch.py` measures its `train` time, so the two can be compared side by side.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use gradtone_mnist::{IMAGE_LEN, Split};
use gradtone_sound::Frame;
use gradtone_sound::config::SoundConfig;
use gradtone_train::{LAYERS, Optim, Readback, RunConfig, SeedParams, Trainer};

use crate::data::DataArgs;

/// `gradtone bench` flags.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "10,64,256")]
    batch: Vec<usize>,
    /// Steps per batch size (the original's 201).
    #[arg(long, default_value_t = 201)]
    steps: usize,
    /// Steps excluded from the medians.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Instead: time each part of a step alone (data, each layer's forward and backward,
    /// pooling, norms, optimiser) per batch size, median of --steps runs each.
    #[arg(long)]
    profile: bool,
    /// Instead: the cost of `--serve` to training. Steps at the first --batch size, each
    /// followed by its sound and chart (cents mapping), in alternating blocks with the page
    /// served to one connected client and without; plus the push → client delay.
    #[arg(long)]
    serve: bool,
    #[command(flatten)]
    data: DataArgs,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    gradtone_train::summary::median_sorted(v)
}

/// Peak resident memory of this process, MiB (Linux; `None` elsewhere).
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.steps <= args.warmup {
        bail!(
            "--steps ({}) must exceed --warmup ({})",
            args.steps,
            args.warmup
        );
    }
    let train = args.data.load(Split::Train)?;
    let device = gradtone_train::default_device();
    if args.profile {
        return profile(args, &train, &device);
    }
    if args.serve {
        return serve_cost(args, &train, &device);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "gradtone bench: seed CNN, SGD lr 0.01 momentum 0.5, {} steps ({} warm-up), Burn flex CPU, {} threads available, load {}",
        args.steps,
        args.warmup,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:>6} {:>12} {:>12} {:>10} {:>12} {:>12} {:>12}",
        "batch", "ms/step", "no-norms ms", "data ms", "seed µs", "cents µs", "sound+norm %"
    );
    for &batch in &args.batch {
        let cfg = RunConfig {
            optim: Optim::Sgd { momentum: 0.5 },
            lr: 0.01,
            batch,
            steps: Some(args.steps),
            epochs: None,
            seed: 1,
            shuffle: true,
            drop_last: true,
            l2: 0.0,
        };
        let params = SeedParams::init(1);
        let timed = |readback: Readback| {
            let mut trainer = Trainer::new(&params, cfg.optim, cfg.lr, &device);
            let (mut train_ms, mut data_ms, mut frames) = (Vec::new(), Vec::new(), Vec::new());
            for (step, idx) in gradtone_train::batches(&cfg, train.len()).enumerate() {
                let t0 = Instant::now();
                let (mut x, mut y) = (Vec::with_capacity(idx.len() * IMAGE_LEN), Vec::new());
                train.gather_normalised(&idx, &mut x, &mut y);
                let t1 = Instant::now();
                let s = trainer.step_with(x, y, readback);
                let t2 = Instant::now();
                if step >= args.warmup {
                    data_ms.push((t1 - t0).as_secs_f64() * 1e3);
                    train_ms.push((t2 - t1).as_secs_f64() * 1e3);
                }
                let mut f = Frame::new(step as u64).with_loss("loss", s.loss);
                for (name, v) in LAYERS.iter().zip(s.weight_norms) {
                    f = f.with_value(*name, v);
                }
                frames.push(f);
            }
            (median(&mut train_ms), median(&mut data_ms), frames)
        };
        let (ms, data_ms, frames) = timed(Readback::Weights);
        let (ms_no_norms, _, _) = timed(Readback::LossOnly);
        let seed_us = sound_us(&frames, "seed")?;
        let cents_us = sound_us(&frames, gradtone_sound::mapping::DEFAULT_MAPPING)?;
        let overhead = ((ms - ms_no_norms).max(0.0) + cents_us / 1e3) / ms * 100.0;
        println!(
            "{batch:>6} {ms:>12.3} {ms_no_norms:>12.3} {data_ms:>10.3} {seed_us:>12.1} {cents_us:>12.1} {overhead:>12.2}"
        );
        println!(
            "RESULT batch={batch} ms_per_step={ms:.4} ms_per_step_no_norms={ms_no_norms:.4} sound_us_per_step={cents_us:.2}"
        );
    }
    if let Some(mib) = peak_rss_mib() {
        println!("peak memory {mib:.0} MiB");
    }
    Ok(())
}

/// Median µs to render one frame's sound with `mapping` (alarms included, as `train` does).
fn sound_us(frames: &[Frame], mapping: &str) -> Result<f64> {
    let config = SoundConfig {
        mapping: mapping.into(),
        ..SoundConfig::default()
    };
    let mut m = gradtone_sound::mapping::with_alarms(&config)?;
    let mut detector = gradtone_sound::alarm::AlarmDetector::new(&config.alarms);
    let mut buf = Vec::new();
    let mut us: Vec<f64> = frames
        .iter()
        .map(|f| {
            buf.clear();
            let t = Instant::now();
            let alarms = gradtone_sound::Watch::observe(&mut detector, f);
            m.play(f, &alarms, &mut buf);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    Ok(median(&mut us))
}

/// `gradtone bench --serve`: median ms per step (train + sinks) with and without the server.
fn serve_cost(
    args: &BenchArgs,
    train: &gradtone_mnist::Dataset,
    device: &gradtone_train::Device,
) -> Result<()> {
    let batch = args.batch.first().copied().unwrap_or(10).max(1);
    let cfg = RunConfig {
        optim: Optim::Sgd { momentum: 0.5 },
        lr: 0.01,
        batch,
        steps: None,
        epochs: Some(1000),
        seed: 1,
        shuffle: true,
        drop_last: true,
        l2: 0.0,
    };
    let spec = |serve: bool| crate::outputs::OutputSpec {
        serve: serve.then(|| crate::outputs::ServeSpec {
            addr: "0".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut plain = crate::outputs::Outputs::create(&spec(false))?;
    let mut served = crate::outputs::Outputs::create(&spec(true))?;
    let addr = served
        .served_addr()
        .ok_or_else(|| anyhow::anyhow!("no server"))?;
    let probe = gradtone_serve::Probe::connect(addr, None)?;
    let mut trainer = Trainer::new(&SeedParams::init(1), cfg.optim, cfg.lr, device);
    let block = 25;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut push_with, mut push_without) = (Vec::new(), Vec::new());
    println!(
        "gradtone bench --serve: batch {batch}, {} steps in blocks of {block}, alternating with and without the page served to one client",
        args.steps * 2
    );
    for (step, idx) in gradtone_train::batches(&cfg, train.len())
        .take(args.steps * 2 + args.warmup)
        .enumerate()
    {
        let serve_now = (step / block) % 2 == 1;
        let t0 = Instant::now();
        let (mut x, mut y) = (Vec::with_capacity(idx.len() * IMAGE_LEN), Vec::new());
        train.gather_normalised(&idx, &mut x, &mut y);
        let s = trainer.step_with(x, y, Readback::Weights);
        let mut f = Frame::new(step as u64).with_loss("loss", s.loss);
        for (name, v) in LAYERS.iter().zip(s.weight_norms) {
            f = f.with_value(*name, v);
        }
        let t1 = Instant::now();
        if serve_now {
            served.push(&f)?;
        } else {
            plain.push(&f)?;
        }
        let t2 = Instant::now();
        let ms = (t2 - t0).as_secs_f64() * 1e3;
        let push_us = (t2 - t1).as_secs_f64() * 1e6;
        if step >= args.warmup {
            if serve_now {
                with.push(ms);
                push_with.push(push_us);
            } else {
                without.push(ms);
                push_without.push(push_us);
            }
        }
    }
    // Let the last chunks arrive before counting.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let st = probe.stop();
    plain.finish()?;
    served.finish()?;
    let (a, b) = (median(&mut without), median(&mut with));
    let (pa, pb) = (median(&mut push_without), median(&mut push_with));
    let mut delays = st.delays_ms.clone();
    let d_med = median(&mut delays);
    let d_max = delays.iter().copied().fold(0.0, f64::max);
    println!("{:>22} {:>10}", "", "ms/step");
    println!("{:>22} {a:>10.3}", "without --serve");
    println!("{:>22} {b:>10.3}", "served, 1 client");
    println!(
        "sinks per step: {pa:.1} µs without, {pb:.1} µs served: the server's share of a step on the training thread {:.2} %",
        (pb - pa) / a / 10.0
    );
    println!(
        "overhead {:+.2} % of a step; client got {} messages, {} samples; push → client median {d_med:.2} ms, max {d_max:.2} ms",
        (b - a) / a * 100.0,
        st.messages,
        st.audio_samples
    );
    println!(
        "RESULT serve batch={batch} ms_plain={a:.4} ms_served={b:.4} overhead_pct={:.3} push_us_plain={pa:.2} push_us_served={pb:.2} delay_ms_median={d_med:.3} delay_ms_max={d_max:.3}",
        (b - a) / a * 100.0
    );
    Ok(())
}

/// `gradtone bench --profile`: a table per batch size of where a step's time goes.
fn profile(
    args: &BenchArgs,
    train: &gradtone_mnist::Dataset,
    device: &gradtone_train::Device,
) -> Result<()> {
    for &batch in &args.batch {
        if batch == 0 {
            bail!("--batch sizes must be at least 1");
        }
        let p = gradtone_train::profile::profile(batch, args.steps, train, device);
        let sum: f64 = p.parts.iter().map(|x| x.forward_ms + x.backward_ms).sum();
        println!(
            "\nbatch {batch}: whole step {:.2} ms; parts timed alone add up to {:.2} ms",
            p.step_ms, sum
        );
        println!("| part | forward ms | backward ms | share of the parts |\n|---|---:|---:|---:|");
        for part in &p.parts {
            let t = part.forward_ms + part.backward_ms;
            println!(
                "| {} | {:.3} | {:.3} | {:.1} % |",
                part.name,
                part.forward_ms,
                part.backward_ms,
                100.0 * t / sum.max(1e-12)
            );
        }
    }
    Ok(())
}
