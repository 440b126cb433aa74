//! Hand-written [`prost`] mirrors of the TensorFlow / TensorBoard protocol buffers that
//! event files use, restricted to the fields this crate writes or reads.
//!
//! Field numbers, types and enum values were checked against the descriptors of the
//! `tensorboard` 2.21.0 pip package (`tensorboard.compat.proto.event_pb2`, `summary_pb2`,
//! `tensor_pb2`, `tensor_shape_pb2`, `types_pb2`, `tensorboard.plugins.hparams.api_pb2`,
//! `plugin_data_pb2`) and `google.protobuf.struct_pb2`; the `.proto` sources are
//! `tensorboard/compat/proto/{event,summary,tensor,tensor_shape,types}.proto` and
//! `tensorboard/plugins/hparams/{api,plugin_data}.proto`. Fields that are left out
//! (e.g. `Event.graph_def`, `TensorProto.float_val`) are skipped by the decoder as unknown
//! fields, so files written by other tools still parse.
//!
//! Enumerations are stored as `i32`, as prost does for open proto3 enums; the Rust enums
//! ([`DataType`], [`DataClass`], [`HParamDataType`], [`Status`], [`DatasetType`]) name the
//! values.

use std::collections::BTreeMap;

/// `tensorboard.Event` (`event.proto`): one record of an event file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch at which the event was written.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global training step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// The payload.
    #[prost(oneof = "event::What", tags = "3, 5")]
    pub what: Option<event::What>,
}

/// Nested types of [`Event`].
pub mod event {
    /// `Event.what`: the payload of an event.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// Version string of the file format; the first event of a file holds
        /// `"brain.Event:2"`.
        #[prost(string, tag = "3")]
        FileVersion(String),
        /// A set of summary values.
        #[prost(message, tag = "5")]
        Summary(super::Summary),
    }
}

/// `tensorboard.Summary` (`summary.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The summary values, one per tag.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<summary::Value>,
}

/// Nested types of [`Summary`].
pub mod summary {
    /// `Summary.Image`: an encoded image.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        /// Height in pixels (field 1: height comes before width).
        #[prost(int32, tag = "1")]
        pub height: i32,
        /// Width in pixels.
        #[prost(int32, tag = "2")]
        pub width: i32,
        /// 1 grayscale, 2 grayscale + alpha, 3 RGB, 4 RGBA, 5 DIGITAL_YUV, 6 BGRA.
        #[prost(int32, tag = "3")]
        pub colorspace: i32,
        /// The PNG (or JPEG, GIF) file contents.
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_image_string: Vec<u8>,
    }

    /// `Summary.Value`: one tagged value.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        /// The tag (series name), e.g. `train/loss`.
        #[prost(string, tag = "1")]
        pub tag: String,
        /// Plugin metadata (which dashboard owns the value).
        #[prost(message, optional, tag = "9")]
        pub metadata: Option<super::SummaryMetadata>,
        /// The value itself.
        #[prost(oneof = "value::Value", tags = "2, 4, 5, 8")]
        pub value: Option<value::Value>,
    }

    /// Nested types of [`Value`].
    pub mod value {
        /// `Summary.Value.value`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A scalar (read by the scalars dashboard).
            #[prost(float, tag = "2")]
            SimpleValue(f32),
            /// An encoded image.
            #[prost(message, tag = "4")]
            Image(super::Image),
            /// A histogram.
            #[prost(message, tag = "5")]
            Histo(super::super::HistogramProto),
            /// A tensor (text, hparams and other plugins).
            #[prost(message, tag = "8")]
            Tensor(super::super::TensorProto),
        }
    }
}

