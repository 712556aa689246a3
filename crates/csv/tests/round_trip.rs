//! The trajectory CSV round trip: what `CsvWriter` writes, `CsvReader` reads back, bit for bit
//! and name for name.

use std::error::Error;
use std::io::Cursor;

use gradtone_csv::{CsvError, CsvReader, CsvWriter, MAX_COLUMNS, read_frames};
use gradtone_frame::{Frame, Named};

fn read_str(text: &str) -> Result<Vec<Frame>, CsvError> {
    CsvReader::new(text.as_bytes(), "traj.csv")?.collect()
}

#[test]
fn round_trip_preserves_every_bit() -> Result<(), Box<dyn Error>> {
    let tricky = [
        0.1 + 0.2,
        1.2871722962892867e25,
        f32::MAX as f64,
        5e-324,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        2.0,
    ];
    let mut w = CsvWriter::new(Cursor::new(Vec::new()), &["loss"], &["conv1", "fc2"])?;
    let mut sent = Vec::new();
    for (i, &v) in tricky.iter().enumerate() {
        let f = Frame::new(i as u64)
            .with_loss("loss", v)
            .with_value("conv1", -v)
            .with_value("fc2", v * 0.5);
        w.write(&f)?;
        sent.push(f);
    }
    let bytes = w.finish()?.into_inner();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("\n1,1.2871722962892867e25,"), "{text}");
    let back = read_str(&text)?;
    assert_eq!(back.len(), sent.len());
    for (a, b) in sent.iter().zip(&back) {
        assert_eq!(a.step, b.step);
        for (x, y) in a
            .losses
            .iter()
            .chain(&a.values)
            .zip(b.losses.iter().chain(&b.values))
        {
            assert_eq!(x.name, y.name);
            // Bit equality covers NaN and the sign of -0.0 (NaN's sign is not kept: Python
            // spells every NaN "nan" too).
            if x.value.is_nan() {
                assert!(y.value.is_nan());
            } else {
                assert_eq!(
                    x.value.to_bits(),
                    y.value.to_bits(),
                    "{} vs {}",
                    x.value,
                    y.value
                );
            }
        }
    }
    Ok(())
}

fn write_all(frames: &[Frame]) -> Result<String, CsvError> {
    let mut w = CsvWriter::new(Cursor::new(Vec::new()), &[], &[])?;
    for f in frames {
        w.write(f)?;
    }
    Ok(String::from_utf8_lossy(&w.finish()?.into_inner()).into_owned())
}

#[test]
fn writer_leaves_missing_cells_empty_and_follows_header_order() -> Result<(), Box<dyn Error>> {
    let mut w = CsvWriter::new(Cursor::new(Vec::new()), &["loss"], &["a", "b"])?;
    // Out of header order, one missing, one NaN.
    w.write(&Frame::new(9).with_value("b", 0.5).with_value("a", f64::NAN))?;
    let text = String::from_utf8_lossy(&w.finish()?.into_inner()).into_owned();
    assert_eq!(text, "step,loss,a,b\n9,,nan,0.5\n");
    let back = read_str(&text)?;
    assert_eq!(back[0].loss(), None, "missing stays missing");
    assert!(back[0].value("a").is_some_and(f64::is_nan), "NaN stays NaN");
    Ok(())
}

/// The frames as (step, losses, values) with NaN made comparable.
/// (name, value bits) of a frame's losses or values.
type Entries = Vec<(String, u64)>;

fn key(frames: &[Frame]) -> Vec<(u64, Entries, Entries)> {
    let bits = |v: &[Named]| {
        v.iter()
            .map(|n| {
                (
                    n.name.clone(),
                    if n.value.is_nan() {
                        1
                    } else {
                        n.value.to_bits()
                    },
                )
            })
            .collect::<Vec<_>>()
    };
    frames
        .iter()
        .map(|f| (f.step, bits(&f.losses), bits(&f.values)))
        .collect()
}

#[test]
fn changing_columns_are_all_written() -> Result<(), Box<dyn Error>> {
    // A first frame with no values, layers appearing later, alternating sets.
    let frames = vec![
        Frame::new(0).with_loss("loss", 2.0),
        Frame::new(1)
            .with_loss("loss", 1.9)
            .with_value("conv1", 0.5),
        Frame::new(2)
            .with_value("conv1", 0.4)
            .with_value("fc1", 0.3),
        Frame::new(3).with_loss("loss", 1.7).with_value("a", 1.0),
        Frame::new(4).with_loss("loss", 1.6).with_value("b", 2.0),
        Frame::new(5).with_loss("loss", 1.5).with_value("a", 1.5),
    ];
    let text = write_all(&frames)?;
    assert!(text.starts_with("step,loss,b,a,conv1,fc1\n"), "{text}");
    let back = read_str(&text)?;
    assert_eq!(key(&back), key(&frames), "{text}");
    Ok(())
}

