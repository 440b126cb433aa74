//! Writes event files with `EventWriter` and reads them back with `read_events`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use capsnet_tensorboard::proto::{
    DataClass, DataType, HParamDataType, HParamsPluginData, ProtobufValue, Status, event,
    h_params_plugin_data, protobuf_value, summary,
};
use capsnet_tensorboard::{
    Event, EventWriter, FILE_VERSION, HParamValue, TbError, read_events, read_events_lossy,
};
use prost::Message;

/// The single summary value of a summary event.
fn value(event: &Event) -> &summary::Value {
    match &event.what {
        Some(event::What::Summary(s)) => {
            assert_eq!(s.value.len(), 1, "one value per event");
            &s.value[0]
        }
        other => panic!("not a summary event: {other:?}"),
    }
}

fn summaries(events: &[Event]) -> Vec<(String, i64, &summary::value::Value)> {
    events[1..]
        .iter()
        .map(|e| {
            let v = value(e);
            (v.tag.clone(), e.step, v.value.as_ref().expect("value set"))
        })
        .collect()
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("tfevents")
        })
        .collect();
    files.sort();
    files
}

fn decode_png(bytes: &[u8]) -> (u32, u32, png::ColorType, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type, buf)
}

fn hparams_data(v: &summary::Value) -> h_params_plugin_data::Data {
    let md = v.metadata.as_ref().expect("hparams metadata");
    let plugin = md.plugin_data.as_ref().expect("plugin data");
    assert_eq!(plugin.plugin_name, "hparams");
    let data = HParamsPluginData::decode(plugin.content.as_slice()).unwrap();
    assert_eq!(data.version, 0);
    data.data.expect("hparams oneof set")
}