/// `tensorboard.HistogramProto` (`summary.proto`): bucket `i` counts the values in
/// `[bucket_limit[i-1], bucket_limit[i])` (`min` stands in for the left edge of bucket 0).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramProto {
    /// Smallest value.
    #[prost(double, tag = "1")]
    pub min: f64,
    /// Largest value.
    #[prost(double, tag = "2")]
    pub max: f64,
    /// Number of values.
    #[prost(double, tag = "3")]
    pub num: f64,
    /// Sum of the values.
    #[prost(double, tag = "4")]
    pub sum: f64,
    /// Sum of the squared values.
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    /// Right edge of each bucket (packed).
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    /// Count of each bucket (packed).
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// `tensorboard.SummaryMetadata` (`summary.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    /// The plugin that owns the value.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<summary_metadata::PluginData>,
    /// Display name (unused by this crate).
    #[prost(string, tag = "2")]
    pub display_name: String,
    /// Description (unused by this crate).
    #[prost(string, tag = "3")]
    pub summary_description: String,
    /// A [`DataClass`] value.
    #[prost(enumeration = "DataClass", tag = "4")]
    pub data_class: i32,
}

/// Nested types of [`SummaryMetadata`].
pub mod summary_metadata {
    /// `SummaryMetadata.PluginData`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginData {
        /// Plugin name: `text`, `hparams`, ...
        #[prost(string, tag = "1")]
        pub plugin_name: String,
        /// Plugin-specific serialized content.
        #[prost(bytes = "vec", tag = "2")]
        pub content: Vec<u8>,
    }
}

/// `tensorboard.DataClass` (`summary.proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataClass {
    /// Unknown: the reader infers it from the plugin.
    Unknown = 0,
    /// A scalar time series.
    Scalar = 1,
    /// A tensor time series.
    Tensor = 2,
    /// A blob sequence time series.
    BlobSequence = 3,
}

/// `tensorboard.TensorProto` (`tensor.proto`), string values only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// A [`DataType`] value.
    #[prost(enumeration = "DataType", tag = "1")]
    pub dtype: i32,
    /// The shape.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// Elements of a `DT_STRING` tensor.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// `tensorboard.TensorShapeProto` (`tensor_shape.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions, outermost first; none for a scalar.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<tensor_shape_proto::Dim>,
}

/// Nested types of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// `TensorShapeProto.Dim`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        /// Size of the dimension.
        #[prost(int64, tag = "1")]
        pub size: i64,
    }
}

/// `tensorboard.DataType` (`types.proto`), the values this crate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    /// `DT_INVALID`.
    DtInvalid = 0,
    /// `DT_FLOAT` (32-bit).
    DtFloat = 1,
    /// `DT_DOUBLE`.
    DtDouble = 2,
    /// `DT_STRING`.
    DtString = 7,
}

/// `tensorboard.hparams.HParamsPluginData` (`plugin_data.proto`): the content of the
/// `hparams` plugin's [`summary_metadata::PluginData`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    /// Must be 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// The payload.
    #[prost(oneof = "h_params_plugin_data::Data", tags = "2, 3, 4")]
    pub data: Option<h_params_plugin_data::Data>,
}

/// Nested types of [`HParamsPluginData`].
pub mod h_params_plugin_data {
    /// `HParamsPluginData.data`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        /// Tag `_hparams_/experiment`.
        #[prost(message, tag = "2")]
        Experiment(super::Experiment),
        /// Tag `_hparams_/session_start_info`.
        #[prost(message, tag = "3")]
        SessionStartInfo(super::SessionStartInfo),
        /// Tag `_hparams_/session_end_info`.
        #[prost(message, tag = "4")]
        SessionEndInfo(super::SessionEndInfo),
    }
}

