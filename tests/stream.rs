//! Weights streamed in chunks, as the page's downloads and the CLI's file reads arrive (a hub
//! folder's model.safetensors, a fair-esm `.pt`): the same model (to the bit) and the same SHA-256
//! as a whole-file load, whatever the chunks, and errors in words for a file that is cut short,
//! too long or not of its format.

mod common;

use burn::prelude::*;
use common::*;
use plmscope::session::Session;
use plmscope::weights::detect::NamedFile;

fn files() -> Vec<(String, Vec<u8>)> {
    vec![("config.json".into(), TINY_CONFIG.as_bytes().to_vec()), ("model.safetensors".into(), TINY_SAFETENSORS.to_vec())]
}

/// Streams `weights` in the chunk sizes of `cuts` (cycled) after the tiny config; returns the
/// session and the progress the last chunk reported.
fn streamed(weights: &[u8], cuts: &[usize]) -> Result<(Session, plmscope::session::StreamProgress), String> {
    streamed_as(&[("config.json", TINY_CONFIG.as_bytes())], ("model.safetensors", weights), cuts)
}

/// Streams `weights` in the chunk sizes of `cuts` (cycled), after the whole files `before`.
fn streamed_as(before: &[(&str, &[u8])], (name, weights): (&str, &[u8]), cuts: &[usize]) -> Result<(Session, plmscope::session::StreamProgress), String> {
    let mut session = Session::new(Device::flex());
    let mut starts: Vec<(String, Vec<u8>)> = before.iter().map(|(n, b)| (n.to_string(), b.to_vec())).collect();
    starts.push((name.to_string(), weights[..weights.len().min(1 << 20)].to_vec()));
    let index = session.model_stream_start(&NamedFile::views(&starts), "tiny").map_err(|e| e.to_string())?;
    assert_eq!(index, before.len(), "the weights are the last file");
    let mut at = 0;
    let mut progress = None;
    for &cut in cuts.iter().cycle() {
        if at >= weights.len() {
            break;
        }
        let end = (at + cut).min(weights.len());
        progress = Some(session.model_stream_push(&weights[at..end]).map_err(|e| e.to_string())?);
        at = end;
    }
    session.model_stream_finish().map_err(|e| e.to_string())?;
    Ok((session, progress.expect("one chunk at least")))
}

fn logits(session: &Session) -> Vec<f32> {
    let fx = Fixture::read(TINY_OUTPUTS);
    let tokens = fx.tokens("medium");
    let model = session.model().unwrap();
    let batch = plmscope::esm::Batch::new(&[tokens], &Device::flex());
    pollster::block_on(plmscope::device::read_f32(model.forward(&batch).logits)).unwrap()
}

#[test]
fn any_chunking_gives_the_model_and_hash_of_a_whole_load() {
    let mut whole = Session::new(Device::flex());
    let info = whole.load_model(&NamedFile::views(&files()), "tiny").unwrap();
    let files_hash = plmscope::analysis::atlas::Identity::of("", &[TINY_CONFIG.as_bytes(), TINY_SAFETENSORS]).sha256;
    assert_eq!(info.sha256, files_hash, "the hash of config.json then model.safetensors");
    let reference = logits(&whole);
    for cuts in [&[1][..], &[7], &[4096], &[TINY_SAFETENSORS.len()], &[3, 1000, 17, 65_536, 1]] {
        let (session, progress) = streamed(TINY_SAFETENSORS, cuts).unwrap();
        assert_eq!(session.model_info().unwrap().sha256, info.sha256, "chunks {cuts:?}");
        assert_eq!(logits(&session), reference, "chunks {cuts:?}: not the same model to the bit");
        assert_eq!((progress.received, progress.total), (TINY_SAFETENSORS.len(), Some(TINY_SAFETENSORS.len())));
    }
}

#[test]
fn the_streamed_model_matches_transformers() {
    let (session, _) = streamed(TINY_SAFETENSORS, &[12_345]).unwrap();
    let fx = Fixture::read(TINY_OUTPUTS);
    let model = session.model().unwrap();
    for name in ALONE {
        assert_within("tiny streamed", &pollster::block_on(compare(model, &Device::flex(), &fx, &[name])));
    }
}

#[test]
fn a_file_cut_short_says_how_much_arrived() {
    let n = TINY_SAFETENSORS.len();
    let Err(err) = streamed(&TINY_SAFETENSORS[..n - 100], &[5000]) else { panic!("a cut file loaded") };
    assert_eq!(err, format!("model.safetensors is not a readable safetensors file: it ends after {} of its {n} bytes: 1 tensors are missing or cut short", n - 100));
}

