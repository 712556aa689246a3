//! Any bytes through the event reader and scalar extraction: must never panic or hang.
#![no_main]

use gradtone_tensorboard::{EventReader, scalar_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut items = 0usize;
    for event in EventReader::new(data, "fuzz") {
        items += 1;
        assert!(
            items <= data.len() + 1,
            "more records than the input can hold"
        );
        if let Ok(event) = event {
            for value in event.summary.iter().flat_map(|s| &s.value) {
                let _ = scalar_of(value, None);
            }
        }
    }
});
