//! The subset of TensorBoard's protobuf messages that gradtone writes and reads.
//!
//! Declared by hand with `prost`'s derive (no `protoc`). Field numbers and types follow
//! `tensorflow/core/util/event.proto` and `tensorflow/core/framework/{summary,tensor,
//! tensor_shape}.proto` as shipped (compiled) in the `tensorboard` 2.21 wheel's
//! `tensorboard.compat.proto`. Fields left out here (graphs, images, histograms, session logs …)
//! are skipped by the decoder, so events that carry them still read.

/// `tensorboard.DataType.DT_FLOAT` (`TensorProto::dtype`).
pub const DT_FLOAT: i32 = 1;
/// `tensorboard.DataType.DT_DOUBLE` (`TensorProto::dtype`).
pub const DT_DOUBLE: i32 = 2;
/// `tensorboard.DataType.DT_STRING` (`TensorProto::dtype`).
pub const DT_STRING: i32 = 7;

/// One record of an event file (`event.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Unix time of the event, seconds.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// Set only in the file's first record: `"brain.Event:2"`.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// The summary values of this event, if it is a summary event.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// A list of tagged values (`summary.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `Summary.Value`: one tagged value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The tag, e.g. `"loss"` or `"grad/conv1"`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Which plugin the value belongs to; TensorBoard needs it only on a tag's first value.
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    /// The payload (`oneof value`).
    #[prost(oneof = "Value", tags = "2, 6, 8")]
    pub value: Option<Value>,
}

/// The payload of a [`SummaryValue`] (`oneof value`; images and histograms are not declared).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// A legacy (TF1) scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    /// A legacy (TF1) audio clip.
    #[prost(message, tag = "6")]
    Audio(SummaryAudio),
    /// A TF2-style tensor summary (scalars, audio …, told apart by the metadata's plugin).
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `Summary.Audio`: one encoded audio clip.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryAudio {
    /// Sample rate in Hz.
    #[prost(float, tag = "1")]
    pub sample_rate: f32,
    /// Number of channels.
    #[prost(int64, tag = "2")]
    pub num_channels: i64,
    /// Length in frames (samples per channel).
    #[prost(int64, tag = "3")]
    pub length_frames: i64,
    /// The encoded file (a WAV here).
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_audio_string: Vec<u8>,
    /// MIME type, `"audio/wav"`.
    #[prost(string, tag = "5")]
    pub content_type: String,
}

/// `SummaryMetadata`: which plugin owns a tag.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    /// The owning plugin and its private data.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
    /// Display name.
    #[prost(string, tag = "2")]
    pub display_name: String,
    /// Description (Markdown).
    #[prost(string, tag = "3")]
    pub summary_description: String,
    /// `DataClass`: 1 scalar, 2 tensor, 3 blob sequence.
    #[prost(int32, tag = "4")]
    pub data_class: i32,
}

/// `SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    /// e.g. `"scalars"`, `"audio"`.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// The plugin's own serialized protobuf.
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `TensorProto` (the fields gradtone reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `DataType`: [`DT_FLOAT`], [`DT_DOUBLE`], [`DT_STRING`] …
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// The shape; absent or no dims means a scalar.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// Raw little-endian element bytes (used instead of the typed fields by some writers).
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    /// `DT_FLOAT` elements.
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// `DT_DOUBLE` elements.
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    /// `DT_STRING` elements.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// The dimensions, outermost first.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
    /// The rank is unknown.
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

/// `TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    /// The size; -1 for unknown.
    #[prost(int64, tag = "1")]
    pub size: i64,
    /// Optional name.
    #[prost(string, tag = "2")]
    pub name: String,
}

/// `AudioPluginData.Encoding.WAV` (`tensorboard/plugins/audio/plugin_data.proto`).
pub const AUDIO_ENCODING_WAV: i32 = 11;

/// `AudioPluginData`: the audio plugin's `SummaryMetadata.PluginData.content`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AudioPluginData {
    /// Format version, 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// The clips' encoding: [`AUDIO_ENCODING_WAV`], or 0 (unknown).
    #[prost(int32, tag = "2")]
    pub encoding: i32,
    /// Set by TensorBoard when it converted a legacy `Summary.Audio`.
    #[prost(bool, tag = "3")]
    pub converted_to_tensor: bool,
}
