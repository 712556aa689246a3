//! Any bytes through the CSV reader: no panic, no hang, one item per line at most; and every
//! frame it reads survives a write → read round trip through the CSV writer unchanged.
#![no_main]

use std::io::Cursor;

use gradtone_csv::{CsvReader, CsvWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = CsvReader::new(data, "fuzz.csv") else {
        return;
    };
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut frames = Vec::new();
    let mut items = 0usize;
    for item in reader {
        items += 1;
        assert!(items <= lines, "more rows than lines");
        if let Ok(f) = item {
            frames.push(f);
        }
    }
    let Ok(mut w) = CsvWriter::new(Cursor::new(Vec::new()), &[], &[]) else {
        panic!("a writer on memory cannot fail");
    };
    for f in &frames {
        w.write(f).expect("writing to memory");
    }
    let overflow = w.overflow().0;
    let bytes = w.finish().expect("finishing in memory").into_inner();
    let back: Vec<_> = CsvReader::new(bytes.as_slice(), "again.csv")
        .expect("our own header reads back")
        .collect::<Result<_, _>>()
        .expect("our own rows read back");
    assert_eq!(back.len(), frames.len());
    if overflow == 0 {
        for (a, b) in frames.iter().zip(&back) {
            assert_eq!(a.step, b.step);
            let same = |x: &[gradtone_frame::Named], y: &[gradtone_frame::Named]| {
                x.len() == y.len()
                    && x.iter().zip(y).all(|(p, q)| {
                        p.name == q.name
                            && (p.value.to_bits() == q.value.to_bits()
                                || (p.value.is_nan() && q.value.is_nan()))
                    })
            };
            assert!(same(&a.losses, &b.losses), "{a:?} vs {b:?}");
            assert!(same(&a.values, &b.values), "{a:?} vs {b:?}");
        }
    }
});
