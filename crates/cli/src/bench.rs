//! `gradtone bench`: the measurements of `gradtone_bench` (step times per batch size, the
//! norms' and the sound's cost, peak memory; `--profile`; `--serve`), printed as they come.

use anyhow::Result;
use gradtone_bench::{Mode, Options};
use gradtone_mnist::Split;

use crate::args::BenchArgs;

/// `gradtone bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let opts = Options {
        batch: args.batch.clone(),
        steps: args.steps,
        warmup: args.warmup,
        mode: match (args.profile, args.serve) {
            (true, _) => Mode::Profile,
            (false, true) => Mode::Serve,
            (false, false) => Mode::Steps,
        },
    };
    opts.check()?; // before the data is loaded
    let train = args.data.load(Split::Train)?;
    let device = gradtone_train::default_device();
    gradtone_bench::run(&opts, &train, &device, &mut |text| print!("{text}"))?;
    Ok(())
}
