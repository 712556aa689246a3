//! [`open`]: the source a path names, by its form.

use std::path::Path;

use crate::{FrameSource, IngestError, JsonlReader, csv_source};

/// A source of frames that can move to another thread.
pub type BoxedSource = Box<dyn FrameSource + Send>;

/// The source `path` names: `-` is JSONL on stdin (every line that is not a frame goes on to
/// stdout unchanged, so a training script piped in keeps its prints), `*.csv` a trajectory
/// CSV, anything else a JSONL file.
pub fn open(path: &Path) -> Result<BoxedSource, IngestError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(if path == Path::new("-") {
        Box::new(
            JsonlReader::new(std::io::BufReader::new(std::io::stdin()), "stdin")
                .pass_through(Box::new(std::io::stdout())),
        )
    } else if ext.eq_ignore_ascii_case("csv") {
        Box::new(csv_source(path)?)
    } else {
        Box::new(JsonlReader::open(path)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_picks_the_reader() {
        let dir = std::env::temp_dir().join(format!("gradtone-ingest-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("run.CSV");
        std::fs::write(&csv, "step,loss,fc1\n0,1.0,0.5\n1,0.5,0.25\n").unwrap();
        let jsonl = dir.join("run.jsonl");
        std::fs::write(&jsonl, "{\"step\":0,\"values\":{\"fc1\":0.5}}\n").unwrap();
        assert_eq!(open(&csv).unwrap().count(), 2);
        assert_eq!(open(&jsonl).unwrap().count(), 1);
        assert!(matches!(
            open(&dir.join("none.jsonl")),
            Err(IngestError::Open { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
