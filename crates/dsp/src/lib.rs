//! Numeric kernels on audio samples that both the synthesiser (`gradtone-sound`) and the sinks
//! (`gradtone-plot`, `gradtone-tensorboard`) need, kept here once so that they compute the same
//! thing: the [`Fft`] and the float → 16-bit PCM conversion [`to_pcm16`].
//!
//! No dependencies: a sink can use these without depending on the synthesiser.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod fft;
mod pcm;

pub use fft::Fft;
pub use pcm::to_pcm16;