#[test]
fn every_summary_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::open(dir.path()).unwrap();
    let name = w.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    assert!(
        name.ends_with(&format!(".{}.capsnet", std::process::id())),
        "{name}"
    );
    assert_eq!(w.path().parent(), Some(dir.path()));

    w.scalar("train/loss", 1, 0.5).unwrap();
    w.scalar("train/loss", 2, 0.25).unwrap();
    w.scalar("test/accuracy", 2, 0.987_654_321).unwrap();
    // A 3-wide, 2-high RGB image: distinct pixels reveal any width/height swap.
    let rgb: Vec<u8> = (0..3 * 2 * 3).map(|i| i as u8 * 10).collect();
    w.image("rgb", 3, 3, 2, 3, &rgb).unwrap();
    let gray = [0u8, 50, 100, 150, 200, 250];
    w.image("gray", 4, 2, 3, 1, &gray).unwrap();
    let rgba = [1u8, 2, 3, 4];
    w.image("rgba", 5, 1, 1, 4, &rgba).unwrap();
    w.histogram("weights", 6, &[1.0, 2.0, 2.0, 3.0, -1.0])
        .unwrap();
    w.text("notes", 7, "capsules ✓ — *markdown*").unwrap();
    let hparams = BTreeMap::from([
        ("lr".to_owned(), HParamValue::Number(0.001)),
        ("optimizer".to_owned(), HParamValue::from("adam")),
        ("augment".to_owned(), HParamValue::Bool(true)),
    ]);
    w.hparams_start(&hparams, &["test/accuracy", "train/loss"], "group-a")
        .unwrap();
    w.hparams_end(false).unwrap();
    w.flush().unwrap();
    let path = w.path().to_path_buf();
    drop(w);

    let events = read_events(&path).unwrap();
    assert_eq!(
        events[0].what,
        Some(event::What::FileVersion(FILE_VERSION.to_owned()))
    );
    assert!(events.iter().all(|e| e.wall_time > 1.6e9), "wall times set");
    let s = summaries(&events);
    let tags: Vec<(&str, i64)> = s.iter().map(|(t, st, _)| (t.as_str(), *st)).collect();
    assert_eq!(
        tags,
        [
            ("train/loss", 1),
            ("train/loss", 2),
            ("test/accuracy", 2),
            ("rgb", 3),
            ("gray", 4),
            ("rgba", 5),
            ("weights", 6),
            ("notes", 7),
            ("_hparams_/experiment", 0),
            ("_hparams_/session_start_info", 0),
            ("_hparams_/session_end_info", 0),
        ]
    );
    use summary::value::Value as V;
    assert_eq!(*s[0].2, V::SimpleValue(0.5));
    assert_eq!(*s[1].2, V::SimpleValue(0.25));
    assert_eq!(*s[2].2, V::SimpleValue(0.987_654_321_f64 as f32));

    for (i, (w_px, h_px, color, channels, pixels)) in [
        (3, 2, png::ColorType::Rgb, 3, &rgb[..]),
        (2, 3, png::ColorType::Grayscale, 1, &gray[..]),
        (1, 1, png::ColorType::Rgba, 4, &rgba[..]),
    ]
    .into_iter()
    .enumerate()
    {
        let V::Image(img) = s[3 + i].2 else {
            panic!("not an image: {:?}", s[3 + i].2)
        };
        assert_eq!((img.width, img.height), (w_px, h_px), "{}", s[3 + i].0);
        assert_eq!(img.colorspace, channels);
        let decoded = decode_png(&img.encoded_image_string);
        assert_eq!(
            decoded,
            (w_px as u32, h_px as u32, color, pixels.to_vec()),
            "{}",
            s[3 + i].0
        );
    }

    let V::Histo(h) = s[6].2 else {
        panic!("not a histogram")
    };
    assert_eq!(
        (h.min, h.max, h.num, h.sum, h.sum_squares),
        (-1.0, 3.0, 5.0, 7.0, 19.0)
    );
    assert_eq!(h.bucket.len(), 30);
    assert_eq!(h.bucket.iter().sum::<f64>(), 5.0);
    assert_eq!(*h.bucket_limit.last().unwrap(), 3.0);

    let text_value = value(&events[8]);
    let V::Tensor(t) = s[7].2 else {
        panic!("not a tensor")
    };
    assert_eq!(t.dtype, DataType::DtString as i32);
    assert_eq!(
        t.string_val,
        vec!["capsules ✓ — *markdown*".as_bytes().to_vec()]
    );
    assert!(
        t.tensor_shape.as_ref().unwrap().dim.is_empty(),
        "scalar shape"
    );
    let md = text_value.metadata.as_ref().unwrap();
    assert_eq!(md.plugin_data.as_ref().unwrap().plugin_name, "text");
    assert_eq!(md.data_class, DataClass::Tensor as i32);

    let h_params_plugin_data::Data::Experiment(exp) = hparams_data(value(&events[9])) else {
        panic!("experiment expected")
    };
    let infos: Vec<(&str, i32)> = exp
        .hparam_infos
        .iter()
        .map(|h| (h.name.as_str(), h.r#type))
        .collect();
    assert_eq!(
        infos,
        [
            ("augment", HParamDataType::Bool as i32),
            ("lr", HParamDataType::Float64 as i32),
            ("optimizer", HParamDataType::String as i32),
        ]
    );
    let metrics: Vec<(&str, &str)> = exp
        .metric_infos
        .iter()
        .map(|m| {
            let n = m.name.as_ref().unwrap();
            (n.group.as_str(), n.tag.as_str())
        })
        .collect();
    assert_eq!(metrics, [("", "test/accuracy"), ("", "train/loss")]);

    let h_params_plugin_data::Data::SessionStartInfo(start) = hparams_data(value(&events[10]))
    else {
        panic!("session start expected")
    };
    let num = |v: f64| ProtobufValue {
        kind: Some(protobuf_value::Kind::NumberValue(v)),
    };
    let expected = BTreeMap::from([
        (
            "augment".to_owned(),
            ProtobufValue {
                kind: Some(protobuf_value::Kind::BoolValue(true)),
            },
        ),
        ("lr".to_owned(), num(0.001)),
        (
            "optimizer".to_owned(),
            ProtobufValue {
                kind: Some(protobuf_value::Kind::StringValue("adam".to_owned())),
            },
        ),
    ]);
    assert_eq!(start.hparams, expected);
    assert_eq!(start.group_name, "group-a");
    assert!(start.start_time_secs > 1.6e9);

    let h_params_plugin_data::Data::SessionEndInfo(end) = hparams_data(value(&events[11])) else {
        panic!("session end expected")
    };
    assert_eq!(end.status, Status::Failure as i32);
    assert!(end.end_time_secs >= start.start_time_secs);
    assert_eq!(events.len(), 12);
}

#[test]
fn reopening_appends_to_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("nested/run");
    let first = {
        let mut w = EventWriter::open(&run).unwrap();
        w.scalar("loss", 1, 1.0).unwrap();
        w.path().to_path_buf()
    };
    {
        let mut w = EventWriter::open(&run).unwrap();
        assert_eq!(w.path(), first);
        assert_eq!(w.discarded_bytes(), 0);
        w.scalar("loss", 2, 2.0).unwrap();
    }
    assert_eq!(event_files(&run), std::slice::from_ref(&first));
    let events = read_events(&first).unwrap();
    assert_eq!(events.len(), 3, "one file_version event, then two scalars");
    assert_eq!(
        summaries(&events)
            .iter()
            .map(|(t, s, v)| (t.as_str(), *s, (*v).clone()))
            .collect::<Vec<_>>(),
        [
            ("loss", 1, summary::value::Value::SimpleValue(1.0)),
            ("loss", 2, summary::value::Value::SimpleValue(2.0)),
        ]
    );
}

