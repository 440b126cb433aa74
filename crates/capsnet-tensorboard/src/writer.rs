//! [`EventWriter`]: appends summaries to one event file per run directory.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::TbError;
use crate::histogram::{HISTOGRAM_BUCKETS, bucketize};
use crate::image::{PngError, encode_png};
use crate::proto::{
    DataClass, DataType, Event, Experiment, HParamDataType, HParamInfo, HParamsPluginData,
    MetricInfo, MetricName, ProtobufValue, SessionEndInfo, SessionStartInfo, Status, Summary,
    SummaryMetadata, TensorProto, TensorShapeProto, event, h_params_plugin_data, protobuf_value,
    summary, summary_metadata, tensor_shape_proto,
};
use crate::record::{encode_record, read_events_lossy};

/// The `file_version` of the first event of every event file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Tag of the hparams experiment summary.
pub const HPARAMS_EXPERIMENT_TAG: &str = "_hparams_/experiment";
/// Tag of the hparams session start summary.
pub const HPARAMS_SESSION_START_TAG: &str = "_hparams_/session_start_info";
/// Tag of the hparams session end summary.
pub const HPARAMS_SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// The value of one hyper-parameter, shown in TensorBoard's HPARAMS tab.
#[derive(Clone, Debug, PartialEq)]
pub enum HParamValue {
    /// A number (learning rate, routing iterations, ...).
    Number(f64),
    /// A string (optimizer name, dataset, ...).
    Text(String),
    /// A flag.
    Bool(bool),
}

impl From<f64> for HParamValue {
    fn from(v: f64) -> Self {
        Self::Number(v)
    }
}

impl From<i64> for HParamValue {
    fn from(v: i64) -> Self {
        Self::Number(v as f64)
    }
}

impl From<bool> for HParamValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<&str> for HParamValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for HParamValue {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl HParamValue {
    fn to_proto(&self) -> ProtobufValue {
        let kind = match self {
            Self::Number(v) => protobuf_value::Kind::NumberValue(*v),
            Self::Text(v) => protobuf_value::Kind::StringValue(v.clone()),
            Self::Bool(v) => protobuf_value::Kind::BoolValue(*v),
        };
        ProtobufValue { kind: Some(kind) }
    }

    fn data_type(&self) -> HParamDataType {
        match self {
            Self::Number(_) => HParamDataType::Float64,
            Self::Text(_) => HParamDataType::String,
            Self::Bool(_) => HParamDataType::Bool,
        }
    }
}

/// Writes TensorBoard summaries to the event file of one run directory.
///
/// Each summary is one event, written through a buffer and flushed to the operating system
/// before the method returns, so a crash of the process loses no event that was written.
/// [`EventWriter::flush`] also asks the OS to put the data on disk.
///
/// A write that fails (disk full, ...) returns [`TbError::Io`] and the next write first cuts
/// the file back to the end of the last complete record, so a failed write never leaves a
/// broken record in front of later events.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    /// `None` after a failed write, until the next write repairs the file.
    file: Option<BufWriter<File>>,
    /// Length of the file up to the end of the last complete record.
    len: u64,
    discarded_bytes: u64,
}

impl EventWriter {
    /// Opens the event file of the run directory `dir` (created if missing).
    ///
    /// Appends to the existing event file in `dir` if there is one (resumed runs keep ONE
    /// file per run directory), else creates
    /// `events.out.tfevents.<unix_seconds>.<hostname>.<pid>.capsnet` starting with the
    /// `file_version` event. With several files whose name contains `tfevents`, the last in
    /// name order is used: TensorBoard reads a directory's files in name order and never
    /// goes back to an earlier one.
    ///
    /// An existing file is checked first: a partial or corrupt record at its end (what a
    /// crash in the middle of a write leaves) is cut off, with everything after it, since
    /// TensorBoard stops reading a file at such a record and would never see events appended
    /// after it. [`EventWriter::discarded_bytes`] tells how many bytes were cut.
    ///
    /// # Errors
    ///
    /// [`TbError::Io`] if the directory or file cannot be created, read or written.
    pub fn open(dir: &Path) -> Result<Self, TbError> {
        std::fs::create_dir_all(dir).map_err(|e| TbError::io("creating directory", dir, e))?;
        match latest_event_file(dir)? {
            Some(path) => Self::append_to(path),
            None => Self::create(dir),
        }
    }

