//! TFRecord framing and the event-file reader.
//!
//! A record is `length: u64 LE`, `masked_crc32c(length bytes): u32 LE`, `data`,
//! `masked_crc32c(data): u32 LE` (TensorFlow `core/lib/io/record_writer.cc`, TensorBoard
//! `tensorboard/summary/writer/record_writer.py`).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use prost::Message;

use crate::TbError;
use crate::proto::Event;

/// Bytes of framing around the data of one record: 8 (length) + 4 + 4 (CRCs).
pub const RECORD_OVERHEAD: usize = 16;

/// The constant TFRecord adds to a rotated CRC.
const MASK_DELTA: u32 = 0xa282_ead8;

/// TFRecord's masked CRC-32C: `((crc >> 15) | (crc << 17)) + 0xa282ead8` (wrapping), where
/// `crc` is the CRC-32C (Castagnoli) of `data`.
#[must_use]
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Frames `data` as one TFRecord and returns the record bytes.
#[must_use]
pub fn encode_record(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + RECORD_OVERHEAD);
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// What [`read_events_lossy`] found in an event file.
#[derive(Debug)]
pub struct ReadEvents {
    /// Every event up to the first incomplete or corrupt record.
    pub events: Vec<Event>,
    /// Byte length of the valid prefix: the end of the last good record.
    pub valid_len: u64,
    /// Why reading stopped before the end of the file ([`TbError::Truncated`] for a
    /// partial last record, as a crash leaves; [`TbError::Crc`] or [`TbError::Decode`] for
    /// corruption); `None` when the whole file was read.
    pub tail_error: Option<TbError>,
}

/// Parses an event file, verifying both CRCs of every record and decoding each record as an
/// [`Event`]. Any incomplete or corrupt record is an error naming the file and the byte
/// offset of the record; see [`read_events_lossy`] to get the events before it.
///
/// # Errors
///
/// [`TbError::Io`] if the file cannot be read, [`TbError::Truncated`] for a partial last
/// record, [`TbError::Crc`] for a CRC mismatch, [`TbError::Decode`] for a record that is not
/// an `Event`.
pub fn read_events(path: &Path) -> Result<Vec<Event>, TbError> {
    let read = read_events_lossy(path)?;
    match read.tail_error {
        Some(err) => Err(err),
        None => Ok(read.events),
    }
}

/// Like [`read_events`], but a bad record ends the scan instead of failing it: the events
/// before it come back together with the error in [`ReadEvents::tail_error`].
///
/// # Errors
///
/// [`TbError::Io`] if the file cannot be opened or read.
pub fn read_events_lossy(path: &Path) -> Result<ReadEvents, TbError> {
    let file = File::open(path).map_err(|e| TbError::io("opening", path, e))?;
    let mut reader = BufReader::new(file);
    let mut events = Vec::new();
    let mut offset: u64 = 0;
    let tail_error = loop {
        match next_record(&mut reader, path, offset) {
            Ok(None) => break None,
            Ok(Some(data)) => match Event::decode(data.as_slice()) {
                Ok(event) => {
                    events.push(event);
                    offset += (data.len() + RECORD_OVERHEAD) as u64;
                }
                Err(source) => {
                    break Some(TbError::Decode {
                        path: path.to_path_buf(),
                        offset,
                        source,
                    });
                }
            },
            Err(err @ TbError::Io { .. }) => return Err(err),
            Err(err) => break Some(err),
        }
    };
    Ok(ReadEvents {
        events,
        valid_len: offset,
        tail_error,
    })
}

/// Reads as many bytes as are available into `buf`; returns how many were read (less than
/// `buf.len()` only at end of file).
fn read_full(reader: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize, TbError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(TbError::io("reading", path, e)),
        }
    }
    Ok(filled)
}

/// Reads the record starting at `offset`; `Ok(None)` at a clean end of file.
fn next_record(
    reader: &mut impl Read,
    path: &Path,
    offset: u64,
) -> Result<Option<Vec<u8>>, TbError> {
    let truncated = |needed: u64, available: u64| TbError::Truncated {
        path: path.to_path_buf(),
        offset,
        needed,
        available,
    };
    let mut header = [0u8; 12];
    let got = read_full(reader, &mut header, path)?;
    if got == 0 {
        return Ok(None);
    }
    if got < header.len() {
        return Err(truncated(header.len() as u64, got as u64));
    }
    let (len_bytes, len_crc) = header.split_at(8);
    let crc_of = |bytes: &[u8]| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if masked_crc32c(len_bytes) != crc_of(len_crc) {
        return Err(TbError::Crc {
            path: path.to_path_buf(),
            offset,
            part: "length",
        });
    }
    let mut len_arr = [0u8; 8];
    len_arr.copy_from_slice(len_bytes);
    let len = u64::from_le_bytes(len_arr);
    let needed = len.saturating_add(4 + header.len() as u64);
    // The length passed its CRC, but never trust it for an allocation: read in bounded
    // steps so a huge length on a short file fails as truncation, not as out-of-memory.
    let mut data = Vec::new();
    let mut remaining = len;
    let mut chunk = vec![0u8; 1 << 16];
    while remaining > 0 {
        let step = remaining.min(chunk.len() as u64) as usize;
        let got = read_full(reader, &mut chunk[..step], path)?;
        data.extend_from_slice(&chunk[..got]);
        if got < step {
            return Err(truncated(needed, header.len() as u64 + data.len() as u64));
        }
        remaining -= step as u64;
    }
    let mut data_crc = [0u8; 4];
    let got = read_full(reader, &mut data_crc, path)?;
    if got < data_crc.len() {
        return Err(truncated(
            needed,
            header.len() as u64 + data.len() as u64 + got as u64,
        ));
    }
    if masked_crc32c(&data) != u32::from_le_bytes(data_crc) {
        return Err(TbError::Crc {
            path: path.to_path_buf(),
            offset,
            part: "data",
        });
    }
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::event;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// TFRecord's mask, written out again here from the format description so the test
    /// does not trust `masked_crc32c` (hence the shifts rather than `rotate_right`).
    #[allow(clippy::manual_rotate)]
    fn mask_independently(data: &[u8]) -> u32 {
        let crc = crc32c::crc32c(data);
        ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard CRC-32C check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn record_framing_matches_independent_crcs() {
        let data = b"hello";
        let record = encode_record(data);
        assert_eq!(record.len(), data.len() + RECORD_OVERHEAD);
        let len = 5u64.to_le_bytes();
        assert_eq!(&record[..8], &len);
        assert_eq!(&record[8..12], &mask_independently(&len).to_le_bytes());
        assert_eq!(&record[12..17], data);
        assert_eq!(&record[17..], &mask_independently(data).to_le_bytes());
    }

    #[test]
    fn record_bytes_match_tensorboards_record_writer() {
        // Produced by tensorboard 2.21.0:
        //   RecordWriter(buf).write(b"hello")
        //   RecordWriter(buf).write(
        //       event_pb2.Event(wall_time=1234567890.5, file_version="brain.Event:2")
        //           .SerializeToString())
        assert_eq!(
            hex(&encode_record(b"hello")),
            "0500000000000000eab2043e68656c6c6fbb1f1c19"
        );
        let event = Event {
            wall_time: 1_234_567_890.5,
            step: 0,
            what: Some(event::What::FileVersion("brain.Event:2".to_owned())),
        };
        assert_eq!(
            hex(&encode_record(&event.encode_to_vec())),
            "1800000000000000a37f4b22\
             090000a0b48065d2411a0d627261696e2e4576656e743a32\
             f5e8f016"
        );
    }
}
