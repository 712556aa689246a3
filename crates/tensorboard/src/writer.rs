//! [`EventWriter`]: scalars and WAV audio into a TensorBoard event file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Cursor, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gradtone_dsp::to_pcm16;
use prost::Message;

use crate::TbError;
use crate::proto::{
    AUDIO_ENCODING_WAV, AudioPluginData, DT_STRING, Dim, Event, PluginData, Summary, SummaryAudio,
    SummaryMetadata, SummaryValue, TensorProto, TensorShapeProto, Value,
};
use crate::reader::frame_record;

/// The first record of every event file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// How often [`EventWriter`] flushes by default (see [`EventWriter::with_flush_interval`]).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// The current Unix time in seconds, for the `wall_time` arguments.
pub fn wall_time_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How [`EventWriter::add_audio`] stores a clip. Both show in TensorBoard 2.21's Audio panel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AudioFormat {
    /// A legacy (TF1) `Summary.Audio` with sample rate, channels, length and MIME type. Listed
    /// under `audio` by `event_accumulator.EventAccumulator` too. TensorBoard's Rust data server
    /// (`--load_fast`, the default when `tensorboard-data-server` is installed) serves these clips
    /// as `application/octet-stream`, which browsers sniff and play as WAV.
    #[default]
    Legacy,
    /// The TF2 layout: a `[1, 2]` string tensor (WAV, empty label) with plugin `"audio"` metadata
    /// (encoding WAV). Served as `audio/wav` by both TensorBoard servers, but the legacy
    /// `EventAccumulator` lists it under `tensors`, not `audio`.
    Tensor,
}

/// Writes one TensorBoard event file: `<dir>/events.out.tfevents.<unix_ts>.<hostname>.gradtone`.
///
/// Scalars are written as legacy `simple_value`s and audio by default as legacy `Summary.Audio`
/// (a 16-bit PCM WAV; see [`AudioFormat`]): TensorBoard's `EventAccumulator` lists both under
/// `scalars` / `audio`, and the TensorBoard 2.x server converts both to its tensor format for the
/// Scalars and Audio panels.
///
/// **Flushing.** Records go through a buffer. The file-version record is flushed at once (so
/// TensorBoard sees the file), then an `add_*` call flushes when the last flush is at least the
/// flush interval ago ([`DEFAULT_FLUSH_INTERVAL`], 2 s); nothing flushes between calls, so after
/// the last `add_*` call [`flush`](Self::flush) or [`finish`](Self::finish). Dropping the writer
/// flushes too, but cannot report a failure.
///
/// ```
/// # fn main() -> Result<(), gradtone_tensorboard::TbError> {
/// use gradtone_tensorboard::{EventWriter, read_scalars, wall_time_now};
/// let dir = std::env::temp_dir().join(format!("gradtone-tb-doc-{}", std::process::id()));
/// let mut w = EventWriter::create(&dir)?;
/// w.add_scalar("loss", 0, 2.3, wall_time_now())?;
/// w.add_scalar("grad/conv1", 0, 0.12, wall_time_now())?;
/// let tone: Vec<f32> = (0..4410).map(|i| (i as f32 * 0.0627).sin() * 0.5).collect();
/// w.add_audio("sound", 0, &tone, 44_100, 1, wall_time_now())?;
/// let file = w.finish()?;
///
/// let series = read_scalars(&file, &["grad/*", "loss"])?;
/// assert_eq!(series.tags, ["grad/conv1", "loss"]);
/// let frames = series.to_frames();
/// assert_eq!(frames[0].loss(), Some(2.3f32 as f64));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
    flush_every: Duration,
    last_flush: Instant,
    audio_format: AudioFormat,
    scratch: Vec<u8>,
}

