//! Hostile files, made here, with the words of the error each must get: run natively
//! (tests/hostile.rs) and in the browser's wasm32 (tests/web.rs), where a usize is 32 bits.

use std::io::{Cursor, Write};

/// A zip of `(name, bytes)` entries, stored.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    buf.into_inner()
}

/// `{"w": _rebuild_tensor_v2(storage 0 (FloatStorage), 0, size, stride, False, OrderedDict())}` with
/// `size` and `stride` as pickled tuples.
pub fn tensor_pickle(size: &[u8], stride: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQK\x00".to_vec();
    p.extend(size);
    p.extend(stride);
    p.extend(b"\x89ccollections\nOrderedDict\n)RtRs.");
    p
}

/// The storage of [`tensor_pt`]: the floats 0..6.
pub fn six_floats() -> Vec<u8> {
    (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

/// [`tensor_pickle`] in a `.pt` whose storage holds 6 floats.
pub fn tensor_pt(size: &[u8], stride: &[u8]) -> Vec<u8> {
    zip_of(&[("a/data.pkl", &tensor_pickle(size, stride)), ("a/data/0", &six_floats())])
}

/// (file name, `.pt` bytes, the end of the error it must get).
pub fn pt_cases() -> Vec<(&'static str, Vec<u8>, String)> {
    let mut bomb = b"\x80\x02]".to_vec();
    for _ in 0..40 {
        bomb.extend(b"q\x00h\x00\x86");
    }
    bomb.push(b'.');
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.extend(std::iter::repeat_n(b'a', 99_999));
    deep.push(b'.');
    // 2^31 as LONG1: fits a 32-bit usize, and three of them overflow a 64-bit one.
    let two31 = b"\x8a\x05\x00\x00\x00\x80\x00";
    let huge = [&two31[..], two31, two31, b"\x87"].concat();
    // One reading only: a second pickle after STOP, two pickles, one name twice (written as two
    // names, then the second renamed in place: a zip writer refuses to write it).
    let (pickle, data) = (tensor_pickle(b"K\x02K\x03\x86", b"K\x03K\x01\x86"), six_floats());
    let trailing = [&pickle[..], b"\x80\x02}."].concat();
    let mut dup = zip_of(&[("a/data.pkl", &pickle), ("a/data/0", &data), ("a/data/Z", &data)]);
    for i in 0..dup.len() - 8 {
        if &dup[i..i + 8] == b"a/data/Z" {
            dup[i + 7] = b'0';
        }
    }
    vec![
        ("two.pt", zip_of(&[("a/data.pkl", &trailing), ("a/data/0", &data)]), "4 bytes after the pickle's STOP".into()),
        (
            "roots.pt",
            zip_of(&[("a/data.pkl", &pickle), ("b/data.pkl", &pickle), ("a/data/0", &data)]),
            "the zip holds 2 pickles (a/data.pkl, b/data.pkl): a checkpoint has one".into(),
        ),
        ("dup.pt", dup, "the zip holds a/data/0 twice".into()),
        ("bomb.pt", zip_of(&[("a/data.pkl", &bomb)]), "the pickle copies its memo into more values than a checkpoint of its size holds (a memo bomb?)".into()),
        ("deep.pt", zip_of(&[("a/data.pkl", &deep)]), "containers nested more than 100 deep".into()),
        (
            "zero.pt",
            // Stride 0: one element repeated 2.5 × 10^9 times (a count that fits 32 bits too).
            tensor_pt(b"J\x50\xc3\x00\x00J\x50\xc3\x00\x00\x86", b"K\x00K\x00\x86"),
            "storage 0 holds 6 elements but a tensor of shape [50000, 50000] has 2500000000".into(),
        ),
        ("wrap.pt", tensor_pt(&huge, b"K\x01K\x01K\x01\x87"), "storage 0: a tensor of shape [2147483648, 2147483648, 2147483648] and strides [1, 1, 1] overflows".into()),
    ]
}

/// The explorer's features JSON with a segment end that a 32-bit cast would wrap into range.
pub const WRAPPING_SEGMENT: &str = r#"{"meta": {}, "features": [{"examples": [
  {"accession": "Q1", "sequence": "MKTAYI", "behavior": "tm", "behavior_segments": [[0, 0], [3, 4294967297]]}]}]}"#;

/// Every hostile file here gets its words, and the honest view beside them still reads.
pub fn check_all() {
    for (name, bytes, want) in pt_cases() {
        let err = plmscope::weights::pt::state_dict(&bytes, name).unwrap_err().to_string();
        assert_eq!(err, format!("{name} is not a readable torch .pt file: {want}"));
    }
    let err = plmscope::analysis::labels::read(WRAPPING_SEGMENT).unwrap_err().to_string();
    assert_eq!(err, "behavior_segments is missing or malformed in features[0].examples[0]");
    let ok = plmscope::weights::pt::state_dict(&tensor_pt(b"K\x02K\x03\x86", b"K\x03K\x01\x86"), "ok.pt").unwrap();
    assert_eq!(ok["w"].data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}
