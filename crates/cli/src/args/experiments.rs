//! `gradtone experiments` flags.

use std::path::PathBuf;

use clap::Args;
use gradtone_sound::SampleFormat;

use super::DataArgs;

#[derive(Args, Debug)]
pub struct ExperimentsArgs {
    // The doc is the flag's --help text: `<setting>` there is a placeholder, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    /// Folder for <setting>.wav, <setting>.csv and summary.md (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of every run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Steps per run (default: the article's 201).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: Option<u64>,
    /// WAV sample format.
    #[arg(long, value_enum, default_value_t = SampleFormat::Pcm16)]
    pub wav_format: SampleFormat,
    #[command(flatten)]
    pub data: DataArgs,
}
