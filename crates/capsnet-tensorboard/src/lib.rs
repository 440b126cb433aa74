//! TensorBoard event files for capsule-network experiments: scalars, images, histograms,
//! text and HParams sessions, readable by stock TensorBoard, without TensorFlow (and without
//! burn).
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use capsnet_tensorboard::{EventWriter, HParamValue, image_grid};
//!
//! # fn main() -> Result<(), capsnet_tensorboard::TbError> {
//! let mut tb = EventWriter::open("runs/sweep/lr=0.001".as_ref())?;
//! let hparams = BTreeMap::from([
//!     ("lr".to_owned(), HParamValue::Number(1e-3)),
//!     ("routing".to_owned(), HParamValue::Text("dynamic".to_owned())),
//! ]);
//! tb.hparams_start(&hparams, &["test/accuracy"], "")?;
//! tb.scalar("train/loss", 100, 0.25)?;
//! let digit = vec![0.5f32; 28 * 28];
//! let (w, h, pixels) = image_grid(&[&digit, &digit, &digit], 28, 28, 2);
//! tb.image("reconstructions", 100, w, h, 1, &pixels)?;
//! tb.histogram("weights/primary_caps", 100, &[0.1, -0.2, 0.3])?;
//! tb.text("config", 0, "`lr = 0.001`")?;
//! tb.scalar("test/accuracy", 100, 0.99)?;
//! tb.hparams_end(true)?;
//! # Ok(())
//! # }
//! ```
//!
//! Then `tensorboard --logdir runs/sweep`: every run directory under the logdir is a run,
//! and a row of the HPARAMS tab.
//!
//! # File format
//!
//! An event file is a sequence of TFRecords, each holding one serialized `Event` protocol
//! buffer ([`record`]):
//!
//! ```text
//! u64 LE  length of data
//! u32 LE  masked_crc32c(the 8 length bytes)
//! [u8]    data (an Event message)
//! u32 LE  masked_crc32c(data)
//! ```
//!
//! where `masked_crc32c(x) = ((c >> 15) | (c << 17)) + 0xa282ead8` (wrapping) with
//! `c = crc32c(x)`, the CRC-32C (Castagnoli) checksum. The first event of a file has
//! `file_version = "brain.Event:2"`; every later one carries a `Summary` with one
//! `Summary.Value`:
//!
//! | method | `Summary.Value` | dashboard |
//! | --- | --- | --- |
//! | [`EventWriter::scalar`] | `simple_value` (f32) | SCALARS |
//! | [`EventWriter::image`] | `image`: `Summary.Image { height = 1, width = 2, colorspace = 3, encoded_image_string = 4 }` with a PNG | IMAGES |
//! | [`EventWriter::histogram`] | `histo`: `HistogramProto` ([`histogram`] describes the bucketing) | HISTOGRAMS, DISTRIBUTIONS |
//! | [`EventWriter::text`] | `tensor`: `DT_STRING` scalar, metadata plugin `text` | TEXT |
//! | [`EventWriter::hparams_start`], [`EventWriter::hparams_end`] | metadata plugin `hparams` whose content is a serialized `HParamsPluginData`, and an empty float tensor | HPARAMS |
//!
//! File names are `events.out.tfevents.<unix_seconds>.<hostname>.<pid>.capsnet`;
//! TensorBoard reads every file whose name contains `tfevents`.
//!
//! # HParams
//!
//! [`EventWriter::hparams_start`] writes, at step 0, `_hparams_/experiment` (an
//! `Experiment` whose `hparam_infos` come from the keys and whose `metric_infos` name the
//! scalar tags to show as columns) and `_hparams_/session_start_info` (a
//! `SessionStartInfo` with the values as `google.protobuf.Value`s);
//! [`EventWriter::hparams_end`] writes `_hparams_/session_end_info` (a `SessionEndInfo`
//! with `STATUS_SUCCESS` or `STATUS_FAILURE`). Each plugin content has `version = 0`, like
//! `tensorboard.plugins.hparams.summary`.
//!
//! # Where the field numbers come from
//!
//! The messages of [`proto`] are written by hand with `#[derive(prost::Message)]` (no
//! `protoc`, no build script) from TensorBoard's `.proto` files —
//! `tensorboard/compat/proto/{event,summary,tensor,tensor_shape,types}.proto`,
//! `tensorboard/plugins/hparams/{api,plugin_data}.proto` and
//! `google/protobuf/struct.proto` — and every field number, type and enum value was checked
//! against the descriptors that the `tensorboard` 2.21.0 pip package's `*_pb2` modules
//! print. The TFRecord framing follows TensorBoard's
//! `tensorboard/summary/writer/record_writer.py`; the unit tests hold bytes that this
//! writer produced for a known record.
//!
//! # Crash safety and resumed runs
//!
//! Each event is flushed to the operating system as soon as it is written, so a crash of
//! the training process loses nothing already written. [`EventWriter::open`] on a
//! directory that already has an event file appends to it (one file per run directory),
//! after cutting off a partial last record that a crash may have left. [`read_events`]
//! verifies both CRCs of every record and reports a partial or corrupt record as an error
//! naming the file and the offset; [`read_events_lossy`] returns the events before it.
//!
//! A run resumed from a checkpoint at step `s` after it had logged steps past `s` logs
//! those steps again; no `SessionLog.START` event is written, so TensorBoard keeps and
//! shows both sets of points.

#![warn(missing_docs)]

mod error;
pub mod histogram;
mod image;
pub mod proto;
pub mod record;
mod writer;

pub use error::TbError;
pub use histogram::{HISTOGRAM_BUCKETS, bucketize};
pub use image::{GRID_GAP_VALUE, PngError, encode_png, image_grid};
pub use proto::Event;
pub use record::{ReadEvents, encode_record, masked_crc32c, read_events, read_events_lossy};
pub use writer::{
    EventWriter, FILE_VERSION, HPARAMS_EXPERIMENT_TAG, HPARAMS_SESSION_END_TAG,
    HPARAMS_SESSION_START_TAG, HParamValue,
};
