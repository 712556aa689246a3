//! `gradtone bench`: the measurements of `gradtone_bench` (step times per batch size, the
//! norms' and the sound's cost, peak memory; `--profile`; `--serve`), printed as they come.

use anyhow::Result;
use gradtone_bench::BenchArgs;
use gradtone_mnist::Split;

/// `gradtone bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let opts = args.options();
    opts.check()?; // before the data is loaded
    let train = crate::data::load(&args.data, Split::Train)?;
    let device = gradtone_train::default_device();
    gradtone_bench::run(&opts, &train, &device, &mut |text| print!("{text}"))?;
    Ok(())
}