#[test]
fn reopening_picks_the_last_event_file_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let older = dir.path().join("events.out.tfevents.1000.host.1.capsnet");
    let newer = dir.path().join("events.out.tfevents.2000.host.1.capsnet");
    for p in [&older, &newer] {
        fs::write(p, b"").unwrap();
    }
    fs::write(dir.path().join("notes.txt"), b"not an event file").unwrap();
    let mut w = EventWriter::open(dir.path()).unwrap();
    assert_eq!(w.path(), newer);
    w.scalar("x", 0, 1.0).unwrap();
    drop(w);
    // An empty file gets the file_version event first.
    let events = read_events(&newer).unwrap();
    assert!(matches!(events[0].what, Some(event::What::FileVersion(_))));
    assert_eq!(events.len(), 2);
    assert_eq!(fs::metadata(&older).unwrap().len(), 0);
}

/// A file with `n` scalar events (steps 0..n) after the file_version event.
fn file_with_scalars(dir: &Path, n: i64) -> PathBuf {
    let mut w = EventWriter::open(dir).unwrap();
    for step in 0..n {
        w.scalar("loss", step, step as f64).unwrap();
    }
    w.path().to_path_buf()
}

fn assert_names_file(err: &TbError, path: &Path) {
    assert_eq!(err.path(), path);
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn corrupted_data_byte_is_a_crc_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with_scalars(dir.path(), 3);
    let mut bytes = fs::read(&path).unwrap();
    let last_start = {
        let read = read_events_lossy(&path).unwrap();
        assert!(read.tail_error.is_none());
        assert_eq!(read.valid_len, bytes.len() as u64);
        // Offset of the last record: the file length minus its framed size.
        let last = read.events.last().unwrap().encode_to_vec().len() + 16;
        bytes.len() - last
    };
    // Flip one byte of the last record's data.
    bytes[last_start + 14] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let err = read_events(&path).unwrap_err();
    assert!(
        matches!(err, TbError::Crc { part: "data", offset, .. } if offset == last_start as u64),
        "{err:?}"
    );
    assert_names_file(&err, &path);
    assert!(err.to_string().contains("CRC mismatch"), "{err}");
    let read = read_events_lossy(&path).unwrap();
    assert_eq!(
        read.events.len(),
        3,
        "file_version + 2 scalars before the bad one"
    );
    assert_eq!(read.valid_len, last_start as u64);
}

