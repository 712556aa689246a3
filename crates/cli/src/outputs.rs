//! The run's outputs come from the pipeline library; the commands only fill in an [`OutputSpec`].

pub use gradtone_pipeline::{OutputSpec, Outputs, ServeSpec, check_parent};