    fn create(dir: &Path) -> Result<Self, TbError> {
        let path = dir.join(format!(
            "events.out.tfevents.{}.{}.{}.capsnet",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            hostname(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| TbError::io("creating", &path, e))?;
        let mut writer = Self {
            path,
            file: Some(BufWriter::new(file)),
            len: 0,
            discarded_bytes: 0,
        };
        writer.write_file_version()?;
        Ok(writer)
    }

    fn append_to(path: PathBuf) -> Result<Self, TbError> {
        let read = read_events_lossy(&path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TbError::io("opening for append", &path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| TbError::io("reading metadata of", &path, e))?
            .len();
        if file_len > read.valid_len {
            file.set_len(read.valid_len)
                .map_err(|e| TbError::io("truncating the partial record of", &path, e))?;
        }
        let mut writer = Self {
            path,
            file: Some(BufWriter::new(file)),
            len: read.valid_len,
            discarded_bytes: file_len.saturating_sub(read.valid_len),
        };
        if read.events.is_empty() {
            writer.write_file_version()?;
        }
        Ok(writer)
    }

    fn write_file_version(&mut self) -> Result<(), TbError> {
        self.write_event(&Event {
            wall_time: now_secs(),
            step: 0,
            what: Some(event::What::FileVersion(FILE_VERSION.to_owned())),
        })
    }

    /// The event file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes that [`EventWriter::open`] cut from the end of an existing event file (a
    /// partial or corrupt last record); 0 for a new or intact file.
    #[must_use]
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded_bytes
    }

    /// Writes a scalar as `simple_value` (stored as `f32`), which the SCALARS dashboard
    /// and the HPARAMS metric columns read.
    ///
    /// # Errors
    ///
    /// [`TbError::Io`] if the write fails.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<(), TbError> {
        self.write_value(
            step,
            summary::Value {
                tag: tag.to_owned(),
                metadata: None,
                value: Some(summary::value::Value::SimpleValue(value as f32)),
            },
        )
    }

    /// Writes an image, encoded as PNG (IMAGES dashboard).
    ///
    /// `pixels`: row-major, `channels` 1 (gray), 3 (RGB) or 4 (RGBA) bytes per pixel,
    /// `width * height * channels` bytes in all.
    ///
    /// # Errors
    ///
    /// [`TbError::InvalidInput`] for bad sizes or channels (nothing is written),
    /// [`TbError::Png`] if encoding fails, [`TbError::Io`] if the write fails.
    pub fn image(
        &mut self,
        tag: &str,
        step: i64,
        width: u32,
        height: u32,
        channels: u8,
        pixels: &[u8],
    ) -> Result<(), TbError> {
        let encoded = encode_png(width, height, channels, pixels).map_err(|e| match e {
            PngError::Invalid(reason) => self.invalid(tag, reason),
            PngError::Encoding(source) => TbError::Png {
                path: self.path.clone(),
                tag: tag.to_owned(),
                source,
            },
        })?;
        // encode_png checked that both fit in i32.
        let (Ok(width), Ok(height)) = (i32::try_from(width), i32::try_from(height)) else {
            return Err(self.invalid(tag, "image is too large".to_owned()));
        };
        self.write_value(
            step,
            summary::Value {
                tag: tag.to_owned(),
                metadata: None,
                value: Some(summary::value::Value::Image(summary::Image {
                    height,
                    width,
                    colorspace: i32::from(channels),
                    encoded_image_string: encoded,
                })),
            },
        )
    }

    /// Writes a histogram of `values` (HISTOGRAMS and DISTRIBUTIONS dashboards), bucketed
    /// into [`HISTOGRAM_BUCKETS`] equal-width buckets (see [`crate::histogram`]).
    ///
    /// # Errors
    ///
    /// [`TbError::InvalidInput`] if a value is NaN or infinite (nothing is written),
    /// [`TbError::Io`] if the write fails.
    pub fn histogram(&mut self, tag: &str, step: i64, values: &[f64]) -> Result<(), TbError> {
        let histo = bucketize(values, HISTOGRAM_BUCKETS).map_err(|index| {
            self.invalid(
                tag,
                format!(
                    "value {index} of {} is {} (histograms need finite values)",
                    values.len(),
                    values[index]
                ),
            )
        })?;
        self.write_value(
            step,
            summary::Value {
                tag: tag.to_owned(),
                metadata: None,
                value: Some(summary::value::Value::Histo(histo)),
            },
        )
    }

    /// Writes a text summary (TEXT dashboard, which renders Markdown): plugin `text`, a
    /// `DT_STRING` scalar tensor holding the UTF-8 text.
    ///
    /// # Errors
    ///
    /// [`TbError::Io`] if the write fails.
    pub fn text(&mut self, tag: &str, step: i64, text: &str) -> Result<(), TbError> {
        self.write_value(
            step,
            summary::Value {
                tag: tag.to_owned(),
                metadata: Some(plugin_metadata("text", Vec::new(), DataClass::Tensor)),
                value: Some(summary::value::Value::Tensor(TensorProto {
                    dtype: DataType::DtString as i32,
                    tensor_shape: Some(TensorShapeProto { dim: Vec::new() }),
                    string_val: vec![text.as_bytes().to_vec()],
                })),
            },
        )
    }

    /// Starts an HParams session: the values of this run's hyper-parameters (e.g. the swept
    /// keys) and the scalar tags to show as metric columns in the HPARAMS tab.
    ///
    /// Writes two summaries at step 0: `_hparams_/experiment` (one hparam column per key,
    /// typed from its value and marked as differing between runs, and one metric column per
    /// tag in `metric_tags`, read from this run's scalars) and
    /// `_hparams_/session_start_info` (the values and `group_name`). So one run alone shows
    /// up in the HPARAMS tab, and each run directory of a sweep under one logdir is a row.
    ///
    /// TensorBoard takes the columns from the experiment of any one run, so runs of a
    /// sweep should pass the same keys and metric tags. Runs with the same non-empty
    /// `group_name` are merged into one row (their metrics averaged); pass `""` to make
    /// each run its own group. TensorBoard keeps the first summary of a tag, so calling
    /// this again on a resumed run changes nothing.
    ///
    /// # Errors
    ///
    /// [`TbError::Io`] if the write fails.
    pub fn hparams_start(
        &mut self,
        hparams: &BTreeMap<String, HParamValue>,
        metric_tags: &[&str],
        group_name: &str,
    ) -> Result<(), TbError> {
        let now = now_secs();
        let experiment = Experiment {
            time_created_secs: now,
            hparam_infos: hparams
                .iter()
                .map(|(name, value)| HParamInfo {
                    name: name.clone(),
                    r#type: value.data_type() as i32,
                    differs: true,
                    ..HParamInfo::default()
                })
                .collect(),
            metric_infos: metric_tags
                .iter()
                .map(|tag| MetricInfo {
                    name: Some(MetricName {
                        group: String::new(),
                        tag: (*tag).to_owned(),
                    }),
                    ..MetricInfo::default()
                })
                .collect(),
            ..Experiment::default()
        };
        self.write_hparams(
            HPARAMS_EXPERIMENT_TAG,
            h_params_plugin_data::Data::Experiment(experiment),
        )?;
        let start = SessionStartInfo {
            hparams: hparams
                .iter()
                .map(|(name, value)| (name.clone(), value.to_proto()))
                .collect(),
            group_name: group_name.to_owned(),
            start_time_secs: now,
            ..SessionStartInfo::default()
        };
        self.write_hparams(
            HPARAMS_SESSION_START_TAG,
            h_params_plugin_data::Data::SessionStartInfo(start),
        )
    }

    /// Ends the HParams session started by [`EventWriter::hparams_start`] with status
    /// `STATUS_SUCCESS` or `STATUS_FAILURE` (writes `_hparams_/session_end_info`).
    ///
    /// TensorBoard uses the first session end of a run, so on a run that will be resumed,
    /// write it only once the run is really over.
    ///
    /// # Errors
    ///
    /// [`TbError::Io`] if the write fails.
    pub fn hparams_end(&mut self, success: bool) -> Result<(), TbError> {
        let status = if success {
            Status::Success
        } else {
            Status::Failure
        };
        self.write_hparams(
            HPARAMS_SESSION_END_TAG,
            h_params_plugin_data::Data::SessionEndInfo(SessionEndInfo {
                status: status as i32,
                end_time_secs: now_secs(),
            }),
        )
    }

    /// Flushes the buffer and asks the operating system to write the file to disk
    /// (`fsync`). Every summary method already flushes to the OS.
    ///
    /// # Errors
    ///
    /// [`TbError::Io`] if flushing or syncing fails.
    pub fn flush(&mut self) -> Result<(), TbError> {
        let file = self.writer()?;
        let result = file.flush().and_then(|()| file.get_ref().sync_data());
        result.map_err(|e| TbError::io("flushing", &self.path, e))
    }

    /// Writes any event (for summaries this API does not cover) and flushes it to the OS.
    ///
    /// # Errors
    ///
    /// [`TbError::Io`] if the write fails.
    pub fn write_event(&mut self, event: &Event) -> Result<(), TbError> {
        let record = encode_record(&event.encode_to_vec());
        let file = self.writer()?;
        match file.write_all(&record).and_then(|()| file.flush()) {
            Ok(()) => {
                self.len += record.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Drop whatever the failed write left buffered; the next write cuts the
                // file back to `self.len`.
                if let Some(file) = self.file.take() {
                    drop(file.into_parts());
                }
                Err(TbError::io("writing", &self.path, e))
            }
        }
    }

    /// The buffered file, reopened and cut back to the last complete record after a failed
    /// write.
    fn writer(&mut self) -> Result<&mut BufWriter<File>, TbError> {
        let file = match self.file.take() {
            Some(file) => file,
            None => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&self.path)
                    .map_err(|e| TbError::io("reopening", &self.path, e))?;
                file.set_len(self.len)
                    .map_err(|e| TbError::io("truncating a failed write of", &self.path, e))?;
                BufWriter::new(file)
            }
        };
        Ok(self.file.insert(file))
    }

    fn write_value(&mut self, step: i64, value: summary::Value) -> Result<(), TbError> {
        self.write_event(&Event {
            wall_time: now_secs(),
            step,
            what: Some(event::What::Summary(Summary { value: vec![value] })),
        })
    }

    fn write_hparams(
        &mut self,
        tag: &str,
        data: h_params_plugin_data::Data,
    ) -> Result<(), TbError> {
        let content = HParamsPluginData {
            version: 0,
            data: Some(data),
        }
        .encode_to_vec();
        // Like tensorboard.plugins.hparams.metadata.NULL_TENSOR: an empty float tensor of
        // shape [0]; the data lives in the metadata.
        let null_tensor = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![tensor_shape_proto::Dim { size: 0 }],
            }),
            string_val: Vec::new(),
        };
        self.write_value(
            0,
            summary::Value {
                tag: tag.to_owned(),
                metadata: Some(plugin_metadata("hparams", content, DataClass::Unknown)),
                value: Some(summary::value::Value::Tensor(null_tensor)),
            },
        )
    }

    fn invalid(&self, tag: &str, reason: String) -> TbError {
        TbError::InvalidInput {
            path: self.path.clone(),
            tag: tag.to_owned(),
            reason,
        }
    }
}