impl EventWriter {
    /// Creates `dir` (and its parents) and a new event file in it, and writes the
    /// `"brain.Event:2"` record.
    ///
    /// If a file of that name exists (two writers in one second), `.2`, `.3`, … is appended.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self, TbError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| TbError::Io {
            path: dir.to_path_buf(),
            action: "create the log folder",
            source,
        })?;
        let now = wall_time_now();
        let base = format!(
            "events.out.tfevents.{:010}.{}.gradtone",
            now as u64,
            hostname()
        );
        let mut n = 1u32;
        let (path, file) = loop {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(source) => {
                    return Err(TbError::Io {
                        path,
                        action: "create the event file",
                        source,
                    });
                }
            }
        };
        let mut writer = EventWriter {
            path,
            out: BufWriter::new(file),
            flush_every: DEFAULT_FLUSH_INTERVAL,
            last_flush: Instant::now(),
            audio_format: AudioFormat::default(),
            scratch: Vec::new(),
        };
        writer.write_event(&Event {
            wall_time: now,
            step: 0,
            file_version: Some(FILE_VERSION.to_owned()),
            summary: None,
        })?;
        writer.flush()?;
        Ok(writer)
    }

    /// Sets how often `add_*` calls flush (`Duration::ZERO`: after every call).
    #[must_use]
    pub fn with_flush_interval(mut self, every: Duration) -> Self {
        self.flush_every = every;
        self
    }

    /// Sets how audio clips are stored (default [`AudioFormat::Legacy`]).
    #[must_use]
    pub fn with_audio_format(mut self, format: AudioFormat) -> Self {
        self.audio_format = format;
        self
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one scalar (a legacy `simple_value`, which every TensorBoard reads).
    pub fn add_scalar(
        &mut self,
        tag: &str,
        step: u64,
        value: f32,
        wall_time: f64,
    ) -> Result<(), TbError> {
        let value = SummaryValue {
            tag: checked_tag(tag)?,
            metadata: None,
            value: Some(Value::SimpleValue(value)),
        };
        self.add_value(step, value, wall_time)
    }

    /// Writes one text summary (TensorBoard's Text panel renders it as Markdown): a scalar
    /// string tensor owned by the `text` plugin.
    pub fn add_text(
        &mut self,
        tag: &str,
        step: u64,
        text: &str,
        wall_time: f64,
    ) -> Result<(), TbError> {
        let value = SummaryValue {
            tag: checked_tag(tag)?,
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: "text".to_owned(),
                    // `TextPluginData` with its only field, `version`, at 0: empty.
                    content: Vec::new(),
                }),
                ..SummaryMetadata::default()
            }),
            value: Some(Value::Tensor(TensorProto {
                dtype: DT_STRING,
                tensor_shape: Some(TensorShapeProto::default()),
                string_val: vec![text.as_bytes().to_vec()],
                ..TensorProto::default()
            })),
        };
        self.add_value(step, value, wall_time)
    }

    /// Writes one audio clip: `samples` are interleaved, nominally in −1…1, encoded as a 16-bit
    /// PCM WAV in memory with [`to_pcm16`] (clipped, NaN as silence), so the clip holds the same
    /// codes as a 16-bit WAV file of the same samples.
    pub fn add_audio(
        &mut self,
        tag: &str,
        step: u64,
        samples: &[f32],
        sample_rate: u32,
        channels: u16,
        wall_time: f64,
    ) -> Result<(), TbError> {
        let tag = checked_tag(tag)?;
        if channels == 0 || sample_rate == 0 {
            return Err(TbError::InvalidInput {
                what: format!(
                    "audio {tag:?}: channels ({channels}) and sample rate ({sample_rate}) must be positive"
                ),
            });
        }
        if samples.is_empty() || !samples.len().is_multiple_of(usize::from(channels)) {
            return Err(TbError::InvalidInput {
                what: format!(
                    "audio {tag:?}: {} samples is not a positive whole number of {channels}-channel frames",
                    samples.len()
                ),
            });
        }
        let wav = encode_wav(samples, sample_rate, channels).map_err(|source| TbError::Wav {
            tag: tag.clone(),
            source,
        })?;
        let value = match self.audio_format {
            AudioFormat::Legacy => SummaryValue {
                tag,
                metadata: None,
                value: Some(Value::Audio(SummaryAudio {
                    sample_rate: sample_rate as f32,
                    num_channels: i64::from(channels),
                    length_frames: (samples.len() / usize::from(channels)) as i64,
                    encoded_audio_string: wav,
                    content_type: "audio/wav".to_owned(),
                })),
            },
            AudioFormat::Tensor => tensor_audio(tag, wav),
        };
        self.add_value(step, value, wall_time)
    }

    fn add_value(&mut self, step: u64, value: SummaryValue, wall_time: f64) -> Result<(), TbError> {
        let step = i64::try_from(step).map_err(|_| TbError::InvalidInput {
            what: format!(
                "step {step} for tag {:?} does not fit TensorBoard's int64 step",
                value.tag
            ),
        })?;
        self.write_event(&Event {
            wall_time,
            step,
            file_version: None,
            summary: Some(Summary { value: vec![value] }),
        })?;
        if self.last_flush.elapsed() >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes any event as one record (buffered; no flush).
    pub fn write_event(&mut self, event: &Event) -> Result<(), TbError> {
        self.scratch.clear();
        frame_record(&event.encode_to_vec(), &mut self.scratch);
        self.out
            .write_all(&self.scratch)
            .map_err(|source| TbError::Io {
                path: self.path.clone(),
                action: "write the event file",
                source,
            })
    }

    /// Writes buffered records to the file.
    pub fn flush(&mut self) -> Result<(), TbError> {
        self.last_flush = Instant::now();
        self.out.flush().map_err(|source| TbError::Io {
            path: self.path.clone(),
            action: "flush the event file",
            source,
        })
    }

    /// Flushes, syncs to disk and closes the file; returns its path.
    pub fn finish(mut self) -> Result<PathBuf, TbError> {
        self.flush()?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|source| TbError::Io {
                path: self.path.clone(),
                action: "sync the event file",
                source,
            })?;
        Ok(self.path)
    }
}