#[test]
fn corrupted_length_byte_is_a_crc_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with_scalars(dir.path(), 1);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 0x40; // the first record's length
    fs::write(&path, &bytes).unwrap();
    let err = read_events(&path).unwrap_err();
    assert!(
        matches!(
            err,
            TbError::Crc {
                part: "length",
                offset: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names_file(&err, &path);
}

#[test]
fn truncated_tail_is_reported_and_repaired_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with_scalars(dir.path(), 2);
    let full = fs::read(&path).unwrap();
    // Cut in the middle of the last record (its data), in its header, and after its data
    // but before the data CRC.
    for cut in [7, 3, 2] {
        fs::write(&path, &full[..full.len() - cut]).unwrap();
        let err = read_events(&path).unwrap_err();
        assert!(matches!(err, TbError::Truncated { .. }), "{err:?}");
        assert_names_file(&err, &path);
        assert!(err.to_string().contains("truncated record"), "{err}");
        let read = read_events_lossy(&path).unwrap();
        assert_eq!(read.events.len(), 2, "the events before the partial record");
    }
    // A partial header (fewer than 12 bytes) after complete records.
    let mut partial = full.clone();
    partial.extend_from_slice(&full[..5]);
    fs::write(&path, &partial).unwrap();
    let err = read_events(&path).unwrap_err();
    assert!(
        matches!(err, TbError::Truncated { offset, available: 5, .. } if offset == full.len() as u64),
        "{err:?}"
    );

    // Reopening cuts the partial record and appends after the last good one.
    let mut w = EventWriter::open(dir.path()).unwrap();
    assert_eq!(w.path(), path);
    assert_eq!(w.discarded_bytes(), 5);
    w.scalar("loss", 2, 2.0).unwrap();
    drop(w);
    let events = read_events(&path).unwrap();
    let steps: Vec<i64> = summaries(&events).iter().map(|(_, s, _)| *s).collect();
    assert_eq!(steps, [0, 1, 2]);
    assert_eq!(event_files(dir.path()).len(), 1);
}

#[test]
fn garbage_only_file_is_reset_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.out.tfevents.1.host.1.capsnet");
    fs::File::create(&path)
        .unwrap()
        .write_all(&[0xff; 40])
        .unwrap();
    let mut w = EventWriter::open(dir.path()).unwrap();
    assert_eq!(w.discarded_bytes(), 40);
    w.scalar("x", 0, 1.0).unwrap();
    drop(w);
    let events = read_events(&path).unwrap();
    assert!(matches!(events[0].what, Some(event::What::FileVersion(_))));
    assert_eq!(events.len(), 2);
}

#[test]
fn invalid_summaries_are_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::open(dir.path()).unwrap();
    let path = w.path().to_path_buf();
    let len = fs::metadata(&path).unwrap().len();
    let cases = [
        w.image("bad", 0, 2, 2, 2, &[0; 8]).unwrap_err(),
        w.image("bad", 0, 2, 2, 3, &[0; 11]).unwrap_err(),
        w.image("bad", 0, 0, 2, 1, &[]).unwrap_err(),
        w.image("bad", 0, u32::MAX, 1, 1, &[0; 4]).unwrap_err(),
        w.histogram("bad", 0, &[1.0, f64::NAN]).unwrap_err(),
        w.histogram("bad", 0, &[f64::INFINITY]).unwrap_err(),
    ];
    for err in &cases {
        assert!(
            matches!(err, TbError::InvalidInput { tag, .. } if tag == "bad"),
            "{err:?}"
        );
        assert_names_file(err, &path);
    }
    assert!(cases[0].to_string().contains("channels"), "{}", cases[0]);
    assert!(
        cases[1].to_string().contains("11 pixel bytes"),
        "{}",
        cases[1]
    );
    assert!(cases[4].to_string().contains("NaN"), "{}", cases[4]);
    assert_eq!(fs::metadata(&path).unwrap().len(), len, "nothing written");
    // The writer still works.
    w.histogram("empty", 1, &[]).unwrap();
    drop(w);
    assert_eq!(read_events(&path).unwrap().len(), 2);
}

#[test]
fn open_and_read_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.tfevents");
    let err = read_events(&missing).unwrap_err();
    assert!(matches!(err, TbError::Io { .. }), "{err:?}");
    assert_names_file(&err, &missing);

    // A run directory path that is a file.
    let file = dir.path().join("plain-file");
    fs::write(&file, b"x").unwrap();
    let err = EventWriter::open(&file).unwrap_err();
    assert!(matches!(err, TbError::Io { .. }), "{err:?}");
    assert_names_file(&err, &file);
}