/// `tensorboard.hparams.SessionStartInfo` (`plugin_data.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    /// The values of the hyper-parameters of this session.
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, ProtobufValue>,
    /// Unused.
    #[prost(string, tag = "2")]
    pub model_uri: String,
    /// Unused.
    #[prost(string, tag = "3")]
    pub monitor_url: String,
    /// Sessions with the same non-empty group name form one row; empty: the run name.
    #[prost(string, tag = "4")]
    pub group_name: String,
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `tensorboard.hparams.SessionEndInfo` (`plugin_data.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionEndInfo {
    /// A [`Status`] value.
    #[prost(enumeration = "Status", tag = "1")]
    pub status: i32,
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `tensorboard.hparams.Status` (`api.proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Status {
    /// `STATUS_UNKNOWN`.
    Unknown = 0,
    /// `STATUS_SUCCESS`.
    Success = 1,
    /// `STATUS_FAILURE`.
    Failure = 2,
    /// `STATUS_RUNNING`.
    Running = 3,
}

/// `tensorboard.hparams.Experiment` (`api.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Experiment {
    /// Experiment name.
    #[prost(string, tag = "6")]
    pub name: String,
    /// Description.
    #[prost(string, tag = "1")]
    pub description: String,
    /// User.
    #[prost(string, tag = "2")]
    pub user: String,
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "3")]
    pub time_created_secs: f64,
    /// The hyper-parameter columns.
    #[prost(message, repeated, tag = "4")]
    pub hparam_infos: Vec<HParamInfo>,
    /// The metric columns.
    #[prost(message, repeated, tag = "5")]
    pub metric_infos: Vec<MetricInfo>,
}

/// `tensorboard.hparams.HParamInfo` (`api.proto`), without the optional domain.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamInfo {
    /// Name (the key in [`SessionStartInfo::hparams`]).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Display name.
    #[prost(string, tag = "2")]
    pub display_name: String,
    /// Description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// A [`HParamDataType`] value.
    #[prost(enumeration = "HParamDataType", tag = "4")]
    pub r#type: i32,
    /// Whether the value differs between sessions (TensorBoard lists such columns first).
    #[prost(bool, tag = "7")]
    pub differs: bool,
}

/// `tensorboard.hparams.DataType` (`api.proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum HParamDataType {
    /// `DATA_TYPE_UNSET`.
    Unset = 0,
    /// `DATA_TYPE_STRING`.
    String = 1,
    /// `DATA_TYPE_BOOL`.
    Bool = 2,
    /// `DATA_TYPE_FLOAT64`.
    Float64 = 3,
}

/// `tensorboard.hparams.MetricInfo` (`api.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricInfo {
    /// Which scalar series the metric is.
    #[prost(message, optional, tag = "1")]
    pub name: Option<MetricName>,
    /// Display name.
    #[prost(string, tag = "3")]
    pub display_name: String,
    /// Description.
    #[prost(string, tag = "4")]
    pub description: String,
    /// A [`DatasetType`] value.
    #[prost(enumeration = "DatasetType", tag = "5")]
    pub dataset_type: i32,
}

/// `tensorboard.hparams.MetricName` (`api.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricName {
    /// Sub-directory of the session's run holding the scalar; empty: the run itself.
    #[prost(string, tag = "1")]
    pub group: String,
    /// Scalar tag.
    #[prost(string, tag = "2")]
    pub tag: String,
}

/// `tensorboard.hparams.DatasetType` (`api.proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DatasetType {
    /// `DATASET_UNKNOWN`.
    Unknown = 0,
    /// `DATASET_TRAINING`.
    Training = 1,
    /// `DATASET_VALIDATION`.
    Validation = 2,
}

/// `google.protobuf.Value` (`struct.proto`), without the struct and list kinds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtobufValue {
    /// The value.
    #[prost(oneof = "protobuf_value::Kind", tags = "1, 2, 3, 4")]
    pub kind: Option<protobuf_value::Kind>,
}

/// Nested types of [`ProtobufValue`].
pub mod protobuf_value {
    /// `google.protobuf.Value.kind`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// `null_value` (`google.protobuf.NullValue`, whose only value is 0).
        #[prost(int32, tag = "1")]
        NullValue(i32),
        /// A number.
        #[prost(double, tag = "2")]
        NumberValue(f64),
        /// A string.
        #[prost(string, tag = "3")]
        StringValue(String),
        /// A boolean.
        #[prost(bool, tag = "4")]
        BoolValue(bool),
    }
}