/// A TF2-layout audio value: what `tf.summary.audio` writes for one clip. The data class is left
/// unset, as TensorFlow does: TensorBoard then drops the label column itself.
fn tensor_audio(tag: String, wav: Vec<u8>) -> SummaryValue {
    let dim = |size| Dim {
        size,
        name: String::new(),
    };
    let content = AudioPluginData {
        version: 0,
        encoding: AUDIO_ENCODING_WAV,
        converted_to_tensor: false,
    };
    SummaryValue {
        tag,
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: "audio".to_owned(),
                content: content.encode_to_vec(),
            }),
            ..SummaryMetadata::default()
        }),
        value: Some(Value::Tensor(TensorProto {
            dtype: DT_STRING,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![dim(1), dim(2)],
                unknown_rank: false,
            }),
            string_val: vec![wav, Vec::new()],
            ..TensorProto::default()
        })),
    }
}

fn checked_tag(tag: &str) -> Result<String, TbError> {
    if tag.is_empty() {
        return Err(TbError::InvalidInput {
            what: "an empty tag cannot be shown by TensorBoard: name the value".to_owned(),
        });
    }
    Ok(tag.to_owned())
}

/// A 16-bit PCM WAV of `samples` (interleaved), in memory.
fn encode_wav(samples: &[f32], sample_rate: u32, channels: u16) -> Result<Vec<u8>, hound::Error> {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let mut wav = hound::WavWriter::new(&mut cursor, spec)?;
    for &s in samples {
        wav.write_sample(to_pcm16(s))?;
    }
    wav.finalize()?;
    Ok(cursor.into_inner())
}

/// This machine's name, reduced to characters that are safe in a file name.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "localhost".to_owned()
    } else {
        clean
    }
}