#[test]
fn a_layer_appearing_later_takes_its_place_in_frame_order() -> Result<(), Box<dyn Error>> {
    // fc1 is frozen at first (absent), then appears between conv1 and fc2: read back, every
    // frame lists its values in its own order (mappings sound them in that order).
    let mut frames = Vec::new();
    for step in 0..6u64 {
        let mut f = Frame::new(step)
            .with_loss("loss", 1.0)
            .with_value("conv1", 0.5);
        if step >= 3 {
            f = f.with_value("fc1", 0.25);
        }
        frames.push(f.with_value("fc2", 0.125));
    }
    frames.push(
        Frame::new(6)
            .with_loss("loss_l2", 0.5)
            .with_loss("loss", 1.0),
    );
    let text = write_all(&frames)?;
    assert!(
        text.starts_with("step,loss_l2,loss,conv1,fc1,fc2\n"),
        "{text}"
    );
    assert_eq!(key(&read_str(&text)?), key(&frames), "{text}");
    Ok(())
}

#[test]
fn every_name_the_stream_allows_round_trips() -> Result<(), Box<dyn Error>> {
    let names = [
        "r0/loss",
        "loss_ce/conv1",
        "step",
        "loss:x",
        "value:y",
        "a,b",
        "say \"hi\"",
        " padded ",
        "line\nbreak",
        "",
        "\u{feff}bom",
        "ünï",
        "cr\r",
        "cr\r\nlf",
        "\r",
    ];
    let mut frames = Vec::new();
    for (i, n) in names.iter().enumerate() {
        frames.push(
            Frame::new(i as u64)
                .with_loss(*n, i as f64)
                .with_value(*n, -(i as f64))
                .with_loss("loss_l2", 0.5)
                .with_value("loss_ce/fc1", 0.25),
        );
    }
    let text = write_all(&frames)?;
    let back = read_str(&text)?;
    // Frames list losses/values in column order; compare as sets per frame.
    let sorted = |fs: &[Frame]| {
        let mut k = key(fs);
        for (_, l, v) in &mut k {
            l.sort();
            v.sort();
        }
        k
    };
    assert_eq!(sorted(&back), sorted(&frames), "{text}");
    Ok(())
}

#[test]
fn too_many_columns_are_counted_not_dropped_silently() -> Result<(), Box<dyn Error>> {
    let mut w = CsvWriter::new(Cursor::new(Vec::new()), &[], &[])?;
    for i in 0..MAX_COLUMNS + 10 {
        w.write(&Frame::new(i as u64).with_value(format!("n{i}"), 1.0))?;
    }
    assert_eq!(w.columns(), MAX_COLUMNS);
    assert_eq!(w.overflow(), (10, Some(format!("n{MAX_COLUMNS}").as_str())));
    let text = String::from_utf8_lossy(&w.finish()?.into_inner()).into_owned();
    let back = read_str(&text)?;
    assert_eq!(back.len(), MAX_COLUMNS + 10);
    assert_eq!(back[5].values.len(), 1);
    Ok(())
}

#[test]
fn file_round_trip_and_missing_file_names_path() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("gradtone-sound-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("t.csv");
    let mut w = CsvWriter::create(&path, &["loss"], &["conv1"])?;
    w.write(
        &Frame::new(0)
            .with_loss("loss", 1.5)
            .with_value("conv1", 0.25),
    )?;
    // A name that appears later: the file's header is rewritten at the end.
    w.write(&Frame::new(1).with_value("fc1", 0.5))?;
    w.finish()?;
    let frames = read_frames(&path)?;
    assert_eq!(
        frames,
        vec![
            Frame::new(0)
                .with_loss("loss", 1.5)
                .with_value("conv1", 0.25),
            Frame::new(1).with_value("fc1", 0.5)
        ]
    );
    let left: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "no spill file left behind: {left:?}");
    let missing = dir.join("nope.csv");
    let msg = read_frames(&missing)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn header_names_are_quoted_exactly_where_needed() -> Result<(), Box<dyn Error>> {
    let names = [
        " padded ",
        "a,b",
        "say \"hi\"",
        "\u{feff}bom",
        "x",
        "loss_ce",
        "cr\r",
    ];
    let w = CsvWriter::new(Cursor::new(Vec::new()), &["r0/loss"], &names)?;
    let text = String::from_utf8(w.finish()?.into_inner())?;
    assert_eq!(
        text,
        "step,loss:r0/loss,\" padded \",\"a,b\",\"say \"\"hi\"\"\",\"\u{feff}bom\",x,\
         value:loss_ce,\"cr\r\"\n"
    );
    Ok(())
}
