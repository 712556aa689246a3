//! `gradtone bench`: the measurements of `gradtone_train::bench` (step time per batch size,
//! norms' and sound's cost, peak memory), `gradtone_train::profile` (`--profile`) and
//! `gradtone_pipeline::serve_cost` (`--serve`), printed.

use anyhow::{Result, bail};
use gradtone_mnist::{Dataset, Split};
use gradtone_train::bench::{config, peak_rss_mib, step_frame, time_batch};
use gradtone_train::{Device, Readback, SeedParams, Trainer};

use crate::args::BenchArgs;

/// `gradtone bench`.
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
        let t = time_batch(batch, args.steps, args.warmup, &train, &device)?;
        let (ms, ms_no_norms, data_ms) = (t.ms, t.ms_no_norms, t.data_ms);
        let (seed_us, cents_us, overhead) = (t.seed_us, t.cents_us, t.overhead_pct());
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

/// `gradtone bench --serve`: median ms per step (train + sinks) with and without the server.
fn serve_cost(args: &BenchArgs, train: &Dataset, device: &Device) -> Result<()> {
    let batch = args.batch.first().copied().unwrap_or(10).max(1);
    let cfg = config(batch, None);
    let mut trainer = Trainer::new(&SeedParams::init(1), cfg.optim, cfg.lr, device);
    let mut batches = gradtone_train::batches(&cfg, train.len());
    println!(
        "gradtone bench --serve: batch {batch}, {} steps in blocks of {}, alternating with and without the page served to one client",
        args.steps * 2,
        gradtone_pipeline::serve_cost::BLOCK
    );
    let c = gradtone_pipeline::serve_cost::measure(
        args.steps * 2 + args.warmup,
        args.warmup,
        |step| {
            let idx = batches.next()?;
            Some(step_frame(
                &mut trainer,
                train,
                &idx,
                step,
                Readback::Weights,
            ))
        },
    )?;
    let (a, b, pa, pb) = (c.plain_ms, c.served_ms, c.push_plain_us, c.push_served_us);
    let (d_med, d_max, overhead) = (c.delay_median_ms, c.delay_max_ms, c.overhead_pct());
    println!("{:>22} {:>10}", "", "ms/step");
    println!("{:>22} {a:>10.3}", "without --serve");
    println!("{:>22} {b:>10.3}", "served, 1 client");
    println!(
        "sinks per step: {pa:.1} µs without, {pb:.1} µs served: the server's share of a step on the training thread {:.2} %",
        c.push_share_pct()
    );
    println!(
        "overhead {overhead:+.2} % of a step; client got {} messages, {} samples; push → client median {d_med:.2} ms, max {d_max:.2} ms",
        c.messages, c.audio_samples
    );
    println!(
        "RESULT serve batch={batch} ms_plain={a:.4} ms_served={b:.4} overhead_pct={overhead:.3} push_us_plain={pa:.2} push_us_served={pb:.2} delay_ms_median={d_med:.3} delay_ms_max={d_max:.3}"
    );
    Ok(())
}

/// `gradtone bench --profile`: a table per batch size of where a step's time goes.
fn profile(args: &BenchArgs, train: &Dataset, device: &Device) -> Result<()> {
    for &batch in &args.batch {
        if batch == 0 {
            bail!("--batch sizes must be at least 1");
        }
        let p = gradtone_train::profile::profile(batch, args.steps, train, device);
        print!("{}", p.report());
    }
    Ok(())
}