fn plugin_metadata(plugin_name: &str, content: Vec<u8>, data_class: DataClass) -> SummaryMetadata {
    SummaryMetadata {
        plugin_data: Some(summary_metadata::PluginData {
            plugin_name: plugin_name.to_owned(),
            content,
        }),
        data_class: data_class as i32,
        ..SummaryMetadata::default()
    }
}

/// The last file of `dir` in name order whose name contains `tfevents`.
fn latest_event_file(dir: &Path) -> Result<Option<PathBuf>, TbError> {
    let entries = std::fs::read_dir(dir).map_err(|e| TbError::io("listing", dir, e))?;
    let mut latest: Option<OsString> = None;
    for entry in entries {
        let entry = entry.map_err(|e| TbError::io("listing", dir, e))?;
        let name = entry.file_name();
        if !name.to_string_lossy().contains("tfevents") {
            continue;
        }
        let is_file = entry
            .file_type()
            .map_err(|e| TbError::io("listing", dir, e))?
            .is_file();
        if is_file && latest.as_ref().is_none_or(|l| name > *l) {
            latest = Some(name);
        }
    }
    Ok(latest.map(|name| dir.join(name)))
}

/// Host name for the file name, with anything but `[A-Za-z0-9._-]` replaced by `_`.
fn hostname() -> String {
    let raw = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