#[test]
fn bytes_after_the_last_tensor_are_refused() {
    let mut long = TINY_SAFETENSORS.to_vec();
    long.extend([0u8; 10]);
    let Err(err) = streamed(&long, &[5000]) else { panic!("a long file loaded") };
    assert_eq!(err, format!("model.safetensors is not a readable safetensors file: 10 bytes follow its last tensor (its header accounts for {})", TINY_SAFETENSORS.len()));
}

#[test]
fn a_header_over_the_limit_is_refused_before_it_is_read() {
    let mut bytes = TINY_SAFETENSORS.to_vec();
    bytes[..8].copy_from_slice(&200_000_000u64.to_le_bytes());
    let mut stream = plmscope::weights::stream::SafetensorsStream::new("model.safetensors");
    let err = stream.push(&bytes[..16], &mut |_, _| Ok(())).unwrap_err();
    assert_eq!(err.to_string(), "model.safetensors is not a readable safetensors file: its header claims 200000000 bytes, over safetensors' limit of 100000000");
}

#[test]
fn overlapping_offsets_are_refused() {
    let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend([0u8; 12]);
    let mut stream = plmscope::weights::stream::SafetensorsStream::new("x.safetensors");
    let err = stream.push(&bytes, &mut |_, _| Ok(())).unwrap_err();
    assert!(err.to_string().starts_with("x.safetensors is not a readable safetensors file: its header: invalid offset for tensor `b`"), "{err}");
}

#[test]
fn a_push_without_a_start_is_refused() {
    let mut session = Session::new(Device::flex());
    assert_eq!(session.model_stream_push(b"1234").unwrap_err().to_string(), "no model is being streamed in: start one first");
    assert_eq!(session.model_stream_finish().unwrap_err().to_string(), "no model is being streamed in: start one first");
}

#[test]
fn a_failed_stream_keeps_the_model_loaded_before() {
    let mut session = Session::new(Device::flex());
    session.load_model(&NamedFile::views(&files()), "first").unwrap();
    let starts = files();
    session.model_stream_start(&NamedFile::views(&starts), "second").unwrap();
    session.model_stream_push(&TINY_SAFETENSORS[..1000]).unwrap();
    assert!(session.model_stream_finish().is_err());
    assert_eq!(session.model_info().unwrap().name, "first");
}

/// torch.save's own zip (tests/reference/generate_esm.py): sizes in data descriptors after each
/// entry, a pickle first, the directory last.
#[test]
fn a_fair_esm_pt_streams_to_the_model_and_hash_of_a_whole_load() {
    let pt = [("esm2_tiny.pt".to_string(), TINY_PT.to_vec())];
    let mut whole = Session::new(Device::flex());
    let info = whole.load_model(&NamedFile::views(&pt), "tiny").unwrap();
    assert_eq!(info.sha256, plmscope::analysis::atlas::Identity::of("", &[TINY_PT]).sha256, "the hash of the file");
    let reference = logits(&whole);
    let mut hub = Session::new(Device::flex());
    hub.load_model(&NamedFile::views(&files()), "tiny").unwrap();
    assert_eq!(reference, logits(&hub), "the .pt holds the hub fixture's weights");
    for cuts in [&[1][..], &[3], &[64], &[4096], &[TINY_PT.len()], &[5, 1000, 17, 65_536, 2]] {
        let (session, progress) = streamed_as(&[], ("esm2_tiny.pt", TINY_PT), cuts).unwrap();
        assert_eq!(session.model_info().unwrap().sha256, info.sha256, "chunks {cuts:?}");
        assert_eq!(logits(&session), reference, "chunks {cuts:?}: not the same model to the bit");
        assert_eq!((progress.received, progress.total), (TINY_PT.len(), None), "a zip does not say its length");
    }
}

#[test]
fn a_fair_esm_pt_cut_short_or_too_long_says_so() {
    let n = TINY_PT.len();
    let err = |bytes: &[u8]| streamed_as(&[], ("esm2_tiny.pt", bytes), &[5000]).err().expect("a bad file loaded");
    assert_eq!(err(&TINY_PT[..n - 100]), format!("esm2_tiny.pt is not a readable torch .pt file: it ends after {} bytes, inside its zip directory (a download cut short?)", n - 100));
    assert_eq!(err(&TINY_PT[..n / 2]), format!("esm2_tiny.pt is not a readable torch .pt file: it ends after {} bytes, inside esm2_tiny/data/17 (a download cut short?)", n / 2));
    let long = [TINY_PT, &[0u8; 10]].concat();
    assert_eq!(err(&long), "esm2_tiny.pt is not a readable torch .pt file: 10 bytes follow the end of its zip directory");
}
